"""samples/ncurses/snake.toy, a Toy program linked with the system's libncurses, on a terminal.

1. `test_snake_draws`: built with `-lc -lncurses` and run on a pseudo-terminal for a few
   frames, it draws its status line, ends at its frame limit with status 0 and restores the
   terminal (endwin leaves the alternate screen).
2. `test_snake_quits_on_q`: with no frame limit, a `q` typed on the terminal ends it.
3. `test_snake_hot_swap`: under `toyc watch --run` on a pseudo-terminal, an edit of its drawing
   function that changes the drawn text and calls an ncurses function the program never called
   is swapped into the running program, which then draws the new text; SIGINT (Ctrl-C's
   signal, sent to the watch alone) ends the watch with status 0 and the program with it,
   which restores the terminal on the SIGTERM it gets first.

The watch's own lines and the program's screen share one terminal, as they do for a user, so
both are read from the same stream.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import SAMPLES, TOYC
from watching import Watcher

TIMEOUT = 10.0
SNAKE = SAMPLES / "ncurses" / "snake.toy"
LIBS = ("-lc", "-lncurses")
STATUS = b" speed 1  frame 1  (q quits) "
# CSI sequences, character set selections, keypad modes and OSC strings: what ncurses writes
# around the text for TERM=xterm.
ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>]|\][^\x07]*\x07)")

pytestmark = pytest.mark.skipif(
    not Path("/usr/include/ncurses.h").exists(),
    reason="ncurses' link-time files are not installed (Debian: libncurses-dev; "
           "tests/install-tools.sh installs it)")


class Terminal:
    """A pseudo-terminal of 24 rows and 80 columns; a thread reads all that is written to it
    into `data`, so that a program writing a screen never blocks on a full terminal."""

    def __init__(self, rows: int = 24, cols: int = 80):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.data = bytearray()
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], cwd: Path | None = None) -> subprocess.Popen:
        """Run `cmd` with the terminal as its stdin, stdout and stderr."""
        env = {**os.environ, "TERM": "xterm"}
        # A session of its own: a Ctrl-C or window change on the terminal that runs the tests
        # is not for it.
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=self.slave, stdout=self.slave,
                                stderr=self.slave, start_new_session=True)
        # Only the child holds the slave now: when it (and what it started) ends, reading the
        # master fails with EIO, which ends the reader.
        os.close(self.slave)
        self.reader.start()
        self.procs.append(proc)
        return proc

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: no process has the slave open any more
                chunk = b""
            with self.cond:
                if not chunk:
                    self.cond.notify_all()
                    return
                self.data += chunk
                self.cond.notify_all()

    def wait_for(self, pattern: bytes, start: int = 0, timeout: float = TIMEOUT) -> re.Match:
        """The first match of `pattern` in what was written from offset `start` on, waiting
        for it to be written."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = regex.search(self.data, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or not self.reader.is_alive():
                    pytest.fail(f"no {pattern!r} on the terminal within {timeout} s; its "
                                f"text from offset {start}:\n{text(self.data[start:])}")
                self.cond.wait(left)

    def keys(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, proc: subprocess.Popen) -> int:
        """`proc`'s exit status, once it and all that writes to the terminal have ended."""
        try:
            status = proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {TIMEOUT} s; the terminal:\n{text(self.data)}")
        self.reader.join(TIMEOUT)
        return status

    def close(self) -> None:
        """End what still runs: a snake whose terminal is gone would never wait for a key."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.reader.join(TIMEOUT)
        os.close(self.master)


def text(data: bytes) -> str:
    return ESCAPES.sub(b"", bytes(data)).decode("utf-8", "replace")


@pytest.fixture
def snake(tmp_path: Path) -> Path:
    exe = tmp_path / "snake"
    p = subprocess.run([*TOYC, "build", str(SNAKE), *LIBS, "-o", str(exe)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return exe


@pytest.fixture
def term():
    t = Terminal()
    yield t
    t.close()


def test_snake_draws(snake: Path, term: Terminal):
    proc = term.start([str(snake), "5"])
    status = term.wait(proc)
    screen = text(term.data)
    assert status == 0, screen
    # The first frame paints the whole screen, so its status line is written as it is; later
    # frames send only the cells that changed (the frame number's digit).
    assert STATUS.decode() in screen, screen
    # endwin ran: the terminal is back from the alternate screen (xterm's rmcup).
    assert b"\x1b[?1049l" in term.data[term.data.index(STATUS):]


def test_snake_quits_on_q(snake: Path, term: Terminal):
    proc = term.start([str(snake)])
    term.wait_for(re.escape(STATUS))
    term.keys(b"q")
    assert term.wait(proc) == 0, text(term.data)


EDITS = [
    ('" speed 1 ', '" speed 2 '),
    # clear() makes the next refresh repaint the whole screen: without it ncurses would send
    # only the one cell that changed ("2"), and the new text would not be on the wire as such.
    # The program never called clear(): the update imports it from the running libncurses.
    ("    erase();\n", "    clear();\n"),
    ("extern fn erase() -> int;\n", "extern fn erase() -> int;\nextern fn clear() -> int;\n"),
]


def test_snake_hot_swap(tmp_path: Path, term: Terminal):
    src = tmp_path / "src.toy"
    shutil.copy(SNAKE, src)
    edited = src.read_text()
    for old, new in EDITS:
        assert edited.count(old) == 1, f"{old!r} is not once in {SNAKE}"
        edited = edited.replace(old, new)

    # The watch passes its terminal on to the program. A frame limit far beyond the test's
    # length, so that a program orphaned by a failed test still ends (at once when its
    # terminal is gone: getch no longer waits).
    watch = term.start([*TOYC, "watch", "src.toy", "-o", "prog", *LIBS, "--run", "--", "3000"],
                       cwd=tmp_path)
    pid = 0
    try:
        pid = int(term.wait_for(rb"\(full build\)[^\r\n]*; started pid (\d+)").group(1))
        term.wait_for(re.escape(STATUS))
        # (Watcher's check: from then on a save is seen even while the watch is busy.)
        watch_of(watch).wait_watching()

        mark = len(term.data)
        tmp = src.with_name("src.toy.swp")
        tmp.write_text(edited)
        os.replace(tmp, src)
        swapped = term.wait_for(rb"updated draw [^\r\n]*; swapped into pid %d\r?\n" % pid,
                                mark)
        # clear() repaints every frame from the update on, so whichever order the watch's
        # line and the next frame reached the terminal in, a later frame has the new text.
        term.wait_for(rb" speed 2  frame \d+  \(q quits\) ", swapped.end())

        watch.send_signal(signal.SIGINT)
        assert watch.wait(TIMEOUT) == 0, text(term.data[mark:])
        assert not os.path.exists(f"/proc/{pid}"), f"pid {pid} outlived the watch"
        # The watch ended the program with SIGTERM first: ncurses put the terminal back
        # (it leaves the alternate screen), as a user's own Ctrl-C would have let it.
        term.wait_for(rb"\x1b\[\?1049l", swapped.end())
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        if pid and os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)


def watch_of(proc: subprocess.Popen) -> Watcher:
    """A Watcher for `wait_watching`, which needs only the process."""
    w = Watcher.__new__(Watcher)
    w.proc = proc
    return w
