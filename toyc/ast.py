"""The syntax tree of one Toy declaration, with a span on every node.

The parser builds these nodes; the checker fills in the fields marked "checker" (types, what a
name refers to, the locals of a function); the architecture plugin reads them to generate code.
Nodes refer to locals by index into their function's `locals` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toyc.source import Span
from toyc.types import Type

# ---- types as written -------------------------------------------------------------------------


@dataclass(slots=True)
class TypeName:
    span: Span
    name: str


@dataclass(slots=True)
class ArrayTypeExpr:
    span: Span
    elem: TypeName | ArrayTypeExpr
    length: Expr


TypeExpr = TypeName | ArrayTypeExpr

# ---- expressions ------------------------------------------------------------------------------


@dataclass(slots=True)
class IntLit:
    span: Span
    value: int
    ty: Type | None = None


@dataclass(slots=True)
class BoolLit:
    span: Span
    value: bool
    ty: Type | None = None


@dataclass(slots=True)
class StrLit:
    span: Span
    value: bytes
    ty: Type | None = None


@dataclass(slots=True)
class Name:
    span: Span
    name: str
    ty: Type | None = None
    kind: str = ""  # checker: "local", "global" or "fn"
    local: int = -1  # checker: index into the function's locals when kind == "local"
    const: bool = False  # checker: a scalar `const` global, whose value is `value`
    value: object = None


@dataclass(slots=True)
class Unary:
    span: Span
    op: str  # "-", "~", "not"
    operand: Expr
    ty: Type | None = None


@dataclass(slots=True)
class Binary:
    span: Span
    op: str
    lhs: Expr
    rhs: Expr
    op_span: Span
    ty: Type | None = None


@dataclass(slots=True)
class Call:
    span: Span
    callee: Expr
    args: list[Expr]
    ty: Type | None = None
    builtin: bool = False  # checker: a built-in function rather than a declaration


@dataclass(slots=True)
class Index:
    span: Span
    base: Expr
    index: Expr
    ty: Type | None = None


@dataclass(slots=True)
class ArrayLit:
    span: Span
    elems: list[Expr]
    ty: Type | None = None


Expr = IntLit | BoolLit | StrLit | Name | Unary | Binary | Call | Index | ArrayLit

# ---- statements -------------------------------------------------------------------------------


@dataclass(slots=True)
class Let:
    span: Span
    name: str
    name_span: Span
    type_expr: TypeExpr | None
    init: Expr | None
    local: int = -1  # checker


@dataclass(slots=True)
class Assign:
    span: Span
    op: str  # "=", "+=", ...
    target: Expr
    value: Expr
    op_span: Span


@dataclass(slots=True)
class Block:
    span: Span
    stmts: list[Stmt]


@dataclass(slots=True)
class If:
    span: Span
    cond: Expr
    then: Block
    els: Block | If | None


@dataclass(slots=True)
class While:
    span: Span
    cond: Expr
    body: Block


@dataclass(slots=True)
class Break:
    span: Span


@dataclass(slots=True)
class Continue:
    span: Span


@dataclass(slots=True)
class Return:
    span: Span
    value: Expr | None


@dataclass(slots=True)
class ExprStmt:
    span: Span
    expr: Expr


Stmt = Let | Assign | Block | If | While | Break | Continue | Return | ExprStmt

# ---- declarations -----------------------------------------------------------------------------


@dataclass(slots=True)
class Export:
    span: Span
    args: list[tuple[str, str, Span]]  # ("name", a string's text) or ("word", a NAME)
    # checker: the symbol name and linkage ("strong", "weak" or "internal")
    name: str = ""
    linkage: str = "strong"


@dataclass(slots=True)
class Param:
    span: Span
    name: str
    type_expr: TypeExpr


@dataclass(slots=True)
class Local:
    """A parameter or `let` of a function (checker)."""

    name: str
    ty: Type
    span: Span
    is_param: bool


@dataclass(slots=True)
class FnDecl:
    span: Span
    name: str
    name_span: Span
    params: list[Param]
    result: TypeExpr | None
    body: Block | None  # None for `extern fn`
    exports: list[Export]
    is_extern: bool = False
    # Its parameter list ends with `...`: a call may pass more arguments (only an `extern fn`
    # may be, after at least one parameter; the checker says so otherwise).
    variadic: bool = False
    ellipses: list[Span] = field(default_factory=list)  # where each `...` is written
    # checker:
    param_types: list[Type] = field(default_factory=list)
    result_type: Type | None = None
    locals: list[Local] = field(default_factory=list)


@dataclass(slots=True)
class GlobalDecl:
    span: Span
    kind: str  # "var" or "const"
    name: str
    name_span: Span
    type_expr: TypeExpr | None
    init: Expr | None
    exports: list[Export]
    threadlocal: bool = False
    is_extern: bool = False
    # checker:
    ty: Type | None = None
    value: object = None  # the constant value: int, bool, bytes, or a list of those


Decl = FnDecl | GlobalDecl
