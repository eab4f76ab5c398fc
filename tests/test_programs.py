"""Every Toy program under tests/programs/, built and run, checked against its own comments.

A test program states what it expects in comments, in the manner of Crafting Interpreters:

    // expect: LINE              the next line of standard output
    // expect-stderr: LINE       the next line of standard error ({file} is the program's name)
    // exit: N                   the exit status (default 0)
    // args: A B "C D"           command-line arguments (shell quoting)
    // error: LINE:COL: MESSAGE  a compile error; the program must not build, and its errors
                                 must be exactly these, in order
    // emulated: skip REASON     not run where it would run under an emulator (it still builds)

A program with `error:` lines must fail with status 1, print exactly those diagnostics, and leave
no output file behind.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import ARCHES, ROOT, build, run, runner

PROGRAMS = sorted((ROOT / "tests" / "programs").rglob("*.toy"))
DIRECTIVE = re.compile(r"//\s*(expect|expect-stderr|exit|args|error|emulated):\s?(.*)$")
DIAGNOSTIC = re.compile(r"^(.*?):(\d+):(\d+): error: (.*)$")


def expectations(path: Path) -> dict:
    exp = {"expect": [], "expect-stderr": [], "exit": 0, "args": [], "error": [],
           "emulated": ""}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = DIRECTIVE.search(line)
        if not m:
            continue
        kind, value = m.group(1), m.group(2).rstrip("\r")
        if kind == "exit":
            exp["exit"] = int(value)
        elif kind == "args":
            exp["args"] = shlex.split(value)
        elif kind == "emulated":
            assert value.startswith("skip "), f"{path}: '// emulated: skip REASON'"
            exp["emulated"] = value[5:]
        else:
            exp[kind].append(value.replace("{file}", path.name))
    return exp


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("path", PROGRAMS, ids=[str(p.relative_to(ROOT / "tests" / "programs"))
                                                 for p in PROGRAMS])
def test_program(path: Path, arch: str, tmp_path: Path):
    exp = expectations(path)
    exe = tmp_path / path.stem
    built = build(path.name, exe, cwd=path.parent, arch=arch)
    if exp["error"]:
        assert built.status == 1, f"expected compile errors, toyc said:\n{built.stderr}"
        assert "Traceback" not in built.stderr
        got = []
        for line in built.stderr.splitlines():
            m = DIAGNOSTIC.match(line)
            if m:
                assert m.group(1) == path.name
                got.append(f"{m.group(2)}:{m.group(3)}: {m.group(4)}")
        assert got == exp["error"], built.stderr
        assert not exe.exists(), "a failed build left an output file"
        return
    assert built.status == 0, built.stderr
    assert built.stderr == ""
    emulator = runner(arch)
    if emulator and exp["emulated"]:
        pytest.skip(f"not run under {Path(emulator[0]).name}: {exp['emulated']}")
    result = run([*emulator, str(exe), *exp["args"]], cwd=tmp_path, timeout=30)
    assert result.stdout.splitlines() == exp["expect"]
    assert result.stderr.splitlines() == exp["expect-stderr"]
    assert result.status == exp["exit"]
