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


@dataclass(slots=True)
class Chunk:
    text: str
    offset: int  # character offset of the first character in the file
    line: int
    col: int


def split(text: str) -> list[Chunk]:
    starts: list[tuple[int, int]] = []  # (start, end) character ranges
    n = len(text)
    start = _SKIP.match(text, 0).end()
    depth = 0  # braces
    nest = 0  # brackets and parentheses outside braces: `var a: [int; 4];` has a `;` inside
    head = False
    for m in _TOKENS.finditer(text):
        pos = m.start()
        if start >= n:
            break
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
            starts.append((start, m.end()))
            start = _SKIP.match(text, m.end()).end()
            depth = nest = 0
            head = False
            continue
        # a declaration keyword
        if depth > 0 or head:
            starts.append((start, pos))
            start = pos
            depth = nest = 0
            head = False
        if tok in _HEADS:
            head = True
    if start < n:
        starts.append((start, n))

    chunks = []
    line, line_start, last = 1, 0, 0
    for s, e in starts:
        nl = text.count("\n", last, s)
        if nl:
            line += nl
            line_start = text.rfind("\n", 0, s) + 1
        last = s
        chunks.append(Chunk(text[s:e].rstrip(), s, line, s - line_start + 1))
    return chunks
