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


@dataclass(slots=True)
class DebugDecl:
    name: str
    kind: str  # "fn", "var", "const" or "threadlocal"
    col: int
    ty: Type | None  # a global's type, a function's result type (None: none)
    external: bool  # exported under its own name
    vars: list[DebugVar] = field(default_factory=list)  # a function's parameters and locals


def describe(d: A.Decl) -> DebugDecl:
    external = any(e.name == d.name and e.linkage != "internal" for e in d.exports)
    if isinstance(d, A.FnDecl):
        result = d.result_type if d.result_type is not None and d.result_type.name != "void" \
            else None
        out = DebugDecl(d.name, "fn", d.span.col, result, external)
        for i, local in enumerate(d.locals):
            out.vars.append(DebugVar(local.name, local.ty, i, local.is_param,
                                     local.span.line - d.span.line, local.span.col))
        return out
    kind = "threadlocal" if d.threadlocal else d.kind
    return DebugDecl(d.name, kind, d.span.col, d.ty, external)
