"""A program toyc started and may patch while it runs (Linux only).

The program runs from a private copy of the output (written beside it, started, and removed at
once; it keeps the output's name, which `ps` shows), so the output file stays writable and
toyc's later writes to it never show through into the running program's pages: only what
`write` puts there changes the running program. It is killed if toyc dies
(PR_SET_PDEATHSIG), so that no program toyc started outlives it.

`stop` attaches to every thread with ptrace (PTRACE_SEIZE, then PTRACE_INTERRUPT, listing
/proc/PID/task again until no new thread appears, so a thread created meanwhile is caught too)
and returns each thread's register set (NT_PRSTATUS, as the kernel lays it out) and the words
of its stack from the stack pointer up. `write` puts bytes into the program's memory with
process_vm_writev, as the seed does; `resume` detaches, handing back any signal that arrived
while the threads were stopped. Between updates the program runs untraced, so its signals,
terminal and exit behave as if toyc were not there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.process_vm_writev.restype = ctypes.c_ssize_t
_libc.process_vm_readv.restype = ctypes.c_ssize_t

PR_SET_PDEATHSIG = 1
PTRACE_DETACH = 17
PTRACE_GETREGSET = 0x4204
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
NT_PRSTATUS = 1
WALL = 0x40000000
IOV_MAX = 1024
REGS_MAX = 4096  # larger than any architecture's NT_PRSTATUS register set
EXIT_WAIT_S = 0.05  # how long a thread that refuses ptrace may take to finish exiting
STOP_TIMEOUT_S = 2.0  # a thread that PTRACE_INTERRUPT has not stopped by then is not stoppable
TERM_GRACE_S = 0.5  # how long `Process.kill` lets a program end on SIGTERM before SIGKILL


class ProcessGone(Exception):
    """The program ended; `Process.status` says how."""


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


@dataclass
class Thread:
    tid: int
    regs: bytes  # the NT_PRSTATUS register set
    stack: bytes  # from the stack pointer to the end of the mapping holding it
    signal: int = 0  # a signal that arrived while stopped, to hand back on resume


def describe_status(status: int) -> str:
    """'exited with status N' or 'killed by SIGNAME', from a wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        core = " (core dumped)" if os.WCOREDUMP(status) else ""
        return f"killed by {name}{core}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    rc = _libc.ptrace(request, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if rc == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


class Process:
    """A child process running a copy of an executable."""

    def __init__(self, popen: subprocess.Popen, sp_offset: int, byteorder: str = "little"):
        self.popen = popen  # kept, so that subprocess does not reap the program behind our back
        self.pid = popen.pid
        self.sp_offset = sp_offset  # where the stack pointer is in the register set
        self.word = "<Q" if byteorder == "little" else ">Q"
        self.status: int | None = None  # the wait status, once it has ended
        self.stopped: list[Thread] = []
        # Threads that died while attached: only their tracer (toyc) can reap them, and until
        # it does, the kernel does not report the program's end.
        self.traced_dead: set[int] = set()

    @classmethod
    def start(cls, executable: str, args: list[str], sp_offset: int,
              byteorder: str = "little") -> Process:
        """Run a private copy of `executable` with `args` (argv[0] is `executable`)."""
        out = Path(executable)
        parent = os.getpid()
        prctl = _libc.prctl

        def die_with_parent() -> None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # toyc died before that took effect
                os._exit(1)

        # Beside the output, not in /tmp, which may be mounted noexec.
        private = tempfile.mkdtemp(prefix=f".{out.name}.run-", dir=out.parent)
        try:
            copy = Path(private) / out.name
            shutil.copyfile(out, copy)
            os.chmod(copy, 0o700)
            # Popen returns once the program runs (or failed to start), so the copy can go.
            popen = subprocess.Popen([executable, *args], executable=copy, close_fds=False,
                                     preexec_fn=die_with_parent)
        finally:
            shutil.rmtree(private, ignore_errors=True)
        return cls(popen, sp_offset, byteorder)

    def _ended(self, status: int) -> None:
        self.status = status
        self.popen.returncode = os.waitstatus_to_exitcode(status)

    # ---- life and death -----------------------------------------------------------------------

    def poll(self) -> int | None:
        """The wait status if the program has ended (reaping it), else None."""
        if self.status is None:
            self._reap_traced()
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.status
            if pid:
                self._ended(status)
        return self.status

    def _reap_traced(self) -> None:
        for tid in list(self.traced_dead):
            if self.status is not None or self._reaped(tid):
                self.traced_dead.discard(tid)

    def kill(self, seconds: float = 1.0) -> None:
        """End it: SIGTERM first, so that it can put back what it changed outside itself (a
        curses program, the terminal's modes), then SIGKILL if it is still there after
        TERM_GRACE_S; wait until it has ended (at most `seconds` more)."""
        if self.poll() is not None:
            return
        if self.stopped:
            self.resume()
        for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, seconds)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            if self.poll() is not None:
                return

    # ---- stopping and resuming ----------------------------------------------------------------

    def _tids(self) -> set[int]:
        try:
            return {int(t) for t in os.listdir(f"/proc/{self.pid}/task")}
        except (FileNotFoundError, ProcessLookupError):
            self.poll()
            raise ProcessGone from None

    def stop(self) -> list[Thread]:
        """Stop every thread; their registers and stacks. Raises ProcessGone."""
        if self.poll() is not None:
            raise ProcessGone
        seized: dict[int, int] = {}  # tid -> pending signal
        ended: set[int] = set()  # threads that ended before they could be seized
        try:
            while True:
                # (an ended thread may stay listed, as a zombie, while others run)
                new = self._tids() - seized.keys() - ended
                if not new:
                    break
                for tid in sorted(new):
                    try:
                        _ptrace(PTRACE_SEIZE, tid)
                    except OSError as e:
                        if e.errno == errno.ESRCH or self._exiting(tid):
                            # the thread ended meanwhile (an exiting one: EPERM); if it
                            # was the program's end, there is nothing to stop
                            ended.add(tid)
                            if tid == self.pid and self.poll() is not None:
                                raise ProcessGone from None
                            continue
                        raise  # not allowed to trace: nothing may be written then
                    seized[tid] = 0  # attached: whatever happens next, detach it
                    try:
                        _ptrace(PTRACE_INTERRUPT, tid)
                    except OSError as e:
                        if e.errno != errno.ESRCH:
                            raise
                    seized[tid] = self._wait_stop(tid, seized)
                seized = {t: s for t, s in seized.items() if s >= 0}
            threads = [Thread(tid, self._regs(tid), b"", sig) for tid, sig in seized.items()]
        except BaseException:
            self.stopped = [Thread(t, b"", b"", s) for t, s in seized.items() if s >= 0]
            self.resume()
            raise
        maps = self.maps()
        for t in threads:
            sp = struct.unpack_from(self.word, t.regs, self.sp_offset)[0]
            for lo, hi, _ in maps:
                if lo <= sp < hi:
                    t.stack = self.read(sp & ~7, hi - (sp & ~7))
                    break
        self.stopped = threads
        return threads

    def _wait_stop(self, tid: int, seized: dict[int, int]) -> int:
        """Wait until seized thread `tid` stops: the signal it stopped with (0 for our
        interrupt), or -1 if it ended instead. Threads seized before it that die meanwhile
        are reaped (their entry in `seized` becomes -1): the end of the program, which a
        wait for the first thread reports, waits for that."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        tries = 0
        while True:
            try:
                pid, status = os.waitpid(tid, WALL | os.WNOHANG)
            except ChildProcessError:
                return -1
            if not pid:
                for other, sig in seized.items():
                    if other != tid and sig >= 0 and self._reaped(other):
                        seized[other] = -1
                        if other == self.pid:
                            raise ProcessGone
                if time.monotonic() > deadline:
                    raise OSError(errno.ETIMEDOUT, "a thread did not stop")
                tries += 1
                time.sleep(0 if tries < 100 else 0.0002)
                continue
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                if tid == self.pid:
                    self._ended(status)
                    raise ProcessGone
                return -1
            if os.WIFSTOPPED(status):
                if status >> 16 == PTRACE_EVENT_STOP:
                    return 0
                return os.WSTOPSIG(status)  # a signal arrived first; it is handed back later

    def _exiting(self, tid: int) -> bool:
        """Whether thread `tid` refused to be attached because it is exiting: the kernel says
        EPERM then, as it does when tracing is not allowed. An exiting thread is gone (or a
        zombie) within milliseconds; a live one stays."""
        deadline = time.monotonic() + EXIT_WAIT_S
        while True:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return True
            if state in ("Z", "X", "x"):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)

    def _reaped(self, tid: int) -> bool:
        """Whether attached thread `tid` had ended, and is now reaped (a stopped one has no
        new event to report, so this takes nothing from a live thread)."""
        try:
            pid, status = os.waitpid(tid, WALL | os.WNOHANG)
        except ChildProcessError:
            return True
        if pid and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
            if tid == self.pid:
                self._ended(status)
            return True
        return False

    def _regs(self, tid: int) -> bytes:
        buf = ctypes.create_string_buffer(REGS_MAX)
        iov = _Iovec(ctypes.cast(buf, ctypes.c_void_p), REGS_MAX)
        _ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, ctypes.addressof(iov))
        return buf.raw[: iov.len]

    def resume(self) -> None:
        # Threads with a signal to hand back go last: a fatal one ends every thread at once,
        # and a thread still attached then would be left for toyc to reap.
        for t in sorted(self.stopped, key=lambda t: t.signal != 0):
            try:
                _ptrace(PTRACE_DETACH, t.tid, 0, t.signal)
            except OSError:
                self.traced_dead.add(t.tid)  # killed while stopped (SIGKILL, say)
        self.stopped = []
        self._reap_traced()

    # ---- memory -------------------------------------------------------------------------------

    def maps(self) -> list[tuple[int, int, str]]:
        """The program's mappings: (start, end, permissions)."""
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessGone from None
        out = []
        for line in lines:
            span, perms = line.split()[:2]
            lo, hi = span.split("-")
            out.append((int(lo, 16), int(hi, 16), perms))
        return out

    def read(self, address: int, size: int) -> bytes:
        buf = ctypes.create_string_buffer(size)
        local = _Iovec(ctypes.cast(buf, ctypes.c_void_p), size)
        remote = _Iovec(address, size)
        n = _libc.process_vm_readv(self.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        return buf.raw[: max(n, 0)]

    def write(self, writes: list[tuple[int, bytes]]) -> None:
        """Put each (address, bytes) into the program's memory. Raises OSError if any part
        could not be written."""
        for start in range(0, len(writes), IOV_MAX):
            batch = writes[start : start + IOV_MAX]
            keep = [ctypes.create_string_buffer(data, len(data)) for _, data in batch]
            local = (_Iovec * len(batch))(*[_Iovec(ctypes.cast(b, ctypes.c_void_p), len(d))
                                            for b, (_, d) in zip(keep, batch, strict=True)])
            remote = (_Iovec * len(batch))(*[_Iovec(a, len(d)) for a, d in batch])
            total = sum(len(d) for _, d in batch)
            n = _libc.process_vm_writev(self.pid, local, len(batch), remote, len(batch), 0)
            if n != total:
                err = ctypes.get_errno() if n < 0 else 0
                self._write_forced(batch, OSError(
                    err, os.strerror(err) if err else f"wrote {n} of {total} bytes"))

    def _write_forced(self, batch: list[tuple[int, bytes]], error: OSError) -> None:
        """Write through /proc/PID/mem what process_vm_writev could not: read-only pages
        (a linked object's code and read-only data, whose references to Toy's declarations
        follow them) take writes that way from the process's tracer, as a debugger's
        breakpoints do. Raises `error` if that fails too."""
        try:
            fd = os.open(f"/proc/{self.pid}/mem", os.O_RDWR)
        except OSError:
            raise error from None
        try:
            for address, data in batch:
                if os.pwrite(fd, data, address) != len(data):
                    raise error
        except OSError:
            raise error from None
        finally:
            os.close(fd)
