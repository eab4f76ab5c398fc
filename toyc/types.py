"""The types of the Toy language and their sizes in memory.

`int` and `str` take 8 bytes everywhere; `bool` takes 8 bytes in registers and stack slots and
1 byte in globals and in array elements; an array is its elements back to back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Type:
    name: str  # "int", "bool", "str", "void" or "array"
    elem: Type | None = None
    length: int = 0

    def __str__(self) -> str:
        if self.name == "array":
            return f"[{self.elem}; {self.length}]"
        return self.name

    @property
    def is_array(self) -> bool:
        return self.name == "array"

    @property
    def is_scalar(self) -> bool:
        return self.name in ("int", "bool", "str")

    @property
    def size(self) -> int:
        """Size in a global or an array element."""
        if self.name == "array":
            return self.elem.size * self.length
        return 1 if self.name == "bool" else 8

    @property
    def align(self) -> int:
        if self.name == "array":
            return self.elem.align
        return 1 if self.name == "bool" else 8


INT = Type("int")
BOOL = Type("bool")
STR = Type("str")
VOID = Type("void")
SCALARS = {"int": INT, "bool": BOOL, "str": STR}


def array_of(elem: Type, length: int) -> Type:
    return Type("array", elem, length)
