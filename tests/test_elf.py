"""The executables toyc writes, checked with the reference tools only.

Every program here (each of `samples/*.toy`, plus a few generated ones) is built once, then its
output file is examined with pyelftools, `readelf -a`, `eu-elflint --gnu-ld`, `objdump -d` and
`nm -S`; none of toyc's own modules is imported. What the source declares is read from the
source text by the small scanner below, so the expectations do not come from the compiler either.

The layout under test (DESIGN.md, the seed's ZigObject, LANGUAGE.md "Where each declaration lives"):

    PT_LOAD 0x4000000   R+W+X   .text.zig         PROGBITS  AX   functions, runtime helpers
    PT_LOAD 0xc000000   R+W     .data.rel.ro.zig  PROGBITS  WA   const globals, string literals
    PT_LOAD 0x10000000  R+W     .data.zig         PROGBITS  WA   vars with a non-zero initializer
    PT_LOAD 0x14000000  R+W     .bss.zig          NOBITS    WA   zero vars (no file bytes)
    PT_GNU_STACK; .symtab, .strtab, .shstrtab; empty markers .text.zig.writable, .bss.zig.writable
"""

from __future__ import annotations

import ast
import io
import operator
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ARCHES, ELF_MACHINE, SAMPLES, binutil, build, build_text, require, run, runner

PAGE = 0x1000
PF_X, PF_W, PF_R = 1, 2, 4
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
TEXT, RODATA, DATA, BSS = ".text.zig", ".data.rel.ro.zig", ".data.zig", ".bss.zig"
# segment address -> (segment flags, section, section type, section flags)
ZIG_SEGMENTS = {
    0x4000000: (PF_R | PF_W | PF_X, TEXT, "SHT_PROGBITS", SHF_ALLOC | SHF_EXECINSTR),
    0xC000000: (PF_R | PF_W, RODATA, "SHT_PROGBITS", SHF_ALLOC | SHF_WRITE),
    0x10000000: (PF_R | PF_W, DATA, "SHT_PROGBITS", SHF_ALLOC | SHF_WRITE),
    0x14000000: (PF_R | PF_W, BSS, "SHT_NOBITS", SHF_ALLOC | SHF_WRITE),
}
MARKERS = {".text.zig.writable": 0x4000000, ".bss.zig.writable": 0x14000000}
ELEM_SIZE = {"int": 8, "bool": 1, "str": 8}


# ---- reading Toy source, independently of the compiler ------------------------------------------

TOKEN = re.compile(r"""
    (?P<skip>\s+|//[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<num>0[xX][0-9A-Fa-f_]+|0[bB][01_]+|[0-9][0-9_]*)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>->|<<|>>|==|!=|<=|>=|[-+*/%&|^~<>=(){}\[\];:,!])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "0": b"\0", "\\": b"\\", '"': b'"'}


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str


def unescape(literal: str) -> bytes:
    """The bytes of a Toy string literal (quotes included in `literal`)."""
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] == "x":
                out.append(int(body[i + 2:i + 4], 16))
                i += 4
            else:
                out += ESCAPES[body[i + 1]]
                i += 2
        else:
            out += body[i].encode()
            i += 1
    return bytes(out)


def tokenize(text: str) -> list[Tok]:
    return [Tok(m.lastgroup, m.group()) for m in TOKEN.finditer(text) if m.lastgroup != "skip"]


@dataclass
class Decl:
    kind: str  # "fn", "var" or "const"
    name: str
    threadlocal: bool = False
    extern: bool = False
    exports: list[tuple[str, str]] = field(default_factory=list)  # (symbol name, linkage)
    type: list[Tok] = field(default_factory=list)
    init: list[Tok] | None = None


def _until(toks: list[Tok], i: int, stops: set[str]) -> int:
    """Index of the first token in `stops` at bracket depth 0, from i."""
    depth = 0
    while i < len(toks):
        t = toks[i].text if toks[i].kind != "str" else '""'
        if depth == 0 and t in stops:
            return i
        if t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
        i += 1
    raise ValueError(f"unterminated declaration, looking for {stops}")


def _folded(toks: list[Tok], i: int) -> bool:
    """Whether the string literal at `i` is only a constant's source: `len("...")`,
    `"..."[N]` with N in range, or a comparison with another literal, which the compiler
    computes itself."""
    after = [t.text for t in toks[i + 1:i + 4]]
    if after[:1] in (["=="], ["!="]) and toks[i + 2].kind == "str" or \
            i >= 2 and toks[i - 1].text in ("==", "!=") and toks[i - 2].kind == "str":
        return True
    if len(after) == 3 and after[0] == "[" and after[2] == "]" and toks[i + 2].kind == "num":
        return int(after[1].replace("_", ""), 0) < len(unescape(toks[i].text))
    return i >= 2 and toks[i - 2].text == "len" and toks[i - 1].text == "(" and \
        after[:1] == [")"]


def scan(text: str) -> tuple[list[Decl], set[bytes]]:
    """The top-level declarations of a Toy source and the values of all its string literals."""
    toks = tokenize(text)
    strings = {unescape(t.text) for i, t in enumerate(toks)
               if t.kind == "str" and not _folded(toks, i)}
    decls, i = [], 0
    while i < len(toks):
        d = Decl("", "")
        while toks[i].text in ("export", "extern", "threadlocal"):
            word = toks[i].text
            i += 1
            if word == "export":
                name, linkage = None, "strong"
                if toks[i].text == "(":
                    end = _until(toks, i + 1, {")"})
                    for t in toks[i + 1:end]:
                        if t.kind == "str":
                            name = unescape(t.text).decode()
                        elif t.kind == "id":
                            linkage = t.text
                    i = end + 1
                d.exports.append((name, linkage))
            else:
                setattr(d, word, True)
        d.kind, d.name = toks[i].text, toks[i + 1].text
        assert d.kind in ("fn", "var", "const"), f"scanner lost track at {toks[i]}"
        i += 2
        if d.kind == "fn":
            i = _until(toks, i, {"{", ";"})
            if toks[i].text == "{":
                i = _until(toks, i + 1, {"}"})
        else:
            if toks[i].text == ":":  # the type may be left out when there is an initializer
                end = _until(toks, i + 1, {"=", ";"})
                d.type = toks[i + 1:end]
                i = end
            if toks[i].text == "=":
                end = _until(toks, i + 1, {";"})
                d.init = toks[i + 1:end]
                i = end
        i += 1
        d.exports = [(n or d.name, link) for n, link in d.exports]
        decls.append(d)
    return decls, strings


COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
           ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


class Unknown(Exception):
    """A constant expression this little evaluator does not handle."""


def wrap(v: int) -> int:
    return (v + (1 << 63)) % (1 << 64) - (1 << 63)


class Consts:
    """Evaluates Toy constant expressions (LANGUAGE.md: literals, operators, const names)."""

    def __init__(self, decls: list[Decl]):
        self.decls = {d.name: d for d in decls if d.kind == "const"}
        self.busy: set[str] = set()

    def value(self, toks: list[Tok]):
        words = []
        for t in toks:
            if t.kind == "num":
                s = t.text.replace("_", "").lower()
                base = 16 if s.startswith("0x") else 2 if s.startswith("0b") else 10
                words.append(str(int(s[2:] if base != 10 else s, base)))
            elif t.kind == "str":
                words.append(repr(unescape(t.text)))
            elif t.text in ("true", "false"):
                words.append(t.text.capitalize())
            else:
                words.append(t.text)
        try:
            node = ast.parse(" ".join(words), mode="eval").body
        except SyntaxError:
            raise Unknown(" ".join(words)) from None
        return self._eval(node)

    def _eval(self, n):
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.List):
            return [self._eval(e) for e in n.elts]
        if isinstance(n, ast.Name):
            d = self.decls.get(n.id)
            if d is None or d.init is None or n.id in self.busy:
                raise Unknown(n.id)
            self.busy.add(n.id)
            try:
                return self.value(d.init)
            finally:
                self.busy.discard(n.id)
        if isinstance(n, ast.UnaryOp):
            v = self._eval(n.operand)
            ops = {ast.USub: lambda: wrap(-v), ast.Invert: lambda: wrap(~v),
                   ast.Not: lambda: not v}
            if type(n.op) in ops:
                return ops[type(n.op)]()
        if isinstance(n, ast.BoolOp):
            vals = [self._eval(e) for e in n.values]
            return all(vals) if isinstance(n.op, ast.And) else any(vals)
        if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in COMPARE:
            return COMPARE[type(n.ops[0])](self._eval(n.left), self._eval(n.comparators[0]))
        if isinstance(n, ast.BinOp):
            a, b = self._eval(n.left), self._eval(n.right)
            if isinstance(n.op, ast.Div | ast.Mod):
                if b == 0:
                    raise Unknown("division by zero")
                q = wrap(abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1))
                return q if isinstance(n.op, ast.Div) else wrap(a - q * b)
            ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                   ast.LShift: lambda: a << (b % 64), ast.RShift: lambda: a >> (b % 64),
                   ast.BitAnd: lambda: a & b, ast.BitOr: lambda: a | b,
                   ast.BitXor: lambda: a ^ b}
            if type(n.op) in ops:
                return wrap(ops[type(n.op)]())
        raise Unknown(ast.dump(n))


@dataclass
class GlobalInfo:
    """What the source says about one global: its element type, size, value and home."""

    decl: Decl
    elem: str
    count: int | None  # array length, None for a scalar
    size: int | None  # None when the length expression is beyond the evaluator
    value: object  # the evaluated initializer, None if absent, Unknown if not evaluable
    sections: set[str]


def global_info(d: Decl, consts: Consts) -> GlobalInfo:
    if d.init is None:
        value = None
    else:
        try:
            value = consts.value(d.init)
        except Unknown:
            value = Unknown
    names = [t.text for t in d.type]
    count = None
    if not names:  # inferred from the initializer
        first = value[0] if isinstance(value, list) and value else value
        elem = ("bool" if isinstance(first, bool) else "int" if isinstance(first, int)
                else "str" if isinstance(first, bytes) else "?")
        count = len(value) if isinstance(value, list) else None
    elif names[0] == "[":
        elem = names[1]
        try:
            count = consts.value(d.type[3:-1])
        except Unknown:
            count = -1
    else:
        elem = names[0]
    size = None if count == -1 or elem == "?" else ELEM_SIZE[elem] * (count or 1)
    flat = value if isinstance(value, list) else [value]
    zero = value is None or (value is not Unknown and all(
        v in (0, False) for v in flat))
    if d.threadlocal:
        sections = {".tbss"} if zero else {".tdata"} if value is not Unknown else {
            ".tdata", ".tbss"}
    elif d.kind == "const":
        sections = {RODATA}
    elif elem == "str":
        # The zero value of a str is the empty string, whose address is not zero; LANGUAGE.md's
        # table puts an uninitialised var in .bss.zig, so either home is accepted for it.
        sections = {DATA} if value not in (None, b"") and value is not Unknown else {DATA, BSS}
    elif value is Unknown:
        sections = {DATA, BSS}
    else:
        sections = {BSS} if zero else {DATA}
    return GlobalInfo(d, elem, None if count == -1 else count, size, value, sections)


# ---- reading the ELF file ------------------------------------------------------------------------

@dataclass
class Sym:
    index: int
    name: str
    type: str
    bind: str
    shndx: int | str
    value: int
    size: int


@dataclass
class Image:
    data: bytes
    header: dict
    segments: list[dict]
    sections: list[dict]  # header fields plus "name" and "index"
    symbols: list[Sym]
    symtab_info: int

    @classmethod
    def load(cls, path: Path) -> Image:
        data = path.read_bytes()
        elf = ELFFile(io.BytesIO(data))
        sections = []
        for i, s in enumerate(elf.iter_sections()):
            h = dict(s.header)
            h.update(name=s.name, index=i)
            sections.append(h)
        symtab = elf.get_section_by_name(".symtab")
        assert symtab is not None, "no .symtab"
        symbols = [Sym(i, s.name, s["st_info"]["type"], s["st_info"]["bind"], s["st_shndx"],
                       s["st_value"], s["st_size"]) for i, s in enumerate(symtab.iter_symbols())]
        return cls(data, dict(elf.header), [dict(p.header) for p in elf.iter_segments()],
                   sections, symbols, symtab["sh_info"])

    def section(self, name: str) -> dict:
        found = [s for s in self.sections if s["name"] == name]
        assert len(found) == 1, f"expected one section {name}, found {len(found)}"
        return found[0]

    def loads(self) -> list[dict]:
        return [p for p in self.segments if p["p_type"] == "PT_LOAD"]

    def section_name(self, sym: Sym) -> str | None:
        return self.sections[sym.shndx]["name"] if isinstance(sym.shndx, int) else None

    def named(self, name: str) -> list[Sym]:
        return [s for s in self.symbols if s.name == name]

    def read(self, addr: int, size: int) -> bytes:
        """`size` bytes of the program's initial memory image at `addr`."""
        for p in self.loads():
            if p["p_vaddr"] <= addr and addr + size <= p["p_vaddr"] + p["p_memsz"]:
                out = bytearray(size)
                rel = addr - p["p_vaddr"]
                n = max(0, min(size, p["p_filesz"] - rel))
                out[:n] = self.data[p["p_offset"] + rel:p["p_offset"] + rel + n]
                return bytes(out)
        raise AssertionError(f"[{addr:#x}, +{size}) is not inside one PT_LOAD segment")


def string_at(img: Image, addr: int) -> bytes:
    """The str whose first byte is at `addr`: u64 length before it, NUL after it."""
    (length,) = struct.unpack("<Q", img.read(addr - 8, 8))
    assert length < 1 << 28, f"implausible str length {length} at {addr:#x}"
    body = img.read(addr, length + 1)
    assert body[-1] == 0, f"str at {addr:#x} is not NUL-terminated"
    return body[:-1]


def string_symbol(img: Image, sym: Sym) -> bytes:
    """The contents of a `toy.str.N` symbol, whether it starts at the length or at the bytes."""
    raw = img.read(sym.value, sym.size)
    if sym.size >= 9 and struct.unpack("<Q", raw[:8])[0] == sym.size - 9 and raw[-1] == 0:
        return raw[8:-1]
    (length,) = struct.unpack("<Q", img.read(sym.value - 8, 8))
    assert sym.size >= 1 and length == sym.size - 1 and raw[-1] == 0, \
        f"{sym.name} ({sym.size} bytes at {sym.value:#x}) is not a length, bytes and a NUL"
    return raw[:-1]


# ---- the programs under test ---------------------------------------------------------------------

GLOBALS_TOY = r"""
// Every kind of global, with the section and size LANGUAGE.md gives it.
const K: int = 1 << 4;
const NEG: int = -9223372036854775807 - 1;
const ZERO: int = 0;
const YES: bool = true;
const NO: bool = false;
const NAME: str = "toy";
const INFERRED = 010 + 0b1;
const IFLAGS = [true, true, false, true, false,];
const PRIMES: [int; 5] = [2, 3, 5, 7, 11];
const MASK: [bool; 3] = [true, false, true];
var counter: int = 42;
var minus: int = -1;
var hexed: int = 0x7fff_ffff;
var flag: bool = true;
var label: str = "label";
var empty: str = "";
var nostr: str;
var table: [int; K] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, K];
var bits: [bool; K - 3];
var some: [bool; 4] = [false, false, true, false];
var zeros: [int; 3] = [0, 0, 0];
var zcount: int = 5 - 5;
var zflag: bool = false;
var plain: int;
var grid: [int; 1000];

fn bump(by: int) -> int {
    counter += by;
    return counter;
}

fn noresult() {
    plain = plain + 1;
}

fn main() -> int {
    noresult();
    bits[12] = true;
    grid[999] = bump(K);
    print(counter, minus, hexed, flag, label, len(empty), len(nostr), NAME, NEG);
    print(table[0], table[15], len(table), bits[12], some[2], zeros[1], zcount, zflag, plain);
    print(PRIMES[4], MASK[0], MASK[1], YES, NO, ZERO, grid[999], len(grid), len(bits));
    print(INFERRED, len(IFLAGS), IFLAGS[3]);
    return 0;
}
"""
GLOBALS_OUT = [
    "58 -1 2147483647 true label 0 0 toy -9223372036854775808",
    "1 16 16 true true 0 0 false 1",
    "11 true false true false 0 58 1000 13",
    "11 5 true",
]

STRINGS_TOY = r"""
// Identical literals, spelled the same or not, in globals and functions: each stored once.
const GREET: str = "alpha";
var who: str = "beta";
var other: str = "beta";
var nothing: str = "";

fn one() {
    print("alpha", "beta");
    print("alpha");
}

fn two() -> int {
    print("gamma delta", "\x61lpha", "tab\tx", "tab\x09x", "");
    print("line\nbreak", "ünïcödé", "ünïcödé");
    return 2;
}

fn main() {
    one();
    print(GREET, who, other, nothing, "alpha", two(), "");
}
"""
STRINGS_OUT = [
    "alpha beta", "alpha", "gamma delta alpha tab\tx tab\tx ", "line", "break ünïcödé ünïcödé",
    "alpha beta beta  alpha 2 ",
]


def large_program(n_funcs: int = 2000) -> tuple[str, list[str]]:
    """Many functions, many globals, a 800 KB bss array, a 100 KB string, a 32 KB data table."""
    chunk = "0123456789abcdef" * 64  # 1 KB
    lines = [
        "var big: [int; 100000];",
        "var flags: [bool; 50000];",
        f'const LONG: str = "{chunk * 100}";',
        "var table: [int; 4096] = [" + ", ".join(str(i * 3 + 1) for i in range(4096)) + "];",
        "const CTAB: [int; 1000] = [" + ", ".join(str(-i) for i in range(1000)) + "];",
    ]
    for i in range(300):
        lines.append(f"var g{i}: int = {i + 1};")
        lines.append(f"var z{i}: int;")
        lines.append(f"const c{i}: int = {i * 3};")
        lines.append(f"var b{i}: bool = {'true' if i % 2 else 'false'};")
    lines.append("fn f0(x: int) -> int { return x; }")
    for i in range(1, n_funcs):
        lines.append(
            f"fn f{i}(x: int) -> int {{\n"
            f"    big[{i} * 50] = x + {i};\n"
            f"    let s = 0;\n    let j = 0;\n"
            f"    while j < 3 {{ s += j * {i}; j += 1; }}\n"
            f'    if x < 0 {{ print("f{i} is never called with", x); }}\n'
            f"    return s + f{i - 1}(x);\n}}")
    last = n_funcs - 1
    lines.append(
        "fn main() -> int {\n"
        "    flags[49999] = true;\n"
        f"    print(f{last}(0), big[350], big[{last} * 50], len(big), len(flags), flags[49999]);\n"
        "    print(len(LONG), LONG[0], LONG[102399], table[4095], CTAB[999], g299, z299, c299,"
        " b299);\n"
        "    return 0;\n}")
    out = [
        f"{3 * last * (last + 1) // 2} 7 {last} 100000 50000 true",
        "102400 48 102 12286 -999 300 0 897 true",
    ]
    return "\n".join(lines) + "\n", out


@dataclass
class Program:
    name: str
    path: Path  # the source
    expect: list[str] | None  # standard output, None for samples (only "runs cleanly")


@dataclass
class Built:
    program: Program
    arch: str
    source: str
    exe: Path
    img: Image
    decls: list[Decl]
    strings: set[bytes]
    consts: Consts

    def functions(self) -> list[Decl]:
        return [d for d in self.decls if d.kind == "fn" and not d.extern]

    def globals(self) -> list[GlobalInfo]:
        return [global_info(d, self.consts) for d in self.decls
                if d.kind != "fn" and not d.extern]


SAMPLE_FILES = sorted(SAMPLES.glob("*.toy"))
GENERATED = ["globals", "strings", "large"]
PROGRAM_IDS = [f"sample:{p.stem}" for p in SAMPLE_FILES] + GENERATED


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """Builds each program the first time a test asks for it."""
    gen_dir = tmp_path_factory.mktemp("elfsrc")
    out_dir = tmp_path_factory.mktemp("elfout")
    cache: dict[str, Built] = {}

    def get(name: str, arch: str = "x86_64") -> Built:
        if (name, arch) in cache:
            return cache[name, arch]
        if name.startswith("sample:"):
            prog = Program(name, SAMPLES / f"{name[7:]}.toy", None)
        else:
            text, expect = {"globals": (GLOBALS_TOY, GLOBALS_OUT),
                            "strings": (STRINGS_TOY, STRINGS_OUT),
                            "large": large_program()}[name]
            path = gen_dir / f"{name}.toy"
            path.write_text(text, encoding="utf-8")
            prog = Program(name, path, expect)
        # (a sample may share a generated one's stem)
        exe = out_dir / f"{name.replace(':', '-')}-{arch}"
        result = build(prog.path.name, exe, cwd=prog.path.parent, arch=arch)
        assert result.status == 0, f"{prog.path} does not build:\n{result.stderr}"
        assert result.stderr == "" and result.stdout == ""
        source = prog.path.read_text(encoding="utf-8")
        decls, strings = scan(source)
        cache[name, arch] = Built(prog, arch, source, exe, Image.load(exe), decls, strings,
                                  Consts(decls))
        return cache[name, arch]

    return get


@pytest.fixture(params=[(p, a) for a in ARCHES for p in PROGRAM_IDS],
                ids=[f"{p}-{a}" for a in ARCHES for p in PROGRAM_IDS])
def prog(request, programs) -> Built:
    return programs(*request.param)


# ---- header, segments, sections ------------------------------------------------------------------

def test_header_and_entry_point(prog: Built):
    img = prog.img
    h = img.header
    assert h["e_ident"]["EI_CLASS"] == "ELFCLASS64" and h["e_ident"]["EI_DATA"] == "ELFDATA2LSB"
    assert h["e_type"] == "ET_EXEC"
    assert h["e_machine"] == ELF_MACHINE[prog.arch]
    start = [s for s in img.named("_start")]
    assert len(start) == 1, "exactly one _start symbol"
    assert start[0].type == "STT_FUNC" and start[0].bind == "STB_GLOBAL" and start[0].size > 0
    assert h["e_entry"] == start[0].value
    assert img.section_name(start[0]) == TEXT


def test_zig_segments(prog: Built):
    img = prog.img
    loads = img.loads()
    by_addr = {p["p_vaddr"]: p for p in loads}
    assert len(by_addr) == len(loads), "two PT_LOAD segments at one address"
    uses_tls = any(d.threadlocal for d in prog.decls)
    for vaddr, (flags, _, _, _) in ZIG_SEGMENTS.items():
        p = by_addr.get(vaddr)
        assert p is not None, f"no PT_LOAD at {vaddr:#x}"
        assert p["p_flags"] == flags, f"segment {vaddr:#x} flags {p['p_flags']} != {flags}"
        assert p["p_paddr"] == vaddr
        assert p["p_offset"] % PAGE == 0, f"segment {vaddr:#x} offset not page-aligned"
        assert p["p_align"] >= PAGE and p["p_align"] % PAGE == 0
        assert p["p_offset"] % p["p_align"] == p["p_vaddr"] % p["p_align"]
        assert p["p_filesz"] <= p["p_memsz"] and p["p_memsz"] > 0
    assert by_addr[0x14000000]["p_filesz"] == 0, "the zero-fill segment has file bytes"
    others = [p for p in loads if p["p_vaddr"] not in ZIG_SEGMENTS]
    if not uses_tls:
        assert others == [], f"unexpected PT_LOAD segments {others}"
    # no two segments share memory
    spans = sorted((p["p_vaddr"], p["p_vaddr"] + p["p_memsz"]) for p in loads)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, "PT_LOAD segments overlap in memory"
    stacks = [p for p in img.segments if p["p_type"] == "PT_GNU_STACK"]
    assert len(stacks) == 1 and stacks[0]["p_flags"] == PF_R | PF_W, "stack must be RW, not X"
    if uses_tls:
        assert [p["p_type"] for p in img.segments].count("PT_TLS") == 1


def test_file_layout_has_no_overlaps(prog: Built):
    """Header, program headers, segments, non-alloc sections and section headers: disjoint."""
    img = prog.img
    h = img.header
    pieces = [("ELF header", 0, h["e_ehsize"]),
              ("program headers", h["e_phoff"], h["e_phoff"] + h["e_phnum"] * h["e_phentsize"]),
              ("section headers", h["e_shoff"], h["e_shoff"] + h["e_shnum"] * h["e_shentsize"])]
    for p in img.loads():
        if p["p_filesz"]:
            pieces.append((f"segment {p['p_vaddr']:#x}", p["p_offset"],
                           p["p_offset"] + p["p_filesz"]))
    for s in img.sections:
        if not s["sh_flags"] & SHF_ALLOC and s["sh_type"] not in ("SHT_NULL", "SHT_NOBITS"):
            pieces.append((s["name"], s["sh_offset"], s["sh_offset"] + s["sh_size"]))
    for name, lo, hi in pieces:
        assert 0 <= lo <= hi <= len(img.data), f"{name} [{lo:#x}, {hi:#x}) is outside the file"
    pieces = sorted((lo, hi, name) for name, lo, hi in pieces if hi > lo)
    for (_, hi, a), (lo, _, b) in zip(pieces, pieces[1:], strict=False):
        assert hi <= lo, f"{a} and {b} overlap in the file"


def test_sections(prog: Built):
    img = prog.img
    names = [s["name"] for s in img.sections]
    assert len(names) == len(set(names)), f"duplicate section names {names}"
    assert img.sections[0]["sh_type"] == "SHT_NULL"
    segs = {p["p_vaddr"]: p for p in img.loads()}
    for vaddr, (_, name, stype, sflags) in ZIG_SEGMENTS.items():
        s = img.section(name)
        p = segs[vaddr]
        assert s["sh_type"] == stype, f"{name} type"
        assert s["sh_flags"] == sflags, f"{name} flags {s['sh_flags']:#x} != {sflags:#x}"
        assert s["sh_addr"] == vaddr, f"{name} address != its segment's"
        assert s["sh_addr"] + s["sh_size"] <= p["p_vaddr"] + p["p_memsz"], f"{name} overflows"
        if stype == "SHT_PROGBITS":
            assert s["sh_offset"] == p["p_offset"], f"{name} offset != its segment's"
            assert s["sh_size"] <= p["p_filesz"]
        assert s["sh_addralign"] >= 1 and vaddr % s["sh_addralign"] == 0
    for name, vaddr in MARKERS.items():
        s = img.section(name)
        assert s["sh_type"] == "SHT_PROGBITS" and s["sh_size"] == 0
        assert s["sh_flags"] == SHF_ALLOC | SHF_WRITE
        assert s["sh_addr"] == vaddr
    symtab, strtab = img.section(".symtab"), img.section(".strtab")
    assert symtab["sh_type"] == "SHT_SYMTAB" and symtab["sh_entsize"] == 24
    assert img.sections[symtab["sh_link"]]["name"] == ".strtab"
    assert strtab["sh_type"] == "SHT_STRTAB"
    shstrtab = img.section(".shstrtab")
    assert shstrtab["sh_type"] == "SHT_STRTAB"
    assert img.header["e_shstrndx"] == shstrtab["index"]
    for s in img.sections:
        if s["sh_flags"] & SHF_ALLOC:
            inside = [p for p in img.loads() if p["p_vaddr"] <= s["sh_addr"]
                      and s["sh_addr"] + s["sh_size"] <= p["p_vaddr"] + p["p_memsz"]]
            assert inside, f"allocated section {s['name']} is in no PT_LOAD segment"
        else:
            assert s["sh_addr"] == 0, f"non-allocated {s['name']} has an address"


# ---- symbols -------------------------------------------------------------------------------------

def test_symbol_table_shape(prog: Built):
    img = prog.img
    syms = img.symbols
    assert syms[0].name == "" and syms[0].type == "STT_NOTYPE" and syms[0].value == 0
    files = [s for s in syms if s.type == "STT_FILE"]
    assert len(files) == 1 and files[0].bind == "STB_LOCAL" and files[0].shndx == "SHN_ABS"
    assert files[0].name.endswith(prog.program.path.name), files[0].name
    section_syms = {img.section_name(s) for s in syms if s.type == "STT_SECTION"}
    for _, name, _, _ in ZIG_SEGMENTS.values():
        assert name in section_syms, f"no section symbol for {name}"
    for s in syms:
        if s.type == "STT_SECTION":
            assert s.value == img.sections[s.shndx]["sh_addr"] and s.bind == "STB_LOCAL"
    # locals first; sh_info is the index of the first non-local
    binds = [s.bind for s in syms]
    assert all(b == "STB_LOCAL" for b in binds[:img.symtab_info])
    assert all(b != "STB_LOCAL" for b in binds[img.symtab_info:])
    for s in syms:
        if s.type in ("STT_FUNC", "STT_OBJECT", "STT_TLS"):
            sec = img.sections[s.shndx] if isinstance(s.shndx, int) else None
            assert sec is not None and sec["sh_type"] != "SHT_NULL", f"{s.name} is undefined"
            if s.type == "STT_FUNC":
                assert sec["name"] == TEXT, f"function {s.name} in {sec['name']}"
            if s.type == "STT_TLS":
                assert sec["sh_flags"] & SHF_TLS
            else:
                assert sec["sh_addr"] <= s.value
                assert s.value + s.size <= sec["sh_addr"] + sec["sh_size"], \
                    f"{s.name} runs past the end of {sec['name']}"
    helpers = [s for s in syms if s.name.startswith("toy.rt.")]
    assert helpers, "no toy.rt.* runtime helper symbols"
    for s in helpers:
        assert s.type in ("STT_FUNC", "STT_OBJECT") and s.bind == "STB_LOCAL", s
        assert s.size > 0, f"{s.name} has no size"
    rt_names = [s.name for s in helpers]
    assert len(rt_names) == len(set(rt_names)), "a runtime helper appears twice"


def test_every_declaration_has_a_symbol(prog: Built):
    img = prog.img
    for d in prog.functions():
        syms = [s for s in img.named(d.name) if s.type == "STT_FUNC"]
        assert syms, f"no FUNC symbol for function {d.name}"
        for s in syms:
            assert s.size > 0, f"function {d.name} has size 0"
            assert img.section_name(s) == TEXT
    for g in prog.globals():
        want = "STT_TLS" if g.decl.threadlocal else "STT_OBJECT"
        syms = [s for s in img.named(g.decl.name) if s.type == want]
        assert syms, f"no {want} symbol for global {g.decl.name}"
        for s in syms:
            if g.size is not None:
                assert s.size == g.size, f"global {g.decl.name}: size {s.size}, want {g.size}"
            else:
                assert s.size > 0 and s.size % ELEM_SIZE.get(g.elem, 1) == 0
            assert img.section_name(s) in g.sections, \
                f"global {g.decl.name} in {img.section_name(s)}, want one of {g.sections}"


def test_exported_names(prog: Built):
    """Each export(...) name is a symbol with the declaration's value, size and linkage."""
    img = prog.img
    bind = {"strong": "STB_GLOBAL", "weak": "STB_WEAK", "internal": "STB_LOCAL"}
    for d in prog.decls:
        if d.extern or not d.exports:
            continue
        own = [s for s in img.named(d.name) if s.type in ("STT_FUNC", "STT_OBJECT", "STT_TLS")]
        assert own, f"no symbol for exported {d.name}"
        for name, linkage in d.exports:
            found = [s for s in img.named(name) if s.bind == bind[linkage]]
            assert found, f"export {name} ({linkage}) of {d.name} missing"
            assert any((s.value, s.size) == (own[0].value, own[0].size) for s in found)


def test_symbols_do_not_overlap(prog: Built):
    img = prog.img
    by_section: dict[int, list[tuple[int, int, str]]] = {}
    for s in img.symbols:
        if s.type in ("STT_FUNC", "STT_OBJECT", "STT_TLS") and s.size:
            by_section.setdefault(s.shndx, []).append((s.value, s.value + s.size, s.name))
    for shndx, ranges in by_section.items():
        ranges = sorted(set(ranges))
        for (lo1, hi1, a), (lo2, hi2, b) in zip(ranges, ranges[1:], strict=False):
            if (lo1, hi1) == (lo2, hi2):
                continue  # two names for one thing (an export alias)
            assert hi1 <= lo2, (f"{a} [{lo1:#x}, {hi1:#x}) overlaps {b} [{lo2:#x}, {hi2:#x}) "
                                f"in {img.sections[shndx]['name']}")


def test_global_initial_values(prog: Built):
    """The bytes of each global in the file are its initializer, little-endian."""
    img = prog.img
    for g in prog.globals():
        if g.decl.threadlocal or g.size is None or g.value is Unknown:
            continue
        (sym,) = [s for s in img.named(g.decl.name) if s.type == "STT_OBJECT"][:1]
        raw = img.read(sym.value, sym.size)
        if g.elem == "str":
            (ptr,) = struct.unpack("<Q", raw)
            assert string_at(img, ptr) == (g.value or b""), f"str global {g.decl.name}"
            continue
        values = g.value if isinstance(g.value, list) else [g.value or 0] * (g.count or 1)
        fmt = "<q" if g.elem == "int" else "<B"
        want = b"".join(struct.pack(fmt, int(v)) for v in values)
        assert raw == want, f"initial bytes of {g.decl.name}"


def test_string_literals(prog: Built):
    """Each distinct literal value is one well-formed `toy.str.N`; no two hold the same bytes."""
    img = prog.img
    strs = [s for s in img.symbols if s.name.startswith("toy.str.")]
    contents = []
    for s in strs:
        assert s.type == "STT_OBJECT" and s.bind == "STB_LOCAL", s
        assert img.section_name(s) == RODATA, f"{s.name} in {img.section_name(s)}"
        contents.append(string_symbol(img, s))
    dupes = {c for c in contents if contents.count(c) > 1}
    assert not dupes, f"string contents stored more than once: {sorted(dupes)[:5]}"
    assert len({s.name for s in strs}) == len(strs)
    for lit in prog.strings:
        n = contents.count(lit)
        assert n == 1 or (lit == b"" and n == 0), f"literal {lit[:40]!r} stored {n} times"


# ---- the reference tools -------------------------------------------------------------------------

def test_readelf_is_clean(prog: Built):
    r = run([require("readelf"), "-a", str(prog.exe)])
    assert r.status == 0, r.stderr
    assert r.stderr == "", r.stderr
    for word in ("Warning", "Error"):
        assert word not in r.stdout, [ln for ln in r.stdout.splitlines() if word in ln][:5]


def test_elflint_is_clean(prog: Built):
    r = run([require("eu-elflint"), "--gnu-ld", str(prog.exe)])
    assert r.status == 0 and "No errors" in r.stdout, r.stdout + r.stderr


def test_objdump_disassembles(prog: Built):
    r = run([binutil("objdump", prog.arch), "-d", "-j", TEXT, str(prog.exe)])
    assert r.status == 0, r.stderr
    assert f"Disassembly of section {TEXT}:" in r.stdout
    assert "(bad)" not in r.stdout, [ln for ln in r.stdout.splitlines() if "(bad)" in ln][:5]
    labels = set(re.findall(r"^[0-9a-f]+ <([^>]+)>:$", r.stdout, re.M))
    for d in prog.functions():
        assert d.name in labels, f"objdump shows no label for {d.name}"
    assert "_start" in labels


def test_nm_lists_every_declaration(prog: Built):
    r = run([require("nm"), "-S", str(prog.exe)])
    assert r.status == 0 and r.stderr == "", r.stderr
    rows: dict[str, list[tuple[int, str]]] = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows.setdefault(parts[3], []).append((int(parts[1], 16), parts[2]))
    for d in prog.functions():
        assert d.name in rows, f"nm -S lists no sized symbol {d.name}"
        assert all(size > 0 and kind in "tT" for size, kind in rows[d.name]), rows[d.name]
    for g in prog.globals():
        assert g.decl.name in rows, f"nm -S lists no sized symbol {g.decl.name}"
        for size, kind in rows[g.decl.name]:
            assert g.size is None or size == g.size, f"nm size of {g.decl.name}"
            assert kind in ("bB" if BSS in g.sections and len(g.sections) == 1 else "bBdDrR")
    assert "_start" in rows and rows["_start"][0][1] == "T"


SAMPLE_ARGS = {"ticker": ["2"]}  # it runs until stopped, unless given a count


def test_program_runs(prog: Built):
    args = SAMPLE_ARGS.get(prog.program.path.stem, []) if prog.program.expect is None else []
    r = run([*runner(prog.arch), str(prog.exe), *args], cwd=prog.exe.parent, timeout=30)
    assert r.status >= 0, f"killed by signal {-r.status}"
    if prog.program.expect is not None:
        assert r.stdout.splitlines() == prog.program.expect
        assert r.stderr == "" and r.status == 0


# ---- targeted checks -----------------------------------------------------------------------------

def test_identical_literals_stored_once(tmp_path: Path):
    """Counting toy.str symbols: repeating a literal adds none, a new value adds exactly one.

    Each program uses `print` with one str argument only, so whatever the runtime itself keeps
    as strings is the same in all three and cancels out.
    """
    base = 'fn main() {\n    print("alpha");\n}\n'
    dup = ('const A: str = "alpha";\nvar B: str = "alpha";\n'
           'fn f() {\n    print("alpha");\n    print("\\x61lpha");\n}\n'
           'fn main() {\n    print("alpha");\n    f();\n    print("alpha");\n'
           '    print(A);\n    print(B);\n}\n')
    plus = ('fn main() {\n    print("alpha");\n    print("beta");\n    print("gamma");\n'
            '    print("beta");\n    print("gam\\x6da");\n}\n')
    counts = {}
    for name, text in (("base", base), ("dup", dup), ("plus", plus)):
        result, exe = build_text(tmp_path, text, name)
        assert result.status == 0, result.stderr
        img = Image.load(exe)
        strs = [s for s in img.symbols if s.name.startswith("toy.str.")]
        contents = [string_symbol(img, s) for s in strs]
        assert contents.count(b"alpha") == 1, f"{name}: 'alpha' stored {contents.count(b'alpha')}x"
        counts[name] = len(strs)
    assert counts["dup"] == counts["base"], counts
    assert counts["plus"] == counts["base"] + 2, counts


def test_large_program_sections_are_large(programs):
    """The big program really makes every Zig section large (and the checks above ran on it)."""
    b = programs("large")
    img = b.img
    assert len(b.functions()) == 2001
    text, rodata = img.section(TEXT), img.section(RODATA)
    data, bss = img.section(DATA), img.section(BSS)
    assert text["sh_size"] >= 2000 * 32
    assert rodata["sh_size"] >= 100 * 1024 + 8000
    assert data["sh_size"] >= 4096 * 8
    assert bss["sh_size"] >= 100000 * 8 + 50000
    (long_sym,) = img.named("LONG")
    (ptr,) = struct.unpack("<Q", img.read(long_sym.value, 8))
    assert string_at(img, ptr) == b"0123456789abcdef" * 64 * 100
    (big,) = img.named("big")
    assert img.section_name(big) == BSS and big.size == 800000
