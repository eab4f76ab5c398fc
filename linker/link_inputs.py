"""Input objects in the output: their sections laid out outside the Zig segments, their symbols
in the symbol table, their relocations applied.

Called once per full build, on a new ZigObject, before any Toy declaration is handed over;
inputs are fixed until the next full build. Allocated input sections are gathered by kind into
output sections (`.text`, `.rodata`, `.eh_frame`, `.init_array`, `.fini_array`,
`.data.rel.ro`, `.got`, `.data`, `.bss`) in three segments of their own above the Zig
zero-fill segment: read/execute, read-only, read/write. C's thread-locals join Toy's: all of
C's `.tdata` is one atom at the start of the TLS image, all of its `.tbss` one atom at the start
of `.tbss`, so that every thread has its own copy of both. Debug sections (`.debug_*`) are
relocated (an offset into another debug section is the input section's offset in the output
one) and handed to the ZigObject's debug info, which puts Toy's own after them (`Dwarf`);
without debug info (`--strip`) they are left out.

Each allocated input section is an atom of the ZigObject (never moved or freed), so that the
relocations of C's code and data that depend on something that can move (a Toy declaration,
a thread-local's offset, which follows the TLS layout) are remembered like Toy's own and
written again when it moves, into the file and a running program. The rest are written once.

A reference to a shared library's symbol is an import (`dynamic.py`): a call goes to the
function's stub, a GOT access reads a slot the dynamic loader fills (never relaxed), and a
direct reference to a variable refers to the executable's copy of it (a COPY relocation), as
non-PIC code needs. In a dynamically linked executable the C library runs the constructors and
destructors, which `.dynamic` lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linker import atom as atoms_mod
from linker import elf
from linker.atom import Atom, align_forward
from linker.code import (
    NEEDS_GOT_SLOT,
    NEEDS_NOTHING,
    NEEDS_TLS,
    UNSUPPORTED,
    Reloc,
    RelocationOverflow,
    RelocSite,
    Target,
)
from linker.elf_file import LinkError, Section
from linker.input_object import (
    SHF_EXCLUDE,
    SHN_COMMON,
    STT_GNU_IFUNC,
    InputSection,
    ObjectFile,
)
from linker.resolve import COMMON, SHARED, TOY, Resolution
from linker.synthetic import DSO_HANDLE, GOT_ENTRY, Got, linker_defined
from linker.zig_object import TLS_ALIGN, TLS_VADDR

# Above the Zig zero-fill segment's room (0x14000000 + 0x40000000), below the TLS image: the
# addresses stay below 2 GiB, as non-PIC code's 32-bit absolute references need.
INPUT_BASE = 0x54000000
INPUT_LIMIT = 0x60000000
# output section -> (segment, type, flags); in address order
OUTPUT = {
    ".text": ("text", elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_EXECINSTR),
    ".rodata": ("rodata", elf.SHT_PROGBITS, elf.SHF_ALLOC),
    ".eh_frame": ("rodata", elf.SHT_PROGBITS, elf.SHF_ALLOC),
    ".init_array": ("data", elf.SHT_INIT_ARRAY, elf.SHF_ALLOC | elf.SHF_WRITE),
    ".fini_array": ("data", elf.SHT_FINI_ARRAY, elf.SHF_ALLOC | elf.SHF_WRITE),
    ".data.rel.ro": ("data", elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE),
    ".got": ("data", elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE),
    ".data": ("data", elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE),
    ".bss": ("data", elf.SHT_NOBITS, elf.SHF_ALLOC | elf.SHF_WRITE),
}
SEGMENT_FLAGS = {"text": elf.PF_R | elf.PF_X, "rodata": elf.PF_R, "data": elf.PF_R | elf.PF_W}
TLS_BLOCKS = (".tdata", ".tbss")  # the keys of C's two TLS atoms (`ZigObject.linked`)
# sections that say something to the static linker only, or to nothing in a static program
DROPPED = (".note.GNU-stack", ".note.gnu.property", ".comment", ".llvm_addrsig",
           ".gnu.attributes", ".note.gnu.build-id")
EH_FRAME_END = bytes(4)  # a zero-length entry: the end of .eh_frame


@dataclass(slots=True)
class Piece:
    """Where one input section went."""

    output: str  # output section name
    offset: int = 0  # in the output section (TLS: in C's TLS atom of its kind)
    atom: int = 0  # the ZigObject atom holding it; 0 for a debug section


@dataclass
class Layout:
    pieces: dict[tuple[int, int], Piece] = field(default_factory=dict)  # (file, section)
    outputs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    commons: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (atom, offset)
    sizes: dict[str, int] = field(default_factory=dict)
    aligns: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # address, size
    section_index: dict[str, int] = field(default_factory=dict)  # in the ELF file
    tls_atoms: dict[str, int] = field(default_factory=dict)  # ".tdata"/".tbss" -> atom
    got: Got = field(default_factory=Got)
    got_atom: int = 0
    infos: dict = field(default_factory=dict)  # relocation type -> the architecture's RelocInfo
    debug: dict[str, bytearray] = field(default_factory=dict)


def output_section(sec: InputSection) -> str | None:
    """The output section an input section goes to; None: left out."""
    name = sec.name
    if not sec.kept or sec.flags & SHF_EXCLUDE or name in DROPPED or \
            name.startswith((".note", ".gnu.warning", ".stab", ".gnu.lto_")):
        return None
    if not sec.flags & elf.SHF_ALLOC:
        return name if name.startswith(".debug_") else None
    if sec.flags & elf.SHF_TLS:
        return ".tbss" if sec.type == elf.SHT_NOBITS else ".tdata"
    if name.startswith((".ctors", ".dtors")):
        raise ValueError(f"{name} sections are not supported (use .init_array)")
    if sec.type == elf.SHT_PREINIT_ARRAY or name.startswith((".init_array", ".preinit_array")):
        return ".init_array"
    if sec.type == elf.SHT_FINI_ARRAY or name.startswith(".fini_array"):
        return ".fini_array"
    if name == ".eh_frame":
        return ".eh_frame"
    if sec.flags & elf.SHF_EXECINSTR:
        return ".text"
    if sec.type == elf.SHT_NOBITS:
        return ".bss"
    if name.startswith(".data.rel.ro"):
        return ".data.rel.ro"
    return ".data" if sec.flags & elf.SHF_WRITE else ".rodata"


def _priority(obj: ObjectFile, index: int) -> tuple[int, int]:
    """Constructors run by priority (`.init_array.NNNNN`, lowest first), then the rest;
    `.preinit_array` before all."""
    name = obj.sections[index].name
    if name.startswith(".preinit_array"):
        return (0, 0)
    suffix = name.rsplit(".", 1)[-1]
    return (1, int(suffix)) if suffix.isdigit() else (2, 0)


def link_inputs(zo, res: Resolution) -> Layout:
    """Place the resolved inputs in `zo`'s output and apply their relocations (those to Toy's
    declarations and thread-locals when `zo` flushes)."""
    arch = zo.arch
    lay = Layout()
    _gather(lay, res, zo.dwarf is not None)
    _scan(lay, res, arch)
    _place(zo, lay, res)
    zo.sections_added()
    _define_symbols(zo, lay, res)
    _relocate(zo, lay, res)
    zo.ctors = [*_span(lay, ".init_array"), *_span(lay, ".fini_array")]
    if zo.dynamic is not None:
        (init, init_end), (fini, fini_end) = _span(lay, ".init_array"), _span(lay, ".fini_array")
        zo.dynamic.arrays = [init, init_end - init, fini, fini_end - fini]
    if lay.debug:  # before anything of Toy's is written, which goes after it
        zo.dwarf.add_inputs(lay.debug)
    return lay


def _span(lay: Layout, name: str) -> tuple[int, int]:
    start, size = lay.bounds.get(name, (0, 0))
    return start, start + size


def _gather(lay: Layout, res: Resolution, debug: bool) -> None:
    """The input sections of each output section, in order; debug sections only with
    `debug`."""
    for f, obj in enumerate(res.objects):
        for i, sec in enumerate(obj.sections):
            if sec is None:
                continue
            try:
                out = output_section(sec)
            except ValueError as e:
                raise LinkError(f"{obj.where(i)}: {e}") from None
            if out is not None and (debug or not out.startswith(".debug_")):
                lay.outputs.setdefault(out, []).append((f, i))
    for key in (".init_array", ".fini_array"):
        if key in lay.outputs:
            lay.outputs[key].sort(key=lambda fi: _priority(res.objects[fi[0]], fi[1]))


def _scan(lay: Layout, res: Resolution, arch) -> None:
    """Every relocation's type is one the architecture links; GOT slots for those that read
    their target through the GOT."""
    for items in lay.outputs.values():
        for f, i in items:
            obj = res.objects[f]
            for r in obj.sections[i].relocs:
                info = _info(lay, arch, r.type)
                if info.needs == UNSUPPORTED:
                    raise LinkError(f"{obj.where(i)}: relocation {info.name} at offset "
                                    f"{r.offset:#x} is not supported")
                if info.needs == NEEDS_GOT_SLOT and not _imported(res, f, r.symbol):
                    lay.got.slot(_got_key(res, f, r.symbol))
    names = {obj.symbols[k].name for obj in res.objects for k in obj.globals()}
    if "__dso_handle" in names and "__dso_handle" not in res.defs:
        lay.got.slot(DSO_HANDLE)
    if lay.got.slots or "_GLOBAL_OFFSET_TABLE_" in names:
        lay.outputs.setdefault(".got", [])


def _info(lay: Layout, arch, rtype: int):
    """What the architecture says of a relocation type, asked once per type and link."""
    info = lay.infos.get(rtype)
    if info is None:
        info = lay.infos[rtype] = arch.relocation_info(rtype)
    return info


def _imported(res: Resolution, f: int, symbol: int) -> str:
    """The name, if symbol `symbol` of object `f` is a shared library's; else ""."""
    s = res.objects[f].symbols[symbol]
    if s.bind == elf.STB_LOCAL or not s.name:
        return ""
    d = res.defs.get(s.name)
    return s.name if d is not None and d.file == SHARED else ""


def _got_key(res: Resolution, f: int, symbol: int) -> tuple:
    """What a GOT slot holds, as a key: the same target shares one slot."""
    s = res.objects[f].symbols[symbol]
    if s.bind != elf.STB_LOCAL and s.name:
        d = res.defs.get(s.name)
        return ("toy", d.nav) if d is not None and d.file == TOY else ("global", s.name)
    return ("local", f, symbol)


def _place(zo, lay: Layout, res: Resolution) -> None:
    """Offsets of every input section in its output section, the segments and sections of
    the output, and an atom per input section. COMMON symbols that no definition beat go at
    the end of .bss."""
    commons = sorted(n for n in res.commons if res.defs[n].rank == COMMON)
    if commons:
        lay.outputs.setdefault(".bss", [])
    for out, items in lay.outputs.items():
        offset, align = 0, 1
        for f, i in items:
            sec = res.objects[f].sections[i]
            offset = align_forward(offset, sec.align)
            lay.pieces[(f, i)] = Piece(out, offset)
            offset += sec.size
            align = max(align, sec.align)
        if out == ".bss":
            for name in commons:
                size, common_align = res.commons[name]
                offset = align_forward(offset, common_align)
                lay.commons[name] = (0, offset)
                offset += size
                align = max(align, common_align)
        if out == ".got":
            offset, align = lay.got.size, GOT_ENTRY
        if out == ".eh_frame":
            offset += len(EH_FRAME_END)
        lay.sizes[out], lay.aligns[out] = offset, align
    # eu-elflint finds a section's segment by its file offset, and judges a segment writable
    # by the writable sections with bytes in the file it finds there: C's data, when all of it
    # is zero-fill, gets one word of file bytes in .data, which gives its segment a place in
    # the file of its own.
    data = [n for n, (seg, _, _) in OUTPUT.items() if seg == "data" and lay.sizes.get(n)]
    if data and all(OUTPUT[n][1] == elf.SHT_NOBITS for n in data):
        lay.outputs.setdefault(".data", [])
        lay.sizes[".data"] = GOT_ENTRY
        lay.aligns[".data"] = max(lay.aligns.get(".data", 1), GOT_ENTRY)
    _segments(zo, lay)
    # GOT slots are addressed from here on (relocations, `_GLOBAL_OFFSET_TABLE_`)
    lay.got.address = lay.bounds.get(".got", (0, 0))[0]
    _tls(zo, lay)
    for (f, i), piece in lay.pieces.items():
        if piece.output in lay.section_index:
            obj = res.objects[f]
            sec = obj.sections[i]
            piece.atom = _fixed_atom(zo, f"{obj.name}({sec.name})", lay.section_index[
                piece.output], piece.offset, sec.size, sec.align)
    for name, (_, offset) in lay.commons.items():
        size, align = res.commons[name]
        lay.commons[name] = (_fixed_atom(zo, f"COMMON {name}", lay.section_index[".bss"],
                                         offset, size, align), 0)
    if ".got" in lay.section_index:
        lay.got_atom = _fixed_atom(zo, "GOT", lay.section_index[".got"], 0, lay.got.size,
                                   GOT_ENTRY)


def _segments(zo, lay: Layout) -> None:
    ef = zo.elf
    cursor = INPUT_BASE
    for segment, flags in SEGMENT_FLAGS.items():
        names = [n for n, (seg, _, _) in OUTPUT.items() if seg == segment and n in lay.sizes]
        if not names:
            continue
        vaddr = align_forward(cursor, ef.page)
        addr, file_end = vaddr, vaddr
        addrs = {}
        for n in names:
            addr = align_forward(addr, lay.aligns[n])
            addrs[n] = addr
            addr += lay.sizes[n]
            if OUTPUT[n][1] != elf.SHT_NOBITS:
                file_end = addr
        if addr > INPUT_LIMIT:
            raise LinkError(f"the linked objects need {addr - INPUT_BASE} bytes of address "
                            f"space; there are {INPUT_LIMIT - INPUT_BASE}")
        # A segment of empty sections (gcc writes an empty .data and .bss into every object)
        # is left out, and so are they. (eu-elflint: a writable segment must hold a writable
        # section's bytes; an allocated section must be in a segment.)
        ph, offset = -1, 0
        if addr > vaddr:
            ph = ef.add_load_segment(vaddr, flags, file_end - vaddr, addr - vaddr)
            phdr = ef.phdrs[ph]
            phdr.filesz, phdr.memsz = file_end - vaddr, addr - vaddr
            offset = phdr.offset
        for n in names:
            _, stype, sflags = OUTPUT[n]
            size = lay.sizes[n]
            lay.bounds[n] = (addrs[n], size)
            if not size:  # an empty output section is left out, as GNU ld leaves it
                continue
            shdr = elf.Shdr(n, stype, sflags, addrs[n], offset + addrs[n] - vaddr, size,
                            addralign=lay.aligns[n],
                            entsize=8 if n in (".init_array", ".fini_array", ".got") else 0)
            lay.section_index[n] = ef.add_section(Section(shdr, ph, max_size=size))
        cursor = addr


def _tls(zo, lay: Layout) -> None:
    """C's thread-locals as two atoms at the start of Toy's .tdata and .tbss."""
    for key in TLS_BLOCKS:
        if key not in lay.sizes:
            continue
        if lay.aligns[key] > TLS_ALIGN:
            raise LinkError(f"thread-locals aligned to {lay.aligns[key]} bytes are not "
                            f"supported (a thread's TLS block is aligned to {TLS_ALIGN})")
        zo.create_tls_sections()
        section = zo.section_of[key[1:]]
        zo.atoms.append(Atom(f"C {key}", section, 0, lay.sizes[key], max(lay.aligns[key], 1)))
        index = len(zo.atoms) - 1
        atoms_mod.allocate(zo, index)
        lay.tls_atoms[key] = index
        for piece in lay.pieces.values():
            if piece.output == key:
                piece.atom = index


def _fixed_atom(zo, name: str, section: int, value: int, size: int, align: int) -> int:
    """An atom that stays where it is until the next full build: outside the section's list
    of atoms, which only Zig sections have."""
    zo.atoms.append(Atom(name, section, value, size, align, alive=True))
    return len(zo.atoms) - 1


# ---- symbols ------------------------------------------------------------------------------------


def _define_symbols(zo, lay: Layout, res: Resolution) -> None:
    """The input files' symbols in the ZigObject: the globals that won resolution (by name in
    `zo.linked`, where Toy's references find them), the locals with a name, and C's two TLS
    blocks (targets of the relocations that follow the TLS layout)."""
    for key, index in lay.tls_atoms.items():
        zo.add_input_symbol(key, index, elf.STT_TLS, elf.STB_LOCAL, 0, 0, listed=False)
    for f, obj in enumerate(res.objects):
        for k, s in enumerate(obj.symbols):
            if not s.name or s.type in (elf.STT_SECTION, elf.STT_FILE) or \
                    s.shndx == elf.SHN_UNDEF or s.name.startswith(".L"):
                continue
            is_global = s.bind != elf.STB_LOCAL
            if is_global:
                d = res.defs.get(s.name)
                if d is None or d.file != f or d.symbol != k:
                    continue
            atom, value = _symbol_place(lay, f, k, s, res)
            if atom is None:
                continue
            if s.type == STT_GNU_IFUNC:
                # Its address is its resolver's, which only a start-up that applies
                # IRELATIVE relocations turns into the implementation's.
                raise LinkError(f"{obj.where(s.shndx)}: {s.name} is an IFUNC "
                                "(__attribute__((ifunc))), which toyc does not link yet")
            stype = s.type if s.type in (elf.STT_FUNC, elf.STT_OBJECT, elf.STT_TLS) \
                else elf.STT_NOTYPE
            # merged COMMON symbols: the largest size, as allocated (this one may be smaller)
            size = res.commons[s.name][0] if s.shndx == SHN_COMMON else s.size
            zo.add_input_symbol(s.name if is_global else "", atom, stype,
                                s.bind if is_global else elf.STB_LOCAL, value, size,
                                listed=s.shndx != elf.SHN_ABS, local_name=s.name)


def _symbol_place(lay: Layout, f: int, k: int, s, res: Resolution) -> tuple[int | None, int]:
    """(atom, offset in it) of a defined input symbol; (None, 0) if its section was left out;
    an absolute symbol is at its value from the null atom."""
    if s.shndx == elf.SHN_ABS:
        return 0, s.value
    if s.shndx == SHN_COMMON:
        atom, _ = lay.commons.get(s.name, (None, 0))
        return atom, 0
    piece = lay.pieces.get((f, s.shndx))
    if piece is None or not piece.atom:
        return None, 0
    return piece.atom, (piece.offset if piece.output in TLS_BLOCKS else 0) + s.value


# ---- relocations --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    address: int  # S (for a thread-local, filled in when the TLS layout is known)
    moves: Target | None  # what the field depends on, if it can move
    extra: int = 0  # added to the remembered relocation's addend (offset in a TLS block)
    tls: bool = False
    size: int = 0
    tls_offset: int = 0


def _relocate(zo, lay: Layout, res: Resolution) -> None:
    arch = zo.arch
    for out, items in lay.outputs.items():
        loaded = out in OUTPUT or out in TLS_BLOCKS
        for f, i in items:
            obj = res.objects[f]
            sec = obj.sections[i]
            piece = lay.pieces[(f, i)]
            if loaded and not piece.atom:  # empty, in an output section left out
                continue
            buf = bytearray(sec.data if sec.type != elf.SHT_NOBITS else b"")
            base = _piece_address(zo, lay, piece) if loaded else piece.offset
            remembered = []
            skip = False
            for r in sec.relocs:
                if skip:
                    skip = False
                    continue
                info = _info(lay, arch, r.type)
                if info.needs == NEEDS_NOTHING:
                    continue
                imported = _imported(res, f, r.symbol) if loaded else ""
                t = _import(zo, imported, info, r.type, obj, i) if imported else \
                    _target(zo, lay, res, f, r.symbol)
                if info.needs == NEEDS_TLS and not t.tls or t.tls and info.needs != NEEDS_TLS \
                        and loaded and info.needs != NEEDS_GOT_SLOT:
                    raise LinkError(f"{obj.where(i)}: relocation {info.name} against "
                                    f"{_name(obj, r.symbol)}, which is "
                                    f"{'' if t.tls else 'not '}a thread-local")
                site = RelocSite(r.offset, r.type, r.addend, base + r.offset, t.address,
                                 lay.got.address, 0, t.size, loaded, t.tls_offset)
                if imported:
                    site.imported = True
                    if info.needs == NEEDS_GOT_SLOT:
                        site.got_slot = zo.dynamic.got_slot(zo, imported)
                elif info.needs == NEEDS_GOT_SLOT:
                    site.got_slot = lay.got.slot_address(_got_key(res, f, r.symbol))
                try:
                    applied = arch.relocate(buf, site)
                except RelocationOverflow as e:
                    raise LinkError(f"{obj.where(i)}: relocation {info.name} at offset "
                                    f"{r.offset:#x} against {_name(obj, r.symbol)}: {e}") \
                        from None
                except ValueError as e:
                    raise LinkError(f"{obj.where(i)}: relocation {info.name} at offset "
                                    f"{r.offset:#x}: {e}") from None
                if applied.skip_next:
                    skip = True
                if applied.remember is not None and t.moves is not None and loaded:
                    m = applied.remember
                    remembered.append(Reloc(m.offset + _in_atom(piece), m.type, t.moves,
                                            m.addend + t.extra))
            if loaded:
                _hand_over(zo, lay, piece, buf, remembered, sec)
            else:
                # (sized first: an aligned piece may leave a gap before it)
                debug = lay.debug.setdefault(out, bytearray(lay.sizes[out]))
                debug[piece.offset : piece.offset + len(buf)] = buf
    _fill_got(zo, lay, res)
    if ".eh_frame" in lay.section_index:
        _, size = lay.bounds[".eh_frame"]
        zo.elf.write_atom(lay.section_index[".eh_frame"], size - len(EH_FRAME_END),
                          EH_FRAME_END)


def _in_atom(piece: Piece) -> int:
    """Where the piece starts in its atom: TLS pieces share one atom per kind."""
    return piece.offset if piece.output in TLS_BLOCKS else 0


def _piece_address(zo, lay: Layout, piece: Piece) -> int:
    return zo.atom_address(piece.atom) + _in_atom(piece)


def _hand_over(zo, lay: Layout, piece: Piece, buf: bytearray, remembered: list[Reloc],
               sec: InputSection) -> None:
    """The relocated bytes of one loaded input section: pending in its atom, for the flush to
    apply what depends on Toy's declarations and the TLS layout, and write."""
    index = piece.atom
    if piece.output in TLS_BLOCKS:  # several pieces in one atom: gather them
        pending = bytearray(zo.pending.get(index, bytes(zo.atoms[index].size)))
        if sec.type != elf.SHT_NOBITS:
            pending[piece.offset : piece.offset + len(buf)] = buf
        zo.pending[index] = bytes(pending)
        zo.set_input_relocs(index, zo.atoms[index].relocs + remembered)
        return
    zo.pending[index] = bytes(buf)
    zo.set_input_relocs(index, remembered)


def _target(zo, lay: Layout, res: Resolution, f: int, k: int) -> _Target:
    obj = res.objects[f]
    s = obj.symbols[k]
    if s.bind == elf.STB_LOCAL or not s.name:
        return _defined(zo, lay, res, f, k)
    d = res.defs.get(s.name)
    if d is None:
        value = linker_defined(s.name, lay.got, lay.bounds)
        if value is not None:
            return _Target(value, None)
        if s.bind == elf.STB_WEAK or s.name in res.weak_refs:
            return _Target(0, None)  # an undefined weak symbol is 0
        raise LinkError(f"undefined symbol: {s.name} (referenced by {obj.name})")
    if d.file == TOY:  # (a thread-local's offset is known when the flush applies it)
        if not d.nav:  # toyc's runtime: the entry point
            return _Target(0, Target("lazy", s.name))
        return _Target(0, Target("nav", d.nav), tls=d.tls)
    return _defined(zo, lay, res, d.file, d.symbol)


def _import(zo, name: str, info, rtype: int, obj: ObjectFile, section: int) -> _Target:
    """The target of a reference to a shared library's `name`: its stub (a function), or
    the executable's copy of it (a variable); a GOT access needs neither."""
    d = zo.dynamic
    if info.needs == NEEDS_TLS:
        raise LinkError(f"{obj.where(section)}: {name} is a thread-local of a shared library, "
                        "which toyc does not link yet")
    if info.needs == NEEDS_GOT_SLOT:
        return _Target(0, None)
    if d.is_function(zo, name):
        return _Target(d.function(zo, name, call=rtype in zo.arch.dynamic.call_relocs,
                                  pin=True), None)
    return _Target(d.copy(zo, name), None)


def _defined(zo, lay: Layout, res: Resolution, f: int, k: int) -> _Target:
    s = res.objects[f].symbols[k]
    if s.shndx == elf.SHN_ABS:
        return _Target(s.value, None, size=s.size)
    if s.shndx == SHN_COMMON:
        atom, _ = lay.commons[s.name]
        return _Target(zo.atom_address(atom), None, size=res.commons[s.name][0])
    piece = lay.pieces.get((f, s.shndx))
    if piece is None:  # in a section left out (another object's copy of a COMDAT group)
        return _Target(0, None)
    if piece.output in TLS_BLOCKS:
        offset = piece.offset + (s.value if s.type != elf.STT_SECTION else 0)
        block = zo.linked[piece.output]
        return _Target(0, Target("input", piece.output), offset, True, s.size,
                       zo.address(block) + offset - TLS_VADDR)
    if piece.output not in OUTPUT:  # a debug section: its offset in the output section
        return _Target(piece.offset + (s.value if s.type != elf.STT_SECTION else 0), None)
    if not piece.atom:  # in an empty output section, which was left out: where it would be
        return _Target(lay.bounds[piece.output][0] + piece.offset, None)
    value = 0 if s.type == elf.STT_SECTION else s.value
    return _Target(zo.atom_address(piece.atom) + value, None, size=s.size)


def _fill_got(zo, lay: Layout, res: Resolution) -> None:
    if not lay.got_atom:
        return
    buf = bytearray(lay.got.size)
    relocs = []
    for key, slot in lay.got.slots.items():
        if key == DSO_HANDLE:
            continue  # (0)
        if key[0] == "toy":
            relocs.append(Reloc(slot * GOT_ENTRY, zo.arch.info.abs64_reloc,
                                Target("nav", key[1]), 0))
            continue
        if key[0] == "global":
            d = res.defs.get(key[1])
            if d is None:
                value = linker_defined(key[1], lay.got, lay.bounds) or 0
                t = _Target(value, None)
            else:
                t = _defined(zo, lay, res, d.file, d.symbol)
        else:
            t = _defined(zo, lay, res, key[1], key[2])
        if t.tls:
            raise LinkError("a thread-local read through the GOT is not supported")
        buf[slot * GOT_ENTRY : slot * GOT_ENTRY + 8] = t.address.to_bytes(8, "little")
    zo.pending[lay.got_atom] = bytes(buf)
    zo.set_input_relocs(lay.got_atom, relocs)


def _name(obj: ObjectFile, k: int) -> str:
    s = obj.symbols[k]
    if s.type == elf.STT_SECTION and s.shndx < len(obj.sections) and obj.sections[s.shndx]:
        return obj.sections[s.shndx].name
    return s.name or f"symbol {k}"
