"""AArch64 assembly text to bytes with keystone, keeping relocations out of its hands.

Code is written as lines of GNU-syntax AArch64 assembly. An instruction that refers to something
outside the atom is written with a zero immediate and preceded by a label, which `toyc.assembly`
finds again after encoding: it says which instruction each relocation patches. Line fields
(64-bit words holding a source line, which the linker patches when a declaration moves to other
lines) are literals after the code, labelled `.LlineN` and loaded with `ldr Xn, .LlineN`; they
are found the same way.
"""

from __future__ import annotations

import functools

from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks

from toyc import cfi
from toyc.assembly import Assembly, keystone_encoder
from toyc.code import Code, Reloc, Target
from toyc.layout import STR_HEADER

from .relocs import (
    R_AARCH64_ADD_ABS_LO12_NC,
    R_AARCH64_ADR_PREL_PG_HI21,
    R_AARCH64_CALL26,
)

CODE_ALIGN = 4  # every instruction's size: the call frame information's code alignment factor


@functools.cache
def _keystone() -> Ks:
    return Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)


class Asm(Assembly):
    def __init__(self) -> None:
        super().__init__()
        self._pool: list[str] = []  # the literals after the code

    def reloc(self, instr: str, target: Target, rtype: int, addend: int = 0) -> None:
        """Emit `instr`, which a relocation of `rtype` patches to refer to `target`."""
        self.label("reloc", (target, rtype, addend))
        self.lines.append(instr)

    def address(self, reg: str, target: Target, addend: int = 0) -> None:
        """`reg` = the address of `target` (plus `addend`; a string constant's first byte)."""
        if target.kind == "uav":
            addend += STR_HEADER
        self.reloc(f"adrp {reg}, #0", target, R_AARCH64_ADR_PREL_PG_HI21, addend)
        self.reloc(f"add {reg}, {reg}, #0", target, R_AARCH64_ADD_ABS_LO12_NC, addend)

    def call(self, target: Target) -> None:
        self.reloc("bl #0", target, R_AARCH64_CALL26)

    def cfi_label(self, ops: bytes) -> None:
        """Call frame instructions `ops` (`toyc.cfi`) take effect here."""
        self.label("cfi", ops)

    def line_field(self, reg: str, line: int, relative: int) -> None:
        """`reg` = a line field (`toyc.code`) holding `line`, `relative` lines below the first
        line of the declaration."""
        name = self.label("line", relative, emit=False)
        self.lines.append(f"ldr {reg}, {name}")
        self._pool += [f"{name}:", f".quad {line}"]

    def assemble(self, align: int) -> Code:
        pool = [".balign 8", *self._pool] if self._pool else []
        raw, found = self.encode(keystone_encoder(_keystone), pool)
        relocs = [Reloc(at, rtype, target, addend)
                  for at, (target, rtype, addend) in found.get("reloc", [])]
        return Code(raw, relocs, align, line_fields=found.get("line", []),
                    rows=self.rows(found), cfi=cfi.program(found.get("cfi", []), CODE_ALIGN))

