"""The x86_64 architecture plugin: System V AMD64 code generation, relocations, runtime.

Registered with toyc's plugin manager like any third-party plugin; it registers one
architecture, `X86_64`, named "x86_64", which answers toyc's questions about the CPU
(`toyc.arch.Architecture`) from the modules beside it.
"""

from __future__ import annotations

from toyc import cfi, layout
from toyc.arch import Architecture
from toyc.code import ArchInfo, DynamicInfo
from toyc.hookspecs import hookimpl

from . import codegen, relocs, runtime

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
    bfd_name="elf64-x86-64",
    abs64_reloc=relocs.R_X86_64_64,
    abs32_reloc=relocs.R_X86_64_32,
    # at a call's target: the frame starts above the return address, which rip's column
    # (16) finds just below it
    cfa_ra_register=16,
    cfa_initial=cfi.def_cfa(7, 8) + cfi.offset(16, 1),
)

DYNAMIC = DynamicInfo(
    interpreter="/lib64/ld-linux-x86-64.so.2",  # the psABI's path, the same on every distribution
    copy_reloc=relocs.R_X86_64_COPY,
    glob_dat_reloc=relocs.R_X86_64_GLOB_DAT,
    jump_slot_reloc=relocs.R_X86_64_JUMP_SLOT,
    call_relocs=(relocs.R_X86_64_PLT32,),
    plt_entry_size=relocs.PLT_ENTRY_SIZE,
)


class X86_64(Architecture):
    info = INFO
    dynamic = DYNAMIC

    def lower_function(self, fn, program):
        return codegen.lower_function(fn, program.source.path, program)

    def lower_global(self, decl):
        return layout.lower_global(decl.ty, decl.value, relocs.R_X86_64_64)

    def lower_string(self, value):
        return layout.lower_string(value)

    def lower_lazy_symbol(self, name):
        return runtime.lower_lazy_symbol(name)

    def apply_relocation(self, buf, reloc, place, target):
        relocs.apply(buf, reloc, place, target)

    def relocation_info(self, type):
        from . import link  # (only a link with C objects asks: it reads pyelftools' tables)

        return link.info(type)

    def relocate(self, buf, site):
        from . import link

        return link.relocate(buf, site)

    def trampoline(self, source, target):
        return relocs.trampoline(source, target)

    def plt_entry(self, place, slot):
        return relocs.plt_entry(place, slot)


@hookimpl
def toyc_register_architectures(register):
    register(X86_64())
