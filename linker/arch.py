"""The linker's contract with an architecture: the questions about the CPU it asks.

A code generator hands the linker code with symbolic relocations (`linker.code`); turning
addresses into bytes, writing the runtime helpers, jumping from a moved function's old address
and linking C's objects depend on the CPU, and `Architecture` is what the linker asks about
them. The compiler's architecture protocol (`toyc.arch.Architecture`, what plugins implement)
extends it with the compiler's own questions; the linker sees only these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from linker.code import (
    UNSUPPORTED,
    Applied,
    ArchInfo,
    Code,
    DynamicInfo,
    LazySymbol,
    Reloc,
    RelocInfo,
    RelocSite,
)

__all__ = ["Architecture"]


class Architecture(ABC):
    """One architecture as the linker sees it: its facts, `info`, and the answers to the
    linker's questions. The abstract methods are required; `relocation_info` and `relocate`
    are optional (by default the architecture links no input objects)."""

    info: ArchInfo
    """The architecture's facts: name, ELF machine, pointer size, page size, function
    alignment, trampoline size, byte order, where the stack pointer sits in ptrace's
    NT_PRSTATUS register set, the TLS variant with its thread control block size, and what
    debug info and the disassembler need (see `linker.code.ArchInfo`)."""

    @abstractmethod
    def lower_string(self, value: bytes) -> Code:
        """Lay out a string constant (`bytes`) as the bytes of its atom.

        Returns a `Code`. References to a string constant with addend 0 mean the atom's first
        byte; the architecture's code adds the offset of the string's first byte itself.
        """

    @abstractmethod
    def lower_lazy_symbol(self, name: str) -> LazySymbol | None:
        """Generate the runtime helper `name` (e.g. `_start`, or the print routine).

        Called by the linker the first time a relocation targets `Target("lazy", name)`.
        Returns a `LazySymbol` (its code and the section it goes in), or None if unknown.
        """

    @abstractmethod
    def apply_relocation(self, buf: bytearray, reloc: Reloc, place: int, target: int) -> None:
        """Patch one relocation into an atom's bytes.

        `buf` is a bytearray holding the atom, `reloc` a `Reloc`, `place` the address of the
        patched field and `target` the address of the relocation's target (without addend);
        for a reference to a thread-local, `target` is the variable's offset from the thread
        pointer instead, as the architecture's `tls_variant` places it (variant 2, x86_64's:
        the block ends at the thread pointer, so negative; variant 1, AArch64's: the block
        starts `tls_tcb_size` bytes after it). Raises `RelocationOverflow` when the value does
        not fit. The result is ignored.
        """

    @abstractmethod
    def trampoline(self, source: int, target: int) -> bytes:
        """Return the bytes of a jump, placed at address `source`, to address `target`.

        The linker writes one at the old address of a function that had to move, so that
        callers of the old address keep working. Its length is `info.trampoline_size`.
        """

    dynamic: DynamicInfo | None = None
    """What dynamically linked executables need of the CPU (`linker.code.DynamicInfo`), or
    None: the architecture links no shared libraries (optional)."""

    def plt_entry(self, place: int, slot: int) -> bytes:
        """The bytes of a call stub at address `place` that jumps to the address held in the
        GOT slot at address `slot` (`dynamic.plt_entry_size` bytes, padded). Asked only when
        `dynamic` is set."""
        raise NotImplementedError(f"{self.info.name} links no shared libraries")

    def relocation_info(self, type: int) -> RelocInfo:
        """What a relocation of `type` found in an input object (C code linked in) needs: a
        `RelocInfo` with its name and one of the `NEEDS_*` kinds (nothing, the target's
        address, a GOT slot, a thread-local's offset); needs `UNSUPPORTED` for a type the
        architecture cannot link, which the linker reports naming the object and section.

        Optional: by default every type is unsupported, and the architecture links no
        input objects.
        """
        return RelocInfo(f"type {type}", UNSUPPORTED)

    def relocate(self, buf: bytearray, site: RelocSite) -> Applied:
        """Apply one relocation of an input object's section to its bytes, `buf` (a
        bytearray).

        `site` is a `RelocSite`: the field's offset, the type, the addend and the values its
        formula may use (the place, the target's address or thread-pointer offset, the GOT
        and the target's GOT slot, ...). The architecture may rewrite the instructions around
        the field to relax the access (a GOT load into an address computation, a thread-local
        access into local exec), as its ABI allows in a static executable. Returns an
        `Applied`: the `Reloc` that writes the same field again for another target address
        (the linker keeps it when the target is a Toy declaration, which can move), and
        whether the next relocation was part of the sequence relaxed. Raises ValueError for
        an instruction sequence it cannot relax, `RelocationOverflow` for a value that does
        not fit.

        Optional: asked only for a type `relocation_info` supports, so an architecture
        without that question is never asked this one either.
        """
        raise NotImplementedError(f"{self.info.name} says it links relocation type "
                                  f"{site.type} but does not implement relocate")
