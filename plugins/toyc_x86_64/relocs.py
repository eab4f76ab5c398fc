"""x86_64 relocation types, how to apply them, and the trampoline (`jmp rel32`)."""

from __future__ import annotations

import struct

from toyc.code import Reloc, RelocationOverflow

R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_TPOFF32 = 23  # a thread-local's offset from the thread pointer (local exec)

TRAMPOLINE_SIZE = 5


def _fits(value: int, bits: int, signed: bool) -> bool:
    if signed:
        return -(1 << (bits - 1)) <= value < (1 << (bits - 1))
    return 0 <= value < (1 << bits)


def apply(buf: bytearray, reloc: Reloc, place: int, target: int) -> None:
    s_a = target + reloc.addend
    if reloc.type == R_X86_64_64:
        struct.pack_into("<Q", buf, reloc.offset, s_a & ((1 << 64) - 1))
        return
    if reloc.type in (R_X86_64_PC32, R_X86_64_PLT32):
        value, signed = s_a - place, True
    elif reloc.type == R_X86_64_32:
        value, signed = s_a, False
    elif reloc.type in (R_X86_64_32S, R_X86_64_TPOFF32):  # (the linker gives TPOFF's S)
        value, signed = s_a, True
    else:
        raise ValueError(f"unknown x86_64 relocation type {reloc.type}")
    if not _fits(value, 32, signed):
        raise RelocationOverflow(f"relocation value {value:#x} does not fit in 32 bits")
    struct.pack_into("<i" if signed else "<I", buf, reloc.offset, value)


def trampoline(source: int, target: int) -> bytes:
    rel = target - (source + TRAMPOLINE_SIZE)
    if not _fits(rel, 32, True):
        raise RelocationOverflow("trampoline target out of reach")
    return b"\xe9" + struct.pack("<i", rel)
