"""Assembly text to bytes with keystone, keeping relocations out of the assembler's hands.

Code is written as Intel-syntax lines. An instruction that refers to something outside the atom
is written with a zero displacement and followed by a label (`toyc.assembly` finds the labels
again after encoding), which says where each relocated field ends. Every such instruction has
its field (32 bits, or 64 for `.quad` data) last. Line fields (instructions ending in a 64-bit
immediate holding a source line, which the linker patches when a declaration moves to another
line) are labelled `.LlineN` and found the same way.
"""

from __future__ import annotations

import functools

from keystone import KS_ARCH_X86, KS_MODE_64, Ks

from toyc import cfi
from toyc.assembly import Assembly, keystone_encoder
from toyc.code import LINE_FIELD_SIZE, Code, Reloc, Target


@functools.cache
def _keystone() -> Ks:
    return Ks(KS_ARCH_X86, KS_MODE_64)


class Asm(Assembly):
    def reloc(self, instr: str, target: Target, rtype: int, addend: int, size: int = 4) -> None:
        """Emit `instr`, whose last `size` bytes are patched to refer to `target`."""
        self.lines.append(instr)
        self.label("reloc", (target, rtype, addend, size))

    def line_field(self, instr: str, relative: int) -> None:
        """Emit `instr`, whose last eight bytes are a line field (`toyc.code`), `relative`
        lines below the first line of the declaration."""
        self.lines.append(instr)
        self.label("line", relative)

    def cfi_label(self, ops: bytes) -> str:
        """A label line: call frame instructions `ops` (`toyc.cfi`) take effect here."""
        return self.label("cfi", ops, emit=False) + ":"

    def assemble(self, align: int) -> Code:
        raw, found = self.encode(keystone_encoder(_keystone))
        relocs = [Reloc(end - size, rtype, target, addend)
                  for end, (target, rtype, addend, size) in found.get("reloc", [])]
        lines = [(end - LINE_FIELD_SIZE, rel) for end, rel in found.get("line", [])]
        return Code(raw, relocs, align, line_fields=lines, rows=self.rows(found),
                    cfi=cfi.program(found.get("cfi", [])))

