"""Atoms: the bytes of one declaration, string constant or runtime helper in a section.

Atoms of a section form a list in address order (`prev`/`next` are atom indices; 0 is the null
atom). An atom's capacity is the room up to the next atom; when an atom is placed after the
last one, the last one keeps its ideal capacity (`ideal_capacity`: size plus a third, at least
the section's minimum) as slack, so it can grow in place later. Atoms with more than their
ideal capacity sit on the section's free list, where new atoms are placed first. An atom that
shrinks keeps its place; the room it no longer needs puts it on the free list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from linker.zig_object import ZigObject


def pad_to_ideal(size: int) -> int:
    return size + size // 3


def ideal_capacity(size: int, minimum: int) -> int:
    return max(pad_to_ideal(size), minimum)


def align_forward(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


def align_backward(value: int, align: int) -> int:
    return value & ~(align - 1)


@dataclass(slots=True)
class Atom:
    """One atom. Its lists (`relocs`, `line_fields`) are replaced when they change, never
    changed in place: the state store and `ZigObject.state` tell a changed atom from an
    unchanged one by them."""

    name: str
    section: int = 0  # index into ElfFile.sections; 0 while not placed
    value: int = 0  # offset from the start of the section
    size: int = 0
    align: int = 1
    prev: int = 0
    next: int = 0
    alive: bool = False
    relocs: list = field(default_factory=list)
    code_hash: str = ""  # of the bytes, relocations and alignment last placed here
    line: int = 0  # the source line the line fields were last written for
    epoch: int = 0  # how many line shifts had been recorded then
    line_fields: list = field(default_factory=list)  # (offset, line relative to `line`)


def capacity(zo: ZigObject, index: int) -> int:
    atom = zo.atoms[index]
    if atom.next:
        return zo.atoms[atom.next].value - atom.value
    return zo.elf.sections[atom.section].max_size - atom.value


def free_list_eligible(zo: ZigObject, index: int) -> bool:
    atom = zo.atoms[index]
    if not atom.next:
        return False  # the last atom can always grow; no need to remember it
    sec = zo.elf.sections[atom.section]
    surplus = capacity(zo, index) - ideal_capacity(atom.size, sec.min_capacity)
    return surplus >= sec.min_capacity


def allocate(zo: ZigObject, index: int) -> None:
    """Give atom `index` (size, alignment and section set) a place in its section."""
    atom = zo.atoms[index]
    sec = zo.elf.sections[atom.section]
    need = ideal_capacity(atom.size, sec.min_capacity)
    after = 0  # the atom to place it after, 0 for the start of the section
    value = None
    for big_index in list(sec.free_list):
        big = zo.atoms[big_index]
        if not big.next:  # became the last atom: its room is the section's end, taken below
            sec.free_list.remove(big_index)
            continue
        big_ideal_end = big.value + ideal_capacity(big.size, sec.min_capacity)
        cap_end = big.value + capacity(zo, big_index)
        # Take the end of the big atom's surplus, so the big atom keeps its own slack.
        start = align_backward(cap_end - need, atom.align)
        if start < big_ideal_end:
            if not free_list_eligible(zo, big_index):
                sec.free_list.remove(big_index)
            continue
        value, after = start, big_index
        break
    if value is None:
        if sec.last:
            last = zo.atoms[sec.last]
            value = align_forward(last.value + ideal_capacity(last.size, sec.min_capacity),
                                  atom.align)
            after = sec.last
        else:
            value = 0
        zo.elf.grow_section(atom.section, value + atom.size)
    atom.value = value
    _link_after(zo, index, after)
    atom.alive = True
    if after and after in sec.free_list and not free_list_eligible(zo, after):
        sec.free_list.remove(after)


def place_at(zo: ZigObject, index: int, value: int, after: int) -> None:
    """Put atom `index` at `value`, right after atom `after` (0: first), in room that is free."""
    atom = zo.atoms[index]
    sec = zo.elf.sections[atom.section]
    atom.value = value
    _link_after(zo, index, after)
    atom.alive = True
    if after and after in sec.free_list and not free_list_eligible(zo, after):
        sec.free_list.remove(after)
    note_surplus(zo, index)


def note_surplus(zo: ZigObject, index: int) -> None:
    """Put atom `index` on its section's free list if it has room to spare."""
    sec = zo.elf.sections[zo.atoms[index].section]
    if index not in sec.free_list and free_list_eligible(zo, index):
        sec.free_list.append(index)


def _link_after(zo: ZigObject, index: int, after: int) -> None:
    atom = zo.atoms[index]
    sec = zo.elf.sections[atom.section]
    if after:
        nxt = zo.atoms[after].next
        zo.atoms[after].next = index
    else:
        nxt = sec.first
        sec.first = index
    atom.prev, atom.next = after, nxt
    if nxt:
        zo.atoms[nxt].prev = index
    else:
        sec.last = index


def free(zo: ZigObject, index: int) -> None:
    """Take atom `index` out of its section; its space goes to the atom before it."""
    atom = zo.atoms[index]
    if not atom.alive:
        return
    sec = zo.elf.sections[atom.section]
    if index in sec.free_list:
        sec.free_list.remove(index)
    prev, nxt = atom.prev, atom.next
    if prev:
        zo.atoms[prev].next = nxt
    else:
        sec.first = nxt
    if nxt:
        zo.atoms[nxt].prev = prev
    else:
        sec.last = prev
    if prev:
        eligible = free_list_eligible(zo, prev)
        if prev in sec.free_list and not eligible:
            sec.free_list.remove(prev)
        elif eligible and prev not in sec.free_list:
            sec.free_list.append(prev)
    atom.prev = atom.next = 0
    atom.alive = False
