"""The linker's contract with code generators: the bytes an architecture hands to the linker,
their alignment and their relocations, and the facts about the architecture it needs.

A relocation names its `Target` symbolically: a declaration by name ("nav"), an unnamed
constant by value ("uav", e.g. the bytes of a string literal, stored once however often it is
used), a runtime helper by name ("lazy", created the first time something refers to it) or,
in a relocatable object only, a weak reference to a symbol the final link may or may not define
("weak": an undefined WEAK symbol, which the system linker resolves to 0 when nothing defines
it; the runtime's `OBJECT_SUFFIX` helpers use it to find the C library) or, in a dynamically
linked executable, a global name that a linked file defines, usually a shared library ("import":
the runtime's `DYNAMIC_SUFFIX` helpers call the C library's `exit` or `pthread_create` so). The
linker turns
targets into addresses; the architecture knows how to patch them into bytes
(`linker.arch.Architecture`, the questions the linker asks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Target", "nav", "uav", "lazy", "weak", "Reloc", "Code", "LINE_FIELD_SIZE", "LINE_SHIFTS",
    "TLS_INFO", "START_TLS", "CTORS_INFO", "CTORS_SUFFIX", "EXIT", "OBJECT_SUFFIX",
    "DYNAMIC_SUFFIX", "import_", "LazySymbol", "ArchInfo", "DynamicInfo",
    "RelocationOverflow", "NEEDS_NOTHING", "NEEDS_ADDRESS", "NEEDS_GOT_SLOT", "NEEDS_TLS",
    "UNSUPPORTED", "RelocInfo", "RelocSite", "Applied",
]


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # "nav", "uav", "lazy", "weak" or "import"
    key: str | bytes

    def describe(self) -> str:
        if self.kind == "uav":
            return f"constant {self.key[:20]!r}"
        return str(self.key)


def nav(name: str) -> Target:
    """A declaration, by name."""
    return Target("nav", name)


def uav(value: bytes) -> Target:
    """A string constant, by value."""
    return Target("uav", value)


def lazy(name: str) -> Target:
    """A runtime helper or runtime data, by name."""
    return Target("lazy", name)


def weak(name: str) -> Target:
    """A weak reference to `name` (in an object only): its address, or 0 when the final link
    does not define it."""
    return Target("weak", name)


def import_(name: str) -> Target:
    """The global `name` as the link resolves it (in a dynamically linked executable): a
    linked object's definition, a Toy export, or else a shared library's, imported."""
    return Target("import", name)


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
    # (offset, line relative to the declaration's first line) of each line field in `data`:
    # a 64-bit word (LINE_FIELD_SIZE bytes, the target's byte order) holding a source line in
    # its low 32 bits and, in its high 32 bits, the number of line shifts recorded when it was
    # written (see LINE_SHIFTS). The linker writes these, so that code which only moved to
    # other lines is not regenerated.
    line_fields: list[tuple[int, int]] = field(default_factory=list)
    # For debug info, all optional. `rows`: (offset, line relative to the declaration's first
    # line, column) where the code of each statement starts, in address order: the function's
    # line table. `frame_slots`: where each of the function's locals (`FnDecl.locals` order)
    # lives, as its lowest byte's distance below the frame pointer (`ArchInfo.dwarf_fp`).
    rows: list[tuple[int, int, int]] = field(default_factory=list)
    frame_slots: list[int] = field(default_factory=list)
    # `local_regs`: per local, the DWARF number of the register it lives in for the whole
    # function, or -1 where it lives in its frame slot (empty: every local in its slot).
    local_regs: list[int] = field(default_factory=list)
    # `scopes`: the code range [start, end) of each block of the function, the body first, in
    # the order the blocks appear in the source (`toyc.debuginfo` numbers them the same way).
    scopes: list[tuple[int, int]] = field(default_factory=list)
    # `cfi`: the call frame instructions of the function (`toyc.cfi`), after those of the
    # architecture's common entry (`ArchInfo.cfa_initial`); empty: none.
    cfi: bytes = b""
    # The declaration as debug info describes it (`linker.dwarf.DebugDecl`, built by
    # `toyc.debuginfo`); the driver sets it, not the architecture.
    debug: object | None = None

    @property
    def length(self) -> int:
        return len(self.data) if self.size < 0 else self.size


LINE_FIELD_SIZE = 8
# The lazy data symbol that records line shifts: a u32 count N, then N entries of (u32 first
# line, i32 delta), each saying "from this line on (numbered as before this shift), lines moved
# by delta". A line field written after k shifts is turned into today's line by applying
# entries k..N-1 in order; the runtime does this when it reports a panic.
LINE_SHIFTS = "toy.rt.line_shifts"
# The lazy data symbol holding what the runtime needs to set up a thread's TLS block: three
# 64-bit words, the TLS image's address, its size in the file, and the size of a thread's
# block (the image, the zero-filled rest, aligned). The linker writes it.
TLS_INFO = "toy.rt.tls_info"
# What the architecture calls the entry point of a program with thread-locals (it sets up the
# main thread's TLS block first); the linker names it `_start` too.
START_TLS = "_start.tls"
# The lazy data symbol holding the bounds of the constructor and destructor arrays of the
# objects linked in: four words, `.init_array`'s start and end, then `.fini_array`'s (all zero
# without). The linker writes it. With constructors or destructors, the entry point is the
# architecture's `_start.ctors` (or, with thread-locals too, `_start.tls.ctors`): it runs the
# constructors (`toy.rt.init`) before `main`, and ends through EXIT, which runs the
# destructors, last first, and exits; Toy's `exit` calls EXIT too.
CTORS_INFO = "toy.rt.ctors"
CTORS_SUFFIX = ".ctors"
EXIT = "toy.rt.exit"
# In a relocatable object the linker asks the architecture for runtime helper NAME as
# NAME + OBJECT_SUFFIX first (still naming it NAME), and takes NAME's ordinary code when there
# is no such variant. An object may end up in a program with a C library (linked by gcc) or
# without one (`-nostdlib`), so its variants find C's functions (`pthread_create`, `exit`) by
# weak references at run time and fall back to the raw system calls of toyc's executables.
OBJECT_SUFFIX = ".object"
# In a dynamically linked executable (one that links a shared C library) the linker asks for
# NAME + DYNAMIC_SUFFIX first, the same way: the C library is there, initialised by its own
# start-up, so the entry point hands `main` to `__libc_start_main`, and threads, exit and output
# go through the C library (`pthread_create`, `exit`, stdio flushed before Toy writes), by
# `import_` targets. The entry point is asked for as ENTRY + DYNAMIC_SUFFIX.
DYNAMIC_SUFFIX = ".dynamic"


@dataclass(slots=True)
class LazySymbol:
    """A runtime helper generated on first use, and where it goes."""

    code: Code
    section: str  # "text", "rodata", "data" or "bss"
    kind: str = "func"  # "func" or "object"
    binding: str = "local"  # "local" or "global"
    listed: bool = True  # whether it has a .symtab row


@dataclass(frozen=True, slots=True)
class ArchInfo:
    name: str
    elf_machine: int
    ptr_size: int
    page_size: int
    function_align: int
    trampoline_size: int
    byteorder: str = "little"  # of line fields, the line shift table and registers
    # where the stack pointer is in the NT_PRSTATUS register set that ptrace returns (for hot
    # swap, which scans each thread's stack for code addresses)
    sp_offset: int = 0
    # Where thread-locals sit relative to the thread pointer: variant 2 (x86_64), the TLS block
    # ends at the thread pointer; variant 1 (AArch64), it starts `tls_tcb_size` bytes after it.
    tls_variant: int = 2
    tls_tcb_size: int = 0
    # DWARF: the frame pointer's register number (locals are found from it) and the
    # relocation types that put a 64-bit and a 32-bit absolute value into debug sections of
    # an object; -1 where the architecture describes no locations or objects' debug info
    dwarf_fp: int = -1
    abs64_reloc: int = -1
    abs32_reloc: int = -1
    # Call frame information (`.debug_frame`, see `toyc.cfi`) for functions whose code has
    # some: the code and data alignment factors, the DWARF number of the return address
    # column, and the instructions that hold at a function's first byte; -1: none
    cfa_code_align: int = 1
    cfa_data_align: int = -8
    cfa_ra_register: int = -1
    cfa_initial: bytes = b""
    # how capstone disassembles the code (`toyc inspect --disasm`): the names of its
    # architecture and mode constants, e.g. ("CS_ARCH_X86", "CS_MODE_64"); empty: it cannot
    disassembler: tuple[str, ...] = ()
    # the BFD name of the ELF format, as a GNU ld script's OUTPUT_FORMAT names it
    # ("elf64-x86-64"); empty: any
    bfd_name: str = ""


@dataclass(frozen=True, slots=True)
class DynamicInfo:
    """What an architecture says of dynamically linked executables (`Architecture.dynamic`):
    the dynamic loader's path (PT_INTERP), the dynamic relocation types the linker writes
    (`COPY`, `GLOB_DAT`, `JUMP_SLOT`), the relocation types of a call (a call of a library
    function goes to its stub; any other reference to one takes the stub as the function's
    address), and the size of a call stub (`Architecture.plt_entry`)."""

    interpreter: str
    copy_reloc: int
    glob_dat_reloc: int
    jump_slot_reloc: int
    call_relocs: tuple[int, ...]
    plt_entry_size: int = 16


class RelocationOverflow(Exception):
    """A relocated value does not fit its field."""


# ---- relocations of input objects (C code linked in) -------------------------------------------
#
# The linker reads every relocation of an input object, asks the architecture what it needs
# (`RelocInfo`), gives it the values it needs (`RelocSite`) and lets it write the field, relaxing
# the instruction around it where it can (`Applied`). What depends on a target that can move
# (a Toy declaration; a thread-local, whose offset follows the TLS layout) the architecture
# describes as an ordinary `Reloc`, which the linker keeps and re-applies when the target moves.

# What a relocation type needs of the linker (`RelocInfo.needs`)
NEEDS_NOTHING = "none"  # nothing to write (R_X86_64_NONE)
NEEDS_ADDRESS = "address"  # the target's address, and perhaps the GOT's
NEEDS_GOT_SLOT = "got"  # a GOT slot holding the target's address
NEEDS_TLS = "tls"  # the target is a thread-local (its offset from the thread pointer)
UNSUPPORTED = "unsupported"  # the architecture cannot link it


@dataclass(frozen=True, slots=True)
class RelocInfo:
    name: str  # as the ELF psABI names it, for messages: "R_X86_64_GOTPCRELX"
    needs: str  # one of the NEEDS_* above


@dataclass(slots=True)
class RelocSite:
    """One relocation of an input section, with the values its formula may use."""

    offset: int  # of the field in the section's bytes
    type: int
    addend: int  # A
    place: int  # P: the field's address (in a section not loaded: its offset in the section)
    target: int  # S: the target's address; a thread-local's offset from the thread pointer
    got: int = 0  # GOT: the global offset table's address
    got_slot: int = 0  # G + GOT: the address of the target's GOT slot, 0 if it has none
    size: int = 0  # Z: the target symbol's size
    loaded: bool = True  # whether the section is loaded (code and data, not debug info)
    tls_offset: int = 0  # a thread-local's offset in the TLS image (for debug info)
    # the target is a shared library's (imported): its GOT slot is filled at load time, so a
    # GOT access must stay one (not be relaxed into a direct reference)
    imported: bool = False


@dataclass(slots=True)
class Applied:
    """What applying a `RelocSite` did: `remember`, the relocation (of a type
    `Architecture.apply_relocation` knows, at an offset in the same bytes, with its addend) that
    writes the same field again for another target address, or None when the field does not
    depend on it; `skip_next`: the next relocation belonged to a sequence this one relaxed."""

    remember: Reloc | None = None
    skip_next: bool = False
