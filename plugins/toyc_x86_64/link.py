"""x86_64 relocations of input objects (C code linked into a Toy executable).

What each relocation type that gcc, clang and tcc emit for ordinary C needs (`info`), and how
to apply it in a static, non-PIE executable whose every address is below 2 GiB (`relocate`):

- Direct references (`64`, `PC32`, `PLT32`, `32`, `32S`, `PC64`, 8- and 16-bit ones) are
  written as they are; a call through the PLT is a direct call, as nothing is dynamic.
- GOT references: `mov reg, [rip + x@GOTPCREL]` marked relaxable (`GOTPCRELX`,
  `REX_GOTPCRELX`) becomes `lea reg, [rip + x]`, `call`/`jmp *[rip + x@GOTPCREL]` a direct
  call or jump; anything else reads the target's GOT slot, which the linker fills. A shared
  library's symbol (`RelocSite.imported`) keeps its GOT access: the dynamic loader fills the
  slot.
- Thread-locals are relaxed to local exec, as GNU ld and mold do in an executable: the
  general and local dynamic sequences (`TLSGD`, `TLSLD` with the call of `__tls_get_addr`
  after them, and the descriptor dialect's `GOTPC32_TLSDESC`/`TLSDESC_CALL`) and initial exec
  (`GOTTPOFF`) become a read of `%fs:0` and the variable's offset from the thread pointer.

A field that depends on where its target is comes back as a `Reloc` of `relocs.apply`'s kinds
(`Applied.remember`), so the linker can write it again when a Toy declaration moves.
"""

from __future__ import annotations

from elftools.elf.enums import ENUM_RELOC_TYPE_x64

from toyc.code import (
    NEEDS_ADDRESS,
    NEEDS_GOT_SLOT,
    NEEDS_NOTHING,
    NEEDS_TLS,
    UNSUPPORTED,
    Applied,
    Reloc,
    RelocInfo,
    RelocSite,
)

from . import relocs as R

NAMES = {v: k for k, v in ENUM_RELOC_TYPE_x64.items() if isinstance(v, int)}
NONE = 0
GOT32, GOTPCREL, DTPMOD64, DTPOFF64, TLSGD, TLSLD, DTPOFF32, GOTTPOFF = 3, 9, 16, 17, 19, 20, \
    21, 22
GOTOFF64, GOTPC32, GOT64, GOTPCREL64, GOTPC64, GOTPLT64, PLTOFF64 = 25, 26, 27, 28, 29, 30, 31
SIZE32, SIZE64, GOTPC32_TLSDESC, TLSDESC_CALL = 32, 33, 34, 35
GOTPCRELX, REX_GOTPCRELX = 41, 42

_DIRECT = (R.R_X86_64_64, R.R_X86_64_PC32, R.R_X86_64_PLT32, R.R_X86_64_32, R.R_X86_64_32S,
           R.R_X86_64_PC64, R.R_X86_64_16, R.R_X86_64_PC16, R.R_X86_64_8, R.R_X86_64_PC8)
_NEEDS = {NONE: NEEDS_NOTHING, **{t: NEEDS_ADDRESS for t in _DIRECT},
          SIZE32: NEEDS_ADDRESS, SIZE64: NEEDS_ADDRESS, GOTOFF64: NEEDS_ADDRESS,
          GOTPC32: NEEDS_ADDRESS, GOTPC64: NEEDS_ADDRESS, PLTOFF64: NEEDS_ADDRESS,
          GOTPCREL: NEEDS_GOT_SLOT, GOTPCRELX: NEEDS_GOT_SLOT, REX_GOTPCRELX: NEEDS_GOT_SLOT,
          GOT32: NEEDS_GOT_SLOT, GOT64: NEEDS_GOT_SLOT, GOTPCREL64: NEEDS_GOT_SLOT,
          GOTPLT64: NEEDS_GOT_SLOT,
          R.R_X86_64_TPOFF32: NEEDS_TLS, R.R_X86_64_TPOFF64: NEEDS_TLS, GOTTPOFF: NEEDS_TLS,
          TLSGD: NEEDS_TLS, TLSLD: NEEDS_TLS, DTPOFF32: NEEDS_TLS, DTPOFF64: NEEDS_TLS,
          GOTPC32_TLSDESC: NEEDS_TLS, TLSDESC_CALL: NEEDS_TLS}
# `mov rax, qword ptr fs:[0]` then `lea rax, [rax + imm32]`: general dynamic, relaxed
_GD_TO_LE = bytes.fromhex("64488b0425000000" "00488d80")
# three data16 prefixes and `mov rax, qword ptr fs:[0]`: local dynamic, relaxed
_LD_TO_LE = bytes.fromhex("666666644" "88b042500000000")


def info(rtype: int) -> RelocInfo:
    name = NAMES.get(rtype, f"type {rtype}")
    return RelocInfo(name, _NEEDS.get(rtype, UNSUPPORTED))


class Unrelaxable(ValueError):
    """A thread-local access whose instructions are not the sequence the ABI prescribes."""


def relocate(buf: bytearray, site: RelocSite) -> Applied:
    t, off, a, p, s = site.type, site.offset, site.addend, site.place, site.target
    if t == NONE or t == TLSDESC_CALL and _relax_tlsdesc_call(buf, off):
        return Applied()
    if t in _DIRECT:
        return _direct(buf, site, Reloc(off, t, None, a))
    if t in (GOTPCRELX, REX_GOTPCRELX) and not site.imported and _fits32(s + a - p):
        if _relax_got_load(buf, off, t == REX_GOTPCRELX):
            return _direct(buf, site, Reloc(off, R.R_X86_64_PC32, None, a))
    if t in (GOTPCREL, GOTPCRELX, REX_GOTPCRELX):
        R.write(buf, off, site.got_slot + a - p, 32, True)
    elif t == GOTPCREL64:
        R.write(buf, off, site.got_slot + a - p, 64, False)
    elif t in (GOT32, GOT64, GOTPLT64):
        R.write(buf, off, site.got_slot - site.got + a, 32 if t == GOT32 else 64, True)
    elif t in (GOTOFF64, PLTOFF64):
        return _direct(buf, site, Reloc(off, R.R_X86_64_64, None, a - site.got))
    elif t in (GOTPC32, GOTPC64):
        R.write(buf, off, site.got + a - p, 32 if t == GOTPC32 else 64, True)
    elif t in (SIZE32, SIZE64):
        R.write(buf, off, site.size + a, 32 if t == SIZE32 else 64, False)
    elif t in (R.R_X86_64_TPOFF32, R.R_X86_64_TPOFF64):
        return _direct(buf, site, Reloc(off, t, None, a))
    elif t in (DTPOFF32, DTPOFF64):
        if not site.loaded:  # debug info: the offset in the thread-local block
            R.write(buf, off, site.tls_offset + a, 32 if t == DTPOFF32 else 64, False)
            return Applied()
        # code after a local dynamic sequence, which now starts from the thread pointer
        kind = R.R_X86_64_TPOFF32 if t == DTPOFF32 else R.R_X86_64_TPOFF64
        return _direct(buf, site, Reloc(off, kind, None, a))
    elif t == GOTTPOFF:
        _relax_gottpoff(buf, off)
        return _direct(buf, site, Reloc(off, R.R_X86_64_TPOFF32, None, a + 4))
    elif t == GOTPC32_TLSDESC:
        _relax_tlsdesc(buf, off)
        return _direct(buf, site, Reloc(off, R.R_X86_64_TPOFF32, None, a + 4))
    elif t == TLSGD:
        _relax_gd(buf, off)
        return _direct(buf, site, Reloc(off + 8, R.R_X86_64_TPOFF32, None, a + 4), True)
    elif t == TLSLD:
        _relax_ld(buf, off)
        return Applied(skip_next=True)
    elif t == TLSDESC_CALL:
        raise Unrelaxable("the TLS descriptor call is not `call *(%rax)`")
    else:
        raise ValueError(f"relocation {info(t).name} is not supported")
    return Applied()


def _direct(buf: bytearray, site: RelocSite, r: Reloc, skip_next: bool = False) -> Applied:
    R.apply(buf, r, site.place + r.offset - site.offset, site.target)
    return Applied(r, skip_next)


def _fits32(value: int) -> bool:
    return -(1 << 31) <= value < (1 << 31)


def _relax_got_load(buf: bytearray, off: int, rex: bool) -> bool:
    """Rewrite a load from a GOT slot into a direct reference if it is one of the forms
    that allow it (the field stays where it is); whether it was."""
    if off < 2:
        return False
    op, modrm = buf[off - 2], buf[off - 1]
    if op == 0x8B and modrm & 0xC7 == 0x05:  # mov reg, [rip + x] -> lea reg, [rip + x]
        buf[off - 2] = 0x8D
        return True
    if not rex and op == 0xFF and modrm in (0x15, 0x25):
        # call [rip + x] -> addr32 call x; jmp [rip + x] -> nop; jmp x
        buf[off - 2 : off] = b"\x67\xe8" if modrm == 0x15 else b"\x90\xe9"
        return True
    return False


def _relax_gottpoff(buf: bytearray, off: int) -> None:
    """`mov reg, [rip + x@gottpoff]` -> `mov reg, imm32`; `add reg, [rip + ...]` ->
    `add reg, imm32` (the REX prefix's R bit, for r8-r15, becomes its B bit)."""
    if off < 3:
        raise Unrelaxable("GOTTPOFF at the start of a section")
    rex, op, modrm = buf[off - 3], buf[off - 2], buf[off - 1]
    if rex & 0xF0 != 0x40 or modrm & 0xC7 != 0x05 or op not in (0x8B, 0x03):
        raise Unrelaxable("GOTTPOFF is not on a `mov` or `add` from memory")
    reg = (modrm >> 3) & 7
    buf[off - 3] = 0x48 | (1 if rex & 0x04 else 0)
    buf[off - 2] = 0xC7 if op == 0x8B else 0x81
    buf[off - 1] = 0xC0 | reg


def _relax_tlsdesc(buf: bytearray, off: int) -> None:
    """`lea rax, [rip + x@tlsdesc]` -> `mov rax, imm32`."""
    if off < 3 or bytes(buf[off - 3 : off]) != b"\x48\x8d\x05":
        raise Unrelaxable("GOTPC32_TLSDESC is not on `lea rax, [rip + x]`")
    buf[off - 3 : off] = b"\x48\xc7\xc0"


def _relax_tlsdesc_call(buf: bytearray, off: int) -> bool:
    """`call qword ptr [rax]` -> a two-byte nop."""
    if bytes(buf[off : off + 2]) != b"\xff\x10":
        return False
    buf[off : off + 2] = b"\x66\x90"
    return True


def _relax_gd(buf: bytearray, off: int) -> None:
    """`data16 lea rdi, [rip + x@tlsgd]; data16 data16 rex.w call __tls_get_addr` (or its
    `call [rip + __tls_get_addr@GOTPCREL]` form, as long) -> `mov rax, fs:[0];
    lea rax, [rax + x@tpoff]`: the field moves to the end of the 16 bytes."""
    head = bytes(buf[off - 4 : off]) if off >= 4 else b""
    tail = bytes(buf[off + 4 : off + 8])
    if head != b"\x66\x48\x8d\x3d" or tail not in (b"\x66\x66\x48\xe8", b"\x66\x48\xff\x15"):
        raise Unrelaxable("TLSGD is not the general dynamic sequence")
    buf[off - 4 : off + 8] = _GD_TO_LE


def _relax_ld(buf: bytearray, off: int) -> None:
    """`lea rdi, [rip + x@tlsld]; call __tls_get_addr` -> `mov rax, fs:[0]`, padded with
    prefixes (and a nop, for the 13-byte `call [rip + ...]` form)."""
    head = bytes(buf[off - 3 : off]) if off >= 3 else b""
    if head != b"\x48\x8d\x3d":
        raise Unrelaxable("TLSLD is not the local dynamic sequence")
    if buf[off + 4] == 0xE8:
        buf[off - 3 : off + 9] = _LD_TO_LE
    elif bytes(buf[off + 4 : off + 6]) == b"\xff\x15":
        buf[off - 3 : off + 10] = _LD_TO_LE + b"\x90"
    else:
        raise Unrelaxable("TLSLD is not followed by a call of __tls_get_addr")

