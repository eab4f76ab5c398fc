"""`toyc watch`: one line per save, the output kept up to date, a clean exit on SIGINT.

`python -m toyc watch src.toy -o prog` runs as a subprocess (`watching.Watcher`). The watcher
prints its first line before it starts watching; the test waits until it watches, so that the
first save cannot be missed.

Steps, in one watch session: a save in place; a save as editors do it (a new file renamed over
the source); a save with a syntax error (diagnostics, "not updated", the output untouched) and
its fix; a growing edit that moves a function and leaves a trampoline; then SIGINT, which must
exit with status 0 and leave the state file, so that the next `toyc build -v` is incremental.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from conftest import TOYC, run
from watching import TIMEOUT, Watcher, save_by_rename, save_in_place

PROGRAM = """\
const GREETING: str = "{greeting}";
var calls: int = 0;

fn helper(x: int) -> int {{
    calls += 1;
{body}
}}

fn main() -> int {{
    print(GREETING, helper(20), calls);
    return 3;
}}
"""


def source(greeting: str = "hello", body: str = "return x * 2;") -> str:
    return PROGRAM.format(greeting=greeting, body=f"    {body}")


@pytest.fixture
def watcher(tmp_path: Path):
    (tmp_path / "src.toy").write_text(source())
    w = Watcher(tmp_path)
    yield w
    w.stop()


def run_prog(tmp_path: Path) -> tuple[int, str, str]:
    r = run([str(tmp_path / "prog")])
    return r.status, r.stdout, r.stderr


def test_watch_updates_on_every_save(tmp_path: Path, watcher: Watcher):
    src, prog = tmp_path / "src.toy", tmp_path / "prog"
    first = watcher.line()
    assert "(full build)" in first, first
    assert run_prog(tmp_path) == (3, "hello 40 1\n", "")
    watcher.wait_watching()

    # (a) written in place
    watcher.quiet()
    save_in_place(src, source(body="return x * 3;"))
    line = watcher.line()
    assert line.startswith("updated helper (in place)"), line
    assert run_prog(tmp_path) == (3, "hello 60 1\n", "")

    # (b) a new file renamed over the source, as editors save
    watcher.quiet()
    save_by_rename(src, source(greeting="howdy", body="return x * 3;"))
    line = watcher.line()
    assert "GREETING" in line and "full build" not in line, line
    assert run_prog(tmp_path) == (3, "howdy 60 1\n", "")

    # (c) a syntax error: diagnostics, "not updated", the output untouched; then the fix
    before = prog.read_bytes()
    watcher.quiet()
    save_in_place(src, source(greeting="howdy", body="return x * ;"))
    line = watcher.line()
    assert re.fullmatch(r"not updated: \d+ errors?; prog is unchanged", line), line
    watcher.stderr_line(r"src\.toy:6:\d+: error: ")
    assert prog.read_bytes() == before
    assert run_prog(tmp_path) == (3, "howdy 60 1\n", "")
    watcher.quiet()
    save_by_rename(src, source(greeting="howdy", body="return x * 5;"))
    line = watcher.line()
    assert line.startswith("updated helper (in place)"), line
    assert run_prog(tmp_path) == (3, "howdy 100 1\n", "")

    # (d) a body that outgrows its room: the function moves and leaves a trampoline
    grown = "\n    ".join(["let a = x;", *["a = a + 1;"] * 60, "return a;"])
    watcher.quiet()
    save_in_place(src, source(greeting="howdy", body=grown))
    line = watcher.line()
    assert line.startswith("updated helper (moved, trampoline)"), line
    assert run_prog(tmp_path) == (3, "howdy 80 1\n", "")

    # (e) SIGINT: status 0 and a state file the next build trusts
    watcher.proc.send_signal(signal.SIGINT)
    assert watcher.proc.wait(timeout=TIMEOUT) == 0, watcher.drain_stderr()
    assert not any("Traceback" in line for line in watcher.drain_stderr()), watcher.seen_stderr
    assert (tmp_path / ".prog.toyc-state").exists()
    r = run([*TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    assert "full build" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert r.stdout.startswith("nothing changed"), r.stdout
    assert run_prog(tmp_path) == (3, "howdy 80 1\n", "")


def test_watch_exits_cleanly_on_sigterm(tmp_path: Path, watcher: Watcher):
    """A supervisor's SIGTERM ends the watch like Ctrl-C: status 0, the state saved."""
    assert "(full build)" in watcher.line()
    watcher.wait_watching()
    watcher.quiet()
    save_in_place(tmp_path / "src.toy", source(body="return x * 7;"))
    line = watcher.line()
    assert line.startswith("updated helper (in place)"), line
    watcher.proc.send_signal(signal.SIGTERM)
    assert watcher.proc.wait(timeout=TIMEOUT) == 0, watcher.drain_stderr()
    assert (tmp_path / ".prog.toyc-state").exists()
    r = run([*TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status == 0 and "full build" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert run_prog(tmp_path) == (3, "hello 140 1\n", "")


def test_a_save_while_the_watch_starts_is_not_lost(tmp_path: Path):
    """No event reports a save made before the watcher is armed: right after the first line,
    or during the first build of a large file. Once armed, the watch compares the file with
    what it built."""
    src = tmp_path / "src.toy"
    big = "".join(f"fn pad{i}(x: int) -> int {{\n    return x * {i} + 1;\n}}\n\n"
                  for i in range(600))
    for early in (True, False):
        src.write_text(big + source())
        w = Watcher(tmp_path)
        try:
            if early:
                assert w.line().startswith("built")
            else:  # while the first build runs
                deadline = time.monotonic() + TIMEOUT
                while not (tmp_path / "prog").exists() and not list(tmp_path.glob(".prog.*")):
                    assert time.monotonic() < deadline, "the first build never started"
                    time.sleep(0.002)
            save_in_place(src, big + source(greeting="saved early"))
            if not early:
                assert w.line().startswith("built")
            line = w.line()
            assert line.startswith("updated GREETING"), line
            assert run([str(tmp_path / "prog")]).stdout == "saved early 40 1\n"
            w.quiet()
        finally:
            w.stop()
        (tmp_path / "prog").unlink()
        for state in tmp_path.glob(".prog.*"):
            state.unlink()
