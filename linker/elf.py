"""ELF64 little-endian structures and constants, as the linker writes them.

Only what toyc emits: the file header, program headers, section headers, symbols. Each is a
small dataclass with a `pack` method; readers of toyc's output use pyelftools, not this module.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EHDR_SIZE = 64
PHDR_SIZE = 56
SHDR_SIZE = 64
SYM_SIZE = 24

ET_REL, ET_EXEC = 1, 2
EV_CURRENT = 1

PT_NULL, PT_LOAD, PT_TLS = 0, 1, 7
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS = 0, 1, 2, 3, 4, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
SHF_MERGE, SHF_STRINGS = 0x10, 0x20
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY = 14, 15, 16

SHN_UNDEF, SHN_ABS = 0, 0xFFF1
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_TLS = 0, 1, 2, 3, 4, 6


def st_info(bind: int, typ: int) -> int:
    return (bind << 4) | typ


@dataclass(slots=True)
class Ehdr:
    type: int
    machine: int
    entry: int
    phoff: int
    shoff: int
    phnum: int
    shnum: int
    shstrndx: int

    def pack(self) -> bytes:
        ident = b"\x7fELF" + bytes([2, 1, EV_CURRENT, 0]) + bytes(8)  # ELFCLASS64, LSB, SysV
        return ident + struct.pack(
            "<HHIQQQIHHHHHH", self.type, self.machine, EV_CURRENT, self.entry, self.phoff,
            self.shoff, 0, EHDR_SIZE, PHDR_SIZE if self.phnum else 0, self.phnum,
            SHDR_SIZE, self.shnum, self.shstrndx)


@dataclass(slots=True)
class Phdr:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    def pack(self) -> bytes:
        return struct.pack("<IIQQQQQQ", self.type, self.flags, self.offset, self.vaddr,
                           self.vaddr, self.filesz, self.memsz, self.align)


@dataclass(slots=True)
class Shdr:
    name: str
    type: int
    flags: int = 0
    addr: int = 0
    offset: int = 0
    size: int = 0
    link: int = 0
    info: int = 0
    addralign: int = 1
    entsize: int = 0
    name_offset: int = 0  # into .shstrtab, filled when the header table is written

    def pack(self) -> bytes:
        return struct.pack("<IIQQQQIIQQ", self.name_offset, self.type, self.flags, self.addr,
                           self.offset, self.size, self.link, self.info, self.addralign,
                           self.entsize)


RELA_SIZE = 24
SHF_INFO_LINK = 0x40


def pack_rela(offset: int, sym: int, rtype: int, addend: int) -> bytes:
    return struct.pack("<QQq", offset, sym << 32 | rtype, addend)


def pack_sym(name: int, info: int, shndx: int, value: int, size: int, other: int = 0) -> bytes:
    return struct.pack("<IBBHQQ", name, info, other, shndx, value, size)


class StringTable:
    """An ELF string table: NUL-separated names, each stored once."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.offsets: dict[str, int] = {"": 0}

    @classmethod
    def from_bytes(cls, data: bytes) -> StringTable:
        """The table as written: `data`, every name in it found again by `add`."""
        t = cls()
        t.data = bytearray(data)
        t.offsets = {}
        start = 0
        while start < len(data):
            end = data.index(b"\0", start)
            t.offsets.setdefault(data[start:end].decode("utf-8"), start)
            start = end + 1
        return t

    def add(self, s: str) -> int:
        off = self.offsets.get(s)
        if off is None:
            off = len(self.data)
            self.data += s.encode("utf-8") + b"\0"
            self.offsets[s] = off
        return off
