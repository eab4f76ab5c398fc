"""The generated code against an interpreter: random programs must print what Toy's semantics
say they print.

`Gen` writes programs that stress what the code generator does with values: deep expression
trees (more temporaries than registers), many locals (more than registers), six parameters,
calls nested in arguments and in operands (values live across calls), division and remainder
by every kind of constant (powers of two, negative, -1, INT_MIN, large) and by run-time
values, shifts by constants and by values, comparisons as branches and as values, `and`/`or`
with calls on one side, loops with `break`, early returns, globals and array elements updated
with `op=` around calls. `run` is an interpreter of the same programs, written here from
LANGUAGE.md (64-bit wrapping, truncating division, shift counts mod 64, operands left to
right), not from toyc's code. Every program is built by toyc and run; its output must equal
the interpreter's.

`TOYC_CODEGEN_PROGRAMS=N python3 -m pytest tests/test_codegen.py -k many` runs N more (300
with `-m slow`); the default suite skips that test.
"""

from __future__ import annotations

import os
import random

import pytest

from conftest import ARCHES, build, run, runner

MASK = (1 << 64) - 1
INT_MIN = -(1 << 63)


def wrap(v: int) -> int:
    v &= MASK
    return v - (1 << 64) if v >> 63 else v


def div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return wrap(q if (a < 0) == (b < 0) else -q)


def rem(a: int, b: int) -> int:
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


INT_OPS = {
    "+": lambda a, b: wrap(a + b), "-": lambda a, b: wrap(a - b),
    "*": lambda a, b: wrap(a * b), "/": div, "%": rem,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "<<": lambda a, b: wrap(a << (b & 63)), ">>": lambda a, b: a >> (b & 63),
}
CMP_OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
DIVISORS = [1, -1, 2, -2, 3, -3, 4, 7, -7, 8, 10, 16, -16, 100, 400, 641, 4096, -4096,
            1 << 31, (1 << 31) - 1, 1 << 32, 1 << 40, -(1 << 40), 6700417, (1 << 62),
            -(1 << 62), (1 << 63) - 1, INT_MIN]
LITERALS = [0, 1, -1, 2, 3, 5, 7, 31, 63, 64, 100, 255, 4096, 65535, 1 << 31, (1 << 31) - 1,
            -(1 << 31), 1 << 32, (1 << 62) + 12345, (1 << 63) - 1, INT_MIN, INT_MIN + 1]
ARRAY = 8  # every array has 8 elements; an index is `(e) & 7`


class Break(Exception):
    pass


class Return(Exception):
    def __init__(self, value):
        self.value = value


# ---- programs -------------------------------------------------------------------------------
# Expressions are tuples: ("int", v), ("var", name), ("glob", name), ("elem", array, index),
# ("un", op, e), ("bin", op, a, b), ("call", f, args); booleans ("bool", v), ("bvar", name),
# ("bglob", name), ("cmp", op, a, b), ("and", a, b), ("or", a, b), ("not", a).
# Statements: ("let", name, e), ("set", name, op, e), ("gset", name, op, e),
# ("eset", array, index, op, e), ("if", cond, then, else), ("loop", counter, n, body),
# ("while", counter, n, e, bound, body): a loop whose test also computes e, which its body
# uses again first (the code generator carries such values into the body),
# ("break",), ("print", [e...]), ("return", e).


class Gen:
    def __init__(self, seed: int, loops: float = 0.0):
        self.r = random.Random(seed)
        self.loops = loops  # how often a statement is a loop that carries a value
        self.funcs: list[tuple[str, list[str], list]] = []  # (name, params, body)
        self.globals = {"g0": self.r.choice(LITERALS), "g1": 0, "g2": self.r.randrange(-99, 99)}
        self.bglobals = {"flag": self.r.random() < 0.5}
        self.arrays = {"arr": [self.r.randrange(-50, 50) for _ in range(ARRAY)], "zeros": None}
        self.names = 0

    def fresh(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    # expressions
    def int_expr(self, scope: list[str], depth: int, calls: bool) -> tuple:
        r = self.r
        if depth <= 0 or r.random() < 0.2:
            k = r.random()
            if k < 0.45 and scope:
                return ("var", r.choice(scope))
            if k < 0.6:
                return ("glob", r.choice(list(self.globals)))
            if k < 0.7:
                return ("elem", r.choice(list(self.arrays)), self.int_expr(scope, 1, False))
            return ("int", r.choice(LITERALS) if r.random() < 0.5 else r.randrange(-1000, 1000))
        k = r.random()
        if k < 0.1:
            return ("un", r.choice("-~"), self.int_expr(scope, depth - 1, calls))
        if k < 0.2 and calls and len(self.funcs) > 0:
            name, params, _ = r.choice(self.funcs)
            return ("call", name, [self.int_expr(scope, depth - 2, calls) for _ in params])
        if k < 0.3:
            op = r.choice("/%")
            lhs = self.int_expr(scope, depth - 1, calls)
            if r.random() < 0.6:
                return ("bin", op, lhs, ("int", r.choice(DIVISORS)))
            # never zero: odd
            return ("bin", op, lhs, ("bin", "|", self.int_expr(scope, depth - 1, calls),
                                     ("int", 1)))
        if k < 0.4:
            count = ("int", r.randrange(0, 70)) if r.random() < 0.6 else \
                self.int_expr(scope, depth - 1, calls)
            return ("bin", r.choice(["<<", ">>"]), self.int_expr(scope, depth - 1, calls), count)
        op = r.choice(["+", "-", "*", "&", "|", "^", "+", "-", "*"])
        return ("bin", op, self.int_expr(scope, depth - 1, calls),
                self.int_expr(scope, depth - 1, calls))

    def local_expr(self, scope: list[str], depth: int) -> tuple:
        """An int expression of locals and literals with at least one operator."""
        r = self.r
        def leaf():
            return ("var", r.choice(scope)) if r.random() < 0.7 else ("int", r.choice(LITERALS))
        op = r.choice(["+", "-", "*", "&", "|", "^", "<<", ">>", "*", "/", "%"])
        lhs = self.local_expr(scope, depth - 1) if depth > 1 and r.random() < 0.5 else leaf()
        if op in "/%":
            return ("bin", op, lhs, ("int", r.choice([d for d in DIVISORS])))
        rhs = self.local_expr(scope, depth - 1) if depth > 1 and r.random() < 0.5 else leaf()
        return ("bin", op, lhs, rhs)

    def bool_expr(self, scope: list[str], bscope: list[str], depth: int, calls: bool) -> tuple:
        r = self.r
        k = r.random()
        if depth <= 0 or k < 0.15:
            if bscope and r.random() < 0.5:
                return ("bvar", r.choice(bscope))
            if r.random() < 0.5:
                return ("bglob", "flag")
            return ("bool", r.random() < 0.5)
        if k < 0.3:
            return (r.choice(["and", "or"]), self.bool_expr(scope, bscope, depth - 1, calls),
                    self.bool_expr(scope, bscope, depth - 1, calls))
        if k < 0.38:
            return ("not", self.bool_expr(scope, bscope, depth - 1, calls))
        if k < 0.45:  # x % 2**k == 0, which compiles to a test of the low bits
            m = ("bin", "%", self.int_expr(scope, depth - 1, calls),
                 ("int", r.choice([2, 4, -8, 1 << 40])))
            return ("cmp", r.choice(["==", "!="]), m, ("int", 0))
        return ("cmp", r.choice(list(CMP_OPS)), self.int_expr(scope, depth - 1, calls),
                self.int_expr(scope, depth - 1, calls) if r.random() < 0.6
                else ("int", r.choice(LITERALS)))

    # statements
    def block(self, scope: list[str], bscope: list[str], fixed: set[str], n: int,
              depth: int, in_loop: bool, returns: bool = True) -> list:
        r = self.r
        scope, bscope = list(scope), list(bscope)
        out = []
        for _ in range(n):
            k = r.random()
            d = r.randrange(1, 6)
            mutable = [v for v in scope if v not in fixed]
            if k < 0.25:
                name = self.fresh("v")
                out.append(("let", name, self.int_expr(scope, d, True)))
                scope.append(name)
            elif k < 0.3:
                name = self.fresh("b")
                out.append(("let", name, self.bool_expr(scope, bscope, 3, True)))
                bscope.append(name)
            elif k < 0.5 and mutable:
                op = r.choice(["", "", "+", "-", "*", "/", "%"])
                value = self.int_expr(scope, d, True)
                if op in "/%" and op:
                    value = ("bin", "|", value, ("int", 1))
                out.append(("set", r.choice(mutable), op, value))
            elif k < 0.58:
                op = r.choice(["", "+", "-", "*"])
                out.append(("gset", r.choice(list(self.globals)), op,
                            self.int_expr(scope, d, not op)))
            elif k < 0.64:
                op = r.choice(["", "+", "-", "*"])
                out.append(("eset", r.choice(list(self.arrays)), self.int_expr(scope, 2, False),
                            op, self.int_expr(scope, d, not op)))
            elif k < 0.74 and depth > 0:
                els = self.block(scope, bscope, fixed, r.randrange(0, 3), depth - 1, in_loop,
                                 returns) if r.random() < 0.6 else None
                out.append(("if", self.bool_expr(scope, bscope, 3, True),
                            self.block(scope, bscope, fixed, r.randrange(1, 4), depth - 1,
                                       in_loop, returns), els))
            elif k < 0.82 and depth > 0:
                counter = self.fresh("i")
                body = self.block(scope + [counter], bscope, fixed | {counter},
                                  r.randrange(1, 4), depth - 1, True, returns)
                out.append(("loop", counter, r.randrange(0, 4), body))
            elif (k < 0.86 or r.random() < self.loops) and depth > 0 and scope:
                counter = self.fresh("i")
                shared = self.local_expr(mutable if mutable and r.random() < 0.7 else scope,
                                         r.randrange(1, 4))
                first, second = self.fresh("v"), self.fresh("v")
                body = [("let", first, ("bin", r.choice(["+", "-", "^"]), shared,
                                        self.int_expr(scope, 2, False)))]
                inside = [v for v in mutable if v in expr(shared).replace("(", " ")
                          .replace(")", " ").split()]
                if inside and r.random() < 0.7:  # a local of the shared value changes
                    body.append(("set", r.choice(inside), r.choice(["", "+"]),
                                 self.int_expr(scope, 2, False)))
                body.append(("let", second, ("bin", "^", shared, ("int", 1))))
                body.append(("print", [("var", first), ("var", second)]))
                third = self.fresh("v")  # (after a call, which ends what the test carried)
                body.append(("let", third, ("bin", "-", shared, ("int", 3))))
                body += self.block(scope + [counter], bscope, fixed | {counter},
                                   r.randrange(0, 3), depth - 1, True, returns)
                body.append(("print", [("var", third)]))
                out.append(("while", counter, r.randrange(0, 4), shared,
                            r.choice([INT_MIN + 1, 0, 1000, (1 << 63) - 1]), body))
            elif k < 0.88 and in_loop:
                out.append(("if", self.bool_expr(scope, bscope, 2, False), [("break",)], None))
            elif k < 0.95:
                out.append(("print", [self.int_expr(scope, d, True) if r.random() < 0.75
                                      else self.bool_expr(scope, bscope, 2, True)
                                      for _ in range(r.randrange(1, 4))]))
            elif depth < 2 and returns:
                out.append(("if", self.bool_expr(scope, bscope, 2, False),
                            [("return", self.int_expr(scope, d, True))], None))
        return out

    def program(self) -> list:
        r = self.r
        for i in range(r.randrange(3, 7)):
            params = [f"p{j}" for j in range(r.randrange(0, 7))]
            body = self.block(params, [], set(params), r.randrange(3, 12), 2, False)
            body.append(("return", self.int_expr(params + [s[1] for s in body
                                                            if s[0] == "let" and
                                                            s[1].startswith("v")], 4, True)))
            self.funcs.append((f"h{i}", params, body))
        main = self.block([], [], set(), r.randrange(4, 10), 2, False, returns=False)
        main.append(("print", [("call", name, [self.int_expr([], 3, True) for _ in params])
                               for name, params, _ in self.funcs]))
        main.append(("print", [("glob", g) for g in self.globals] +
                     [("elem", a, ("int", i)) for a in self.arrays for i in range(ARRAY)]))
        return main

    # source
    def source(self, main: list) -> str:
        out = [f"var {g}: int = {lit(v)};" for g, v in self.globals.items()]
        out += [f"var {g}: bool = {str(v).lower()};" for g, v in self.bglobals.items()]
        for a, v in self.arrays.items():
            out.append(f"var {a}: [int; {ARRAY}]" +
                       (f" = [{', '.join(lit(x) for x in v)}];" if v else ";"))
        for name, params, body in self.funcs:
            ps = ", ".join(f"{p}: int" for p in params)
            out.append(f"fn {name}({ps}) -> int {{")
            out += stmts(body, 1)
            out.append("}")
        out.append("fn main() {")
        out += stmts(main, 1)
        out.append("}")
        return "\n".join(out) + "\n"


def lit(v: int) -> str:
    return f"({v})" if v < 0 else str(v)


def expr(e: tuple) -> str:
    kind = e[0]
    if kind == "int":
        return lit(e[1])
    if kind == "bool":
        return "true" if e[1] else "false"
    if kind in ("var", "glob", "bvar", "bglob"):
        return e[1]
    if kind == "elem":
        return f"{e[1]}[({expr(e[2])}) & 7]"
    if kind == "un":
        return f"{e[1]}({expr(e[2])})"
    if kind in ("bin", "cmp"):
        return f"({expr(e[2])} {e[1]} {expr(e[3])})"
    if kind in ("and", "or"):
        return f"({expr(e[1])} {kind} {expr(e[2])})"
    if kind == "not":
        return f"(not {expr(e[1])})"
    if kind == "call":
        return f"{e[1]}({', '.join(expr(a) for a in e[2])})"
    raise AssertionError(e)


def stmts(body: list, indent: int) -> list[str]:
    pad = "    " * indent
    out = []
    for s in body:
        kind = s[0]
        if kind == "let":
            out.append(f"{pad}let {s[1]} = {expr(s[2])};")
        elif kind in ("set", "gset"):
            out.append(f"{pad}{s[1]} {s[2]}= {expr(s[3])};")
        elif kind == "eset":
            out.append(f"{pad}{s[1]}[({expr(s[2])}) & 7] {s[3]}= {expr(s[4])};")
        elif kind == "if":
            out.append(f"{pad}if {expr(s[1])} {{")
            out += stmts(s[2], indent + 1)
            if s[3] is not None:
                out.append(f"{pad}}} else {{")
                out += stmts(s[3], indent + 1)
            out.append(f"{pad}}}")
        elif kind in ("loop", "while"):
            counter, n, body = s[1], s[2], s[-1]
            test = f"{counter} < {n}" + (f" and {expr(s[3])} < {lit(s[4])}"
                                         if kind == "while" else "")
            out += [f"{pad}let {counter} = 0;", f"{pad}while {test} {{",
                    *stmts(body, indent + 1), f"{pad}    {counter} += 1;", f"{pad}}}"]
        elif kind == "break":
            out.append(f"{pad}break;")
        elif kind == "print":
            out.append(f"{pad}print({', '.join(expr(e) for e in s[1])});")
        elif kind == "return":
            out.append(f"{pad}return {expr(s[1])};")
    return out


# ---- the interpreter ------------------------------------------------------------------------


class Machine:
    def __init__(self, gen: Gen):
        self.funcs = {name: (params, body) for name, params, body in gen.funcs}
        self.globals = dict(gen.globals) | dict(gen.bglobals)
        self.arrays = {a: list(v) if v else [0] * ARRAY for a, v in gen.arrays.items()}
        self.out: list[str] = []

    def eval(self, e: tuple, env: dict):
        kind = e[0]
        if kind in ("int", "bool"):
            return e[1]
        if kind in ("var", "bvar"):
            return env[e[1]]
        if kind in ("glob", "bglob"):
            return self.globals[e[1]]
        if kind == "elem":
            return self.arrays[e[1]][self.eval(e[2], env) & 7]
        if kind == "un":
            v = self.eval(e[2], env)
            return wrap(-v) if e[1] == "-" else ~v
        if kind == "bin":
            a = self.eval(e[2], env)
            return INT_OPS[e[1]](a, self.eval(e[3], env))
        if kind == "cmp":
            a = self.eval(e[2], env)
            return CMP_OPS[e[1]](a, self.eval(e[3], env))
        if kind == "and":
            return self.eval(e[1], env) and self.eval(e[2], env)
        if kind == "or":
            return self.eval(e[1], env) or self.eval(e[2], env)
        if kind == "not":
            return not self.eval(e[1], env)
        if kind == "call":
            params, body = self.funcs[e[1]]
            args = [self.eval(a, env) for a in e[2]]
            try:
                self.exec(body, dict(zip(params, args, strict=True)))
            except Return as r:
                return r.value
            raise AssertionError("no return")
        raise AssertionError(e)

    def exec(self, body: list, env: dict) -> None:
        env = dict(env)
        for s in body:
            kind = s[0]
            if kind == "let":
                env[s[1]] = self.eval(s[2], env)
            elif kind == "set":
                v = self.eval(s[3], env)
                env[s[1]] = INT_OPS[s[2]](env[s[1]], v) if s[2] else v
                self.outer_set(env, s[1])
            elif kind == "gset":
                v = self.eval(s[3], env)
                self.globals[s[1]] = INT_OPS[s[2]](self.globals[s[1]], v) if s[2] else v
            elif kind == "eset":
                i = self.eval(s[2], env) & 7
                v = self.eval(s[4], env)
                a = self.arrays[s[1]]
                a[i] = INT_OPS[s[3]](a[i], v) if s[3] else v
            elif kind == "if":
                if self.eval(s[1], env):
                    self.run_block(s[2], env)
                elif s[3] is not None:
                    self.run_block(s[3], env)
            elif kind == "loop":
                env[s[1]] = 0
                try:
                    while env[s[1]] < s[2]:
                        self.run_block(s[3], env)
                        env[s[1]] += 1
                except Break:
                    pass
            elif kind == "while":
                env[s[1]] = 0
                try:
                    while env[s[1]] < s[2] and self.eval(s[3], env) < s[4]:
                        self.run_block(s[5], env)
                        env[s[1]] += 1
                except Break:
                    pass
            elif kind == "break":
                raise Break
            elif kind == "print":
                vals = [self.eval(e, env) for e in s[1]]
                self.out.append(" ".join(("true" if v else "false") if isinstance(v, bool)
                                         else str(v) for v in vals))
            elif kind == "return":
                raise Return(self.eval(s[1], env))

    def run_block(self, body: list, env: dict) -> None:
        """A nested block: its lets are its own, assignments to outer locals are seen."""
        inner = dict(env)
        inner["__outer__"] = env
        self.exec(body, inner)

    @staticmethod
    def outer_set(env: dict, name: str) -> None:
        e = env
        while "__outer__" in e:
            e = e["__outer__"]
            if name in e:
                e[name] = env[name]


def expected(gen: Gen, main: list) -> str:
    m = Machine(gen)
    m.exec(main, {})
    return "".join(line + "\n" for line in m.out)


# ---- the tests ------------------------------------------------------------------------------


def check(tmp_path, seed: int, arch: str = "x86_64", loops: float = 0.0) -> None:
    gen = Gen(seed, loops)
    main = gen.program()
    text = gen.source(main)
    want = expected(gen, main)
    src = tmp_path / f"p{seed}.toy"
    src.write_text(text)
    exe = tmp_path / f"p{seed}"
    built = build(src.name, exe, cwd=tmp_path, arch=arch)
    assert built.status == 0, f"seed {seed}: {built.stderr}\n{text}"
    got = run([*runner(arch), str(exe)], cwd=tmp_path, timeout=30)
    assert got.status == 0, f"seed {seed}: status {got.status}: {got.stderr}\n{text}"
    assert got.stdout == want, f"seed {seed} ({src}): the program printed\n{got.stdout}\n" \
        f"but its semantics say\n{want}"


@pytest.mark.parametrize("seed", range(24))
def test_random_programs_print_what_the_interpreter_says(tmp_path, seed):
    check(tmp_path, seed)


@pytest.mark.parametrize("seed", range(200, 216))
def test_loops_whose_test_computes_what_the_body_uses(tmp_path, seed):
    """The values a loop's test carries into its body, and the assignments that end them."""
    check(tmp_path, seed, loops=0.7)


@pytest.mark.parametrize("arch", [a for a in ARCHES if a != "x86_64"])
@pytest.mark.parametrize("seed", range(100, 104))
def test_random_programs_on_other_architectures(tmp_path, seed, arch):
    check(tmp_path, seed, arch)


@pytest.mark.slow
def test_many_random_programs(tmp_path, request):
    markexpr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if not os.environ.get("TOYC_CODEGEN_PROGRAMS") and "slow" not in markexpr:
        pytest.skip("set TOYC_CODEGEN_PROGRAMS=N or select -m slow to run many programs")
    count = int(os.environ.get("TOYC_CODEGEN_PROGRAMS") or "300")
    for seed in range(1000, 1000 + count):
        check(tmp_path, seed, loops=0.2 if seed % 2 else 0.0)


def test_division_by_a_constant_is_the_quotient():
    """The multiply-and-shift recipe the code generator follows for `x / d`
    (`toyc.divconst`) gives the truncated quotient, for divisors and dividends at every edge."""
    from toyc.divconst import power_of_two, quotient

    r = random.Random(5)
    divisors = [d for d in DIVISORS if d >= 2 and not power_of_two(d)] + \
        [r.randrange(3, 1 << r.randrange(2, 63)) | 1 for _ in range(200)]
    xs = [0, 1, -1, INT_MIN, INT_MIN + 1, (1 << 63) - 1] + \
        [r.randrange(INT_MIN, 1 << 63) for _ in range(200)]
    for d in divisors:
        for x in xs + [d, -d, d - 1, 1 - d, 3 * d, -3 * d]:
            x = wrap(x)
            assert quotient(x, d) == div(x, d), (x, d)


_SPIED: dict = {}


def _spy(bounds):
    """Lowers as the workers do, noting which process did."""
    with open(_SPIED["file"], "a") as f:
        f.write(f"{os.getpid()}\n")
    return _SPIED["real"](bounds)


def test_lowering_in_worker_processes_makes_the_same_bytes(tmp_path, monkeypatch):
    """A full build lowers a big program in worker processes (forked after checking); the
    output is byte for byte the one-process build's, for random programs cut into batches
    of 3 declarations (so that every program is lowered by workers), with and without debug
    info, executables and objects."""
    import test_incremental_random as gen

    from toyc import driver
    from toyc.session import Session

    rnd = random.Random(3)
    monkeypatch.setattr(driver, "LOWER_BATCH", 3)
    lowered_by = tmp_path / "pids"
    monkeypatch.setitem(_SPIED, "file", lowered_by)
    monkeypatch.setitem(_SPIED, "real", driver._lower_range)
    monkeypatch.setattr(driver, "_lower_range", _spy)
    for k in range(6):
        program = gen.new_program(rnd)
        for _ in range(k):
            program, _ = gen.apply_edits(program, rnd.sample(gen.EDITS, 2), rnd)
        src = tmp_path / f"p{k}.toy"
        src.write_text(gen.render(program))
        outputs = []
        for jobs in ("1", "2", "3"):
            monkeypatch.setenv("TOYC_JOBS", jobs)
            out = tmp_path / f"p{k}-{jobs}"
            Session.full_build(str(src), str(out), debug=k % 2 == 0, relocatable=k == 5)
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1] == outputs[2], f"program {k}"
    assert os.getpid() not in {int(p) for p in lowered_by.read_text().split()}
