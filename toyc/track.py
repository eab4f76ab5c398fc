"""Declaration tracking: what changed since the last good build, and who depends on it.

The tracker remembers the source text of the last good build and, per top-level declaration in
file order, where it is, its interface (what other declarations see of it: a function's
signature, a global's kind and type, a constant's value), the top-level names it uses, and
whether its code holds line fields. `plan` compares a new text with the old one without looking
at the unchanged parts: the common prefix and suffix are found by comparing strings, only the
region between is split into declarations again (resuming the splitter at a declaration start
and stopping where its cuts line up with the old ones), and declarations after the edit are
only shifted. The work grows with the size of the edit, not of the program, except for the
shift, which is a pass over plain numbers.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from toyc import ast as A
from toyc.source import Span
from toyc.split import Chunk, chunks_from
from toyc.types import SCALARS, VOID, Type, array_of

_BLOCK = 1 << 16


@dataclass(slots=True, eq=False)
class Tracked:
    """One declaration of the last good build. Where it is lives in the tracker's position
    lists, which an edit shifts wholesale."""

    name: str
    kind: str  # "fn", "var" or "const"
    col: int
    iface: list  # see `interface`
    deps: list[str] = field(default_factory=list)
    has_lines: bool = False  # its code holds line fields
    exports: list = field(default_factory=list)  # [symbol name, linkage] per export


@dataclass(slots=True)
class Where:
    """A declaration's place in a text: character offsets of its first character and after
    its last, and its first line."""

    start: int
    end: int
    line: int


@dataclass(slots=True)
class Plan:
    """How a new text differs from the tracked one."""

    text: str
    first: int  # tracked declarations [first, stop) are replaced by `chunks`
    stop: int
    chunks: list[Chunk]
    same: list[int]  # per chunk: the tracked declaration with the same text and place, or -1
    delta: int  # characters and lines added before the declarations after the edit
    line_delta: int

    def changed(self) -> list[Chunk]:
        return [c for c, s in zip(self.chunks, self.same, strict=True) if s < 0]


def interface(d: A.Decl) -> list:
    """What users of a checked declaration depend on, as plain data."""
    extern = "extern " if d.is_extern else ""
    if isinstance(d, A.FnDecl):
        # A variadic extern's parameters end with "...": its callers are checked and called
        # differently (x86_64 sets al before the call).
        params = [str(t) for t in d.param_types] + (["..."] if d.variadic else [])
        return [extern + "fn", params, str(d.result_type)]
    value = encode_value(d.value) if d.kind == "const" else None
    tls = "threadlocal " if d.threadlocal else ""
    return [extern + tls + d.kind, str(d.ty), value]


def encode_value(v: object) -> object:
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, list):
        return [encode_value(x) for x in v]
    return v


def decode_value(v: object) -> object:
    if isinstance(v, dict):
        return bytes.fromhex(v["bytes"])
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    return v


def parse_type(s: str) -> Type:
    if s.startswith("["):
        elem, length = s[1:-1].split("; ")
        return array_of(parse_type(elem), int(length))
    return VOID if s == "void" else SCALARS[s]


def stub(t: Tracked, line: int) -> A.Decl:
    """A stand-in for an unchanged declaration starting on `line`, carrying only its
    interface."""
    span = Span(line, t.col, line, t.col + 1)
    if t.kind == "fn":
        kind, params, result = t.iface
        variadic = params[-1:] == ["..."]
        return A.FnDecl(span, t.name, span, [], None, None, [],
                        is_extern=kind.startswith("extern"), variadic=variadic,
                        param_types=[parse_type(p) for p in params[:-1 if variadic else None]],
                        result_type=parse_type(result))
    kind, ty, value = t.iface
    return A.GlobalDecl(span, kind.split()[-1], t.name, span, None, None, [],
                        threadlocal="threadlocal" in kind, is_extern=kind.startswith("extern"),
                        ty=parse_type(ty), value=decode_value(value))


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i : i + _BLOCK] == b[i : i + _BLOCK]:
        i += _BLOCK
    hi = min(i + _BLOCK, n)
    while i < hi:  # binary search inside the block that differs
        mid = (i + hi + 1) // 2
        if a[i:mid] == b[i:mid]:
            i = mid
        else:
            hi = mid - 1
    return i


def common_suffix(a: str, b: str, limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[len(a) - i - min(_BLOCK, n - i) : len(a) - i] == \
            b[len(b) - i - min(_BLOCK, n - i) : len(b) - i]:
        i += min(_BLOCK, n - i)
    hi = min(i + _BLOCK, n)
    while i < hi:
        mid = (i + hi + 1) // 2
        if a[len(a) - mid : len(a) - i] == b[len(b) - mid : len(b) - i]:
            i = mid
        else:
            hi = mid - 1
    return i


def _col(text: str, pos: int) -> int:
    return pos - (text.rfind("\n", 0, pos) + 1) + 1


class Tracker:
    def __init__(self, text: str, decls: list[Tracked], where: list[Where]):
        self.text = text
        self.decls = decls  # in file order
        # Per declaration, in the same order: start, end and first line. Plain lists of
        # numbers, so that shifting the declarations after an edit is a list comprehension.
        self.starts = [w.start for w in where]
        self.ends = [w.end for w in where]
        self.lines = [w.line for w in where]
        self.flags = [d.has_lines for d in decls]
        self.by_name: dict[str, Tracked] = {d.name: d for d in decls}
        self.users: dict[str, set[str]] = {}  # name -> declarations that use it
        self.exported: dict[str, str] = {}  # export name -> the declaration exporting it
        for d in decls:
            self._link(d)

    def index(self, t: Tracked) -> int:
        return self.decls.index(t)  # by identity: Tracked compares so

    def _link(self, d: Tracked) -> None:
        for n in d.deps:
            self.users.setdefault(n, set()).add(d.name)
        for export, _ in d.exports:
            self.exported[export] = d.name

    def _unlink(self, d: Tracked) -> None:
        for export, _ in d.exports:
            if self.exported.get(export) == d.name:
                del self.exported[export]
        for n in d.deps:
            users = self.users.get(n)
            if users is not None:
                users.discard(d.name)
                if not users:
                    del self.users[n]

    def get(self, name: str) -> Tracked | None:
        return self.by_name.get(name)

    # ---- comparing texts ----------------------------------------------------------------------

    def plan(self, new: str) -> Plan | None:
        """How `new` differs from the tracked text, or None if it does not."""
        old = self.text
        if old == new:
            return None
        p = common_prefix(old, new)
        s = common_suffix(old, new, min(len(old), len(new)) - p)
        old_end, new_end = len(old) - s, len(new) - s
        delta = new_end - old_end
        decls, starts = self.decls, self.starts
        first = bisect.bisect_right(starts, p) - 1
        if first < 0:
            first, pos, line = 0, 0, 1
        else:
            pos, line = starts[first], self.lines[first]
        chunks: list[Chunk] = []
        stop = first
        for chunk in chunks_from(new, pos, line, pos - _col(new, pos) + 1):
            start = chunk.offset
            old_start = start - delta
            while stop < len(decls) and starts[stop] < old_start:
                stop += 1
            if (start >= new_end and stop < len(decls) and starts[stop] == old_start
                    and old_start >= old_end and chunk.col == decls[stop].col):
                break
            chunks.append(chunk)
        else:
            stop = len(decls)
        # Unchanged: a declaration of the window with the same text in the same column,
        # wherever it went (declarations may be moved around in the file).
        by_text: dict[tuple[str, int], list[int]] = {}
        for i in range(stop - 1, first - 1, -1):
            by_text.setdefault((old[starts[i] : self.ends[i]], decls[i].col), []).append(i)
        same = []
        for c in chunks:
            candidates = by_text.get((c.text, c.col))
            same.append(candidates.pop() if candidates else -1)
        line_delta = new.count("\n", p, new_end) - old.count("\n", p, old_end)
        return Plan(new, first, stop, chunks, same, delta, line_delta)

    # ---- committing ---------------------------------------------------------------------------

    def commit(self, plan: Plan, records: list[tuple[Tracked, Where]],
               rechecked: dict[str, Tracked]) -> int:
        """Make `plan`'s text the tracked one. `records` holds a record and its place per
        changed chunk, in order; `rechecked` new interface and uses of unchanged declarations
        checked again. Returns how many declarations after the edit with line fields moved to
        other lines (not counting those checked again)."""
        first, stop = plan.first, plan.stop
        records = iter(records)
        replaced, where = [], []
        for c, i in zip(plan.chunks, plan.same, strict=True):
            if i >= 0:
                d = self.decls[i]
                d.col = c.col
                w = Where(c.offset, c.offset + len(c.text), c.line)
            else:
                d, w = next(records)
            replaced.append(d)
            where.append(w)
        delta, line_delta = plan.delta, plan.line_delta
        shifted = 0
        if line_delta:
            shifted = sum(self.flags[stop:]) - sum(
                1 for name in rechecked
                if self.by_name[name].has_lines and self.index(self.by_name[name]) >= stop)
        for d in self.decls[first:stop]:
            self._unlink(d)
            if self.by_name.get(d.name) is d:
                del self.by_name[d.name]
        self.decls[first:stop] = replaced
        self.starts[first:] = [w.start for w in where] + [x + delta for x in self.starts[stop:]]
        self.ends[first:] = [w.end for w in where] + [x + delta for x in self.ends[stop:]]
        self.lines[first:] = [w.line for w in where] + [x + line_delta
                                                        for x in self.lines[stop:]]
        for d in replaced:
            if d.name in rechecked:
                continue
            self.by_name[d.name] = d
            self._link(d)
        for name, r in rechecked.items():
            d = self.by_name.get(name) or next(x for x in replaced if x.name == name)
            self._unlink(d)
            d.iface, d.deps, d.has_lines, d.exports = r.iface, r.deps, r.has_lines, r.exports
            self.by_name[name] = d
            self._link(d)
        self.flags[first:stop] = [d.has_lines for d in replaced]
        if rechecked:
            self.flags = [d.has_lines for d in self.decls]
        self.text = plan.text
        return shifted

    # ---- state --------------------------------------------------------------------------------

    def state(self) -> dict:
        """The tracker as plain data: per declaration a row with its text up to the next
        declaration and its length, so that a row changes only with its declaration (places
        follow from the rows, in `from_state`)."""
        text, starts, ends = self.text, self.starts, self.ends
        nexts = starts[1:] + [len(text)]
        return {"head": text[: starts[0]] if starts else text,
                "decls": [[d.name, d.kind, d.col, d.iface, d.deps, d.has_lines, d.exports,
                           text[start:after], end - start]
                          for d, start, end, after in zip(self.decls, starts, ends, nexts,
                                                          strict=True)]}

    @classmethod
    def from_state(cls, state: dict) -> Tracker:
        head = state["head"]
        pieces = [row[7] for row in state["decls"]]
        text = head + "".join(pieces)
        where, start, line = [], len(head), head.count("\n") + 1
        for row, piece in zip(state["decls"], pieces, strict=True):
            if not 0 <= row[8] <= len(piece):
                raise ValueError("a declaration is longer than its text")
            where.append(Where(start, start + row[8], line))
            start += len(piece)
            line += piece.count("\n")
        decls = [Tracked(*row[:7]) for row in state["decls"]]
        return cls(text, decls, where)
