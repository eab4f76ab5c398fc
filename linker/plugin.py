"""The built-in linker backend as a plugin: the backend hooks, answered by the ZigObject."""

from __future__ import annotations

import pluggy

# pluggy matches implementations to hooks by project name, so this marker is the same as
# `toyc.hookspecs.hookimpl` without the linker importing the compiler.
hookimpl = pluggy.HookimplMarker("toyc")


@hookimpl
def toyc_update_func(linker, name, code, line):
    linker.update_func(name, code, line)


@hookimpl
def toyc_update_nav(linker, name, code, const, line, threadlocal):
    linker.update_nav(name, code, const=const, line=line, threadlocal=threadlocal)


@hookimpl
def toyc_free_nav(linker, name):
    linker.free_nav(name)


@hookimpl
def toyc_update_exports(linker, name, exports):
    linker.update_exports(name, exports)


@hookimpl
def toyc_delete_export(linker, name, export):
    linker.delete_export(name, export)


@hookimpl
def toyc_update_line(linker, name, line):
    linker.update_line(name, line)


@hookimpl
def toyc_shift_lines(linker, first, delta):
    linker.shift_lines(first, delta)


@hookimpl
def toyc_flush(linker):
    linker.flush()
