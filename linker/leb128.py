"""LEB128, the variable-length integers of DWARF: debug info and call frame information."""

from __future__ import annotations

_SMALL = [bytes((i,)) for i in range(128)]


def uleb(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    if -0x40 <= value < 0x40:
        return _SMALL[value & 0x7F]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        if done:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)
