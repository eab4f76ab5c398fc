"""Assembly text built a line at a time, and the offsets of labelled places in its encoding.

Architecture plugins write a function as assembly lines and let an assembler encode them. What
the linker needs besides the bytes is where certain places are: the fields relocations patch,
line fields, where each statement's code starts. `Assembly` labels those places and finds them
again: after the code it appends a table of the labels as `.long` data, which the assembler
turns into their offsets, and cuts the table off after encoding. The plugin passes its
assembler to `encode`; `keystone_encoder` makes one of a keystone instance.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from keystone import KsError


class AssemblerError(Exception):
    """The assembler rejected generated assembly: a bug in the code generator, never the
    user's."""


_RETIRED: list = []


def keystone_encoder(engine: Callable[[], object]) -> Callable[[str], bytes]:
    """`encode`'s assembler from `engine`, a cached function (`functools.cache`) returning a
    `keystone.Ks` (assembling at address 0).

    Keystone's AArch64 engine now and then rejects valid text ("Unknown error") with one
    instance, every time, while a new instance assembles it: on an error the cached instance
    is replaced once before the error counts."""

    def encode(text: str) -> bytes:
        for attempt in range(2):
            try:
                encoding, _ = engine().asm(text, 0)
                return bytes(encoding)
            except KsError as e:
                if attempt:
                    raise AssemblerError(f"keystone: {e}") from None
                # (kept, so that the new instance is not made in the old one's memory)
                _RETIRED.append(engine())
                engine.cache_clear()
        raise AssertionError("unreachable")

    return encode


class Assembly:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._labels: dict[str, list] = {}  # kind -> the payload of each label of that kind
        self.point_offsets: list[int] = []  # after `encode`: the offset of each `point`

    def __call__(self, *lines: str) -> None:
        self.lines.extend(lines)

    def label(self, kind: str, payload: object = None, emit: bool = True) -> str:
        """A new label of `kind` carrying `payload`, emitted here (or, with `emit` false,
        returned for the caller to place, e.g. in a literal pool)."""
        items = self._labels.setdefault(kind, [])
        name = f".L{kind}{len(items)}"
        items.append(payload)
        if emit:
            self.lines.append(f"{name}:")
        return name

    def mark(self, relative: int, col: int) -> None:
        """The code of a statement on line `relative` (of the declaration), column `col`,
        starts here: a row of the line table (`toyc.code.Code.rows`)."""
        self.label("row", (relative, col))

    def point(self) -> int:
        """Label this place; after `encode`, `point_offsets[n]` is its offset."""
        self.label("pt")
        return len(self._labels["pt"]) - 1

    def encode(self, encoder: Callable[[str], bytes],
               after: list[str] | None = None) -> tuple[bytes, dict[str, list[tuple[int, object]]]]:
        """Encode the lines, then `after` (data that follows the code, such as a literal
        pool), with `encoder` (assembly text -> bytes). Returns the bytes and, per kind of
        label, the (offset, payload) of each."""
        kinds = list(self._labels)
        names = [".Lcode_end"] + [f".L{k}{i}" for k in kinds for i in range(len(self._labels[k]))]
        text = "\n".join(self.lines + (after or [])) + \
            f"\n.Lcode_end:\n.long {', '.join(names)}\n"
        raw = encoder(text)
        offsets = struct.unpack_from(f"<{len(names)}I", raw, len(raw) - 4 * len(names))
        found: dict[str, list[tuple[int, object]]] = {}
        at = 1
        for kind in kinds:
            items = self._labels[kind]
            found[kind] = list(zip(offsets[at : at + len(items)], items, strict=True))
            at += len(items)
        self.point_offsets = [offset for offset, _ in found.get("pt", [])]
        return raw[: offsets[0]], found

    @staticmethod
    def rows(found: dict) -> list[tuple[int, int, int]]:
        """The line table rows among the labels `encode` found."""
        return [(offset, rel, col) for offset, (rel, col) in found.get("row", [])]
