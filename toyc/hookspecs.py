"""The hooks through which toyc reaches its plugins.

An architecture plugin answers every `toyc_*` hook that takes an `arch` argument when that
argument is its own name, and returns None otherwise, so that several architectures can be
installed at once. The built-in x86_64 backend (`toyc_x86_64`) is such a plugin.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("toyc")
hookimpl = pluggy.HookimplMarker("toyc")


@hookspec
def toyc_architectures():
    """List the architectures this plugin provides.

    Called once when toyc starts. Returns a list of `toyc.code.ArchInfo` (name, ELF machine,
    pointer size, page size, function alignment, trampoline size, byte order, where the
    stack pointer sits in ptrace's NT_PRSTATUS register set, and the TLS variant with its
    thread control block size). Results of all plugins are
    collected; two plugins providing the same name is an error.
    """


@hookspec(firstresult=True)
def toyc_lower_function(arch, fn, program):
    """Generate machine code for one checked function.

    `fn` is a `toyc.ast.FnDecl` whose nodes carry their types, `program` the
    `toyc.check.Program` it belongs to (its `source.path` names the file for panic messages).
    Returns a `toyc.code.Code`: the bytes, their alignment, and a relocation for every reference
    to another declaration, a string constant or a runtime helper. Nothing outside the function
    may be baked into the bytes. For debug info, the code may also say where each statement's
    code starts (`rows`), where each local lives (`frame_slots`) and each block's code range
    (`scopes`); `toyc.lowering.FunctionLowering` records all three. Returns None for an
    architecture that is not the plugin's.
    """


@hookspec(firstresult=True)
def toyc_lower_global(arch, decl):
    """Lay out the initial value of one checked global as the bytes of its atom.

    `decl` is a `toyc.ast.GlobalDecl` with `ty` and `value` set. Returns a `toyc.code.Code`
    (a `str` global is a pointer to its string constant, so it carries a relocation).
    """


@hookspec(firstresult=True)
def toyc_lower_string(arch, value):
    """Lay out a string constant (`bytes`) as the bytes of its atom.

    Returns a `toyc.code.Code`. References to a string constant with addend 0 mean the atom's
    first byte; the architecture's code adds the offset of the string's first byte itself.
    """


@hookspec(firstresult=True)
def toyc_lower_lazy_symbol(arch, name):
    """Generate the runtime helper `name` (e.g. `_start`, or the print routine).

    Called by the linker the first time a relocation targets `Target("lazy", name)`. Returns a
    `toyc.code.LazySymbol` (its code and the section it goes in), or None if unknown.
    """


@hookspec(firstresult=True)
def toyc_apply_relocation(arch, buf, reloc, place, target):
    """Patch one relocation into an atom's bytes.

    `buf` is a bytearray holding the atom, `reloc` a `toyc.code.Reloc`, `place` the address of
    the patched field and `target` the address of the relocation's target (without addend);
    for a reference to a thread-local, `target` is the variable's offset from the thread
    pointer instead, as the architecture's `tls_variant` places it (variant 2, x86_64's: the
    block ends at the thread pointer, so negative; variant 1, AArch64's: the block starts
    `tls_tcb_size` bytes after it).
    Raises `toyc.code.RelocationOverflow` when the value does not fit. Returns True.
    """


@hookspec(firstresult=True)
def toyc_relocation_info(arch, type):
    """What a relocation of `type` found in an input object (C code linked in) needs: a
    `linker.code.RelocInfo` with its name and one of the `NEEDS_*` kinds (nothing, the
    target's address, a GOT slot, a thread-local's offset); needs "unsupported" for a type
    the architecture cannot link, which the linker reports naming the object and section.
    """


@hookspec(firstresult=True)
def toyc_relocate(arch, buf, site):
    """Apply one relocation of an input object's section to its bytes, `buf` (a bytearray).

    `site` is a `linker.code.RelocSite`: the field's offset, the type, the addend and the
    values its formula may use (the place, the target's address or thread-pointer offset, the
    GOT and the target's GOT slot, ...). The architecture may rewrite the instructions around
    the field to relax the access (a GOT load into an address computation, a thread-local
    access into local exec), as its ABI allows in a static executable. Returns a
    `linker.code.Applied`: the `Reloc` that writes the same field again for another target
    address (the linker keeps it when the target is a Toy declaration, which can move), and
    whether the next relocation was part of the sequence relaxed. Raises ValueError for an
    instruction sequence it cannot relax, `RelocationOverflow` for a value that does not fit.
    """


@hookspec(firstresult=True)
def toyc_write_trampoline(arch, source, target):
    """Return the bytes of a jump, placed at address `source`, to address `target`.

    The linker writes one at the old address of a function that had to move, so that callers
    of the old address keep working. Its length is the architecture's `trampoline_size`.
    """


# ---- the linker backend ---------------------------------------------------------------------
#
# The driver reaches the linker only through these hooks. `linker` is the backend object of the
# output being built (the built-in one is `linker.zig_object.ZigObject`, answered by the
# `linker.plugin` module); every implementation is called, so an observer (a logger, a
# statistics collector) can watch updates by implementing them too and returning None.


@hookspec
def toyc_update_func(linker, name, code, line):
    """The function `name` is new or was regenerated: `code` is its `toyc.code.Code`.

    `line` is the source line the declaration starts on, the base of the code's line fields.
    The backend places the code (in place if it fits the atom's capacity, else elsewhere,
    leaving a trampoline at the old address) and records what it did in `linker.outcome`.
    """


@hookspec
def toyc_update_nav(linker, name, code, const, line, threadlocal):
    """The global `name` is new or has a new value: `code` lays out its bytes.

    `const` is true for a `const` global (read-only section); a `var` whose bytes are all zero
    goes to the zero-fill section, and a global whose section changes moves. `threadlocal` is
    true for a `threadlocal var`: one copy per thread, in the TLS image or .tbss.
    """


@hookspec
def toyc_free_nav(linker, name):
    """The declaration `name` was removed: free its atom and drop its symbol and exports."""


@hookspec
def toyc_update_exports(linker, name, exports):
    """The declaration `name` (already handed over) is exported under `exports`, a list of
    (symbol name, linkage) pairs with linkage "strong", "weak" or "internal", and under no
    other name. Called after its update when its exports differ from the last build's."""


@hookspec
def toyc_delete_export(linker, name, export):
    """The declaration `name` is no longer exported as `export` (called before
    `toyc_update_exports` with the remaining ones)."""


@hookspec
def toyc_update_line(linker, name, line):
    """The unchanged declaration `name` now starts on source line `line`: rewrite its line
    fields (the line numbers in its panic locations) without regenerating it."""


@hookspec
def toyc_shift_lines(linker, first, delta):
    """Every source line from `first` on (numbered as before this update) moved by `delta`
    lines: the declarations there are unchanged, and their line fields stay as they are; the
    backend records the shift so that panics report today's line numbers. Called before the
    update's `toyc_update_func`/`toyc_update_nav` calls."""


@hookspec
def toyc_flush(linker):
    """End of an update: resolve pending relocations, re-patch references to moved symbols,
    write trampolines, and rewrite the parts of the symbol table and headers that changed."""


@hookspec
def toyc_updated(source, output, summary):
    """An observer's hook: a build or update of `output` from `source` (paths) is complete.

    `summary` is a `toyc.session.Summary`: `full` (whether it was a full build, and `reason`
    why), `outcomes` (declaration name -> what happened to it: "new", "in place", "moved",
    "moved, trampoline", "shrunk in place", "removed", "exports", "unchanged", ...), `lines`
    (declarations whose line numbers were patched), `written` (bytes) and `seconds`. Called
    once per successful build or update, not for one that had errors; the result is ignored.
    For logging, statistics, visualisation."""
