"""Static archives (`ar` format, as GNU ar writes it): writing one with a symbol index, and
reading one given to the link, with or without an index.

An archive is the magic string, then members, each a 60-byte header and its bytes padded to an
even length. The first member, named "/", is the index the linker searches: how many symbols,
the file offset of the member defining each (big-endian, 4 bytes each), then their names, each
ending in NUL. Member names longer than 15 characters live in a "//" member and are referred to
as "/OFFSET". Dates, owners and modes are fixed, so the same objects give the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from linker.elf_file import LinkError

MAGIC = b"!<arch>\n"
HEADER_SIZE = 60


def _header(name: str, size: int, mode: int = 0o644) -> bytes:
    h = (f"{name:<16}{0:<12}{0:<6}{0:<6}{mode:<8o}{size:<10}").encode() + b"`\n"
    assert len(h) == HEADER_SIZE
    return h


def _member(name: str, data: bytes, mode: int = 0o644) -> bytes:
    return _header(name, len(data), mode) + data + (b"\n" if len(data) % 2 else b"")


def archive(members: list[tuple[str, bytes, list[str]]]) -> bytes:
    """The archive of `members`: (file name, contents, the global symbols it defines)."""
    long_names = b""
    names = []
    for name, _, _ in members:
        if len(name) < 16:
            names.append(name + "/")
        else:
            names.append(f"/{len(long_names)}")
            long_names += name.encode() + b"/\n"
    symbols = [(sym, i) for i, (_, _, syms) in enumerate(members) for sym in syms]
    strings = b"".join(sym.encode() + b"\0" for sym, _ in symbols)
    index_size = 4 + 4 * len(symbols) + len(strings)
    offset = len(MAGIC) + HEADER_SIZE + index_size + index_size % 2
    if long_names:
        offset += HEADER_SIZE + len(long_names) + len(long_names) % 2
    starts = []
    for _, data, _ in members:
        starts.append(offset)
        offset += HEADER_SIZE + len(data) + len(data) % 2
    index = struct.pack(f">I{len(symbols)}I", len(symbols), *(starts[i] for _, i in symbols))
    out = [MAGIC, _member("/", index + strings, 0)]
    if long_names:
        out.append(_member("//", long_names, 0))
    out += [_member(n, data) for n, (_, data, _) in zip(names, members, strict=True)]
    return b"".join(out)


@dataclass(slots=True)
class Member:
    name: str
    offset: int  # of its header in the archive: what the index refers to
    data: bytes


@dataclass
class Archive:
    path: str
    members: list[Member]
    # symbol name -> the members (indices) defining it, in archive order; None: the archive
    # has no index, and the linker reads each member's symbols instead
    index: dict[str, list[int]] | None


def is_archive(data: bytes) -> bool:
    return data.startswith(MAGIC)


def read_archive(data: bytes, path: str) -> Archive:
    """The members of a GNU (or System V) archive, and its symbol index if it has one. Long
    member names ("/OFFSET", from the "//" member) are resolved; a thin archive, or a member
    or header that runs past the end of the file, is a LinkError."""
    if data.startswith(b"!<thin>\n"):
        raise LinkError(f"{path}: thin archives are not supported")
    if not is_archive(data):
        raise LinkError(f"{path}: not an archive")
    pos = len(MAGIC)
    members: list[Member] = []
    symbols: list[tuple[str, int]] = []  # (name, member offset) from the index
    has_index = False
    long_names = b""
    while pos < len(data):
        if data[pos : pos + 1] == b"\n":  # padding some writers leave at the end
            pos += 1
            continue
        header = data[pos : pos + HEADER_SIZE]
        if len(header) < HEADER_SIZE or header[58:60] != b"`\n":
            raise LinkError(f"{path}: truncated or malformed archive (member header at "
                            f"byte {pos})")
        raw = header[:16].decode("latin-1").rstrip()
        try:
            size = int(header[48:58].decode("latin-1").strip() or "0")
        except ValueError:
            raise LinkError(f"{path}: malformed archive (member size at byte {pos})") from None
        start = pos + HEADER_SIZE
        if start + size > len(data):
            raise LinkError(f"{path}: truncated archive (member {raw} ends past the file)")
        body = data[start : start + size]
        if raw == "/" or raw == "/SYM64/":
            has_index = True
            symbols = _index(body, 8 if raw == "/SYM64/" else 4, path)
        elif raw == "//":
            long_names = body
        else:
            members.append(Member(_member_name(raw, long_names, path), pos, body))
        pos = start + size + size % 2
    index = None
    if has_index:
        by_offset = {m.offset: i for i, m in enumerate(members)}
        index = {}
        for name, offset in symbols:
            i = by_offset.get(offset)
            if i is None:
                raise LinkError(f"{path}: the archive's index names no member at byte {offset}")
            index.setdefault(name, []).append(i)
    return Archive(path, members, index)


def _index(body: bytes, width: int, path: str) -> list[tuple[str, int]]:
    fmt = ">I" if width == 4 else ">Q"
    try:
        (count,) = struct.unpack_from(fmt, body, 0)
        offsets = struct.unpack_from(f">{count}{fmt[1]}", body, width)
    except struct.error:
        raise LinkError(f"{path}: malformed archive index") from None
    names = body[width * (count + 1) :].split(b"\0")
    if len(names) < count:
        raise LinkError(f"{path}: malformed archive index ({count} symbols, "
                        f"{len(names)} names)")
    return [(names[i].decode("utf-8", "replace"), offsets[i]) for i in range(count)]


def _member_name(raw: str, long_names: bytes, path: str) -> str:
    if raw.startswith("/") and raw[1:].isdigit():
        start = int(raw[1:])
        end = long_names.find(b"/\n", start)
        if start >= len(long_names) or end < 0:
            raise LinkError(f"{path}: malformed archive (long member name {raw})")
        return long_names[start:end].decode("utf-8", "replace")
    return raw[:-1] if raw.endswith("/") else raw
