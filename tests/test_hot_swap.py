"""`toyc watch --run`: updates written into the running program, checked from its own output.

The program prints `out I F(I) TICKS` every few milliseconds, counting I up from 0 and TICKS (a
global) with it, so each line shows which `f` ran, that the program was not restarted (I goes
on rising) and that globals kept their values. After every update the output file is also run
to a bounded count and compared with a clean build of the same source.
"""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

import pytest

from conftest import TOYC, require, run, symbols
from linker.hot_swap import HotSwap
from linker.process import Thread
from toyc.plugins import get_arch
from toyc.session import Session
from watching import Watcher, line_matching, save_in_place

PROGRAM = """\
var ticks: int = {ticks};
var pair: [int; {pair}];
{extra}
fn f(i: int) -> int {{
    {body}
}}

fn main() -> int {{
    let limit: int = -1;
    if argc() > 1 {{
        limit = parse_int(argv(1));
    }}
    let i: int = 0;
    while i != limit {{
        ticks += 1;
        pair[0] = i;
        print("out", i, f(i), ticks);
        sleep_ms({sleep});
        i = i + 1;
    }}
    return 0;
}}
"""
OUT = r"out (\d+) (-?\d+) (\d+)$"


def source(body: str = "return i * 2;", ticks: int = 1, pair: int = 2, sleep: int = 3,
           extra: str = "") -> str:
    return PROGRAM.format(body=body, ticks=ticks, pair=pair, sleep=sleep, extra=extra)


def grown(factor: int) -> str:
    """A body of f that outgrows the room of the short one, so f moves."""
    return "\n    ".join(["let a: int = 0;", *["a = a + i;" for _ in range(40)],
                           f"return a / 40 * {factor};"])


class Program:
    """The watched program's output lines, as (i, value, ticks)."""

    def __init__(self, w: Watcher):
        self.w = w
        self.last_i = -1

    def until(self, value, timeout: float = 10.0) -> tuple[int, int]:
        """Wait for a line whose value is value(i); it must not restart the count."""
        while True:
            m = line_matching(self.w, OUT, timeout)
            i, v, ticks = (int(g) for g in m.groups())
            assert i > self.last_i, f"the program restarted: {i} after {self.last_i}"
            self.last_i = i
            if v == value(i):
                return i, ticks


def summary(w: Watcher, pattern: str) -> str:
    m = line_matching(w, r"((?:built|updated|added|removed|line numbers|nothing|not |full "
                         r"build|program \().*)$")
    line = m.group(1)
    assert re.search(pattern, line), line
    return line


def same_as_clean_build(tmp_path: Path, text: str, inputs: tuple[str, ...] = ()) -> None:
    """The watched output behaves as a clean build of `text` (linked with `inputs`, absolute
    paths) does."""
    clean = tmp_path / "clean"  # the same file name, so that panic messages match too
    clean.mkdir(exist_ok=True)
    (clean / "src.toy").write_text(text)
    r = run([*TOYC, "build", "--full", "src.toy", *inputs, "-o", "prog"], cwd=clean)
    assert r.status == 0, r.stderr
    got = run([str(tmp_path / "prog"), "3"])
    want = run([str(clean / "prog"), "3"])
    assert (got.status, got.stdout, got.stderr) == (want.status, want.stdout, want.stderr)
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "prog")])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout + lint.stderr


@pytest.fixture
def start(tmp_path: Path):
    watchers, pids = [], []

    def start(text: str, *args: str) -> tuple[Watcher, Program, int]:
        (tmp_path / "src.toy").write_text(text)
        w = Watcher(tmp_path, "--run", *args)
        watchers.append(w)
        pid = int(summary(w, r"\(full build\).*; started pid \d+$").rsplit(" ", 1)[1])
        pids.append(pid)
        w.wait_watching()
        return w, Program(w), pid

    yield start
    for w in watchers:
        w.stop()
        assert w.proc.returncode == 0, w.drain_stderr()
    for pid in pids:  # the watch ended the program it ran
        assert not os.path.exists(f"/proc/{pid}"), f"pid {pid} outlived the watch"


def edit(tmp_path: Path, w: Watcher, text: str, pattern: str) -> str:
    save_in_place(tmp_path / "src.toy", text)
    return summary(w, pattern)


def test_edits_reach_the_running_program(tmp_path: Path, start):
    w, prog, pid = start(source())
    prog.until(lambda i: 2 * i)
    swapped = f"swapped into pid {pid}"

    text = source("return i * 3;")
    edit(tmp_path, w, text, rf"^updated f \(in place\);.*; {swapped}$")
    _, ticks = prog.until(lambda i: 3 * i)
    same_as_clean_build(tmp_path, text)

    for factor in (5, 7):  # moves (leaving a trampoline), then grows in its new place
        text = source(grown(factor))
        edit(tmp_path, w, text, rf"^updated f \((moved, trampoline|in place)\);.*; {swapped}$")
        prog.until(lambda i, k=factor: i * k)
        same_as_clean_build(tmp_path, text)

    # A new function, called from the edited one, printing a new string literal.
    extra = '\nfn g(x: int) -> int {\n    print("fresh", x);\n    return x * 11;\n}\n'
    text = source("return g(i) + 1;", extra=extra)
    edit(tmp_path, w, text, rf"^updated f .*added g;.*; {swapped}$")
    prog.until(lambda i: 11 * i + 1)
    line_matching(w, r"fresh \d+$")
    same_as_clean_build(tmp_path, text)

    # main is never left: its new body is for the next call; the loop goes on as it was.
    text = source("return g(i) + 1;", extra=extra, sleep=4)
    edit(tmp_path, w, text, rf"^updated main .*; {swapped}; main is running the old code")
    prog.until(lambda i: 11 * i + 1)
    same_as_clean_build(tmp_path, text)

    # A new initial value: the running value is kept, and the file has the new one.
    text = source("return g(i) + 1;", ticks=10**9, extra=extra, sleep=4)
    # (main's first body still runs, and every line says so until it returns: never.)
    old_main = "main is running the old code until it returns"
    edit(tmp_path, w, text, rf"^updated ticks \(in place\);.*; {swapped}; running value of "
         rf"ticks kept; {old_main}$")
    _, later = prog.until(lambda i: 11 * i + 1)
    assert ticks < later < 10**9
    same_as_clean_build(tmp_path, text)

    # Removing g while the old code could still call it; then back to a simple f.
    text = source("return i * 13;", ticks=10**9, sleep=4)
    edit(tmp_path, w, text, rf"^updated f .*removed g;.*; {swapped}; {old_main}$")
    prog.until(lambda i: 13 * i)
    same_as_clean_build(tmp_path, text)
    assert os.path.exists(f"/proc/{pid}")

    # What was kept for the running program is freed when the watch ends: the file then has
    # a clean build's symbols, and its saved state is good for the next `toyc build`.
    w.stop()
    assert w.proc.returncode == 0
    assert symbols(tmp_path / "prog") == symbols(tmp_path / "clean" / "prog")
    r = run([*TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.stdout.startswith("nothing changed"), r.stdout + r.stderr


def test_what_cannot_be_swapped_is_reported(tmp_path: Path, start):
    w, prog, pid = start(source())
    prog.until(lambda i: 2 * i)

    # main, which never returns, would go on indexing pair as an array of two.
    text = source(pair=3)
    why = "main is running and uses pair, which changed its type"
    edit(tmp_path, w, text, rf"^updated pair .*; not swapped: {why}; pid {pid} runs the "
         r"previous version \(--restart restarts it\)$")
    same_as_clean_build(tmp_path, text)
    # From then on the program is stale: later updates say so, and it is left alone.
    text = source("return i * 3;", pair=3)
    edit(tmp_path, w, text, rf"^updated f .*; not swapped: pid {pid} runs an older version "
         rf"\(since: {why}\)$")
    prog.until(lambda i: 2 * i)
    same_as_clean_build(tmp_path, text)


def test_a_full_rebuild_is_not_swapped(tmp_path: Path, start):
    w, prog, pid = start(source())
    prog.until(lambda i: 2 * i)
    os.utime(tmp_path / "prog", ns=(1, 1))  # someone else changed the output
    text = source("return i * 3;")
    save_in_place(tmp_path / "src.toy", text)
    summary(w, r"^full build: the output file was changed by something else$")
    summary(w, rf"\(full build\);.*; not swapped: the output was rebuilt from scratch; pid "
            rf"{pid} runs the previous version")
    prog.until(lambda i: 2 * i)
    same_as_clean_build(tmp_path, text)


def test_restart_when_a_change_cannot_be_swapped(tmp_path: Path, start):
    w, prog, pid = start(source(ticks=0), "--restart")
    prog.until(lambda i: 2 * i)
    text = source(ticks=500)  # from .bss.zig to .data.zig
    line = edit(tmp_path, w, text, rf"^updated ticks \(moved\);.*; not swapped: global ticks "
                rf"moved from \.bss\.zig to \.data\.zig; restarted: pid {pid} is now \d+$")
    new_pid = int(line.rsplit(" ", 1)[1])
    assert new_pid != pid and not os.path.exists(f"/proc/{pid}")
    i, _, ticks = (int(g) for g in line_matching(w, OUT).groups())
    assert ticks == 501 + i, (i, ticks)  # a fresh start, with the new initial value
    prog.last_i = i
    text = source("return i * 3;", ticks=500)
    edit(tmp_path, w, text, rf"^updated f \(in place\);.*; swapped into pid {new_pid}$")
    prog.until(lambda i: 3 * i)


def test_program_end_is_reported_and_the_next_update_starts_it(tmp_path: Path, start):
    w, prog, pid = start(source(), "--", "20")
    summary(w, rf"^program \(pid {pid}\) exited with status 0$")
    text = source("return 100 / (i - i);")  # divides by zero
    line = edit(tmp_path, w, text, r"^updated f .*; not swapped: the program "
                r"had ended; started pid \d+$")
    new_pid = int(line.rsplit(" ", 1)[1])
    summary(w, rf"^program \(pid {new_pid}\) exited with status 101$")
    w.stderr_line(r"^panic: division by zero at .*src\.toy:5:")


def test_program_arguments(tmp_path: Path, start):
    w, prog, pid = start(source(), "--", "3")
    summary(w, rf"^program \(pid {pid}\) exited with status 0$")
    assert [line for line in w.seen if line.startswith("out")] == \
        ["out 0 0 2", "out 1 2 3", "out 2 4 4"]


# ---- the decisions, with a stand-in for the running program ---------------------------------

class StoppedAt:
    """A process stand-in whose one thread is always stopped at `address`."""

    def __init__(self, address: int):
        self.pid = 1
        self.address = address
        self.writes = []

    def poll(self):
        return None

    def stop(self):
        regs = bytearray(27 * 8)
        struct.pack_into("<Q", regs, 16 * 8, self.address)
        return [Thread(1, bytes(regs), b"")]

    def resume(self):
        pass

    maps_ = [(0x4000000, 0x4100000, "rwxp"), (0xC000000, 0xC100000, "rw-p"),
             (0x10000000, 0x10100000, "rw-p"), (0x14000000, 0x14100000, "rw-p")]

    def maps(self):
        return self.maps_

    def write(self, writes):
        self.writes += writes


def session_with(tmp_path: Path, text: str) -> Session:
    (tmp_path / "p.toy").write_text(text)
    session, _ = Session.full_build(str(tmp_path / "p.toy"), str(tmp_path / "p"))
    return session


def test_a_thread_in_the_first_bytes_of_a_moving_function_blocks_the_swap(tmp_path: Path):
    session = session_with(tmp_path, source())
    zo = session.zo
    f_entry = zo.address(zo.navs["f"])
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(f_entry + 1)
    swap.attempted = False
    session.swap = swap
    session.update(source(grown(3)))
    assert swap.report() == ("not swapped: the running code could not be safely patched (a "
                             "thread stays in the first bytes of f); pid 1 runs the previous "
                             "version (--restart restarts it)")
    assert swap.process.writes == []


def test_code_a_thread_is_in_stays_until_released(tmp_path: Path):
    session = session_with(tmp_path, source())
    zo = session.zo
    f = zo.navs["f"]
    old = zo.address(f)
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(old + 8)  # inside f
    session.swap = swap
    session.update(source("return i * 3;"))
    assert swap.report() == "swapped into pid 1; f is running the old code until it returns"
    assert zo.address(f) != old
    jump = dict(swap.process.writes)[old]
    assert jump[0] == 0xE9 and int.from_bytes(jump[1:5], "little", signed=True) == \
        zo.address(f) - (old + 5)
    # The old body is not reused while the program runs; once it does not, it is free.
    held = [zo.atoms[r] for r, _ in zo.retired]
    assert [a.name for a in held] == ["f$old"] and held[0].size > 5
    session.swap = None
    session.release()
    assert zo.retired == [] and held[0].size == 5
    r = run([str(tmp_path / "p"), "2"])
    assert r.stdout == "out 0 0 2\nout 1 3 3\n"


THREADS = """\
fn work(x: int) -> int {{
    let s: int = 0;
    let j: int = 0;
    while j < 3000 {{
        s = s + x;
        j = j + 1;
    }}
    {result}
}}

fn spin(id: int) -> int {{
    let n: int = 0;
    while true {{
        let v: int = work(n);
        if n % 200 == 0 {{
            print("t", id, n, v);
        }}
        if n % 20 == 0 {{
            sleep_ms(1);  // leave the CPUs to toyc now and then
        }}
        n = n + 1;
    }}
    return 0;
}}

fn main() -> int {{
    let h: [int; 4];
    let k: int = 0;
    while k < 4 {{
        h[k] = spawn(spin, k);
        k = k + 1;
    }}
    return join(h[0]);
}}
"""


def test_threads_busy_in_the_edited_code(tmp_path: Path, start):
    """Four threads call `work` in a tight loop (and are inside it most of the time) while it
    is edited: no crash, no torn code, and every thread gets the new code."""
    w, prog, pid = start(THREADS.format(result="return s / 3000 * 2;"))
    results = ["return s / 3000 * 3;",  # same size
               "\n    ".join(["let a: int = s / 3000;", *["a = a * 3 - a - a;"] * 30,
                               "return a * 5;"]),
               "return s / 3000 * 7;"]
    for factor, result in zip((3, 5, 7), results, strict=True):
        text = THREADS.format(result=result)
        edit(tmp_path, w, text, rf"^updated work .*; swapped into pid {pid}")
        pending = {0, 1, 2, 3}
        while pending:  # every thread prints the new value
            m = line_matching(w, r"t (\d) (\d+) (-?\d+)$")
            tid, n, v = (int(g) for g in m.groups())
            if v == n * factor:
                pending.discard(tid)
    # The threads never leave spin: its new body is for the next thread that starts.
    text = THREADS.format(result=results[-1]).replace("n % 200", "n % 201")
    edit(tmp_path, w, text, rf"^updated spin .*; swapped into pid {pid}; spin is running the "
         "old code until it returns$")
    for _ in range(4):  # and the old loop goes on
        assert int(line_matching(w, r"t \d (\d+) ").group(1)) % 200 == 0
    assert not any(line.startswith("program (pid") for line in w.seen)
    assert os.path.exists(f"/proc/{pid}")


class NotTraceable(StoppedAt):
    def stop(self):
        raise PermissionError(1, "Operation not permitted")


def test_a_program_that_cannot_be_stopped_is_not_written(tmp_path: Path):
    session = session_with(tmp_path, source())
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = NotTraceable(0)
    session.swap = swap
    session.update(source("return i * 3;"))
    assert swap.report() == ("not swapped: cannot stop the program's threads (Operation not "
                             "permitted); pid 1 runs the previous version (--restart restarts "
                             "it)")
    assert swap.process.writes == []
    assert run([str(tmp_path / "p"), "2"]).stdout == "out 0 0 2\nout 1 3 3\n"


def test_memory_the_program_does_not_have_is_not_written(tmp_path: Path):
    session = session_with(tmp_path, source())
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(0)
    swap.process.maps_ = [(0x4000000, 0x4000004, "rwxp")]  # not even all of f
    session.swap = swap
    session.update(source("return i * 3;"))
    report = swap.report()
    assert re.fullmatch(r"not swapped: the program has no memory at 0x[0-9a-f]+ \(the section "
                        r"grew past what it mapped when it started\); pid 1 runs the previous "
                        r"version \(--restart restarts it\)", report), report
    assert swap.process.writes == []


def test_a_program_that_cannot_start_is_reported(tmp_path: Path):
    swap = HotSwap(str(tmp_path / "missing"), [], get_arch("x86_64").info)
    assert swap.start() == "cannot start the program (No such file or directory)"
    assert not swap.running()


def test_a_function_a_thread_is_in_keeps_its_code_when_it_becomes_a_global(tmp_path: Path):
    session = session_with(tmp_path, source())
    zo = session.zo
    old = zo.address(zo.navs["f"])
    size = zo.symbol_atom(zo.navs["f"]).size
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(old + 8)
    session.swap = swap
    text = source().replace("fn f(i: int) -> int {\n    return i * 2;\n}", "var f: int = 3;")
    session.update(text.replace("f(i)", "f"))
    assert swap.report() == "swapped into pid 1; f is running the old code until it returns"
    kept = [zo.atoms[r] for r, _ in zo.retired if zo.atoms[r].name == "f$old"]
    assert len(kept) == 1 and kept[0].alive and kept[0].size == size
    assert zo.atom_address(zo.retired[0][0]) == old
    session.swap = None
    session.release()
    assert not kept[0].alive
    assert run([str(tmp_path / "p"), "2"]).stdout == "out 0 3 2\nout 1 3 3\n"


def test_a_changed_thread_local_is_not_swapped(tmp_path: Path):
    text = "threadlocal var t: int = 1;\n" + source()
    session = session_with(tmp_path, text)
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(0)
    session.swap = swap
    session.update(text.replace("var t: int = 1;", "var t: int = 2;"))
    assert swap.report() == ("not swapped: thread-local t changed; pid 1 runs the previous "
                             "version (--restart restarts it)")
    assert swap.process.writes == []


def test_a_write_may_span_adjacent_mappings(tmp_path: Path):
    """A segment's file part and the zero-filled memory after it are two mappings; an update
    written across the boundary is still in the program's memory."""
    session = session_with(tmp_path, source())
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(0)
    f = session.zo.address(session.zo.navs["f"])
    swap.process.maps_ = [(0x4000000, f + 4, "rwxp"), (f + 4, 0x4100000, "rwxp")] + \
        StoppedAt.maps_[1:]
    session.swap = swap
    session.update(source("return i * 3;"))
    assert swap.report() == "swapped into pid 1"
    assert any(a <= f + 4 < a + len(d) for a, d in swap.process.writes)


def test_a_crash_is_reported_with_its_signal(tmp_path: Path, start):
    """Unbounded recursion overflows the stack: the kernel kills the program with SIGSEGV."""
    extra = "\nfn deep(n: int) -> int {\n    return deep(n + 1) + 1;\n}\n"
    w, prog, pid = start(source(extra=extra))
    prog.until(lambda i: 2 * i)
    edit(tmp_path, w, source("return deep(i);", extra=extra),
         rf"^updated f .*; swapped into pid {pid}$")
    summary(w, rf"^program \(pid {pid}\) killed by SIGSEGV")


def test_a_program_killed_during_a_patch(tmp_path: Path):
    """The program dies (SIGKILL) while it is stopped for a patch, before the write: the file
    is updated, the end is reported, not a failed write, and the next update starts it."""
    session = session_with(tmp_path, source())
    swap = HotSwap(str(tmp_path / "p"), ["1000000"], get_arch("x86_64").info)
    assert swap.start().startswith("started pid ")
    process = swap.process
    real_write = process.write

    def killed_first(writes):
        os.kill(process.pid, 9)
        # until it is gone (a zombie): SIGKILL takes effect asynchronously
        for _ in range(1000):
            stat = Path(f"/proc/{process.pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                break
            time.sleep(0.001)
        real_write(writes)

    process.write = killed_first
    session.swap = swap
    try:
        summary = session.update(source("return i * 3;"))
        assert "updated f (in place)" in summary.line()
        report = swap.report()
        assert re.fullmatch(r"not swapped: the program had ended \(killed by SIGKILL\); "
                            r"started pid \d+", report), report
        assert swap.running()
        assert run([str(tmp_path / "p"), "2"]).stdout == "out 0 0 2\nout 1 3 3\n"
    finally:
        swap.stop()
