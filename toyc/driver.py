"""The compiler's pipeline, as a straight line of passes over one program.

    read → split → parse → check → fold → lower (architecture plugin) → link (ZigObject)

These are the passes of a full build, called in a straight line; `session.py` strings them
together for an output file and adds the incremental update.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass, field

from toyc import ast as A
from toyc.check import Program, check
from toyc.code import Code
from toyc.debuginfo import describe
from toyc.fold import fold_function
from toyc.parse import parse_chunk
from toyc.plugins import Arch
from toyc.progress import Progress
from toyc.source import CompileError, Diagnostic, Source, UserError, decode
from toyc.split import Chunk, declared_name, split

RUNTIME_TEXT_HINT = 4096
RUNTIME_RODATA_HINT = 512
# what the runtime imports from the C library in a dynamically linked executable
RUNTIME_IMPORTS_HINT = 8
RECURSION_LIMIT = 20000
LOWER_BATCH = 256  # declarations a lowering worker is given at a time
PARALLEL_CHUNKS = 200  # a worker process compiles at least this many declarations


@dataclass
class Timings:
    """Seconds spent in each pass, by name, for `--time` and the benchmarks."""

    passes: dict[str, float] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)  # (silent unless asked)

    def run(self, name, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.passes[name] = self.passes.get(name, 0.0) + time.perf_counter() - start


def read_source(path: str) -> Source:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular file is read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise UserError(f"{path}: is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise UserError(f"{path}: not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read()
        finally:
            os.close(fd)
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None
    result = decode(path, data)
    if isinstance(result, CompileError):
        raise result
    return result


def parse_chunks(chunks: list[Chunk], progress: Progress | None = None,
                 ) -> tuple[list[A.Decl], list[Diagnostic], set[str], dict]:
    """Parse declarations; also return the syntax errors, the names of declarations that did
    not parse (so that the checker can still look at the rest without calling their uses
    unknown), and the chunk each declaration came from (by `id` of the declaration)."""
    decls, errors, unparsed, chunk_of = [], [], set(), {}
    if progress is not None:
        progress.step("parsing", len(chunks))
    for chunk in chunks:
        if progress is not None:
            progress.advance()
        decl, errs = parse_chunk(chunk)
        errors += errs
        if decl is not None:
            decls.append(decl)
            chunk_of[id(decl)] = chunk
        else:
            name = declared_name(chunk.text)
            if name:
                unparsed.add(name)
    return decls, errors, unparsed, chunk_of


def lower_decl(d: A.Decl, program: Program, arch: Arch) -> Code | None:
    """The code of one declaration; None for an extern, which another object defines."""
    if d.is_extern:
        return None
    if isinstance(d, A.FnDecl):
        code = arch.lower_function(fold_function(d), program)
    else:
        code = arch.lower_global(d)
    code.debug = describe(d)
    return code


def jobs() -> int:
    """How many processes a full build lowers in: TOYC_JOBS, else the CPUs this process may
    run on."""
    try:
        n = int(os.environ.get("TOYC_JOBS") or 0)
    except ValueError:
        n = 0
    return n if n > 0 else len(os.sched_getaffinity(0))


# What the lowering workers lower: set before they are forked, so that they inherit the checked
# program instead of receiving it.
_LOWERING: tuple[list[A.Decl], Program, Arch] | None = None


def quiet_worker() -> None:
    # Ctrl-C on a terminal reaches every process of the group: the build's own process stops
    # the workers, which must not each print a traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _lower_range(bounds: tuple[int, int]) -> list[Code | None]:
    decls, program, arch = _LOWERING
    return [lower_decl(d, program, arch) for d in decls[bounds[0] : bounds[1]]]


def lower_all(decls: list[A.Decl], program: Program, arch: Arch,
              progress: Progress) -> list[Code | None]:
    """The code of every declaration, in order. A big program is lowered on every CPU: in
    worker processes forked after checking (each declaration's code depends only on it and
    the checked program, so the result is the same as in one process), which send back the
    code as plain data (bytes, relocations, line fields, debug descriptions)."""
    global _LOWERING
    progress.step("generating code", len(decls))
    n = min(jobs(), len(decls) // LOWER_BATCH)
    if n < 2:
        codes = []
        for d in decls:
            codes.append(lower_decl(d, program, arch))
            progress.advance()
        return codes
    import multiprocessing

    bounds = [(k, min(k + LOWER_BATCH, len(decls))) for k in range(0, len(decls), LOWER_BATCH)]
    codes = []
    _LOWERING = (decls, program, arch)
    try:
        with multiprocessing.get_context("fork").Pool(n, quiet_worker) as pool:
            for batch in pool.imap(_lower_range, bounds):
                codes += batch
                progress.advance(len(batch))
    finally:
        _LOWERING = None
    return codes


def lower(program: Program, arch: Arch) -> tuple[dict[str, Code], dict[str, Code]]:
    funcs = {f.name: lower_decl(f, program, arch) for f in program.functions if not f.is_extern}
    globals_ = {g.name: lower_decl(g, program, arch) for g in program.globals
                if not g.is_extern}
    return funcs, globals_


def compile_all(path: str, arch: Arch, timings: Timings, need_main: bool = True,
                ) -> tuple[Program, dict, list[Code | None]]:
    """Read, split, parse, check and lower a whole file: the checked program, the chunk each
    declaration came from (by `id` of the declaration) and every declaration's code. A big
    program is compiled by worker processes, one per CPU (`parallel.py`), in which case the
    program's functions are headers (their code is made); one with errors is compiled again
    here, for exactly these messages."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    source = timings.run("read", read_source, path)
    chunks = split(source.text)
    n = min(jobs(), len(chunks) // PARALLEL_CHUNKS)
    if n >= 2:
        from toyc import parallel

        try:
            return timings.run("compile", parallel.compile_program, source, chunks, arch,
                               need_main, n, timings.progress)
        except parallel.Fallback:
            pass
    program, chunk_of = _front_end(source, chunks, timings, need_main)
    codes = timings.run("lower", lower_all, program.decls, program, arch, timings.progress)
    return program, chunk_of, codes


def _front_end(source: Source, chunks: list[Chunk], timings: Timings, need_main: bool,
               ) -> tuple[Program, dict]:
    decls, syntax_errors, unparsed, chunk_of = timings.run(
        "parse", parse_chunks, chunks, timings.progress)
    timings.progress.close()
    return (timings.run("check", check, source, decls, syntax_errors, unparsed, None,
                        need_main), chunk_of)


def front_end(path: str, timings: Timings, need_main: bool = True) -> tuple[Program, dict]:
    """Read, split, parse and check a whole file in this process: the checked program, and the
    chunk each declaration came from (by `id` of the declaration). An object needs no
    `main`."""
    # The checker and code generators recurse once or a few times per level of nesting.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    source = timings.run("read", read_source, path)
    return _front_end(source, split(source.text), timings, need_main)
