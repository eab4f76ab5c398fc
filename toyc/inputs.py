"""The linker inputs of a command line: files, `-L DIR` and `-l NAME`, in gcc's order and
meaning; finding the libraries `-l` names, reading the files, resolving them with the Toy
program (`linker.resolve`), and what to check them against later.

`split_link_args` takes them out of `toyc build`/`run`/`watch`'s arguments (they may come
anywhere after the Toy source, interleaved as gcc allows); `resolve_inputs` reads every input
and resolves, reporting a Toy extern that nothing defines as a diagnostic at each use.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from linker.archive import Archive, is_archive, read_archive
from linker.elf_file import LinkError
from linker.input_object import ObjectFile, read_object
from linker.resolve import TOY, Resolution, resolve
from toyc.check import Program
from toyc.source import CompileError, Diagnostic, UserError

# Where gcc looks for `-l` after the -L directories (Debian's multiarch layout first).
SYSTEM_LIBRARY_DIRS = ("/usr/local/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                       "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib", "/usr/lib")
# Functions of the C library that C code often calls, or gcc makes it call
LIBC_NAMES = {"memcpy", "memmove", "memset", "memcmp", "strlen", "strcmp", "strcpy", "printf",
              "puts", "malloc", "free", "calloc", "realloc", "abort", "exit", "__stack_chk_fail"}
# toyc's options that take a value, whose value is not a linker input
_VALUE_OPTIONS = ("-o", "--arch")


@dataclass
class LinkArgs:
    items: list[tuple[str, str]] = field(default_factory=list)  # ("file", path), ("lib", name)
    dirs: list[str] = field(default_factory=list)  # -L, in order
    spelling: list[str] = field(default_factory=list)  # all of them, as given

    def __bool__(self) -> bool:
        return bool(self.items)

    def spelled(self) -> list[str]:
        """As a command line gives them (for messages and the state)."""
        return self.spelling or [p if kind == "file" else f"-l{p}" for kind, p in self.items] \
            + [f"-L{d}" for d in self.dirs]


def split_link_args(argv: list[str]) -> tuple[list[str], LinkArgs]:
    """Take the linker inputs out of a subcommand's arguments (after the subcommand's name):
    every positional argument after the first (the Toy source) and -L/-l, up to `--`."""
    rest, link = [], LinkArgs()
    i, seen_source = 0, False
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest += argv[i:]
            break
        if a in ("-l", "-L"):
            if i + 1 == len(argv):
                raise UserError(f"{a} needs an argument")
            value = argv[i + 1]
            i += 2
        elif a.startswith(("-l", "-L")) and len(a) > 2:
            a, value = a[:2], a[2:]
            i += 1
        else:
            if a in _VALUE_OPTIONS and i + 1 < len(argv):
                rest += argv[i : i + 2]
                i += 2
                continue
            if a.startswith("-") and a != "-":
                rest.append(a)
            elif not seen_source:
                seen_source = True
                rest.append(a)
            else:
                link.items.append(("file", a))
                link.spelling.append(a)
            i += 1
            continue
        if a == "-l":
            link.items.append(("lib", value))
        else:
            link.dirs.append(value)
        link.spelling.append(a + value)
    return rest, link


def find_library(name: str, dirs: list[str]) -> str:
    """The file `-l NAME` names: libNAME.so, else libNAME.a, in the -L directories and then
    the system's, as gcc looks (a shared library is reported: not supported yet)."""
    for d in [*dirs, *SYSTEM_LIBRARY_DIRS]:
        for suffix in (".so", ".a"):
            path = os.path.join(d, f"lib{name}{suffix}")
            if os.path.isfile(path):
                if suffix == ".so":
                    archive = os.path.join(d, f"lib{name}.a")
                    hint = f"; its archive {archive} can be given instead" \
                        if os.path.isfile(archive) else ""
                    raise UserError(f"-l{name}: {path} is a shared library; linking shared "
                                    f"libraries is not supported yet{hint}")
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


def load_inputs(paths: list[str], arch) -> list[ObjectFile | Archive]:
    info = arch.info
    out: list[ObjectFile | Archive] = []
    for path in paths:
        data = _read(path)
        if is_archive(data) or data.startswith(b"!<thin>\n"):
            out.append(read_archive(data, path))
        elif data[:2] in (b"/*", b"GR", b"IN", b"OU") and path.endswith(".so"):
            raise UserError(f"{path}: a linker script; linking shared libraries is not "
                            "supported yet")
        else:
            out.append(read_object(data, path, info.elf_machine, info.name))
    return out


def load_member(archive: Archive, index: int, arch) -> ObjectFile:
    member = archive.members[index]
    info = arch.info
    return read_object(member.data, f"{archive.path}({member.name})", info.elf_machine,
                       info.name)


def resolve_inputs(program: Program, paths: list[str], arch) -> Resolution:
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
        inputs = load_inputs(paths, arch)
        res = resolve(toy_defs, toy_refs, inputs,
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
        if set(undefined) & LIBC_NAMES:
            lines.append("note: no C library is linked (shared libraries are not supported "
                         "yet); gcc turns some loops into calls of memcpy, memset or strlen "
                         "(-fno-tree-loop-distribute-patterns keeps them loops)")
        raise UserError("\n".join(lines))
    return res


def describe(res: Resolution, link: LinkArgs, paths: list[str]) -> dict:
    """What the ZigObject keeps of the inputs: the files (to notice a change), what was loaded
    from archives and why, and the global names C code defines or uses (a Toy export that
    changes among them changes the resolution)."""
    c_names = res.c_names()
    return {
        "args": link.spelled(),
        "files": [[p, file_key(p)] for p in paths],
        "objects": [obj.name for obj in res.objects],
        "loaded": [[archive, member, name, who]
                   for _, archive, member, name, who in res.loaded],
        "c_names": sorted(c_names),
        "toy_defs": sorted(n for n, d in res.defs.items() if d.file == TOY and n in c_names),
    }
