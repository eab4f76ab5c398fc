"""Relocatable objects given to the link (`.o` files from gcc, clang or tcc, and archive
members), read with pyelftools into plain lists: sections, symbols, relocations, COMDAT groups.

An object is read once per full build. Nothing here decides where anything goes: that is
resolution (`resolve.py`) and layout (`inputs.py`). What cannot be linked is a `LinkError`
naming the file: not an ELF file, truncated, another machine or class, not relocatable.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from linker import elf
from linker.elf_file import LinkError

SHT_GROUP = 17
SHT_REL = 9
GRP_COMDAT = 1
SHN_COMMON = 0xFFF2
SHF_EXCLUDE = 0x80000000
SHF_COMPRESSED = 0x800
ET_DYN = 3

_BIND = {"STB_LOCAL": elf.STB_LOCAL, "STB_GLOBAL": elf.STB_GLOBAL, "STB_WEAK": elf.STB_WEAK,
         "STB_GNU_UNIQUE": elf.STB_GLOBAL}
_TYPE = {"STT_NOTYPE": elf.STT_NOTYPE, "STT_OBJECT": elf.STT_OBJECT, "STT_FUNC": elf.STT_FUNC,
         "STT_SECTION": elf.STT_SECTION, "STT_FILE": elf.STT_FILE, "STT_TLS": elf.STT_TLS,
         "STT_COMMON": elf.STT_OBJECT, "STT_GNU_IFUNC": 10, "STT_LOOS": 10}  # (same number)
_SHNDX = {"SHN_UNDEF": elf.SHN_UNDEF, "SHN_ABS": elf.SHN_ABS, "SHN_COMMON": SHN_COMMON}
STT_GNU_IFUNC = 10


@dataclass(slots=True)
class InputReloc:
    offset: int  # in the section
    type: int  # the architecture's relocation type
    symbol: int  # index into the object's symbols
    addend: int


@dataclass(slots=True)
class InputSection:
    name: str
    type: int
    flags: int
    align: int
    size: int
    data: bytes  # empty for SHT_NOBITS
    entsize: int = 0
    relocs: list[InputReloc] = field(default_factory=list)
    kept: bool = True  # false: left out (a COMDAT group linked from another object)


@dataclass(slots=True)
class InputSymbol:
    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int  # a section index, or SHN_UNDEF, SHN_ABS, SHN_COMMON
    visibility: int = 0

    @property
    def defined(self) -> bool:
        return self.shndx != elf.SHN_UNDEF


@dataclass
class ObjectFile:
    name: str  # as messages name it: "fastmath.o", "libutil.a(vec.o)"
    sections: list[InputSection | None]  # by section index; None: not linked as such
    symbols: list[InputSymbol]
    first_global: int  # symbols before it are local
    groups: list[tuple[str, list[int]]]  # COMDAT groups: signature, member sections

    def globals(self) -> range:
        return range(self.first_global, len(self.symbols))

    def where(self, section: int) -> str:
        """A section as messages name it: "fastmath.o (.text.startup)"."""
        s = self.sections[section] if 0 <= section < len(self.sections) else None
        return f"{self.name} ({s.name})" if s is not None else self.name


def elf_type(data: bytes, name: str, what: str) -> int:
    """The ELF type of `data`, after checking what every input shares: the magic (else "not
    `what`"), a 64-bit little-endian header, and section headers inside the file."""
    if data[:4] != b"\x7fELF":
        raise LinkError(f"{name}: not {what}")
    if len(data) < elf.EHDR_SIZE:
        raise LinkError(f"{name}: truncated ELF file ({len(data)} bytes)")
    if data[4] != 2 or data[5] != 1:
        raise LinkError(f"{name}: not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    if shoff + shentsize * shnum > len(data):
        raise LinkError(f"{name}: truncated (its section headers end at byte "
                        f"{shoff + shentsize * shnum}, the file at {len(data)})")
    return struct.unpack_from("<H", data, 16)[0]


def check_machine(data: bytes, name: str, machine: int, machine_name: str) -> None:
    emachine = struct.unpack_from("<H", data, 18)[0]
    if emachine != machine:
        raise LinkError(f"{name}: is for another machine (ELF machine {emachine}); "
                        f"this link is for {machine_name}")


def check_header(data: bytes, name: str, machine: int, machine_name: str) -> None:
    """Raise LinkError unless `data` starts like a 64-bit little-endian relocatable object of
    `machine`."""
    etype = elf_type(data, name, "an ELF object or archive")
    if etype == ET_DYN:
        raise LinkError(f"{name}: is a shared library, where a relocatable object was "
                        "expected")
    if etype != elf.ET_REL:
        raise LinkError(f"{name}: not a relocatable object (ELF type {etype}); "
                        "give objects (.o) and archives (.a)")
    check_machine(data, name, machine, machine_name)


def read_object(data: bytes, name: str, machine: int, machine_name: str) -> ObjectFile:
    check_header(data, name, machine, machine_name)
    return read_elf(data, name, "ELF object", _read)


def read_elf(data: bytes, name: str, what: str, reader):
    """`reader(ELFFile, data, name)`, whatever pyelftools raises on a damaged file turned into
    a LinkError naming the file as a malformed `what`."""
    try:
        return reader(ELFFile(io.BytesIO(data)), data, name)
    except LinkError:
        raise
    except (ELFError, struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError,
            AssertionError, OverflowError) as e:  # OverflowError: pyelftools seeking far
        raise LinkError(f"{name}: malformed {what} ({type(e).__name__}: {e})") from None


def _read(f: ELFFile, data: bytes, name: str) -> ObjectFile:
    count = f.num_sections()
    sections: list[InputSection | None] = [None] * count
    rela: list[tuple[int, bytes]] = []  # (target section, data)
    groups = []
    symtab = None
    for i in range(count):
        s = f.get_section(i)
        h = s.header
        stype = h["sh_type"]
        stype = getattr(elf, stype, None) if isinstance(stype, str) else stype
        if stype is None:
            stype = _section_type(h["sh_type"])
        if h["sh_type"] != "SHT_NOBITS" and h["sh_offset"] + h["sh_size"] > len(data):
            raise LinkError(f"{name}: truncated (section {s.name or i} ends past the file)")
        if stype == elf.SHT_SYMTAB:
            symtab = s
        elif stype == elf.SHT_RELA:
            rela.append((h["sh_info"], s.data()))
        elif stype == SHT_REL:
            raise LinkError(f"{name}: REL relocations (section {s.name}) are not supported; "
                            "x86_64 objects use RELA")
        elif stype == SHT_GROUP:
            words = struct.unpack(f"<{h['sh_size'] // 4}I", s.data())
            if words and words[0] & GRP_COMDAT:
                groups.append((h["sh_info"], list(words[1:])))
        elif stype in (elf.SHT_STRTAB, elf.SHT_NULL):
            pass
        else:
            body = b"" if stype == elf.SHT_NOBITS else s.data()
            size, align = h["sh_size"], h["sh_addralign"]
            if h["sh_flags"] & SHF_COMPRESSED:  # (gcc -gz) pyelftools uncompresses the bytes
                size, align = s.data_size, s.data_alignment
            sections[i] = InputSection(s.name, stype, h["sh_flags"] & ~SHF_COMPRESSED,
                                       max(align, 1), size, body, h["sh_entsize"])
    if any(s is not None and s.name.startswith(".gnu.lto_") for s in sections) and not any(
            s is not None and s.flags & elf.SHF_EXECINSTR and s.size for s in sections):
        raise LinkError(f"{name}: an LTO object (gcc -flto) holds no machine code; build it "
                        "without -flto, or with -ffat-lto-objects")
    symbols: list[InputSymbol] = []
    first_global = 0
    if symtab is not None:
        first_global = symtab.header["sh_info"]
        for sym in symtab.iter_symbols():
            e = sym.entry
            shndx = e["st_shndx"]
            shndx = _SHNDX.get(shndx, shndx) if isinstance(shndx, str) else shndx
            if isinstance(shndx, str):
                raise LinkError(f"{name}: symbol {sym.name} has section index {shndx}, "
                                "which is not supported")
            stype = e["st_info"]["type"]
            bind = e["st_info"]["bind"]
            symbols.append(InputSymbol(
                sym.name, e["st_value"], e["st_size"],
                _TYPE.get(stype, stype if isinstance(stype, int) else elf.STT_NOTYPE),
                _BIND.get(bind, bind if isinstance(bind, int) else elf.STB_GLOBAL), shndx,
                _visibility(e["st_other"]["visibility"])))
    for target, body in rela:
        sec = sections[target] if 0 <= target < count else None
        if sec is None:
            continue  # relocations of a section the link does not place
        for offset, info, addend in struct.iter_unpack("<QQq", body):
            sym = info >> 32
            if sym >= len(symbols):
                raise LinkError(f"{name}: a relocation in {sec.name} names symbol {sym}, "
                                f"of {len(symbols)}")
            if offset >= max(sec.size, 1):
                raise LinkError(f"{name}: a relocation lies outside {sec.name}")
            sec.relocs.append(InputReloc(offset, info & 0xFFFFFFFF, sym, addend))
    comdat = []
    for sig, members in groups:
        signature = symbols[sig].name if sig < len(symbols) else ""
        if sig < len(symbols) and symbols[sig].type == elf.STT_SECTION:
            # a group named by its section symbol: the section's name is the signature
            s = sections[symbols[sig].shndx] if symbols[sig].shndx < count else None
            signature = s.name if s is not None else signature
        comdat.append((signature, [m for m in members if m < count]))
    return ObjectFile(name, sections, symbols, first_global, comdat)


def _section_type(value) -> int:
    names = {"SHT_INIT_ARRAY": 14, "SHT_FINI_ARRAY": 15, "SHT_PREINIT_ARRAY": 16,
             "SHT_GROUP": SHT_GROUP, "SHT_REL": SHT_REL, "SHT_X86_64_UNWIND": 0x70000001,
             "SHT_NOTE": 7, "SHT_GNU_ATTRIBUTES": 0x6FFFFFF5, "SHT_SYMTAB_SHNDX": 18,
             "SHT_LLVM_ADDRSIG": 0x6FFF4C03, "SHT_GNU_versym": 0x6FFFFFFF}
    return names.get(value, 0x60000000)


def _visibility(value) -> int:
    return {"STV_DEFAULT": 0, "STV_INTERNAL": 1, "STV_HIDDEN": 2,
            "STV_PROTECTED": 3}.get(value, 0) if isinstance(value, str) else value
