"""Debug information, DWARF 5, kept current as declarations change.

One compile unit for the source file. `.debug_info` holds the unit's header and DIE, the base
types (`int`, `bool`, `char`, and `str`, a pointer to char), then one block per declaration:
a function's subprogram with its parameters and locals, or a global's variable, with the array
types they use. `.debug_line` holds one header, then one sequence per function. Each block has
room to grow, as atoms do; a declaration that changes rewrites its own blocks in place, moves
them to free room when they outgrow it, and a removed one leaves padding. Consumers read
these sections from start to end, so every byte not in a block must still parse: free room in
`.debug_info` is padding DIEs (a vendor tag whose one attribute is a block of bytes to skip,
or an empty one-byte DIE), in `.debug_line` `DW_LNS_const_add_pc` opcodes, which move no row.
`.debug_frame` holds one common entry, then a frame description entry per function with call
frame instructions, and per runtime helper with some (they have no other debug info; the
entry points' say that their frames are the outermost, `toyc.cfi`); its free room is common
entries that nothing refers to.

Addresses and lines are written as they are: a function that moves rewrites its blocks; lines
that shift (an edit above) patch only the line fields of the declarations below (the
subprogram's `DW_AT_decl_line` and the sequence's first `DW_LNS_advance_line`, both of a fixed
width). The unit's address range, `.debug_aranges` and the unit lengths are patched when the
code section or a debug section grows. `.debug_str` and `.debug_line_str` hold the producer and
the file's names, written once. In an object, every address and section offset is also a
relocation for the system linker (`relocs`).

An executable linked with C objects holds their debug info too (`add_inputs`, before anything
of Toy's is written): each debug section starts with C's content, relocated and fixed until the
next full build, and Toy's follows it. Offsets kept here (blocks, free room, header fields) are
relative to the start of Toy's part of their section, its base; what is written into a section
at an offset (`_write`, the line patches) and every offset written as a value into another
section (a unit's abbreviations and line program, strings, a frame description's common
entry, `.debug_aranges`' unit) has that section's base added. Sections only C has
(`.debug_rnglists`, `.debug_loclists`...) are written once, as they are.

What it is told of each declaration is a `DebugDecl`, which the compiler builds
(`toyc.debuginfo`) and attaches to the declaration's code; types in it are `DebugType`s, which
say only what DWARF needs of a type.
"""

from __future__ import annotations

import hashlib
import operator
import os
import struct
from dataclasses import dataclass, field

from linker import elf
from linker.atom import pad_to_ideal
from linker.elf_file import ElfFile, Section
from linker.leb128 import sleb, uleb
from linker.state_rows import Rows

# ---- what the compiler says of a declaration (`Code.debug`) ------------------------------------


@dataclass(frozen=True, slots=True)
class DebugType:
    """A type as debug info needs it: a base type ("int", "bool" or "str"), or an "array"
    of `length` `elem`s."""

    name: str
    elem: DebugType | None = None
    length: int = 0

    @property
    def is_array(self) -> bool:
        return self.name == "array"


@dataclass(slots=True)
class DebugVar:
    name: str
    ty: DebugType
    local: int  # index into the function's locals (and `Code.frame_slots`)
    param: bool
    line: int  # relative to the declaration's first line
    col: int
    scope: int = 0  # the block it is declared in (an index into DebugDecl.scopes)


@dataclass(slots=True)
class DebugDecl:
    name: str
    kind: str  # "fn", "var", "const" or "threadlocal"
    col: int
    ty: DebugType | None  # a global's type, a function's result type (None: none)
    external: bool  # exported under its own name
    vars: list[DebugVar] = field(default_factory=list)  # a function's parameters and locals
    # a function's blocks, the body first, in source order (as `Code.scopes` gives their
    # code): the index of the block each one is nested in (-1 for the body)
    scopes: list[int] = field(default_factory=list)


# ---- DWARF numbers -------------------------------------------------------------------------------

DW_TAG_array_type, DW_TAG_formal_parameter, DW_TAG_lexical_block = 0x01, 0x05, 0x0B
DW_TAG_compile_unit = 0x11
DW_TAG_pointer_type, DW_TAG_typedef, DW_TAG_subrange_type = 0x0F, 0x16, 0x21
DW_TAG_base_type, DW_TAG_subprogram, DW_TAG_variable = 0x24, 0x2E, 0x34
DW_TAG_padding = 0x4080  # the first vendor tag: free room, which consumers skip
DW_AT_location, DW_AT_name, DW_AT_byte_size, DW_AT_stmt_list = 0x02, 0x03, 0x0B, 0x10
DW_AT_low_pc, DW_AT_high_pc, DW_AT_language, DW_AT_comp_dir = 0x11, 0x12, 0x13, 0x1B
DW_AT_producer, DW_AT_count, DW_AT_decl_column, DW_AT_decl_file = 0x25, 0x37, 0x39, 0x3A
DW_AT_decl_line, DW_AT_encoding, DW_AT_external, DW_AT_frame_base = 0x3B, 0x3E, 0x3F, 0x40
DW_AT_type = 0x49
DW_AT_padding = 0x3FF0  # a vendor attribute no vendor uses
DW_FORM_addr, DW_FORM_data2, DW_FORM_data4, DW_FORM_data8 = 0x01, 0x05, 0x06, 0x07
DW_FORM_string, DW_FORM_block, DW_FORM_data1, DW_FORM_flag = 0x08, 0x09, 0x0B, 0x0C
DW_FORM_strp, DW_FORM_udata, DW_FORM_ref4 = 0x0E, 0x0F, 0x13
DW_FORM_sec_offset, DW_FORM_exprloc, DW_FORM_line_strp = 0x17, 0x18, 0x1F
DW_ATE_boolean, DW_ATE_signed, DW_ATE_unsigned_char = 0x02, 0x05, 0x08
DW_LANG_C99 = 0x0C  # the closest a debugger knows: C's expressions work on Toy's values
DW_UT_compile = 0x01
DW_OP_addr, DW_OP_fbreg, DW_OP_breg0, DW_OP_reg0, DW_OP_regx = 0x03, 0x91, 0x70, 0x50, 0x90
DW_LNS_copy, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_column = 1, 2, 3, 5
DW_LNS_const_add_pc, DW_LNS_set_prologue_end = 8, 10
DW_LNE_end_sequence, DW_LNE_set_address = 1, 2
DW_LNCT_path, DW_LNCT_directory_index = 1, 2

# abbreviation codes
(CU, BASE, POINTER, TYPEDEF, FUNC, VOID_FUNC, PARAM, LOCAL, GLOBAL, NO_LOCATION, ARRAY, RANGE,
 PAD, PAD1, SCOPE) = range(1, 16)
ABBREVS = {
    CU: (DW_TAG_compile_unit, True, [(DW_AT_producer, DW_FORM_strp),
                                     (DW_AT_language, DW_FORM_data2),
                                     (DW_AT_name, DW_FORM_line_strp),
                                     (DW_AT_comp_dir, DW_FORM_line_strp),
                                     (DW_AT_low_pc, DW_FORM_addr),
                                     (DW_AT_high_pc, DW_FORM_data8),
                                     (DW_AT_stmt_list, DW_FORM_sec_offset)]),
    BASE: (DW_TAG_base_type, False, [(DW_AT_name, DW_FORM_string),
                                     (DW_AT_encoding, DW_FORM_data1),
                                     (DW_AT_byte_size, DW_FORM_data1)]),
    POINTER: (DW_TAG_pointer_type, False, [(DW_AT_byte_size, DW_FORM_data1),
                                           (DW_AT_type, DW_FORM_ref4)]),
    TYPEDEF: (DW_TAG_typedef, False, [(DW_AT_name, DW_FORM_string), (DW_AT_type, DW_FORM_ref4)]),
    FUNC: (DW_TAG_subprogram, True, [(DW_AT_name, DW_FORM_string),
                                     (DW_AT_decl_file, DW_FORM_data1),
                                     (DW_AT_decl_line, DW_FORM_data4),
                                     (DW_AT_decl_column, DW_FORM_data2),
                                     (DW_AT_external, DW_FORM_flag),
                                     (DW_AT_low_pc, DW_FORM_addr),
                                     (DW_AT_high_pc, DW_FORM_data4),
                                     (DW_AT_frame_base, DW_FORM_exprloc),
                                     (DW_AT_type, DW_FORM_ref4)]),
    PARAM: (DW_TAG_formal_parameter, False, [(DW_AT_name, DW_FORM_string),
                                             (DW_AT_type, DW_FORM_ref4),
                                             (DW_AT_location, DW_FORM_exprloc)]),
    GLOBAL: (DW_TAG_variable, False, [(DW_AT_name, DW_FORM_string),
                                      (DW_AT_decl_file, DW_FORM_data1),
                                      (DW_AT_decl_line, DW_FORM_data4),
                                      (DW_AT_decl_column, DW_FORM_data2),
                                      (DW_AT_external, DW_FORM_flag),
                                      (DW_AT_type, DW_FORM_ref4),
                                      (DW_AT_location, DW_FORM_exprloc)]),
    ARRAY: (DW_TAG_array_type, True, [(DW_AT_type, DW_FORM_ref4)]),
    RANGE: (DW_TAG_subrange_type, False, [(DW_AT_count, DW_FORM_data8)]),
    PAD: (DW_TAG_padding, False, [(DW_AT_padding, DW_FORM_block)]),
    PAD1: (DW_TAG_padding, False, []),
    SCOPE: (DW_TAG_lexical_block, True, [(DW_AT_low_pc, DW_FORM_addr),
                                         (DW_AT_high_pc, DW_FORM_data4)]),
}
# a void function: no type; a local: as a parameter (neither has a line, so that a shift
# patches one line field per function); a thread-local: no location (a debugger finds a
# thread's block through the C library's thread library, which a Toy program has none of)
ABBREVS[VOID_FUNC] = (DW_TAG_subprogram, True, ABBREVS[FUNC][2][:-1])
ABBREVS[LOCAL] = (DW_TAG_variable, False, ABBREVS[PARAM][2])
ABBREVS[NO_LOCATION] = (DW_TAG_variable, False, ABBREVS[GLOBAL][2][:-1])

INFO_HEADER = 12  # unit_length, version, unit_type, address_size, debug_abbrev_offset
LINE_OPCODE_LENGTHS = bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1])
LINE_FIELD = 5  # bytes of a sequence's first DW_LNS_advance_line operand (a padded SLEB128)
SECTIONS = (".debug_abbrev", ".debug_info", ".debug_aranges", ".debug_line", ".debug_str",
            ".debug_line_str", ".debug_frame")
# what an object's debug sections refer to by offset: each needs a section symbol
REFERRED = (".debug_abbrev", ".debug_info", ".debug_line", ".debug_str", ".debug_line_str",
            ".debug_frame")
RELOCATED = (".debug_info", ".debug_line", ".debug_aranges", ".debug_frame")
CIE_ID = 0xFFFFFFFF  # what marks a common information entry in .debug_frame
CIE_VERSION = 4
MIN_FRAME_ENTRY = 16  # the smallest entry: a CIE without instructions, padded
RUNTIME = "runtime"  # the kind of a runtime helper's entry: a frame description alone
TEXT_SECTION = ".text.zig"


def line_operand(value: int) -> bytes:
    """A line number (0 <= value < 2**34) as a LINE_FIELD-byte SLEB128."""
    return bytes(((value >> 0) & 0x7F | 0x80, (value >> 7) & 0x7F | 0x80,
                  (value >> 14) & 0x7F | 0x80, (value >> 21) & 0x7F | 0x80, (value >> 28) & 0x3F))


def _abbrev_table() -> bytes:
    out = bytearray()
    for code, (tag, children, attrs) in ABBREVS.items():
        out += uleb(code) + uleb(tag) + bytes([1 if children else 0])
        for at, form in attrs:
            out += uleb(at) + uleb(form)
        out += b"\0\0"
    return bytes(out + b"\0")


def info_padding(size: int) -> bytes:
    """`size` bytes of DIEs that say nothing."""
    if size <= 0:
        return b""
    if size == 1:
        return bytes([PAD1])
    for n in range(1, 6):
        body = size - 1 - n
        if body >= 0 and len(uleb(body)) == n:
            return bytes([PAD]) + uleb(body) + bytes(body)
    return bytes([PAD1]) + info_padding(size - 1)


def line_padding(size: int) -> bytes:
    return bytes([DW_LNS_const_add_pc]) * size


def cie(code_align: int, data_align: int, ra_register: int, initial: bytes,
        size: int = 0) -> bytes:
    """A common information entry of .debug_frame (no augmentation, 8-byte addresses),
    ending in DW_CFA_nop up to a whole number of words, or to `size` bytes."""
    body = struct.pack("<IB", CIE_ID, CIE_VERSION) + b"\0" + bytes([8, 0]) + \
        uleb(code_align) + sleb(data_align) + uleb(ra_register) + initial
    length = size - 4 if size else len(body) + (-(len(body) + 4) % 8)
    assert length >= len(body), size
    return struct.pack("<I", length) + body + bytes(length - len(body))


def frame_padding(size: int) -> bytes:
    """`size` (>= MIN_FRAME_ENTRY) bytes of .debug_frame that describe nothing: a common
    information entry that no frame description refers to."""
    return cie(1, -8, 0, b"", size)


def fill_frame(data: bytes, capacity: int) -> bytes:
    """A frame description entry stretched to `capacity` bytes: its length covers them, the
    instructions end in DW_CFA_nop."""
    return struct.pack("<I", capacity - 4) + data[4:] + bytes(capacity - len(data))


@dataclass(slots=True)
class Block:
    """A declaration's bytes in one debug section, with room to grow."""

    offset: int = 0
    capacity: int = 0
    size: int = 0
    digest: str = ""
    line_at: int = -1  # where its line field is, relative to the block (-1: none)
    # where it holds addresses in the declaration (relative to the block): [offset, addend]
    addrs: list = field(default_factory=list)


@dataclass(slots=True)
class Entry:
    """One declaration's debug info: its blocks and what they were made from."""

    info: Block
    line: Block
    decl_line: int = 0
    kind: str = "fn"  # as DebugDecl.kind, or RUNTIME
    frame: Block = field(default_factory=Block)  # a function's frame description entry


@dataclass(slots=True)
class Region:
    """The blocks' part of a debug section: from `start` to `end`, with free room in it."""

    start: int
    end: int
    free: list[list[int]]  # [offset, size], by offset

    def allocate(self, size: int, min_rest: int = 1) -> tuple[int, int, tuple[int, int] | None]:
        """Room for `size` bytes: its offset, its size (a free chunk's whole room when less
        than `min_rest` would be left of it), and the part of a free chunk it leaves free
        (offset, size), which must be padded anew."""
        for i, (offset, room) in enumerate(self.free):
            if room >= size:
                if room - size < min_rest:
                    del self.free[i]
                    return offset, room, None
                self.free[i] = [offset + size, room - size]
                return offset, size, (offset + size, room - size)
        offset = self.end
        self.end += size
        return offset, size, None

    def release(self, offset: int, size: int) -> None:
        if offset + size == self.end:
            self.end = offset
        else:
            self.free.append([offset, size])
            self.free.sort()


class Dwarf:
    def __init__(self, elf_file: ElfFile, arch_info, source_path: str, producer: str = ""):
        self.elf = elf_file
        self.info = arch_info
        self.source_path = source_path
        # the compiler, as the unit's DW_AT_producer names it: written once, by `create`, so a
        # Dwarf loaded from state does without it
        self.producer = producer
        self.sections: dict[str, int] = {}
        # section -> the bytes of linked C objects' debug info before Toy's part (`add_inputs`)
        self.bases: dict[str, int] = {}
        self.entries: dict[str, Entry] = {}
        self.entry_rows = Rows()  # their state rows as last built
        self.info_region = Region(0, 0, [])
        self.line_region = Region(0, 0, [])
        self.frame_region = Region(0, 0, [])
        self.types: dict[str, int] = {}  # base type's name -> its DIE's offset
        self.code_range = (0, 0)  # the unit's address range as last written
        # what the next flush writes: name -> (its code, its line)
        self.pending: dict[str, tuple] = {}
        self.line_patches: set[str] = set()
        self.name_offset = 0  # of the file's name in .debug_line_str
        self.line_dir_at = 0  # where .debug_line's header refers to .debug_line_str
        self.line_file_at: list[int] = []

    # ---- the fixed parts ----------------------------------------------------------------------

    @property
    def frames(self) -> bool:
        """Whether functions have call frame information (the architecture describes it)."""
        return self.info.cfa_ra_register >= 0

    def create(self) -> None:
        """Add the debug sections to the file and write their fixed parts."""
        for name in SECTIONS:
            if name == ".debug_frame" and not self.frames:
                continue
            self.sections[name] = self.elf.add_section(Section(elf.Shdr(
                name, elf.SHT_PROGBITS, 0, addralign=8 if name == ".debug_frame" else 1)))
        self._write_fixed()

    def add_inputs(self, contents: dict[str, bytes]) -> None:
        """Put the debug sections of the linked objects (`contents`: section name -> their
        relocated bytes) before Toy's. Called once, on a new Dwarf, before any declaration
        is: `create` ran when the ZigObject was made, before the inputs were placed and
        relocated, so Toy's fixed parts, all that is written yet, are written again after
        them."""
        assert not self.entries and not self.pending and not self.bases, "inputs come first"
        for name, data in sorted(contents.items()):
            if not data:
                continue
            if name not in self.sections:  # only C has it: a plain section
                self.sections[name] = self.elf.add_section(Section(elf.Shdr(
                    name, elf.SHT_PROGBITS, 0, addralign=1)))
            index = self.sections[name]
            self.elf.reserve(index, len(data) + self.elf.sections[index].shdr.size)
            self.elf.write_nonalloc_part(index, 0, bytes(data), len(data))
            if name in SECTIONS:
                self.bases[name] = len(data)
        self._write_fixed()

    def base(self, section: str) -> int:
        """Where Toy's part of `section` starts: after the linked objects' part."""
        return self.bases.get(section, 0)

    def _write_fixed(self) -> None:
        self._write(".debug_abbrev", 0, _abbrev_table())
        self._write(".debug_str", 0, self.producer.encode() + b"\0")
        comp_dir = os.path.dirname(os.path.abspath(self.source_path))
        name = os.path.basename(self.source_path)
        strings = comp_dir.encode() + b"\0" + name.encode() + b"\0"
        self._write(".debug_line_str", 0, strings)
        name_at = self.name_offset = len(comp_dir.encode()) + 1
        # .debug_info: header, unit DIE, base types; blocks follow
        base = self.base
        cu = bytearray(struct.pack("<IHBBI", 0, 5, DW_UT_compile, 8, base(".debug_abbrev")))
        line_str = base(".debug_line_str")
        cu += uleb(CU) + struct.pack("<IHIIQQI", base(".debug_str"), DW_LANG_C99,
                                     line_str + name_at, line_str, 0, 0, base(".debug_line"))
        types = {}
        for tname, enc, size in (("int", DW_ATE_signed, 8), ("bool", DW_ATE_boolean, 1),
                                 ("char", DW_ATE_unsigned_char, 1)):
            types[tname] = len(cu)
            cu += uleb(BASE) + tname.encode() + b"\0" + bytes([enc, size])
        pointer = len(cu)
        cu += uleb(POINTER) + bytes([8]) + struct.pack("<I", types["char"])
        types["str"] = len(cu)
        cu += uleb(TYPEDEF) + b"str\0" + struct.pack("<I", pointer)
        self.types = types
        self.info_region = Region(len(cu), len(cu), [])
        self._write(".debug_info", 0, bytes(cu))
        # .debug_line: header with the directory and the file (as entries 0 and 1); sequences
        # follow
        after = bytearray([1, 1, 1, (-5) & 0xFF, 14, 13]) + LINE_OPCODE_LENGTHS
        after += bytes([1]) + uleb(DW_LNCT_path) + uleb(DW_FORM_line_strp)
        after += uleb(1)
        self.line_dir_at = 12 + len(after)
        after += struct.pack("<I", line_str)
        after += bytes([2]) + uleb(DW_LNCT_path) + uleb(DW_FORM_line_strp) \
            + uleb(DW_LNCT_directory_index) + uleb(DW_FORM_udata)
        after += uleb(2)
        self.line_file_at = []
        for _ in range(2):
            self.line_file_at.append(12 + len(after))
            after += struct.pack("<I", line_str + name_at) + uleb(0)
        header = struct.pack("<IHBBI", 0, 5, 8, 0, len(after)) + after
        self.line_region = Region(len(header), len(header), [])
        self._write(".debug_line", 0, header)
        if self.frames:
            # the one common entry, which every function's refers to
            i = self.info
            common = cie(i.cfa_code_align, i.cfa_data_align, i.cfa_ra_register, i.cfa_initial)
            self.frame_region = Region(len(common), len(common), [])
            self._write(".debug_frame", 0, common)
        self._finish_units()

    def _write(self, section: str, offset: int, data: bytes, size: int | None = None) -> None:
        """Write `data` at `offset` in Toy's part of `section`, which then holds `size`
        bytes (default: as many as it held, or up to the end of `data`)."""
        index = self.sections[section]
        sec = self.elf.sections[index]
        base = self.base(section)
        size = max(sec.shdr.size, base + offset + len(data)) if size is None else base + size
        self.elf.reserve(index, size)
        self.elf.write_nonalloc_part(index, base + offset, data, size)

    def _finish_units(self) -> None:
        """The unit lengths, the terminating null entry of the unit's DIEs."""
        end = self.info_region.end
        self._write(".debug_info", end, b"\0", end + 1)
        self._write(".debug_info", 0, struct.pack("<I", end + 1 - 4))
        end = self.line_region.end
        self._write(".debug_line", 0, struct.pack("<I", end - 4), end)
        if self.frames:  # (the section ends where its last entry does)
            self._write(".debug_frame", 0, b"", self.frame_region.end)

    def set_code_range(self, low: int, size: int) -> None:
        """The code section spans [low, low + size): the unit's range and .debug_aranges."""
        if (low, size) == self.code_range:
            return
        self.code_range = (low, size)
        low_at = INFO_HEADER + 1 + 4 + 2 + 4 + 4  # code, producer, language, name, comp_dir
        self._write(".debug_info", low_at, struct.pack("<QQ", low, size))
        # The address pairs start at a multiple of their size from the start of the section,
        # as readers (gdb, readelf) look for them there: after the linked objects' sets,
        # Toy's header is padded to that.
        pad = -(self.base(".debug_aranges") + 12) % 16
        aranges = struct.pack("<IHIBB", 8 + pad + 32, 2, self.base(".debug_info"), 8, 0) + \
            bytes(pad) + struct.pack("<QQQQ", low, size, 0, 0)
        self._write(".debug_aranges", 0, aranges)

    # ---- declarations -------------------------------------------------------------------------

    def note(self, name: str, code, line: int) -> None:
        """Declaration `name` was updated to `code` (a `toyc.code.Code` whose `debug` says
        what it is); its blocks are rewritten at the next flush if what they say changed.
        Without `debug`, `name` is a runtime helper (a lazy symbol) and `code.cfi` its call
        frame instructions: it gets a frame description entry and nothing else."""
        self.pending[name] = (code, line)

    def set_line(self, name: str, line: int) -> None:
        e = self.entries.get(name)
        if e is not None and e.decl_line != line:
            e.decl_line = line
            self.line_patches.add(name)

    def shift(self, first: int, delta: int) -> None:
        """Every line from `first` on moved by `delta`."""
        for name, e in self.entries.items():
            if e.decl_line >= first and e.kind != RUNTIME:
                e.decl_line += delta
                self.line_patches.add(name)

    def free(self, name: str) -> None:
        self.pending.pop(name, None)
        self.line_patches.discard(name)
        e = self.entries.pop(name, None)
        if e is None:
            return
        self._release(".debug_info", self.info_region, e.info, info_padding)
        self._release(".debug_line", self.line_region, e.line, line_padding)
        self._release(".debug_frame", self.frame_region, e.frame, frame_padding)

    def _release(self, section: str, region: Region, b: Block, pad) -> None:
        if not b.capacity:
            return
        if b.offset + b.capacity != region.end:
            self._write(section, b.offset, pad(b.capacity))
        region.release(b.offset, b.capacity)

    def flush(self, address_of, size_of) -> tuple[set[str], set[str]]:
        """Write what changed: `address_of(name)` and `size_of(name)` give a declaration's
        address and size as the linker placed them. Returns the declarations whose blocks
        were rewritten, and those whose line numbers alone were patched."""
        changed = set()
        for name, (code, line) in sorted(self.pending.items()):
            debug, rows, scopes = code.debug, code.rows, code.scopes
            slots, regs = code.frame_slots, code.local_regs
            e = self.entries.get(name)
            if e is None:
                e = self.entries[name] = Entry(Block(), Block())
            if debug is None:  # a runtime helper: its frame description alone, not reported
                e.kind = RUNTIME
                self._put_frame(e, code.cfi, address_of(name), size_of(name))
                continue
            e.decl_line, e.kind = line, debug.kind
            self.line_patches.discard(name)
            address, size = address_of(name), size_of(name)
            # (array types are DIEs of the block, referred to by offset in the section)
            placed = any(t is not None and t.is_array
                         for t in [debug.ty, *(v.ty for v in debug.vars)])
            if self._put(".debug_info", self.info_region, e.info, info_padding,
                         lambda base, d=debug, a=address, n=size, s=slots, r=regs, c=scopes,
                         ln=line: self._info_block(base, d, a, n, s, r, c, ln), placed):
                changed.add(name)
            if debug.kind == "fn" and self._put(
                    ".debug_line", self.line_region, e.line, line_padding,
                    lambda base, a=address, n=size, r=rows, ln=line:
                    self._line_block(a, n, r, ln), False):
                changed.add(name)
            elif debug.kind != "fn" and e.line.capacity:  # a function became a global
                self._release(".debug_line", self.line_region, e.line, line_padding)
                e.line = Block()
                changed.add(name)
            if self._put_frame(e, code.cfi if debug.kind == "fn" else b"", address, size):
                changed.add(name)
        self.pending.clear()
        patched = set(self.line_patches)
        # An edit above thousands of declarations patches each one's two fields, in place
        # (the sections do not change size).
        info_at = self.elf.sections[self.sections[".debug_info"]].shdr.offset + \
            self.base(".debug_info")
        line_at = self.elf.sections[self.sections[".debug_line"]].shdr.offset + \
            self.base(".debug_line")
        patches = []
        for name in self.line_patches:
            e = self.entries[name]
            patches.append((info_at + e.info.offset + e.info.line_at,
                            struct.pack("<I", e.decl_line)))
            if e.line.capacity:
                patches.append((line_at + e.line.offset + e.line.line_at,
                                line_operand(e.decl_line - 1)))
            # (the digests still describe the old lines: the next change rewrites the block)
            e.info.digest = e.line.digest = ""
        self.elf.pwrite_many(patches)
        self.line_patches.clear()
        self._finish_units()
        return changed, patched

    def _put_frame(self, e: Entry, cfi: bytes, address: int, size: int) -> bool:
        """(Re)write `e`'s frame description entry for the code at `address` (`size` bytes)
        with the call frame instructions `cfi`, or release it when there are none. Whether it
        changed."""
        if cfi and self.frames:
            return self._put(".debug_frame", self.frame_region, e.frame, frame_padding,
                             lambda base: self._frame_block(address, size, cfi), False,
                             fill_frame, MIN_FRAME_ENTRY)
        if not e.frame.capacity:
            return False
        self._release(".debug_frame", self.frame_region, e.frame, frame_padding)
        e.frame = Block()
        return True

    def _put(self, section: str, region: Region, b: Block, pad, make, placed: bool,
             fill=None, min_size: int = 1) -> bool:
        """(Re)write block `b` with `make(offset)`'s bytes, in place if they fit (`placed`:
        they depend on the offset). `fill(data, capacity)` stretches the bytes over the
        block's room (default: `pad` after them); no block or free chunk is smaller than
        `min_size`. Whether they differed."""
        data, line_at, addrs = make(b.offset)
        digest = hashlib.blake2b(data, digest_size=12).hexdigest()
        if digest == b.digest and b.capacity:
            return False
        if len(data) > b.capacity:
            self._release(section, region, b, pad)
            capacity = pad_to_ideal(len(data))
            if min_size > 1:  # whole words, as .debug_frame's entries are
                capacity = max(min_size, (capacity + 7) & ~7)
            b.offset, b.capacity, rest = region.allocate(capacity, min_size)
            if rest is not None:  # what was one padding entry is now two
                self._write(section, rest[0], pad(rest[1]))
            if placed:
                data, line_at, addrs = make(b.offset)
                digest = hashlib.blake2b(data, digest_size=12).hexdigest()
        if fill is None:
            self._write(section, b.offset, data + pad(b.capacity - len(data)))
        else:
            self._write(section, b.offset, fill(data, b.capacity))
        b.size, b.digest, b.line_at, b.addrs = len(data), digest, line_at, addrs
        return True

    def _type_ref(self, out: bytearray, base: int, ty: DebugType) -> int:
        """The offset of type `ty`'s DIE, appending an array type's DIEs to `out` (which will
        be written at `base`) when it needs one."""
        if not ty.is_array:
            return self.types[ty.name]
        elem = self._type_ref(out, base, ty.elem)
        at = base + len(out)
        out += uleb(ARRAY) + struct.pack("<I", elem)
        out += uleb(RANGE) + struct.pack("<Q", ty.length) + b"\0"
        return at

    def _info_block(self, base: int, d, address: int, size: int, slots: list[int],
                    regs: list[int], scopes: list[tuple[int, int]],
                    line: int) -> tuple[bytes, int, list]:
        """A declaration's DIEs, to be written at `base`; where its line field is, and
        where it holds addresses."""
        out = bytearray()
        name = d.name.encode() + b"\0"
        if d.kind != "fn":
            ty = self._type_ref(out, base, d.ty)
            out += uleb(NO_LOCATION if d.kind == "threadlocal" else GLOBAL) + name + bytes([1])
            line_at = len(out)
            out += struct.pack("<IHBI", line, d.col, d.external, ty)
            if d.kind == "threadlocal":
                return bytes(out), line_at, []
            out += uleb(9) + bytes([DW_OP_addr])
            addrs = [[len(out), 0]]
            out += struct.pack("<Q", address)
            return bytes(out), line_at, addrs
        types = [self._type_ref(out, base, v.ty) for v in d.vars]
        result = self._type_ref(out, base, d.ty) if d.ty is not None else None
        out += uleb(VOID_FUNC if result is None else FUNC) + name + bytes([1])
        line_at = len(out)
        fp = self.info.dwarf_fp
        frame_base = bytes([DW_OP_breg0 + fp, 0]) if 0 <= fp < 32 else b""
        out += struct.pack("<IHB", line, d.col, d.external)
        addrs = [[len(out), 0]]
        out += struct.pack("<QI", address, size)
        out += uleb(len(frame_base)) + frame_base
        if result is not None:
            out += struct.pack("<I", result)
        # Locals go in the block they are declared in, so that a name a nested block
        # shadows is the nested one there; without the blocks' code ranges, all in the
        # function.
        nested = len(scopes) == len(d.scopes)
        by_scope: dict[int, list] = {}
        for v, ty in zip(d.vars, types, strict=True):
            by_scope.setdefault(v.scope if nested else 0, []).append((v, ty))
        children: dict[int, list[int]] = {}
        for i, parent in enumerate(d.scopes if nested else []):
            children.setdefault(parent, []).append(i)
        used = set()  # the blocks with a local in them or below them
        for i in sorted(by_scope, reverse=True):
            while i >= 0 and i not in used:
                used.add(i)
                i = d.scopes[i] if nested else -1

        def scope(i: int) -> None:
            for v, ty in by_scope.get(i, []):
                out.extend(uleb(PARAM if v.param else LOCAL) + v.name.encode() + b"\0")
                out.extend(struct.pack("<I", ty))
                reg = regs[v.local] if v.local < len(regs) else -1
                if reg >= 0:
                    where = bytes([DW_OP_reg0 + reg]) if reg < 32 else \
                        bytes([DW_OP_regx]) + uleb(reg)
                else:
                    where = bytes([DW_OP_fbreg]) + sleb(-slots[v.local]) \
                        if frame_base and v.local < len(slots) else b""
                out.extend(uleb(len(where)) + where)
            for c in children.get(i, []):
                if c in used:
                    start, end = scopes[c]
                    out.extend(uleb(SCOPE))
                    addrs.append([len(out), start])
                    out.extend(struct.pack("<QI", address + start, end - start))
                    scope(c)
                    out.append(0)

        scope(0)
        out += b"\0"
        return bytes(out), line_at, addrs

    def _frame_block(self, address: int, size: int, cfi: bytes) -> tuple[bytes, int, list]:
        """A function's frame description entry: the common entry's offset (the first of
        Toy's part of the section), its code's address and size, its call frame instructions,
        in whole words."""
        body = struct.pack("<IQQ", self.base(".debug_frame"), address, size) + cfi
        body += bytes(-(len(body) + 4) % 8)
        return struct.pack("<I", len(body)) + body, -1, [[8, 0]]

    def _line_block(self, address: int, size: int, rows: list,
                    line: int) -> tuple[bytes, int, list]:
        out = bytearray([0, 9, DW_LNE_set_address]) + struct.pack("<Q", address)
        line_at = len(out) + 1
        out += bytes([DW_LNS_advance_line]) + line_operand(line - 1)
        pc, rel, col = 0, 0, 0
        for i, (offset, row_line, row_col) in enumerate(rows):
            if offset != pc:
                out += bytes([DW_LNS_advance_pc]) + uleb(offset - pc)
            if row_line != rel:
                out += bytes([DW_LNS_advance_line]) + sleb(row_line - rel)
            if row_col != col:
                out += bytes([DW_LNS_set_column]) + uleb(row_col)
            if i == 1:  # the first statement: where a breakpoint on the function goes
                out.append(DW_LNS_set_prologue_end)
            out.append(DW_LNS_copy)
            pc, rel, col = offset, row_line, row_col
        if size > pc:
            out += bytes([DW_LNS_advance_pc]) + uleb(size - pc)
        out += bytes([0, 1, DW_LNE_end_sequence])
        return bytes(out), line_at, [[3, 0]]

    def check_layout(self) -> None:
        """Raise ValueError if a debug section is not in the output, a block lies outside
        Toy's part of its section, or the linked objects' part is longer than the section (see
        ZigObject.check_layout)."""
        sizes = {}
        for name, index in self.sections.items():
            if not 0 < index < len(self.elf.sections) or \
                    self.elf.sections[index].shdr.name != name:
                raise ValueError(f"debug section {name} is not in the output")
            sizes[name] = self.elf.sections[index].shdr.size - self.base(name)
            if sizes[name] < 0:
                raise ValueError(f"the linked objects' part of {name} lies outside it")
        info, line = sizes[".debug_info"], sizes[".debug_line"]
        frame = sizes[".debug_frame"] if self.frames else 0
        for name, e in self.entries.items():
            for b, size in ((e.info, info), (e.line, line), (e.frame, frame)):
                if b.capacity and not 0 <= b.offset <= b.offset + b.capacity <= size:
                    raise ValueError(f"the debug info of {name} lies outside its section")

    # ---- an object's relocations --------------------------------------------------------------

    def relocations(self) -> dict[str, list[tuple[int, int, str, str, int]]]:
        """In an object, every field the system linker must fill: per debug section, (offset,
        size, "nav", "lazy" or "section", the declaration's, runtime helper's or section's
        name, addend). Offsets into other debug sections are relative to their start, addresses
        to the code section or a declaration's or helper's symbol."""
        assert not self.bases, "an object is linked with nothing: its debug info starts at 0"
        name_at = self.name_offset
        # (the unit's DIE: abbreviation code at 12, producer 13, language 17, name 19,
        # comp_dir 23, low_pc 27, high_pc 35, stmt_list 43)
        info = [(8, 4, "section", ".debug_abbrev", 0), (13, 4, "section", ".debug_str", 0),
                (19, 4, "section", ".debug_line_str", name_at),
                (23, 4, "section", ".debug_line_str", 0),
                (27, 8, "section", TEXT_SECTION, 0), (43, 4, "section", ".debug_line", 0)]
        line = [(self.line_dir_at, 4, "section", ".debug_line_str", 0)]
        line += [(at, 4, "section", ".debug_line_str", name_at) for at in self.line_file_at]
        for name, e in sorted(self.entries.items()):
            info += [(e.info.offset + at, 8, "nav", name, addend) for at, addend in e.info.addrs]
            line += [(e.line.offset + at, 8, "nav", name, addend) for at, addend in e.line.addrs]
        aranges = [(6, 4, "section", ".debug_info", 0), (16, 8, "section", TEXT_SECTION, 0)]
        out = {".debug_info": info, ".debug_line": line, ".debug_aranges": aranges}
        if self.frames:  # each entry's common entry, and its function's (or helper's) address
            out[".debug_frame"] = [
                r for name, e in sorted(self.entries.items()) if e.frame.capacity
                for r in ((e.frame.offset + 4, 4, "section", ".debug_frame", 0),
                          (e.frame.offset + 8, 8, "lazy" if e.kind == RUNTIME else "nav",
                           name, 0))]
        return out

    # ---- state --------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "sections": self.sections,
            "bases": self.bases,
            "entries": self._entry_rows(),
            "regions": [[r.start, r.end, r.free]
                        for r in (self.info_region, self.line_region, self.frame_region)],
            "types": [[name, off] for name, off in self.types.items()],
            "code_range": list(self.code_range),
            "header": [self.name_offset, self.line_dir_at, self.line_file_at],
        }

    def _entry_rows(self) -> list:
        """The entries' state rows, built again only for entries that changed."""
        items = list(self.entries.items())

        def row(i: int) -> list:
            n, e = items[i]
            return [n, _block(e.info), _block(e.line), e.decl_line, e.kind, _block(e.frame)]

        now = list(zip(self.entries, map(_ENTRY_FIELDS, self.entries.values()), strict=True))
        return self.entry_rows.update(now, row)

    @classmethod
    def from_state(cls, elf_file: ElfFile, arch_info, source_path: str, state: dict) -> Dwarf:
        d = cls(elf_file, arch_info, source_path)
        d.sections = dict(state["sections"])
        d.bases = dict(state["bases"])
        d.entries = {n: Entry(Block(*i), Block(*ln), decl_line, kind, Block(*frame))
                     for n, i, ln, decl_line, kind, frame in state["entries"]}
        if len(d.entries) != len(state["entries"]):
            raise ValueError("a declaration has two debug entries")
        d.entry_rows = Rows(list(state["entries"]), list(zip(
            d.entries, map(_ENTRY_FIELDS, d.entries.values()), strict=True)))
        d.info_region, d.line_region, d.frame_region = (
            Region(s, e, [list(f) for f in free]) for s, e, free in state["regions"])
        d.types = {n: off for n, off in state["types"]}
        d.code_range = tuple(state["code_range"])
        d.name_offset, d.line_dir_at, d.line_file_at = state["header"]
        return d


# What an entry's state row is built from: its own fields and its blocks'
_ENTRY_FIELDS = operator.attrgetter(*(f"{block}.{f}" for block in ("info", "line", "frame")
                                      for f in ("offset", "capacity", "size", "digest",
                                                "line_at", "addrs")), "decl_line", "kind")


def _block(b: Block) -> list:
    return [b.offset, b.capacity, b.size, b.digest, b.line_at, b.addrs]
