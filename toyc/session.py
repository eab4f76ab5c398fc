"""One output file kept up to date: full builds, incremental updates and the state file.

A `Session` holds what the next update starts from: the declaration tracker (`track.py`) and
the linker's ZigObject. An update re-parses the declarations whose text changed, checks them
and, round by round, the declarations that use a name whose interface changed, lowers what was
checked, and hands the results to the linker through the backend hooks; declarations that only
moved to other lines get their line fields rewritten. Nothing touches the output until the
front end has accepted the whole update, so a save with errors changes nothing.

Between processes the session lives in a state file beside the output (`.NAME.toyc-state`), an
SQLite database (`state_store.py`) holding plain data: a format version, toyc's version, the
paths it belongs to, the size, time and inode of the output it describes, the tracker and the
linker. Anything that does not match leads to a full build, with the reason. The state is
marked pending before an update patches the output and saved after, writing only what the
update changed, so a crash in between leaves no state that could be trusted.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from linker.archive import archive
from linker.elf_file import ElfFile, LinkError
from linker.zig_object import ZigObject, global_section, size_hints
from toyc import __version__, state_store
from toyc import ast as A
from toyc.check import Program, check, export_names
from toyc.code import Code
from toyc.driver import (
    RUNTIME_IMPORTS_HINT,
    RUNTIME_RODATA_HINT,
    RUNTIME_TEXT_HINT,
    Timings,
    compile_all,
    lower_decl,
    parse_chunks,
    read_source,
)
from toyc.interrupt import held
from toyc.link_args import LinkArgs
from toyc.parse import parse_chunk
from toyc.plugins import Arch, get_arch, plugin_manager
from toyc.progress import Progress
from toyc.source import CompileError, Diagnostic, Source, UserError

if TYPE_CHECKING:  # (what linking with C needs is imported when a link has inputs)
    from linker.hot_swap import HotSwap
    from linker.resolve import Resolution
from toyc.split import Chunk
from toyc.track import Plan, Tracked, Tracker, Where, interface, stub

STATE_FORMAT = 5
# The state's long lists and how the store cuts them into pages (see state_store.py)
PAGED = {
    "tracker/decls": ("named", 32),
    "linker/atoms": ("fixed", 256),
    "linker/symbols": ("fixed", 256),
    "linker/targets": ("fixed", 512),
    "linker/slots": ("fixed", 2048),
    "linker/strtab": ("text", 1 << 15),
    "linker/dwarf/entries": ("named", 32),
    "history": ("each", 0),
}
HISTORY = 20  # builds and updates the state remembers
KEPT_SESSIONS = 2  # sessions the build server keeps in memory (each can take hundreds of MB)
# A state file far larger than its output could be is not read at all.
STATE_SIZE_FACTOR = 64
NO_OUTPUT = "no output file yet"
FULL_ASKED = "--full was given"
ARCHIVE_BUILD = "archives are built in full"


class FullBuildNeeded(Exception):
    """An incremental update cannot be made; the message says why."""


@dataclass
class Summary:
    """What one build or update did, for the one-line report."""

    full: bool
    outcomes: dict[str, str] = field(default_factory=dict)  # declaration -> what happened
    lines: int = 0  # declarations whose line numbers were patched (not regenerated)
    written: int = 0
    seconds: float = 0.0
    reason: str = ""  # why a full build was made

    @property
    def reason_matters(self) -> bool:
        """Whether the reason for a full build is news to the user (a first build is not)."""
        return self.reason not in ("", NO_OUTPUT, FULL_ASKED, ARCHIVE_BUILD)

    def line(self) -> str:
        took = f"{self.written} bytes written in {self.seconds * 1000:.1f} ms"
        if self.full:
            n = len(self.outcomes)
            return f"built {n} declaration{'s' if n != 1 else ''} (full build); {took}"
        groups: dict[str, list[str]] = {"new": [], "removed": []}
        updated = []
        for name, what in self.outcomes.items():
            if what in groups:
                groups[what].append(name)
            elif what not in ("unchanged", "lines"):
                updated.append(f"{name} ({what})")
        parts = []
        if updated:
            parts.append("updated " + ", ".join(updated))
        if groups["new"]:
            parts.append("added " + ", ".join(groups["new"]))
        if groups["removed"]:
            parts.append("removed " + ", ".join(groups["removed"]))
        if self.lines:
            n = self.lines
            parts.append(f"line numbers of {n} declaration{'s' if n != 1 else ''}")
        if not parts:
            parts.append("nothing changed")
        return f"{'; '.join(parts)}; {took}"


def state_path(output: str) -> Path:
    out = Path(output)
    return out.parent / f".{out.name}.toyc-state"


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def read_text(path: str) -> str:
    return read_source(path).text


def _kind(d: A.Decl) -> str:
    return "fn" if isinstance(d, A.FnDecl) else d.kind


def _record(d: A.Decl, code: Code, chunk: Chunk, program: Program,
            debug: bool) -> tuple[Tracked, Where]:
    # Debug info names every declaration's line: with it, each one has lines to keep true.
    has_lines = code is not None and (bool(code.line_fields) or debug)
    return (Tracked(d.name, _kind(d), chunk.col, interface(d),
                    sorted(program.deps.get(d.name, ())), has_lines, _exports(d)),
            Where(chunk.offset, chunk.offset + len(chunk.text), chunk.line))


_ARTICLE = {"fn": "a function", "extern fn": "an extern function"}


def contract_changes(tracker: Tracker, decls: list[A.Decl]) -> dict[str, str]:
    """The declarations among `decls` that code built against their previous version can no
    longer use as it was built to: a kind, a function's signature (its parameter types, its
    result type, or whether it is variadic: a call of a variadic extern is made differently)
    or a global's type changed (not a constant's value: code that holds the old one still
    runs correctly). Name -> what changed, for a line (`... uses fb, which changed its
    signature`)."""
    out = {}
    for d in decls:
        old = tracker.by_name.get(d.name)
        if old is None:
            continue
        new = interface(d)
        if old.iface[0] != new[0]:
            before, after = (_ARTICLE.get(k, f"a {k}") for k in (old.iface[0], new[0]))
            out[d.name] = f"changed from {before} to {after}"
        elif new[0].endswith("fn") and old.iface != new:
            out[d.name] = "changed its signature"
        elif not new[0].endswith("fn") and old.iface[1] != new[1]:
            out[d.name] = "changed its type"
    return out


def _exports(d: A.Decl) -> list[list[str]]:
    return [[e.name, e.linkage] for e in d.exports]


def _hand_over(hook, zo: ZigObject, d: A.Decl, code: Code | None, line: int,
               old_exports: list | None = None) -> None:
    """Give one lowered declaration to the backend, and its exports if they changed from
    `old_exports` (None: it had none). An extern has no code: whatever the name defined
    before goes; references to it stay (an object's linker resolves them)."""
    if code is None:
        hook.toyc_free_nav(linker=zo, name=d.name)
        return
    if isinstance(d, A.FnDecl):
        hook.toyc_update_func(linker=zo, name=d.name, code=code, line=line)
    else:
        hook.toyc_update_nav(linker=zo, name=d.name, code=code, const=d.kind == "const",
                             line=line, threadlocal=d.threadlocal)
    exports = _exports(d)
    old = old_exports or []
    if exports != old:
        names = {name for name, _ in exports}
        for name, _ in old:
            if name not in names:
                hook.toyc_delete_export(linker=zo, name=d.name, export=name)
        hook.toyc_update_exports(linker=zo, name=d.name,
                                 exports=[(name, linkage) for name, linkage in exports])


class Session:
    def __init__(self, path: str, output: str, arch: Arch, tracker: Tracker, zo: ZigObject,
                 output_stat: list[int], link: LinkArgs | None = None):
        self.path = path
        self.link = link or LinkArgs()  # the linker inputs given after the source
        self.output = output
        self.arch = arch
        self.tracker = tracker
        self.zo = zo
        self.output_stat = output_stat
        self.hooks = plugin_manager().hook
        self.swap: HotSwap | None = None  # the running program updates are written into too
        # the last builds and updates, newest last, for `toyc inspect`
        self.history: list[dict] = []
        self.snapshot: state_store.Snapshot | None = None  # the state file as last read or saved

    def record(self, summary: Summary) -> None:
        self.history = (self.history + [{
            "time": time.strftime("%Y-%m-%d %H:%M:%S"), "full": summary.full,
            "reason": summary.reason, "outcomes": dict(summary.outcomes),
            "lines": summary.lines, "written": summary.written,
            "summary": summary.line()}])[-HISTORY:]

    # ---- full builds --------------------------------------------------------------------------

    @classmethod
    def full_build(cls, path: str, output: str, arch_name: str = "x86_64",
                   timings: Timings | None = None, reason: str = "",
                   relocatable: bool = False, debug: bool = True,
                   link: LinkArgs | None = None) -> tuple[Session, Summary]:
        timings = timings or Timings()
        start = time.perf_counter()
        link = link or LinkArgs()
        arch = get_arch(arch_name)
        program, chunk_of, codes = compile_all(path, arch, timings, need_main=not relocatable)
        res, inputs = None, {}
        if link:
            from toyc.inputs import describe, input_paths, load_inputs, resolve_inputs, with_libc

            paths = input_paths(link)
            loaded = timings.run("read", lambda: with_libc(
                paths, link, load_inputs(paths, arch, link.dirs), arch))
            res = timings.run("resolve", resolve_inputs, program, loaded, arch)
            inputs = describe(res, link, paths, loaded.files)
        elif not relocatable:
            _no_externs(program)
        decls, text = program.decls, program.source.text
        _check_output(path, output)
        out = Path(output)
        directory = out.parent if str(out.parent) else Path(".")
        # What a build killed while writing left beside the output (there is one build of an
        # output at a time).
        for stale in directory.glob(f".{glob.escape(out.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
        except OSError as e:
            raise UserError(f"cannot write '{output}': {e.strerror or e}") from None
        try:
            try:
                timings.progress.step("linking", len(decls))
                zo = timings.run("link", _link_all, program, arch, decls, codes, chunk_of, fd,
                                 relocatable, debug, res, timings.progress)
                zo.inputs = inputs
            except LinkError as e:
                raise UserError(str(e)) from None
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, (0o666 if relocatable else 0o777) & ~umask)
            os.close(fd)
            fd = -1
            # Only now: a link that fails leaves the output, and the state that describes it,
            # as they were (the next build is an update from them).
            _remove_state(output)
            try:
                os.replace(tmp, out)
            except OSError as e:
                raise UserError(f"cannot write '{output}': {e.strerror or e}") from None
        finally:
            if fd >= 0:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
        records = [_record(d, code, chunk_of[id(d)], program, zo.dwarf is not None)
                   for d, code in zip(decls, codes, strict=True)]
        tracker = Tracker(text, [r for r, _ in records], [w for _, w in records])
        session = cls(path, output, arch, tracker, zo, _stat_key(output), link)
        summary = Summary(True, {d.name: "new" for d in decls}, written=zo.elf.bytes_written,
                          seconds=time.perf_counter() - start, reason=reason)
        session.record(summary)
        session.hooks.toyc_updated(source=path, output=output, summary=summary)
        return session, summary

    # ---- incremental updates ------------------------------------------------------------------

    def update(self, text: str | None = None) -> Summary:
        """Bring the output up to date with the source (re-read unless `text` is given).
        Raises CompileError, leaving everything as it was, if the new source has errors."""
        start = time.perf_counter()
        if text is None:
            text = read_text(self.path)
        try:
            if not os.path.exists(self.output):
                raise FullBuildNeeded("the output file is gone")
            if _stat_key(self.output) != self.output_stat:
                raise FullBuildNeeded("the output file was changed by something else")
            changed = self.inputs_changed()
            if changed:
                raise FullBuildNeeded(changed)
            summary = self._update(text, start)
            self.record(summary)
            self.hooks.toyc_updated(source=self.path, output=self.output, summary=summary)
        except FullBuildNeeded as e:
            if self.swap is not None and self.zo.patch is not None:
                # (the update had stopped the program to patch it: let it go on)
                self.swap.cancel(self.zo, "the output was rebuilt from scratch")
            stat, self.output_stat = self.output_stat, []  # the output is about to be replaced
            try:
                session, summary = Session.full_build(
                    self.path, self.output, self.arch.info.name, reason=str(e),
                    relocatable=self.zo.relocatable, debug=self.zo.dwarf is not None,
                    link=self.link)
            except (CompileError, UserError):
                # A full build that fails renames nothing over the output (say, a new extern
                # that nothing defines): if the update had not begun writing it either, the
                # output, and the program running it, are still what this session describes.
                self.output_stat = stat
                raise
            if self.swap is not None:
                self.swap.cancel(self.zo, "the output was rebuilt from scratch")
            session.swap = self.swap
            session.history = (self.history + session.history)[-HISTORY:]
            self.__dict__.update(session.__dict__)
        return summary

    def _update(self, text: str, start: float) -> Summary:
        tracker = self.tracker
        plan = tracker.plan(text)
        if plan is None:
            return Summary(False, seconds=time.perf_counter() - start)
        source = Source(self.path, text)
        window = tracker.decls[plan.first : plan.stop]
        kept = {tracker.decls[i].name for i in plan.same if i >= 0}
        decls, errors, unparsed, chunk_of = parse_chunks(plan.changed())
        new_names = {d.name for d in decls}
        gone = {d.name for d in window if d.name not in kept}  # old records being replaced
        removed = gone - new_names - unparsed
        # An unchanged declaration that a new one duplicates is checked again, so that the
        # error lands where a full build puts it: on the later of the two.
        again = {n for n in new_names if n in tracker.by_name and n not in gone}
        # Likewise an unchanged declaration exporting a name that a changed one exports.
        again |= {owner for d in decls for e in export_names(d)
                  if (owner := tracker.exported.get(e)) is not None
                  and owner not in new_names and owner not in gone}
        while True:
            more = [self._reparse(n, plan, source) for n in sorted(again)]
            for d, chunk in more:
                decls.append(d)
                chunk_of[id(d)] = chunk
            decls.sort(key=lambda d: (d.span.line, d.span.col))
            in_set = {d.name for d in decls} | unparsed

            def known(name: str, in_set=in_set) -> A.Decl | None:
                if name in in_set or name in gone:
                    return None
                t = tracker.by_name.get(name)
                return None if t is None else self._stub(t, plan)

            try:
                program, failed = check(source, decls, errors, unparsed, known,
                                        need_main=not self.zo.relocatable), None
            except CompileError as e:
                # Go on with the users of what changed, so that their errors are reported
                # too, as a full build would.
                program, failed = None, e
            touched = set(removed)
            for d in decls:
                old = tracker.by_name.get(d.name)
                if old is None or old.iface != interface(d):
                    touched.add(d.name)
            again = {u for n in touched for u in tracker.users.get(n, ())
                     if u not in in_set and u not in gone}
            if not again:
                if failed is not None:
                    raise failed
                if not self.zo.relocatable:
                    self._check_links(program, decls, removed)
                break
        codes = [lower_decl(d, program, self.arch) for d in decls]
        shifted = self._shifted(plan, {d.name for d in decls})
        changed_chunks = {id(c) for c in plan.changed()}
        records, rechecked = [], {}
        for d, code in zip(decls, codes, strict=True):
            chunk = chunk_of[id(d)]
            r, where = _record(d, code, chunk, program, self.zo.dwarf is not None)
            if id(chunk) in changed_chunks:
                records.append((r, where))
            else:
                rechecked[d.name] = r
        records.sort(key=lambda x: x[1].start)
        # From the first write of the output until the session describes what was written,
        # Ctrl-C waits (milliseconds): a watch that stops saves the session as the state.
        with held():
            summary = self._link(plan, decls, codes, chunk_of, removed, shifted,
                                 contract_changes(tracker, decls))
            shifted = tracker.commit(plan, records, rechecked)
            self.output_stat = _stat_key(self.output)
        if self.zo.dwarf is None:  # (with debug info, the linker patched and counted each)
            summary.lines += shifted
        summary.seconds = time.perf_counter() - start
        return summary

    def inputs_changed(self) -> str:
        """Why the linker inputs are no longer what the output was linked from ("" if they
        are): a file changed or is gone."""
        return _changed_file(self.zo.inputs.get("files", []))

    def _check_links(self, program: Program, decls: list[A.Decl], removed: set[str]) -> None:
        """Before anything is written: an update resolves as the last full build did. A new
        extern that the linked inputs do not define needs a full build (which may load an
        archive member for it, or reports it where it is used), as does a change among the
        Toy exports that C code defines or uses (one that appears, goes, changes its linkage,
        the declaration it names, or whether that is a thread-local, which C reaches through
        other instructions)."""
        inputs = self.zo.inputs
        if not inputs:
            _no_externs(program)
            return
        for name, _ in program.extern_uses:
            if name not in self.zo.linked:
                self._check_import(name)
        c_names = set(inputs.get("c_names", ())) | set(inputs.get("lib_refs", ()))
        gone = removed | {d.name for d in decls}
        tracker = self.tracker
        # An export named as a Toy extern is, or as an import, decides what the extern's uses
        # call (an export beats a library's definition): looked at from the exports' side,
        # which are few, not the program's.
        updated = {d.name: d for d in decls}

        def extern_name(name: str) -> bool:
            t = tracker.by_name.get(name)
            d = updated.get(name)
            return (t is not None and t.iface[0].startswith("extern")) or \
                (d is not None and d.is_extern)

        exported = set(tracker.exported) | {e for d in decls for e, _ in _exports(d)}
        c_names |= {n for n in exported if extern_name(n)}
        if self.zo.dynamic is not None:
            c_names |= self.zo.dynamic.by_name.keys()

        def exports(owner: str, pairs, iface: list) -> dict[str, tuple[str, str, bool]]:
            tls = "threadlocal" in iface[0]
            return {name: (owner, linkage, tls) for name, linkage in pairs if name in c_names}

        # Only the declarations that export a name C knows, or that this update hands over:
        # the work follows the change and the inputs, not the whole program.
        owners = {tracker.exported[n] for n in c_names & tracker.exported.keys()} | \
            {n for n in gone if n in tracker.by_name}
        old, new = {}, {}
        for name in owners:
            t = tracker.by_name[name]
            old.update(exports(t.name, t.exports, t.iface))
            if t.name not in gone:
                new.update(exports(t.name, t.exports, t.iface))
        for d in decls:
            new.update(exports(d.name, _exports(d), interface(d)))
        if old != new:
            names = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
            raise FullBuildNeeded(f"a Toy export that linked files define or use changed: "
                                  f"{', '.join(names)}")

    def _check_import(self, name: str) -> None:
        """A new extern `name`, which no linked object defines: an update imports it from a
        shared library if the last full build would have (no archive defines it), and if it
        is a function (a variable is copied when the program starts: a full build)."""
        d = self.zo.dynamic
        try:
            found = d is not None and name not in self.zo.inputs.get("archive_names", ()) \
                and d.lookup(self.zo, name)
        except LinkError as e:
            raise FullBuildNeeded(str(e)) from None
        if not found:
            raise FullBuildNeeded(f"{name} is a new extern, not defined by the objects "
                                  "linked in the last build")
        if not d.is_function(self.zo, name):
            raise FullBuildNeeded(f"{name} is a new extern naming a variable of "
                                  f"{d.libraries[found[0]].path}")

    def _position(self, t: Tracked, plan: Plan) -> tuple[int, int, int, int]:
        """Where unchanged declaration `t` is in the new text: (start, end, line, col)."""
        tracker = self.tracker
        for c, i in zip(plan.chunks, plan.same, strict=True):
            if i >= 0 and tracker.decls[i] is t:
                return c.offset, c.offset + len(c.text), c.line, c.col
        i = tracker.index(t)
        if i < plan.first:
            return tracker.starts[i], tracker.ends[i], tracker.lines[i], t.col
        return (tracker.starts[i] + plan.delta, tracker.ends[i] + plan.delta,
                tracker.lines[i] + plan.line_delta, t.col)

    def _stub(self, t: Tracked, plan: Plan) -> A.Decl:
        return stub(t, self._position(t, plan)[2])

    def _reparse(self, name: str, plan: Plan, source: Source) -> tuple[A.Decl, Chunk]:
        start, end, line, col = self._position(self.tracker.by_name[name], plan)
        chunk = Chunk(source.text[start:end], start, line, col)
        decl, errs = parse_chunk(chunk)
        if decl is None:  # it parsed before, with the same text
            raise AssertionError(f"unchanged declaration {name} no longer parses: {errs}")
        return decl, chunk

    def _shifted(self, plan: Plan, regenerated: set[str]) -> tuple[list[tuple[str, int]], bool]:
        """Unchanged declarations of the edited region with line fields that now start on
        another line, and whether any after the region has line fields (they all shift by
        `plan.line_delta`)."""
        tracker = self.tracker
        moved = []
        for c, i in zip(plan.chunks, plan.same, strict=True):
            if i >= 0:
                t = tracker.decls[i]
                if t.has_lines and tracker.lines[i] != c.line and t.name not in regenerated:
                    moved.append((t.name, c.line))
        below = bool(plan.line_delta) and any(tracker.flags[plan.stop :])
        return moved, below

    def _link(self, plan: Plan, decls: list[A.Decl], codes: list[Code], chunk_of: dict,
              removed: set[str], shifted: tuple[list[tuple[str, int]], bool],
              changes: dict[str, str]) -> Summary:
        try:
            fd = os.open(self.output, os.O_RDWR)
        except OSError as e:
            if e.errno == errno.ETXTBSY:
                raise FullBuildNeeded("the output file is being run") from None
            raise FullBuildNeeded(f"cannot open the output file: {e.strerror}") from None
        zo = self.zo
        zo.elf.fd = fd
        zo.elf.bytes_written = 0
        zo.outcome = {}
        state_store.mark_pending(state_path(self.output))
        # Until the update is done, the session describes no output: saved now, it would say
        # the old source made the new file.
        self.output_stat = []
        # While the update writes, the output cannot be run: if toyc dies half way, what is
        # left is clearly not a program to run (and, without a state file, the next build is
        # a full one).
        mode = os.fstat(fd).st_mode & 0o7777
        if mode & 0o111:
            os.fchmod(fd, mode & ~0o111)
        hook = self.hooks
        moved, below = shifted
        zo.lines_patched = set()
        if zo.dynamic is not None:
            zo.dynamic.begin_update()
        if self.swap is not None:
            self.swap.begin(zo, [d.name for d in decls if isinstance(d, A.FnDecl)], changes)
        try:
            for name in sorted(removed):
                hook.toyc_free_nav(linker=zo, name=name)
            if below:
                first = self.tracker.lines[plan.stop]
                hook.toyc_shift_lines(linker=zo, first=first, delta=plan.line_delta)
            for d, code in zip(decls, codes, strict=True):
                old = self.tracker.by_name.get(d.name)
                _hand_over(hook, zo, d, code, chunk_of[id(d)].line,
                           old.exports if old is not None and d.name not in removed else None)
            for name, line in moved:
                hook.toyc_update_line(linker=zo, name=name, line=line)
            hook.toyc_flush(linker=zo)
            os.fchmod(fd, mode)
        except LinkError as e:
            raise FullBuildNeeded(str(e)) from None
        finally:
            os.close(fd)
        if self.swap is not None:
            self.swap.finish(zo)
        outcomes = {n: zo.outcome[n] for n in zo.outcome}
        return Summary(False, outcomes, len(zo.lines_patched), zo.elf.bytes_written)

    def release(self) -> None:
        """No running program needs what updates kept for it: free that in the output."""
        if not self.zo.release_retired():
            return
        try:
            if _stat_key(self.output) != self.output_stat:
                raise OSError("the output file was changed by something else")
            fd = os.open(self.output, os.O_RDWR)
            try:
                self.zo.elf.fd = fd
                self.hooks.toyc_flush(linker=self.zo)
            finally:
                os.close(fd)
            self.output_stat = _stat_key(self.output)
        except (OSError, LinkError):
            # The layout no longer describes the file: a state saved now must not be trusted.
            self.output_stat = []

    # ---- the state file -----------------------------------------------------------------------

    def save_state(self) -> None:
        """Write the state beside the output, if the session describes the output (an update
        that did not finish leaves none, so the next build is a full one)."""
        if not self.output_stat:
            _remove_state(self.output)
            return
        state = {  # (the long lists are cut into pages as PAGED says)
            "format": STATE_FORMAT,
            "toyc": __version__,
            "arch": self.arch.info.name,
            "kind": self.kind,
            "debug": self.zo.dwarf is not None,
            "source": str(Path(self.path).resolve()),
            "output": str(Path(self.output).resolve()),
            "output_stat": self.output_stat,
            "tracker": self.tracker.state(),
            "linker": self.zo.state(),
            "history": self.history,
        }
        try:
            self.snapshot = state_store.save(state_path(self.output), state, PAGED,
                                             self.snapshot)
        except (OSError, state_store.sqlite3.Error) as e:
            self.snapshot = None
            _remove_state(self.output)
            print(f"toyc: warning: cannot save the build state: "
                  f"{getattr(e, 'strerror', None) or e}", file=sys.stderr)

    def current(self) -> bool:
        """Whether the session still describes the output and the state file beside it, as
        last saved (nothing else wrote either since)."""
        try:
            if not self.output_stat or _stat_key(self.output) != self.output_stat:
                return False
        except OSError:
            return False
        return self.snapshot is not None and \
            state_store.generation(state_path(self.output)) == self.snapshot.generation

    @property
    def kind(self) -> str:
        return "object" if self.zo.relocatable else "executable"

    @classmethod
    def load(cls, path: str, output: str, arch_name: str,
             kind: str = "executable", debug: bool = True,
             link: LinkArgs | None = None) -> Session:
        """The session a previous build left, or FullBuildNeeded saying why there is none."""
        target = state_path(output)
        if not os.path.exists(output):
            raise FullBuildNeeded(NO_OUTPUT)
        try:
            size = os.stat(target).st_size
            if size > STATE_SIZE_FACTOR * os.stat(output).st_size + (1 << 20):
                raise FullBuildNeeded(f"the state file is too large ({size} bytes)")
            state, snapshot = state_store.load(target, PAGED)
        except FileNotFoundError:
            raise FullBuildNeeded("no state from a previous build") from None
        except state_store.StateError as e:
            raise FullBuildNeeded(str(e)) from None
        except (OSError, ValueError) as e:
            raise FullBuildNeeded(f"the state file is unreadable ({e})") from None
        try:
            if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
                raise FullBuildNeeded("the state file has another format")
            if state.get("toyc") != __version__:
                raise FullBuildNeeded(f"the state file is from toyc {state.get('toyc')}")
            if state.get("arch") != arch_name:
                raise FullBuildNeeded(f"the state file is for {state.get('arch')}")
            if state.get("kind") != kind:
                raise FullBuildNeeded(f"the previous build made an {state.get('kind')}")
            if state.get("debug") != debug:
                raise FullBuildNeeded("the previous build was made " +
                                      ("with --strip" if debug else "with debug info"))
            if state.get("source") != str(Path(path).resolve()) or \
                    state.get("output") != str(Path(output).resolve()):
                raise FullBuildNeeded("the state file belongs to another source or output")
            named = state.get("linker", {}).get("source_path")
            if named != path:
                # Panic messages and the debug info hold the source's name as it was given,
                # as in a clean build: another spelling of the same file means other bytes.
                raise FullBuildNeeded(f"the source was named {named} in the last build, "
                                      f"now {path}")
            if state.get("output_stat") != _stat_key(output):
                raise FullBuildNeeded("the output file was changed since the last build")
            link = link or LinkArgs()
            _check_inputs(state.get("linker", {}).get("inputs") or {}, link)
            arch = get_arch(arch_name)
            tracker = Tracker.from_state(state["tracker"])
            zo = ZigObject.from_state(state["linker"], -1, arch)
            zo.check_layout(os.stat(output).st_size)
            session = cls(path, output, arch, tracker, zo, state["output_stat"], link)
            session.history = list(state["history"])
            session.snapshot = snapshot
            return session
        except FullBuildNeeded:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise FullBuildNeeded(f"the state file is corrupt ({type(e).__name__})") from None


def _check_inputs(inputs: dict, link: LinkArgs) -> None:
    """FullBuildNeeded unless the linker inputs are those of the last build, unchanged."""
    before = inputs.get("args", [])
    if before != link.spelled():
        raise FullBuildNeeded("the linker inputs changed (were: " + (" ".join(before) or "none")
                              + "; now: " + (" ".join(link.spelled()) or "none") + ")")
    if not link:
        return
    from toyc.inputs import input_paths

    paths = input_paths(link)
    files = inputs.get("files", [])
    if inputs.get("paths") != paths:
        raise FullBuildNeeded("the libraries -l finds changed: " + ", ".join(paths))
    changed = _changed_file(files)
    if changed:
        raise FullBuildNeeded(changed)


def _changed_file(files: list) -> str:
    for p, key in files:
        try:
            from toyc.inputs import file_key

            now = file_key(p)
        except OSError:
            return f"{p} is gone"
        if now != key:
            return f"{p} changed"
    return ""


def read_state(output: str) -> dict | None:
    """The state file beside `output` if it is intact (its digests match), else None."""
    return state_store.read(state_path(output), PAGED)


def _build_library(path: str, output: str, arch_name: str, timings: Timings | None,
                   debug: bool) -> Summary:
    """An archive with the object of `path` and an index of the symbols it defines, written
    beside `output` and renamed over it."""
    _check_output(path, output)
    out = Path(output)
    directory = out.parent if str(out.parent) else Path(".")
    member = Path(path).stem + ".o"
    fd, obj = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".o", dir=directory)
    os.close(fd)
    try:
        session, summary = Session.full_build(path, obj, arch_name, timings, ARCHIVE_BUILD,
                                              relocatable=True, debug=debug)
        data = Path(obj).read_bytes()
        tmp = Path(obj).with_suffix(".a")
        tmp.write_bytes(archive([(member, data, session.zo.defined_globals())]))
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"cannot write '{output}': {e.strerror or e}") from None
    finally:
        for leftover in (Path(obj), Path(obj).with_suffix(".a")):
            if leftover.exists():
                leftover.unlink()
    return summary


def _no_externs(program: Program) -> None:
    """An executable built by toyc alone has nothing that defines an extern: every use of one
    is an error where it is used."""
    if program.extern_uses:
        raise CompileError(program.source, [Diagnostic(span, f"undefined symbol: {name}")
                                            for name, span in program.extern_uses])


def _remove_state(output: str) -> None:
    state_store.remove(state_path(output))


def _check_output(path: str, output: str) -> None:
    out = Path(output)
    if out.exists() and out.resolve() == Path(path).resolve():
        raise UserError(f"output '{output}' would overwrite the source file")


def _link_all(program: Program, arch: Arch, decls: list[A.Decl], codes: list[Code],
              chunk_of: dict, fd: int, relocatable: bool = False,
              debug: bool = True, res: Resolution | None = None,
              progress: Progress | None = None) -> ZigObject:
    sizes: dict[str, list[tuple[int, int]]] = {"text": [], "rodata": [], "data": [], "bss": []}
    for d, code in zip(decls, codes, strict=True):
        if code is None or (isinstance(d, A.GlobalDecl) and d.threadlocal):
            continue  # an extern has no code; the TLS sections are sized as they come
        key = "text" if isinstance(d, A.FnDecl) else global_section(code, d.kind == "const")
        sizes[key].append((code.length, code.align))
    sizes["text"].append((RUNTIME_TEXT_HINT, 16))
    strings = {r.target.key for code in codes if code is not None for r in code.relocs
               if r.target.kind == "uav"}
    sizes["rodata"] += [(arch.lower_string(s).length, 8) for s in strings]
    sizes["rodata"].append((RUNTIME_RODATA_HINT, 8))
    dynamic, imports = None, 0
    if res is not None:
        from linker.dynamic import Dynamic, Library
        from linker.link_inputs import link_inputs
        from linker.resolve import SHARED
    if res is not None and res.shared:
        dynamic = Dynamic([Library(so.path, so.soname, as_needed)
                           for so, as_needed in res.shared])
        dynamic.loaded = {i: so for i, (so, _) in enumerate(res.shared)}
        imports = sum(1 for n in res.refs if n in res.defs and res.defs[n].file == SHARED)
    zo = ZigObject(ElfFile(fd, arch.info.page_size), arch, program.source.path,
                   size_hints(sizes), relocatable, debug, f"toyc {__version__}", dynamic,
                   imports + RUNTIME_IMPORTS_HINT)
    if res is not None:
        link_inputs(zo, res)
        if dynamic is not None:  # what the libraries call back by name, the executable has
            for name in sorted(res.shared_refs):
                d = res.defs.get(name)
                if d is not None and d.file != SHARED and not d.tls:
                    dynamic.export(name)
    hook = plugin_manager().hook
    for d, code in zip(decls, codes, strict=True):
        _hand_over(hook, zo, d, code, chunk_of[id(d)].line)
        if progress is not None:
            progress.advance()
    hook.toyc_flush(linker=zo)
    return zo


def open_session(path: str, output: str, arch_name: str = "x86_64", *, full: bool = False,
                 timings: Timings | None = None, relocatable: bool = False,
                 debug: bool = True, link: LinkArgs | None = None) -> tuple[Session, Summary]:
    """Bring `output` (an executable, or an object) up to date: incrementally from the state
    file if it can be trusted, else from scratch."""
    _check_output(path, output)
    reason = FULL_ASKED
    if not full:
        try:
            session = Session.load(path, output, arch_name,
                                   "object" if relocatable else "executable", debug, link)
        except FullBuildNeeded as e:
            reason = str(e)
        else:
            return session, session.update()
    return Session.full_build(path, output, arch_name, timings, reason,
                              relocatable=relocatable, debug=debug, link=link)


def build(path: str, output: str, arch_name: str = "x86_64", *, full: bool = False,
          timings: Timings | None = None, relocatable: bool = False,
          library: bool = False, debug: bool = True, link: LinkArgs | None = None,
          kept: dict | None = None) -> Summary:
    """`toyc build`: `open_session`, then save the state for the next build. An archive
    (`--lib`) is built in full every time, and keeps no state. In the build server, `kept`
    holds the last sessions: one made by the same command in the same directory, that still
    describes the output and the state file, is updated without reading the state."""
    if link and (relocatable or library):
        raise UserError(f"linker inputs ({' '.join(link.spelled())}) cannot be given with "
                        f"{'-c' if relocatable else '--lib'}: an object is linked later, by "
                        "the system linker")
    if library:
        return _build_library(path, output, arch_name, timings, debug)
    key = (os.getcwd(), path, output, arch_name, relocatable, debug,
           tuple((link or LinkArgs()).spelled()))
    session = kept.pop(key, None) if kept is not None else None
    if session is not None and not full and session.current():
        try:
            summary = session.update()
        except CompileError:
            kept[key] = session  # (an update with errors leaves the session as it was)
            raise
    else:
        session, summary = open_session(path, output, arch_name, full=full, timings=timings,
                                        relocatable=relocatable, debug=debug, link=link)
    session.save_state()
    if kept is not None and session.current():
        kept[key] = session
        while len(kept) > KEPT_SESSIONS:
            del kept[next(iter(kept))]  # the least recently used
    return summary
