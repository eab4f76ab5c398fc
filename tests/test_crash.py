"""Crash safety: `toyc build` and `toyc watch` killed (SIGKILL) in the middle of writing an
update, at a chosen write: the next `toyc build` must produce an output that behaves as a clean
build of the same source, and say it rebuilt, never report the torn update as done.

The kill comes from strace's fault injection (`-e inject=pwrite64:signal=SIGKILL:when=N`), so
it lands exactly at the N-th write of the output (or of the state database), chosen at random
over the whole range an update writes. What makes it safe: an update marks the state pending
(one SQLite transaction) and takes the output's execute bits before its first write of the
output, and restores the bits and saves the state (one transaction) after its last; a pending
state, or one rolled back to pending, means a full build, which writes beside the output and
renames. A kill before the output's first write leaves the state and the output as they were,
and the next build may trust them; once the output was written to, it must not. The edits are
the random
edit tests' generator's. TOYC_CRASH_KILLS=N runs N kills of each kind instead of the default.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_incremental_random as gen

from conftest import TOYC, require, run, symbols

KILLS = int(os.environ.get("TOYC_CRASH_KILLS") or 12)
WATCH_KILLS = max(3, KILLS // 4)


def killed_at(n: int, log: Path | None = None, only: Path | None = None) -> list[str]:
    """A command prefix that SIGKILLs the process at its n-th pwrite64 (to the file `only`, if
    given), writing the calls (with the files written) to `log` if given."""
    return [require("strace"), "-f", "-qq", "-y", "-o", str(log or "/dev/null"),
            *(["-P", str(only)] if only else []),
            "-e", "trace=pwrite64", "-e", f"inject=pwrite64:signal=SIGKILL:when={n}"]


def wrote_to(log: Path, name: str) -> bool:
    """Whether the calls `killed_at` logged include a write to a file called `name` (the kill
    may land before an update writes its output: in the state database)."""
    return any(f"/{name}>" in line for line in log.read_text().splitlines()
               if "pwrite64(" in line)


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
        log = tmp_path / "strace.log"
        r = run([*killed_at(n, log), *TOYC, "build", "-v", "src.toy", "-o", "prog"],
                cwd=tmp_path)
        what = f"kill {k} at write {n} of an update ({'; '.join(done)})"
        if r.status in (-9, 137):
            killed += 1
            said = check_against_clean(tmp_path, what)
            if wrote_to(log, "prog"):
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
        log = work.parent / f"strace{k}.log"
        watch = subprocess.Popen([*killed_at(n, log), *TOYC, "watch", "src.toy", "-o", "prog"],
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
        assert "full build" in said or not wrote_to(log, "prog"), said
        # (a full build killed before its rename leaves its file beside the output; the
        # next build clears it away)
        assert not list(work.glob(".prog.*.tmp")), list(work.iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="strace")
def test_the_state_is_pending_while_an_update_writes(tmp_path: Path):
    """The mechanism itself: killed at the first write of an update to the output, the state
    is already marked pending, the output cannot be run, and it is not trusted."""
    (tmp_path / "src.toy").write_text("fn f() -> int { return 1; }\nfn main() { print(f()); }\n")
    assert run([*TOYC, "build", "src.toy", "-o", "prog"], cwd=tmp_path).status == 0
    assert (tmp_path / ".prog.toyc-state").exists()
    (tmp_path / "src.toy").write_text("fn f() -> int { return 2; }\nfn main() { print(f()); }\n")
    r = run([*killed_at(1, only=tmp_path / "prog"), *TOYC, "build", "src.toy", "-o", "prog"],
            cwd=tmp_path)
    assert r.status in (-9, 137)
    with sqlite3.connect(tmp_path / ".prog.toyc-state") as con:
        assert con.execute("SELECT pending FROM head").fetchall() == [(1,)]
    con.close()
    # and what is left is not runnable: the update took its execute bits until its end
    assert not os.stat(tmp_path / "prog").st_mode & 0o111
    with pytest.raises(PermissionError):
        subprocess.run([str(tmp_path / "prog")], check=False)
    said = check_against_clean(tmp_path, "killed at the first write")
    assert "the last update did not finish" in said
    assert os.stat(tmp_path / "prog").st_mode & 0o111
