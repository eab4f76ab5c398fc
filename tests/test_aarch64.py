"""The AArch64 backend, plugins/toyc-aarch64: a third-party plugin, installed on its own.

The shared test programs, samples, ELF checks and incremental scenarios run on it too (their
modules are parametrized over `conftest.ARCHES`); here is what is particular to it: that toyc
finds it only through its entry point, the trampoline, growing sections, threads' stacks given
back, objects that GNU ld links, and running a foreign program.
"""

from __future__ import annotations

import ast
import os
import platform
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES, TOYC, binutil, build, require, run, runner, toyc
from watching import Watcher, save_in_place

PLUGIN = ROOT / "plugins" / "toyc-aarch64"
ARCH = ["--arch", "aarch64"]
# What the plugin may import of toyc: the modules a plugin author is pointed at.
PUBLIC = {"toyc", "toyc.arch", "toyc.assembly", "toyc.ast", "toyc.code", "toyc.hookspecs",
          "toyc.layout", "toyc.lowering", "toyc.source", "toyc.types"}


def test_plugin_is_installed_and_listed():
    r = toyc("plugins")
    assert r.status == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert "aarch64" in rows, "the AArch64 plugin is not installed: " \
        "python3 -m pip install -e ./plugins/toyc-aarch64"
    assert rows["aarch64"] == \
        "aarch64 0.1.0: toyc_register_architectures; architectures: aarch64"


def test_toyc_does_not_know_the_plugin():
    """Nothing of toyc names the plugin, and the plugin uses only toyc's public modules."""
    for tree in ("toyc", "linker", "plugins/toyc_x86_64"):
        for path in (ROOT / tree).rglob("*.py"):
            text = path.read_text()
            assert "toyc_aarch64" not in text and "toyc-aarch64" not in text, path
    assert (PLUGIN / "pyproject.toml").exists()
    for path in (PLUGIN / "toyc_aarch64").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("linker", "toyc_x86_64"), f"{path.name} imports {name}"
                if top == "toyc":
                    assert name in PUBLIC, f"{path.name} imports {name}"


def test_without_the_plugin_the_architecture_is_unknown(tmp_path: Path):
    env = dict(os.environ, TOYC_PLUGINS="")
    status, _, err = run_env([*TOYC, "build", str(SAMPLES / "hello.toy"), "-o",
                              str(tmp_path / "h"), *ARCH], env)
    assert status == 1 and not (tmp_path / "h").exists()
    assert "unknown architecture 'aarch64'" in err and "x86_64" in err, err


def run_env(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_hello_is_an_aarch64_executable(tmp_path: Path):
    exe = tmp_path / "hello"
    r = build("hello.toy", exe, cwd=SAMPLES, arch="aarch64")
    assert r.status == 0 and r.stderr == "", r.stderr
    header = run([require("readelf"), "-h", str(exe)]).stdout
    assert re.search(r"Machine:\s+AArch64", header) and "ELF64" in header
    assert "EXEC (Executable file)" in header
    r = run([*runner("aarch64"), str(exe)])
    assert (r.status, r.stdout, r.stderr) == (0, "hello, toy\nsum of squares: 14 calls: 3\n", "")


SMALL = """\
fn grow(x: int) -> int {{
    {body}
}}
fn main() {{
    print(grow(3));
}}
"""
BIG_BODY = "let t = x;\n" + "    t = t * 3 + x; t = t - x * 2;\n" * 10 + "    return t;"


def test_a_function_that_moves_leaves_a_branch(tmp_path: Path):
    """It outgrows its room, moves, and its old address holds one `b` to the new one."""
    src = tmp_path / "p.toy"
    src.write_text(SMALL.format(body="return x + 1;"))
    exe = tmp_path / "p"
    assert toyc("build", "p.toy", *ARCH, cwd=tmp_path).status == 0
    old = _symbol_address(exe, "grow")
    src.write_text(SMALL.format(body=BIG_BODY))
    r = toyc("build", "-v", "p.toy", *ARCH, cwd=tmp_path)
    assert r.status == 0 and "grow (moved, trampoline)" in r.stdout, r.stdout + r.stderr
    new = _symbol_address(exe, "grow")
    assert new != old
    dump = run([binutil("objdump", "aarch64"), "-d", "--start-address", hex(old),
                "--stop-address", hex(old + 4), str(exe)]).stdout
    assert re.search(rf"^\s*{old:x}:\s+[0-9a-f]{{8}}\s+b\s+{new:x}\b", dump, re.M), dump
    expect = 3
    for _ in range(10):
        expect = expect * 3 + 3 - 6
    assert run([*runner("aarch64"), str(exe)]).stdout == f"{expect}\n"
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout


def _symbol_address(exe: Path, name: str) -> int:
    for line in run([require("readelf"), "-sW", str(exe)]).stdout.splitlines():
        f = line.split()
        if len(f) == 8 and f[7] == name:
            return int(f[1], 16)
    raise AssertionError(f"no symbol {name}")


def _section_size(exe: Path, name: str) -> int:
    for line in run([require("readelf"), "-SW", str(exe)]).stdout.splitlines():
        m = re.search(rf"\]\s+{re.escape(name)}\s+\S+\s+\S+\s+\S+\s+([0-9a-f]+)", line)
        if m:
            return int(m.group(1), 16)
    raise AssertionError(f"no section {name}")


def test_sections_grow_past_their_first_page(tmp_path: Path):
    """AArch64 segments start with 64 KiB pages: 300 new functions and their strings
    outgrow those of .text.zig and .data.rel.ro.zig."""
    small = "fn main() { print(1); }\n"
    funcs = "".join(f"fn f{i}(a: int) -> int {{\n    let x = a;\n"
                    + "    x = x * 3 + 1; x = x - 1;\n" * 6
                    + f'    if x < 0 {{ print("f{i}: {"a negative number " * 12}", x); }}\n'
                    f"    return x + {i};\n}}\n" for i in range(300))
    big = funcs + "fn main() { print(" + " + ".join(f"f{i}(0)" for i in range(300)) + "); }\n"
    src, exe, clean = tmp_path / "p.toy", tmp_path / "p", tmp_path / "clean"
    src.write_text(small)
    assert toyc("build", "p.toy", *ARCH, cwd=tmp_path).status == 0
    before = _section_size(exe, ".text.zig"), _section_size(exe, ".data.rel.ro.zig")
    src.write_text(big)
    r = toyc("build", "-v", "p.toy", *ARCH, cwd=tmp_path)
    assert r.status == 0 and "full build" not in r.stdout, r.stdout + r.stderr
    assert _section_size(exe, ".text.zig") > before[0]
    assert _section_size(exe, ".data.rel.ro.zig") > before[1]
    assert toyc("build", "--full", "p.toy", "-o", "clean", *ARCH, cwd=tmp_path).status == 0
    outputs = {run([*runner("aarch64"), str(p)]).stdout for p in (exe, clean)}
    assert outputs == {f"{sum(range(300))}\n"}
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout


def test_join_gives_each_thread_stack_back(tmp_path: Path):
    """What tests/programs/threads/many.toy shows natively, seen through qemu's -strace:
    every thread's 8 MiB mapping is unmapped by join."""
    (tmp_path / "t.toy").write_text(
        "fn square(n: int) -> int { return n * n; }\n"
        "fn main() { let i = 0; let total = 0;\n"
        "  while i < 200 { total += join(spawn(square, i)); i += 1; }\n  print(total); }\n")
    assert toyc("build", "t.toy", *ARCH, cwd=tmp_path).status == 0
    r = run([*runner("aarch64"), "-strace", str(tmp_path / "t")])
    assert r.status == 0 and sum(i * i for i in range(200)) == int(r.stdout.split()[-1])
    size = f"{8 << 20}"
    maps = re.findall(rf"mmap\(NULL,{size},", r.stderr)
    unmaps = re.findall(rf"munmap\(0x[0-9a-f]+,{size}\)", r.stderr)
    assert len(maps) == 200 and len(unmaps) == 200, (len(maps), len(unmaps))


LIB = """\
export fn add(a: int, b: int) -> int {
    print("toy add", a, b);
    return a + b + bonus;
}
export var bonus: int = 100;
fn main() { }
"""
START = """\
    .global _start
_start:
    mov x0, #2
    mov x1, #3
    bl add
    adrp x1, bonus
    ldr x1, [x1, :lo12:bonus]
    sub x0, x0, x1
    mov x8, #94
    svc #0
"""


def test_an_object_links_with_gnu_ld(tmp_path: Path):
    """An AArch64 `-c` object, with AArch64 relocations, linked by GNU ld with an assembly
    `_start` that calls an exported function and reads an exported global; and the same
    from a `--lib` archive."""
    (tmp_path / "lib.toy").write_text(LIB)
    r = toyc("build", "-c", "lib.toy", *ARCH, cwd=tmp_path)
    assert r.status == 0, r.stderr
    relocs = run([require("readelf"), "-rW", str(tmp_path / "lib.o")]).stdout
    for kind in ("R_AARCH64_CALL26", "R_AARCH64_ADR_PREL_PG_HI21", "R_AARCH64_ADD_ABS_LO12_NC"):
        assert kind in relocs, relocs
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "lib.o")])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
    (tmp_path / "start.s").write_text(START)
    assert run([binutil("as", "aarch64"), "start.s", "-o", "start.o"], cwd=tmp_path).status == 0
    # the object itself, and the same object from a `--lib` archive
    assert toyc("build", "--lib", "lib.toy", *ARCH, cwd=tmp_path).status == 0
    for inputs in (["lib.o"], ["-L.", "-llib"]):
        ld = run([binutil("ld", "aarch64"), "start.o", *inputs, "-o", "prog"], cwd=tmp_path)
        assert ld.status == 0, ld.stderr
        r = run([*runner("aarch64"), str(tmp_path / "prog")])
        assert (r.status, r.stdout, r.stderr) == (5, "toy add 2 3\n", ""), inputs


def test_toyc_run_uses_qemu(tmp_path: Path):
    runner("aarch64")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    status, out, err = run_env([*TOYC, "run", "--arch", "aarch64", str(SAMPLES / "fib.toy"),
                                "--", "10"], env)
    assert (status, out, err) == (0, "fib 10 = 55\n", "")


def test_toyc_run_without_qemu_says_so(tmp_path: Path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), PATH=str(tmp_path))
    status, out, err = run_env([*TOYC, "run", "--arch", "aarch64", str(SAMPLES / "fib.toy")],
                               env)
    assert status == 1 and "Traceback" not in err
    assert "qemu-aarch64 is not installed" in err, err


def test_watch_run_refuses_a_foreign_program(tmp_path: Path):
    if platform.machine() == "aarch64":
        pytest.skip("this machine runs AArch64 programs natively")
    (tmp_path / "p.toy").write_text("fn main() { }\n")
    r = toyc("watch", "--run", "p.toy", *ARCH, cwd=tmp_path)
    assert r.status == 1 and "--run swaps code into a program running natively" in r.stderr


def test_watch_keeps_an_aarch64_program_current(tmp_path: Path):
    """`toyc watch --arch aarch64`: every save updates the file, which qemu runs."""
    src, prog = tmp_path / "src.toy", tmp_path / "prog"
    src.write_text(SMALL.format(body="return x + 1;"))
    w = Watcher(tmp_path, *ARCH)
    try:
        assert "(full build)" in w.line()
        w.wait_watching()
        assert run([*runner("aarch64"), str(prog)]).stdout == "4\n"
        for body, said, out in (("return x + 2;", "grow (in place)", "5\n"),
                                (BIG_BODY, "grow (moved, trampoline)", None)):
            save_in_place(src, SMALL.format(body=body))
            line = w.line()
            assert line.startswith(f"updated {said}"), line
            r = run([*runner("aarch64"), str(prog)])
            assert r.status == 0 and (out is None or r.stdout == out), r
    finally:
        w.stop()
