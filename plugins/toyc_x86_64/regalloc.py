"""Where each local of one function lives: a register, or a stack slot below the frame pointer.

One walk over the function measures, per local (parameters included), how often it is used,
weighting a use inside n nested loops by 8**n; the block it is declared in; and whether a call
can happen while it holds a value (a call after its `let` in its block, or anywhere in the
body for a parameter). Then the locals take registers, the most used first:

- one that no call can overwrite may take a caller-saved register (`FREE_REGS`, at most
  `MAX_FREE_LOCALS` of them, so that expressions keep enough scratch registers); a parameter
  of that kind keeps the register it arrives in when it can;
- the others take callee-saved registers (`SAVED_REGS`), which the prologue saves;
- two locals whose blocks are disjoint (neither inside the other) may share a register: one's
  value is dead before the other's `let`;
- what is left, and every array, lives in a stack slot.

A loop's test may compute values that the start of its body computes again (`x * x` in
`while x * x + y * y <= r { let t = x * x - y * y; ...`): `carried_values` finds them, and each
takes a register like a local declared where the loop is, so that the body uses the test's
result instead of computing it again (the body starts only from the test).

Only the function's own body decides this, so its code still depends on nothing but its own
source and the signatures it calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toyc import ast as A
from toyc.types import STR

ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
SAVED_REGS = ("rbx", "r12", "r13", "r14", "r15")
FREE_REGS = ("r10", "r11", "r8", "r9", "rsi", "rdi")
MAX_FREE_LOCALS = 4
# built-ins that call into the runtime (a call clobbers the caller-saved registers)
CALLING_BUILTINS = {"print", "eprint", "argv", "parse_int", "sleep_ms", "clock_ns", "spawn",
                    "join"}
LOOP_WEIGHT = 8
MAX_LOOP_DEPTH = 5
MAX_CARRIED = 2  # values carried from one loop's test into its body
# operators of the values a loop may carry: none can panic or have an effect
CARRY_OPS = {"+", "-", "*", "&", "|", "^", "<<", ">>"}


def is_call(e: A.Expr) -> bool:
    """Whether evaluating `e` itself (not its operands) calls a function."""
    if isinstance(e, A.Call):
        return not e.builtin or e.callee.name in CALLING_BUILTINS
    return isinstance(e, A.Binary) and e.op in ("==", "!=") and e.lhs.ty == STR


def value_key(e: A.Expr, memo: dict[int, tuple | None]) -> tuple | None:
    """What identifies an int expression computed from locals and literals only, which can
    neither panic nor have an effect (equal keys, equal values while no local in it is
    assigned); None for any other expression. `memo` keeps the keys found, by node."""
    known = memo.get(id(e), 0)
    if known != 0:
        return known
    key = memo[id(e)] = _key(e, memo)
    return key


def _key(e: A.Expr, memo: dict[int, tuple | None]) -> tuple | None:
    kind = type(e)
    if kind is A.Name:
        return ("local", e.local) if e.kind == "local" else None
    if kind is A.IntLit:
        return ("int", e.value)
    if kind is A.Unary:
        if e.op == "not":
            return None
        inner = value_key(e.operand, memo)
        return None if inner is None else (e.op, inner)
    if kind is A.Binary and (e.op in CARRY_OPS or (e.op in ("/", "%") and
                                                    isinstance(e.rhs, A.IntLit) and e.rhs.value)):
        lhs = value_key(e.lhs, memo)
        rhs = None if lhs is None else value_key(e.rhs, memo)
        return None if rhs is None else (e.op, lhs, rhs)
    return None


def key_locals(key: tuple) -> set[int]:
    if key[0] == "local":
        return {key[1]}
    if key[0] == "int":
        return set()
    return set().union(*(key_locals(k) for k in key[1:]))


def _computed(e: A.Expr, out: list[A.Expr], memo: dict) -> None:
    """The operator nodes with a `value_key` that always run when `e` does: all of such an
    expression's, and those in the operands of comparisons and `not` (not those behind an
    `and` or `or`, which may be skipped, nor inside calls and indexes)."""
    stack = [e]
    while stack:
        e = stack.pop()
        if isinstance(e, (A.Unary, A.Binary)) and value_key(e, memo) is not None:
            out.append(e)
            stack += (e.operand,) if isinstance(e, A.Unary) else (e.lhs, e.rhs)
        elif isinstance(e, A.Unary) and e.op == "not":
            stack.append(e.operand)
        elif isinstance(e, A.Binary) and e.op in ("==", "!=", "<", "<=", ">", ">="):
            stack += (e.lhs, e.rhs)


def _evaluated(cond: A.Expr, holds: bool | None, out: list[A.Expr], memo: dict) -> None:
    """The int expressions inside `cond` that have been computed once it evaluated to
    `holds` (None: whatever it evaluated to): `and`/`or` skip their right side sometimes."""
    if isinstance(cond, A.Unary) and cond.op == "not":
        _evaluated(cond.operand, None if holds is None else not holds, out, memo)
    elif isinstance(cond, A.Binary) and cond.op in ("and", "or"):
        _evaluated(cond.lhs, None if holds != (cond.op == "and") else holds, out, memo)
        if holds == (cond.op == "and"):  # true `and`, false `or`: both sides ran
            _evaluated(cond.rhs, holds, out, memo)
    elif isinstance(cond, A.Binary) and cond.op in ("==", "!=", "<", "<=", ">", ">="):
        _computed(cond.lhs, out, memo)
        _computed(cond.rhs, out, memo)


def statement_exprs(s: A.Let | A.Assign | A.ExprStmt) -> list[A.Expr]:
    """The expressions a simple statement evaluates (an array literal's elements)."""
    if isinstance(s, A.Let):
        if s.init is None:
            return []
        return list(s.init.elems) if isinstance(s.init, A.ArrayLit) else [s.init]
    if isinstance(s, A.Assign):
        return [s.value, s.target]
    return [s.expr]


def assigned_local(s: A.Stmt) -> int:
    """The local a `let` or an assignment writes; -1 for none."""
    if isinstance(s, A.Let):
        return s.local
    if isinstance(s, A.Assign) and isinstance(s.target, A.Name) and s.target.kind == "local":
        return s.target.local
    return -1


def has_call(e: A.Expr) -> bool:
    """Whether evaluating `e` calls anything."""
    stack = [e]
    while stack:
        e = stack.pop()
        if is_call(e):
            return True
        if isinstance(e, A.Unary):
            stack.append(e.operand)
        elif isinstance(e, A.Binary):
            stack += (e.lhs, e.rhs)
        elif isinstance(e, A.Index):
            stack += (e.base, e.index)
        elif isinstance(e, A.Call):
            stack += e.args
        elif isinstance(e, A.ArrayLit):
            stack += e.elems
    return False


def carried_values(s: A.While) -> list[tuple[tuple, int]]:
    """The values loop `s` carries from its test into its body, with how often the body
    uses each: computed in the test whenever it holds, and used again by the body's first
    statements (up to the first one that is not a `let`, an assignment or an expression, or
    that calls something) before a local they read is assigned."""
    memo: dict[int, tuple | None] = {}
    computed: list[A.Expr] = []
    _evaluated(s.cond, True, computed, memo)
    candidates = {value_key(e, memo) for e in computed}
    if not candidates:
        return []
    uses: dict[tuple, int] = {}
    for st in s.body.stmts:
        if not isinstance(st, (A.Let, A.Assign, A.ExprStmt)):
            break
        exprs = statement_exprs(st)
        if any(has_call(e) for e in exprs):
            break
        found: list[A.Expr] = []
        for e in exprs:
            _computed(e, found, memo)
        for e in found:
            k = value_key(e, memo)
            if k in candidates:
                uses[k] = uses.get(k, 0) + 1
        assigned = assigned_local(st)
        if assigned >= 0:
            candidates = {k for k in candidates if assigned not in key_locals(k)}
    ranked = sorted(uses.items(), key=lambda item: -item[1])
    return ranked[:MAX_CARRIED]


@dataclass
class Usage:
    weight: list[int]
    scope: list[int]  # the block each local is declared in (0: the body)
    crosses: list[bool]  # a call may happen while it is live
    parents: list[int] = field(default_factory=list)  # per block, the enclosing one (-1)
    # per loop (by id), the values it carries: (key, index of the pseudo-local that holds it)
    carried: dict[int, list[tuple[tuple, int]]] = field(default_factory=dict)


class _Walk:
    def __init__(self, fn: A.FnDecl):
        n = len(fn.locals)
        self.u = Usage([0] * n, [0] * n, [False] * n)
        self.params = [i for i, local in enumerate(fn.locals) if local.is_param]
        self.open: list[list[int]] = []  # the locals declared so far in each open block
        self.depth = 0
        self.unit = 1  # what one use weighs at this depth
        for i in self.params:
            self.u.weight[i] = 1  # its move into place on entry

    def block(self, b: A.Block) -> None:
        index = len(self.u.parents)
        self.u.parents.append(self.current)
        self.current = index
        self.open.append([])
        for s in b.stmts:
            self.stmt(s)
        self.open.pop()
        self.current = self.u.parents[index]

    current = -1

    def use(self, local: int) -> None:
        self.u.weight[local] += self.unit

    def stmt(self, s: A.Stmt) -> None:
        if isinstance(s, A.ExprStmt):
            self.expr(s.expr)
        elif isinstance(s, A.Let):
            if s.init is not None:
                self.expr(s.init)
            self.use(s.local)
            self.u.scope[s.local] = self.current
            self.open[-1].append(s.local)
        elif isinstance(s, A.Assign):
            self.expr(s.value)
            self.expr(s.target)
        elif isinstance(s, A.Block):
            self.block(s)
        elif isinstance(s, A.If):
            self.expr(s.cond)
            self.block(s.then)
            if s.els is not None:
                self.stmt(s.els)
        elif isinstance(s, A.While):
            self.depth += 1
            self.unit = LOOP_WEIGHT ** min(self.depth, MAX_LOOP_DEPTH)
            self.expr(s.cond)
            values = carried_values(s)
            if values:
                # each like a local declared where the loop is, used once more per use
                crosses = has_call(s.cond)
                held = []
                for key, count in values:
                    held.append((key, len(self.u.weight)))
                    self.u.weight.append((count + 1) * self.unit)
                    self.u.scope.append(self.current)
                    self.u.crosses.append(crosses)
                self.u.carried[id(s)] = held
            self.block(s.body)
            self.depth -= 1
            self.unit = LOOP_WEIGHT ** min(self.depth, MAX_LOOP_DEPTH)
        elif isinstance(s, A.Return) and s.value is not None:
            self.expr(s.value)

    def expr(self, e: A.Expr) -> None:
        # iterative: binary chains nest deeply. Within one expression no `let` happens, so
        # when a call is met does not matter.
        stack = [e]
        weight, unit = self.u.weight, self.unit
        while stack:
            e = stack.pop()
            kind = type(e)
            if kind is A.Name:
                if e.kind == "local":
                    weight[e.local] += unit
            elif kind is A.Binary:
                stack += (e.rhs, e.lhs)
                if e.op in ("==", "!=") and e.lhs.ty == STR:
                    self.call()
            elif kind is A.Call:
                stack += e.args
                if not e.builtin or e.callee.name in CALLING_BUILTINS:
                    self.call()
            elif kind is A.Unary:
                stack.append(e.operand)
            elif kind is A.Index:
                stack += (e.index, e.base)
            elif kind is A.ArrayLit:
                stack += e.elems

    def call(self) -> None:
        for i in self.params:
            self.u.crosses[i] = True
        for declared in self.open:
            for i in declared:
                self.u.crosses[i] = True


def usage(fn: A.FnDecl) -> Usage:
    w = _Walk(fn)
    w.block(fn.body)
    return w.u


@dataclass
class Assignment:
    reg: list[str | None]  # per local: its register, or None for a stack slot
    saved: list[str]  # the callee-saved registers used, in SAVED_REGS order
    free: list[str]  # the caller-saved registers used
    # per loop (by id): the values it carries (`carried_values`) that got a register
    carried: dict[int, list[tuple[tuple, str]]] = field(default_factory=dict)


def assign(fn: A.FnDecl) -> Assignment:
    u = usage(fn)
    n = len(u.weight)  # the locals, then the carried values
    real = len(fn.locals)
    is_param = [local.is_param for local in fn.locals] + [False] * (n - real)
    is_array = [local.ty.is_array for local in fn.locals] + [False] * (n - real)
    chains = []  # per block, it and the blocks around it
    for parent in u.parents:
        chains.append({len(chains)} | (chains[parent] if parent >= 0 else set()))
    reg: list[str | None] = [None] * n
    holders: dict[str, list[int]] = {}

    def conflicts(r: str, i: int) -> bool:
        si = u.scope[i]
        return any(si in chains[u.scope[j]] or u.scope[j] in chains[si]
                   for j in holders.get(r, ()))

    def take(r: str, i: int) -> None:
        reg[i] = r
        holders.setdefault(r, []).append(i)

    free_used: list[str] = []
    params = [i for i in range(n) if is_param[i]]
    # a parameter used only by its move into place on entry stays in its slot
    scalar = [i for i in range(n) if not is_array[i] and u.weight[i] > (1 if is_param[i] else 0)]
    # parameters that no call overwrites keep the register they come in
    for i in scalar:
        if i in params and not u.crosses[i] and ARG_REGS[i] in FREE_REGS and \
                len(free_used) < MAX_FREE_LOCALS:
            take(ARG_REGS[i], i)
            free_used.append(ARG_REGS[i])
    for i in sorted(scalar, key=lambda i: -u.weight[i]):
        if reg[i] is not None:
            continue
        if not u.crosses[i]:
            r = next((r for r in free_used if not conflicts(r, i)), None)
            if r is None and len(free_used) < MAX_FREE_LOCALS:
                r = next(r for r in FREE_REGS if r not in free_used)
                free_used.append(r)
            if r is not None:
                take(r, i)
                continue
        r = next((r for r in SAVED_REGS if not conflicts(r, i)), None)
        if r is not None:
            take(r, i)
    saved = [r for r in SAVED_REGS if r in holders]
    carried = {loop: [(key, reg[i]) for key, i in held if reg[i] is not None]
               for loop, held in u.carried.items()}
    return Assignment(reg[:real], saved, free_used, carried)
