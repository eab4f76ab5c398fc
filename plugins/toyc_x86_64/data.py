"""Byte layout of globals and string constants on x86_64 (little-endian, 8-byte pointers).

A string constant is its length as a u64, its bytes, then a NUL; a `str` value points at the
first byte, 8 bytes into the atom. A `str` global is such a pointer, filled by a relocation.
"""

from __future__ import annotations

import struct

from toyc.code import Code, Reloc, Target
from toyc.types import Type

from .relocs import R_X86_64_64

STR_HEADER = 8


def lower_string(value: bytes) -> Code:
    return Code(struct.pack("<Q", len(value)) + value + b"\0", [], 8)


def lower_global(ty: Type, value: object) -> Code:
    if ty.is_array and value is None:
        return Code(b"", [], ty.align, size=ty.size)
    out = bytearray()
    relocs: list[Reloc] = []
    _put(out, relocs, ty, value)
    return Code(bytes(out), relocs, ty.align)


def _put(out: bytearray, relocs: list[Reloc], ty: Type, value: object) -> None:
    if ty.is_array:
        fmt = "<q" if ty.elem.name == "int" else "<B"
        out += b"".join(struct.pack(fmt, int(v)) for v in value)
    elif ty.name == "int":
        out += struct.pack("<q", value)
    elif ty.name == "bool":
        out.append(1 if value else 0)
    else:  # str: a pointer to the constant's first byte
        relocs.append(Reloc(len(out), R_X86_64_64, Target("uav", value), STR_HEADER))
        out += bytes(8)
