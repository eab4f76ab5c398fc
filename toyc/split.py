"""Cutting a source file into its top-level declarations without parsing it.

A declaration ends at a `;` outside braces or at the `}` that closes its body. A declaration
keyword (`fn`, `var`, `const`, `extern`, `threadlocal`, `export`) cannot appear inside a body or
after a declaration's head, so meeting one there starts a new declaration: a missing `}` or `;`
then costs one error, not the rest of the file. Each piece is parsed on its own, so every
declaration's syntax errors are reported, and the incremental driver can fingerprint pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKENS = re.compile(
    r'//[^\n]*|"(?:[^"\\\n]|\\.)*"?|[{};()\[\]]|\b(?:fn|var|const|threadlocal|extern|export)\b'
)
_SKIP = re.compile(r"(?:\s+|//[^\n]*)*")
_HEADS = {"fn", "var", "const"}
_DECL_NAME = re.compile(r"\b(?:fn|var|const)\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(slots=True)
class Chunk:
    text: str
    offset: int  # character offset of the first character in the file
    line: int
    col: int


def ranges(text: str, pos: int = 0):
    """Yield the (start, end) character range of each declaration from `pos` on.

    `pos` must be 0 or the start of a declaration: the splitter holds no state across one, so
    the incremental driver can re-split from any declaration it knows and stop when the ranges
    line up with old ones again.
    """
    n = len(text)
    start = _SKIP.match(text, pos).end()
    depth = 0  # braces
    nest = 0  # brackets and parentheses outside braces: `var a: [int; 4];` has a `;` inside
    head = False
    for m in _TOKENS.finditer(text, start):
        if start >= n:
            return
        pos = m.start()
        if pos < start:
            continue
        tok = m.group()
        c = tok[0]
        if c == "/" or c == '"':
            continue
        if c == "{":
            depth += 1
            continue
        if c in "([":
            if depth == 0:
                nest += 1
            continue
        if c in ")]":
            if depth == 0 and nest > 0:
                nest -= 1
            continue
        if c == "}" or c == ";":
            if c == "}" and depth > 1:
                depth -= 1
                continue
            if c == ";" and (depth > 0 or nest > 0):
                continue
            yield start, m.end()
            start = _SKIP.match(text, m.end()).end()
            depth = nest = 0
            head = False
            continue
        # a declaration keyword
        if depth > 0 or head:
            yield start, pos
            start = pos
            depth = nest = 0
            head = False
        if tok in _HEADS:
            head = True
    if start < n:
        yield start, n


def make_chunk(text: str, start: int, end: int, line: int, line_start: int) -> Chunk:
    """The chunk for range [start, end) of `text`, which starts on `line`, a line beginning
    at character `line_start`."""
    return Chunk(text[start:end].rstrip(), start, line, start - line_start + 1)


def chunks_from(text: str, pos: int = 0, line: int = 1, line_start: int = 0):
    """Yield the chunk of each declaration from `pos` (0 or a declaration start) on, given the
    line `pos` is on and where that line starts."""
    last = pos
    for s, e in ranges(text, pos):
        nl = text.count("\n", last, s)
        if nl:
            line += nl
            line_start = text.rfind("\n", 0, s) + 1
        last = s
        yield make_chunk(text, s, e, line, line_start)


def split(text: str) -> list[Chunk]:
    return list(chunks_from(text))


def declared_name(text: str) -> str | None:
    """The name a declaration's text declares, found without parsing it."""
    m = _DECL_NAME.search(text)
    return m.group(1) if m else None
