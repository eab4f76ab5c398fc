"""The compiler's pipeline, as a straight line of passes over one program.

    read → split → parse → check → lower (architecture plugin) → link (ZigObject) → rename

A full build writes a new file beside the output and renames it over the output only when it
is complete, so the output path never holds a half-written executable.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from linker.elf_file import ElfFile, LinkError
from linker.zig_object import ZigObject, global_section, size_hints
from toyc import ast as A
from toyc.check import Program, check
from toyc.code import Code
from toyc.parse import parse_chunk
from toyc.plugins import Arch, get_arch
from toyc.source import CompileError, Diagnostic, Source, UserError, decode
from toyc.split import split

RUNTIME_TEXT_HINT = 4096
RUNTIME_RODATA_HINT = 512
RECURSION_LIMIT = 20000
_DECL_NAME = re.compile(r"\b(?:fn|var|const)\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Timings:
    """Seconds spent in each pass, by name, for `--time` and the benchmarks."""

    passes: dict[str, float] = field(default_factory=dict)

    def run(self, name, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.passes[name] = self.passes.get(name, 0.0) + time.perf_counter() - start


def read_source(path: str) -> Source:
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory") from None
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None
    result = decode(path, data)
    if isinstance(result, CompileError):
        raise result
    return result


def parse(source: Source) -> tuple[list[A.Decl], list[Diagnostic], set[str]]:
    """Parse every declaration; also return the syntax errors and the names of declarations
    that did not parse, so that the checker can still look at the rest."""
    decls, errors, unparsed = [], [], set()
    for chunk in split(source.text):
        decl, errs = parse_chunk(chunk)
        errors += errs
        if decl is not None:
            decls.append(decl)
        else:
            m = _DECL_NAME.search(chunk.text)
            if m:
                unparsed.add(m.group(1))
    return decls, errors, unparsed


def lower(program: Program, arch: Arch) -> tuple[dict[str, Code], dict[str, Code]]:
    funcs = {f.name: arch.lower_function(f, program) for f in program.functions}
    globals_ = {g.name: arch.lower_global(g) for g in program.globals}
    return funcs, globals_


def link(program: Program, arch: Arch, funcs: dict[str, Code], globals_: dict[str, Code],
         fd: int) -> None:
    sizes: dict[str, list[tuple[int, int]]] = {"rodata": [], "data": [], "bss": []}
    sizes["text"] = [(c.length, c.align) for c in funcs.values()] + [(RUNTIME_TEXT_HINT, 16)]
    for g in program.globals:
        code = globals_[g.name]
        sizes[global_section(code, g.kind == "const")].append((code.length, code.align))
    strings = {r.target.key for code in [*funcs.values(), *globals_.values()]
               for r in code.relocs if r.target.kind == "uav"}
    sizes["rodata"] += [(arch.lower_string(s).length, 8) for s in strings]
    sizes["rodata"].append((RUNTIME_RODATA_HINT, 8))
    zo = ZigObject(ElfFile(fd, arch.info.page_size), arch, program.source.path,
                   size_hints(sizes))
    for g in program.globals:
        zo.update_nav(g.name, globals_[g.name], const=g.kind == "const")
    for name, code in funcs.items():
        zo.update_func(name, code)
    zo.flush()


def front_end(path: str, timings: Timings) -> Program:
    # The checker and code generators recurse once or a few times per level of nesting.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    source = timings.run("read", read_source, path)
    decls, syntax_errors, unparsed = timings.run("parse", parse, source)
    return timings.run("check", check, source, decls, syntax_errors, unparsed)


def build(path: str, output: str, arch_name: str = "x86_64",
          timings: Timings | None = None) -> None:
    timings = timings or Timings()
    program = front_end(path, timings)
    arch = get_arch(arch_name)
    funcs, globals_ = timings.run("lower", lower, program, arch)
    out = Path(output)
    if out.exists() and out.resolve() == Path(path).resolve():
        raise UserError(f"output '{output}' would overwrite the source file")
    directory = out.parent if str(out.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UserError(f"cannot write '{output}': {e.strerror or e}") from None
    try:
        try:
            timings.run("link", link, program, arch, funcs, globals_, fd)
        except LinkError as e:
            raise UserError(str(e)) from None
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o777 & ~umask)
        os.close(fd)
        fd = -1
        try:
            os.replace(tmp, out)
        except OSError as e:
            raise UserError(f"cannot write '{output}': {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)


def default_output(path: str) -> str:
    p = Path(path)
    name = p.stem if p.suffix == ".toy" else "a.out"
    return name or "a.out"
