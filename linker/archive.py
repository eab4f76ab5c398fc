"""Static archives (`ar` format, as GNU ar writes it) with a symbol index.

An archive is the magic string, then members, each a 60-byte header and its bytes padded to an
even length. The first member, named "/", is the index the linker searches: how many symbols,
the file offset of the member defining each (big-endian, 4 bytes each), then their names, each
ending in NUL. Member names longer than 15 characters live in a "//" member and are referred to
as "/OFFSET". Dates, owners and modes are fixed, so the same objects give the same bytes.
"""

from __future__ import annotations

import struct

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
