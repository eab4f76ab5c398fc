"""What debug info says about one declaration, taken from its checked syntax tree.

The driver attaches a `DebugDecl` to each declaration's code (`Code.debug`); the linker turns
it into DWARF together with what the architecture reported (the line table rows and where each
local lives). Lines are relative to the declaration's first line, as line fields are, so that a
declaration that only moved to other lines keeps the same description.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toyc import ast as A
from toyc.types import Type


@dataclass(slots=True)
class DebugVar:
    name: str
    ty: Type
    local: int  # index into the function's locals (and `Code.frame_slots`)
    param: bool
    line: int  # relative to the declaration's first line
    col: int
    scope: int = 0  # the block it is declared in (an index into DebugDecl.scopes)


@dataclass(slots=True)
class DebugDecl:
    name: str
    kind: str  # "fn", "var", "const" or "threadlocal"
    col: int
    ty: Type | None  # a global's type, a function's result type (None: none)
    external: bool  # exported under its own name
    vars: list[DebugVar] = field(default_factory=list)  # a function's parameters and locals
    # a function's blocks, the body first, in source order (as `Code.scopes` gives their
    # code): the index of the block each one is nested in (-1 for the body)
    scopes: list[int] = field(default_factory=list)


def describe(d: A.Decl) -> DebugDecl:
    external = any(e.name == d.name and e.linkage != "internal" for e in d.exports)
    if isinstance(d, A.FnDecl):
        result = d.result_type if d.result_type is not None and d.result_type.name != "void" \
            else None
        out = DebugDecl(d.name, "fn", d.span.col, result, external)
        scope_of: dict[int, int] = {}
        _blocks(d.body, -1, out.scopes, scope_of)
        for i, local in enumerate(d.locals):
            out.vars.append(DebugVar(local.name, local.ty, i, local.is_param,
                                     local.span.line - d.span.line, local.span.col,
                                     scope_of.get(i, 0)))
        return out
    kind = "threadlocal" if d.threadlocal else d.kind
    return DebugDecl(d.name, kind, d.span.col, d.ty, external)


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
