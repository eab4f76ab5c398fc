"""Parsing one declaration with lark into the syntax tree of `ast.py`.

The grammar lives in `grammar.lark`. Lark's LALR parser calls the `_Build` transformer as it
reduces, so no intermediate parse tree is built; spans come from the tokens. Lark's exceptions
and bad escapes in string literals become `Diagnostic`s at file positions.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from lark import Lark, Token, Transformer
from lark import __version__ as LARK_VERSION
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from toyc import ast as A
from toyc.source import Diagnostic, Span
from toyc.split import Chunk

_TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "STRING": "a string",
    "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "LBRACK": "'['",
    "RBRACK": "']'", "SEMI": "';'", "COLON": "':'", "COMMA": "','", "ARROW": "'->'", "EQ": "'='",
    "ASSIGN_OP": "an assignment operator", "EQEQ": "'=='", "NE": "'!='", "LE": "'<='",
    "GE": "'>='", "LT": "'<'", "GT": "'>'", "SHL": "'<<'", "SHR": "'>>'", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "PERCENT": "'%'", "AMP": "'&'",
    "PIPE": "'|'", "CARET": "'^'", "TILDE": "'~'", "ELLIPSIS": "'...'", "$END": "end of input",
}
_EXPR_START = {"NAME", "INT", "STRING", "LPAR", "LBRACK", "MINUS", "TILDE", "NOT", "TRUE", "FALSE"}
_COMPARISONS = {"EQEQ", "NE", "LT", "LE", "GT", "GE"}
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "0": b"\0", "\\": b"\\", '"': b'"'}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    if name.startswith("__ANON") or name == "COMMA":
        return "','"
    return f"'{name.lower()}'"


def _describe_expected(expected: set[str]) -> str:
    items = set()
    if len(expected & _EXPR_START) >= 3:
        items.add("an expression")
        expected = expected - _EXPR_START
    items |= {_describe_terminal(t) for t in expected}
    if len(items) > 3:
        # A long list hides the likely fix: name the closer a declaration most often lacks.
        for key in ("SEMI", "RPAR", "RBRACK", "RBRACE"):
            if key in expected:
                return _describe_terminal(key)
        if "an expression" in items:
            return "an expression"
    ordered = sorted(items)
    if len(ordered) > 6:
        ordered = ordered[:6] + ["..."]
    if len(ordered) == 1:
        return ordered[0]
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of input"
    text = str(tok)
    if len(text) > 20:
        text = text[:20] + "..."
    return f"'{text}'"


class _Build(Transformer):
    """Builds `ast` nodes bottom-up as the LALR parser reduces."""

    def __init__(self):
        super().__init__()
        self.line_off = 0
        self.col_off = 0
        self.errors: list[Diagnostic] = []

    def _span(self, tok: Token) -> Span:
        col = tok.column + self.col_off if tok.line == 1 else tok.column
        end_col = tok.end_column + self.col_off if tok.end_line == 1 else tok.end_column
        return Span(tok.line + self.line_off, col, tok.end_line + self.line_off, end_col)

    # ---- declarations
    def fn_decl(self, c):
        exports, fn, name, _lp, params, rp, _arrow, result, body = c
        return self._fn(A.FnDecl(self._span(fn).to(body.span), str(name), self._span(name),
                                 [], result, body, exports), params)

    def extern_fn(self, c):
        exports, ext, _fn, name, _lp, params, _rp, _arrow, result, semi = c
        return self._fn(A.FnDecl(self._span(ext).to(self._span(semi)), str(name),
                                 self._span(name), [], result, None, exports, is_extern=True),
                        params)

    def _fn(self, f: A.FnDecl, items: list | None) -> A.FnDecl:
        """Give `f` its parameters from `items`, where each `...` is a token."""
        for item in items or []:
            if isinstance(item, Token):
                f.ellipses.append(self._span(item))
            else:
                f.params.append(item)
        f.variadic = bool(items) and isinstance(items[-1], Token)
        return f

    def var_decl(self, c):
        exports, tl, var, name, _colon, ty, _eq, init, semi = c
        first = tl if tl is not None else var
        return A.GlobalDecl(self._span(first).to(self._span(semi)), "var", str(name),
                            self._span(name), ty, init, exports, threadlocal=tl is not None)

    def const_decl(self, c):
        exports, const, name, _colon, ty, _eq, init, semi = c
        return A.GlobalDecl(self._span(const).to(self._span(semi)), "const", str(name),
                            self._span(name), ty, init, exports)

    def extern_var(self, c):
        exports, ext, tl, _var, name, _colon, ty, semi = c
        return A.GlobalDecl(self._span(ext).to(self._span(semi)), "var", str(name),
                            self._span(name), ty, None, exports, threadlocal=tl is not None,
                            is_extern=True)

    def exports(self, c):
        return list(c)

    def export(self, c):
        kw, _lp, args, rp = c
        out = []
        for tok in args or []:
            if tok.type == "STRING":
                out.append(("name", self._string(tok).decode("utf-8", "replace"),
                            self._span(tok)))
            else:
                out.append(("word", str(tok), self._span(tok)))
        end = self._span(rp) if rp is not None else self._span(kw)
        return A.Export(self._span(kw).to(end), out)

    def export_args(self, c):
        return [t for t in c if t is not None]

    def export_arg(self, c):
        return c[0]

    def params(self, c):
        return [p for p in c if p is not None]

    def param(self, c):
        name, _colon, ty = c
        return A.Param(self._span(name).to(ty.span), str(name), ty)

    def type_name(self, c):
        return A.TypeName(self._span(c[0]), str(c[0]))

    def array_type(self, c):
        lb, elem, _semi, length, rb = c
        return A.ArrayTypeExpr(self._span(lb).to(self._span(rb)), elem, length)

    # ---- statements
    def block(self, c):
        return A.Block(self._span(c[0]).to(self._span(c[-1])), list(c[1:-1]))

    def stmt(self, c):
        return c[0]

    def let_stmt(self, c):
        let, name, _colon, ty, _eq, init, semi = c
        return A.Let(self._span(let).to(self._span(semi)), str(name), self._span(name), ty, init)

    def assign(self, c):
        target, op, value, semi = c
        return A.Assign(target.span.to(self._span(semi)), str(op), target, value, self._span(op))

    def expr_stmt(self, c):
        expr, semi = c
        return A.ExprStmt(expr.span.to(self._span(semi)), expr)

    def if_stmt(self, c):
        kw, cond, then, _else, els = c
        end = els.span if els is not None else then.span
        return A.If(self._span(kw).to(end), cond, then, els)

    def while_stmt(self, c):
        kw, cond, body = c
        return A.While(self._span(kw).to(body.span), cond, body)

    def break_stmt(self, c):
        return A.Break(self._span(c[0]).to(self._span(c[1])))

    def continue_stmt(self, c):
        return A.Continue(self._span(c[0]).to(self._span(c[1])))

    def return_stmt(self, c):
        kw, value, semi = c
        return A.Return(self._span(kw).to(self._span(semi)), value)

    # ---- expressions
    def binary(self, c):
        lhs, op, rhs = c
        return A.Binary(lhs.span.to(rhs.span), str(op), lhs, rhs, self._span(op))

    def unary(self, c):
        op, operand = c
        span = self._span(op).to(operand.span)
        if op.type == "MINUS" and isinstance(operand, A.IntLit) and operand.value >= 0:
            # A literal with its minus, so that -9223372036854775808 is in range.
            return A.IntLit(span, -operand.value)
        return A.Unary(span, str(op), operand)

    def call(self, c):
        callee, _lp, args, rp = c
        return A.Call(callee.span.to(self._span(rp)), callee, args or [])

    def index(self, c):
        base, _lb, idx, rb = c
        return A.Index(base.span.to(self._span(rb)), base, idx)

    def args(self, c):
        return [a for a in c if a is not None]

    def int_lit(self, c):
        tok = c[0]
        text = str(tok).replace("_", "")
        value = int(text, 0) if text[:2].lower() in ("0x", "0b") else int(text, 10)
        return A.IntLit(self._span(tok), value)

    def str_lit(self, c):
        return A.StrLit(self._span(c[0]), self._string(c[0]))

    def true_lit(self, c):
        return A.BoolLit(self._span(c[0]), True)

    def false_lit(self, c):
        return A.BoolLit(self._span(c[0]), False)

    def name(self, c):
        return A.Name(self._span(c[0]), str(c[0]))

    def paren(self, c):
        return c[1]

    def array_lit(self, c):
        lb, elems, rb = c
        return A.ArrayLit(self._span(lb).to(self._span(rb)), elems or [])

    def _string(self, tok: Token) -> bytes:
        body = str(tok)[1:-1]
        if "\\" not in body:
            return body.encode("utf-8")
        out = bytearray()
        i = 0
        span = self._span(tok)
        while i < len(body):
            ch = body[i]
            if ch != "\\":
                out += ch.encode("utf-8")
                i += 1
                continue
            esc = body[i + 1]
            if esc in _ESCAPES:
                out += _ESCAPES[esc]
                i += 2
            elif esc == "x" and _is_hex(body[i + 2 : i + 4]):
                out.append(int(body[i + 2 : i + 4], 16))
                i += 4
            else:
                col = span.col + 1 + i
                bad = body[i : i + 4] if esc == "x" else body[i : i + 2]
                what = "\\x needs two hex digits" if esc == "x" else f"unknown escape '{bad}'"
                self.errors.append(
                    Diagnostic(Span(span.line, col, span.line, col + len(bad)),
                               f"invalid escape sequence: {what}"))
                i += 2
        return bytes(out)


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


@functools.cache
def _parser() -> tuple[Lark, _Build]:
    build = _Build()
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    options = dict(start="decl", parser="lalr", lexer="basic", transformer=build,
                   maybe_placeholders=True)
    # Building the LALR tables takes longer than most incremental updates; lark can keep them
    # in a file. It lives in the user's own cache directory (lark's default is a shared
    # temporary directory), named after the grammar and lark's version.
    key = hashlib.sha256(f"{grammar}{LARK_VERSION}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toyc"
    try:
        base.mkdir(parents=True, exist_ok=True)
        return Lark(grammar, cache=str(base / f"grammar-{key}.lark-cache"), **options), build
    except OSError:
        return Lark(grammar, cache=False, **options), build


def parse_chunk(chunk: Chunk) -> tuple[A.Decl | None, list[Diagnostic]]:
    """Parse one declaration; return it (or None) and the errors found in it."""
    lark, build = _parser()
    build.line_off = chunk.line - 1
    build.col_off = chunk.col - 1
    build.errors = []
    try:
        decl = lark.parse(chunk.text)
    except UnexpectedInput as e:
        return None, [_syntax_error(e, chunk, build)]
    return decl, build.errors


def _syntax_error(e: UnexpectedInput, chunk: Chunk, build: _Build) -> Diagnostic:
    text = chunk.text
    if isinstance(e, UnexpectedCharacters):
        line, col = e.line, e.column
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        if ch == '"':
            msg = "unterminated string literal"
        elif ch.isprintable() and not ch.isspace():
            msg = f"unexpected character '{ch}'"
        else:
            msg = f"unexpected character U+{ord(ch):04X}" if ch else "unexpected end of input"
        width = 1
    elif isinstance(e, UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        line, col = tok.line, tok.column
        width = max(1, len(str(tok))) if tok.end_line == tok.line else 1
        expected = set(e.expected)
        if tok.type in _COMPARISONS and not expected & _COMPARISONS:
            msg = "comparison operators cannot be chained; use 'and' or parentheses"
        else:
            wanted = _in_context(text, tok.start_pos, expected) or _describe_expected(expected)
            msg = f"expected {wanted}, found {_describe_token(tok)}"
    else:
        # End of the declaration: point just past its last token.
        expected = set(getattr(e, "expected", None) or [])
        end = _last_token_end(text)
        line = text.count("\n", 0, end) + 1
        col = end - (text.rfind("\n", 0, end) + 1) + 1
        width = 1
        if isinstance(e, UnexpectedEOF | UnexpectedToken) and expected:
            wanted = _in_context(text, end, expected) or _describe_expected(expected)
            msg = f"expected {wanted} at end of declaration"
        else:
            msg = "unexpected end of declaration"
    if line == 1:
        col += build.col_off
    line += build.line_off
    return Diagnostic(Span(line, col, line, col + width), msg)


_SCAN = re.compile(r'//[^\n]*|"(?:[^"\\\n]|\\.)*"?|[()\[\]{};]|\S')
_CLOSER = {"(": ("RPAR", "')'"), "[": ("RBRACK", "']'"), "{": ("RBRACE", "'}'")}


def _in_context(text: str, pos: int, expected: set[str]) -> str | None:
    """What the parser needs at `pos`, judged from the text before it: LALR's expected set
    merges states, so it offers `;` after `if x` and `]` inside a call."""
    stack: list[str] = []
    stmt_start = 0
    for m in _SCAN.finditer(text, 0, pos):
        c = m.group()
        if c in "([{":
            stack.append(c)
        elif c in ")]}" and stack:
            stack.pop()
        if c in ";{}":
            stmt_start = m.end()
    head = text[stmt_start:pos].split(None, 1)[:1]
    if head and head[0] in ("if", "while", "else") and "LBRACE" in expected:
        return "'{'"
    if stack and stack[-1] in "([":
        terminal, closer = _CLOSER[stack[-1]]
        if terminal in expected:
            return f"',' or {closer}" if "COMMA" in expected else closer
    return None


def _last_token_end(text: str) -> int:
    end = 0
    for m in _SCAN.finditer(text):
        if not m.group().startswith("//"):
            end = m.end()
    return end
