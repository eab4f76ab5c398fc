"""Random hot swaps of more than bodies: kinds, signatures, types, sizes, exports, thread-locals.

A running program (`toyc watch src.toy --run`) has three threads (main and two spawned) that
loop forever printing `T K I VALUE EPOCH`: VALUE is `compute(K, I)`, which uses every edited
declaration once; the functions among them call each other and read globals, some after a
1 ms sleep, so threads are inside the code being changed when an update comes. The last thread
calls compute in a new thread (`join(spawn(...))`) every time, so threads keep being started
with the running program's TLS image. EPOCH is the clock when the program started: it tells
the lines of a restarted program from the old one's.

The test keeps a model of the program (declarations `dN`: functions, consts, vars and
thread-local vars of type int, bool, str or [int; N], with exports) and renders the source from
it, so every save compiles and every use of a declaration is rewritten when its kind, signature
or type changes. Each step applies one random edit: a declaration's kind (fn <-> const <-> var),
a function's signature (parameters, result), a global's type and size, an initializer (zero or
not: .bss.zig or .data.zig), exports (added, removed, renamed, aliases, linkages),
thread-locals (added, changed, removed, a var becoming one or the reverse), declarations added
and removed, and body edits.

The model also computes each line's value (`Model.value`; an int thread-local counts the calls
of compute in its thread, the other globals are only read, so a var whose running value was
kept still has the value it had). A clean build of the same source, run as `prog K I` (which
does what thread K does for I = 0..I, in one thread, and prints the last value), must say what
the model says: that is checked at several points every step, and the patched output file must
behave as the clean build and export the same symbols.

After every save the watch's line must be true:
- `swapped into pid N`: the same pid; per thread, the lines are the previous version's, then
  at most one line computed across the swap, then the new version's only (at least two lines
  after the summary line). None across the swap when a declaration that compute refers to
  changed its kind, signature or type: no thread may then be in code that uses it (a scalar
  const is not referred to: its value is folded in). The vars said to be kept are exactly those
  with a new initializer in the same section, and keep their value; those given their new
  initial value must be vars whose kind or type changed. An update that cannot be swapped (a
  var of the same type moving between .bss.zig and .data.zig, a thread-local added or changed)
  must not say swapped.
- `not swapped: REASON; pid N runs the previous version` / `runs an older version (since:
  REASON)`: the program goes on printing the version it ran, and every REASON is a documented
  one that is true of the edit (the global, its sections; the running user, the declaration it
  uses and what changed about that).
- `not swapped: REASON; restarted: pid N is now M` (with `--restart`): the old program's lines
  stop, and the new one prints the new version from I = 0.
No other line may appear (a program that ends, a traceback), nothing on stderr, and I counts up
by one in every thread. When the watch ends, the file has a clean build's symbols.

Three fixed seeds of eight edits run by default; TOYC_HOT_SWAP_KINDS=N (or `-m slow`) runs N
(default 20) new random seeds of 20 edits each and prints how many edits were swapped, not
swapped (by reason) and restarted (`-s` shows it); TOYC_HOT_SWAP_KINDS_VERBOSE=1 prints each
edit and its line.
"""

from __future__ import annotations

import copy
import os
import queue
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import TOYC, run, symbols
from watching import Watcher, save_in_place

STEPS = 8
SLOW_STEPS = 20
SLOW_SEQUENCES = 20
THREADS = 3
FRESH = THREADS - 1  # the thread that calls compute in a new thread every time
TIMEOUT = 20.0  # for one line: generous, the machine may be busy
STRS = ("ab", "xyz", "q")  # the str argument at each parameter position
LINKAGES = (None, None, "weak", "internal", "strong")
MAX_DECLS = 9
PROGRAM_LINE = re.compile(r"T (\d+) (\d+) (-?\d+) (\d+)$")
SECTION_NAMES = {"data": ".data.zig", "bss": ".bss.zig", "const": ".data.rel.ro.zig",
                 "tdata": ".tdata", "tbss": ".tbss", "fn": ".text.zig"}
ARTICLE = {"fn": "a function", "const": "a const", "var": "a var", "tl": "a threadlocal var"}


def wrap(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def s2i(s: str) -> int:
    return len(s) * 1000 + s.encode()[0]


# ---- the model ------------------------------------------------------------------------------

@dataclass
class Decl:
    id: int
    kind: str  # "fn", "const", "var", "tl" (threadlocal var)
    ty: object = "int"  # a global's: "int", "bool", "str" or N for [int; N]
    init: object = 0
    params: list = field(default_factory=list)  # a function's: "int", "bool", "str"
    result: str | None = "int"
    # a function's body, the sum of: ("p", j, m) parameter j times m, ("c", c), ("r", name,
    # base) a use of an earlier declaration, base ("p", j, add) int parameter j + add or ("c", c)
    terms: list = field(default_factory=list)
    lits: tuple = ("yes", "no")  # a str function's two results
    sleepy: bool = False  # sleeps 1 ms first (when the program runs without arguments)
    exports: list = field(default_factory=list)  # (name or None, linkage or None)

    @property
    def name(self) -> str:
        return f"d{self.id}"

    def size(self) -> int:
        if isinstance(self.ty, int):
            return 8 * self.ty
        return 1 if self.ty == "bool" else 8

    def zero(self) -> bool:
        if self.ty == "str":
            return False
        if isinstance(self.ty, int):
            return all(x == 0 for x in self.init)
        return not self.init

    def section(self) -> str:
        if self.kind == "fn":
            return SECTION_NAMES["fn"]
        if self.kind == "const":
            return SECTION_NAMES["const"]
        if self.kind == "tl":
            return SECTION_NAMES["tbss" if self.zero() else "tdata"]
        return SECTION_NAMES["bss" if self.zero() else "data"]

    def type_text(self, ty: object = None) -> str:
        ty = self.ty if ty is None else ty
        return f"[int; {ty}]" if isinstance(ty, int) else ty

    def interface(self) -> tuple:
        if self.kind == "fn":
            return ("fn", tuple(self.params), self.result)
        return (self.kind, self.type_text())


def literal(ty: object, v: object) -> str:
    if ty == "bool":
        return "true" if v else "false"
    if ty == "str":
        return f'"{v}"'
    if isinstance(ty, int):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


@dataclass
class Model:
    decls: list[Decl]
    next_id: int
    spin_sleep: int = 2

    def get(self, name: str) -> Decl | None:
        return next((d for d in self.decls if d.name == name), None)

    def export_names(self) -> set[str]:
        return {n for d in self.decls for n, _ in d.exports if n}

    # ---- rendering ---------------------------------------------------------------------------

    def use(self, d: Decl, base: str) -> tuple[list[str], str]:
        """Statements and an int expression that use `d`, with `base` (an int expression) for
        arguments and indexes."""
        if d.kind == "fn":
            args = []
            for j, t in enumerate(d.params):
                if t == "int":
                    args.append(f"{base} + {j}")
                elif t == "bool":
                    args.append(f"(({base} + {j}) & 1) == 0")
                else:
                    args.append(f'"{STRS[j]}"')
            call = f"{d.name}({', '.join(args)})"
            if d.result is None:
                return [f"{call};"], "0"
            return [], {"int": call, "bool": f"b2i({call})", "str": f"s2i({call})"}[d.result]
        if isinstance(d.ty, int):
            return [], f"{d.name}[({base}) % {d.ty}] + len({d.name})"
        return [], {"int": d.name, "bool": f"b2i({d.name})", "str": f"s2i({d.name})"}[d.ty]

    def fn_text(self, d: Decl) -> str:
        params = ", ".join(f"p{j}: {t}" for j, t in enumerate(d.params))
        result = f" -> {d.result}" if d.result else ""
        lines = []
        if d.sleepy:
            lines += ["if live() {", "    sleep_ms(1);", "}"]
        parts = []
        for t in d.terms:
            if t[0] == "p":
                _, j, m = t
                conv = {"int": "p{}", "bool": "b2i(p{})", "str": "s2i(p{})"}[d.params[j]]
                parts.append(f"{conv.format(j)} * {m}")
            elif t[0] == "c":
                parts.append(str(t[1]))
            else:
                _, name, base = t
                b = f"p{base[1]} + {base[2]}" if base[0] == "p" else str(base[1])
                stmts, expr = self.use(self.get(name), b)
                lines += stmts
                parts.append(expr)
        core = " + ".join(parts) or "0"
        if d.result is None:
            lines.append(f"let t: int = {core};")
        elif d.result == "int":
            lines.append(f"return {core};")
        elif d.result == "bool":
            lines.append(f"return (({core}) & 1) == 1;")
        else:
            lines += [f"if (({core}) & 1) == 1 {{", f'    return "{d.lits[0]}";', "}",
                      f'return "{d.lits[1]}";']
        body = "".join(f"    {x}\n" for x in lines)
        return f"fn {d.name}({params}){result} {{\n{body}}}\n"

    def decl_text(self, d: Decl) -> str:
        exports = ""
        for name, linkage in d.exports:
            args = [f'"{name}"'] if name else []
            args += [linkage] if linkage else []
            exports += f"export({', '.join(args)}) " if args else "export "
        if d.kind == "fn":
            return exports + self.fn_text(d)
        kind = {"const": "const", "var": "var", "tl": "threadlocal var"}[d.kind]
        return f"{exports}{kind} {d.name}: {d.type_text()} = {literal(d.ty, d.init)};\n"

    def source(self) -> str:
        out = ["var epoch: int = 0;\n",
               "fn live() -> bool {\n    return argc() == 1;\n}\n",
               "fn b2i(b: bool) -> int {\n    if b {\n        return 1;\n    }\n    return 0;\n}\n",
               "fn s2i(s: str) -> int {\n    return len(s) * 1000 + s[0];\n}\n"]
        out += [self.decl_text(d) for d in self.decls]
        body = ["let acc: int = 0;"]
        body += [f"{d.name} += 1;" for d in self.decls if d.kind == "tl" and d.ty == "int"]
        for d in self.decls:
            stmts, expr = self.use(d, f"i + k * 100 + {d.id}")
            body += stmts
            body.append(f"acc = acc * 3 + {expr};")
        body.append("return acc;")
        out.append("fn compute(k: int, i: int) -> int {\n"
                   + "".join(f"    {x}\n" for x in body) + "}\n")
        out.append(f"""\
fn fresh(i: int) -> int {{
    return compute({FRESH}, i);
}}

fn step(k: int, i: int) -> int {{
    if k == {FRESH} {{
        return join(spawn(fresh, i));
    }}
    return compute(k, i);
}}

fn spin(k: int) -> int {{
    let i: int = 0;
    while true {{
        print("T", k, i, step(k, i), epoch);
        sleep_ms({self.spin_sleep});
        i += 1;
    }}
    return 0;
}}
""")
        out.append("""\
fn main() -> int {
    if argc() > 2 {
        let k: int = parse_int(argv(1));
        let n: int = parse_int(argv(2));
        let j: int = 0;
        let v: int = 0;
        while j <= n {
            v = step(k, j);
            j += 1;
        }
        print(v);
        return 0;
    }
    epoch = clock_ns();
""" + "".join(f"    spawn(spin, {k});\n" for k in range(1, THREADS)) + """\
    return spin(0);
}
""")
        return "\n".join(out)

    # ---- what the program computes -----------------------------------------------------------

    def global_value(self, d: Decl, k: int, i: int, over: dict) -> object:
        if d.kind == "tl" and d.ty == "int":  # counts the calls of compute in this thread
            return wrap(d.init + (1 if k == FRESH else i + 1))
        return over.get(d.name, d.init)

    def use_value(self, d: Decl, base: int, k: int, i: int, over: dict) -> int:
        if d.kind == "fn":
            r = self.call(d, base, k, i, over)
            if d.result is None:
                return 0
            return {"int": lambda: r, "bool": lambda: int(r), "str": lambda: s2i(r)}[
                d.result]()
        v = self.global_value(d, k, i, over)
        if isinstance(d.ty, int):
            return wrap(v[base % d.ty] + d.ty)
        return {"int": lambda: v, "bool": lambda: int(v), "str": lambda: s2i(v)}[d.ty]()

    def call(self, d: Decl, base: int, k: int, i: int, over: dict) -> object:
        args = []
        for j, t in enumerate(d.params):
            args.append(base + j if t == "int" else (base + j) % 2 == 0 if t == "bool"
                        else STRS[j])
        core = 0
        for t in d.terms:
            if t[0] == "p":
                _, j, m = t
                a = args[j]
                a = a if d.params[j] == "int" else int(a) if d.params[j] == "bool" else s2i(a)
                core += a * m
            elif t[0] == "c":
                core += t[1]
            else:
                _, name, b = t
                core += self.use_value(self.get(name), args[b[1]] + b[2] if b[0] == "p"
                                       else b[1], k, i, over)
        core = wrap(core)
        if d.result == "bool":
            return core & 1 == 1
        if d.result == "str":
            return d.lits[0] if core & 1 else d.lits[1]
        return core

    def value(self, k: int, i: int, over: dict | None = None) -> int:
        """What `compute(k, i)` returns, for a program whose vars in `over` have the values
        given there instead of their initializers."""
        acc = 0
        for d in self.decls:
            acc = wrap(acc * 3 + self.use_value(d, i + k * 100 + d.id, k, i, over or {}))
        return acc

    # ---- keeping it valid --------------------------------------------------------------------

    def normalize(self) -> None:
        """Drop what no longer fits: uses of declarations that went, became thread-locals
        (functions use only functions and plain globals declared before them), parameters
        that changed; at most one call of another function per body."""
        ids = {d.name: d for d in self.decls}
        for d in self.decls:
            if d.kind != "fn":
                continue
            kept, calls = [], 0
            for t in d.terms:
                if t[0] == "p":
                    if t[1] < len(d.params):
                        kept.append(t)
                elif t[0] == "c":
                    kept.append(t)
                else:
                    g = ids.get(t[1])
                    if g is None or g.id >= d.id or g.kind == "tl":
                        continue
                    if g.kind == "fn":
                        if calls:
                            continue
                        calls += 1
                    base = t[2]
                    if base[0] == "p" and (base[1] >= len(d.params)
                                           or d.params[base[1]] != "int"):
                        base = ("c", base[2])
                    kept.append(("r", t[1], base))
            d.terms = kept


# ---- random pieces --------------------------------------------------------------------------

def rand_type(rng: random.Random) -> object:
    return rng.choice(["int", "int", "bool", "str", "str", 1, 2, 3, 4])


def rand_init(rng: random.Random, ty: object) -> object:
    zero = rng.random() < 0.25
    if ty == "int":
        return 0 if zero else rng.choice([1, -1]) * rng.randrange(1, 1000)
    if ty == "bool":
        return not zero and rng.random() < 0.7
    if ty == "str":
        return "".join(rng.choice("abcxyz ") for _ in range(rng.randrange(1, 12))).strip() \
            or "s"
    return [0] * ty if zero else [rng.randrange(-50, 100) for _ in range(ty)]


def rand_terms(rng: random.Random, m: Model, d: Decl) -> list:
    terms = []
    earlier = [g for g in m.decls if g.id < d.id and g.kind != "tl"]
    for _ in range(rng.randrange(1, 4)):
        r = rng.random()
        if r < 0.3 and d.params:
            terms.append(("p", rng.randrange(len(d.params)), rng.randrange(1, 9)))
        elif r < 0.8 and earlier:
            ints = [j for j, t in enumerate(d.params) if t == "int"]
            base = ("p", rng.choice(ints), rng.randrange(5)) if ints and rng.random() < 0.7 \
                else ("c", rng.randrange(50))
            terms.append(("r", rng.choice(earlier).name, base))
        else:
            terms.append(("c", rng.randrange(100)))
    return terms


def make_fn(rng: random.Random, m: Model, d: Decl) -> None:
    d.kind = "fn"
    d.params = [rng.choice(["int", "int", "bool", "str"]) for _ in range(rng.randrange(4))]
    d.result = rng.choice(["int", "int", "bool", "str", None])
    d.lits = (rand_init(rng, "str"), rand_init(rng, "str"))
    d.sleepy = rng.random() < 0.4
    d.terms = rand_terms(rng, m, d)


def make_global(rng: random.Random, d: Decl, kind: str) -> None:
    d.kind = kind
    d.ty = rand_type(rng)
    d.init = rand_init(rng, d.ty)


def new_decl(rng: random.Random, m: Model, kind: str) -> Decl:
    d = Decl(m.next_id, kind)
    m.next_id += 1
    m.decls.append(d)
    if kind == "fn":
        make_fn(rng, m, d)
    else:
        make_global(rng, d, kind)
    return d


def initial_model(rng: random.Random) -> Model:
    m = Model([], 0, spin_sleep=rng.choice([1, 2, 3]))
    for kind in ["const", "var", "fn", "var", "fn"]:
        new_decl(rng, m, kind)
    if rng.random() < 0.6:
        d = new_decl(rng, m, "tl")
        d.ty, d.init = "int", rng.randrange(100)
    if rng.random() < 0.5:
        new_decl(rng, m, "fn")
    m.decls[2].sleepy = True
    m.normalize()
    return m


# ---- edits ----------------------------------------------------------------------------------

def edit(m: Model, rng: random.Random) -> str:
    """Change the model at random, keeping it a valid program; what was done."""
    fns = [d for d in m.decls if d.kind == "fn"]
    globals_ = [d for d in m.decls if d.kind != "fn"]
    tls = [d for d in m.decls if d.kind == "tl"]
    kinds = ["body"] * 3 + ["kind"] * 2 + ["signature"] * 2 + ["type"] * 2 + ["size"] + \
        ["init"] * 2 + ["export"] * 2 + ["threadlocal"] * 2 + ["new"] + ["remove"]
    what = rng.choice(kinds)
    if what == "body" and fns:
        d = rng.choice(fns)
        how = rng.choice(["terms", "constant", "sleep", "literals"])
        if how == "terms":
            d.terms = rand_terms(rng, m, d)
        elif how == "constant":
            d.terms.append(("c", rng.randrange(1, 100)))
        elif how == "sleep":
            d.sleepy = not d.sleepy
        else:
            d.lits = (rand_init(rng, "str"), rand_init(rng, "str"))
            d.result = d.result if d.result == "str" else "str"
        return f"body {d.name} ({how})"
    if what == "kind":
        d = rng.choice(m.decls)
        old = d.kind
        kind = rng.choice([k for k in ("fn", "const", "var") if k != d.kind])
        if kind == "fn":
            make_fn(rng, m, d)
        else:
            make_global(rng, d, kind)
        return f"kind {d.name} {old}->{kind}"
    if what == "signature" and fns:
        d = rng.choice(fns)
        how = rng.choice(["add", "remove", "param type", "result"])
        if how == "add" and len(d.params) < 3:
            d.params.append(rng.choice(["int", "bool", "str"]))
        elif how == "remove" and d.params:
            del d.params[rng.randrange(len(d.params))]
        elif how == "param type" and d.params:
            j = rng.randrange(len(d.params))
            d.params[j] = rng.choice([t for t in ("int", "bool", "str") if t != d.params[j]])
        else:
            how = "result"
            d.result = rng.choice([t for t in ("int", "bool", "str", None) if t != d.result])
        d.terms += rand_terms(rng, m, d)[:1]
        return f"signature {d.name} ({how}): {d.params} -> {d.result}"
    if what == "type" and globals_:
        d = rng.choice(globals_)
        old, was_zero = d.type_text(), d.zero()
        same_size = [t for t in ("int", "str", 1) if t != d.ty]
        d.ty = rng.choice(same_size) if d.size() == 8 and rng.random() < 0.5 else \
            rng.choice([t for t in ("int", "bool", "str", 1, 2, 3) if t != d.ty])
        for _ in range(20):  # mostly in the same section
            d.init = rand_init(rng, d.ty)
            if d.zero() == was_zero or rng.random() < 0.2:
                break
        return f"type {d.kind} {d.name} {old}->{d.type_text()}"
    if what == "size" and globals_:
        d = rng.choice(globals_)
        old = d.type_text()
        n = d.ty if isinstance(d.ty, int) else 1
        d.ty = rng.choice([x for x in (1, 2, 3, 4, 5) if x != n])
        d.init = (d.init if isinstance(d.init, list) else [])[:d.ty]
        d.init += [rng.randrange(1, 60) for _ in range(d.ty - len(d.init))]
        return f"size {d.kind} {d.name} {old}->{d.type_text()}"
    if what == "init" and globals_:
        d = rng.choice(globals_)
        old = literal(d.ty, d.init)
        d.init = rand_init(rng, d.ty)
        return f"init {d.kind} {d.name} {old}->{literal(d.ty, d.init)}"
    if what == "export":
        d = rng.choice(m.decls)
        used = m.export_names()
        fresh = next(f"ex{n}" for n in range(100) if f"ex{n}" not in used)
        how = rng.choice(["add", "alias", "remove", "rename", "linkage", "bare"])
        if how in ("remove", "rename", "linkage") and not d.exports:
            how = "add"
        if how == "add":
            d.exports = [(fresh, rng.choice(LINKAGES))]
        elif how == "alias":
            d.exports.append((fresh, rng.choice(LINKAGES)))
        elif how == "bare":
            if any(n is None for n, _ in d.exports):
                d.exports = [e for e in d.exports if e[0] is not None]
            else:
                d.exports.append((None, rng.choice(LINKAGES)))
        elif how == "remove":
            del d.exports[rng.randrange(len(d.exports))]
        elif how == "rename":
            j = rng.randrange(len(d.exports))
            d.exports[j] = (fresh, d.exports[j][1])
        else:
            j = rng.randrange(len(d.exports))
            d.exports[j] = (d.exports[j][0],
                            rng.choice([x for x in LINKAGES if x != d.exports[j][1]]))
        return f"export {d.name} ({how}): {d.exports}"
    if what == "threadlocal":
        plain = [d for d in m.decls if d.kind == "var"]
        how = rng.choice(["add", "change", "remove", "from var", "to var"])
        if how == "change" and tls:
            d = rng.choice(tls)
            if rng.random() < 0.5:
                d.init = rand_init(rng, d.ty)
            else:
                d.ty = rng.choice(["int", "bool", "str", 2])
                d.init = rand_init(rng, d.ty)
            return f"threadlocal change {d.name}: {d.type_text()} = {literal(d.ty, d.init)}"
        if how == "remove" and tls and len(m.decls) > 3:
            d = rng.choice(tls)
            m.decls.remove(d)
            m.normalize()
            return f"threadlocal remove {d.name}"
        if how == "from var" and plain:
            d = rng.choice(plain)
            d.kind = "tl"
            return f"threadlocal from var {d.name}"
        if how == "to var" and tls:
            d = rng.choice(tls)
            d.kind = "var"
            return f"threadlocal to var {d.name}"
        if len(m.decls) < MAX_DECLS:
            d = new_decl(rng, m, "tl")
            if rng.random() < 0.6:
                d.ty, d.init = "int", rng.randrange(-5, 100)
            return f"threadlocal add {d.name}: {d.type_text()}"
    if what == "remove" and len(m.decls) > 3:
        d = rng.choice(m.decls)
        m.decls.remove(d)
        return f"remove {d.kind} {d.name}"
    if len(m.decls) < MAX_DECLS:
        kind = rng.choice(["fn", "fn", "const", "var"])
        d = new_decl(rng, m, kind)
        return f"new {kind} {d.name}"
    d = rng.choice(fns or m.decls)
    if d.kind == "fn":
        d.terms.append(("c", rng.randrange(1, 100)))
        return f"body {d.name} (constant)"
    d.init = rand_init(rng, d.ty)
    return f"init {d.kind} {d.name}"


def random_edit(m: Model, rng: random.Random) -> tuple[Model, str]:
    """A new model that differs from `m` in its source; what was done."""
    before = m.source()
    for _ in range(100):
        new = copy.deepcopy(m)
        what = edit(new, rng)
        new.normalize()
        if new.source() != before:
            return new, what
    raise AssertionError("no edit changed the source")


# ---- what the line may say ------------------------------------------------------------------

def contract_changes(old: Model, new: Model) -> dict[str, str]:
    """Declarations whose kind, signature or type changed: name -> how, as the line says."""
    out = {}
    for d in new.decls:
        o = old.get(d.name)
        if o is None:
            continue
        if o.kind != d.kind:
            out[d.name] = f"changed from {ARTICLE[o.kind]} to {ARTICLE[d.kind]}"
        elif o.interface() != d.interface():
            out[d.name] = "changed its signature" if d.kind == "fn" else "changed its type"
    return out


def users(m: Model, name: str) -> set[str]:
    """The functions whose code refers to `name`."""
    out = {"compute"}
    for d in m.decls:
        if d.kind == "fn" and any(t[0] == "r" and t[1] == name for t in d.terms):
            out.add(d.name)
    return out


def blockers(old: Model, new: Model) -> list[str]:
    """What certainly keeps the update out of a program running `old`: a thread-local added or
    changed (every thread's block has the old layout), a var of the same type whose
    initializer went from zero to non-zero or back (its running value cannot move with it)."""
    out = []
    for d in new.decls:
        o = old.get(d.name)
        if d.kind == "tl" and (o is None or o.interface() != d.interface() or
                               o.init != d.init):
            out.append(f"thread-local {d.name} changed")
        if o is not None and o.kind == d.kind == "var" and o.ty == d.ty and \
                o.section() != d.section():
            out.append(f"global {d.name} moved from {o.section()} to {d.section()}")
    return out


def running_values(old: Model, new: Model) -> tuple[set[str], set[str]]:
    """The vars whose running value a swap must keep (a new initializer, the same type and
    section), and those it may give their new initial value (their kind or type changed: no
    code that reads them the old way runs any more)."""
    kept, reset = set(), set()
    changes = contract_changes(old, new)
    for d in new.decls:
        o = old.get(d.name)
        if o is None or o.kind != "var":
            continue
        if d.name in changes:
            reset.add(d.name)
        elif o.init != d.init and o.section() == d.section():
            kept.add(d.name)
    return kept, reset


def check_reason(reason: str, old: Model, new: Model, ever_used: dict[str, set[str]]) -> str:
    """Whether `reason` is documented and true of the change from `old` (what the program
    runs) to `new`; its kind, for the counts. Fails the test if not."""
    changes = contract_changes(old, new)
    m = re.fullmatch(r"(\S+) is running and uses (\S+), which (.*)", reason)
    if m:
        user, name, how = m.groups()
        assert changes.get(name) == how, f"{name} did not {how} (changes: {changes})"
        assert user in ever_used.get(name, set()) | users(old, name), \
            f"{user} does not use {name}"
        return "running user: " + ("changed kind" if how.startswith("changed from") else how)
    m = re.fullmatch(r"global (\S+) moved from (\S+) to (\S+)", reason)
    if m:
        name, a, b = m.groups()
        o, d = old.get(name), new.get(name)
        assert o is not None and o.kind == "var" and o.section() == a, f"{name} was not in {a}"
        assert d is not None and d.section() == b, f"{name} is not in {b}"
        return f"global moved from {a} to {b}"
    m = re.fullmatch(r"thread-local (\S+) changed", reason)
    if m:
        o, d = old.get(m.group(1)), new.get(m.group(1))
        assert (o is not None and o.kind == "tl") or (d is not None and d.kind == "tl"), \
            f"{m.group(1)} is no thread-local"
        if o is not None and d is not None and o.interface() == d.interface() and \
                o.init == d.init:
            # (its layout and initial value are the same: a var's new exports are swapped)
            if old.decl_text(o) == new.decl_text(d):
                return "thread-local changed (it did not)"
            return "thread-local changed (only its exports)"
        return "thread-local changed"
    if re.fullmatch(r"the running code could not be safely patched \(a thread stays in the "
                    r"first bytes of [\w, ]+\)", reason):
        return "a thread in the first bytes"
    if re.fullmatch(r"the program has no memory at 0x[0-9a-f]+ \(the section grew past what "
                    r"it mapped when it started\)", reason):
        return "no memory"
    if reason == "the output was rebuilt from scratch":
        return reason
    if reason.startswith("cannot stop the program's threads"):
        # Documented for a system that forbids ptrace; here it is allowed (the first swap of
        # every sequence shows it), so the program's threads could have been stopped.
        raise AssertionError(f"{reason!r}: ptrace is allowed here")
    raise AssertionError(f"undocumented: {reason!r}")


# ---- the running program --------------------------------------------------------------------

@dataclass
class Instance:
    """One run of the program, told by its EPOCH."""
    model: Model | None  # the version it runs (None: not known yet, a restart's)
    over: dict = field(default_factory=dict)  # vars whose running value is not the initializer
    pid: int = 0
    last: dict = field(default_factory=dict)  # thread -> last I
    lines: dict = field(default_factory=dict)  # thread -> [(I, VALUE, after the summary)]
    ever_used: dict = field(default_factory=dict)  # name -> functions that ever used it


class Stream:
    """The watch's stdout, its program lines sorted by instance and thread."""

    def __init__(self, w: Watcher):
        self.w = w
        self.instances: dict[int, Instance] = {}
        self.current: Instance | None = None
        self.after_summary = False
        self.recent: list[str] = []
        self.where = ""  # the step, for messages

    def take(self, deadline: float, what: str) -> str | None:
        """One line; a program line is filed and None returned."""
        try:
            line = self.w.stdout.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no {what} within {TIMEOUT} s; last lines:\n" + "\n".join(
                self.recent[-30:]) + "\nstderr:\n" + "\n".join(self.w.drain_stderr())
                + f"\n{self.where}")
        self.recent = self.recent[-200:] + [line]
        m = PROGRAM_LINE.match(line)
        if not m:
            return line
        k, i, v, epoch = (int(g) for g in m.groups())
        inst = self.instances.get(epoch)
        if inst is None:
            inst = self.instances[epoch] = Instance(None)
            if self.current is None:
                self.current = inst
        assert 0 <= k < THREADS, line
        assert i == inst.last.get(k, -1) + 1, f"thread {k} printed I={i} after " \
            f"{inst.last.get(k)}: lines lost, or a restart nobody reported; {self.where}"
        inst.last[k] = i
        inst.lines.setdefault(k, []).append((i, v, self.after_summary))
        return None

    def watch_line(self) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            line = self.take(deadline, "line from the watch")
            if line is not None:
                return line

    def lines_after_summary(self, inst: Instance, n: int) -> None:
        """Until every thread of `inst` printed `n` lines after the summary line."""
        deadline = time.monotonic() + TIMEOUT
        while any(sum(1 for x in inst.lines.get(k, []) if x[2]) < n for k in range(THREADS)):
            line = self.take(deadline, f"{n} lines from every thread")
            assert line is None, f"unexpected line from the watch: {line!r}; {self.where}"


def check_old(inst: Instance, where: str) -> None:
    """Every line of `inst` since the save is the version it ran."""
    for k, lines in inst.lines.items():
        for i, v, _ in lines:
            want = inst.model.value(k, i, inst.over)
            assert v == want, f"thread {k}, I={i}: {v}, but the version it ran says {want}; " \
                f"{where}"


def check_swapped(inst: Instance, new: Model, over: dict, strict: bool, where: str) -> None:
    """Per thread: the old version's lines, at most one line computed across the swap (none
    if `strict`: no thread may be in code that refers to a declaration whose kind, signature
    or type changed, and `compute` refers to them all), then the new version's only; the last
    line is the new version's."""
    for k in range(THREADS):
        lines = inst.lines.get(k, [])
        first = next((n for n, (i, v, _) in enumerate(lines)
                      if v != inst.model.value(k, i, inst.over)), len(lines))
        for i, v, _ in lines[first + (0 if strict else 1):]:
            want = new.value(k, i, over)
            assert v == want, f"thread {k}, I={i}: {v}, but the new version says {want} (and " \
                f"the old {inst.model.value(k, i, inst.over)}); {where}"
        i, v, after = lines[-1]
        assert after and v == new.value(k, i, over), f"thread {k} ends with I={i} {v}; {where}"


# ---- one sequence ---------------------------------------------------------------------------

def clean_build(clean: Path, text: str) -> None:
    (clean / "src.toy").write_text(text)
    r = run([*TOYC, "build", "--full", "src.toy", "-o", "prog"], cwd=clean)
    assert r.status == 0, f"the model made a program that does not build:\n{r.stdout}" \
        f"{r.stderr}\n{text}"


def exported(exe: Path) -> Counter:
    return Counter(r for r in symbols(exe).elements() if r[3] != "LOCAL")


def same_as_clean(tmp_path: Path, m: Model, points: list[tuple[int, int]], where: str) -> None:
    """The patched output and a clean build say the same, and the model agrees with them."""
    clean = tmp_path / "clean" / "prog"
    for k, i in points:
        want = run([str(clean), str(k), str(i)])
        got = run([str(tmp_path / "prog"), str(k), str(i)])
        assert (got.status, got.stdout, got.stderr) == (want.status, want.stdout, want.stderr), \
            f"`prog {k} {i}`: the output file says {got}, a clean build {want}; {where}"
        assert want.stdout == f"{m.value(k, i)}\n", \
            f"the test's model says {m.value(k, i)} for {k} {i}, a clean build {want}; {where}"
    assert exported(tmp_path / "prog") == exported(clean), f"exported symbols; {where}"


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def sequence(tmp_path: Path, seed: int, steps: int, restart: bool, counts: Counter,
             start: Model | None = None, script: list | None = None) -> None:
    """`steps` random edits from a random model, or from `start` the edits of `script`
    (functions that change a model and say what they did)."""
    rng = random.Random(seed)
    m = start or initial_model(rng)
    src = tmp_path / "src.toy"
    text = m.source()
    src.write_text(text)
    clean = tmp_path / "clean"  # the same file name, so that the symbols can be compared
    clean.mkdir()
    clean_build(clean, text)
    w = Watcher(tmp_path, "--run", *(["--restart"] if restart else []))
    history: list[str] = []
    stale = ""  # why the program runs an older version
    try:
        s = Stream(w)
        first = s.watch_line()
        pid = int(re.fullmatch(r"built .*\(full build\).*; started pid (\d+)", first).group(1))
        w.wait_watching()
        deadline = time.monotonic() + TIMEOUT
        while s.current is None:  # the first program line names its instance
            line = s.take(deadline, "first line of the program")
            assert line is None, f"unexpected line from the watch: {line!r}"
        inst = s.current
        inst.model, inst.pid = m, pid
        s.after_summary = True
        s.lines_after_summary(inst, 2)
        check_old(inst, f"seed {seed}, at the start")
        same_as_clean(tmp_path, m, [(0, 0), (1, 5), (2, 40)], f"seed {seed}, at the start")
        for step in range(steps):
            if script:
                new = copy.deepcopy(m)
                what = script[step](new)
                new.normalize()
            else:
                new, what = random_edit(m, rng)
            history.append(what)
            counts["edit: " + what.split(" ")[0]] += 1
            before, text = text, new.source()
            for x in s.instances.values():
                x.lines = {}
            s.after_summary = False
            save_in_place(src, text)
            clean_build(clean, text)
            line = s.watch_line()
            while line.startswith("full build:"):  # the update's reason for a full build
                line = s.watch_line()
            s.after_summary = True
            where = s.where = (f"seed {seed} (restart: {restart}), step {step}, edits "
                               f"{history}\nline: {line}\n--- before:\n{before}\n--- after:\n"
                               f"{text}")
            if os.environ.get("TOYC_HOT_SWAP_KINDS_VERBOSE"):
                print(f"seed {seed} step {step}: {what}\n    {line}")
            assert re.match(r"(updated|added|removed|line numbers|built|nothing changed)[ ;]",
                            line), where
            assert not w.drain_stderr(), f"stderr: {w.seen_stderr}; {where}"
            running = inst.model
            kept_want, reset_may = running_values(running, new)
            must_block = blockers(running, new)
            if stale:
                assert line.endswith(f"; not swapped: pid {inst.pid} runs an older version "
                                     f"(since: {stale})"), where
                counts["outcome: not swapped, runs an older version"] += 1
                s.lines_after_summary(inst, 2)
                check_old(inst, where)
            elif " swapped into pid " in line:
                m_ = re.search(r"; swapped into pid (\d+)((?:; .*)?)$", line)
                assert m_ and int(m_.group(1)) == inst.pid, f"not pid {inst.pid}; {where}"
                assert not must_block, f"swapped, but {must_block}; {where}"
                kept, reset = set(), set()
                for clause in m_.group(2).split("; ")[1:]:
                    c = re.fullmatch(r"running value of (.*) kept", clause)
                    r = re.fullmatch(r"(.*) set to (?:its|their) new initial value \(a new "
                                     r"type\)", clause)
                    o = re.fullmatch(r"(.*) (?:is|are) running the old code until it returns",
                                     clause)
                    assert c or r or o, f"what is {clause!r}? {where}"
                    (kept if c else reset if r else set()).update((c or r or o).group(1)
                                                                 .split(", "))
                    counts["swapped with: " + ("running value kept" if c else "new initial "
                                               "value" if r else "old code until it returns")] += 1
                assert kept == kept_want and reset <= reset_may, \
                    f"kept {kept}, reset {reset}; the model says {kept_want} must be kept, " \
                    f"{reset_may} may be reset; {where}"
                over = {}
                for name in kept:
                    over[name] = running.global_value(running.get(name), 0, 0, inst.over)
                for d in new.decls:
                    o = running.get(d.name)
                    if d.name in inst.over and o is not None and o.kind == d.kind == "var" \
                            and o.ty == d.ty and o.init == d.init:
                        over[d.name] = inst.over[d.name]
                s.lines_after_summary(inst, 2)
                # A scalar const's value is folded into the code that names it (that code
                # does not refer to it), so a thread may go on in code that holds its old one.
                strict = any(not (running.get(n).kind == "const" and not isinstance(
                    running.get(n).ty, int)) for n in contract_changes(running, new))
                check_swapped(inst, new, over, strict, where)
                for d in running.decls:
                    inst.ever_used.setdefault(d.name, set()).update(users(running, d.name))
                inst.model, inst.over = new, over
                counts["outcome: swapped"] += 1
            else:
                m_ = re.search(r"; not swapped: (.*); (?:pid (\d+) runs the previous version "
                               r"\(--restart restarts it\)|restarted: pid (\d+) is now (\d+))$",
                               line)
                assert "the program had ended" not in line, f"the program ended; {where}"
                assert m_, f"what does the line say? {where}"
                reasons, old_pid, killed, new_pid = m_.groups()
                assert int(old_pid or killed) == inst.pid, where
                kinds = set()
                for reason in reasons.split("; "):
                    try:
                        kinds.add(check_reason(reason, running, new, inst.ever_used))
                    except AssertionError as e:
                        raise AssertionError(f"a false reason: {e}; {where}") from None
                counts.update(f"reason: {x}" for x in kinds)
                if new_pid is None:
                    assert not restart, where
                    stale = reasons
                    counts["outcome: not swapped, runs the previous version"] += 1
                    s.lines_after_summary(inst, 2)
                    check_old(inst, where)
                else:
                    assert restart, where
                    counts["outcome: not swapped, restarted"] += 1
                    assert gone(int(killed)), f"pid {killed} still runs; {where}"
                    check_old(inst, where)
                    assert all(not x[2] for v in inst.lines.values() for x in v), \
                        f"the old program printed after it was restarted; {where}"
                    deadline = time.monotonic() + TIMEOUT
                    while not [x for x in s.instances.values() if x.model is None]:
                        line = s.take(deadline, "the restarted program's first line")
                        assert line is None, f"unexpected line from the watch: {line!r}; {where}"
                    inst = next(x for x in s.instances.values() if x.model is None)
                    inst.model, inst.pid = new, int(new_pid)
                    s.lines_after_summary(inst, 2)
                    assert all(x[0][0] == 0 for x in inst.lines.values()), where
                    check_old(inst, where)
            m = new
            points = [(FRESH, rng.randrange(20)), (0, rng.randrange(50)),
                      (1, rng.randrange(2000))]
            k = rng.randrange(THREADS)
            if inst.lines.get(k):  # (a thread for each call of compute in FRESH's)
                points.append((k, min(inst.lines[k][-1][0], 200 if k == FRESH else 5000)))
            same_as_clean(tmp_path, m, points, where)
            assert all(x.model is not None for x in s.instances.values()), \
                f"a program started that no line reported; {where}"
            assert not w.drain_stderr(), f"stderr: {w.seen_stderr}; {where}"
        assert os.path.exists(f"/proc/{inst.pid}")
        # Ending the watch frees what was kept for the program: a clean build's symbols.
        w.stop()
        assert w.proc.returncode == 0, w.drain_stderr()
        assert not w.drain_stderr(), w.seen_stderr
        rest = []
        while not w.stdout.empty():
            line = w.stdout.get_nowait()
            if not PROGRAM_LINE.match(line):
                rest.append(line)
        assert not rest, f"lines after the last step: {rest}"
        assert symbols(tmp_path / "prog") == symbols(clean / "prog"), \
            f"seed {seed}, {history}"
    finally:
        w.stop()


def report(counts: Counter) -> str:
    """The counts, a line per kind: edits, outcomes, reasons (a line may give several), and
    what swapped lines added."""
    lines = {}
    for key, n in sorted(counts.items()):
        kind, what = key.split(": ", 1)
        lines.setdefault(kind, []).append(f"{what} {n}")
    return "".join(f"\n  {kind}: {', '.join(x)}" for kind, x in lines.items())


@pytest.mark.parametrize("seed,restart", [(5, True), (1, True), (2, False)])
def test_kind_signature_type_and_export_edits_swapped(tmp_path: Path, seed: int,
                                                      restart: bool):
    counts: Counter = Counter()
    sequence(tmp_path, seed, STEPS, restart, counts)
    print(f"seed {seed}: {report(counts)}")


@pytest.mark.slow
def test_kind_signature_type_and_export_edits_swapped_slow(tmp_path: Path, request):
    markexpr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if not os.environ.get("TOYC_HOT_SWAP_KINDS") and "slow" not in markexpr:
        pytest.skip("set TOYC_HOT_SWAP_KINDS=N or select -m slow to run more sequences")
    count = int(os.environ.get("TOYC_HOT_SWAP_KINDS") or SLOW_SEQUENCES)
    base = random.randrange(1 << 30)
    counts: Counter = Counter()
    for n in range(count):
        work = tmp_path / str(n)
        work.mkdir()
        seed = base + n
        try:
            sequence(work, seed, SLOW_STEPS, restart=seed % 3 != 0, counts=counts)
        except BaseException:
            print(f"failed at seed {seed} (restart: {seed % 3 != 0}); so far: {report(counts)}")
            raise
    print(f"{count} sequences from seed {base}: {report(counts)}")
