"""Hot swap: each update written into the running program as well as into the output file.

`toyc watch --run` keeps one `HotSwap`. It starts the program (`process.py`) after the first
build; around the linking of each update (`begin`, `finish`) it stops every thread of the
program, finds the code addresses the threads are executing or will return into (every word of
their registers and of their stacks that points into the code section: conservative, like a
garbage collector's stack scan, so no frame layout is assumed), hands them to the ZigObject as
a `Patch`, and, once the linker has written the file, writes the same bytes into the program
and lets it go on. The ZigObject keeps code that is in use intact (see `Patch`).

Not everything can be swapped. A global whose initializer changed keeps its running value (the
new one goes to the file: it is what the next start sees), unless its type changed. Code a
thread is in that uses a declaration whose kind, signature or type changed, a global of the
same type that changed section, a full rebuild of the output, memory the program does not
have, a new import from a shared library the program has not loaded (or a library's variable,
which a program gets a copy of when it starts), or a thread that stays in the first bytes of a
function that must move, mean that the
program is left running the previous version; it is then "stale" and no later update is
written into it, until it is restarted (`--restart` does that at once). `report` says, in one
clause for the summary line, which of these happened. toyc writes only into the process it started.

A dynamically linked program's GOT slots were filled by its dynamic loader: the file's zeros are
not written over them. A slot an update adds (a library function called for the first time) is
filled with the function's address in the running program (`library_addresses.py`: where the
library is loaded there, and, for an IFUNC, what its resolver chooses).
"""

from __future__ import annotations

import errno
import struct
import subprocess
import time

from linker import elf
from linker.input_object import STT_GNU_IFUNC
from linker.library_addresses import NotLoaded, symbol_address
from linker.process import Process, ProcessGone, describe_status
from linker.zig_object import Patch, ZigObject

# How long to wait for a thread to leave the first bytes of a function that must move.
ENTRY_RETRIES = 50
ENTRY_WAIT_S = 0.001


class HotSwap:
    def __init__(self, executable: str, args: list[str], arch_info, restart: bool = False):
        self.executable = executable
        self.args = args
        self.info = arch_info
        self.restart = restart
        self.process: Process | None = None
        self.stale = ""  # why the running program no longer matches the file
        self.stale_reported = False
        self.attempted = False  # whether the last update reached the linker
        self.result = ""  # what the last update did to the program

    # ---- the program's life -------------------------------------------------------------------

    def start(self) -> str:
        """Start the program; what happened, for a line."""
        try:
            self.process = Process.start(self.executable, self.args, self.info.sp_offset,
                                         self.info.byteorder)
        except (OSError, subprocess.SubprocessError) as e:
            self.process = None
            return f"cannot start the program ({getattr(e, 'strerror', None) or e})"
        self.stale = ""
        self.stale_reported = False
        return f"started pid {self.process.pid}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> str | None:
        """If the program ended since the last call: a line saying how (once)."""
        p = self.process
        if p is None or p.poll() is None:
            return None
        self.process = None
        return f"program (pid {p.pid}) {describe_status(p.status)}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None

    # ---- one update ---------------------------------------------------------------------------

    def begin(self, zo: ZigObject, functions: list[str], changes: dict[str, str]) -> None:
        """Before the linker runs: stop the program and give the ZigObject the patch to fill,
        if the program is running the version in the file. `functions` are the functions the
        update rewrites; `changes` the declarations whose kind, signature or type changed
        (name -> what changed): no thread may be in code built against their old version."""
        self.attempted = True
        self.result = ""
        if not self.running() or self.stale:
            zo.release_retired()
            return
        # Toy's code, and a linked object's (whose calls of Toy functions follow them)
        code = [(s.shdr.addr, s.shdr.addr + s.max_size) for s in zo.elf.sections
                if s.shdr.flags & elf.SHF_EXECINSTR and s.shdr.flags & elf.SHF_ALLOC]
        try:
            for _ in range(ENTRY_RETRIES):
                busy = self._code_addresses(self.process.stop(), code)
                waiting = zo.entry_busy(functions, busy)
                stale_users = zo.stale_users(changes, busy)
                if not waiting and not stale_users:
                    zo.patch = Patch(busy, changed=set(changes))
                    return
                self.process.resume()
                time.sleep(ENTRY_WAIT_S)
        except ProcessGone:
            zo.release_retired()
            return
        except OSError as e:  # ptrace refused (a seccomp or Yama policy, say)
            zo.release_retired()
            # A thread that is exiting cannot be attached either: if the program was ending,
            # its end is what to report.
            self._wait_gone(self.process, 0.2)
            if self.process.poll() is not None:
                return
            self.stale = f"cannot stop the program's threads ({e.strerror})"
            return
        if stale_users:
            # Old code would call a function with the wrong arguments, or read a global as
            # the wrong type: the program would crash or compute garbage.
            self.stale = "; ".join(f"{user} is running and uses {name}, which {changes[name]}"
                                   for user, name in stale_users)
        else:
            self.stale = (f"the running code could not be safely patched (a thread stays in "
                          f"the first bytes of {', '.join(waiting)})")
        zo.release_retired()

    def _code_addresses(self, threads, code: list[tuple[int, int]]) -> list[int]:
        """Every word of the threads' registers and stacks that points into one of the
        ranges [lo, hi) of `code`."""
        words = set()
        first, last = min(lo for lo, _ in code), max(hi for _, hi in code)
        for t in threads:
            for blob in (t.regs, t.stack):
                n = len(blob) // 8
                fmt = ("<" if self.info.byteorder == "little" else ">") + f"{n}Q"
                words.update(w for w in struct.unpack(fmt, blob[: n * 8])
                             if first <= w < last and any(lo <= w < hi for lo, hi in code))
        return sorted(words)

    def finish(self, zo: ZigObject) -> None:
        """After the linker wrote the file: write the same into the program, or say why not,
        and let it go on."""
        patch, zo.patch = zo.patch, None
        if patch is None:
            return
        p = self.process
        try:
            if patch.blockers:
                self.stale = "; ".join(patch.blockers)
            else:
                imports, missing = self._import_slots(zo)
                missing = missing or self._unmapped(patch.writes)
                if missing:
                    self.stale = missing
                else:
                    p.write(imports + patch.writes)
                    patch.running = list(dict.fromkeys(
                        [*patch.running, *zo.running_old_code(patch.busy)]))
                    self.result = self._applied(patch)
        except ProcessGone:
            pass
        except OSError as e:
            if e.errno == errno.ESRCH:  # killed while stopped: its end is what to report
                p.resume()
                self._wait_gone(p)
                return
            self.stale = f"writing into the program failed ({e.strerror or e})"
        finally:
            p.resume()

    def _import_slots(self, zo: ZigObject) -> tuple[list[tuple[int, bytes]], str]:
        """The writes that fill the GOT slots this update added with the imported functions'
        addresses in the program, or why they cannot be."""
        d = zo.dynamic
        if d is None or not d.new_slots:
            return [], ""
        info = self.info
        writes = []
        for slot, name in d.new_slots:
            imp = d.imports[d.by_name[name]]
            path = d.libraries[imp.library].path
            try:
                sym = d.library(imp.library, info.elf_machine, info.name).lookup(imp.name).symbol
                address = symbol_address(self.process.pid, path, imp.name, sym.value,
                                         sym.type == STT_GNU_IFUNC, sym.version)
            except NotLoaded as e:
                return [], f"{imp.name} cannot be found in the running program ({e})"
            writes.append((slot, address.to_bytes(8, info.byteorder)))
        return writes, ""

    @staticmethod
    def _wait_gone(p, seconds: float = 1.0) -> None:
        """Until the kernel has reaped a program that was killed (it is, in milliseconds)."""
        deadline = time.monotonic() + seconds
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)

    def cancel(self, zo: ZigObject, reason: str) -> None:
        """The update did not go through the linker as planned: leave the program as it is."""
        self.attempted = True
        if zo.patch is not None:
            zo.patch = None
            self.process.resume()
        if self.running():
            self.stale = reason

    def _unmapped(self, writes: list[tuple[int, bytes]]) -> str:
        # A segment whose memory reaches past its file part is two mappings, one after the
        # other: a write may span both. A read-only mapping counts too: a linked object's code
        # and read-only data are written through /proc/PID/mem (`Process.write`).
        maps: list[tuple[int, int]] = []
        for lo, hi, _ in sorted(self.process.maps()):
            if maps and maps[-1][1] == lo:
                maps[-1] = (maps[-1][0], hi)
            else:
                maps.append((lo, hi))
        for address, data in writes:
            end = address + len(data)
            at = address  # the first byte of the write that no mapping holds
            for lo, hi in maps:
                if lo <= at < hi:
                    at = hi
            if at < end:
                return (f"the program has no memory at {at:#x} (the section grew past what it "
                        f"mapped when it started)")
        return ""

    def _applied(self, patch: Patch) -> str:
        parts = [f"swapped into pid {self.process.pid}"]
        if patch.kept:
            parts.append(f"running value of {', '.join(patch.kept)} kept")
        if patch.reset:
            n = len(patch.reset)
            parts.append(f"{', '.join(patch.reset)} set to {'its' if n == 1 else 'their'} new "
                         "initial value (a new type)")
        if patch.running:
            verb = "is" if len(patch.running) == 1 else "are"
            parts.append(f"{', '.join(patch.running)} {verb} running the old code until "
                         "it returns")
        return "; ".join(parts)

    def report(self) -> str:
        """What the last update did to the program, as clauses for its summary line; restarts
        or starts the program if that is what is due."""
        if not self.attempted:
            return ""
        self.attempted = False
        if self.process is None or not self.running():
            how = ""
            if self.process is not None:
                how = f" ({describe_status(self.process.status)})"
            return f"not swapped: the program had ended{how}; {self.start()}"
        if self.stale:
            pid = self.process.pid
            if self.restart:
                reason = self.stale
                self.stop()
                started = self.start()
                if self.process is None:
                    return f"not swapped: {reason}; stopped pid {pid}; {started}"
                return f"not swapped: {reason}; restarted: pid {pid} is now {self.process.pid}"
            if self.stale_reported:
                return (f"not swapped: pid {pid} runs an older version (since: {self.stale})")
            self.stale_reported = True
            return (f"not swapped: {self.stale}; pid {pid} runs the previous version "
                    "(--restart restarts it)")
        return self.result
