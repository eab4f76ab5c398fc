"""AArch64 assembly text to bytes with keystone, keeping relocations out of its hands.

Code is written as lines of GNU-syntax AArch64 assembly. An instruction that refers to something
outside the atom is written with a zero immediate and preceded by a label `.LrelocN`; after
assembling, a table of the labels' offsets (appended as `.long` data and cut off again) says
which instruction each relocation patches. Line fields (64-bit words holding a source line,
which the linker patches when a declaration moves to other lines) are literals after the code,
labelled `.LlineN` and loaded with `ldr Xn, .LlineN`; they are found the same way.
"""

from __future__ import annotations

import functools
import struct

from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks, KsError

from toyc.code import Code, Reloc, Target
from toyc.layout import STR_HEADER

from .relocs import (
    R_AARCH64_ADD_ABS_LO12_NC,
    R_AARCH64_ADR_PREL_PG_HI21,
    R_AARCH64_CALL26,
)


@functools.cache
def _keystone() -> Ks:
    return Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)


class AssemblerError(Exception):
    """Keystone rejected generated assembly: a bug in the code generator, never the user's."""


class Asm:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._relocs: list[tuple[Target, int, int]] = []
        self._literals: list[tuple[int, int]] = []  # (line, line relative to the declaration)
        self._rows: list[tuple[int, int]] = []  # (relative line, column) of each statement
        self._points = 0  # labelled places whose offsets `point_offsets` gives after assembly
        self.point_offsets: list[int] = []

    def __call__(self, *lines: str) -> None:
        self.lines.extend(lines)

    def reloc(self, instr: str, target: Target, rtype: int, addend: int = 0) -> None:
        """Emit `instr`, which a relocation of `rtype` patches to refer to `target`."""
        self.lines.append(f".Lreloc{len(self._relocs)}:")
        self.lines.append(instr)
        self._relocs.append((target, rtype, addend))

    def address(self, reg: str, target: Target, addend: int = 0) -> None:
        """`reg` = the address of `target` (plus `addend`; a string constant's first byte)."""
        if target.kind == "uav":
            addend += STR_HEADER
        self.reloc(f"adrp {reg}, #0", target, R_AARCH64_ADR_PREL_PG_HI21, addend)
        self.reloc(f"add {reg}, {reg}, #0", target, R_AARCH64_ADD_ABS_LO12_NC, addend)

    def call(self, target: Target) -> None:
        self.reloc("bl #0", target, R_AARCH64_CALL26)

    def line_field(self, reg: str, line: int, relative: int) -> None:
        """`reg` = a line field (`toyc.code`) holding `line`, `relative` lines below the first
        line of the declaration."""
        self.lines.append(f"ldr {reg}, .Lline{len(self._literals)}")
        self._literals.append((line, relative))

    def mark(self, relative: int, col: int) -> None:
        """The code of a statement on line `relative` (of the declaration), column `col`,
        starts here: a row of the line table (`Code.rows`)."""
        self.lines.append(f".Lrow{len(self._rows)}:")
        self._rows.append((relative, col))

    def point(self) -> int:
        """Label this place; after `assemble`, `point_offsets[n]` is its offset."""
        self.lines.append(f".Lpt{self._points}:")
        self._points += 1
        return self._points - 1

    def assemble(self, align: int) -> Code:
        pool = [".balign 8"] if self._literals else []
        for i, (line, _) in enumerate(self._literals):
            pool += [f".Lline{i}:", f".quad {line}"]
        labels = ", ".join([".Lcode_end"] + [f".Lreloc{i}" for i in range(len(self._relocs))]
                           + [f".Lline{i}" for i in range(len(self._literals))]
                           + [f".Lrow{i}" for i in range(len(self._rows))]
                           + [f".Lpt{i}" for i in range(self._points)])
        text = "\n".join(self.lines + pool) + f"\n.Lcode_end:\n.long {labels}\n"
        try:
            encoding, _ = _keystone().asm(text, 0)
        except KsError as e:
            raise AssemblerError(f"keystone: {e}") from None
        raw = bytes(encoding)
        nrel, nlit = len(self._relocs), len(self._literals)
        nrows = len(self._rows)
        count = 1 + nrel + nlit + nrows + self._points
        offsets = struct.unpack_from(f"<{count}I", raw, len(raw) - 4 * count)
        relocs = [Reloc(at, rtype, target, addend)
                  for at, (target, rtype, addend)
                  in zip(offsets[1 : 1 + nrel], self._relocs, strict=True)]
        lines = [(at, rel) for at, (_, rel)
                 in zip(offsets[1 + nrel : 1 + nrel + nlit], self._literals, strict=True)]
        rows = [(at, rel, col) for at, (rel, col)
                in zip(offsets[1 + nrel + nlit : 1 + nrel + nlit + nrows], self._rows,
                       strict=True)]
        self.point_offsets = list(offsets[1 + nrel + nlit + nrows :])
        return Code(raw[: offsets[0]], relocs, align, line_fields=lines, rows=rows)
