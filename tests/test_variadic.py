"""Calls of variadic externs and of externs with more than six parameters (LANGUAGE.md, Externs).

- tests/c/variadic.c, built by gcc -O0 and -O2 and by clang when it is installed, linked into
  a Toy executable by toyc: calls with 0 to 12 arguments after the fixed ones, of every kind
  and from every kind of operand (literals, 64-bit constants, locals in registers and in
  stack slots, globals, array elements, computed values, nested calls that pass stack
  arguments of their own), inside expressions whose other operands are live across the call,
  as arguments of other calls, in a loop; functions of 8 and 10 parameters, and one of 8
  fixed parameters and more after them. The C overwrites every caller-saved register before
  it returns and counts the calls that found the stack not 16-byte aligned; each result is
  checked against a model of its checksum here (`Model`).
- The x86_64 code: `xor eax, eax` right before each call of a variadic extern and no other;
  the stack arguments removed right after the call.
- A Toy object (`toyc build -c`) linked by gcc into a C program, calling the real `printf`
  with up to 16 arguments of each kind, and `snprintf` into C's buffer (whole and truncated):
  it prints what the same calls print from C.
- AArch64: the same program and C (aarch64-linux-gnu-gcc, else clang's aarch64 target), the
  Toy object linked by GNU ld with a `_start`, run under qemu; `printf` and `snprintf` when
  aarch64-linux-gnu-gcc is installed (with its C library), else skipped.
- An incremental update that makes an extern variadic regenerates its callers; one that makes
  it fixed again reports the calls that pass too many arguments.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import TOYC, binutil, require, run, runner

C_SOURCE = Path(__file__).resolve().parent / "c" / "variadic.c"
MASK = (1 << 64) - 1
INT_MAX, INT_MIN = (1 << 63) - 1, -(1 << 63)

EXTERNS = """\
extern fn hash_va(n: int, ...) -> int;
extern fn kinds_va(kinds: str, ...) -> int;
extern fn eight(a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int) -> int;
extern fn ten(a: int, b: bool, c: str, d: int, e: int, f: int, g: bool, h: str, i: int,
              j: int) -> int;
extern fn wide_va(a: int, b: int, c: int, d: int, e: int, f: int, g: int, n: int, ...) -> int;
extern fn odd_va(n: int, ...) -> bool;
extern var misaligned: int;
extern var calls: int;
"""
VARIADIC = ("hash_va", "kinds_va", "wide_va", "odd_va")


# ---- the C side's checksums -------------------------------------------------------------------


def wrap(x: int) -> int:
    x &= MASK
    return x - (1 << 64) if x >> 63 else x


def mix(h: int, x: int) -> int:
    return wrap(h * 1000003 ^ x)


def str_hash(s: str) -> int:
    h = 5381
    for c in s.encode():
        h = (h * 33 + c) & MASK
    return wrap(h)


def word(x: int | bool) -> int:
    return int(x)


class Model:
    """What tests/c/variadic.c returns, and how many calls it has counted."""

    def __init__(self):
        self.calls = 0

    def hash_va(self, n: int, *xs) -> int:
        self.calls += 1
        h = 17 + n
        for x in xs:
            h = mix(h, word(x))
        return h

    def kinds_va(self, kinds: str, *xs) -> int:
        self.calls += 1
        h = str_hash(kinds)
        for k, x in zip(kinds, xs, strict=True):
            h = mix(h, str_hash(x) if k == "s" else word(x))
        return h

    def eight(self, *xs) -> int:
        self.calls += 1
        h = 8
        for x in xs:
            h = mix(h, x)
        return h

    def ten(self, *xs) -> int:
        self.calls += 1
        h = 10
        for x in xs:
            h = mix(h, str_hash(x) if isinstance(x, str) else word(x))
        return h

    def wide_va(self, *xs) -> int:
        self.calls += 1
        h = 7
        for x in xs:
            h = mix(h, word(x))
        return h

    def odd_va(self, n: int, *xs) -> bool:
        self.calls += 1
        return bool(sum(word(x) for x in xs) & 1)


# ---- a Toy program calling it, and what it prints ---------------------------------------------


@dataclass
class Arg:
    toy: str  # the expression
    value: int | bool | str
    kind: str  # "i", "b" or "s"


def show(v: int | bool | str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


G = -77
LOCALS = [wrap(G * (j + 1) + 1000 * j) for j in range(12)]  # l0 ... l11
ENV = {"a": G + 80, "b": G + 72, "t": G < 0, "s": "local", "g": G, "gb": True,
       "gs": "a global", "GS": "a constant", "BIG": INT_MAX, "SMALL": INT_MIN,
       **{f"l{j}": v for j, v in enumerate(LOCALS)}}
ARR = [10, 20, 30, 40]
FLAGS = [False, True, False]

GLOBALS = f"""\
const BIG: int = {INT_MAX};
const SMALL: int = -{INT_MAX} - 1;
const GS: str = "a constant";
var g: int = {G};
var gb: bool = true;
var gs: str = "a global";
var arr: [int; 4] = [10, 20, 30, 40];
var flags: [bool; 3] = [false, true, false];
"""
# Locals from a global, so that nothing folds them; more of them than registers, all live to
# the end, so that some live in stack slots.
PROLOGUE = """\
    let a = g + 80;
    let b = g + 72;
    let t = g < 0;
    let s = "local";
""" + "".join(f"    let l{j} = g * {j + 1} + {1000 * j};\n" for j in range(12))
WORDS = ["x", "toy", "hello, world", "a%b", "0123456789abcdef", "tab\there", "!?"]
LITERALS = [0, 1, -1, 42, (1 << 31) - 1, -(1 << 31), 1 << 31, -(1 << 31) - 1, (1 << 40) + 3,
            INT_MAX, -INT_MAX]


class Program:
    """Random statements that call the C functions, with the lines they print."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.model = Model()
        self.lines: list[str] = []
        self.expect: list[str] = []
        self.lets = 0

    # operands
    def int_arg(self, depth: int = 0) -> Arg:
        r = self.rng
        roll = r.randrange(12 if depth else 10)
        if roll == 0:
            v = r.choice(LITERALS + [r.randrange(-10**6, 10**6)])
            return Arg(str(v), v, "i")
        if roll == 1:
            name = r.choice(["BIG", "SMALL", "g"])
            return Arg(name, ENV[name], "i")
        if roll in (2, 3):
            name = r.choice(["a", "b"] + [f"l{j}" for j in range(12)])
            return Arg(name, ENV[name], "i")
        if roll == 4:
            j = r.randrange(4)
            return Arg(f"arr[{j}]", ARR[j], "i")
        if roll == 5:
            return r.choice([Arg("len(s)", 5, "i"), Arg("s[1]", ord("o"), "i"),
                             Arg("len(gs)", len(ENV["gs"]), "i")])
        if roll in (6, 7, 8, 9):
            x, y = (r.choice(["a", "b", "g"] + [f"l{j}" for j in range(12)]) for _ in "xy")
            k = r.randrange(-9, 10)
            return Arg(f"{x} * {k} + {y}", wrap(ENV[x] * k + ENV[y]), "i")
        return self.call(depth - 1, "i")

    def bool_arg(self, depth: int = 0) -> Arg:
        r = self.rng
        roll = r.randrange(7 if depth else 6)
        if roll == 0:
            v = r.random() < 0.5
            return Arg(show(v), v, "b")
        if roll == 1:
            return Arg(r.choice(["t", "gb"]), True, "b")
        if roll == 2:
            return Arg("not t", False, "b")
        if roll == 3:
            j = r.randrange(3)
            return Arg(f"flags[{j}]", FLAGS[j], "b")
        if roll in (4, 5):
            x, y = (r.choice(["a", "b", "g", "l3", "l9"]) for _ in "xy")
            return Arg(f"{x} < {y}", ENV[x] < ENV[y], "b")
        return self.call(depth - 1, "b")

    def str_arg(self) -> Arg:
        r = self.rng
        if r.random() < 0.5:
            w = r.choice(WORDS)
            return Arg('"' + w.replace("\t", "\\t") + '"', w, "s")
        name = r.choice(["s", "GS", "gs"])
        return Arg(name, ENV[name], "s")

    def arg(self, kind: str, depth: int) -> Arg:
        if kind == "i":
            return self.int_arg(depth)
        return self.bool_arg(depth) if kind == "b" else self.str_arg()

    # calls
    def call(self, depth: int, kind: str, extra: int | None = None, fn: str | None = None) -> Arg:
        """A call of one of the C functions returning `kind`, with `extra` variadic
        arguments (random when None)."""
        r = self.rng
        m = self.model
        n = r.randrange(13) if extra is None else extra
        if kind == "b":
            args = [self.arg(r.choice("ib"), depth) for _ in range(n)]
            return self.text("odd_va", [Arg(str(n), n, "i"), *args], m.odd_va(n, *values(args)),
                             "b")
        fn = fn or r.choice(["hash_va", "kinds_va", "wide_va", "eight", "ten"])
        if fn == "hash_va":
            args = [self.arg(r.choice("iib"), depth) for _ in range(n)]
            return self.text(fn, [Arg(str(n), n, "i"), *args], m.hash_va(n, *values(args)))
        if fn == "kinds_va":
            args = [self.arg(r.choice("ibs"), depth) for _ in range(n)]
            kinds = "".join(a.kind for a in args)
            return self.text(fn, [Arg(f'"{kinds}"', kinds, "s"), *args],
                             m.kinds_va(kinds, *values(args)))
        if fn == "wide_va":
            fixed = [self.int_arg(depth) for _ in range(7)] + [Arg(str(n), n, "i")]
            args = [self.arg(r.choice("ib"), depth) for _ in range(n)]
            return self.text(fn, fixed + args, m.wide_va(*values(fixed + args)))
        if fn == "eight":
            args = [self.int_arg(depth) for _ in range(8)]
            return self.text(fn, args, m.eight(*values(args)))
        args = [self.arg(k, depth) for k in "ibsiiibsii"]
        return self.text(fn, args, m.ten(*values(args)))

    def text(self, fn: str, args: list[Arg], value, kind: str = "i") -> Arg:
        return Arg(f"{fn}({', '.join(a.toy for a in args)})", value, kind)

    # statements
    def statement(self, call: Arg) -> None:
        r = self.rng
        how = r.randrange(4)
        if call.kind == "b":
            if how < 2:
                self.lines.append(f"    if {call.toy} {{ print(1, a); }} else {{ print(0, b); }}")
                self.expect.append(f"{int(call.value)} {ENV['a'] if call.value else ENV['b']}")
                return
            how = 0 if how == 2 else 3
        if how == 0:
            self.lines.append(f"    print({call.toy});")
            self.expect.append(show(call.value))
        elif how == 1:
            j = r.randrange(12)
            self.lines.append(f"    print(l{j} * 3 + {call.toy} - a, l{j});")
            self.expect.append(f"{wrap(LOCALS[j] * 3 + call.value - ENV['a'])} {LOCALS[j]}")
        elif how == 2:
            self.lets += 1
            x = f"x{self.lets}"
            self.lines.append(f"    let {x} = {call.toy};")
            self.lines.append(f"    print({x} ^ b, {x});")
            self.expect.append(f"{call.value ^ ENV['b']} {call.value}")
        else:
            value = self.model.hash_va(2, call.value, ENV["a"] * 5)
            self.lines.append(f"    print(hash_va(2, {call.toy}, a * 5));")
            self.expect.append(str(value))

    def loop(self) -> None:
        m = self.model
        self.lines += [
            "    let i = 0;",
            "    let acc = g;",
            "    while i < 13 {",
            '        acc = acc * 31 + hash_va(3, i, acc, l3) - kinds_va("bis", i % 2 == 0, '
            "i * l1, s);",
            "        if odd_va(2, i, acc) {",
            "            acc += ten(i, t, s, acc, l0, l1, i > 5, GS, l2, b) + "
            "wide_va(i, acc, a, b, l4, l5, l6, 2, i * 2, acc - 1);",
            "        }",
            "        i += 1;",
            "    }",
            "    print(acc, i);",
        ]
        e = ENV
        acc = G
        for i in range(13):
            acc = wrap(acc * 31 + m.hash_va(3, i, acc, e["l3"])
                       - m.kinds_va("bis", i % 2 == 0, i * e["l1"], e["s"]))
            if m.odd_va(2, i, acc):
                acc = wrap(acc + m.ten(i, e["t"], e["s"], acc, e["l0"], e["l1"], i > 5,
                                       e["GS"], e["l2"], e["b"])
                           + m.wide_va(i, acc, e["a"], e["b"], e["l4"], e["l5"], e["l6"], 2,
                                       i * 2, wrap(acc - 1)))
        self.expect.append(f"{acc} 13")

    def source(self, head: str) -> str:
        """The whole program, its statements in function `head` (`fn main()`, or an export
        for an object)."""
        for n in range(13):
            for fn in ("hash_va", "kinds_va", "wide_va"):
                self.statement(self.call(1, "i", n, fn))
            self.statement(self.call(1, "b", n))
        for _ in range(6):
            self.statement(self.call(1, "i", fn=self.rng.choice(["eight", "ten"])))
        self.loop()
        self.lines.append("    print(" + " + ".join(f"l{j}" for j in range(12)) + ", a, b, t, s);")
        self.expect.append(f"{wrap(sum(LOCALS))} {ENV['a']} {ENV['b']} true local")
        self.lines.append("    print(misaligned, calls);")
        self.expect.append(f"0 {self.model.calls}")
        return EXTERNS + GLOBALS + head + " {\n" + PROLOGUE + "\n".join(self.lines) + "\n}\n"


def values(args: list[Arg]) -> list:
    return [a.value for a in args]


# ---- x86_64: C objects linked by toyc ---------------------------------------------------------


COMPILERS = {"gcc-O0": ("gcc", "-O0"), "gcc-O2": ("gcc", "-O2"), "clang-O2": ("clang", "-O2")}


def compile_c(out: Path, compiler: str, *flags: str) -> Path:
    # no C library: no stack protector, whose canary it would provide
    r = run([compiler, "-fno-stack-protector", *flags, "-c", str(C_SOURCE), "-o", str(out)])
    assert r.status == 0, r.stderr
    return out


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("mode", list(COMPILERS))
def test_calls_into_c(tmp_path: Path, mode: str, seed: int):
    name, opt = COMPILERS[mode]
    compiler = shutil.which(name)
    if compiler is None:
        pytest.skip(f"{name} is not installed")
    obj = compile_c(tmp_path / "variadic.o", compiler, opt)
    prog = Program(seed)
    (tmp_path / "prog.toy").write_text(prog.source("fn main()"))
    r = run([*TOYC, "build", "prog.toy", str(obj), "-o", "prog"], cwd=tmp_path)
    assert (r.status, r.stderr) == (0, ""), r.stderr
    out = run([str(tmp_path / "prog")])
    assert (out.status, out.stderr) == (0, "")
    assert out.stdout.splitlines() == prog.expect
    check_call_sites(tmp_path / "prog")


def check_call_sites(exe: Path) -> None:
    """`al` is zeroed right before each call of a variadic extern, and only there; stack
    arguments are removed right after the call that took them."""
    dump = run([require("objdump"), "-d", "-Mintel", "--no-show-raw-insn", str(exe)]).stdout
    body = dump.split("<main>:", 1)[1].split("\n\n", 1)[0]
    insns = [" ".join(line.split(":", 1)[1].split()) for line in body.splitlines()
             if ":" in line]
    seen = set()
    for i, insn in enumerate(insns):
        m = re.match(r"call \w+ <(\w+)>", insn)
        if not m or m.group(1) not in (*VARIADIC, "eight", "ten"):
            continue
        callee = m.group(1)
        seen.add(callee)
        assert (insns[i - 1] == "xor eax,eax") == (callee in VARIADIC), (callee, insns[i - 1])
        if callee in ("eight", "ten", "wide_va"):
            assert re.fullmatch(r"add rsp,0x[0-9a-f]+", insns[i + 1]), insns[i + 1]
    assert seen == {*VARIADIC, "eight", "ten"}, seen


# ---- x86_64: printf and snprintf of the C library ---------------------------------------------


@dataclass
class CArg:
    toy: str
    c: str
    spec: str


def printf_args(rng: random.Random, n: int) -> list[CArg]:
    out = []
    for _ in range(n):
        kind = rng.choice("iiibss")
        if kind == "i":
            v = rng.choice(LITERALS + [rng.randrange(-10**9, 10**9)])
            c = f"({-INT_MAX}L - 1)" if v == INT_MIN else f"{v}L"
            spec = rng.choice(["%ld", "%lx", "%+ld", "%20ld", "%-12ld|", "%lu", "%lo"])
            out.append(CArg(str(v), c, spec))
        elif kind == "b":
            v = rng.random() < 0.5
            out.append(CArg(show(v), str(int(v)), rng.choice(["%d", "%3d"])))
        else:
            w = rng.choice(WORDS).replace("\t", "\\t")
            out.append(CArg(f'"{w}"', f'"{w}"', rng.choice(["%s", "[%8s]", "%.3s", "%-6s|"])))
    return out


PRINTF_COUNTS = [0, 1, 4, 5, 6, 7, 8, 12, 16]


def printf_calls(seed: int) -> tuple[str, str]:
    """The same calls of printf and snprintf as Toy (an exported `toy_prints(buf, size)`)
    and as C statements."""
    rng = random.Random(seed)
    toy, c = [], []
    for n in PRINTF_COUNTS:
        args = printf_args(rng, n)
        fmt = f"{n}:" + " ".join(a.spec for a in args) + "\\n"
        # C's printf returns an `int`: only the low 32 bits of the result are defined.
        toy.append(f'    total += printf("{fmt}"{"".join(", " + a.toy for a in args)}) '
                   "& 0xffffffff;")
        c.append(f'    total += printf("{fmt}"{"".join(", " + a.c for a in args)});')
    for n, size in ((3, "size"), (9, "size"), (12, "16"), (6, "1")):
        args = printf_args(rng, n)
        fmt = "<" + ",".join(a.spec for a in args) + ">"
        toy.append(f'    n = snprintf(buf, {size}, "{fmt}"{"".join(", " + a.toy for a in args)})'
                   " & 0xffffffff;")
        toy.append('    total += printf("%ld [%s]\\n", n, buf) & 0xffffffff;')
        c.append(f'    n = snprintf(buf, {size}, "{fmt}"{"".join(", " + a.c for a in args)});')
        c.append('    total += printf("%ld [%s]\\n", n, buf);')
    # a printf of a printf's result, and values computed in Toy
    toy.append('    total += printf("%d %s %ld\\n", size > 10, "nested", '
               'printf("%s=%ld,", "size", size * 2 - 1) & 0xffffffff) & 0xffffffff;')
    c.append('    total += printf("%d %s %ld\\n", size > 10, "nested", '
             '(long)printf("%s=%ld,", "size", size * 2 - 1));')
    toy_src = ("extern fn printf(fmt: str, ...) -> int;\n"
               "extern fn snprintf(buf: int, size: int, fmt: str, ...) -> int;\n"
               "export fn toy_prints(buf: int, size: int) -> int {\n"
               "    let total = 0;\n    let n = 0;\n" + "\n".join(toy) +
               "\n    return total;\n}\n")
    c_src = ("#include <stdio.h>\n"
             "long toy_prints(char *buf, long size);\n"
             "static long c_prints(char *buf, long size) {\n"
             "    long total = 0;\n    long n = 0;\n" + "\n".join(c) +
             "\n    return total;\n}\n"
             "int main(void) {\n"
             "    char buf[64];\n"
             '    printf("total %ld\\n", toy_prints(buf, sizeof buf));\n'
             '    printf("----\\n");\n'
             '    printf("total %ld\\n", c_prints(buf, sizeof buf));\n'
             "    return 0;\n}\n")
    return toy_src, c_src


def check_same_output(stdout: str) -> None:
    toy, c = stdout.split("----\n")
    assert toy == c
    assert toy.count("\n") == len(PRINTF_COUNTS) + 4 + 2
    assert "16:" in toy and "nested" in toy


@pytest.mark.parametrize("mode", [[], ["-static"]], ids=["pie", "static"])
def test_printf_from_a_toy_object(tmp_path: Path, mode: list[str]):
    toy_src, c_src = printf_calls(7)
    (tmp_path / "prints.toy").write_text(toy_src)
    (tmp_path / "main.c").write_text(c_src)
    r = run([*TOYC, "build", "-c", "prints.toy"], cwd=tmp_path)
    assert (r.status, r.stderr) == (0, ""), r.stderr
    cc = run([require("gcc"), *mode, "main.c", "prints.o", "-o", "prog"], cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    out = run([str(tmp_path / "prog")])
    assert (out.status, out.stderr) == (0, "")
    check_same_output(out.stdout)


# ---- AArch64: the Toy object linked by GNU ld, run under qemu ---------------------------------


START = """\
    .global _start
_start:
    bl run
    mov x0, #0
    mov x8, #94
    svc #0
"""


def aarch64_c_compiler() -> list[str]:
    gcc = shutil.which("aarch64-linux-gnu-gcc")
    if gcc is not None:
        return [gcc]
    clang = shutil.which("clang")
    if clang is not None:
        return [clang, "--target=aarch64-linux-gnu", "-ffreestanding"]
    pytest.skip("neither aarch64-linux-gnu-gcc nor clang is installed")


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_aarch64_calls_into_c(tmp_path: Path, opt: str):
    exe_runner = runner("aarch64")
    compiler = aarch64_c_compiler()
    r = run([*compiler, "-fno-stack-protector", opt, "-c", str(C_SOURCE), "-o", "variadic.o"],
            cwd=tmp_path)
    assert r.status == 0, r.stderr
    prog = Program(3)
    (tmp_path / "prog.toy").write_text(prog.source("export fn run()"))
    r = run([*TOYC, "build", "-c", "--arch", "aarch64", "prog.toy"], cwd=tmp_path)
    assert (r.status, r.stderr) == (0, ""), r.stderr
    (tmp_path / "start.s").write_text(START)
    assert run([binutil("as", "aarch64"), "start.s", "-o", "start.o"], cwd=tmp_path).status == 0
    ld = run([binutil("ld", "aarch64"), "start.o", "prog.o", "variadic.o", "-o", "prog"],
             cwd=tmp_path)
    assert ld.status == 0, ld.stderr
    out = run([*exe_runner, str(tmp_path / "prog")])
    assert (out.status, out.stderr) == (0, "")
    assert out.stdout.splitlines() == prog.expect


def test_aarch64_printf_from_a_toy_object(tmp_path: Path):
    exe_runner = runner("aarch64")
    gcc = shutil.which("aarch64-linux-gnu-gcc")
    if gcc is None:
        pytest.skip("aarch64-linux-gnu-gcc is not installed (Debian: gcc-aarch64-linux-gnu)")
    toy_src, c_src = printf_calls(8)
    (tmp_path / "prints.toy").write_text(toy_src)
    (tmp_path / "main.c").write_text(c_src)
    r = run([*TOYC, "build", "-c", "--arch", "aarch64", "prints.toy"], cwd=tmp_path)
    assert (r.status, r.stderr) == (0, ""), r.stderr
    # static: qemu then needs no AArch64 dynamic loader and C library to run it
    cc = run([gcc, "-static", "main.c", "prints.o", "-o", "prog"], cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    out = run([*exe_runner, str(tmp_path / "prog")])
    assert (out.status, out.stderr) == (0, "")
    check_same_output(out.stdout)


# ---- incremental updates ----------------------------------------------------------------------


INC = """\
extern fn hash_va({params}) -> int;
fn main() {{
    print(hash_va(2, 5, 6));{more}
}}
"""


def test_update_that_makes_an_extern_variadic(tmp_path: Path):
    obj = compile_c(tmp_path / "variadic.o", require("gcc"), "-O2")
    src = tmp_path / "prog.toy"
    expect = f"{Model().hash_va(2, 5, 6)}\n"

    def build(params: str, more: str = "") -> tuple[str, str]:
        src.write_text(INC.format(params=params, more=more))
        r = run([*TOYC, "build", "-v", "prog.toy", str(obj), "-o", "prog"], cwd=tmp_path)
        return r.stdout, r.stderr

    out, _ = build("n: int, a: int, b: int")
    assert "full build" in out
    assert run([str(tmp_path / "prog")]).stdout == expect
    out, err = build("n: int, ...")
    assert out.startswith("updated main (in place)") and err == "", out + err
    assert run([str(tmp_path / "prog")]).stdout == expect
    dump = run([require("objdump"), "-d", "-Mintel", "--no-show-raw-insn",
                str(tmp_path / "prog")]).stdout
    assert re.search(r"xor\s+eax,eax\n.*call\s+\w+ <hash_va>", dump), dump
    # main alone changes: it is checked against what the state file kept of the extern
    out, err = build("n: int, ...", " print(hash_va(1, 7));")
    assert out.startswith("updated main") and err == "", out + err
    assert run([str(tmp_path / "prog")]).stdout == expect + f"{Model().hash_va(1, 7)}\n"
    out, err = build("n: int")
    assert "prog.toy:3:11: error: 'hash_va' takes 1 argument but 3 were given" in err, err
    assert run([str(tmp_path / "prog")]).stdout.startswith(expect)  # the last good build
