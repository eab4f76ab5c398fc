"""The linker inputs of a command line (`toyc.link_args`): finding the libraries `-l` names,
reading the files (objects, archives, shared libraries and the GNU ld scripts that name them,
as the system's `libc.so` is one), resolving them with the Toy program (`linker.resolve`), and
what to check them against later. `resolve_inputs` reports a Toy extern that nothing defines
as a diagnostic at each use.

As gcc adds `-lc` to every link, a link with a shared library has the C library: if none of
the inputs is `-lc` (or names `libc.so.6`), it is added at the end.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from linker.archive import Archive, read_archive
from linker.elf_file import LinkError
from linker.input_object import ET_DYN, ObjectFile, elf_type, read_object
from linker.ld_script import file_kind, parse_script
from linker.resolve import TOY, Resolution, resolve
from linker.shared_object import read_shared_object
from toyc.check import Program
from toyc.link_args import LinkArgs, split_link_args  # noqa: F401  (the command line's)
from toyc.source import CompileError, Diagnostic, UserError

# Where gcc looks for `-l` after the -L directories (Debian's multiarch layout first).
SYSTEM_LIBRARY_DIRS = ("/usr/local/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                       "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib", "/usr/lib")
# Functions of the C library that C code often calls, or gcc makes it call
LIBC_NAMES = {"memcpy", "memmove", "memset", "memcmp", "strlen", "strcmp", "strcpy", "printf",
              "puts", "malloc", "free", "calloc", "realloc", "abort", "exit", "__stack_chk_fail"}
def find_library(name: str, dirs: list[str]) -> str:
    """The file `-l NAME` names: libNAME.so, else libNAME.a, in the -L directories and then
    the system's, as gcc looks."""
    for d in [*dirs, *SYSTEM_LIBRARY_DIRS]:
        for suffix in (".so", ".a"):
            path = os.path.join(d, f"lib{name}{suffix}")
            if os.path.isfile(path):
                return path
    raise UserError(f"-l{name}: no lib{name}.so or lib{name}.a in "
                    f"{', '.join([*dirs, *SYSTEM_LIBRARY_DIRS])}")


def input_paths(link: LinkArgs) -> list[str]:
    """Every file the link reads, in order, -l libraries found."""
    return [p if kind == "file" else find_library(p, link.dirs) for kind, p in link.items]


def file_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read(path: str) -> bytes:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{path}: is a directory")
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None


# A script naming a script naming a script...: GNU ld stops somewhere too
MAX_SCRIPT_DEPTH = 8


@dataclass
class Loaded:
    """The inputs as read: what `linker.resolve` takes, and every file read (scripts and the
    files they name included: a change to any of them changes the link)."""

    items: list = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        return any(isinstance(i, tuple) for i in _flat(self.items))


def _flat(items: list):
    for i in items:
        if isinstance(i, list):
            yield from _flat(i)
        else:
            yield i


def load_inputs(paths: list[str], arch, dirs: list[str] = ()) -> Loaded:
    out = Loaded()
    for path in paths:
        out.items += _load(path, arch, list(dirs), out, False, 0)
    return out


def _load(path: str, arch, dirs: list[str], out: Loaded, as_needed: bool, depth: int) -> list:
    info = arch.info
    data = _read(path)
    out.files.append(path)
    try:
        kind = file_kind(data, path)
        if kind == "archive":
            return [read_archive(data, path)]
        if kind == "elf":
            if elf_type(data, path, "an ELF file") == ET_DYN:
                if arch.dynamic is None:
                    raise LinkError(f"{path}: {info.name} does not link shared libraries")
                return [(read_shared_object(data, path, info.elf_machine, info.name),
                         as_needed)]
            return [read_object(data, path, info.elf_machine, info.name)]
        if depth == MAX_SCRIPT_DEPTH:
            raise LinkError(f"{path}: linker scripts name each other too deeply")
        script = _script(data, path, arch)
    except LinkError as e:
        raise UserError(str(e)) from None
    items: list = []
    groups: dict[int, list] = {}
    for inp in script.inputs:
        found = _script_input(inp, path, dirs)
        loaded = _load(found, arch, dirs, out, as_needed or inp.as_needed, depth + 1)
        if inp.group is None:
            items += loaded
        else:
            if inp.group not in groups:
                groups[inp.group] = []
                items.append(groups[inp.group])
            groups[inp.group] += loaded
    return items


def _script(data: bytes, path: str, arch):
    """`path` as a GNU ld script; one that does not start like one is not taken for a broken
    script in the message (`notes.o` holding text)."""
    try:
        return parse_script(data, path, arch.info.bfd_name or None)
    except LinkError as e:
        if data.lstrip().startswith((b"/*", b"GROUP", b"INPUT", b"OUTPUT_FORMAT")):
            raise
        raise LinkError(f"{path}: not an ELF object, archive, shared library or linker script "
                        f"(read as a script: {e})") from None


def _script_input(inp, script: str, dirs: list[str]) -> str:
    """The file a script's input names, where GNU ld looks for it: `-lNAME` as on the
    command line; a path with a directory as it is; a bare name in the script's directory,
    the current one, then the library directories."""
    if inp.library:
        return find_library(inp.name, dirs)
    if os.path.isabs(inp.name) or os.sep in inp.name:
        return inp.name
    for d in [os.path.dirname(script), ".", *dirs, *SYSTEM_LIBRARY_DIRS]:
        candidate = os.path.join(d, inp.name)
        if os.path.isfile(candidate):
            return candidate
    raise UserError(f"{script}:{inp.line}: cannot find {inp.name}")


def load_member(archive: Archive, index: int, arch) -> ObjectFile:
    member = archive.members[index]
    info = arch.info
    return read_object(member.data, f"{archive.path}({member.name})", info.elf_machine,
                       info.name)


def with_libc(paths: list[str], link: LinkArgs, loaded: Loaded, arch) -> Loaded:
    """`loaded`, and the C library after it when it links a shared library but not libc."""
    if not loaded.dynamic:
        return loaded
    for item in _flat(loaded.items):
        if isinstance(item, tuple) and item[0].soname.startswith("libc.so"):
            return loaded
    extra = load_inputs([find_library("c", link.dirs)], arch, link.dirs)
    return Loaded(loaded.items + extra.items, loaded.files + extra.files)


def resolve_inputs(program: Program, loaded: Loaded, arch) -> Resolution:
    """Read the inputs and resolve them with the program's exports and externs. A Toy extern
    that nothing defines is a diagnostic at each use; any other failure a UserError."""
    path = program.source.path
    # the entry point, which toyc's runtime defines (for "multiple definition of _start")
    toy_defs = {"_start": ("strong", "", "toyc's runtime (the entry point)", False)}
    for d in program.decls:
        for e in d.exports:
            toy_defs[e.name] = (e.linkage, d.name, f"{path}:{d.span.line}:{d.span.col}",
                                getattr(d, "threadlocal", False))
    toy_refs = {}
    for name, span in program.extern_uses:
        toy_refs.setdefault(name, f"{path}:{span.line}:{span.col}")
    try:
        res = resolve(toy_defs, toy_refs, loaded.items,
                      lambda archive, index: load_member(archive, index, arch))
    except LinkError as e:
        raise UserError(str(e)) from None
    undefined = res.undefined()
    toy_missing = [n for n in undefined if isinstance(res.refs[n], str)]
    if toy_missing:
        raise CompileError(program.source, [
            Diagnostic(span, f"undefined symbol: {name}") for name, span in program.extern_uses
            if name in toy_missing])
    if undefined:
        lines = [f"undefined symbol: {n} (referenced by {res.referrer(n)})" for n in undefined]
        if set(undefined) & LIBC_NAMES and not res.shared:
            lines.append("note: no C library is linked (-lc links it); gcc turns some loops "
                         "into calls of memcpy, memset or strlen")
        raise UserError("\n".join(lines))
    return res


def describe(res: Resolution, link: LinkArgs, paths: list[str], files: list[str]) -> dict:
    """What the ZigObject keeps of the inputs: the files (to notice a change), what was loaded
    from archives and why, and the global names C code defines or uses (a Toy export that
    changes among them changes the resolution)."""
    c_names = res.c_names()
    return {
        "args": link.spelled(),
        "paths": paths,  # as the command line's inputs name them
        "files": [[p, file_key(p)] for p in dict.fromkeys(files)],  # every file read
        "objects": [obj.name for obj in res.objects],
        "loaded": [[archive, member, name, who]
                   for _, archive, member, name, who in res.loaded],
        "c_names": sorted(c_names),
        "toy_defs": sorted(n for n, d in res.defs.items() if d.file == TOY and n in c_names),
        # the names archives define: a new extern one of them might define needs a full
        # build (which may load the member), not an import from a library
        "archive_names": sorted(res.archive_names),
        # the names the shared libraries refer to: a Toy export among them is theirs to call
        "lib_refs": sorted(res.shared_refs),
    }
