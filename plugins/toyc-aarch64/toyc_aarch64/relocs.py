"""AArch64 relocation types, how to apply them, and the trampoline (`b`).

Every field is part of a 32-bit instruction (or a 64-bit data word), so a relocation's offset
is the offset of the instruction it patches. The ones toyc's code uses:

- `adrp` + `add`: a 4 GiB-reaching address (ADR_PREL_PG_HI21 then ADD_ABS_LO12_NC),
- `bl`/`b` to a function or helper (CALL26/JUMP26, +-128 MiB),
- two `add`s to the thread pointer for a thread-local (local exec, TLSLE_ADD_TPREL_*),
- a 64-bit absolute address in data (ABS64).

The trampoline is a single `b`: its +-128 MiB reach covers the whole code segment, whose
virtual room is 128 MiB, from any address in it to any other.
"""

from __future__ import annotations

import struct

from toyc.code import Reloc, RelocationOverflow

R_AARCH64_ABS64 = 257
R_AARCH64_ABS32 = 258  # (only in objects' debug sections, which the system linker resolves)
R_AARCH64_ADR_PREL_PG_HI21 = 275
R_AARCH64_ADD_ABS_LO12_NC = 277
R_AARCH64_JUMP26 = 282
R_AARCH64_CALL26 = 283
R_AARCH64_TLSLE_ADD_TPREL_HI12 = 549
R_AARCH64_TLSLE_ADD_TPREL_LO12_NC = 551

TRAMPOLINE_SIZE = 4
B_OPCODE = 0x14000000


def _page(address: int) -> int:
    return address & ~0xFFF


def _branch_field(value: int) -> int:
    if value & 3 or not -(1 << 27) <= value < (1 << 27):
        raise RelocationOverflow(f"branch distance {value:#x} is out of b/bl's +-128 MiB reach")
    return (value >> 2) & 0x3FFFFFF


def _imm12(insn: int, value: int) -> int:
    return (insn & ~(0xFFF << 10)) | ((value & 0xFFF) << 10)


def apply(buf: bytearray, reloc: Reloc, place: int, target: int) -> None:
    s_a = target + reloc.addend
    if reloc.type == R_AARCH64_ABS64:
        struct.pack_into("<Q", buf, reloc.offset, s_a & ((1 << 64) - 1))
        return
    (insn,) = struct.unpack_from("<I", buf, reloc.offset)
    if reloc.type == R_AARCH64_ADR_PREL_PG_HI21:
        pages = (_page(s_a) - _page(place)) >> 12
        if not -(1 << 20) <= pages < (1 << 20):
            raise RelocationOverflow(f"adrp distance {s_a - place:#x} is out of its 4 GiB reach")
        insn = (insn & ~((3 << 29) | (0x7FFFF << 5))) | ((pages & 3) << 29) \
            | (((pages >> 2) & 0x7FFFF) << 5)
    elif reloc.type == R_AARCH64_ADD_ABS_LO12_NC:
        insn = _imm12(insn, s_a)
    elif reloc.type in (R_AARCH64_CALL26, R_AARCH64_JUMP26):
        insn = (insn & ~0x3FFFFFF) | _branch_field(s_a - place)
    elif reloc.type in (R_AARCH64_TLSLE_ADD_TPREL_HI12, R_AARCH64_TLSLE_ADD_TPREL_LO12_NC):
        # (the linker gives a thread-local's offset from the thread pointer as S)
        if not 0 <= s_a < (1 << 24):
            raise RelocationOverflow(f"thread-local offset {s_a:#x} does not fit in 24 bits")
        insn = _imm12(insn, s_a >> 12 if reloc.type == R_AARCH64_TLSLE_ADD_TPREL_HI12 else s_a)
    else:
        raise ValueError(f"unknown AArch64 relocation type {reloc.type}")
    struct.pack_into("<I", buf, reloc.offset, insn)


def trampoline(source: int, target: int) -> bytes:
    return struct.pack("<I", B_OPCODE | _branch_field(target - source))
