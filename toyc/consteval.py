"""Toy's integer arithmetic on Python ints, for constant expressions.

These are the run-time semantics of LANGUAGE.md: 64-bit two's complement wrapping, `/`
truncating toward zero, `%` taking the dividend's sign, shift counts taken mod 64 and `>>`
arithmetic. The checker folds global initializers and array lengths with them.
"""

from __future__ import annotations

MASK = (1 << 64) - 1
INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1


def wrap(v: int) -> int:
    v &= MASK
    return v - (1 << 64) if v >> 63 else v


def div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return wrap(q if (a < 0) == (b < 0) else -q)


def rem(a: int, b: int) -> int:
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


def int_binary(op: str, a: int, b: int) -> int | bool:
    """`op` applied to two ints; raises ZeroDivisionError for `/` or `%` by zero."""
    if op == "+":
        return wrap(a + b)
    if op == "-":
        return wrap(a - b)
    if op == "*":
        return wrap(a * b)
    if op == "/":
        if b == 0:
            raise ZeroDivisionError
        return div(a, b)
    if op == "%":
        if b == 0:
            raise ZeroDivisionError
        return rem(a, b)
    if op == "<<":
        return wrap(a << (b & 63))
    if op == ">>":
        return a >> (b & 63)
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
