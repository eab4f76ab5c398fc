"""Call frame information: the DWARF instructions that say, at each address of a function,
where its caller's frame and saved registers are.

An architecture describes its frames with these (a debugger needs them to find a caller's
variables that live in registers the callee saved); the linker puts each function's
instructions in a frame description entry of `.debug_frame` (`linker/dwarf.py`), after a
common entry whose parameters the architecture gives in `toyc.code.ArchInfo` (`cfa_*`).
`program` turns (offset, instructions) pairs, the offset being where in the function's code
the instructions take effect, into one instruction stream with the advances in between.

Runtime helpers may have call frame instructions too. The code a thread starts in (`_start`,
the thread start routine `spawn` calls) has no caller: its return address column is
`undefined`, which tells a debugger that its frame is the outermost one, as a C library's
`_start` and `clone` say; otherwise it unwinds into whatever lies above the stack.
"""

from __future__ import annotations

from linker.leb128 import uleb

DW_CFA_advance_loc, DW_CFA_offset = 0x40, 0x80
DW_CFA_advance_loc1, DW_CFA_advance_loc2, DW_CFA_advance_loc4 = 2, 3, 4
DW_CFA_offset_extended, DW_CFA_undefined = 5, 7
DW_CFA_remember_state, DW_CFA_restore_state = 0x0A, 0x0B
DW_CFA_def_cfa, DW_CFA_def_cfa_register, DW_CFA_def_cfa_offset = 0x0C, 0x0D, 0x0E


def def_cfa(reg: int, offset: int) -> bytes:
    """The frame's address (CFA) is register `reg` plus `offset` bytes."""
    return bytes([DW_CFA_def_cfa]) + uleb(reg) + uleb(offset)


def def_cfa_register(reg: int) -> bytes:
    return bytes([DW_CFA_def_cfa_register]) + uleb(reg)


def def_cfa_offset(offset: int) -> bytes:
    return bytes([DW_CFA_def_cfa_offset]) + uleb(offset)


def offset(reg: int, factored: int) -> bytes:
    """Register `reg` is saved at CFA + factored * the data alignment factor."""
    if reg < 0x40:
        return bytes([DW_CFA_offset | reg]) + uleb(factored)
    return bytes([DW_CFA_offset_extended]) + uleb(reg) + uleb(factored)


def undefined(reg: int) -> bytes:
    """Register `reg` has no value in the caller's frame; for the return address column: there
    is no caller, this frame is the outermost."""
    return bytes([DW_CFA_undefined]) + uleb(reg)


def remember_state() -> bytes:
    return bytes([DW_CFA_remember_state])


def restore_state() -> bytes:
    return bytes([DW_CFA_restore_state])


def advance(delta: int, byteorder: str = "little") -> bytes:
    """Move on `delta` units of code (bytes, over the code alignment factor)."""
    if delta < 0x40:
        return bytes([DW_CFA_advance_loc | delta]) if delta else b""
    if delta < 0x100:
        return bytes([DW_CFA_advance_loc1, delta])
    if delta < 0x10000:
        return bytes([DW_CFA_advance_loc2]) + delta.to_bytes(2, byteorder)
    return bytes([DW_CFA_advance_loc4]) + delta.to_bytes(4, byteorder)


def program(points: list[tuple[int, bytes]], code_align: int = 1,
            byteorder: str = "little") -> bytes:
    """The instructions of `points` ((byte offset, instructions), in any order), each taking
    effect at its offset."""
    out = bytearray()
    at = 0
    for where, ops in sorted(points, key=lambda p: p[0]):
        out += advance((where - at) // code_align, byteorder) + ops
        at = where
    return bytes(out)

