"""The walk over one checked function that architectures' code generators share.

`FunctionLowering` owns the order of things: a stack slot for each local (its distance below
the frame pointer), statements in order, `if` and `while` as labels and branches, `break` and
`continue` to the innermost loop, `return` to the epilogue, expressions dispatched by kind,
and the cold panic stubs collected for the end of the function. Every instruction is the
architecture's: a subclass in its plugin supplies the methods that raise NotImplementedError,
and its assembler `a` has `mark(relative line, column)` to record where each statement's code
starts (the rows of the function's line table, for debug info: `toyc.code.Code.rows`), and
`point()` and `point_offsets` to find where each block's code starts and ends (`finish`).
A plugin need not use this at all; `Architecture.lower_function` (`toyc.arch`) only has to
return a `Code`.
"""

from __future__ import annotations

from toyc import ast as A
from toyc.code import Code
from toyc.source import Span
from toyc.types import Type

RETURN_LABEL = ".Lret"  # where `return` jumps: the epilogue


def slot_size(ty: Type) -> int:
    """Bytes of a local's stack slot: a whole number of 8-byte words."""
    return (ty.size + 7) & ~7 if ty.is_array else 8


class FunctionLowering:
    def __init__(self, fn: A.FnDecl, path: str):
        self.fn = fn
        self.path = path
        self.labels = 0
        self.loops: list[tuple[str, str]] = []  # (continue label, break label)
        self.cold: list[tuple[str, bytes, Span]] = []  # (label, panic message, where)
        self.slots: list[int] = []  # each local's lowest byte, as a distance below the frame
        frame = 0
        for local in fn.locals:
            frame += slot_size(local.ty)
            self.slots.append(frame)
        self.frame = (frame + 15) & ~15  # the locals' area, keeping the stack 16-byte aligned
        self.scopes: list[list[int]] = []  # each block's [start, end] point, in source order

    def label(self) -> str:
        self.labels += 1
        return f".L{self.labels}"

    def panic_label(self, message: str, span: Span) -> str:
        """A label to branch to when the program must panic with `message` at `span`; the
        architecture emits the stubs from `cold` after the function's return."""
        label = self.label()
        self.cold.append((label, message.encode(), span))
        return label

    def mark(self, line: int, col: int) -> None:
        """The code for source position `line`:`col` starts here."""
        self.a.mark(line - self.fn.span.line, col)

    def mark_entry(self) -> None:
        """Where the function starts: its declaration's line (call first, at offset 0)."""
        self.mark(self.fn.span.line, self.fn.span.col)

    def finish(self, code: Code) -> Code:
        """Add what debug info needs to the assembled `code`: the locals' slots and the
        blocks' code ranges."""
        at = self.a.point_offsets
        code.frame_slots = list(self.slots)
        code.scopes = [(at[start], at[end]) for start, end in self.scopes]
        return code

    def mark_exit(self) -> None:
        """The epilogue belongs to the closing brace."""
        end = self.fn.body.span
        self.mark(end.end_line, max(1, end.end_col - 1))

    # ---- what the architecture supplies -------------------------------------------------------

    def place(self, label: str) -> None:
        """Define `label` here."""
        raise NotImplementedError

    def jump(self, label: str) -> None:
        raise NotImplementedError

    def branch_false(self, cond: A.Expr, label: str) -> None:
        """Evaluate `cond` and branch to `label` when it is false."""
        raise NotImplementedError

    def let(self, s: A.Let) -> None:
        raise NotImplementedError

    def assign(self, s: A.Assign) -> None:
        raise NotImplementedError

    def int_lit(self, e: A.IntLit) -> None:
        raise NotImplementedError

    def bool_lit(self, e: A.BoolLit) -> None:
        raise NotImplementedError

    def str_lit(self, e: A.StrLit) -> None:
        raise NotImplementedError

    def name(self, e: A.Name) -> None:
        raise NotImplementedError

    def unary(self, e: A.Unary) -> None:
        raise NotImplementedError

    def binary(self, e: A.Binary) -> None:
        raise NotImplementedError

    def index(self, e: A.Index) -> None:
        raise NotImplementedError

    def user_call(self, e: A.Call) -> None:
        raise NotImplementedError

    def builtin(self, e: A.Call) -> None:
        raise NotImplementedError

    # ---- the walk ------------------------------------------------------------------------------

    def block(self, b: A.Block) -> None:
        scope = [self.a.point(), -1]
        self.scopes.append(scope)
        for s in b.stmts:
            self.stmt(s)
        scope[1] = self.a.point()

    def stmt(self, s: A.Stmt) -> None:
        if not isinstance(s, (A.Block, A.While)):  # a loop's row is at its condition
            self.mark(s.span.line, s.span.col)
        if isinstance(s, A.ExprStmt):
            self.expr(s.expr)
        elif isinstance(s, A.Let):
            self.let(s)
        elif isinstance(s, A.Assign):
            self.assign(s)
        elif isinstance(s, A.Block):
            self.block(s)
        elif isinstance(s, A.If):
            els, end = self.label(), self.label()
            self.branch_false(s.cond, els)
            self.block(s.then)
            if s.els is not None:
                self.jump(end)
            self.place(els)
            if s.els is not None:
                self.stmt(s.els)
            self.place(end)
        elif isinstance(s, A.While):
            top, end = self.label(), self.label()
            self.place(top)
            self.mark(s.span.line, s.span.col)
            self.branch_false(s.cond, end)
            self.loops.append((top, end))
            self.block(s.body)
            self.loops.pop()
            self.jump(top)
            self.place(end)
        elif isinstance(s, A.Break):
            self.jump(self.loops[-1][1])
        elif isinstance(s, A.Continue):
            self.jump(self.loops[-1][0])
        elif isinstance(s, A.Return):
            if s.value is not None:
                self.expr(s.value)
            self.jump(RETURN_LABEL)

    def expr(self, e: A.Expr) -> None:
        if isinstance(e, A.IntLit):
            self.int_lit(e)
        elif isinstance(e, A.BoolLit):
            self.bool_lit(e)
        elif isinstance(e, A.StrLit):
            self.str_lit(e)
        elif isinstance(e, A.Name):
            self.name(e)
        elif isinstance(e, A.Unary):
            self.unary(e)
        elif isinstance(e, A.Binary):
            self.binary(e)
        elif isinstance(e, A.Index):
            self.index(e)
        elif isinstance(e, A.Call):
            if e.builtin:
                self.builtin(e)
            else:
                self.user_call(e)
        else:
            raise AssertionError(f"cannot generate code for {type(e).__name__}")
