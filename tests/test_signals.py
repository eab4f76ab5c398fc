"""Ctrl-C (SIGINT) and SIGTERM at every stage of a `toyc watch --run` update.

The watch runs under a small wrapper that raises the signal in the watch's own process at the
first call of one stage's function after the first build: reading the change, parsing,
checking, lowering, stopping the program, each linker pass, writing into the program, the
tracker's commit, the report. A second series signals again while the watch, already stopping,
frees what it kept and saves its state. Each time the watch must end by itself with status 0
and no traceback, and the next `toyc build` must make what a clean build of the same source
makes (behaviour, with a panic's line number, and symbols): the state left behind is the last
finished update's, or none. The edit adds a line at the top (so line numbers shift), changes a
constant its users hold, and a body.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TOYC, require, run, symbols
from watching import Watcher, line_matching, save_in_place

FUNCTIONS = 12


def source(k: int, body: str, top: str = "") -> str:
    fns = "".join(f"fn f{i}(x: int) -> int {{\n    return x * {i + 2} + K;\n}}\n\n"
                  for i in range(FUNCTIONS))
    return (f"{top}const K: int = {k};\n\n{fns}"
            f"fn g(x: int) -> int {{\n    {body}\n}}\n\n"
            "fn main() -> int {\n"
            "    if argc() > 1 {\n"
            "        print(g(3), f5(1));\n"
            "        assert(g(1) == 0);\n"
            "    }\n"
            "    let i: int = 0;\n"
            "    while true { print(\"tick\", f1(i)); sleep_ms(5); i += 1; }\n"
            "    return 0;\n"
            "}\n")


BEFORE = source(1, "return x + K;")
AFTER = source(2, "return x * 3 + f2(x);", top="\n")

# (module, function) whose first call during the update raises the signal
UPDATE_STAGES = [
    ("toyc.session", "Session.update"),
    ("toyc.track", "Tracker.plan"),
    ("toyc.session", "parse_chunks"),
    ("toyc.session", "check"),
    ("toyc.session", "lower_decl"),
    ("toyc.session", "contract_changes"),
    ("linker.hot_swap", "HotSwap.begin"),
    ("linker.process", "Process.stop"),
    ("toyc.state_store", "mark_pending"),
    ("linker.zig_object", "ZigObject.shift_lines"),
    ("linker.zig_object", "ZigObject.update_func"),
    ("linker.zig_object", "ZigObject.flush"),
    ("linker.elf_file", "ElfFile.write_headers"),
    ("linker.hot_swap", "HotSwap.finish"),
    ("linker.process", "Process.write"),
    ("linker.process", "Process.resume"),
    ("toyc.track", "Tracker.commit"),
    ("toyc.session", "Session.record"),
    ("linker.hot_swap", "HotSwap.report"),
    ("toyc.watch", "_report"),
]
# stages of a watch that is already stopping: a second signal
STOP_STAGES = [
    ("linker.hot_swap", "HotSwap.stop"),
    ("toyc.session", "Session.release"),
    ("toyc.session", "Session.save_state"),
]

WRAPPER = """\
import importlib, signal, sys
module, name, signame = sys.argv[1:4]
owner = importlib.import_module(module)
*path, attr = name.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, attr)
import toyc.watch
armed = []
warm_up = toyc.watch._warm_up
def armed_warm_up(*args, **kwargs):
    warm_up(*args, **kwargs)
    armed.append(True)
toyc.watch._warm_up = armed_warm_up
def stage(*args, **kwargs):
    if armed and armed[0]:
        armed[0] = False
        print("test: signal at", name, file=sys.stderr, flush=True)
        signal.raise_signal(getattr(signal, signame))
    return original(*args, **kwargs)
setattr(owner, attr, stage)
sys.argv = ["toyc", *sys.argv[4:]]
from toyc.cli import main
sys.exit(main())
"""


def watch_through(work: Path, stage: tuple[str, str], signame: str) -> Watcher:
    """A watch of src.toy in `work`, run by the wrapper for `stage` and `signame`."""
    wrapper = work / "wrapper.py"
    wrapper.write_text(WRAPPER)
    return Watcher(work, "--run", command=[sys.executable, str(wrapper), *stage, signame])


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, tuple[int, str, str]]:
    """A clean build of AFTER, and what it does when run with an argument (it panics)."""
    clean = tmp_path_factory.mktemp("clean")
    (clean / "src.toy").write_text(AFTER)
    c = run([*TOYC, "build", "--full", "src.toy", "-o", "prog"], cwd=clean)
    assert c.status == 0, c.stderr
    want = run([str(clean / "prog"), "x"], cwd=clean)
    assert want.status == 101 and "src.toy:" in want.stderr
    return clean / "prog", (want.status, want.stdout, want.stderr)


def check_next_build(work: Path, what: str, clean: tuple[Path, tuple]) -> str:
    r = run([*TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=work)
    assert r.status == 0, f"{what}: {r.stderr}"
    prog, want = clean
    got = run([str(work / "prog"), "x"], cwd=work)
    assert (got.status, got.stdout, got.stderr) == want, f"{what}: {got} {want}"
    assert symbols(work / "prog") == symbols(prog), what
    lint = run([require("eu-elflint"), "--gnu-ld", str(work / "prog")])
    assert lint.status == 0 and "No errors" in lint.stdout, f"{what}: {lint.stdout}"
    return r.stdout + r.stderr


def signal_at(tmp_path: Path, stage: tuple[str, str], signame: str, stopping: bool,
              clean: tuple[Path, tuple]) -> None:
    work = tmp_path / f"{stage[1]}-{signame}"
    work.mkdir()
    (work / "src.toy").write_text(BEFORE)
    w = watch_through(work, stage, signame)
    what = f"{signame} at {stage[1]}{' while stopping' if stopping else ''}"
    try:
        line_matching(w, r"built .*started pid \d+$")
        w.wait_watching()
        line_matching(w, r"tick ")
        save_in_place(work / "src.toy", AFTER)
        if stopping:
            line_matching(w, r"updated .*swapped into pid")
            w.proc.send_signal(signal.SIGTERM)
        try:
            status = w.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{what}: the watch did not end")
        w.all_output()
        stderr = "\n".join(w.drain_stderr())
        assert f"test: signal at {stage[1]}" in stderr, f"{what}: the stage never ran"
        assert status == 0, f"{what}: status {status}: {stderr}"
        assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    finally:
        w.stop()
    check_next_build(work, what, clean)


SIGNALS = ("SIGINT", "SIGTERM")
# By default each stage gets one of the two signals, in turn; `-m slow` or TOYC_SIGNALS_ALL=1
# gives each stage the other one too.
CASES = [(stage, SIGNALS[i % 2], stage in STOP_STAGES)
         for i, stage in enumerate(UPDATE_STAGES + STOP_STAGES)]


@pytest.mark.parametrize("stage,signame,stopping", CASES,
                         ids=[f"{c[0][1]}-{c[1]}" for c in CASES])
def test_a_signal_at_a_stage(tmp_path: Path, clean, stage, signame, stopping):
    signal_at(tmp_path, stage, signame, stopping, clean)


@pytest.mark.slow
def test_the_other_signal_at_every_stage(tmp_path: Path, clean, request):
    markexpr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if not os.environ.get("TOYC_SIGNALS_ALL") and "slow" not in markexpr:
        pytest.skip("set TOYC_SIGNALS_ALL=1 or select -m slow for both signals at every stage")
    for stage, signame, stopping in CASES:
        other = SIGNALS[1 - SIGNALS.index(signame)]
        signal_at(tmp_path, stage, other, stopping, clean)
