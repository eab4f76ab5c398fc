"""Signed division by a constant without a divide instruction, for code generators.

`x / d` for a constant d >= 2 is the high half of a 128-bit product `x * magic`, shifted
right and rounded toward zero (Granlund and Montgomery, "Division by invariant integers using
multiplication", 1994; the construction of Hacker's Delight, 10-1). `magic(d)` finds the
multiplier and the shift; `quotient` is the recipe the generated code follows, on Python
ints, so that tests can compare it with `toyc.consteval.div` for any x.
"""

from __future__ import annotations

from toyc import consteval

WORD = 64


def magic(d: int) -> tuple[int, int]:
    """The signed multiplier M (as a signed 64-bit value) and shift s for `x / d`,
    2 <= d < 2**63."""
    assert 2 <= d < 1 << (WORD - 1)
    two = 1 << (WORD - 1)
    anc = two - 1 - two % d  # the largest multiple of d below 2**63, less one
    p = WORD - 1
    q1, r1 = divmod(two, anc)
    q2, r2 = divmod(two, d)
    while True:
        p += 1
        q1, r1 = 2 * q1, 2 * r1
        if r1 >= anc:
            q1, r1 = q1 + 1, r1 - anc
        q2, r2 = 2 * q2, 2 * r2
        if r2 >= d:
            q2, r2 = q2 + 1, r2 - d
        delta = d - r2
        if not (q1 < delta or (q1 == delta and r1 == 0)):
            break
    return consteval.wrap(q2 + 1), p - WORD


def power_of_two(d: int) -> int:
    """k if d == 2**k with k >= 1, else 0."""
    return d.bit_length() - 1 if d >= 2 and d & (d - 1) == 0 else 0


def quotient(x: int, d: int) -> int:
    """x / d the way generated code computes it: high half of x * M (plus x when M is
    negative), shifted right by s, plus one when x is negative."""
    m, s = magic(d)
    high = (x * m) >> WORD
    if m < 0:
        high += x
    return consteval.wrap((high >> s) + (1 if x < 0 else 0))
