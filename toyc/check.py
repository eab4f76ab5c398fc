"""Name resolution, type checking and constant folding of a parsed program.

`check` takes every top-level declaration and returns a `Program` whose nodes carry types,
whose names know what they refer to, whose functions list their locals and whose globals carry
their constant values; or it raises `CompileError` with every error it found.

An incremental update checks only some declarations: `known` then answers for the others with
stand-ins that carry what a user of them sees (a signature, a type, a constant's value), and
the checker records, per declaration, the top-level names it looked up (`Program.deps`), so
that the driver knows whom a change concerns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from toyc import ast as A
from toyc import consteval
from toyc.source import CompileError, Diagnostic, Source, Span
from toyc.types import BOOL, INT, SCALARS, STR, VOID, Type, array_of

MAX_PARAMS = 6
MAX_NESTING = 1000
MAX_GLOBAL_BYTES = 1 << 30  # the zero-fill segment has 1 GiB of room
MAX_LOCAL_ARRAY_BYTES = 1 << 20
MAX_STRING_BYTES = 16 << 20  # a quarter of the constants' segment
RESERVED = {"_start": "the name '_start' is reserved for the program's entry point"}

# name -> (parameter types, result type); None parameters mean "checked by hand".
BUILTINS: dict[str, tuple[list[Type] | None, Type]] = {
    "print": (None, VOID),
    "eprint": (None, VOID),
    "len": (None, INT),
    "exit": ([INT], VOID),
    "assert": ([BOOL], VOID),
    "argc": ([], INT),
    "argv": ([INT], STR),
    "parse_int": ([STR], INT),
    "sleep_ms": ([INT], VOID),
    "clock_ns": ([], INT),
    "spawn": (None, INT),
    "join": ([INT], INT),
}
LINKAGES = ("strong", "weak", "internal")
NO_C_STR = ("an extern cannot return or hold a 'str': a C string has no length (pass Toy "
            "strings to C as parameters instead)")


@dataclass
class Program:
    source: Source
    decls: list[A.Decl]
    by_name: dict[str, A.Decl] = field(default_factory=dict)
    deps: dict[str, set[str]] = field(default_factory=dict)  # declaration -> names it uses
    # every use of an extern declaration: (name, where), for "undefined symbol" in executables
    extern_uses: list[tuple[str, Span]] = field(default_factory=list)

    @property
    def functions(self) -> list[A.FnDecl]:
        return [d for d in self.decls if isinstance(d, A.FnDecl)]

    @property
    def globals(self) -> list[A.GlobalDecl]:
        return [d for d in self.decls if isinstance(d, A.GlobalDecl)]


class _Fail(Exception):
    """Stops checking one expression after its error has been reported."""


class Checker:
    def __init__(self, source: Source, decls: list[A.Decl], errors: list[Diagnostic],
                 unparsed: set[str], known: Callable[[str], A.Decl | None] | None = None,
                 need_main: bool = True):
        self.source = source
        self.need_main = need_main  # an executable needs one; an object need not
        self.decls = decls
        self.errors = list(errors)
        # Declarations with syntax errors: known to exist, so uses of them are not reported.
        self.unparsed = unparsed
        self.by_name: dict[str, A.Decl] = {}
        self.exported: dict[str, Span] = {}  # export name -> where it was first exported
        self.extern_uses: list[tuple[str, Span]] = []
        self.known = known
        self.deps: dict[str, set[str]] = {}
        self.current: set[str] = set()  # the names the declaration being checked uses
        self.evaluating: set[str] = set()
        self.checked_globals: set[str] = set()
        # per function
        self.fn: A.FnDecl | None = None
        self.scopes: list[dict[str, int]] = []
        self.loops = 0
        self.depth = 0
        self.too_deep = False

    def error(self, span: Span, message: str) -> None:
        self.errors.append(Diagnostic(span, message))

    # ---- program ------------------------------------------------------------------------------

    def run(self) -> Program:
        self.collect()
        for d in self.decls:
            if isinstance(d, A.GlobalDecl):
                self.check_global(d)
        for d in self.decls:
            if isinstance(d, A.FnDecl):
                self.check_signature(d)
        for d in self.decls:
            if isinstance(d, A.FnDecl) and d.body is not None and d.result_type is not None:
                self.check_body(d)
        if self.need_main:
            self.check_main()
        if self.errors:
            self.errors.sort(key=lambda e: (e.span.line, e.span.col))
            raise CompileError(self.source, self.errors)
        return Program(self.source, self.decls, self.by_name, self.deps, self.extern_uses)

    def lookup(self, name: str) -> A.Decl | None:
        """The top-level declaration `name`, noted as a dependency of the current one."""
        self.current.add(name)
        d = self.by_name.get(name)
        if d is None and self.known is not None:
            d = self.known(name)
            if d is not None:
                self.by_name[name] = d
                if isinstance(d, A.GlobalDecl):
                    self.checked_globals.add(name)
        return d

    def begin(self, d: A.Decl) -> set[str]:
        """Start recording the names declaration `d` uses; returns the previous record."""
        outer = self.current
        self.current = self.deps.setdefault(d.name, set())
        return outer

    def collect(self) -> None:
        for d in self.decls:
            if d.name in BUILTINS:
                self.error(d.name_span,
                           f"'{d.name}' is a built-in function and cannot be redefined")
            elif d.name in RESERVED:
                self.error(d.name_span, RESERVED[d.name])
            elif d.name in self.by_name or (d.name not in self.unparsed
                                            and self.lookup(d.name) is not None):
                first = self.by_name[d.name].name_span
                self.error(d.name_span, f"'{d.name}' is already declared (at line {first.line})")
            else:
                self.by_name[d.name] = d
            self.check_exports(d)
            if d.is_extern and d.exports:
                self.error(d.exports[0].span, "an extern declaration cannot be exported: "
                           "another object defines it")
            if isinstance(d, A.GlobalDecl) and d.threadlocal and d.is_extern:
                self.error(d.span, "'extern threadlocal' variables are not supported yet")

    def check_exports(self, d: A.Decl) -> None:
        """Resolve each `export(...)` of `d` to a symbol name and a linkage; two declarations
        may not export one name (the later one is reported)."""
        for e in d.exports:
            names = [(text, span) for kind, text, span in e.args if kind == "name"]
            words = [(text, span) for kind, text, span in e.args if kind == "word"]
            ok = True
            for _, span in names[1:]:
                self.error(span, "an export has one name; give each name its own export(...)")
                ok = False
            for _, span in words[1:]:
                self.error(span, "an export has one linkage")
                ok = False
            if words:
                word, span = words[0]
                if word not in LINKAGES:
                    self.error(span, f"unknown linkage '{word}': expected strong, weak or "
                               "internal")
                    ok = False
                e.linkage = word
            e.name = names[0][0] if names else d.name
            if names and (not e.name or "\0" in e.name):
                self.error(names[0][1], "an export name must be non-empty and have no NUL "
                           "character")
                ok = False
            if not ok:
                continue
            first = self.exported.get(e.name)
            if first is not None:
                self.error(e.span, f"'{e.name}' is already exported (at line {first.line})")
            else:
                self.exported[e.name] = e.span

    def check_main(self) -> None:
        main = self.lookup("main")
        if main is None and "main" in self.unparsed:
            return
        if main is None:
            self.error(Span(1, 1, 1, 2), "the program has no 'main' function")
        elif not isinstance(main, A.FnDecl):
            self.error(main.name_span, "'main' must be a function")
        elif main.params or main.result_type not in (INT, VOID, None):
            self.error(main.name_span, "'main' must be 'fn main() -> int' or 'fn main()'")

    # ---- types --------------------------------------------------------------------------------

    def resolve_type(self, t: A.TypeExpr, *, in_global: bool) -> Type | None:
        if isinstance(t, A.TypeName):
            ty = SCALARS.get(t.name)
            if ty is None:
                self.error(t.span, f"unknown type '{t.name}'")
            return ty
        elem = self.resolve_type(t.elem, in_global=in_global)
        length = self.const_value(t.length, INT, "an array length")
        if elem is None or length is None:
            return None
        if elem not in (INT, BOOL):
            self.error(t.elem.span, "array elements must be int or bool")
            return None
        if length < 1:
            self.error(t.length.span, f"array length must be at least 1, not {length}")
            return None
        ty = array_of(elem, length)
        limit = MAX_GLOBAL_BYTES if in_global else MAX_LOCAL_ARRAY_BYTES
        if ty.size > limit:
            where = "a global" if in_global else "a local (use a global for big arrays)"
            self.error(t.span, f"array of {ty.size} bytes is too large for {where}")
            return None
        return ty

    # ---- globals and constant expressions ----------------------------------------------------

    def check_global(self, g: A.GlobalDecl) -> None:
        if g.name in self.checked_globals or g.name in self.evaluating:
            return
        self.checked_globals.add(g.name)
        self.evaluating.add(g.name)
        self.too_deep = False
        outer = self.begin(g)
        try:
            declared = self.resolve_type(g.type_expr, in_global=True) if g.type_expr else None
            if g.type_expr is not None and declared is None:
                return
            if g.is_extern and declared == STR:
                self.error(g.type_expr.span, NO_C_STR)
                return
            if g.init is None:
                if declared is None:
                    self.error(g.name_span, f"'{g.name}' needs a type or an initializer")
                    return
                g.ty = declared
                g.value = zero_value(declared)
                return
            value_ty, value = self.const_init(g.init, declared)
            if value_ty is None:
                return
            g.ty = declared or value_ty
            g.value = value
        finally:
            self.evaluating.discard(g.name)
            self.current = outer

    def const_init(self, e: A.Expr, want: Type | None) -> tuple[Type | None, object]:
        if isinstance(e, A.ArrayLit):
            return self.const_array(e, want)
        if want is not None and want.is_array:
            self.error(e.span, f"expected an array literal of type {want}")
            return None, None
        try:
            ty, value = self.fold(e)
        except _Fail:
            return None, None
        if want is not None and ty != want:
            self.error(e.span, f"expected {want}, found {ty}")
            return None, None
        return ty, value

    def const_array(self, e: A.ArrayLit, want: Type | None) -> tuple[Type | None, object]:
        values = []

        def fold_element(x: A.Expr) -> Type:
            ty, value = self.fold(x)
            values.append(value)
            return ty

        errors = len(self.errors)
        try:
            ty = self.array_lit(e, want, fold_element, MAX_GLOBAL_BYTES)
        except _Fail:
            return None, None
        return (ty, values) if len(self.errors) == errors else (None, None)

    def const_value(self, e: A.Expr, want: Type, what: str) -> object:
        try:
            ty, value = self.fold(e)
        except _Fail:
            return None
        if ty != want:
            self.error(e.span, f"{what} must be {want}, found {ty}")
            return None
        return value

    def fold(self, e: A.Expr) -> tuple[Type, object]:
        """Type and value of a constant expression; reports and raises _Fail otherwise."""
        self.enter(e.span)
        try:
            ty, value = self._fold(e)
        finally:
            self.depth -= 1
        e.ty = ty
        return ty, value

    def _fold(self, e: A.Expr) -> tuple[Type, object]:
        if isinstance(e, A.IntLit):
            self.check_int_range(e)
            return INT, e.value
        if isinstance(e, A.BoolLit):
            return BOOL, e.value
        if isinstance(e, A.StrLit):
            self.check_string_size(e)
            return STR, e.value
        if isinstance(e, A.Name):
            d = self.lookup(e.name)
            if isinstance(d, A.GlobalDecl) and d.kind == "const":
                if d.name in self.evaluating:
                    self.error(e.span, f"the value of '{e.name}' depends on itself")
                    raise _Fail
                self.check_global(d)
                if d.ty is None:
                    raise _Fail
                if d.ty.is_array:
                    self.error(e.span, "an array cannot be used in a constant expression")
                    raise _Fail
                e.kind = "global"
                return d.ty, d.value
            if d is None and e.name in self.unparsed:
                raise _Fail
            if d is None and e.name not in BUILTINS:
                self.error(e.span, f"unknown name '{e.name}'")
            else:
                self.error(e.span, f"'{e.name}' is not a constant (only 'const' globals may "
                                   "appear in a constant expression)")
            raise _Fail
        if isinstance(e, A.Unary):
            ty, v = self.fold(e.operand)
            self.want_operand(e.op, e.operand, ty, BOOL if e.op == "not" else INT)
            if e.op == "not":
                return BOOL, not v
            return INT, consteval.wrap(-v) if e.op == "-" else ~v
        if isinstance(e, A.Binary):
            lt, lv = self.fold(e.lhs)
            rt, rv = self.fold(e.rhs)
            ty = self.binary_type(e, lt, rt)
            if ty is None:
                raise _Fail
            if e.op == "and":
                return BOOL, lv and rv
            if e.op == "or":
                return BOOL, lv or rv
            if lt != INT:
                return BOOL, (lv == rv) == (e.op == "==")
            try:
                return ty, consteval.int_binary(e.op, lv, rv)
            except ZeroDivisionError:
                self.error(e.op_span, "division by zero in a constant expression")
                raise _Fail from None
        if isinstance(e, A.ArrayLit):
            self.error(e.span, "an array literal can only initialize a variable")
            raise _Fail
        self.error(e.span, "a global's initializer must be a constant expression")
        raise _Fail

    def check_string_size(self, e: A.StrLit) -> None:
        if len(e.value) > MAX_STRING_BYTES:
            self.error(e.span, f"string literal of {len(e.value)} bytes is too long (the limit "
                               f"is {MAX_STRING_BYTES >> 20} MiB)")

    def check_int_range(self, e: A.IntLit) -> None:
        if not consteval.INT_MIN <= e.value <= consteval.INT_MAX:
            self.error(e.span, "integer literal is out of range for int")

    def enter(self, span: Span) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.depth -= 1
            if not self.too_deep:  # one error per declaration is enough
                self.error(span, f"nesting is too deep (the limit is {MAX_NESTING} levels)")
            self.too_deep = True
            raise _Fail

    # ---- functions ----------------------------------------------------------------------------

    def check_signature(self, f: A.FnDecl) -> None:
        outer = self.begin(f)
        try:
            self._check_signature(f)
        finally:
            self.current = outer

    def _check_signature(self, f: A.FnDecl) -> None:
        f.param_types = []
        ok = True
        # An extern fn may take more: C passes the seventh and later on the stack.
        if len(f.params) > MAX_PARAMS and not f.is_extern:
            self.error(f.params[MAX_PARAMS].span,
                       f"a function takes at most {MAX_PARAMS} parameters, '{f.name}' has "
                       f"{len(f.params)}")
            ok = False
        self.check_ellipses(f)
        seen: dict[str, A.Param] = {}
        for p in f.params:
            ty = self.resolve_type(p.type_expr, in_global=False)
            if ty is not None and ty.is_array:
                self.error(p.type_expr.span, "a parameter cannot be an array")
                ty = None
            if p.name in seen:
                self.error(p.span, f"duplicate parameter '{p.name}'")
            elif p.name in BUILTINS:
                self.error(p.span, f"'{p.name}' is a built-in function and cannot be redefined")
            seen[p.name] = p
            ok = ok and ty is not None
            f.param_types.append(ty)
        result = VOID
        if f.result is not None:
            result = self.resolve_type(f.result, in_global=False)
            if result is not None and result.is_array:
                self.error(f.result.span, "a function cannot return an array")
                result = None
            if f.is_extern and result == STR:
                self.error(f.result.span, NO_C_STR)
                result = None
        f.result_type = result if ok else None

    def check_ellipses(self, f: A.FnDecl) -> None:
        """`...` only last in an extern fn's parameters, after at least one (as C has it)."""
        last = f.ellipses[-1] if f.variadic else None
        for span in f.ellipses:
            if span is not last:
                self.error(span, "'...' must be the last parameter")
            elif not f.is_extern:
                self.error(span, "only an extern fn can be variadic: a Toy function cannot "
                                 "take '...'")
            elif not f.params:
                self.error(span, "'...' needs a parameter before it, as in C")

    def check_body(self, f: A.FnDecl) -> None:
        outer = self.begin(f)
        try:
            self._check_body(f)
        finally:
            self.current = outer

    def _check_body(self, f: A.FnDecl) -> None:
        f.locals = []
        self.fn = f
        self.scopes = [{}]
        self.loops = 0
        self.depth = 0
        for p, ty in zip(f.params, f.param_types, strict=True):
            self.declare(p.name, ty, p.span, is_param=True)
        self.too_deep = False
        self.block(f.body, new_scope=False)
        if f.result_type != VOID and not self.too_deep and not returns(f.body):
            end = f.body.span
            self.error(Span(end.end_line, end.end_col - 1, end.end_line, end.end_col),
                       f"'{f.name}' must return a value of type {f.result_type} on every path")
        self.fn = None

    def declare(self, name: str, ty: Type, span: Span, *, is_param: bool) -> int:
        self.fn.locals.append(A.Local(name, ty, span, is_param))
        index = len(self.fn.locals) - 1
        self.scopes[-1][name] = index
        return index

    def lookup_local(self, name: str) -> int:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return -1

    # ---- statements ---------------------------------------------------------------------------

    def block(self, b: A.Block, *, new_scope: bool = True) -> None:
        if new_scope:
            self.scopes.append({})
        for s in b.stmts:
            self.stmt(s)
        if new_scope:
            self.scopes.pop()

    def stmt(self, s: A.Stmt) -> None:
        try:
            self.enter(s.span)
        except _Fail:
            return
        try:
            self._stmt(s)
        except _Fail:
            pass
        finally:
            self.depth -= 1

    def _stmt(self, s: A.Stmt) -> None:
        if isinstance(s, A.ExprStmt):
            self.expr(s.expr, allow_void=True)
        elif isinstance(s, A.Let):
            self.let(s)
        elif isinstance(s, A.Assign):
            self.assign(s)
        elif isinstance(s, A.Block):
            self.block(s)
        elif isinstance(s, A.If):
            self.condition(s.cond)
            self.block(s.then)
            if isinstance(s.els, A.Block):
                self.block(s.els)
            elif s.els is not None:
                self.stmt(s.els)
        elif isinstance(s, A.While):
            self.condition(s.cond)
            self.loops += 1
            self.block(s.body)
            self.loops -= 1
        elif isinstance(s, A.Break | A.Continue):
            if self.loops == 0:
                word = "break" if isinstance(s, A.Break) else "continue"
                self.error(s.span, f"'{word}' outside of a loop")
        elif isinstance(s, A.Return):
            self.ret(s)

    def condition(self, e: A.Expr) -> None:
        try:
            ty = self.expr(e)
        except _Fail:
            return
        if ty != BOOL:
            self.error(e.span, f"a condition must be bool, found {ty}")

    def let(self, s: A.Let) -> None:
        if s.name in BUILTINS:
            self.error(s.name_span, f"'{s.name}' is a built-in function and cannot be redefined")
        declared = None
        if s.type_expr is not None:
            declared = self.resolve_type(s.type_expr, in_global=False)
            if declared is None:
                self.declare_poisoned(s)
                return
        if s.init is None and declared is None:
            self.error(s.span, f"'let {s.name}' needs a type or an initializer")
            self.declare_poisoned(s)
            return
        ty = declared
        if s.init is not None:
            try:
                if isinstance(s.init, A.ArrayLit):
                    ty = self.array_lit(s.init, declared, self.expr, MAX_LOCAL_ARRAY_BYTES)
                else:
                    ty = self.expr(s.init)
                    if ty.is_array:
                        self.error(s.init.span, "arrays cannot be copied; index them instead")
                        raise _Fail
                    if declared is not None and ty != declared:
                        self.error(s.init.span, f"expected {declared}, found {ty}")
                        ty = declared
            except _Fail:
                ty = declared
                if ty is None:
                    self.declare_poisoned(s)
                    return
        s.local = self.declare(s.name, ty, s.name_span, is_param=False)

    def declare_poisoned(self, s: A.Let) -> None:
        # The name exists (so later uses do not report "unknown name") but checking its uses
        # stops quietly.
        self.scopes[-1][s.name] = -2

    def array_lit(self, e: A.ArrayLit, want: Type | None, element, limit: int) -> Type:
        """Check an array literal whose elements `element` checks; raises _Fail if hopeless."""
        if want is not None and not want.is_array:
            self.error(e.span, f"expected {want}, found an array literal")
            raise _Fail
        if not e.elems:
            self.error(e.span, "an array literal needs at least one element")
            raise _Fail
        elem_ty = want.elem if want else None
        for x in e.elems:
            ty = element(x)
            if elem_ty is None:
                if ty not in (INT, BOOL):
                    self.error(x.span, "array elements must be int or bool")
                    raise _Fail
                elem_ty = ty
            elif ty != elem_ty:
                self.error(x.span, f"expected {elem_ty}, found {ty}")
        if want is not None and want.length != len(e.elems):
            self.error(e.span, f"expected {want.length} elements, found {len(e.elems)}")
        e.ty = want or array_of(elem_ty, len(e.elems))
        if e.ty.size > limit:
            self.error(e.span, f"array of {e.ty.size} bytes is too large")
        return e.ty

    def assign(self, s: A.Assign) -> None:
        t = s.target
        if isinstance(t, A.Name):
            target_ty = self.assignable_name(t)
        elif isinstance(t, A.Index):
            base_ty = self.expr(t.base)
            if base_ty == STR:
                self.error(t.span, "a str is immutable; its bytes cannot be assigned")
                raise _Fail
            if isinstance(t.base, A.Name) and t.base.kind == "global":
                d = self.lookup(t.base.name)
                if d.kind == "const":
                    self.error(t.base.span, f"cannot assign to an element of constant '{d.name}'")
            target_ty = self.expr(t)
        else:
            self.error(t.span, "cannot assign to this expression")
            raise _Fail
        if isinstance(s.value, A.ArrayLit):
            self.error(s.value.span, "an array literal can only initialize a variable")
            raise _Fail
        value_ty = self.expr(s.value)
        if target_ty.is_array:
            self.error(s.span, "arrays cannot be assigned as a whole; assign their elements")
            return
        if s.op != "=":
            if target_ty != INT or value_ty != INT:
                self.error(s.op_span, f"'{s.op}' needs int operands, found {target_ty} and "
                                      f"{value_ty}")
            return
        if value_ty != target_ty:
            self.error(s.value.span, f"expected {target_ty}, found {value_ty}")

    def assignable_name(self, t: A.Name) -> Type:
        ty = self.expr(t, allow_fn=True, allow_void=True)
        if t.kind == "local":
            if self.fn.locals[t.local].is_param:
                self.error(t.span, f"cannot assign to parameter '{t.name}'")
        elif t.kind in ("global", "tls"):
            if self.lookup(t.name).kind == "const":
                self.error(t.span, f"cannot assign to constant '{t.name}'")
        else:
            self.error(t.span, f"cannot assign to function '{t.name}'")
            raise _Fail
        return ty

    def ret(self, s: A.Return) -> None:
        want = self.fn.result_type
        if s.value is None:
            if want != VOID:
                self.error(s.span, f"'{self.fn.name}' must return a value of type {want}")
            return
        ty = self.expr(s.value, allow_void=True)
        if want == VOID:
            self.error(s.value.span, f"'{self.fn.name}' does not return a value")
        elif ty != want:
            self.error(s.value.span, f"expected {want}, found {ty}")

    # ---- expressions --------------------------------------------------------------------------

    def expr(self, e: A.Expr, *, allow_void: bool = False, allow_fn: bool = False) -> Type:
        self.enter(e.span)
        try:
            ty = self._expr(e, allow_fn)
        finally:
            self.depth -= 1
        if ty == VOID and not allow_void:
            self.error(e.span, "this call does not produce a value")
            raise _Fail
        e.ty = ty
        return ty

    def _expr(self, e: A.Expr, allow_fn: bool) -> Type:
        if isinstance(e, A.IntLit):
            self.check_int_range(e)
            return INT
        if isinstance(e, A.BoolLit):
            return BOOL
        if isinstance(e, A.StrLit):
            self.check_string_size(e)
            return STR
        if isinstance(e, A.Name):
            return self.name(e, allow_fn)
        if isinstance(e, A.Unary):
            ty = self.expr(e.operand)
            want = BOOL if e.op == "not" else INT
            self.want_operand(e.op, e.operand, ty, want)
            return want
        if isinstance(e, A.Binary):
            lt = self.expr(e.lhs)
            rt = self.expr(e.rhs)
            ty = self.binary_type(e, lt, rt)
            if ty is None:
                raise _Fail
            return ty
        if isinstance(e, A.Index):
            base = self.expr(e.base)
            index = self.expr(e.index)
            if index != INT:
                self.error(e.index.span, f"an index must be int, found {index}")
            if base == STR:
                return INT
            if not base.is_array:
                self.error(e.base.span, f"cannot index a value of type {base}")
                raise _Fail
            return base.elem
        if isinstance(e, A.Call):
            return self.call(e)
        if isinstance(e, A.ArrayLit):
            self.error(e.span, "an array literal can only initialize a variable")
            raise _Fail
        raise AssertionError(e)

    def name(self, e: A.Name, allow_fn: bool) -> Type:
        index = self.lookup_local(e.name)
        if index == -2:
            raise _Fail
        if index >= 0:
            e.kind, e.local = "local", index
            return self.fn.locals[index].ty
        d = self.lookup(e.name)
        if isinstance(d, A.GlobalDecl):
            e.kind = "tls" if d.threadlocal else "global"
            if d.ty is None:
                raise _Fail
            if d.kind == "const" and d.ty.is_scalar and d.value is not None:
                e.const, e.value = True, d.value
            if d.is_extern:
                self.extern_uses.append((d.name, e.span))
            return d.ty
        if isinstance(d, A.FnDecl):
            e.kind = "fn"
            if allow_fn:
                return VOID
            self.error(e.span, f"function '{e.name}' can only be called")
            raise _Fail
        if e.name in BUILTINS:
            self.error(e.span, f"built-in function '{e.name}' can only be called")
        elif e.name not in self.unparsed:
            self.error(e.span, f"unknown name '{e.name}'")
        raise _Fail

    def want_operand(self, op: str, operand: A.Expr, ty: Type, want: Type) -> None:
        if ty != want:
            self.error(operand.span, f"'{op}' needs {article(want)} operand, found {ty}")
            raise _Fail

    def binary_type(self, e: A.Binary, lt: Type, rt: Type) -> Type | None:
        op = e.op
        if op in ("and", "or"):
            if lt != BOOL or rt != BOOL:
                self.error(e.op_span, f"'{op}' needs bool operands, found {lt} and {rt}")
                return None
            return BOOL
        if op in ("==", "!="):
            if lt != rt or lt.is_array:
                self.error(e.op_span, f"cannot compare {lt} with {rt}")
                return None
            return BOOL
        if lt != INT or rt != INT:
            self.error(e.op_span, f"'{op}' needs int operands, found {lt} and {rt}")
            return None
        return BOOL if op in ("<", "<=", ">", ">=") else INT

    def call(self, e: A.Call) -> Type:
        if not isinstance(e.callee, A.Name):
            self.error(e.callee.span, "only functions can be called")
            raise _Fail
        name = e.callee.name
        index = self.lookup_local(name)
        if index != -1:
            self.error(e.callee.span, f"'{name}' is a local variable, not a function")
            raise _Fail
        d = self.lookup(name)
        if d is None and name in BUILTINS:
            return self.builtin_call(e, name)
        if d is None:
            if name not in self.unparsed:
                self.error(e.callee.span, f"unknown function '{name}'")
            for a in e.args:
                self.quiet_expr(a)
            raise _Fail
        if not isinstance(d, A.FnDecl):
            self.error(e.callee.span, f"'{name}' is a global variable, not a function")
            raise _Fail
        e.callee.kind = "fn"
        if d.is_extern:
            self.extern_uses.append((name, e.callee.span))
        if d.result_type is None:  # its signature had errors, already reported
            for a in e.args:
                self.quiet_expr(a)
            raise _Fail
        self.check_args(e, name, d.param_types, d.variadic)
        return d.result_type

    def quiet_expr(self, e: A.Expr) -> None:
        try:
            self.expr(e, allow_void=True)
        except _Fail:
            pass

    def check_args(self, e: A.Call, name: str, params: list[Type],
                   variadic: bool = False) -> None:
        """The arguments of a call against the callee's parameter types; a variadic callee
        takes any number of int, bool or str values after them (each passed as 64 bits)."""
        if len(e.args) < len(params) if variadic else len(e.args) != len(params):
            n = len(params)
            self.error(e.span, f"'{name}' takes {'at least ' if variadic else ''}{n} "
                               f"argument{'s' if n != 1 else ''} but {len(e.args)} "
                               f"{'were' if len(e.args) != 1 else 'was'} given")
            for a in e.args:
                self.quiet_expr(a)
            return
        for i, a in enumerate(e.args):
            try:
                ty = self.expr(a)
            except _Fail:
                continue
            if i >= len(params):
                if not ty.is_scalar:
                    self.error(a.span, f"argument {i + 1} of '{name}' (after '...') must be "
                                       f"int, bool or str, found {ty}")
            elif ty != params[i]:
                self.error(a.span, f"argument {i + 1} of '{name}' must be {params[i]}, "
                                   f"found {ty}")

    def builtin_call(self, e: A.Call, name: str) -> Type:
        e.builtin = True
        params, result = BUILTINS[name]
        if params is not None:
            self.check_args(e, name, params)
            return result
        if name in ("print", "eprint"):
            for a in e.args:
                try:
                    ty = self.expr(a)
                except _Fail:
                    continue
                if not ty.is_scalar:
                    self.error(a.span, f"'{name}' cannot print a value of type {ty}")
            return VOID
        if name == "spawn":
            return self.spawn(e)
        # len
        if len(e.args) != 1:
            self.error(e.span, f"'len' takes 1 argument but {len(e.args)} were given")
            raise _Fail
        ty = self.expr(e.args[0])
        if ty != STR and not ty.is_array:
            self.error(e.args[0].span, f"'len' needs an array or a str, found {ty}")
        return INT

    def spawn(self, e: A.Call) -> Type:
        if len(e.args) != 2:
            self.error(e.span, f"'spawn' takes 2 arguments but {len(e.args)} "
                               f"{'were' if len(e.args) != 1 else 'was'} given")
            if e.args:  # the first is still in the function's place
                self.spawned_function(e.args[0])
            for a in e.args[1:]:
                self.quiet_expr(a)
            return INT
        f, arg = e.args
        self.spawned_function(f)
        try:
            ty = self.expr(arg)
        except _Fail:
            return INT
        if ty != INT:
            self.error(arg.span, f"argument 2 of 'spawn' must be int, found {ty}")
        return INT

    def spawned_function(self, f: A.Expr) -> None:
        """Check that `f`, the first argument of `spawn`, names a function fn(int) -> int."""
        want = "the first argument of 'spawn' must be a function fn(int) -> int"
        if not isinstance(f, A.Name) or self.lookup_local(f.name) != -1:
            # Any other expression (a local included) is a value, which is not a function.
            try:
                ty = self.expr(f, allow_void=True)
            except _Fail:
                return
            self.error(f.span, f"{want}, found {ty}")
            return
        # lookup() records `f` as a dependency, so a change of its signature re-checks us.
        d = self.lookup(f.name)
        if d is None:
            if f.name in BUILTINS:
                self.error(f.span, f"{want}, found built-in function '{f.name}'")
            elif f.name not in self.unparsed:
                self.error(f.span, f"unknown function '{f.name}'")
            return
        if isinstance(d, A.GlobalDecl):
            f.kind = "global"
            if d.ty is not None:
                self.error(f.span, f"{want}, found {d.ty}")
            return
        f.kind = "fn"
        f.ty = VOID  # no value: the code generator takes the function's address
        if d.is_extern:
            self.extern_uses.append((d.name, f.span))
        if d.result_type is None:  # its signature had errors, already reported
            return
        if d.param_types != [INT] or d.variadic or d.result_type != INT:
            self.error(f.span, f"{want}, found {signature(d)}")


def signature(d: A.FnDecl) -> str:
    params = ", ".join([str(t) for t in d.param_types] + (["..."] if d.variadic else []))
    result = "" if d.result_type == VOID else f" -> {d.result_type}"
    return f"fn({params}){result}"


def article(ty: Type) -> str:
    return f"an {ty}" if ty.name == "int" else f"a {ty}"


def zero_value(ty: Type) -> object:
    """The value of a global without initializer; None stands for an all-zero array."""
    if ty.is_array:
        return None
    return {"int": 0, "bool": False, "str": b""}[ty.name]


def returns(s: A.Stmt) -> bool:
    """Whether control can never fall off the end of `s`."""
    if isinstance(s, A.Return):
        return True
    if isinstance(s, A.Block):
        return any(returns(x) for x in s.stmts)
    if isinstance(s, A.If):
        return s.els is not None and returns(s.then) and returns(s.els)
    if isinstance(s, A.While):
        return isinstance(s.cond, A.BoolLit) and s.cond.value and not breaks(s.body)
    if isinstance(s, A.ExprStmt):
        e = s.expr
        return isinstance(e, A.Call) and isinstance(e.callee, A.Name) and e.builtin and \
            e.callee.name == "exit"
    return False


def breaks(s: A.Stmt) -> bool:
    """Whether `s` contains a `break` of the loop it sits in (not of a nested loop)."""
    if isinstance(s, A.Break):
        return True
    if isinstance(s, A.Block):
        return any(breaks(x) for x in s.stmts)
    if isinstance(s, A.If):
        return breaks(s.then) or (s.els is not None and breaks(s.els))
    return False


def export_names(d: A.Decl) -> list[str]:
    """The names `d` exports, as written (before checking)."""
    return [next((t for k, t, _ in e.args if k == "name"), d.name) for e in d.exports]


def check(source: Source, decls: list[A.Decl], syntax_errors: list[Diagnostic] | None = None,
          unparsed: set[str] | None = None,
          known: Callable[[str], A.Decl | None] | None = None,
          need_main: bool = True) -> Program:
    """Check the parsed declarations; raise CompileError with these and the syntax errors."""
    return Checker(source, decls, syntax_errors or [], unparsed or set(), known,
                   need_main).run()
