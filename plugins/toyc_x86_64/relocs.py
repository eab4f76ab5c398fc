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
R_X86_64_16, R_X86_64_PC16, R_X86_64_8, R_X86_64_PC8 = 12, 13, 14, 15
R_X86_64_TPOFF64 = 18
R_X86_64_PC64 = 24
# The dynamic relocations the linker writes into a dynamically linked executable
R_X86_64_COPY, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT = 5, 6, 7
PLT_ENTRY_SIZE = 8
# A GOT load `mov reg, [rip + x@GOTPCREL]`: only objects have it (their helpers' weak
# references, `toyc.code.OBJECT_SUFFIX`), and the system linker applies it, not `apply`.
R_X86_64_REX_GOTPCRELX = 42

TRAMPOLINE_SIZE = 5


def _fits(value: int, bits: int, signed: bool) -> bool:
    if signed:
        return -(1 << (bits - 1)) <= value < (1 << (bits - 1))
    return 0 <= value < (1 << bits)


# type -> (whether relative to the place, field bits, signed); TPOFF's target is the
# thread-local's offset from the thread pointer (the linker gives it as S)
_FIELDS = {
    R_X86_64_64: (False, 64, False), R_X86_64_PC64: (True, 64, False),
    R_X86_64_TPOFF64: (False, 64, False),
    R_X86_64_PC32: (True, 32, True), R_X86_64_PLT32: (True, 32, True),
    R_X86_64_32: (False, 32, False), R_X86_64_32S: (False, 32, True),
    R_X86_64_TPOFF32: (False, 32, True),
    R_X86_64_16: (False, 16, False), R_X86_64_PC16: (True, 16, True),
    R_X86_64_8: (False, 8, False), R_X86_64_PC8: (True, 8, True),
}
_PACK = {(64, False): "<Q", (32, True): "<i", (32, False): "<I", (16, True): "<h",
         (16, False): "<H", (8, True): "<b", (8, False): "<B"}


def apply(buf: bytearray, reloc: Reloc, place: int, target: int) -> None:
    field = _FIELDS.get(reloc.type)
    if field is None:
        raise ValueError(f"unknown x86_64 relocation type {reloc.type}")
    relative, bits, signed = field
    value = target + reloc.addend - (place if relative else 0)
    write(buf, reloc.offset, value, bits, signed)


def write(buf: bytearray, offset: int, value: int, bits: int, signed: bool) -> None:
    """Store `value` in a `bits`-wide field; a 64-bit field takes any value, modulo 2**64;
    a 16- or 8-bit one, as GNU ld, either signedness."""
    if bits == 64:
        value &= (1 << 64) - 1
        signed = False  # (the bits are the same either way)
    elif not _fits(value, bits, signed) and not (bits < 32 and _fits(value, bits, not signed)):
        raise RelocationOverflow(f"relocation value {value:#x} does not fit in {bits} bits")
    elif bits < 32:
        value &= (1 << bits) - 1
        signed = False
    struct.pack_into(_PACK[bits, signed], buf, offset, value)


def plt_entry(place: int, slot: int) -> bytes:
    """`jmp qword ptr [rip + slot]`, padded with int3 to PLT_ENTRY_SIZE bytes."""
    rel = slot - (place + 6)
    if not _fits(rel, 32, True):
        raise RelocationOverflow("GOT slot out of reach of its call stub")
    return (b"\xff\x25" + struct.pack("<i", rel)).ljust(PLT_ENTRY_SIZE, b"\xcc")


def trampoline(source: int, target: int) -> bytes:
    rel = target - (source + TRAMPOLINE_SIZE)
    if not _fits(rel, 32, True):
        raise RelocationOverflow("trampoline target out of reach")
    return b"\xe9" + struct.pack("<i", rel)
