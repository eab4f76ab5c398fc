"""The x86_64 architecture plugin: System V AMD64 code generation, relocations, runtime.

Registered with toyc's plugin manager like any third-party plugin; every hook answers only when
asked for the architecture named "x86_64".
"""

from __future__ import annotations

from toyc import cfi, layout
from toyc.code import ArchInfo
from toyc.hookspecs import hookimpl

from . import codegen, link, relocs, runtime

NAME = "x86_64"
EM_X86_64 = 62

INFO = ArchInfo(
    name=NAME,
    elf_machine=EM_X86_64,
    ptr_size=8,
    page_size=0x1000,
    function_align=codegen.FUNCTION_ALIGN,
    trampoline_size=relocs.TRAMPOLINE_SIZE,
    sp_offset=19 * 8,  # struct user_regs_struct: r15 ... rip, cs, eflags, rsp
    dwarf_fp=6,  # rbp
    disassembler=("CS_ARCH_X86", "CS_MODE_64"),
    abs64_reloc=relocs.R_X86_64_64,
    abs32_reloc=relocs.R_X86_64_32,
    # at a call's target: the frame starts above the return address, which rip's column
    # (16) finds just below it
    cfa_ra_register=16,
    cfa_initial=cfi.def_cfa(7, 8) + cfi.offset(16, 1),
)


@hookimpl
def toyc_architectures():
    return [INFO]


@hookimpl
def toyc_lower_function(arch, fn, program):
    if arch == NAME:
        return codegen.lower_function(fn, program.source.path)


@hookimpl
def toyc_lower_global(arch, decl):
    if arch == NAME:
        return layout.lower_global(decl.ty, decl.value, relocs.R_X86_64_64)


@hookimpl
def toyc_lower_string(arch, value):
    if arch == NAME:
        return layout.lower_string(value)


@hookimpl
def toyc_lower_lazy_symbol(arch, name):
    if arch == NAME:
        return runtime.lower_lazy_symbol(name)


@hookimpl
def toyc_apply_relocation(arch, buf, reloc, place, target):
    if arch == NAME:
        relocs.apply(buf, reloc, place, target)
        return True


@hookimpl
def toyc_relocation_info(arch, type):
    if arch == NAME:
        return link.info(type)


@hookimpl
def toyc_relocate(arch, buf, site):
    if arch == NAME:
        return link.relocate(buf, site)


@hookimpl
def toyc_write_trampoline(arch, source, target):
    if arch == NAME:
        return relocs.trampoline(source, target)
