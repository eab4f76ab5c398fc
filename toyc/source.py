"""Source files, positions and diagnostics.

A `Span` is where a piece of syntax sits (1-based line and column, end exclusive); a `Coord`
adds the file and prints as `file:line:col`. A `Diagnostic` is one error; `render` turns it into
the text LANGUAGE.md prescribes: the location line, the source line, and a caret under the span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.line, self.col, other.end_line, other.end_col)


@dataclass(frozen=True, slots=True)
class Coord:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(slots=True)
class Source:
    path: str
    text: str
    _lines: list[str] | None = field(default=None, repr=False)

    def line_text(self, line: int) -> str:
        if self._lines is None:
            self._lines = self.text.split("\n")
        if 1 <= line <= len(self._lines):
            return self._lines[line - 1].rstrip("\r")
        return ""

    def coord(self, span: Span) -> Coord:
        return Coord(self.path, span.line, span.col)


@dataclass(slots=True)
class Diagnostic:
    span: Span
    message: str


class CompileError(Exception):
    """Raised with every diagnostic of a program that cannot be compiled."""

    def __init__(self, source: Source, diagnostics: list[Diagnostic]):
        super().__init__(f"{len(diagnostics)} error(s)")
        self.source = source
        self.diagnostics = diagnostics

    def render(self) -> str:
        return "".join(render(self.source, d) for d in self.diagnostics)


class UserError(Exception):
    """An error about how toyc was used (a missing file, a bad flag): printed, exit status 1."""


MAX_SHOWN_LINE = 400


def render(source: Source, diag: Diagnostic) -> str:
    span = diag.span
    text = source.line_text(span.line)
    head = f"{source.coord(span)}: error: {diag.message}\n"
    if len(text) > MAX_SHOWN_LINE:
        # A megabyte-long line helps nobody: show a window around the column.
        start = max(0, span.col - 1 - MAX_SHOWN_LINE // 2)
        text = text[start : start + MAX_SHOWN_LINE]
        col = span.col - start
    else:
        col = span.col
    width = span.end_col - span.col if span.end_line == span.line else len(text) - col + 1
    width = max(1, min(width, len(text) - col + 1))
    # Keep tabs in the caret line so the caret sits under the right character.
    pad = "".join(c if c == "\t" else " " for c in text[: col - 1])
    return f"{head}    {text}\n    {pad}^{'~' * (width - 1)}\n"


def span_at_offset(text: str, offset: int, length: int = 1) -> Span:
    """The span of `length` characters at character `offset` of `text`."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Span(line, col, line, col + length)


def decode(path: str, data: bytes) -> Source | CompileError:
    """Decode a file's bytes as UTF-8, or say where the first bad byte is."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a byte-order mark says UTF-8 and nothing else
    try:
        return Source(path, data.decode("utf-8"))
    except UnicodeDecodeError as e:
        good = data[: e.start].decode("utf-8")
        source = Source(path, good + "\ufffd" + data[e.end :].decode("utf-8", "replace"))
        where = span_at_offset(source.text, len(good))
        return CompileError(source, [Diagnostic(where, "source is not valid UTF-8")])


def default_output(path: str) -> str:
    """The executable a source builds when no -o names one: `prog.toy` -> `prog`."""
    p = Path(path)
    name = p.stem if p.suffix == ".toy" else "a.out"
    return name or "a.out"
