"""The dynamic part of a dynamically linked executable: what the system's dynamic loader reads
to load the shared libraries, bind the executable's references to them and start the C library.

A Toy program linked with a shared library (`-lc`, `-lz`) stays a non-PIE executable at the
fixed Zig addresses; beside the Zig segments it gets, as GNU ld would write them:

- `PT_PHDR`, `PT_INTERP` and a read-only `PT_LOAD` of the file's first page (the ELF and
  program headers, which the loader reads through `AT_PHDR`, and `.interp`, the loader's path);
- a read-only segment with `.hash`, `.dynsym`, `.dynstr`, `.gnu.version`, `.gnu.version_r`,
  `.rela.dyn` (`GLOB_DAT` for GOT slots, `COPY` for a library's variables) and `.rela.plt`
  (`JUMP_SLOT`);
- `.plt`, one call stub per imported function (`jmp *slot`, from the architecture);
- a writable segment with `.dynamic` (`PT_DYNAMIC`), `.got` and `.got.plt` under
  `PT_GNU_RELRO`, then `.dynbss`, where a library's variables that non-PIC code refers to
  directly are copied at start-up.

`DT_FLAGS` says `BIND_NOW`: every import is bound before the program runs, so the GOT slots of
`.got.plt` never hold the address of a lazy resolver, and a stub is one indirect jump.

Every table has room to grow, fixed when the full build lays it out (twice what that build
imports, and more): an update that calls a library function the program never called before
appends a dynamic symbol, its name, version and version need, a stub, a GOT slot and its
relocation, rebuilds the hash table and rewrites `.dynamic`'s sizes, all in place. A table that
is full is a `LinkError`, which makes the update a full build. A function no code calls any
more is no longer imported: its rows go (the rest are rebuilt around the gap) and its stub's
place is given to the next import; but while a running copy is being patched, it stays (old
code there may still call it), and so do the imports the linked objects use, and variables.

The other way, a name a library refers to and the executable defines (a Toy export, a linked
object's global: a callback the library calls by name) is a defined row of `.dynsym`, as GNU ld
exports it, so that the loader binds the library's reference to it; its value follows the
definition when it moves.

Which library defines a name is asked of the libraries themselves, in command-line order
(`lookup`), read again from their files when an update needs it: the session has checked that
they did not change.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from linker import elf
from linker.atom import Atom, align_forward
from linker.code import Target
from linker.elf_file import HEADER_RESERVE, LinkError, Section
from linker.input_object import STT_GNU_IFUNC
from linker.shared_object import SharedObject, elf_hash, read_shared_object

# Where the dynamic parts sit: below the Zig segments, in the order their program headers come
HEADER_VADDR = 0x400000
RO_VADDR = 0x1000000
PLT_VADDR = 0x2000000
RW_VADDR = 0x3000000
DYNBSS_ROOM = 1 << 20  # virtual room for copied variables (zero-fill: costs nothing unused)

PT_DYNAMIC, PT_INTERP, PT_PHDR = 2, 3, 6
PT_GNU_RELRO = 0x6474E552
SHT_HASH, SHT_DYNAMIC, SHT_DYNSYM = 5, 6, 11
SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF
DT_NULL, DT_NEEDED, DT_PLTRELSZ, DT_PLTGOT, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 2, 3, 4, 5, 6
DT_RELA, DT_RELASZ, DT_RELAENT, DT_STRSZ, DT_SYMENT = 7, 8, 9, 10, 11
DT_PLTREL, DT_DEBUG, DT_JMPREL = 20, 21, 23
DT_INIT_ARRAY, DT_FINI_ARRAY, DT_INIT_ARRAYSZ, DT_FINI_ARRAYSZ, DT_FLAGS = 25, 26, 27, 28, 30
DT_VERSYM, DT_FLAGS_1, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFF0, 0x6FFFFFFB, 0x6FFFFFFE, 0x6FFFFFFF
DF_BIND_NOW, DF_1_NOW = 0x8, 0x1
VER_NDX_GLOBAL = 1
GOT_PLT_RESERVED = 3  # .got.plt's first words: .dynamic's address, and two for lazy binding
DYN_SIZE = 16
# (section, type, flags, entry size, alignment), in address order per segment
RO_TABLES = {
    ".hash": (SHT_HASH, elf.SHF_ALLOC, 4, 8),
    ".dynsym": (SHT_DYNSYM, elf.SHF_ALLOC, elf.SYM_SIZE, 8),
    ".dynstr": (elf.SHT_STRTAB, elf.SHF_ALLOC, 0, 1),
    ".gnu.version": (SHT_GNU_VERSYM, elf.SHF_ALLOC, 2, 2),
    ".gnu.version_r": (SHT_GNU_VERNEED, elf.SHF_ALLOC, 0, 8),
    ".rela.dyn": (elf.SHT_RELA, elf.SHF_ALLOC, elf.RELA_SIZE, 8),
    ".rela.plt": (elf.SHT_RELA, elf.SHF_ALLOC | elf.SHF_INFO_LINK, elf.RELA_SIZE, 8),
}
RW_TABLES = {
    ".dynamic": (SHT_DYNAMIC, elf.SHF_ALLOC | elf.SHF_WRITE, DYN_SIZE, 8),
    ".got": (elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE, 8, 8),
    ".got.plt": (elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE, 8, 8),
}


@dataclass
class Library:
    path: str  # the file read
    soname: str  # what DT_NEEDED names
    as_needed: bool  # named inside AS_NEEDED: needed only if a symbol binds to it
    needed: bool = False  # named by DT_NEEDED


@dataclass
class Import:
    """A row of .dynsym: a shared library's symbol the executable refers to, or copied."""

    name: str
    library: int
    version: int  # its .gnu.version entry
    type: int
    bind: int
    size: int
    plt: int = -1  # its stub, by number; -1 if nothing calls it
    got: int = -1  # its .got slot, by number; -1 if nothing reads it through one
    copy: int = -1  # where in .dynbss it was copied to; -1 if it was not
    canonical: bool = False  # its stub is its address (non-call code takes the address)
    pinned: bool = False  # a linked object refers to it: it stays until the next full build
    exported: bool = False  # the executable's own definition, which a library refers to


@dataclass
class Dynamic:
    libraries: list[Library]
    sections: dict[str, int] = field(default_factory=dict)  # table -> ELF section index
    imports: list[Import] = field(default_factory=list)  # .dynsym rows after the null one
    by_name: dict[str, int] = field(default_factory=dict)
    versions: list[tuple[int, str]] = field(default_factory=list)  # (library, name): index-2
    strings: elf.StringTable = field(default_factory=elf.StringTable)
    plt_count: int = 0  # stubs made (the free ones among them in `free_plt`)
    free_plt: list[int] = field(default_factory=list)
    got_count: int = 0
    copy_size: int = 0
    # what .dynamic lists of the linked objects' constructors: (.init_array start, size),
    # (.fini_array start, size)
    arrays: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    plt_atom: int = 0  # the ZigObject atoms whose symbols are stubs and copies
    dynbss_atom: int = 0
    dirty: set[str] = field(default_factory=set)
    # for the running copy: (GOT slot address, name) of each slot this update added
    # (`begin_update` forgets them)
    new_slots: list[tuple[int, int]] = field(default_factory=list)
    # the .dynsym rows of the exported definitions as last written: (section, value, size)
    export_rows: list = field(default_factory=list)
    loaded: dict[int, SharedObject] = field(default_factory=dict)  # library -> as read
    updating: bool = False  # an update (not a full build): a library's DT_NEEDED is fixed
    ef: object = None  # the ElfFile the tables are in

    # ---- layout (a full build) ------------------------------------------------------------------

    def create(self, zo, expected: int) -> None:
        """The segments and sections, before the Zig segments (program headers: PT_PHDR and
        PT_INTERP first, PT_LOAD in address order), sized for `expected` imports and more."""
        ef = self.ef = zo.elf
        interp = zo.arch.dynamic.interpreter.encode() + b"\0"
        # (PT_PHDR's size follows the table: `ElfFile.write_headers`)
        ef.add_phdr(elf.Phdr(PT_PHDR, elf.PF_R, elf.EHDR_SIZE, HEADER_VADDR + elf.EHDR_SIZE,
                             0, 0, 8))
        start = HEADER_RESERVE
        ef.add_phdr(elf.Phdr(PT_INTERP, elf.PF_R, start, HEADER_VADDR + start, len(interp),
                             len(interp), 1))
        size = start + len(interp)
        ph = ef.add_phdr(elf.Phdr(elf.PT_LOAD, elf.PF_R, 0, HEADER_VADDR, size, size, ef.page))
        self.sections[".interp"] = ef.add_section(Section(
            elf.Shdr(".interp", elf.SHT_PROGBITS, elf.SHF_ALLOC, HEADER_VADDR + start, start,
                     len(interp)), ph, max_size=len(interp)))
        ef.pwrite(interp, start)
        slots = 2 * expected + 256
        names = sum(len(lib.soname) + 1 for lib in self.libraries)
        room = {".hash": 4 * (2 + 2 * slots), ".dynsym": elf.SYM_SIZE * slots,
                ".dynstr": names + 48 * slots, ".gnu.version": 2 * slots,
                ".gnu.version_r": 16 * (len(self.libraries) + slots),
                ".rela.dyn": elf.RELA_SIZE * slots, ".rela.plt": elf.RELA_SIZE * slots,
                ".dynamic": DYN_SIZE * (len(self.libraries) + 32), ".got": 8 * slots,
                ".got.plt": 8 * (GOT_PLT_RESERVED + slots)}
        self._segment(ef, RO_VADDR, elf.PF_R, RO_TABLES, room)
        plt_size = zo.arch.dynamic.plt_entry_size * slots
        self._segment(ef, PLT_VADDR, elf.PF_R | elf.PF_X, {".plt": (
            elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_EXECINSTR, 0, 16)}, {".plt": plt_size})
        rw = self._segment(ef, RW_VADDR, elf.PF_R | elf.PF_W, RW_TABLES, room,
                           extra=DYNBSS_ROOM)
        got_plt = ef.sections[self.sections[".got.plt"]].shdr
        relro = got_plt.addr + got_plt.size - RW_VADDR  # up to the end of .got.plt's room
        phdr = ef.phdrs[rw]
        ef.add_phdr(elf.Phdr(PT_DYNAMIC, elf.PF_R | elf.PF_W, 0, 0, 0, 0, 8))
        ef.add_phdr(elf.Phdr(PT_GNU_RELRO, elf.PF_R, phdr.offset, RW_VADDR, relro, relro, 1))
        dynbss = align_forward(RW_VADDR + relro, ef.page)
        self.sections[".dynbss"] = ef.add_section(Section(
            elf.Shdr(".dynbss", elf.SHT_NOBITS, elf.SHF_ALLOC | elf.SHF_WRITE, dynbss,
                     phdr.offset + dynbss - RW_VADDR, 0, addralign=32), rw,
            max_size=DYNBSS_ROOM))
        phdr.memsz = dynbss + DYNBSS_ROOM - RW_VADDR
        for lib in self.libraries:
            self.strings.add(lib.soname)
            lib.needed = not lib.as_needed
        zo.atoms.append(Atom(".plt", self.sections[".plt"], 0, 0, 16, alive=True))
        self.plt_atom = len(zo.atoms) - 1
        zo.atoms.append(Atom(".dynbss", self.sections[".dynbss"], 0, 0, 32, alive=True))
        self.dynbss_atom = len(zo.atoms) - 1
        self.dirty |= {".dynamic", ".got.plt", ".dynstr", ".hash"}

    def _segment(self, ef, vaddr: int, flags: int, tables: dict, room: dict[str, int],
                 extra: int = 0) -> int:
        """A PT_LOAD holding `tables`, each with its room, one after the other."""
        offsets, cursor = {}, 0
        for name, (_, _, _, align) in tables.items():
            cursor = align_forward(cursor, align)
            offsets[name] = cursor
            cursor += room[name]
        ph = ef.add_load_segment(vaddr, flags, cursor, cursor + extra)
        phdr = ef.phdrs[ph]
        phdr.filesz, phdr.memsz = cursor, cursor + extra
        for name, (stype, sflags, entsize, align) in tables.items():
            self.sections[name] = ef.add_section(Section(
                elf.Shdr(name, stype, sflags, vaddr + offsets[name], phdr.offset + offsets[name],
                         0, addralign=align, entsize=entsize), ph, max_size=room[name]))
        return ph

    def begin_update(self) -> None:
        self.new_slots = []

    # ---- which library defines a name ----------------------------------------------------------

    def library(self, index: int, machine: int, machine_name: str) -> SharedObject:
        so = self.loaded.get(index)
        if so is None:
            path = self.libraries[index].path
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise LinkError(f"{path}: {e.strerror or e}") from None
            so = self.loaded[index] = read_shared_object(data, path, machine, machine_name)
        return so

    def lookup(self, zo, name: str):
        """(library index, the definition a reference binds to) of the first library that
        defines `name`, or None."""
        info = zo.arch.info
        for i in range(len(self.libraries)):
            binding = self.library(i, info.elf_machine, info.name).lookup(name)
            if binding is not None:
                return i, binding
        return None

    # ---- imports --------------------------------------------------------------------------------

    def _import(self, zo, name: str) -> Import:
        index = self.by_name.get(name)
        if index is not None:
            return self.imports[index]
        found = self.lookup(zo, name)
        if found is None:
            raise LinkError(f"undefined symbol: {name}")
        lib_index, binding = found
        sym = binding.symbol
        lib = self.libraries[lib_index]
        if not lib.needed:
            if self.updating:
                raise LinkError(f"{name} is defined by {lib.path}, which the program does not "
                                "load yet (AS_NEEDED)")
            lib.needed = True
            self.dirty.add(".dynamic")
        if sym.type == elf.STT_TLS:
            raise LinkError(f"{name} is a thread-local of {lib.path}: a library's "
                            "thread-locals are reached through functions it exports "
                            "(as errno through __errno_location)")
        version = VER_NDX_GLOBAL
        if binding.version:
            key = (lib_index, binding.version)
            if key not in self.versions:
                self.versions.append(key)
                self.strings.add(binding.version)
                self.dirty |= {".gnu.version_r", ".dynamic"}
            version = 2 + self.versions.index(key)
        self.strings.add(name)
        function = sym.type in (elf.STT_FUNC, STT_GNU_IFUNC)
        # (an undefined function's size says nothing, and GNU ld writes 0; a copied
        # variable's is what the loader copies)
        self.imports.append(Import(name, lib_index, version,
                                   elf.STT_FUNC if function else sym.type,
                                   elf.STB_WEAK if sym.bind == elf.STB_WEAK else elf.STB_GLOBAL,
                                   0 if function else sym.size))
        self.by_name[name] = len(self.imports) - 1
        self.dirty |= {".dynsym", ".dynstr", ".gnu.version", ".hash", ".dynamic"}
        return self.imports[-1]

    def export(self, name: str) -> None:
        """Name `name`, which the executable defines, in `.dynsym` for the libraries."""
        if name in self.by_name:
            return
        self.strings.add(name)
        self.imports.append(Import(name, -1, VER_NDX_GLOBAL, elf.STT_NOTYPE, elf.STB_GLOBAL, 0,
                                   exported=True))
        self.by_name[name] = len(self.imports) - 1
        self.dirty |= {".dynsym", ".dynstr", ".gnu.version", ".hash", ".dynamic"}

    def _export_row(self, zo, imp: Import) -> list[int]:
        """[type, binding, section, value, size] of an exported definition as it is now."""
        sym = zo.resolve(Target("import", imp.name))
        if sym is None:
            raise LinkError(f"{imp.name}, which a shared library refers to, is no longer "
                            "defined")
        s = zo.symbols[sym]
        a = zo.atoms[s.atom]
        stype = s.type if s.type in (elf.STT_FUNC, elf.STT_OBJECT) else elf.STT_NOTYPE
        return [stype, s.bind if s.bind != elf.STB_LOCAL else elf.STB_GLOBAL, a.section,
                zo.address(sym), a.size if s.size < 0 else s.size]

    def is_function(self, zo, name: str) -> bool:
        found = self.lookup(zo, name)
        return found is not None and found[1].symbol.type in (elf.STT_FUNC, STT_GNU_IFUNC)

    def function(self, zo, name: str, call: bool = True, pin: bool = False) -> int:
        """The address of `name`'s call stub, made if it has none; `call`: the reference is a
        call (any other reference takes the stub as the function's address); `pin`: by a
        linked object."""
        imp = self._import(zo, name)
        imp.pinned |= pin
        if imp.plt < 0:
            if self.free_plt:
                imp.plt = self.free_plt.pop(0)
            else:
                self._check_room(".plt", zo.arch.dynamic.plt_entry_size * (self.plt_count + 1),
                                 zo)
                self._check_room(".got.plt", 8 * (GOT_PLT_RESERVED + self.plt_count + 1), zo)
                imp.plt = self.plt_count
                self.plt_count += 1
            self._stub(zo, imp)
            self.dirty |= {".rela.plt", ".dynamic"}
        if not call and not imp.canonical:
            imp.canonical = True
            self.dirty.add(".dynsym")
        return self.plt_address(zo, imp.plt)

    def got_slot(self, zo, name: str) -> int:
        """The address of the .got slot the loader fills with `name`'s address."""
        imp = self._import(zo, name)
        if imp.got < 0:
            self._check_room(".got", 8 * (self.got_count + 1), zo)
            imp.got = self.got_count
            self.got_count += 1
            self.dirty |= {".got", ".rela.dyn", ".dynamic"}
            self.new_slots.append((self.got_address(imp.got), name))
        return self.got_address(imp.got)

    def copy(self, zo, name: str) -> int:
        """The address of the executable's copy of library variable `name` (made if it has
        none), which the loader fills from the library's at start-up and which every module's
        references then bind to."""
        imp = self._import(zo, name)
        if imp.copy < 0:
            if zo.patch is not None:
                zo.patch.blockers.append(
                    f"{name} is a variable of {self.libraries[imp.library].path}, which a "
                    "program gets a copy of when it starts")
            align = min(32, 1 << max(imp.size - 1, 0).bit_length()) if imp.size else 8
            offset = align_forward(self.copy_size, align)
            if offset + imp.size > DYNBSS_ROOM:
                raise LinkError(f"no room to copy {name} ({imp.size} bytes)")
            imp.copy = offset
            self.copy_size = offset + max(imp.size, 1)
            ef = zo.elf
            sec = ef.sections[self.sections[".dynbss"]]
            sec.shdr.size = align_forward(self.copy_size, 8)
            zo.atoms[self.dynbss_atom].size = sec.shdr.size
            zo.add_input_symbol(name, self.dynbss_atom, elf.STT_OBJECT, elf.STB_GLOBAL, offset,
                                imp.size)
            self.dirty |= {".dynsym", ".rela.dyn", ".dynamic"}
        return self.copy_address(imp.copy)

    def _stub(self, zo, imp: Import) -> None:
        """The stub's bytes (file and running copy), and its symbol, `name@plt`, by which
        the link resolves `name`."""
        size = zo.arch.dynamic.plt_entry_size
        a = zo.atoms[self.plt_atom]
        sec = zo.elf.sections[self.sections[".plt"]]
        sec.shdr.size = a.size = size * self.plt_count
        place = self.plt_address(zo, imp.plt)
        slot = self._address(".got.plt") + 8 * (GOT_PLT_RESERVED + imp.plt)
        zo.write_fixed(self.plt_atom, size * imp.plt, zo.arch.plt_entry(place, slot))
        zo.add_input_symbol(imp.name, self.plt_atom, elf.STT_FUNC, elf.STB_LOCAL,
                            size * imp.plt, size, local_name=f"{imp.name}@plt")
        self.new_slots.append((slot, imp.name))
        self.dirty.add(".got.plt")

    def _check_room(self, table: str, size: int, zo) -> None:
        if size > zo.elf.sections[self.sections[table]].max_size:
            raise LinkError(f"{table} is full: the program imports more than the last full "
                            "build made room for")

    def _address(self, table: str) -> int:
        return self.ef.sections[self.sections[table]].shdr.addr

    def plt_address(self, zo, index: int) -> int:
        return self._address(".plt") + zo.arch.dynamic.plt_entry_size * index

    def got_address(self, index: int) -> int:
        return self._address(".got") + 8 * index

    def copy_address(self, offset: int) -> int:
        return self._address(".dynbss") + offset

    # ---- writing the tables ---------------------------------------------------------------------

    def _drop_unused(self, zo) -> None:
        """Stop importing the functions nothing calls any more (see the module docstring)."""
        gone = [imp for imp in self.imports
                if imp.plt >= 0 and imp.got < 0 and imp.copy < 0 and not imp.pinned
                and not zo.users.get(Target("nav", imp.name))
                and not zo.users.get(Target("import", imp.name))]
        if not gone:
            return
        for imp in gone:
            self.free_plt.append(imp.plt)
            zo.drop_input_symbol(imp.name)
        self.free_plt.sort()
        names = {imp.name for imp in gone}
        kept = [imp for imp in self.imports if imp.name not in names]
        # versions no import needs any more go too; the rest are numbered again
        used = sorted({imp.version for imp in kept if imp.version > VER_NDX_GLOBAL})
        renumber = {old: 2 + k for k, old in enumerate(used)}
        self.versions = [self.versions[old - 2] for old in used]
        for imp in kept:
            imp.version = renumber.get(imp.version, imp.version)
        self.imports = kept
        self.by_name = {imp.name: k for k, imp in enumerate(kept)}
        self.dirty |= {".dynsym", ".gnu.version", ".gnu.version_r", ".hash", ".rela.plt",
                       ".dynamic"}

    def flush(self, zo) -> None:
        """Write the tables this update changed, whole (they are small), into the file only:
        the running copy has its own, as the loader made them (`new_slots` says what it
        lacks)."""
        if zo.patch is None:
            self._drop_unused(zo)
        rows = [self._export_row(zo, imp) for imp in self.imports if imp.exported]
        if rows != self.export_rows:  # a definition moved (or is new)
            self.export_rows = rows
            self.dirty.add(".dynsym")
        build = {".dynsym": self._dynsym, ".dynstr": lambda zo: bytes(self.strings.data),
                 ".gnu.version": self._versym, ".gnu.version_r": self._verneed,
                 ".hash": self._hash, ".rela.dyn": self._rela_dyn,
                 ".rela.plt": self._rela_plt, ".got": lambda zo: bytes(8 * self.got_count),
                 ".got.plt": self._got_plt, ".dynamic": self._dynamic}
        if ".dynsym" in self.dirty:
            self.dirty.add(".hash")
        for name in [n for n in build if n in self.dirty]:
            data = build[name](zo)
            sec = zo.elf.sections[self.sections[name]]
            if len(data) > sec.max_size:
                raise LinkError(f"{name} is full: the program imports more than the last "
                                "full build made room for")
            sec.shdr.size = len(data)
            zo.elf.pwrite(data, sec.shdr.offset)
        self._link_sections(zo)
        self.dirty.clear()

    def _link_sections(self, zo) -> None:
        s = {n: zo.elf.sections[i].shdr for n, i in self.sections.items()}
        dynsym, dynstr = self.sections[".dynsym"], self.sections[".dynstr"]
        for name in (".hash", ".gnu.version", ".rela.dyn", ".rela.plt"):
            s[name].link = dynsym
        s[".rela.plt"].info = self.sections[".got.plt"]
        for name in (".dynsym", ".gnu.version_r", ".dynamic"):
            s[name].link = dynstr
        s[".dynsym"].info = 1  # the null symbol is the only local one
        s[".gnu.version_r"].info = sum(1 for _ in self._needs())

    def _dynsym(self, zo) -> bytes:
        rows = [elf.pack_sym(0, 0, 0, 0, 0)]
        exported = iter(self.export_rows)
        for imp in self.imports:
            if imp.exported:
                stype, bind, shndx, value, size = next(exported)
                rows.append(elf.pack_sym(self.strings.add(imp.name), elf.st_info(bind, stype),
                                         shndx, value, size))
                continue
            shndx, value = elf.SHN_UNDEF, 0
            if imp.copy >= 0:
                shndx, value = self.sections[".dynbss"], self.copy_address(imp.copy)
            elif imp.canonical:
                value = self.plt_address(zo, imp.plt)
            rows.append(elf.pack_sym(self.strings.add(imp.name), elf.st_info(imp.bind, imp.type),
                                     shndx, value, imp.size))
        return b"".join(rows)

    def _versym(self, zo) -> bytes:
        return struct.pack(f"<{1 + len(self.imports)}H", 0, *(i.version for i in self.imports))

    def _needs(self):
        """(library, [(version index, name)]) of each library some version is needed of."""
        for lib_index in range(len(self.libraries)):
            versions = [(2 + k, name) for k, (lib, name) in enumerate(self.versions)
                        if lib == lib_index]
            if versions:
                yield lib_index, versions

    def _verneed(self, zo) -> bytes:
        needs = list(self._needs())
        out = bytearray()
        for n, (lib_index, versions) in enumerate(needs):
            size = 16 + 16 * len(versions)
            out += struct.pack("<HHIII", 1, len(versions),
                               self.strings.add(self.libraries[lib_index].soname), 16,
                               size if n + 1 < len(needs) else 0)
            for k, (index, name) in enumerate(versions):
                out += struct.pack("<IHHII", elf_hash(name), 0, index, self.strings.add(name),
                                   16 if k + 1 < len(versions) else 0)
        return bytes(out)

    def _hash(self, zo) -> bytes:
        names = ["", *(i.name for i in self.imports)]
        nbucket = max(1, len(names) // 2) | 1
        buckets, chains = [0] * nbucket, [0] * len(names)
        for index in range(1, len(names)):
            b = elf_hash(names[index]) % nbucket
            chains[index] = buckets[b]
            buckets[b] = index
        return struct.pack(f"<{2 + nbucket + len(names)}I", nbucket, len(names), *buckets,
                           *chains)

    def _rela_dyn(self, zo) -> bytes:
        d = zo.arch.dynamic
        rows = []
        for k, imp in enumerate(self.imports):
            if imp.got >= 0:
                rows.append((self.got_address(imp.got), k + 1, d.glob_dat_reloc))
            if imp.copy >= 0:
                rows.append((self.copy_address(imp.copy), k + 1, d.copy_reloc))
        return b"".join(elf.pack_rela(o, k, t, 0) for o, k, t in sorted(rows))

    def _rela_plt(self, zo) -> bytes:
        by_plt = sorted((imp.plt, k + 1) for k, imp in enumerate(self.imports) if imp.plt >= 0)
        base = self._address(".got.plt") + 8 * GOT_PLT_RESERVED
        return b"".join(elf.pack_rela(base + 8 * plt, k, zo.arch.dynamic.jump_slot_reloc, 0)
                        for plt, k in by_plt)

    def _got_plt(self, zo) -> bytes:
        # The first word is .dynamic's address, as the psABI has it; the slots are 0 until
        # the loader binds them (BIND_NOW: before the program runs).
        return struct.pack(f"<{GOT_PLT_RESERVED + self.plt_count}Q", self._address(".dynamic"),
                           *([0] * (GOT_PLT_RESERVED - 1 + self.plt_count)))

    def _dynamic(self, zo) -> bytes:
        s = {n: zo.elf.sections[i].shdr for n, i in self.sections.items()}
        tags = [(DT_NEEDED, self.strings.add(lib.soname)) for lib in self.libraries
                if lib.needed]
        init, init_size, fini, fini_size = self.arrays
        if init_size:
            tags += [(DT_INIT_ARRAY, init), (DT_INIT_ARRAYSZ, init_size)]
        if fini_size:
            tags += [(DT_FINI_ARRAY, fini), (DT_FINI_ARRAYSZ, fini_size)]
        tags += [(DT_HASH, s[".hash"].addr), (DT_STRTAB, s[".dynstr"].addr),
                 (DT_SYMTAB, s[".dynsym"].addr), (DT_STRSZ, len(self.strings.data)),
                 (DT_SYMENT, elf.SYM_SIZE), (DT_DEBUG, 0)]
        if self.plt_count:
            tags += [(DT_PLTGOT, s[".got.plt"].addr),
                     (DT_PLTRELSZ, elf.RELA_SIZE * self.plt_count), (DT_PLTREL, DT_RELA),
                     (DT_JMPREL, s[".rela.plt"].addr)]
        relas = sum((i.got >= 0) + (i.copy >= 0) for i in self.imports)
        if relas:
            tags += [(DT_RELA, s[".rela.dyn"].addr), (DT_RELASZ, elf.RELA_SIZE * relas),
                     (DT_RELAENT, elf.RELA_SIZE)]
        tags += [(DT_FLAGS, DF_BIND_NOW), (DT_FLAGS_1, DF_1_NOW)]
        if self.versions:
            tags += [(DT_VERNEED, s[".gnu.version_r"].addr),
                     (DT_VERNEEDNUM, sum(1 for _ in self._needs())),
                     (DT_VERSYM, s[".gnu.version"].addr)]
        tags.append((DT_NULL, 0))
        return b"".join(struct.pack("<qQ", t, v) for t, v in tags)

    def layout_dynamic(self, zo) -> None:
        """PT_DYNAMIC over .dynamic as now written."""
        shdr = zo.elf.sections[self.sections[".dynamic"]].shdr
        for p in zo.elf.phdrs:
            if p.type == PT_DYNAMIC:
                p.offset, p.vaddr, p.filesz, p.memsz = shdr.offset, shdr.addr, shdr.size, \
                    shdr.size

    def check_layout(self, zo) -> None:
        """Raise ValueError if the tables' state cannot describe the output (a tampered or
        foreign state file): every section, atom, library, version and slot it names exists."""
        sections = zo.elf.sections
        for name, index in self.sections.items():
            if not 0 < index < len(sections) or sections[index].shdr.name != name:
                raise ValueError(f"the dynamic table {name} is not in the output")
        if not 0 < self.plt_atom < len(zo.atoms) or not 0 < self.dynbss_atom < len(zo.atoms):
            raise ValueError("the dynamic tables' atoms are not in the output")
        if any(not 0 <= lib < len(self.libraries) for lib, _ in self.versions):
            raise ValueError("a version needed of no library")
        for imp in self.imports:
            if not (0 <= imp.library < len(self.libraries) or imp.exported) or \
                    not (imp.version in (0, VER_NDX_GLOBAL) or
                         2 <= imp.version < 2 + len(self.versions)) or \
                    imp.plt >= self.plt_count or imp.got >= self.got_count or \
                    imp.copy + imp.size > self.copy_size:
                raise ValueError(f"the import {imp.name} is not in the dynamic tables")

    # ---- state ----------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "libraries": [[lib.path, lib.soname, lib.as_needed, lib.needed]
                          for lib in self.libraries],
            "sections": self.sections,
            "imports": [[i.name, i.library, i.version, i.type, i.bind, i.size, i.plt, i.got,
                         i.copy, i.canonical, i.pinned, i.exported] for i in self.imports],
            "export_rows": self.export_rows,
            "free_plt": self.free_plt,
            "versions": self.versions,
            "strings": bytes(self.strings.data).hex(),
            "counts": [self.plt_count, self.got_count, self.copy_size],
            "arrays": self.arrays,
            "atoms": [self.plt_atom, self.dynbss_atom],
        }

    @classmethod
    def from_state(cls, state: dict) -> Dynamic:
        d = cls([Library(*lib) for lib in state["libraries"]])
        d.sections = dict(state["sections"])
        d.imports = [Import(*row) for row in state["imports"]]
        d.by_name = {imp.name: k for k, imp in enumerate(d.imports)}
        d.versions = [(lib, name) for lib, name in state["versions"]]
        d.strings = elf.StringTable.from_bytes(bytes.fromhex(state["strings"]))
        d.updating = True
        d.plt_count, d.got_count, d.copy_size = state["counts"]
        d.free_plt = list(state["free_plt"])
        d.export_rows = [list(row) for row in state["export_rows"]]
        d.arrays = list(state["arrays"])
        d.plt_atom, d.dynbss_atom = state["atoms"]
        return d

