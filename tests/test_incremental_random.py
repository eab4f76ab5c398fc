"""Random programs, random edits: every incremental update must equal a clean build.

Hypothesis generates a Toy program (functions calling each other without recursion, globals of
every kind: `const` int/str/array, `var` with non-zero and zero initializers, int and bool arrays,
string literals, prints, panics on paths not taken and panics guarded by a global that `main`
arms at its very end) and a sequence of steps. A step applies one to three edits: change a
constant in a body, grow a body a lot (sometimes by hundreds of statements, so that sections
outgrow their room in the file), shrink it, add a function, remove an unused one, add or drop a
call, rename a function and its callers, change a signature and its callers, add or remove a
global, change a global's initializer (to and from zero) or its kind (const <-> var), change a
string literal, insert or delete blank lines and comments anywhere (which moves panics to other
lines), reorder declarations, export a declaration (under its own name or another, with any
linkage) or drop or relink one of its exports, make a var thread-local or plain again. Now and
then a step first saves a broken version (a syntax or type error), which must be rejected
without touching the output.

Each step updates the same output incrementally, in-process with `Session.update()` or, one step
in five, with `toyc build -v` in a subprocess (through the state file). After every step the
patched output is compared with a clean build of the same source (`Session.full_build` to
another path):

- running both gives the same stdout, stderr and exit status;
- their `.symtab` symbols are the same multiset of (name, type, size, binding, section), FILE and
  SECTION symbols and addresses left out;
- the debug info says the same as a clean build's (`conftest.debug_description`);
- `eu-elflint --gnu-ld` finds no error in the patched file;
- the update was incremental (no silent fallback to a full build).

Three tests share the machinery:

- `test_updates_match_clean_builds` runs by default: a fixed (derandomized) set of examples,
  under a minute on two cores; `test_updates_match_clean_builds_aarch64` does the same with
  fewer examples for the AArch64 plugin, its programs run under qemu-aarch64.
- `test_updates_match_clean_builds_slow` is marked `slow` and skipped unless asked for: set
  TOYC_FUZZ_EXAMPLES=N (e.g. `TOYC_FUZZ_EXAMPLES=500 python -m pytest
  tests/test_incremental_random.py`), or select it with `-m slow` (then 300 examples), each on
  every architecture. It draws
  new examples on every run, with longer edit sequences; Hypothesis keeps failing examples in its
  database (.hypothesis/) and replays them first the next time.

A failure reports the steps, the source of the failing step and what differed.
"""

from __future__ import annotations

import copy
import os
import random
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import ARCHES, TOYC, arch_args, debug_description, require, run, runner
from toyc.driver import RECURSION_LIMIT
from toyc.inputs import LinkArgs
from toyc.session import Session
from toyc.source import CompileError

# Builds raise the recursion limit; raising it first keeps Hypothesis from warning about it.
sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))

ELFLINT = require("eu-elflint")
DEFAULT_EXAMPLES = 25
DEFAULT_EXAMPLES_AARCH64 = 10  # the same generator and checks, on the plugin's backend
DEFAULT_STEPS = 12
SLOW_EXAMPLES = 300
SLOW_STEPS = 20
MAX_FUNCS = 30
MAX_CALLS = 3  # call statements per body (main: MAIN_CALLS), none inside loops
MAIN_CALLS = 6
# Calls form a DAG, so the number of calls made at run time can grow exponentially with its
# depth; edits that would make a run call functions more often than this are undone.
MAX_INVOCATIONS = 3000

# String literals as they appear in the source (escapes included). Several functions draw from
# the same few, so that identical literals share one stored copy and outlive some of their users.
LITERALS = ["hello", "tick", "a\\tb", "say \\\"hi\\\"", "x\\x41y", "", "two\\nlines", "tick",
            "a somewhat longer literal that takes more room", "\\\\back", "héllo ✓"]
# Blank and comment lines; some with tabs, non-ASCII characters (columns count characters, not
# bytes) or a CR before the LF.
PADDING = ["", "// a comment", "// note: x / 0", "\t// tabbed", "// ünïcödé ✓", "// crlf\r", "\r"]
FN_WORDS = ["calc", "mix", "step", "fold", "twist", "walk", "node", "leaf", "a", "transform"]
GLOBAL_WORDS = ["count", "total", "seed", "limit", "tab", "name", "flag", "buf", "k", "word"]
ARITH_OPS = ["+", "-", "*", "^", "|", "&", ">>", "<<"]


# ---- the program model ---------------------------------------------------------------------------

@dataclass
class Global:
    name: str
    kind: str  # "const" | "var"
    ty: str  # "int" | "str" | "bool" | "arr" (of int) | "barr" (of bool)
    value: object  # int, str literal, bool, list, or None for no initializer
    base: str | None = None  # const int: the initializer is `BASE * value + offset`
    offset: int = 0
    length: int = 4  # arrays
    length_ref: str | None = None  # arrays: the length is this const int (kept in 1..8)
    role: str = ""  # "armed": main sets it to 1 at the end; "len": an array length
    pad: list[str] = field(default_factory=list)  # blank and comment lines before it
    indent: int = 0  # spaces before each of its lines
    join: bool = False  # on the same line as the end of the declaration before it
    exports: list = field(default_factory=list)  # [name or None (its own), linkage or None]
    threadlocal: bool = False  # vars only


@dataclass
class Stmt:
    kind: str  # arith, loop, call, print, gread, gwrite, guard, armed_guard
    k: list[int]
    ref: str | None = None  # callee (by key) or global (by name)
    lit: str = ""
    sid: int = 0
    pad: list[str] = field(default_factory=list)


@dataclass
class Func:
    key: str  # stable identity; names change with renames
    name: str
    rank: float  # a function only calls functions of a lower rank: no recursion
    nparams: int
    returns: bool
    init: int
    stmts: list[Stmt]
    pad: list[str] = field(default_factory=list)
    tail_pad: list[str] = field(default_factory=list)
    indent: int = 0
    join: bool = False
    exports: list = field(default_factory=list)  # as Global.exports


@dataclass
class Program:
    globals: dict[str, Global]
    funcs: dict[str, Func]  # "main" included
    order: list[tuple[str, str]]  # ("g", name) | ("f", key), in file order
    finale: str | None  # the function main calls after arming the panics
    trailer: list[str] = field(default_factory=list)
    counter: int = 0
    retired: list[str] = field(default_factory=list)  # names that were in use once

    def fresh(self) -> int:
        self.counter += 1
        return self.counter

    def name(self, rnd: random.Random, new: str) -> str:
        """`new`, or often a name a removed or renamed declaration had: the same name may
        come back as another kind of declaration, in another section."""
        in_use = {f.name for f in self.funcs.values()} | set(self.globals)
        old = [n for n in self.retired if n not in in_use]
        if old and rnd.random() < 0.4:
            name = rnd.choice(old)
            self.retired.remove(name)
            return name
        return new

    def callers(self, key: str) -> list[Func]:
        return [f for f in self.funcs.values()
                if any(s.kind == "call" and s.ref == key for s in f.stmts)]

    def used(self, key: str) -> bool:
        return self.finale == key or bool(self.callers(key))

    def global_used(self, name: str) -> bool:
        return (any(s.ref == name and s.kind in ("gread", "gwrite")
                    for f in self.funcs.values() for s in f.stmts)
                or any(g.base == name or g.length_ref == name for g in self.globals.values()))

    def armed(self) -> str:
        return next(g.name for g in self.globals.values() if g.role == "armed")

    def invocations(self) -> int:
        """How many function calls a run makes (if nothing panics first)."""
        count = dict.fromkeys(self.funcs, 0)
        count["main"] = 1
        for f in sorted(self.funcs.values(), key=lambda f: -f.rank):  # callers first
            for s in f.stmts:
                if s.kind == "call":
                    count[s.ref] += count[f.key]
        if self.finale is not None:
            count[self.finale] += 1
        return sum(count.values())


def literal(rnd: random.Random, fresh: float = 0.2) -> str:
    if rnd.random() >= fresh:
        return rnd.choice(LITERALS)
    return f"fresh {rnd.randrange(100000)}"


def int_value(rnd: random.Random) -> int:
    return rnd.choice([0, 1, rnd.randrange(2, 100), -rnd.randrange(1, 1000),
                       rnd.randrange(1 << 20, 1 << 40), 0x7FFFFFFF])


def render_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return hex(v) if v > 1000 else str(v)


def render_exports(exports: list) -> str:
    out = []
    for name, linkage in exports:
        args = [f'"{name}"'] if name is not None else []
        args += [linkage] if linkage is not None else []
        out.append(f"export({', '.join(args)}) " if args else "export ")
    return "".join(out)


def render_global(g: Global) -> list[str]:
    if g.ty in ("arr", "barr"):
        ty = f"[{'int' if g.ty == 'arr' else 'bool'}; {g.length_ref or g.length}]"
        init = None if g.value is None else "[" + ", ".join(map(render_value, g.value)) + "]"
    elif g.ty == "int":
        ty = "int"
        if g.base is not None:
            init = f"{g.base} * {g.value} + {g.offset}"
        else:
            init = None if g.value is None else render_value(g.value)
    elif g.ty == "str":
        ty = "str"
        init = None if g.value is None else f'"{g.value}"'
    else:
        ty = "bool"
        init = None if g.value is None else render_value(g.value)
    tls = "threadlocal " if g.threadlocal else ""
    return [f"{render_exports(g.exports)}{tls}{g.kind} {g.name}: {ty}"
            + ("" if init is None else f" = {init}") + ";"]


def render_stmt(p: Program, f: Func, s: Stmt) -> list[str]:
    k = s.k
    param = f"p{k[2] % f.nparams}" if f.nparams else str(k[2])
    if s.kind == "arith":
        op = ARITH_OPS[k[1] % len(ARITH_OPS)]
        operand = k[0] % 64 if op in ("<<", ">>") else k[0]
        return [f"acc = (acc {op} {operand}) + {param};"]
    if s.kind == "loop":
        i = f"i{s.sid}"
        return [f"let {i} = 0;",
                f"while {i} < {k[0] % 5 + 1} {{",
                f"    acc = acc + {i} * {k[1]};",
                f"    {i} += 1;",
                "}"]
    if s.kind == "call":
        callee = p.funcs[s.ref]
        call = f"{callee.name}({', '.join(f'acc + {k[j % 4]}' for j in range(callee.nparams))})"
        return [f"acc += {call};" if callee.returns else f"{call};"]
    if s.kind == "print":
        return [f'print("{s.lit}", acc);']
    if s.kind == "guard":  # a panic on a path that is (almost surely) not taken
        return [f"if acc == {k[0] * 7919 + 123456789} {{ assert(false); }}"]
    if s.kind == "armed_guard":  # taken once main has armed it, at the end
        armed = p.armed()
        if k[1] % 2:  # the literal before it moves the panic's column
            return [f'if {armed} == 1 {{ print("{s.lit}"); acc = acc / ({armed} - 1); }}']
        return [f"if {armed} == 1 {{ assert(acc == acc + 1); }}"]
    g = p.globals[s.ref]
    n = g.name
    at = f"[{k[0] % 97} % len({n})]"
    if s.kind == "gread":
        if g.ty == "int":
            return [f"acc += {n};"]
        if g.ty == "str":
            return [f"print({n}, len({n}));",
                    f"if len({n}) > 0 {{ acc += {n}[{k[0] % 97} % len({n})]; }}"]
        if g.ty == "bool":
            return [f"if {n} {{ acc += 1; }}"]
        if g.ty == "barr":
            return [f"if {n}{at} {{ acc += 3; }}"]
        return [f"acc += {n}{at};"]
    assert s.kind == "gwrite"
    if g.ty == "int":
        return [f"{n} += acc & {k[0] % 64};"]
    if g.ty == "str":
        return [f'{n} = "{s.lit}";']
    if g.ty == "bool":
        return [f"{n} = not {n};"]
    if g.ty == "barr":
        return [f"{n}{at} = acc > {k[1]};"]
    return [f"{n}{at} = acc;"]


def render_func(p: Program, f: Func) -> list[str]:
    params = ", ".join(f"p{i}: int" for i in range(f.nparams))
    head = (f"{render_exports(f.exports)}fn {f.name}({params})"
            + (" -> int" if f.returns else "") + " {")
    init = " + ".join([str(f.init)] + [f"p{i}" for i in range(f.nparams)])
    body = [f"let acc = {init};"]
    for s in f.stmts:
        body += s.pad
        body += render_stmt(p, f, s)
    if f.key == "main":
        body.append(f"{p.armed()} = 1;")
        if p.finale is not None:
            body += render_stmt(p, f, Stmt("call", [1, 2, 3, 4], p.finale))
    body += f.tail_pad
    if f.returns:
        body.append("return acc & 127;" if f.key == "main" else "return acc;")
    return [head] + ["    " + line if line else line for line in body] + ["}"]


def render(p: Program) -> str:
    lines: list[str] = []
    for kind, key in p.order:
        decl = p.globals[key] if kind == "g" else p.funcs[key]
        lines += decl.pad
        own = render_global(decl) if kind == "g" else render_func(p, decl)
        own = [" " * decl.indent + line if line else line for line in own]
        if decl.join and lines and lines[-1].strip() and not lines[-1].lstrip().startswith("//"):
            lines[-1] += " " + own.pop(0).lstrip()
        lines += own
    lines += p.trailer
    return "\n".join(lines) + "\n"


def broken(text: str, rnd: random.Random) -> tuple[str, str]:
    """`text` with one error in it: a syntax error, or a type or name error in a body."""
    lines = text.split("\n")
    # Function headers, possibly indented or after another declaration on the same line.
    heads = [i for i, line in enumerate(lines) if re.search(r"\bfn \w+\(.*\{$", line)]
    globals_ = [i for i, line in enumerate(lines)
                if line.startswith(("var ", "const ")) and line.endswith(";")]
    kind = rnd.randrange(5 if globals_ else 4)
    if kind == 4:  # a second declaration of the same name
        i = rnd.choice(globals_)
        at, bad, what = rnd.randrange(len(lines) + 1), lines[i], "duplicate declaration"
    elif kind == 0:
        at, bad, what = rnd.randrange(len(lines) + 1), "fn broken( {", "syntax error"
    elif kind == 1:
        at, bad, what = rnd.choice(heads) + 1, "    let zz: int = true;", "type error"
    elif kind == 2:
        at, bad, what = rnd.choice(heads) + 1, "    no_such_function(1);", "unknown name"
    else:
        at, bad, what = rnd.choice(heads) + 1, "    let q = (1 + ;", "syntax error in a body"
    lines.insert(at, bad)
    return "\n".join(lines), f"{what} at line {at + 1}"


# ---- generating --------------------------------------------------------------------------------

def may_call(f: Func) -> bool:
    return sum(s.kind == "call" for s in f.stmts) < (MAIN_CALLS if f.key == "main" else MAX_CALLS)


def new_stmt(p: Program, f: Func, rnd: random.Random, kinds: list[str] | None = None,
             fresh: float = 0.2) -> Stmt:
    k = [rnd.randrange(-50, 300) for _ in range(4)]
    lower = [g.key for g in p.funcs.values() if g.rank < f.rank]
    options = kinds or (["arith"] * 3 + ["loop", "print", "print", "gread", "gread", "gwrite",
                                          "guard", "armed_guard"]
                        + (["call"] * 3 if lower and may_call(f) else []))
    kind = rnd.choice(options)
    if kind == "call" and lower and may_call(f):
        return Stmt("call", k, rnd.choice(lower), sid=p.fresh())
    if kind in ("gread", "gwrite"):
        names = [g.name for g in p.globals.values()
                 if kind == "gread" or (g.kind == "var" and g.role != "armed")]
        if names:
            return Stmt(kind, k, rnd.choice(names), literal(rnd, fresh), sid=p.fresh())
    if kind in ("call", "gread", "gwrite"):
        kind = "arith"
    return Stmt(kind, k, None, literal(rnd, fresh), sid=p.fresh())


def new_func(p: Program, rnd: random.Random, rank: float) -> Func:
    n = p.fresh()
    f = Func(f"fn{n}", p.name(rnd, f"{rnd.choice(FN_WORDS)}_{n}"), rank, rnd.randrange(4),
             rnd.random() < 0.8, rnd.randrange(-5, 50), [])
    for _ in range(rnd.randrange(1, 7)):
        f.stmts.append(new_stmt(p, f, rnd))
    return f


def new_global(p: Program, rnd: random.Random, length: str | None, base: str | None) -> Global:
    const = rnd.random() < 0.4
    word = rnd.choice(GLOBAL_WORDS)
    name = p.name(rnd, f"{word.upper() if const else word}_{p.fresh()}")
    kind = "const" if const else "var"
    ty = rnd.choice(["int", "int", "str", "bool", "arr", "barr"])
    g = Global(name, kind, ty, None)
    if ty == "int":
        if const and base is not None and rnd.random() < 0.3:
            g.base, g.value, g.offset = base, rnd.randrange(1, 5), rnd.randrange(100)
        else:
            g.value = rnd.choice([int_value(rnd), None if not const else 0, 0])
    elif ty == "str":
        g.value = rnd.choice([literal(rnd), "", None if not const else "tick"])
    elif ty == "bool":
        g.value = rnd.choice([True, False, None if not const else True])
    else:
        if not const and length is not None and rnd.random() < 0.3:
            g.length_ref = length  # zero-filled: its length may change under it
        else:
            g.length = rnd.randrange(1, 5)
            g.value = array_value(g, rnd) if const or rnd.random() < 0.6 else None
    return g


def array_value(g: Global, rnd: random.Random) -> list:
    if g.ty == "barr":
        return [rnd.random() < 0.5 for _ in range(g.length)]
    return rnd.choice([[0] * g.length, [int_value(rnd) for _ in range(g.length)]])


def new_program(rnd: random.Random) -> Program:
    p = Program({}, {}, [], None)

    def add(g: Global) -> None:
        p.globals[g.name] = g

    add(Global(f"armed_{p.fresh()}", "var", "int", 0, role="armed"))
    length = Global(f"LEN_{p.fresh()}", "const", "int", rnd.randrange(1, 9), role="len")
    base = Global(f"BASE_{p.fresh()}", "const", "int", int_value(rnd))
    add(length)
    add(base)
    add(Global(f"total_{p.fresh()}", "var", "int", rnd.randrange(1, 1000)))  # .data
    add(Global(f"count_{p.fresh()}", "var", "int", rnd.choice([None, 0])))  # .bss
    add(Global(f"tab_{p.fresh()}", "var", "arr", None, length_ref=length.name))
    for _ in range(rnd.randrange(2, 7)):
        add(new_global(p, rnd, length.name, base.name))
    for rank in range(rnd.randrange(1, 7)):
        f = new_func(p, rnd, float(rank))
        p.funcs[f.key] = f
    main = Func("main", "main", float("inf"), 0, True, 1, [])
    p.funcs["main"] = main
    for _ in range(rnd.randrange(2, 6)):
        main.stmts.append(new_stmt(p, main, rnd))
    for f in list(p.funcs.values())[:-1]:
        if not p.used(f.key) and may_call(main):  # run what nothing else calls
            main.stmts.insert(rnd.randrange(len(main.stmts) + 1),
                              Stmt("call", [rnd.randrange(100) for _ in range(4)], f.key,
                                   sid=p.fresh()))
    p.finale = rnd.choice([f.key for f in p.funcs.values() if f.key != "main"])
    p.order = [("g", name) for name in p.globals] + [("f", key) for key in p.funcs]
    if rnd.random() < 0.5:
        rnd.shuffle(p.order)
    return p


# ---- edits: each changes the model and says what it did, or returns None if it cannot apply ----

def pick_func(p: Program, rnd: random.Random, main_too: bool = True) -> Func | None:
    funcs = [f for f in p.funcs.values() if main_too or f.key != "main"]
    return rnd.choice(funcs) if funcs else None


def edit_constant(p: Program, rnd: random.Random) -> str | None:
    f = pick_func(p, rnd)
    stmts = [s for s in f.stmts if s.kind in ("arith", "loop", "call", "guard", "gwrite")]
    if not stmts or rnd.random() < 0.2:
        f.init = rnd.randrange(-5, 500)
        return f"constant in {f.name}: acc = {f.init}"
    s = rnd.choice(stmts)
    i = rnd.randrange(4)
    s.k[i] = rnd.randrange(-50, 300)
    return f"constant k[{i}] in a {s.kind} statement of {f.name}"


def edit_grow(p: Program, rnd: random.Random) -> str | None:
    f = pick_func(p, rnd)
    huge = rnd.random() < 0.15  # past the room a full build leaves: sections grow in the file
    n = rnd.randrange(200, 500) if huge else rnd.randrange(20, 80)
    at = rnd.randrange(len(f.stmts) + 1)
    f.stmts[at:at] = [new_stmt(p, f, rnd, ["arith", "arith", "loop", "print", "gread"],
                               fresh=0.5 if huge else 0.2) for _ in range(n)]
    return f"grow {f.name} by {n} statements"


def edit_shrink(p: Program, rnd: random.Random) -> str | None:
    f = pick_func(p, rnd)
    if not f.stmts:
        return None
    keep = rnd.randrange(len(f.stmts))
    f.stmts = rnd.sample(f.stmts, keep) if rnd.random() < 0.5 else f.stmts[:keep]
    return f"shrink {f.name} to {keep} statements"


def edit_add_function(p: Program, rnd: random.Random) -> str | None:
    if len(p.funcs) > MAX_FUNCS:
        return None
    ranks = sorted(f.rank for f in p.funcs.values() if f.key != "main") or [0.0]
    rank = rnd.uniform(ranks[0] - 1, ranks[-1] + 1)
    f = new_func(p, rnd, rank)
    p.funcs[f.key] = f
    p.order.insert(rnd.randrange(len(p.order) + 1), ("f", f.key))
    callers = [g for g in p.funcs.values() if g.rank > rank and may_call(g)]
    if callers and rnd.random() < 0.7:
        caller = rnd.choice(callers)
        caller.stmts.insert(rnd.randrange(len(caller.stmts) + 1),
                            Stmt("call", [rnd.randrange(100) for _ in range(4)], f.key,
                                 sid=p.fresh()))
        return f"add {f.name}, called by {caller.name}"
    return f"add {f.name}, not called"


def edit_remove_function(p: Program, rnd: random.Random) -> str | None:
    unused = [f for f in p.funcs.values() if f.key != "main" and not p.used(f.key)]
    if not unused:
        return None
    f = rnd.choice(unused)
    del p.funcs[f.key]
    p.order.remove(("f", f.key))
    p.retired.append(f.name)
    return f"remove {f.name}"


def edit_add_call(p: Program, rnd: random.Random) -> str | None:
    f = pick_func(p, rnd)
    if not may_call(f):
        return None
    lower = [g.key for g in p.funcs.values() if g.rank < f.rank]
    if not lower:
        return None
    s = Stmt("call", [rnd.randrange(100) for _ in range(4)], rnd.choice(lower), sid=p.fresh())
    f.stmts.insert(rnd.randrange(len(f.stmts) + 1), s)
    return f"add a call of {p.funcs[s.ref].name} to {f.name}"


def edit_drop_call(p: Program, rnd: random.Random) -> str | None:
    calls = [(f, s) for f in p.funcs.values() for s in f.stmts if s.kind == "call"]
    if not calls:
        return None
    f, s = rnd.choice(calls)
    f.stmts.remove(s)
    return f"drop the call of {p.funcs[s.ref].name} from {f.name}"


def edit_rename(p: Program, rnd: random.Random) -> str | None:
    f = pick_func(p, rnd, main_too=False)
    if f is None:
        return None
    old = f.name
    f.name = p.name(rnd, f"{rnd.choice(FN_WORDS)}{rnd.choice(['', 'x', '_long_name'])}"
                         f"_{p.fresh()}")
    p.retired.append(old)
    return f"rename {old} to {f.name} (callers: {len(p.callers(f.key))})"


def edit_swap_names(p: Program, rnd: random.Random) -> str | None:
    funcs = [f for f in p.funcs.values() if f.key != "main"]
    if len(funcs) < 2:
        return None
    f, g = rnd.sample(funcs, 2)
    f.name, g.name = g.name, f.name
    return f"swap the names {f.name} and {g.name}"


def edit_layout(p: Program, rnd: random.Random) -> str | None:
    """Indent a declaration, or put it on the line where the one before it ends: its text
    moves to other columns (and panics in it report other columns)."""
    kind, key = rnd.choice(p.order)
    decl = p.globals[key] if kind == "g" else p.funcs[key]
    if rnd.random() < 0.5:
        decl.indent = rnd.choice([n for n in (0, 1, 2, 4) if n != decl.indent])
        return f"indent {key} by {decl.indent}"
    decl.join = not decl.join
    return f"{key} {'joins the line before' if decl.join else 'starts a line'}"


def edit_signature(p: Program, rnd: random.Random) -> str | None:
    f = pick_func(p, rnd, main_too=False)
    if f is None:
        return None
    if rnd.random() < 0.7:
        f.nparams = rnd.choice([n for n in range(5) if n != f.nparams])
    if rnd.random() < 0.5:
        f.returns = not f.returns
    return (f"signature of {f.name}: {f.nparams} params, "
            f"{'returns' if f.returns else 'no result'} (callers: {len(p.callers(f.key))})")


def edit_add_global(p: Program, rnd: random.Random) -> str | None:
    length = next(g.name for g in p.globals.values() if g.role == "len")
    bases = [g.name for g in p.globals.values()
             if g.kind == "const" and g.ty == "int" and g.base is None]
    g = new_global(p, rnd, length, rnd.choice(bases) if bases else None)
    p.globals[g.name] = g
    p.order.insert(rnd.randrange(len(p.order) + 1), ("g", g.name))
    f = pick_func(p, rnd)
    if rnd.random() < 0.7:
        f.stmts.insert(rnd.randrange(len(f.stmts) + 1),
                       Stmt("gread", [rnd.randrange(100) for _ in range(4)], g.name,
                            sid=p.fresh()))
        return f"add {render_global(g)[0]} read by {f.name}"
    return f"add {render_global(g)[0]}"


def edit_remove_global(p: Program, rnd: random.Random) -> str | None:
    unused = [g for g in p.globals.values() if not g.role and not p.global_used(g.name)]
    if not unused:
        return None
    g = rnd.choice(unused)
    del p.globals[g.name]
    p.order.remove(("g", g.name))
    p.retired.append(g.name)
    return f"remove {g.name}"


def edit_global_init(p: Program, rnd: random.Random) -> str | None:
    g = rnd.choice(list(p.globals.values()))
    zero_ok = g.kind == "var"
    if g.role == "len":
        g.value = rnd.randrange(1, 9)
    elif g.ty == "int" and g.base is not None:
        if rnd.random() < 0.5:
            g.offset = rnd.randrange(-100, 100)
        else:
            g.value = rnd.randrange(0, 5)
    elif g.ty == "int":
        g.value = rnd.choice([None, 0, int_value(rnd)] if zero_ok else [0, int_value(rnd)])
    elif g.ty == "str":
        g.value = rnd.choice([None, "", literal(rnd)] if zero_ok else ["", literal(rnd)])
    elif g.ty == "bool":
        g.value = rnd.choice([None, True, False] if zero_ok else [True, False])
    elif g.length_ref is None:
        g.value = rnd.choice([None, array_value(g, rnd)]) if zero_ok else array_value(g, rnd)
    return f"initializer of {g.name}: {render_global(g)[0]}"


def edit_global_kind(p: Program, rnd: random.Random) -> str | None:
    """const <-> var: the global moves between the read-only and the writable sections."""
    names = []
    for g in p.globals.values():
        if g.role or g.base is not None:
            continue
        referenced = any(h.base == g.name or h.length_ref == g.name for h in p.globals.values())
        written = any(s.kind == "gwrite" and s.ref == g.name
                      for f in p.funcs.values() for s in f.stmts)
        if g.kind == "const" and not referenced:
            names.append(g.name)
        elif g.kind == "var" and not written and g.value is not None:
            names.append(g.name)
    if not names:
        return None
    g = p.globals[rnd.choice(names)]
    g.kind = "var" if g.kind == "const" else "const"
    g.threadlocal = False
    return f"{g.name} is now {g.kind}"


def edit_threadlocal(p: Program, rnd: random.Random) -> str | None:
    """A var becomes a thread-local or a plain global again: it moves between the TLS
    sections and the data sections, and the program gains or loses its TLS setup."""
    names = [g.name for g in p.globals.values() if g.kind == "var" and not g.role]
    if not names:
        return None
    g = p.globals[rnd.choice(names)]
    g.threadlocal = not g.threadlocal
    return f"{g.name} is {'now' if g.threadlocal else 'no longer'} thread-local"


def edit_string(p: Program, rnd: random.Random) -> str | None:
    stmts = [s for f in p.funcs.values() for s in f.stmts
             if s.kind in ("print", "armed_guard")
             or (s.kind == "gwrite" and p.globals[s.ref].ty == "str")]
    if not stmts:
        return None
    s = rnd.choice(stmts)
    old, s.lit = s.lit, literal(rnd)
    return f'string literal "{old}" -> "{s.lit}"'


def edit_padding(p: Program, rnd: random.Random) -> str | None:
    """Blank lines and comments between declarations, between statements, before a closing
    brace or at the end of the file: everything after them moves to other lines."""
    spots: list[list[str]] = [p.trailer]
    for kind, key in p.order:
        decl = p.globals[key] if kind == "g" else p.funcs[key]
        spots.append(decl.pad)
        if kind == "f":
            spots.append(decl.tail_pad)
            spots += [s.pad for s in decl.stmts]
    spot = rnd.choice(spots)
    if spot and rnd.random() < 0.4:
        del spot[rnd.randrange(len(spot)):]
        return "delete padding lines"
    n = rnd.randrange(1, 5)
    for _ in range(n):
        spot.insert(rnd.randrange(len(spot) + 1),
                    rnd.choice(PADDING))
    return f"insert {n} padding lines"


def edit_reorder(p: Program, rnd: random.Random) -> str | None:
    if len(p.order) < 2:
        return None
    if rnd.random() < 0.2:
        rnd.shuffle(p.order)
        return "shuffle all declarations"
    item = p.order.pop(rnd.randrange(len(p.order)))
    p.order.insert(rnd.randrange(len(p.order) + 1), item)
    return f"move {item[1]} to position {p.order.index(item)}"


def edit_exports(p: Program, rnd: random.Random) -> str | None:
    """Export a declaration (under its own name or a fresh one, with any linkage), drop one
    of its exports, or change one's linkage. Export names never clash: fresh ones start with
    `ex_`, which no declaration's name does."""
    decls = [*p.funcs.values(), *p.globals.values()]
    d = rnd.choice(decls)
    linkage = rnd.choice([None, "strong", "weak", "internal"])
    if d.exports and rnd.random() < 0.4:
        i = rnd.randrange(len(d.exports))
        if rnd.random() < 0.5:
            del d.exports[i]
            return f"drop an export of {d.name}"
        d.exports[i][1] = linkage
        return f"export {d.name} with linkage {linkage}"
    own = all(name is not None for name, _ in d.exports) and rnd.random() < 0.5
    d.exports.append([None if own else f"ex_{p.fresh()}", linkage])
    return f"export {d.name} ({d.exports[-1]})"


EDITS = [edit_constant, edit_padding, edit_grow, edit_shrink, edit_add_function,
         edit_remove_function, edit_add_call, edit_drop_call, edit_rename, edit_swap_names,
         edit_signature, edit_add_global, edit_remove_global, edit_global_init, edit_global_kind,
         edit_string, edit_reorder, edit_layout, edit_exports, edit_threadlocal]


def apply_edits(p: Program, edits: list, rnd: random.Random) -> tuple[Program, list[str]]:
    """The program after `edits` (an edit that cannot apply adds padding instead); if the result
    would run for too long, the program with only padding added."""
    new = copy.deepcopy(p)
    done = [edit(new, rnd) or edit_padding(new, rnd) for edit in edits]
    if new.invocations() > MAX_INVOCATIONS:
        new = copy.deepcopy(p)
        done = [edit_padding(new, rnd) + " (instead of edits that would call too much)"]
    return new, done


# ---- comparing an output with a clean build ------------------------------------------------------

def behaviour(exe: Path, arch: str) -> tuple[int, bytes, bytes]:
    p = subprocess.run([*runner(arch), str(exe)], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def symbols(exe: Path) -> Counter:
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        names = [s.name for s in elf.iter_sections()]
        rows = Counter()
        for i, s in enumerate(elf.get_section_by_name(".symtab").iter_symbols()):
            kind = s["st_info"]["type"]
            if i == 0 or kind in ("STT_FILE", "STT_SECTION"):
                continue
            shndx = s["st_shndx"]
            section = names[shndx] if isinstance(shndx, int) else shndx
            rows[(s.name, kind, s["st_size"], s["st_info"]["bind"], section)] += 1
        return rows


def incremental_step(session: Session, src: Path, out: Path, arch: str, via_cli: bool,
                     context: str, link=None) -> Session:
    """Bring `out` up to date with `src` as an update, in this process or through a new
    `toyc build` from the state file (the session it leaves); a full build fails the test."""
    if via_cli:
        # The CLI starts from the state file, like a later `toyc build` would.
        session.save_state()
        inputs = link.spelled() if link else []
        r = run([*TOYC, "build", str(src), *inputs, "-o", str(out), "-v", *arch_args(arch)])
        assert r.status == 0, f"{r.stderr}\n{context}"
        assert "full build" not in r.stdout + r.stderr, f"{r.stdout}{r.stderr}\n{context}"
        return Session.load(str(src), str(out), arch, link=link)
    try:
        summary = session.update()
    except CompileError as e:
        pytest.fail(f"the generator wrote a bad program:\n{e.render()}\n{context}")
    assert not summary.full, f"fell back to a full build: {summary.reason}\n{context}"
    return session


def compare_with_clean(src: Path, out: Path, ref: Path, arch: str,
                       link: LinkArgs | None = None) -> list[str]:
    """What differs between `out` (patched) and a clean build of `src` (linked with `link`),
    as messages."""
    Session.full_build(str(src), str(ref), arch, link=link)
    problems = []
    got, want = behaviour(out, arch), behaviour(ref, arch)
    if got != want:
        problems.append(f"behaviour differs:\n  patched: {got!r:.3000}\n  clean:   {want!r:.3000}")
    got_syms, want_syms = symbols(out), symbols(ref)
    if got_syms != want_syms:
        problems.append(f"symbols differ:\n  only patched: {sorted(got_syms - want_syms)}\n"
                        f"  only clean:   {sorted(want_syms - got_syms)}")
    if debug_description(out) != debug_description(ref):
        problems.append("the debug info differs from a clean build's")
    lint = run([ELFLINT, "--gnu-ld", str(out)])
    if lint.status != 0 or "No errors" not in lint.stdout:
        problems.append(f"eu-elflint --gnu-ld: status {lint.status}\n{lint.stdout}{lint.stderr}")
    return problems


def check_edits(data, steps: int, arch: str = "x86_64") -> None:
    rnd = random.Random(data.draw(st.integers(0, 2**32 - 1), label="program seed"))
    program = new_program(rnd)
    with tempfile.TemporaryDirectory(prefix="toyc-fuzz-") as tmp:
        src, out, ref = Path(tmp) / "src.toy", Path(tmp) / "prog", Path(tmp) / "clean"
        text = render(program)
        src.write_text(text, encoding="utf-8")
        history = ["full build"]
        session, _ = Session.full_build(str(src), str(out), arch)
        for step in range(steps):
            edits = data.draw(st.lists(st.sampled_from(EDITS), min_size=1, max_size=3),
                              label=f"edits {step}")
            erng = random.Random(data.draw(st.integers(0, 2**32 - 1), label=f"seed {step}"))
            via_cli = data.draw(st.integers(0, 4), label=f"cli {step}") == 0
            bad_first = data.draw(st.integers(0, 9), label=f"broken {step}") == 0
            how = "toyc build -v" if via_cli else "Session.update"
            if bad_first:
                bad, what = broken(render(program), erng)
                history.append(f"save with a {what} [{how}]: rejected, nothing written")
                note(history[-1])
                check_rejected(session, src, out, bad, via_cli, history, arch)
            program, done = apply_edits(program, edits, erng)
            history.append(f"{'; '.join(done)} [{how}]")
            note(history[-1])
            text = render(program)
            src.write_text(text, encoding="utf-8")
            context = "\n".join(["steps:", *history, "source:", text])
            session = incremental_step(session, src, out, arch, via_cli, context)
            problems = compare_with_clean(src, out, ref, arch)
            assert not problems, "\n".join(problems) + "\n" + context


def check_rejected(session: Session, src: Path, out: Path, bad: str, via_cli: bool,
                   history: list[str], arch: str) -> None:
    """A save with an error is rejected and leaves the output exactly as it was (`toyc build`
    gets the session's linker inputs)."""
    before = out.read_bytes()
    stat = os.stat(out)
    src.write_text(bad, encoding="utf-8")
    context = "\n".join(["steps:", *history, "source:", bad])
    if via_cli:
        session.save_state()
        r = run([*TOYC, "build", str(src), *session.link.spelled(), "-o", str(out), "-v",
                 *arch_args(arch)])
        assert r.status == 1 and "error:" in r.stderr, f"{r.stdout}{r.stderr}\n{context}"
        assert "internal error" not in r.stderr, f"{r.stderr}\n{context}"
    else:
        with pytest.raises(CompileError):
            session.update()
    assert out.read_bytes() == before, f"a rejected save changed the output\n{context}"
    assert os.stat(out).st_mtime_ns == stat.st_mtime_ns, context


@settings(max_examples=DEFAULT_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_updates_match_clean_builds(data):
    check_edits(data, DEFAULT_STEPS)


@settings(max_examples=DEFAULT_EXAMPLES_AARCH64, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_updates_match_clean_builds_aarch64(data):
    check_edits(data, DEFAULT_STEPS, "aarch64")


@pytest.mark.slow
def test_updates_match_clean_builds_slow(request):
    markexpr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if not os.environ.get("TOYC_FUZZ_EXAMPLES") and "slow" not in markexpr:
        pytest.skip("set TOYC_FUZZ_EXAMPLES=N or select -m slow to run the long fuzz")

    @settings(max_examples=int(os.environ.get("TOYC_FUZZ_EXAMPLES") or SLOW_EXAMPLES),
              deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])
    @given(data=st.data())
    def fuzz(data):
        for arch in ARCHES:
            check_edits(data, SLOW_STEPS, arch)

    fuzz()
