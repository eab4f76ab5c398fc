"""What debug info says about one declaration, taken from its checked syntax tree.

The driver attaches a `DebugDecl` (the linker's, `linker.dwarf`) to each declaration's code
(`Code.debug`); the linker turns it into DWARF together with what the architecture reported
(the line table rows and where each local lives). This module builds it, translating Toy's
types into the linker's `DebugType`. Lines are relative to the declaration's first line, as
line fields are, so that a declaration that only moved to other lines keeps the same
description.
"""

from __future__ import annotations

from linker.dwarf import DebugDecl, DebugType, DebugVar
from toyc import ast as A
from toyc.types import Type


def debug_type(t: Type) -> DebugType:
    """Toy's type `t` as the linker's debug info knows it."""
    if t.is_array:
        return DebugType(t.name, debug_type(t.elem), t.length)
    return DebugType(t.name)


def describe(d: A.Decl) -> DebugDecl:
    external = any(e.name == d.name and e.linkage != "internal" for e in d.exports)
    if isinstance(d, A.FnDecl):
        result = debug_type(d.result_type) \
            if d.result_type is not None and d.result_type.name != "void" else None
        out = DebugDecl(d.name, "fn", d.span.col, result, external)
        scope_of: dict[int, int] = {}
        _blocks(d.body, -1, out.scopes, scope_of)
        for i, local in enumerate(d.locals):
            out.vars.append(DebugVar(local.name, debug_type(local.ty), i, local.is_param,
                                     local.span.line - d.span.line, local.span.col,
                                     scope_of.get(i, 0)))
        return out
    kind = "threadlocal" if d.threadlocal else d.kind
    return DebugDecl(d.name, kind, d.span.col, debug_type(d.ty), external)


def _blocks(block: A.Block, parent: int, scopes: list[int], scope_of: dict[int, int]) -> None:
    """Number the blocks under `block` in source order, as code generators meet them, and
    note which block each `let` is in."""
    index = len(scopes)
    scopes.append(parent)
    for s in block.stmts:
        _statement(s, index, scopes, scope_of)


def _statement(s: A.Stmt, scope: int, scopes: list[int], scope_of: dict[int, int]) -> None:
    if isinstance(s, A.Let):
        scope_of[s.local] = scope
    elif isinstance(s, A.Block):
        _blocks(s, scope, scopes, scope_of)
    elif isinstance(s, A.If):
        _blocks(s.then, scope, scopes, scope_of)
        if s.els is not None:
            _statement(s.els, scope, scopes, scope_of)
    elif isinstance(s, A.While):
        _blocks(s.body, scope, scopes, scope_of)
