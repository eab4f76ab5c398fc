"""`toyc watch`: keep an output up to date while its source is edited.

The source's directory is watched with watchfiles (inotify), not the file itself, so editors
that save by writing a new file and renaming it over the old one are seen too. Every batch of
changes to the file leads to one update and one line on stdout; a save with errors prints the
errors, says that nothing was written, and leaves the output and the session as they were, so
the next good save is compared with the last good one. Ctrl-C saves the state for the next
`toyc build` and exits with status 0. The linker inputs (objects, archives) are watched too:
one that changes means a full build, with the reason.

With `--run`, the program is started after the first build and every update is also written
into it while it runs (`linker/hot_swap.py`); the update's line says whether it was, and if
not, why. The program ending is reported when it happens, and the next good save starts it
again. The watch ends the program when it ends itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import signal
import sys
from pathlib import Path

import watchfiles

from linker.hot_swap import HotSwap
from toyc.inputs import input_paths
from toyc.interrupt import held
from toyc.plugins import get_arch
from toyc.session import Session, open_session
from toyc.source import CompileError, UserError

# After a change, how long to wait for more before updating. Short, for a fast loop; a save
# caught half-written is not reported (see `_settled`) and is followed by another change.
STEP_MS = 1


def _report(line: str) -> None:
    # One write, so that a running program's output sharing the terminal cannot split it.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# How often to look whether a running program has ended, while no file changes.
POLL_MS = 50


def watch(path: str, output: str, arch_name: str, run: list[str] | None = None,
          restart: bool = False, debug: bool = True, link=None) -> int:
    """Watch `path`; with `run` (the program's arguments), run the program and hot-swap."""
    src = Path(path).resolve()
    if not src.parent.is_dir():
        raise UserError(f"{path}: no such directory")
    # A terminal's Ctrl-C and a supervisor's SIGTERM both end the watch the same clean way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    swap = None
    if run is not None:
        info = get_arch(arch_name).info
        if info.name != platform.machine():
            # Hot swap stops the program's threads with ptrace and reads their registers: an
            # emulated program's threads are the emulator's.
            raise UserError(f"--run swaps code into a program running natively: this "
                            f"{platform.machine()} machine cannot run an {info.name} one "
                            "(watch without --run keeps the file up to date)")
        swap = HotSwap(output, run, info, restart)
    # What the last build or update read: a save is new if the file differs from it. The
    # linker inputs likewise, by size and time: an update after one changed is a full build,
    # and the next one waits for another change (a missing object is reported once).
    seen = _Seen(src)
    inputs = sorted({Path(p).resolve() for p in _input_files(path, link)})
    inputs_seen = [_stamp(p) for p in inputs]
    session = _start(path, output, arch_name, swap, debug, link)
    _warm_up(arch_name)
    # The command line turned the cycle collector off for a short build; a watch runs for
    # hours. What exists now lives as long as the watch: keep it out of the collector's way,
    # and collect the rest after each update, while waiting for the next save.
    gc.freeze()
    armed = False
    try:
        # Every POLL_MS without a change, the loop runs with no changes: to see whether the
        # program ended, and, the first time (the watcher is armed by then), whether the file
        # was saved during the first build, which no event reports.
        # The linker inputs' directories too: a rebuilt object means a full build.
        watched = {src, *inputs}
        dirs = sorted({src.parent} | {p.parent for p in inputs if p.parent.is_dir()})
        # (Not recursive: the files watched are in these directories, and a library's directory
        # holds a tree of thousands of others.)
        for changes in watchfiles.watch(*dirs, watch_filter=lambda _, p: Path(p) in watched,
                                        recursive=False,
                                        step=STEP_MS, debounce=1600,
                                        rust_timeout=POLL_MS, yield_on_timeout=True,
                                        raise_interrupt=True):
            if swap is not None and (ended := swap.exited()):
                _report(ended)
            if not src.exists():
                continue
            # On an event, or once armed, the bytes are compared too: an event may be for a
            # save an update has already read, and a save can keep the file's time.
            first, armed = not armed, True
            now = [_stamp(p) for p in inputs]
            if not seen.changed(compare=first or any(Path(p) == src for _, p in changes)) \
                    and now == inputs_seen:
                continue
            seen.read()
            inputs_seen = now
            if session is None:
                session = _start(path, output, arch_name, swap, debug, link)
                continue
            try:
                summary = session.update()
            except CompileError as e:
                if _stamp(src) != seen.stamp:
                    continue  # read while being written: the rest of the save is coming
                sys.stdout.flush()
                sys.stderr.write(e.render())
                n = len(e.diagnostics)
                _report(f"not updated: {n} error{'s' if n != 1 else ''}; {output} is unchanged")
                continue
            except UserError as e:
                _report(f"not updated: {e}; {output} is unchanged")
                continue
            if summary.full and summary.reason:
                _report(f"full build: {summary.reason}")
            note = swap.report() if swap is not None else ""
            _report(f"{summary.line()}; {note}" if note else summary.line())
            gc.collect()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut this short: the state saved must describe the output.
        # (Nor change the status: the watch was stopping anyway.)
        with contextlib.suppress(KeyboardInterrupt), held():
            if swap is not None:
                swap.stop()
            if session is not None:
                session.release()
                session.save_state()
    return 0


def _input_files(path: str, link) -> list[str]:
    """The files the link reads, as far as they can be found now."""
    if not link:
        return []
    try:
        return input_paths(link)
    except UserError:
        return [p for kind, p in link.items if kind == "file"]


class _Seen:
    """The source file as the last build or update read it: its size and time, and bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.read()

    def read(self) -> None:
        """Note the file as it is now, just before a build reads it."""
        self.stamp = _stamp(self.path)
        try:
            self.data = self.path.read_bytes()
        except OSError:
            self.data = None

    def changed(self, compare: bool) -> bool:
        """Whether the file differs from what was noted: by its size or time, or, with
        `compare`, by its bytes (a save within the file system's time granularity keeps the
        time)."""
        if _stamp(self.path) != self.stamp:
            return True
        if not compare:
            return False
        try:
            return self.path.read_bytes() != self.data
        except OSError:
            return self.data is not None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _warm_up(arch_name: str) -> None:
    """Build the parser and the assembler now, so that the first save is as fast as the rest."""
    from toyc.check import check
    from toyc.parse import parse_chunk
    from toyc.plugins import get_arch
    from toyc.source import Source
    from toyc.split import split

    text = "fn main() -> int { let a: [int; 2]; return a[1] / 1; }"
    decl, _ = parse_chunk(split(text)[0])
    program = check(Source("warm-up.toy", text), [decl])
    get_arch(arch_name).lower_function(decl, program)


def _start(path: str, output: str, arch_name: str, swap: HotSwap | None,
           debug: bool, link=None) -> Session | None:
    """The first build of a watch: incremental from a trusted state file, else full; then
    the program is started, with `--run`. None if the source has errors (the next good save
    builds)."""
    try:
        session, summary = open_session(path, output, arch_name, debug=debug, link=link)
    except CompileError as e:
        sys.stderr.write(e.render())
        _report(f"not built: {len(e.diagnostics)} error(s); waiting for a save")
        return None
    except UserError as e:
        if not os.path.exists(path):
            raise
        _report(f"not built: {e}; waiting for a save")
        return None
    if swap is not None:
        session.swap = swap
        session.release()  # nothing runs yet that could need what a previous run kept
        _report(f"{summary.line()}; {swap.start()}")
    else:
        _report(summary.line())
    return session
