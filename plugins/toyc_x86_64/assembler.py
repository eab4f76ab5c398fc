"""Assembly text to bytes with keystone, keeping relocations out of the assembler's hands.

Code is written as Intel-syntax lines. An instruction that refers to something outside the
atom is written with a zero displacement and followed by a label `.LrelocN`; after assembling, a
table of those labels' offsets (appended as `.long` data and cut off again) says where each
relocated field ends. Every such instruction has its field (32 bits, or 64 for `.quad` data)
last. Line fields (instructions ending in a 64-bit immediate holding a source line, which the
linker patches when a declaration moves to another line) are labelled `.LlineN` and found the
same way.
"""

from __future__ import annotations

import functools
import struct

from keystone import KS_ARCH_X86, KS_MODE_64, Ks, KsError

from toyc.code import LINE_FIELD_SIZE, Code, Reloc, Target


@functools.cache
def _keystone() -> Ks:
    return Ks(KS_ARCH_X86, KS_MODE_64)


class AssemblerError(Exception):
    """Keystone rejected generated assembly: a bug in the code generator, never the user's."""


class Asm:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._relocs: list[tuple[Target, int, int, int]] = []
        self._lines: list[int] = []  # line of each line field, relative to the declaration
        self._rows: list[tuple[int, int]] = []  # (relative line, column) of each statement
        self._points = 0  # labelled places whose offsets `point_offsets` gives after assembly
        self.point_offsets: list[int] = []

    def __call__(self, *lines: str) -> None:
        self.lines.extend(lines)

    def reloc(self, instr: str, target: Target, rtype: int, addend: int, size: int = 4) -> None:
        """Emit `instr`, whose last `size` bytes are patched to refer to `target`."""
        n = len(self._relocs)
        self.lines.append(instr)
        self.lines.append(f".Lreloc{n}:")
        self._relocs.append((target, rtype, addend, size))

    def line_field(self, instr: str, relative: int) -> None:
        """Emit `instr`, whose last eight bytes are a line field (`toyc.code`), `relative`
        lines below the first line of the declaration."""
        self.lines.append(instr)
        self.lines.append(f".Lline{len(self._lines)}:")
        self._lines.append(relative)

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
        labels = ", ".join([".Lcode_end"] + [f".Lreloc{i}" for i in range(len(self._relocs))]
                           + [f".Lline{i}" for i in range(len(self._lines))]
                           + [f".Lrow{i}" for i in range(len(self._rows))]
                           + [f".Lpt{i}" for i in range(self._points)])
        text = "\n".join(self.lines) + f"\n.Lcode_end:\n.long {labels}\n"
        try:
            encoding, _ = _keystone().asm(text, 0)
        except KsError as e:
            raise AssemblerError(f"keystone: {e}") from None
        raw = bytes(encoding)
        nrel, nlines = len(self._relocs), len(self._lines)
        nrows = len(self._rows)
        count = 1 + nrel + nlines + nrows + self._points
        offsets = struct.unpack_from(f"<{count}I", raw, len(raw) - 4 * count)
        relocs = [Reloc(end - size, rtype, target, addend)
                  for end, (target, rtype, addend, size)
                  in zip(offsets[1 : 1 + nrel], self._relocs, strict=True)]
        lines = [(end - LINE_FIELD_SIZE, rel)
                 for end, rel in zip(offsets[1 + nrel : 1 + nrel + nlines], self._lines,
                                     strict=True)]
        rows = [(at, rel, col) for at, (rel, col)
                in zip(offsets[1 + nrel + nlines : 1 + nrel + nlines + nrows], self._rows,
                       strict=True)]
        self.point_offsets = list(offsets[1 + nrel + nlines + nrows :])
        return Code(raw[: offsets[0]], relocs, align, line_fields=lines, rows=rows)
