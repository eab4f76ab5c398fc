"""Full builds on every core: parsing, checking and lowering a big program in worker processes.

Parsing is most of a full build, and a declaration parses on its own: the workers, forked
after the file is split, each parse a run of its declarations and keep what they parsed.
Checking needs every declaration, but a function's body only needs the others' signatures:

1. each worker sends the parent its declarations' headers (a function without its body; a
   global whole) and keeps the full declarations;
2. the parent checks the headers (names, exports, globals, signatures, `main`) and sends every
   worker all the headers;
3. each worker checks its own declarations' bodies against the others' headers, which is the
   check an incremental update makes with stubs, lowers them, and sends back their code (bytes,
   relocations, line fields, debug descriptions), the names each uses and the externs its
   bodies call.

The parent links the headers with the code, as a build in one process would link the full
declarations: the output is byte for byte the same (tests/test_parallel.py). A program with
any error, or a worker that fails for any reason, is built again in one process, so that the
messages are exactly a one-process build's.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import replace
from multiprocessing.connection import Connection, wait

from toyc import ast as A
from toyc.check import Program, check
from toyc.code import Code
from toyc.driver import lower_decl, parse_chunks, quiet_worker
from toyc.plugins import Arch
from toyc.progress import Progress
from toyc.source import CompileError, Source
from toyc.split import Chunk

MIN_CHUNKS = 400  # below this, one process is as fast as several
PROGRESS_EVERY = 64


class Fallback(Exception):
    """The program is to be built in one process (it has errors, or a worker failed)."""


def header(d: A.Decl) -> A.Decl:
    """What the others' checks need of `d`: a function without its body, a global whole."""
    return replace(d, body=None, locals=[]) if isinstance(d, A.FnDecl) and d.body is not None \
        else d


def compile_program(source: Source, chunks: list[Chunk], arch: Arch, need_main: bool,
                    jobs: int, progress: Progress) -> tuple[Program, dict, list[Code | None]]:
    """The checked program (functions as headers), the chunk of each declaration (by `id`),
    and every declaration's code, made by `jobs` workers. Fallback when it cannot be."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    step = -(-len(chunks) // jobs)
    ranges = [(k, min(k + step, len(chunks))) for k in range(0, len(chunks), step)]
    pipes, workers = [], []
    for lo, hi in ranges:
        parent_end, child_end = context.Pipe()
        w = context.Process(target=_worker, args=(source, chunks, lo, hi, arch, need_main,
                                                  child_end, [*pipes, parent_end]),
                            daemon=True)
        w.start()
        child_end.close()
        pipes.append(parent_end)
        workers.append(w)
    try:
        progress.step("parsing", len(chunks))
        parts = _gather(pipes, "headers", progress)
        progress.close()
        headers = [d for part in parts for d in part[0]]
        chunk_of = {id(d): chunks[i] for part in parts for d, i in zip(part[0], part[1],
                                                                       strict=True)}
        try:
            program = check(source, headers, None, None, None, need_main)
        except CompileError:
            raise Fallback("the program has errors") from None
        everything = pickle.dumps(parts, pickle.HIGHEST_PROTOCOL)
        for p in pipes:
            p.send_bytes(everything)
        progress.step("generating code", len(headers))
        results = _gather(pipes, "code", progress)
    finally:
        for p in pipes:
            p.close()
        for w in workers:
            if w.is_alive():
                w.kill()
            w.join()
    codes: list[Code | None] = []
    for part_codes, deps, uses in results:
        codes += part_codes
        program.deps.update(deps)
        program.extern_uses += uses  # (bodies in file order, after the globals', as in one)
    return program, chunk_of, codes


def _gather(pipes: list[Connection], kind: str, progress: Progress) -> list:
    """Each worker's next message of `kind`, in the workers' order, advancing the progress
    with theirs."""
    out: list = [None] * len(pipes)
    waiting = dict(enumerate(pipes))
    while waiting:
        for p in wait(list(waiting.values())):
            k = next(i for i, q in waiting.items() if q is p)
            try:
                what, payload = pickle.loads(p.recv_bytes())
            except (EOFError, OSError, pickle.UnpicklingError):
                raise Fallback("a worker ended") from None
            if what == "progress":
                progress.advance(payload)
            elif what == kind:
                out[k] = payload
                del waiting[k]
            else:
                raise Fallback(str(payload))
    return out


def _worker(source: Source, chunks: list[Chunk], lo: int, hi: int, arch: Arch,
            need_main: bool, conn: Connection, siblings: list[Connection]) -> None:
    quiet_worker()
    # The parent's ends of its pipe and of the workers' forked before: held here, they would
    # keep the workers waiting for (or writing to) a parent that died, instead of finding the
    # end of their pipe.
    for p in siblings:
        p.close()
    try:
        _work(source, chunks, lo, hi, arch, need_main, conn)
    except BaseException as e:  # (any failure: the parent builds in one process)
        with contextlib.suppress(Exception):
            conn.send_bytes(pickle.dumps(("failed", f"{type(e).__name__}: {e}")))
    finally:
        conn.close()
        os._exit(0)  # nothing of the parent's to clean up or flush


def _send(conn: Connection, what: str, payload) -> None:
    conn.send_bytes(pickle.dumps((what, payload), pickle.HIGHEST_PROTOCOL))


def _work(source: Source, chunks: list[Chunk], lo: int, hi: int, arch: Arch,
          need_main: bool, conn: Connection) -> None:
    own: list[A.Decl] = []
    where: list[int] = []
    for start in range(lo, hi, PROGRESS_EVERY):
        stop = min(start + PROGRESS_EVERY, hi)
        decls, errors, unparsed, chunk_of = parse_chunks(chunks[start:stop])
        if errors or unparsed:
            _send(conn, "failed", "syntax errors")
            return
        ids = {id(c): start + i for i, c in enumerate(chunks[start:stop])}
        own += decls
        where += [ids[id(chunk_of[id(d)])] for d in decls]
        _send(conn, "progress", stop - start)
    mine = [header(d) for d in own]
    _send(conn, "headers", (mine, where))
    parts = pickle.loads(conn.recv_bytes())
    # every declaration in file order: this worker's whole, the others' as headers
    everything = [d for headers, indices in parts for d in (own if indices == where
                                                            else headers)]
    program = check(source, everything, None, None, None, need_main)
    codes = []
    for start in range(0, len(own), PROGRESS_EVERY):
        batch = own[start : start + PROGRESS_EVERY]
        codes += [lower_decl(d, program, arch) for d in batch]
        _send(conn, "progress", len(batch))
    spans = [(d.span.line, d.span.end_line) for d in own if isinstance(d, A.FnDecl)]
    uses = [(name, span) for name, span in program.extern_uses
            if any(lo_line <= span.line <= hi_line for lo_line, hi_line in spans)]
    deps = {d.name: program.deps.get(d.name, set()) for d in own}
    _send(conn, "code", (codes, deps, uses))

