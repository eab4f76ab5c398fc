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


def is_call(e: A.Expr) -> bool:
    """Whether evaluating `e` itself (not its operands) calls a function."""
    if isinstance(e, A.Call):
        return not e.builtin or e.callee.name in CALLING_BUILTINS
    return isinstance(e, A.Binary) and e.op in ("==", "!=") and e.lhs.ty == STR


@dataclass
class Usage:
    weight: list[int]
    scope: list[int]  # the block each local is declared in (0: the body)
    crosses: list[bool]  # a call may happen while it is live
    parents: list[int] = field(default_factory=list)  # per block, the enclosing one (-1)


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


def assign(fn: A.FnDecl) -> Assignment:
    u = usage(fn)
    n = len(fn.locals)
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
    params = [i for i, local in enumerate(fn.locals) if local.is_param]
    # a parameter used only by its move into place on entry stays in its slot
    scalar = [i for i, local in enumerate(fn.locals)
              if not local.ty.is_array and u.weight[i] > (1 if local.is_param else 0)]
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
    return Assignment(reg, saved, free_used)
