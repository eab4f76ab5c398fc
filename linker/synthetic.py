"""What the linker itself makes for input objects: the GOT, and the symbols it defines.

The GOT holds one 8-byte slot per target that a relocation reads through it and that could
not be relaxed into a direct reference; in a static executable each slot holds its target's
address, written once (or, for a Toy declaration, kept current like any reference to it).
The linker defines `_GLOBAL_OFFSET_TABLE_` (the GOT's address) and the bounds of the
constructor and destructor arrays (`__init_array_start`...), when an input refers to them
and none defines them, as GNU ld does; and `__dso_handle`, which gcc's start files define
(the C library's `atexit` passes its value, 0 in an executable, to `__cxa_atexit`): a GOT
word that holds 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GOT_ENTRY = 8
DSO_HANDLE = ("zero",)  # the GOT key of `__dso_handle`'s word


@dataclass
class Got:
    # a slot per target: ("toy", declaration) or ("address", address) or ("tls", offset key)
    slots: dict[tuple, int] = field(default_factory=dict)
    address: int = 0

    def slot(self, key: tuple) -> int:
        index = self.slots.get(key)
        if index is None:
            index = self.slots[key] = len(self.slots)
        return index

    def slot_address(self, key: tuple) -> int:
        return self.address + GOT_ENTRY * self.slots[key]

    @property
    def size(self) -> int:
        return GOT_ENTRY * len(self.slots)


def linker_defined(name: str, got: Got, bounds: dict[str, tuple[int, int]]) -> int | None:
    """The address of a symbol the linker defines, or None if `name` is not one. `bounds`:
    output section name -> (address, size) of the sections laid out."""
    if name == "_GLOBAL_OFFSET_TABLE_":
        return got.address
    if name == "__dso_handle" and DSO_HANDLE in got.slots:
        return got.slot_address(DSO_HANDLE)
    for array in ("init_array", "fini_array", "preinit_array"):
        start, size = bounds.get(f".{array}", (0, 0))
        if name == f"__{array}_start":
            return start
        if name == f"__{array}_end":
            return start + size
    return None
