"""A running `toyc watch` for the tests, and the two ways editors save a file.

The watcher's stdout and stderr are read by threads into queues, so every wait is a wait for a
line, with a timeout, never a fixed sleep. `wait_watching` returns once the process has an
inotify watch (listed in /proc/PID/fdinfo), so that the next save cannot be missed.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import TOYC

TIMEOUT = 10.0


class Watcher:
    """A running `toyc watch`, its output lines in queues."""

    def __init__(self, cwd: Path, *args: str, command: list[str] | None = None):
        """`toyc watch src.toy -o prog ARGS` in `cwd`; `command` runs instead of `toyc`."""
        self.proc = subprocess.Popen([*(command or TOYC), "watch", "src.toy", "-o", "prog",
                                      *args], cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        self.seen_stderr: list[str] = []
        self.seen: list[str] = []  # stdout lines that line_matching read
        self.pumps = [threading.Thread(target=self._pump, args=(stream, q), daemon=True)
                      for stream, q in ((self.proc.stdout, self.stdout),
                                        (self.proc.stderr, self.stderr))]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream, q: queue.Queue) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))

    def line(self, timeout: float = TIMEOUT) -> str:
        """The next line on stdout."""
        try:
            return self.stdout.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line from toyc watch within {timeout} s; stderr so far:\n"
                        + "\n".join(self.drain_stderr()))

    def quiet(self) -> None:
        """No line is waiting: every save so far printed exactly one."""
        assert self.stdout.empty(), f"unexpected line: {self.stdout.get_nowait()!r}"

    def all_output(self, timeout: float = TIMEOUT) -> None:
        """Once the process has ended: until every line it wrote is in the queues."""
        for pump in self.pumps:
            pump.join(timeout)

    def drain_stderr(self) -> list[str]:
        while True:
            try:
                self.seen_stderr.append(self.stderr.get_nowait())
            except queue.Empty:
                return self.seen_stderr

    def stderr_line(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Wait for a line on stderr that matches `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.stderr.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no stderr line matching {pattern!r}: {self.seen_stderr}")
            self.seen_stderr.append(line)
            if re.search(pattern, line):
                return line

    def wait_watching(self, timeout: float = TIMEOUT) -> None:
        """Until the process has an inotify instance with a watch in it: from then on, a save
        queues an event even if the watcher is still busy."""
        deadline = time.monotonic() + timeout
        fds = Path(f"/proc/{self.proc.pid}/fd")
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "toyc watch exited"
            for fd in fds.iterdir():
                try:
                    if os.readlink(fd) != "anon_inode:inotify":
                        continue
                    if "inotify wd:" in (fds.parent / "fdinfo" / fd.name).read_text():
                        return
                except OSError:  # the fd was closed meanwhile
                    continue
            time.sleep(0.01)
        pytest.fail("toyc watch never started watching")

    def stop(self) -> None:
        """SIGTERM, as a supervisor would (the watch ends a program it runs); SIGKILL if it
        does not end."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def save_in_place(path: Path, text: str) -> None:
    """Overwrite the file in place with one write(2). Not with O_TRUNC: under load the watcher
    may read between the truncation and the write, see an empty program and rightly report
    errors. A shorter text is padded with blank lines to the old length instead."""
    data = text.encode()
    data += b"\n" * (path.stat().st_size - len(data))
    fd = os.open(path, os.O_WRONLY)
    try:
        assert os.write(fd, data) == len(data)
    finally:
        os.close(fd)


def save_by_rename(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def line_matching(w: Watcher, pattern: str, timeout: float = TIMEOUT) -> re.Match:
    """Wait for a stdout line that matches `pattern` (from its start), skipping others: a
    running program's output shares the stream with the watcher's lines."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            line = w.stdout.get(timeout=max(0.0, left))
        except queue.Empty:
            pytest.fail(f"no line matching {pattern!r} within {timeout} s; stderr:\n"
                        + "\n".join(w.drain_stderr()))
        w.seen.append(line)
        m = re.match(pattern, line)
        if m:
            return m
