"""`toyc watch` under stress: hundreds of saves faster than it can build, the source deleted and
written again, the output deleted, broken saves between good ones. It keeps going, reports each
failure once, and ends on the program a clean build of the last save gives."""

from __future__ import annotations

import queue
import random
import time
from pathlib import Path

import test_incremental_random as gen

from conftest import TOYC, run, symbols
from watching import Watcher, save_in_place

RAPID_SAVES = 200


def settle(w: Watcher, quiet: float = 1.5, limit: float = 60) -> list[str]:
    """The lines the watch prints until it has been quiet for `quiet` seconds."""
    lines, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            lines.append(w.stdout.get(timeout=quiet))
        except queue.Empty:  # quiet long enough
            return lines
    raise AssertionError(f"toyc watch never settled: {lines[-5:]}")


def same_as_clean(work: Path) -> None:
    r = run([*TOYC, "build", "--full", "src.toy", "-o", "clean"], cwd=work)
    assert r.status == 0, r.stderr
    got, want = (run([str(work / n)], cwd=work) for n in ("prog", "clean"))
    assert (got.status, got.stdout, got.stderr) == (want.status, want.stdout, want.stderr)
    assert symbols(work / "prog") == symbols(work / "clean")


def test_hundreds_of_rapid_saves(tmp_path: Path):
    rnd = random.Random(5)
    program = gen.new_program(rnd)
    src = tmp_path / "src.toy"
    src.write_text(gen.render(program))
    w = Watcher(tmp_path)
    try:
        assert "(full build)" in w.line()
        w.wait_watching()
        for i in range(RAPID_SAVES):
            program, _ = gen.apply_edits(program, [rnd.choice(gen.EDITS)], rnd)
            text = gen.render(program)
            if i % 17 == 5:  # now and then a broken save in between
                text, _ = gen.broken(text, rnd)
            src.write_text(text)
            time.sleep(rnd.uniform(0, 0.01))
        src.write_text(gen.render(program))  # the last save is a good one
        lines = settle(w)
        assert w.proc.poll() is None, "toyc watch died"
        assert lines and not lines[-1].startswith("not updated"), lines[-3:]
        assert not any("Traceback" in e or "internal error" in e for e in w.drain_stderr())
        same_as_clean(tmp_path)
    finally:
        w.stop()


def test_source_and_output_deleted_and_broken_saves(tmp_path: Path):
    src, prog = tmp_path / "src.toy", tmp_path / "prog"
    src.write_text("fn main() { print(1); }\n")
    w = Watcher(tmp_path)
    try:
        assert "(full build)" in w.line()
        w.wait_watching()
        # the source deleted: nothing to build, nothing reported; written again: updated
        src.unlink()
        assert settle(w, quiet=0.5) == []
        src.write_text("fn main() { print(2); }\n")
        assert w.line().startswith("updated main")
        assert run([str(prog)]).stdout == "2\n"
        # the output deleted: the next save is a full build that says why
        prog.unlink()
        save_in_place(src, "fn main() { print(3); }\n")
        assert w.line() == "full build: the output file is gone"
        assert "(full build)" in w.line()
        assert run([str(prog)]).stdout == "3\n"
        # a broken save: reported once (one line, its diagnostic once), the output kept
        before = prog.read_bytes()
        w.drain_stderr()
        seen = len(w.seen_stderr)
        save_in_place(src, "fn main() { print(4) }\n")
        lines = settle(w, quiet=0.8)
        assert lines == ["not updated: 1 error; prog is unchanged"], lines
        errors = [e for e in w.drain_stderr()[seen:] if ": error: " in e]
        assert errors == ["src.toy:1:22: error: expected ';', found '}'"], errors
        assert prog.read_bytes() == before
        # fixed: updated, and the result is a clean build's
        save_in_place(src, "fn main() { print(5); }\n")
        assert w.line().startswith("updated main")
        assert w.proc.poll() is None
        same_as_clean(tmp_path)
    finally:
        w.stop()
