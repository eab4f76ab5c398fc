"""Crash safety: `toyc build` and `toyc watch` killed (SIGKILL) in the middle of writing an
update, at a chosen write: the next `toyc build` must produce an output that behaves as a clean
build of the same source, and say it rebuilt, never report the torn update as done.

The kill comes from strace's fault injection (`-e inject=pwrite64:signal=SIGKILL:when=N`), so
it lands exactly at the N-th write of the output (or of the state file), chosen at random over
the whole range an update writes. What makes it safe: an update removes the state file and
the output's execute bits before its first write, and restores the bits and saves the state
(write beside, rename) after its last; without a state file the next build is a full one,
which writes beside the output and renames. The edits are the random
edit tests' generator's. TOYC_CRASH_KILLS=N runs N kills of each kind instead of the default.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_incremental_random as gen

from conftest import TOYC, require, run, symbols

KILLS = int(os.environ.get("TOYC_CRASH_KILLS") or 12)
WATCH_KILLS = max(3, KILLS // 4)


def killed_at(n: int) -> list[str]:
    """A command prefix that SIGKILLs the process at its n-th pwrite64."""
    return [require("strace"), "-f", "-qq", "-o", "/dev/null", "-e", "trace=pwrite64",
            "-e", f"inject=pwrite64:signal=SIGKILL:when={n}"]


def behaviour(exe: Path) -> tuple[int, str, str]:
    r = run([str(exe)], cwd=exe.parent, timeout=30)
    return r.status, r.stdout, r.stderr


def check_against_clean(work: Path, what: str) -> str:
    """Build normally after the kill; the output must be a clean build's, in behaviour and
    symbols, and pass eu-elflint. Returns the build's summary."""
    r = run([*TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=work)
    assert r.status == 0, f"{what}: {r.stderr}"
    c = run([*TOYC, "build", "--full", "src.toy", "-o", "clean"], cwd=work)
    assert c.status == 0, c.stderr
    assert behaviour(work / "prog") == behaviour(work / "clean"), what
    assert symbols(work / "prog") == symbols(work / "clean"), what
    lint = run([require("eu-elflint"), "--gnu-ld", str(work / "prog")])
    assert lint.status == 0 and "No errors" in lint.stdout, f"{what}: {lint.stdout}"
    return r.stdout + r.stderr


def test_build_killed_at_any_write(tmp_path: Path):
    rnd = random.Random(11)
    program = gen.new_program(rnd)
    (tmp_path / "src.toy").write_text(gen.render(program))
    assert run([*TOYC, "build", "src.toy", "-o", "prog"], cwd=tmp_path).status == 0
    killed = 0
    for k in range(KILLS):
        program, done = gen.apply_edits(program, rnd.sample(gen.EDITS, 2), rnd)
        (tmp_path / "src.toy").write_text(gen.render(program))
        n = rnd.randint(1, 40)
        r = run([*killed_at(n), *TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=tmp_path)
        what = f"kill {k} at write {n} of an update ({'; '.join(done)})"
        if r.status in (-9, 137):
            killed += 1
            said = check_against_clean(tmp_path, what)
            assert "full build" in said, f"{what}: the torn update was trusted: {said}"
        else:  # the update wrote less than n times: it completed
            assert r.status == 0, f"{what}: {r.stderr}"
            check_against_clean(tmp_path, what)
    print(f"{killed} of {KILLS} updates killed in the middle, each followed by a correct "
          "build")
    assert killed >= KILLS // 2, f"only {killed} of {KILLS} builds were killed"


def test_watch_killed_at_any_write(tmp_path: Path):
    rnd = random.Random(12)
    for k in range(WATCH_KILLS):
        work = tmp_path / f"w{k}"
        work.mkdir()
        program = gen.new_program(rnd)
        (work / "src.toy").write_text(gen.render(program))
        n = rnd.randint(5, 120)
        watch = subprocess.Popen([*killed_at(n), *TOYC, "watch", "src.toy", "-o", "prog"],
                                 cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, text=True)
        try:
            watch.stdout.readline()  # the first build (or nothing, if it was killed in it)
            for _ in range(30):
                if watch.poll() is not None:
                    break
                time.sleep(0.15)  # a save the watch has to notice
                program, _ = gen.apply_edits(program, rnd.sample(gen.EDITS, 2), rnd)
                (work / "src.toy").write_text(gen.render(program))
                watch.stdout.readline()
            assert watch.wait(timeout=30) in (-9, 137), f"watch {k} was never killed (n={n})"
        finally:
            watch.kill()
            watch.wait()
        said = check_against_clean(work, f"watch {k} killed at write {n}")
        assert "full build" in said, said
        # (a full build killed before its rename leaves its file beside the output; the
        # next build clears it away)
        assert not list(work.glob(".prog.*.tmp")), list(work.iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="strace")
def test_the_state_file_is_gone_while_an_update_writes(tmp_path: Path):
    """The mechanism itself: killed at the first write of an update, the state file is
    already gone, the output cannot be run, and it is not trusted."""
    (tmp_path / "src.toy").write_text("fn f() -> int { return 1; }\nfn main() { print(f()); }\n")
    assert run([*TOYC, "build", "src.toy", "-o", "prog"], cwd=tmp_path).status == 0
    assert (tmp_path / ".prog.toyc-state").exists()
    (tmp_path / "src.toy").write_text("fn f() -> int { return 2; }\nfn main() { print(f()); }\n")
    r = run([*killed_at(1), *TOYC, "build", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status in (-9, 137)
    assert not (tmp_path / ".prog.toyc-state").exists()
    # and what is left is not runnable: the update took its execute bits until its end
    assert not os.stat(tmp_path / "prog").st_mode & 0o111
    with pytest.raises(PermissionError):
        subprocess.run([str(tmp_path / "prog")], check=False)
    said = check_against_clean(tmp_path, "killed at the first write")
    assert "no state from a previous build" in said
    assert os.stat(tmp_path / "prog").st_mode & 0o111
