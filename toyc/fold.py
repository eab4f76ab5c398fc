"""Constant folding of one checked function, before code generation.

`fold_function` returns the function with every expression whose value is known at compile
time replaced by a literal: operators over literals (with Toy's run-time semantics, from
`toyc.consteval`), names of scalar `const` globals (their value is part of what the tracker
calls their interface, so a function that folded one is regenerated when it changes), `len`
of a string literal or an array, a string literal's byte at a constant index, and the
identities that need no value (`x + 0`, `x * 1`, `true and x`, ...). What could panic at run
time is never folded away: a division by a zero literal, an index out of bounds, and an
operand that holds a call, an index or a division is kept even where its value is not needed
(`f() * 0`).

The checked tree is not changed: nodes that fold are copied, so that a later check of the
same declaration (an incremental update re-checks unchanged text) sees it as it was. The
blocks and locals stay as they are, which debug info relies on.
"""

from __future__ import annotations

from dataclasses import replace

from toyc import ast as A
from toyc import consteval
from toyc.types import BOOL, INT, STR

# built-ins with no effect and no panic: dropping a call of one changes nothing
_PURE_BUILTINS = ("len", "argc")


def fold_function(fn: A.FnDecl) -> A.FnDecl:
    if fn.body is None:
        return fn
    body = _block(fn.body)
    return fn if body is fn.body else replace(fn, body=body)


# ---- statements ----------------------------------------------------------------------------


def _block(b: A.Block) -> A.Block:
    stmts = [_stmt(s) for s in b.stmts]
    if all(x is y for x, y in zip(stmts, b.stmts, strict=True)):
        return b
    return replace(b, stmts=stmts)


def _stmt(s: A.Stmt) -> A.Stmt:
    if isinstance(s, A.ExprStmt):
        e = fold(s.expr)
        return s if e is s.expr else replace(s, expr=e)
    if isinstance(s, A.Let):
        if s.init is None:
            return s
        e = fold(s.init)
        return s if e is s.init else replace(s, init=e)
    if isinstance(s, A.Assign):
        t, v = fold(s.target), fold(s.value)
        return s if t is s.target and v is s.value else replace(s, target=t, value=v)
    if isinstance(s, A.Block):
        return _block(s)
    if isinstance(s, A.If):
        c, then = fold(s.cond), _block(s.then)
        els = s.els if s.els is None else _stmt(s.els)
        if c is s.cond and then is s.then and els is s.els:
            return s
        return replace(s, cond=c, then=then, els=els)
    if isinstance(s, A.While):
        c, body = fold(s.cond), _block(s.body)
        return s if c is s.cond and body is s.body else replace(s, cond=c, body=body)
    if isinstance(s, A.Return):
        if s.value is None:
            return s
        e = fold(s.value)
        return s if e is s.value else replace(s, value=e)
    return s  # break, continue


# ---- expressions ---------------------------------------------------------------------------


def _int(like: A.Expr, value: int) -> A.IntLit:
    return A.IntLit(like.span, value, INT)


def _bool(like: A.Expr, value: bool) -> A.BoolLit:
    return A.BoolLit(like.span, bool(value), BOOL)


def pure(e: A.Expr) -> bool:
    """Whether evaluating `e` can neither have an effect nor panic."""
    if isinstance(e, (A.IntLit, A.BoolLit, A.StrLit, A.Name)):
        return True
    if isinstance(e, A.Unary):
        return pure(e.operand)
    if isinstance(e, A.Binary):
        return e.op not in ("/", "%") and pure(e.lhs) and pure(e.rhs)
    if isinstance(e, A.Call):
        return e.builtin and e.callee.name in _PURE_BUILTINS and all(pure(a) for a in e.args)
    return False  # an index may be out of bounds


def fold(e: A.Expr) -> A.Expr:
    if isinstance(e, A.Name):
        if e.const:
            v = e.value
            if isinstance(v, bool):
                return _bool(e, v)
            if isinstance(v, int):
                return _int(e, v)
            return A.StrLit(e.span, v, STR)
        return e
    if isinstance(e, A.Unary):
        return _unary(e)
    if isinstance(e, A.Binary):
        return _binary(e)
    if isinstance(e, A.Call):
        args = [fold(a) for a in e.args]
        if e.builtin and e.callee.name == "len":
            x = args[0]
            if isinstance(x, A.StrLit):
                return _int(e, len(x.value))
            if x.ty is not None and x.ty.is_array:
                return _int(e, x.ty.length)
        if all(x is y for x, y in zip(args, e.args, strict=True)):
            return e
        return replace(e, args=args)
    if isinstance(e, A.Index):
        base, index = fold(e.base), fold(e.index)
        if isinstance(base, A.StrLit) and isinstance(index, A.IntLit) and \
                0 <= index.value < len(base.value):
            return _int(e, base.value[index.value])
        return e if base is e.base and index is e.index else replace(e, base=base, index=index)
    if isinstance(e, A.ArrayLit):
        elems = [fold(x) for x in e.elems]
        if all(x is y for x, y in zip(elems, e.elems, strict=True)):
            return e
        return replace(e, elems=elems)
    return e


def _unary(e: A.Unary) -> A.Expr:
    x = fold(e.operand)
    if isinstance(x, A.IntLit):
        return _int(e, consteval.wrap(-x.value) if e.op == "-" else ~x.value)
    if isinstance(x, A.BoolLit):
        return _bool(e, not x.value)
    if e.op == "not" and isinstance(x, A.Unary) and x.op == "not":
        return x.operand
    return e if x is e.operand else replace(e, operand=x)


def _binary(e: A.Binary) -> A.Expr:
    op = e.op
    lhs, rhs = fold(e.lhs), fold(e.rhs)
    if op in ("and", "or"):
        return _logic(e, lhs, rhs)
    lit = (A.IntLit, A.BoolLit, A.StrLit)
    if isinstance(lhs, lit) and isinstance(rhs, lit):
        if op == "==":
            return _bool(e, lhs.value == rhs.value)
        if op == "!=":
            return _bool(e, lhs.value != rhs.value)
        if op not in ("/", "%") or rhs.value != 0:  # a division by zero panics at run time
            v = consteval.int_binary(op, lhs.value, rhs.value)
            return _bool(e, v) if isinstance(v, bool) else _int(e, v)
    if e.ty == INT:
        same = _identity(op, lhs, rhs)
        if same is not None:
            return same
    if lhs is e.lhs and rhs is e.rhs:
        return e
    return replace(e, lhs=lhs, rhs=rhs)


def _identity(op: str, lhs: A.Expr, rhs: A.Expr) -> A.Expr | None:
    """`lhs op rhs` without computing it, where one side is a literal that decides it."""
    r = rhs.value if isinstance(rhs, A.IntLit) else None
    left = lhs.value if isinstance(lhs, A.IntLit) else None
    if r == 0 and op in ("+", "-", "|", "^"):
        return lhs
    if r is not None and op in ("<<", ">>") and r & 63 == 0:
        return lhs
    if r == 1 and op in ("*", "/"):
        return lhs
    if left == 0 and op in ("+", "|", "^"):
        return rhs
    if left == 1 and op == "*":
        return rhs
    if (r == 0 and op in ("*", "&") and pure(lhs)) or \
            (left == 0 and op in ("*", "&", "<<", ">>") and pure(rhs)):
        return _int(lhs, 0)
    return None


def _logic(e: A.Binary, lhs: A.Expr, rhs: A.Expr) -> A.Expr:
    decides = e.op == "or"  # the value of an operand that decides the result
    if isinstance(lhs, A.BoolLit):
        return _bool(e, decides) if lhs.value == decides else rhs
    if isinstance(rhs, A.BoolLit):
        if rhs.value != decides:
            return lhs
        if pure(lhs):
            return _bool(e, decides)
    if lhs is e.lhs and rhs is e.rhs:
        return e
    return replace(e, lhs=lhs, rhs=rhs)
