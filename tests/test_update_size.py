"""An update of one function touches a few KiB of the output, however large the program.

A program of 300 functions is built with `toyc build`; then one function body is edited and
`toyc build -v` runs under strace, which shows every read and write with the path of its file
descriptor (`-y`). Only transfers to and from the OUTPUT file are summed: the source and the
state file are read and written whole by design, and the output is what must not be rewritten.
Two edits:

- a same-size edit (a constant with the same encoding): the function is rewritten in place, and
  every other function's bytes (found by symbol with pyelftools) are unchanged;
- a growing edit: the function outgrows its room and moves, leaving a trampoline; the functions
  that do not call it are unchanged (callers may have their call fields re-patched).

The byte counts strace sees must also be the ones the summary line reports.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import TOYC, require, run

N_FUNCS = 300
EDITED = 150
MAX_WRITTEN = 4096
MAX_READ = 8192
TRACED = "openat,read,pread64,write,pwrite64,ftruncate,copy_file_range,sendfile"


def func(i: int, body: str | None = None) -> str:
    # Every tenth function calls the edited one, so that a move has callers to re-patch; the
    # others call their predecessor, so that the program is one connected call graph.
    if body is None:
        body = f"let a = x * 3 + {100000 + i};"
    call = f"f{EDITED}(a)" if i % 10 == 0 and i > EDITED else (f"f{i - 1}(a)" if i else "a")
    return f"fn f{i}(x: int) -> int {{\n    {body}\n    return {call} & 0xffffff;\n}}\n"


def program(edited_body: str | None = None) -> str:
    funcs = [func(i, edited_body if i == EDITED else None) for i in range(N_FUNCS)]
    main = f'fn main() -> int {{\n    print("result", f{N_FUNCS - 1}(1));\n    return 0;\n}}\n'
    return "".join(funcs) + main


def callers_of_edited() -> set[str]:
    return {f"f{i}" for i in range(N_FUNCS) if i % 10 == 0 and i > EDITED} | {f"f{EDITED + 1}"}


def function_bytes(exe: Path) -> dict[str, bytes]:
    """Every function's bytes, by symbol: section data at st_value - sh_addr."""
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        result = {}
        for s in elf.get_section_by_name(".symtab").iter_symbols():
            if s["st_info"]["type"] != "STT_FUNC":
                continue
            sec = elf.get_section(s["st_shndx"])
            start = s["st_value"] - sec["sh_addr"]
            result[s.name] = sec.data()[start : start + s["st_size"]]
        return result


# One traced call: optional pid, name, first argument fd with its path, the rest, the result.
CALL = re.compile(r"^(?:\d+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+)")
UNFINISHED = re.compile(r"^(?:(\d+)\s+)?(\w+)\((.*) <unfinished \.\.\.>$")
RESUMED = re.compile(r"^(?:(\d+)\s+)?<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(-?\d+)")
FD = re.compile(r"^\d+<(.*?)>")


def transfers(trace: str, path: str) -> tuple[int, int, list[str]]:
    """Bytes read from and written to `path` in an strace -f -y log, and the calls counted."""
    read = written = 0
    counted = []
    pending: dict[str | None, str] = {}
    for line in trace.splitlines():
        if m := UNFINISHED.match(line):
            pending[m.group(1)] = f"{m.group(2)}({m.group(3)}"
            continue
        if m := RESUMED.match(line):
            start = pending.pop(m.group(1), f"{m.group(2)}(")
            line = f"{start}{m.group(3)}) = {m.group(4)}"
        m = CALL.match(line)
        if m is None:
            continue
        name, args, result = m.group(1), m.group(2), int(m.group(3))
        if result <= 0:
            continue
        fds = [FD.match(a.strip()) for a in args.split(", ")]
        paths = [f.group(1) if f else None for f in fds]
        if name in ("read", "pread64") and paths[0] == path:
            read += result
        elif name in ("write", "pwrite64") and paths[0] == path:
            written += result
        elif name == "copy_file_range" and path in (paths[0], paths[2]):
            read += result if paths[0] == path else 0
            written += result if paths[2] == path else 0
        elif name == "sendfile" and path in (paths[0], paths[1]):
            written += result if paths[0] == path else 0
            read += result if paths[1] == path else 0
        else:
            continue
        counted.append(line)
    return read, written, counted


def traced_update(tmp_path: Path, source: str) -> tuple[str, int, int, list[str]]:
    """Write `source`, run `toyc build -v` under strace; (summary line, bytes read from and
    written to the output)."""
    strace = require("strace")
    (tmp_path / "src.toy").write_text(source)
    log = tmp_path / "trace.txt"
    r = run([strace, "-f", "-y", "-s", "0", "-e", f"trace={TRACED}", "-o", str(log),
             *TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    assert "full build" not in r.stdout + r.stderr, r.stdout + r.stderr
    read, written, calls = transfers(log.read_text(), os.path.realpath(tmp_path / "prog"))
    return r.stdout.strip(), read, written, calls


def reported_written(line: str) -> int:
    m = re.search(r"(\d+) bytes written", line)
    assert m, line
    return int(m.group(1))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "src.toy").write_text(program())
    r = run([*TOYC, "build", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    r = run([str(tmp_path / "prog")])
    assert r.status == 0 and r.stdout.startswith("result "), r
    # The limits below mean something only if rewriting the whole output would exceed them.
    assert (tmp_path / "prog").stat().st_size > 8 * MAX_WRITTEN
    return tmp_path


def check_behaviour(tmp_path: Path) -> None:
    """The patched program prints what a clean build of the same source prints."""
    r = run([*TOYC, "build", "--full", "src.toy", "-o", "clean"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    got, want = run([str(tmp_path / "prog")]), run([str(tmp_path / "clean")])
    assert (got.status, got.stdout, got.stderr) == (want.status, want.stdout, want.stderr)


def test_same_size_edit_touches_only_that_function(built: Path):
    before = function_bytes(built / "prog")
    line, read, written, calls = traced_update(built, program(
        f"let a = x * 3 + {100000 + EDITED + 7};"))
    assert f"updated f{EDITED} (in place)" in line, line
    assert written <= MAX_WRITTEN, (line, written, calls)
    assert read <= MAX_READ, (line, read, calls)
    assert written == reported_written(line), (line, written, calls)
    after = function_bytes(built / "prog")
    assert before.keys() == after.keys()
    assert before[f"f{EDITED}"] != after[f"f{EDITED}"]
    changed = sorted(n for n in before if before[n] != after[n] and n != f"f{EDITED}")
    assert changed == [], f"functions changed by an edit of f{EDITED}: {changed}"
    check_behaviour(built)


def test_growing_edit_moves_only_that_function(built: Path):
    before = function_bytes(built / "prog")
    grown = "\n    ".join(["let a = x * 3 + 7;"] + [f"a = a * {i + 3} + x;" for i in range(60)])
    line, read, written, calls = traced_update(built, program(grown))
    assert f"updated f{EDITED} (moved, trampoline)" in line, line
    assert written <= MAX_WRITTEN, (line, written, calls)
    assert read <= MAX_READ, (line, read, calls)
    assert written == reported_written(line), (line, written, calls)
    after = function_bytes(built / "prog")
    assert before.keys() == after.keys()
    assert len(after[f"f{EDITED}"]) > len(before[f"f{EDITED}"])
    changed = sorted(n for n in before if before[n] != after[n]
                     and n != f"f{EDITED}" and n not in callers_of_edited())
    assert changed == [], f"functions that do not call f{EDITED} changed: {changed}"
    # A caller calls f{EDITED} once: at most its one 4-byte call field may have been re-patched.
    for name in callers_of_edited():
        diff = [i for i, (a, b) in enumerate(zip(before[name], after[name], strict=True))
                if a != b]
        assert not diff or diff[-1] - diff[0] < 4, (name, diff)
    check_behaviour(built)
