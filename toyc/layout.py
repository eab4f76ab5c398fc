"""The Toy ABI's byte layout of values (LANGUAGE.md, Types), for architecture plugins.

A string constant is its length as a u64, its bytes, then a NUL; a `str` value points at the
first byte, `STR_HEADER` bytes into the constant's atom. An `int` is 8 bytes, a `bool` one byte
(0 or 1), an array its elements one after another, a `str` global a pointer filled by the
architecture's 64-bit absolute relocation. These hold for every 64-bit architecture; only the
byte order and the relocation type differ, and the plugin passes them in.
"""

from __future__ import annotations

from toyc.code import Code, Reloc, Target
from toyc.types import Type

STR_HEADER = 8


def lower_string(value: bytes, byteorder: str = "little") -> Code:
    return Code(len(value).to_bytes(8, byteorder) + value + b"\0", [], 8)


def lower_global(ty: Type, value: object, pointer_reloc: int,
                 byteorder: str = "little") -> Code:
    """The bytes of a global of type `ty` holding `value` (None: an all-zero array).
    `pointer_reloc` is the relocation type that fills a 64-bit absolute address."""
    if ty.is_array and value is None:
        return Code(b"", [], ty.align, size=ty.size)
    out = bytearray()
    relocs: list[Reloc] = []
    if ty.is_array:
        size = 8 if ty.elem.name == "int" else 1
        for v in value:
            out += int(v).to_bytes(size, byteorder, signed=True)
    elif ty.name == "int":
        out += value.to_bytes(8, byteorder, signed=True)
    elif ty.name == "bool":
        out.append(1 if value else 0)
    else:  # str: a pointer to the constant's first byte
        relocs.append(Reloc(0, pointer_reloc, Target("uav", value), STR_HEADER))
        out += bytes(8)
    return Code(bytes(out), relocs, ty.align)
