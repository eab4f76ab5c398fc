"""Shared libraries given to the link (`libc.so.6`, `libz.so.1`, a `.so` built with
`gcc -shared`), read with pyelftools into plain data: the library's soname, the libraries it
needs, its dynamic symbols with their versions, and which definition a new link binds each
name to.

A dynamic executable refers to a library's symbols by name, and, where the library versions
them, by version: the executable's `.gnu.version_r` names each version it needs (with the ELF
hash of the version's name), and GNU ld binds a plain reference to a name to its default
version (`puts@@GLIBC_2.2.5`), never to a hidden, older one (`memcpy@GLIBC_2.2.5` beside
`memcpy@@GLIBC_2.14`). `SharedObject.lookup` answers that question; nothing here decides what
the executable imports.

pyelftools reads the structure (headers, sections, dynamic tags); the symbol table and its
version indexes, thousands of entries in the C library, are unpacked with `struct` from the
section bytes, because pyelftools' per-symbol parsing is slow (66 ms for libc.so.6's 3,043
symbols, where the whole read takes under 10 ms this way), and so are the version
definitions and needs (see `_version_defs`). What cannot be linked against is a `LinkError`
naming the file: not an ELF file, truncated, another machine or class, not a shared library
(an executable, a relocatable object), no dynamic symbol table.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from elftools.elf.elffile import ELFFile

from linker import elf
from linker.elf_file import LinkError
from linker.input_object import ET_DYN, STT_GNU_IFUNC, check_machine, elf_type, read_elf

ET_EXEC = 2
STB_GNU_UNIQUE = 10
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_PIE = 0x08000000
VER_NDX_LOCAL, VER_NDX_GLOBAL = 0, 1
VERSYM_HIDDEN = 0x8000
VER_FLG_BASE = 0x1

_TYPE_NAMES = {elf.STT_NOTYPE: "NOTYPE", elf.STT_OBJECT: "OBJECT", elf.STT_FUNC: "FUNC",
               elf.STT_TLS: "TLS", STT_GNU_IFUNC: "IFUNC"}


@dataclass(slots=True)
class DynamicSymbol:
    name: str
    value: int
    size: int
    type: int  # elf.STT_FUNC, STT_OBJECT, STT_TLS, STT_NOTYPE, or STT_GNU_IFUNC
    bind: int  # elf.STB_GLOBAL or STB_WEAK (STB_GNU_UNIQUE counts as global)
    shndx: int  # a section index of the library, or SHN_UNDEF, SHN_ABS
    visibility: int
    index: int  # in .dynsym
    # The version: "" for none (an unversioned library, or VER_NDX_GLOBAL); a defined symbol's
    # from .gnu.version_d, an undefined one's from .gnu.version_r.
    version: str = ""
    # Whether a reference without a version binds here: "@@" (or unversioned), not a hidden
    # "@" one, nor one the library's version script made local (version index 0)
    default: bool = True

    @property
    def defined(self) -> bool:
        return self.shndx != elf.SHN_UNDEF

    def __str__(self) -> str:
        """As readelf names it: "puts@@GLIBC_2.2.5", "memcpy@GLIBC_2.2.5", "crc32"."""
        if not self.version:
            return self.name
        return f"{self.name}{'@@' if self.default and self.defined else '@'}{self.version}"


@dataclass(slots=True)
class Version:
    """A version the library defines (`.gnu.version_d`)."""
    index: int  # what .gnu.version entries name
    name: str
    hash: int  # vd_hash: the ELF hash of the name
    base: bool  # VER_FLG_BASE: the library's own name (index 1), not a version of symbols


@dataclass(frozen=True, slots=True)
class Binding:
    """What a reference to a name binds to: the definition, and what an executable's
    `.gnu.version_r` entry for it holds (none when `version` is empty)."""
    symbol: DynamicSymbol
    version: str
    hash: int  # vna_hash: the ELF hash of the version's name; 0 without a version


@dataclass
class SharedObject:
    path: str  # as messages name it
    # DT_SONAME, what an executable's DT_NEEDED names; the file's name when it has none (GNU
    # ld records the name as the command line gave it: the caller may prefer that)
    soname: str
    needed: list[str]  # DT_NEEDED, in order
    symbols: list[DynamicSymbol]  # .dynsym's global and weak symbols, in order
    versions: list[Version]  # .gnu.version_d, in order; empty for an unversioned library
    # name -> the definition a plain reference binds to
    exports: dict[str, DynamicSymbol] = field(default_factory=dict)
    # (name, version) -> the definition of that version, hidden or not
    by_version: dict[tuple[str, str], DynamicSymbol] = field(default_factory=dict)

    def lookup(self, name: str, version: str | None = None) -> Binding | None:
        """The definition a reference to `name` binds to, as GNU ld binds it: the default
        version (or the unversioned definition), never a hidden one; with `version` (a
        reference to `name@version`), that version's definition. None: nothing to bind to."""
        if version is None:
            sym = self.exports.get(name)
        else:
            sym = self.by_version.get((name, version))
        if sym is None:
            return None
        return Binding(sym, sym.version, elf_hash(sym.version) if sym.version else 0)

    def undefined(self) -> list[DynamicSymbol]:
        """The symbols the library expects another file to define."""
        return [s for s in self.symbols if not s.defined]


def elf_hash(name: str) -> int:
    """The System V ABI's hash of a name (what vd_hash, vna_hash and DT_HASH use)."""
    h = 0
    for c in name.encode():
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        h ^= g >> 24
        h &= ~g
    return h


def type_name(stype: int) -> str:
    """As readelf prints a symbol's type: FUNC, OBJECT, TLS, IFUNC, NOTYPE."""
    return _TYPE_NAMES.get(stype, str(stype))


def check_header(data: bytes, name: str, machine: int, machine_name: str) -> None:
    """Raise LinkError unless `data` starts like a 64-bit little-endian shared library of
    `machine` with its section headers inside the file."""
    etype = elf_type(data, name, "an ELF shared library")
    if etype == elf.ET_REL:
        raise LinkError(f"{name}: is a relocatable object, not a shared library")
    if etype == ET_EXEC:
        raise LinkError(f"{name}: is an executable, not a shared library")
    if etype != ET_DYN:
        raise LinkError(f"{name}: not a shared library (ELF type {etype})")
    check_machine(data, name, machine, machine_name)


def read_shared_object(data: bytes, path: str, machine: int,
                       machine_name: str) -> SharedObject:
    check_header(data, path, machine, machine_name)
    return read_elf(data, path, "shared library", _read)


def _read(f: ELFFile, data: bytes, path: str) -> SharedObject:
    dynsym = dynamic = versym = verdef = verneed = None
    for i, s in enumerate(f.iter_sections()):
        h = s.header
        if h["sh_type"] != "SHT_NOBITS" and h["sh_offset"] + h["sh_size"] > len(data):
            raise LinkError(f"{path}: truncated (section {s.name or i} ends past the file)")
        kind = h["sh_type"]
        if kind == "SHT_DYNSYM" and dynsym is None:
            dynsym = s
        elif kind == "SHT_DYNAMIC" and dynamic is None:
            dynamic = s
        elif kind == "SHT_GNU_versym" and versym is None:
            versym = s
        elif kind == "SHT_GNU_verdef" and verdef is None:
            verdef = s
        elif kind == "SHT_GNU_verneed" and verneed is None:
            verneed = s
    if dynsym is None:
        why = "" if f.num_sections() else ", nor any section headers (stripped by sstrip?)"
        raise LinkError(f"{path}: has no dynamic symbol table (.dynsym){why}; not a shared "
                        "library to link against")
    soname, needed = "", []
    if dynamic is not None:
        for tag in dynamic.iter_tags():
            if tag.entry.d_tag == "DT_SONAME":
                soname = tag.soname
            elif tag.entry.d_tag == "DT_NEEDED":
                needed.append(tag.needed)
            elif tag.entry.d_tag in ("DT_FLAGS_1", DT_FLAGS_1) and tag.entry.d_val & DF_1_PIE:
                # A position-independent executable is ET_DYN too; ld.so refuses to load one
                # as a library
                raise LinkError(f"{path}: is an executable (position-independent), not a "
                                "shared library")

    strtab = _linked_strings(f, dynsym, path)
    symbols = _symbols(dynsym.data(), strtab, path)
    count = len(symbols)
    defs: list[Version] = []
    names: dict[int, str] = {}
    if versym is not None:
        versions = list(struct.unpack_from(f"<{count}H", versym.data()))
        if verdef is not None:
            defs = _version_defs(verdef, _linked_strings(f, verdef, path), path)
            names.update((v.index, v.name) for v in defs)
        if verneed is not None:
            names.update(_version_needs(verneed, _linked_strings(f, verneed, path), path))
    else:
        versions = [VER_NDX_GLOBAL] * count

    out = SharedObject(path, soname or os.path.basename(path), needed, [], defs)
    for sym, word in zip(symbols, versions, strict=True):
        if sym is None:
            continue
        index = word & ~VERSYM_HIDDEN
        if index > VER_NDX_GLOBAL:
            sym.version = names.get(index, "")
            if not sym.version:
                raise LinkError(f"{path}: symbol {sym.name} has version index {index}, which "
                                "the library does not define")
        sym.default = not word & VERSYM_HIDDEN and index != VER_NDX_LOCAL
        out.symbols.append(sym)
        if not sym.defined:
            continue
        if sym.default:
            out.exports.setdefault(sym.name, sym)
        if sym.version:
            out.by_version.setdefault((sym.name, sym.version), sym)
    return out


def _linked_strings(f: ELFFile, section, path: str) -> bytes:
    """The bytes of the string table `section` links to."""
    index = section.header["sh_link"]
    if not 0 < index < f.num_sections():
        raise LinkError(f"{path}: section {section.name} names no string table "
                        f"(section {index})")
    return f.get_section(index).data()


def _string(strtab: bytes, offset: int, path: str) -> str:
    end = strtab.find(b"\0", offset)
    if end < 0:
        raise LinkError(f"{path}: a name at {offset} is outside its string table")
    return strtab[offset:end].decode("utf-8", "replace")


def _symbols(body: bytes, strtab: bytes, path: str) -> list[DynamicSymbol | None]:
    """The symbols of `.dynsym`'s bytes: None for the null symbol and local ones, so that the
    list lines up with `.gnu.version`."""
    if len(body) % elf.SYM_SIZE:
        raise LinkError(f"{path}: malformed dynamic symbol table ({len(body)} bytes)")
    out: list[DynamicSymbol | None] = []
    for i, (name, info, other, shndx, value, size) in enumerate(
            struct.iter_unpack("<IBBHQQ", body)):
        bind = info >> 4
        if i == 0 or bind == elf.STB_LOCAL:
            out.append(None)
            continue
        stype = info & 0xF
        out.append(DynamicSymbol(
            _string(strtab, name, path), value, size,
            elf.STT_OBJECT if stype == 5 else stype,  # STT_COMMON
            elf.STB_GLOBAL if bind == STB_GNU_UNIQUE else bind, shndx, other & 3, i))
    return out


# .gnu.version_d and .gnu.version_r are chains of entries, each giving the offset of the next
# (0 ends it) and of its auxiliary entries; sh_info counts the entries. They are read here, not
# with pyelftools, whose iteration follows a corrupted chain around a loop forever: offsets
# only go forward, and a chain that leaves the section is a struct.error (malformed).


def _version_defs(section, strtab: bytes, path: str) -> list[Version]:
    body = section.data()
    out = []
    at = 0
    for _ in range(section.header["sh_info"]):
        _, flags, index, _, vhash, aux, following = struct.unpack_from("<HHHHIII", body, at)
        name, _ = struct.unpack_from("<II", body, at + aux)  # the first names the version
        out.append(Version(index, _string(strtab, name, path), vhash,
                           bool(flags & VER_FLG_BASE)))
        if not following:
            break
        at += following
    return out


def _version_needs(section, strtab: bytes, path: str) -> dict[int, str]:
    """The version indexes `.gnu.version_r` gives the versions the library needs, and their
    names."""
    body = section.data()
    out = {}
    at = 0
    for _ in range(section.header["sh_info"]):
        _, count, _, aux, following = struct.unpack_from("<HHIII", body, at)
        at_aux = at + aux
        for _ in range(count):
            _, _, index, name, next_aux = struct.unpack_from("<IHHII", body, at_aux)
            out[index] = _string(strtab, name, path)
            if not next_aux:
                break
            at_aux += next_aux
        if not following:
            break
        at += following
    return out
