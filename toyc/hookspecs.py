"""The hooks through which toyc reaches its plugins.

pluggy finds the plugins and calls these hooks. An architecture plugin implements one,
`toyc_register_architectures`, and registers an object per architecture it provides; that
object answers the questions about the CPU (`toyc.arch.Architecture`, the protocol). The
built-in x86_64 backend (`toyc_x86_64`) is such a plugin. The linker backend and observers
implement the other hooks below.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("toyc")
hookimpl = pluggy.HookimplMarker("toyc")


@hookspec
def toyc_register_architectures(register):
    """Register the architectures this plugin provides: call `register(arch)` once for each.

    `arch` is an instance of a `toyc.arch.Architecture` subclass: its `info` (a
    `toyc.code.ArchInfo`, whose `name` is what `--arch` selects) and its answers to the
    compiler's and the linker's questions about the CPU. Called whenever toyc looks up an
    architecture; the result is ignored. Two plugins registering the same name is an error.
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
