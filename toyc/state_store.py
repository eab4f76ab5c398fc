"""The state store: a session's state, as an SQLite database beside the output.

A state is a nested dict of plain data (`Session.save_state` says what is in it). Most of it is
small and is kept as one JSON document, the head. The long lists (declarations, atoms,
symbols, relocation targets, debug entries, the string table, the history) are cut into pages
of rows; each page is one row of the `pages` table, and the head names it, in its list's
place, by id and digest.

Saving compares each page's rows with the rows last read or written for the same page (by
value, and so by identity first: lists a state holds are replaced when they change, never
changed in place) and writes only the pages that differ, the head, and nothing else, in one
transaction. The work of an update's save follows its change, apart from building and comparing
rows, which is plain data against plain data.

Lists addressed by index, which only grow (atoms, symbols), are cut every N rows. Lists whose
rows are keyed by name and can be inserted or removed anywhere (declarations, debug entries)
end a page after a row whose name hashes to 0 modulo N, so an inserted row changes one page,
not all after it. A short list whose first rows are dropped (the history) has a page per row.

Trust: the head and every page carry a BLAKE2 digest of their bytes, checked when read against
the digest the head records, so a flipped bit in anything the state says is a damaged state,
never a wrong one (a bit flipped in what SQLite does not use changes nothing). The schema must
be exactly this module's: a database with other tables, triggers or views is another format.
While an update writes the output, the head is marked pending; a state read in that condition
is not trusted. A fresh state (a full build) is written beside the old one and renamed over it.
State is data: JSON and SQLite rows, never code.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = [
    ("table", "head", "CREATE TABLE head(id INTEGER PRIMARY KEY CHECK (id = 0), "
     "generation TEXT NOT NULL, pending INTEGER NOT NULL, digest BLOB NOT NULL, "
     "data BLOB NOT NULL)"),
    ("table", "pages", "CREATE TABLE pages(id INTEGER PRIMARY KEY, data BLOB NOT NULL)"),
]
MAGIC = b"SQLite format 3\x00"
_MARK = "\x00pages"  # a head's key: this value is a paged list (its kind and its pages)


class StateError(Exception):
    """A state that cannot be trusted; the message is the reason, for a full build's line."""


@dataclass(slots=True)
class Page:
    id: int
    digest: str
    rows: list | str


@dataclass
class Snapshot:
    """What the store last read or wrote: the database's generation and, per paged list, its
    pages by key (page number, or first row's name), to compare the next save's rows with."""

    generation: str = ""
    pages: dict[str, dict[object, Page]] = field(default_factory=dict)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _cut(value: list | str, how: tuple[str, int]) -> list[tuple[object, list | str]]:
    """`value` as (key, rows) pages."""
    kind, n = how
    if kind == "text":
        return [(k, value[k * n : (k + 1) * n]) for k in range(-(-len(value) // n))]
    if kind == "fixed":
        return [(k, value[k * n : (k + 1) * n]) for k in range(-(-len(value) // n))]
    if kind == "each":  # few rows, dropped at the front: a page per row (see `_write`)
        return [(k, [row]) for k, row in enumerate(value)]
    pages, start = [], 0
    for i, row in enumerate(value):
        if zlib.crc32(row[0].encode()) % n == 0 or i + 1 - start >= 8 * n:
            pages.append((value[start][0], value[start : i + 1]))
            start = i + 1
    if start < len(value):
        pages.append((value[start][0], value[start:]))
    return pages


def _get(state: dict, path: str):
    node = state
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _with(state: dict, path: str, value) -> dict:
    """A copy of `state` with `path` set to `value`, copying only the dicts on the path."""
    head, _, rest = path.partition("/")
    out = dict(state)
    out[head] = _with(state[head], rest, value) if rest else value
    return out


def _connect(path: Path | str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA trusted_schema = OFF")
    con.execute("PRAGMA cell_size_check = ON")
    # A killed process leaves the rollback journal, which the next open plays back; what a
    # machine crash could leave half written, the digests notice.
    con.execute("PRAGMA synchronous = OFF")
    return con


def _check_schema(con: sqlite3.Connection) -> None:
    rows = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    if rows != sorted(SCHEMA, key=lambda r: r[1]):
        raise StateError("the state file has another format")


def _open_existing(path: Path) -> sqlite3.Connection:
    with open(path, "rb") as f:
        start = f.read(len(MAGIC))
    if start != MAGIC:
        raise StateError("the state file is damaged (not a toyc state database)")
    con = _connect(path)
    try:
        _check_schema(con)
    except BaseException:
        con.close()
        raise
    return con


def load(path: Path, paged: dict[str, tuple[str, int]]) -> tuple[dict, Snapshot]:
    """The state at `path` and what was read, or StateError with the reason. FileNotFoundError
    when there is none."""
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        con = _open_existing(path)
        try:
            con.execute("BEGIN")
            row = con.execute("SELECT generation, pending, digest, data FROM head").fetchone()
            if row is None:
                raise StateError("the state file is damaged (it has no head)")
            generation, pending, head_digest, data = row
            if pending:
                raise StateError("the last update did not finish")
            if not isinstance(data, bytes) or not isinstance(generation, str) or \
                    head_digest != digest(generation.encode() + b"\n" + data).encode():
                raise StateError("the state file is damaged (its digest does not match)")
            pages = dict(con.execute("SELECT id, data FROM pages").fetchall())
            con.execute("COMMIT")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StateError(f"the state file is damaged ({e})") from None
    try:
        return _assemble(json.loads(data), generation, pages, paged)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        raise StateError("the state file is corrupt (its lists are malformed)") from None


def _assemble(state: dict, generation: str, pages: dict[int, bytes],
              paged: dict[str, tuple[str, int]]) -> tuple[dict, Snapshot]:
    """The head `state` with its paged lists put back together from `pages`."""
    snapshot = Snapshot(generation)
    for path_, how in paged.items():
        marker = _get(state, path_)
        if marker is None:
            continue
        if not isinstance(marker, dict) or marker.get(_MARK) != how[0]:
            raise StateError("the state file is corrupt (a list is not where it belongs)")
        value: list | str = "" if how[0] == "text" else []
        kept = snapshot.pages[path_] = {}
        for k, (page_id, page_digest) in enumerate(marker["pages"]):
            blob = pages.get(page_id)
            if not isinstance(blob, bytes) or digest(blob) != page_digest:
                raise StateError("the state file is damaged (a page's digest does not match)")
            rows = json.loads(blob)
            if how[0] == "text":
                value += rows
            else:
                value.extend(rows)
            key = rows[0][0] if how[0] == "named" else k
            kept[key] = Page(page_id, page_digest, rows)
        state = _with(state, path_, value)
    return state, snapshot


def read(path: Path, paged: dict[str, tuple[str, int]]) -> dict | None:
    """The state at `path` if it is there and intact, else None (for `toyc inspect`)."""
    try:
        return load(path, paged)[0]
    except (OSError, StateError, ValueError):
        return None


def save(path: Path, state: dict, paged: dict[str, tuple[str, int]],
         snapshot: Snapshot | None = None) -> Snapshot:
    """Write `state` at `path`: into the database `snapshot` was taken of, writing only the
    pages that changed since, or (no snapshot, or the database is no longer that one) as a
    fresh database renamed over `path`. Returns what is now there. OSError and sqlite3.Error
    pass through; a failed save leaves either the old state or none trusted."""
    con = None
    if snapshot is not None:
        try:
            con = _open_existing(path)
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT generation FROM head").fetchone()
            if row is None or row[0] != snapshot.generation:
                con.execute("ROLLBACK")
                con.close()
                con = None
        except (OSError, StateError, sqlite3.Error):
            if con is not None:
                con.close()
            con = None
    if con is not None:
        try:
            out = _write(con, state, paged, snapshot)
            con.execute("COMMIT")
            return out
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        con = _connect(tmp)
        try:
            con.execute("PRAGMA journal_mode = OFF")  # a new file: renamed only when whole
            for _, _, sql in SCHEMA:
                con.execute(sql)
            con.execute("BEGIN")
            out = _write(con, state, paged, None)
            con.execute("COMMIT")
        finally:
            con.close()
        # A journal left by a process killed while writing the old file would be played back
        # into the new one.
        Path(f"{path}-journal").unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _write(con: sqlite3.Connection, state: dict, paged: dict[str, tuple[str, int]],
           snapshot: Snapshot | None) -> Snapshot:
    out = Snapshot(secrets.token_hex(16))
    head = state
    unused: set[int] = set()
    for path_, how in paged.items():
        value = _get(state, path_)
        if value is None:
            continue
        before = snapshot.pages.get(path_, {}) if snapshot is not None else {}
        unused.update(p.id for p in before.values())
        refs, kept = [], out.pages.setdefault(path_, {})
        for key, rows in _cut(value, how):
            if how[0] == "each":  # the same row may be at another place now
                page = next((p for p in before.values() if p.rows[0] == rows[0]), None)
            else:
                page = before.get(key)
            if page is None or page.rows != rows:
                blob = json.dumps(rows, separators=(",", ":")).encode()
                page_id = con.execute("INSERT INTO pages(data) VALUES (?)", (blob,)).lastrowid
                page = Page(page_id, digest(blob), rows)
            else:
                unused.discard(page.id)
            kept[key] = page
            refs.append([page.id, page.digest])
        head = _with(head, path_, {_MARK: how[0], "pages": refs})
    con.executemany("DELETE FROM pages WHERE id = ?", [(i,) for i in sorted(unused)])
    data = json.dumps(head, separators=(",", ":")).encode()
    con.execute("INSERT OR REPLACE INTO head VALUES (0, ?, 0, ?, ?)",
                (out.generation, digest(out.generation.encode() + b"\n" + data).encode(), data))
    return out


def generation(path: Path) -> str | None:
    """The generation of the state at `path` (changed by every save), None if there is no
    trusted state."""
    try:
        con = _open_existing(path)
        try:
            row = con.execute("SELECT generation, pending FROM head").fetchone()
        finally:
            con.close()
    except (OSError, StateError, sqlite3.Error):
        return None
    return row[0] if row is not None and not row[1] else None


def mark_pending(path: Path) -> None:
    """Before an update writes the output: the state is not to be trusted until it is saved
    again. A state that cannot be marked is removed."""
    try:
        con = _open_existing(path)
        try:
            con.execute("UPDATE head SET pending = 1")
        finally:
            con.close()
    except FileNotFoundError:
        return
    except (OSError, StateError, sqlite3.Error):
        remove(path)


def remove(path: Path) -> None:
    for p in (path, Path(f"{path}-journal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
