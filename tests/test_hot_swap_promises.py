"""Hot swap keeps its promises where they are easiest to break.

Every line a watch prints must be true: `swapped` means the program runs the new version and
does not crash; `not swapped` says why and leaves the program running the old one. Here:
running code whose callee or global changed kind, signature or type; a global whose type
changed; a function still running its first body after several edits; memory the program does
not have; and a program that dies while its threads are attached for a patch, which the watch
must notice, reap and report, ending within a second of Ctrl-C.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import time
from pathlib import Path

from test_hot_swap import StoppedAt, same_as_clean_build, session_with, summary

from conftest import TOYC, run
from linker.hot_swap import HotSwap
from linker.process import WALL, Process, _ptrace
from toyc.plugins import get_arch
from watching import Watcher, line_matching, save_in_place

PTRACE_CONT = 7
SYS_TGKILL = 234  # x86_64

STEP = """\
fn fb(x: int) -> int {
    return x + 1;
}

fn step(i: int) {
    sleep_ms(20);
    print("W", i, fb(5));
}

fn main() -> int {
    let n: int = -1;
    if argc() > 1 { n = parse_int(argv(1)); }
    let i: int = 0;
    while i != n { step(i); i += 1; }
    return 0;
}
"""
AS_CONST = STEP.replace("fn fb(x: int) -> int {\n    return x + 1;\n}",
                        "const fb: int = 77;").replace("fb(5)", "fb")
AS_STR = STEP.replace("fn fb(x: int) -> int {\n    return x + 1;\n}",
                      'fn fb(s: str) -> int {\n    return len(s) * 10;\n}').replace(
                          "fb(5)", 'fb("abc")')
TWO_PARAMS = STEP.replace("fn fb(x: int) -> int {\n    return x + 1;\n}",
                          "fn fb(x: int, y: int) -> int {\n    return x * y;\n}").replace(
                              "fb(5)", "fb(5, 9)")


def watch(tmp_path: Path, text: str, *args: str) -> tuple[Watcher, int]:
    (tmp_path / "src.toy").write_text(text)
    w = Watcher(tmp_path, "--run", *args)
    line = summary(w, r"\(full build\).*; started pid \d+$")
    w.wait_watching()
    return w, int(line.rsplit(" ", 1)[1])


def values(w: Watcher, count: int = 5) -> list[str]:
    """The program's next `count` values (the third word of its `W` lines)."""
    return [line_matching(w, r"W \d+ (-?\d+)$").group(1) for _ in range(count)]


def ended_cleanly(w: Watcher, pid: int) -> None:
    assert not any(line.startswith("program (pid") for line in w.seen), w.seen
    assert os.path.exists(f"/proc/{pid}")
    w.stop()
    assert w.proc.returncode == 0, w.drain_stderr()


def test_old_code_never_calls_a_function_that_became_a_const(tmp_path: Path):
    """A thread sleeps inside `step` nearly all the time, and `step`'s running body calls
    `fb`: once `fb` is a const, that call would jump into data. The update is not swapped,
    the line says why, and the program goes on with the old version."""
    for text, what in ((AS_CONST, "changed from a function to a const"),
                       (AS_STR, "changed its signature"),
                       (TWO_PARAMS, "changed its signature")):
        work = tmp_path / str(len(list(tmp_path.iterdir())))
        work.mkdir()
        w, pid = watch(work, STEP)
        try:
            assert values(w, 2) == ["6", "6"]
            save_in_place(work / "src.toy", text)
            summary(w, rf"^updated fb .*; not swapped: step is running and uses fb, which "
                    rf"{what}; pid {pid} runs the previous version \(--restart restarts it\)$")
            assert values(w, 10) == ["6"] * 10
            same_as_clean_build(work, text)
            ended_cleanly(w, pid)
        finally:
            w.stop()


def test_with_restart_the_new_version_runs(tmp_path: Path):
    w, pid = watch(tmp_path, STEP, "--restart")
    try:
        values(w, 1)
        save_in_place(tmp_path / "src.toy", AS_CONST)
        line = summary(w, rf"^updated fb .*; not swapped: step is running and uses fb, which "
                       rf"changed from a function to a const; restarted: pid {pid} is now \d+$")
        new = int(line.rsplit(" ", 1)[1])
        assert "77" in values(w, 5)
        ended_cleanly(w, new)
    finally:
        w.stop()


SHOW = """\
var G: int = 5;

fn fb(x: int) -> int {
    return x + 1;
}

fn show(i: int) {
    print("W", i, fb(5) + G);
}

fn main() -> int {
    let n: int = -1;
    if argc() > 1 { n = parse_int(argv(1)); }
    let i: int = 0;
    while i != n { show(i); sleep_ms(10); i += 1; }
    return 0;
}
"""


def test_code_that_returns_soon_is_waited_for(tmp_path: Path):
    """The threads sleep in main, not in the users of what changed: they leave `show` at once,
    and the change of kind is swapped."""
    w, pid = watch(tmp_path, SHOW)
    try:
        assert values(w, 1) == ["11"]
        text = SHOW.replace("fn fb(x: int) -> int {\n    return x + 1;\n}",
                            "const fb: int = 70;").replace("fb(5)", "fb")
        save_in_place(tmp_path / "src.toy", text)
        summary(w, rf"^updated fb .*; swapped into pid {pid}$")
        for _ in range(50):
            if values(w, 1) == ["75"]:
                break
        assert values(w, 5) == ["75"] * 5
        ended_cleanly(w, pid)
    finally:
        w.stop()


def test_a_global_of_a_new_type_gets_its_new_value(tmp_path: Path):
    """A running value is kept only while the type is the same: an int read as a string's
    address would crash."""
    text = SHOW.replace("fb(5) + G", "G")
    w, pid = watch(tmp_path, text)
    try:
        assert values(w, 1) == ["5"]
        as_bool = text.replace("var G: int = 5;", "var G: bool = true;")
        save_in_place(tmp_path / "src.toy", as_bool)
        summary(w, rf"^updated G .*; swapped into pid {pid}; G set to its new initial value "
                r"\(a new type\)$")
        line_matching(w, r"W \d+ true$")
        same_as_clean_build(tmp_path, as_bool)
        as_str = text.replace("var G: int = 5;", 'var G: str = "hi";')
        save_in_place(tmp_path / "src.toy", as_str)
        summary(w, rf"^updated G .*; swapped into pid {pid}; G set to its new initial value "
                r"\(a new type\)$")
        line_matching(w, r"W \d+ hi$")
        # Another initializer of the same type: the running value is kept.
        save_in_place(tmp_path / "src.toy", as_str.replace('"hi"', '"ho"'))
        summary(w, rf"^updated G .*; swapped into pid {pid}; running value of G kept$")
        assert [line_matching(w, r"W \d+ (\w+)$").group(1) for _ in range(3)] == ["hi"] * 3
        ended_cleanly(w, pid)
    finally:
        w.stop()


def test_a_global_a_running_loop_reads_keeps_its_type(tmp_path: Path):
    text = STEP.replace('print("W", i, fb(5));', 'print("W", i, G);').replace(
        "fn main() -> int {\n", "fn main() -> int {\n    G = G + 1;\n") + "var G: int = 5;\n"
    w, pid = watch(tmp_path, text)
    try:
        values(w, 1)
        save_in_place(tmp_path / "src.toy", text.replace("G = G + 1;", "G = not G;").replace(
            "var G: int = 5;", "var G: bool = true;"))
        line = summary(w, rf"^updated .*G .*; not swapped: .*; pid {pid} runs the previous")
        for user in ("main", "step"):
            assert f"{user} is running and uses G, which changed its type" in line, line
        assert values(w, 3) == ["6"] * 3
        ended_cleanly(w, pid)
    finally:
        w.stop()


SPIN = """\
fn spin(id: int) -> int {
    let n: int = 0;
    while true {
        if n % 50 == 0 { print("S", id, n % 7); }
        sleep_ms(1);
        n += 1;
    }
    return 0;
}

fn main() -> int {
    let h = spawn(spin, 1);
    return join(h);
}
"""


def test_every_line_names_functions_still_running_an_old_body(tmp_path: Path):
    w, pid = watch(tmp_path, SPIN)
    try:
        for k, modulus in enumerate((8, 9, 10)):
            text = SPIN.replace("n % 7", f"n % {modulus}").replace(
                "sleep_ms(1);", "sleep_ms(1);" + " n += 0;" * k)
            save_in_place(tmp_path / "src.toy", text)
            summary(w, rf"^updated spin .*; swapped into pid {pid}; spin is running the old "
                    "code until it returns$")
        ended_cleanly(w, pid)
    finally:
        w.stop()


def test_the_first_byte_without_memory_is_named(tmp_path: Path):
    """The whole write need not be outside the program's memory: the line names the first
    byte that is."""
    session = session_with(tmp_path, "var small: int = 1;\n" + STEP)
    swap = HotSwap(str(tmp_path / "p"), [], get_arch("x86_64").info)
    swap.process = StoppedAt(0)
    session.swap = swap
    session.update("var small: int = 1;\nvar huge: [int; 1000000];\n" +
                   STEP.replace("fb(5)", "fb(5) + len(huge)"))
    report = swap.report()
    m = re.match(r"not swapped: the program has no memory at (0x[0-9a-f]+) ", report)
    assert m, report
    assert int(m.group(1), 16) == 0x14100000  # the end of .bss.zig's mapping in StoppedAt
    assert swap.process.writes == []


THREADED = """\
fn nap(id: int) -> int {
    while true { sleep_ms(5); }
    return id;
}

fn main() -> int {
    let a = spawn(nap, 1);
    let b = spawn(nap, 2);
    let c = spawn(nap, 3);
    return join(a) + join(b) + join(c);
}
"""


def threaded_process(tmp_path: Path) -> Process:
    (tmp_path / "t.toy").write_text(THREADED)
    assert run([*TOYC, "build", "t.toy", "-o", "t"], cwd=tmp_path).status == 0
    info = get_arch("x86_64").info
    p = Process.start(str(tmp_path / "t"), [], info.sp_offset)
    deadline = time.monotonic() + 5
    while len(os.listdir(f"/proc/{p.pid}/task")) < 4:
        assert time.monotonic() < deadline, "the threads never started"
        time.sleep(0.005)
    return p


def ended_within(p: Process, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while p.poll() is None:
        assert time.monotonic() < deadline, "the program's end was never seen"
        time.sleep(0.005)
    assert not os.path.exists(f"/proc/{p.pid}"), "a thread of it is left"
    return p.status


def test_a_fatal_signal_handed_back_leaves_no_thread_attached(tmp_path: Path):
    """A signal that arrived while the threads were being stopped is handed back when they are
    let go; a fatal one ends every thread at once, so any thread still attached then would be
    a zombie only toyc can reap, and the program's end would never be reported."""
    p = threaded_process(tmp_path)
    try:
        p.stop()
        # One thread, not the first, gets SIGSEGV while attached: it stops to deliver it.
        t = next(t for t in p.stopped if t.tid != p.pid)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL, p.pid, t.tid, signal.SIGSEGV) == 0
        _ptrace(PTRACE_CONT, t.tid)
        _, status = os.waitpid(t.tid, WALL)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSEGV
        t.signal = signal.SIGSEGV
        p.stopped.remove(t)
        p.stopped.insert(0, t)  # the first to be let go, in the order the threads were seized
        p.resume()
        assert os.WTERMSIG(ended_within(p, 2)) == signal.SIGSEGV
    finally:
        p.kill()


def test_a_program_killed_while_stopped_is_reaped(tmp_path: Path):
    p = threaded_process(tmp_path)
    try:
        p.stop()
        os.kill(p.pid, signal.SIGKILL)
        p.resume()
        assert os.WTERMSIG(ended_within(p, 2)) == signal.SIGKILL
    finally:
        p.kill()


def test_ctrl_c_ends_a_watch_at_once(tmp_path: Path):
    """With threads asleep in the code an update must not touch (not swapped), then Ctrl-C:
    the watch and its program are gone within a second."""
    text = STEP.replace("fn main() -> int {\n", "fn main() -> int {\n"
                        "    let t = spawn(loop, 1);\n    let u = spawn(loop, 2);\n")
    text += "fn loop(k: int) -> int {\n    while true { step(k); }\n    return 0;\n}\n"
    w, pid = watch(tmp_path, text)
    try:
        values(w, 3)
        save_in_place(tmp_path / "src.toy", text.replace(
            "fn fb(x: int) -> int {\n    return x + 1;\n}", "const fb: int = 77;").replace(
                "fb(5)", "fb"))
        summary(w, r"^updated fb .*; not swapped: ")
        values(w, 3)
        start = time.monotonic()
        w.proc.send_signal(signal.SIGINT)
        w.proc.wait(5)
        assert time.monotonic() - start < 1.0
        assert w.proc.returncode == 0, w.drain_stderr()
        assert not os.path.exists(f"/proc/{pid}")
    finally:
        w.stop()


def test_a_program_that_crashes_with_threads_is_reported(tmp_path: Path):
    """Signals that land while the watch may have the threads stopped, again and again: every
    end of the program is reported, and an update after it starts the program again."""
    def version(k: int) -> str:
        return THREADED.replace("sleep_ms(5);", "sleep_ms(1);").replace("return id;",
                                                                         f"return id + {k};")

    w, pid = watch(tmp_path, version(0))
    saves = 0
    try:
        for k in range(8):
            # Each save makes the watch stop the threads; the signal races that.
            saves += 1
            save_in_place(tmp_path / "src.toy", version(saves))
            time.sleep(0.002 * k)
            os.kill(pid, signal.SIGSEGV)
            # Its end is reported on a line of its own, or by the update's line if the update
            # came first and found it ended.
            update = killed = None
            while update is None or killed is None:
                line = summary(w, r"^(program \(pid \d+\) killed by SIGSEGV|updated nap)")
                if line.startswith("program"):
                    assert line.startswith(f"program (pid {pid}) "), line
                    killed = line
                else:
                    update = line
                    if "the program had ended (killed by SIGSEGV)" in line:
                        killed = line
            assert "cannot stop" not in update, update
            started = re.search(r"started pid (\d+)$", update)
            if started is None:  # updated before the signal landed: the next save starts it
                saves += 1
                save_in_place(tmp_path / "src.toy", version(saves))
                update = summary(w, r"^updated nap .*; not swapped: the program had ended"
                                 r"( \(killed by SIGSEGV\))?; started pid \d+$")
                started = re.search(r"started pid (\d+)$", update)
            pid = int(started.group(1))
        w.stop()
        assert w.proc.returncode == 0, w.drain_stderr()
        assert not os.path.exists(f"/proc/{pid}")
    finally:
        w.stop()
