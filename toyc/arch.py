"""The architecture protocol: what an architecture plugin implements and registers.

A plugin subclasses `Architecture`, sets `info` and answers the questions, and registers an
instance through the `toyc_register_architectures` hook (`toyc.hookspecs`). The linker's
questions (laying out string constants and runtime helpers, applying relocations, trampolines,
linking C's objects) are the linker's contract, `linker.arch.Architecture`; this class adds
the compiler's, lowering checked declarations to code.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from linker.arch import Architecture as LinkerArchitecture
from toyc.code import Code

if TYPE_CHECKING:
    from toyc.ast import FnDecl, GlobalDecl
    from toyc.check import Program

__all__ = ["Architecture"]


class Architecture(LinkerArchitecture):
    """One architecture as a plugin provides it: `info` (a `toyc.code.ArchInfo`), the
    linker's questions (`lower_string`, `lower_lazy_symbol`, `apply_relocation`,
    `trampoline`, and optionally `relocation_info` and `relocate`: see
    `linker.arch.Architecture`) and the compiler's below.

    What a method raises (other than `RelocationOverflow`, which the linker reports) or
    returns of the wrong kind is reported as an error naming the plugin."""

    @abstractmethod
    def lower_function(self, fn: FnDecl, program: Program) -> Code:
        """Generate machine code for one checked function.

        `fn` is a `toyc.ast.FnDecl` whose nodes carry their types, `program` the
        `toyc.check.Program` it belongs to (its `source.path` names the file for panic
        messages). Returns a `toyc.code.Code`: the bytes, their alignment, and a relocation for
        every reference to another declaration, a string constant or a runtime helper. Nothing
        outside the function may be baked into the bytes. For debug info, the code may also say
        where each statement's code starts (`rows`), where each local lives (`frame_slots`) and
        each block's code range (`scopes`); `toyc.lowering.FunctionLowering` records all three.
        """

    @abstractmethod
    def lower_global(self, decl: GlobalDecl) -> Code:
        """Lay out the initial value of one checked global as the bytes of its atom.

        `decl` is a `toyc.ast.GlobalDecl` with `ty` and `value` set. Returns a
        `toyc.code.Code` (a `str` global is a pointer to its string constant, so it carries a
        relocation); `toyc.layout.lower_global` lays out the Toy ABI's values.
        """
