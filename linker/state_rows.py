"""Rows of the state that are rebuilt only for the objects that changed.

Saving the state after an update would otherwise build a row for every atom, symbol and debug
entry of the program. Instead each table remembers the fields its rows were last built from,
taken by one C-level `attrgetter` per object, and compares them page by page with the fields
now: equal pages keep their rows (the same objects, so the state store also sees them as
unchanged at once), and only rows whose fields differ are built again. Lists among the fields
(an atom's relocations and line fields) are compared by identity first: they are replaced
when they change, never changed in place.
"""

from __future__ import annotations

from collections.abc import Callable

PAGE = 256


class Rows:
    """One table's rows and the fields they were built from."""

    def __init__(self, rows: list | None = None, seen: list | None = None):
        self.rows = rows if rows is not None else []
        self.seen = seen if seen is not None else []

    def update(self, now: list, make: Callable[[int], list]) -> list:
        """The rows for objects whose fields are `now`; `make(i)` builds row i."""
        rows, seen = self.rows, self.seen
        del rows[len(now):]
        rows.extend([None] * (len(now) - len(rows)))
        for start in range(0, len(now), PAGE):
            stop = start + PAGE
            if now[start:stop] == seen[start:stop]:
                continue
            for i in range(start, min(stop, len(now))):
                if i >= len(seen) or rows[i] is None or now[i] != seen[i]:
                    rows[i] = make(i)
        self.seen = now
        return rows
