"""What an architecture hands to the linker: bytes, their alignment and their relocations.

A relocation names its `Target` symbolically: a declaration by name ("nav"), an unnamed
constant by value ("uav", e.g. the bytes of a string literal, stored once however often it is
used) or a runtime helper by name ("lazy", created the first time something refers to it). The
linker turns targets into addresses; the architecture knows how to patch them into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # "nav", "uav" or "lazy"
    key: str | bytes

    def describe(self) -> str:
        if self.kind == "uav":
            return f"constant {self.key[:20]!r}"
        return str(self.key)


@dataclass(slots=True)
class Reloc:
    offset: int  # where in the atom's bytes the field to patch starts
    type: int  # the architecture's ELF relocation type
    target: Target
    addend: int


@dataclass(slots=True)
class Code:
    """The bytes of one atom as generated, before its relocations are applied."""

    data: bytes
    relocs: list[Reloc] = field(default_factory=list)
    align: int = 1
    size: int = -1  # for zero-fill atoms: the size, with empty data
    # (offset, line relative to the declaration's first line) of each 32-bit source line
    # number in `data` (panic locations): when only the declaration's position in the file
    # changes, the linker rewrites these instead of regenerating the code.
    line_fields: list[tuple[int, int]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.data) if self.size < 0 else self.size


@dataclass(slots=True)
class LazySymbol:
    """A runtime helper generated on first use, and where it goes."""

    code: Code
    section: str  # "text", "rodata", "data" or "bss"
    kind: str = "func"  # "func" or "object"
    binding: str = "local"  # "local" or "global"


@dataclass(frozen=True, slots=True)
class ArchInfo:
    name: str
    elf_machine: int
    ptr_size: int
    page_size: int
    function_align: int
    trampoline_size: int
    byteorder: str = "little"  # of line fields


class RelocationOverflow(Exception):
    """A relocated value does not fit its field."""
