"""toyc's AArch64 (ARM64) Linux backend, a plugin like any other.

Installed as its own distribution, it registers itself in the `toyc` entry-point group and,
through toyc's `toyc_register_architectures` hook, registers one architecture, `AArch64`, named
"aarch64", which answers toyc's questions about the CPU (`toyc.arch.Architecture`): code
generation following AAPCS64, AArch64 relocations, a `b` trampoline, and a runtime of raw Linux
system calls with thread-locals behind TPIDR_EL0 (TLS variant 1). It links no C objects, so it
leaves `relocation_info` and `relocate` to the protocol's defaults.
"""

from __future__ import annotations

from toyc import cfi, layout
from toyc.arch import Architecture
from toyc.code import ArchInfo
from toyc.hookspecs import hookimpl

from . import assembler, codegen, relocs, runtime

NAME = "aarch64"
EM_AARCH64 = 183

INFO = ArchInfo(
    name=NAME,
    elf_machine=EM_AARCH64,
    ptr_size=8,
    # The largest page size an AArch64 Linux kernel uses: segments aligned to it load on 4 KiB,
    # 16 KiB and 64 KiB kernels alike.
    page_size=0x10000,
    function_align=codegen.FUNCTION_ALIGN,
    trampoline_size=relocs.TRAMPOLINE_SIZE,
    sp_offset=31 * 8,  # struct user_pt_regs: x0 ... x30, sp, pc, pstate
    tls_variant=1,
    tls_tcb_size=16,  # TPIDR_EL0 points at 16 reserved bytes; the TLS block follows them
    dwarf_fp=29,  # x29
    disassembler=("CS_ARCH_ARM64", "CS_MODE_ARM"),
    bfd_name="elf64-littleaarch64",
    abs64_reloc=relocs.R_AARCH64_ABS64,
    abs32_reloc=relocs.R_AARCH64_ABS32,
    # Call frame information only for the runtime's entry points (`runtime`), which say that
    # their frames are the outermost; Toy functions have none (gdb finds them from x29). At a
    # call's target the frame is sp, and the return address is in x30 (the column).
    cfa_code_align=assembler.CODE_ALIGN,
    cfa_ra_register=30,
    cfa_initial=cfi.def_cfa(31, 0),
)


class AArch64(Architecture):
    info = INFO

    def lower_function(self, fn, program):
        return codegen.lower_function(fn, program.source.path, program)

    def lower_global(self, decl):
        return layout.lower_global(decl.ty, decl.value, relocs.R_AARCH64_ABS64)

    def lower_string(self, value):
        return layout.lower_string(value)

    def lower_lazy_symbol(self, name):
        return runtime.lower_lazy_symbol(name)

    def apply_relocation(self, buf, reloc, place, target):
        relocs.apply(buf, reloc, place, target)

    def trampoline(self, source, target):
        return relocs.trampoline(source, target)


@hookimpl
def toyc_register_architectures(register):
    register(AArch64())
