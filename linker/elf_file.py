"""The output file: its header, program headers, section headers and where things sit in it.

Sections that belong to a segment keep their virtual address for life; when one outgrows the
file space reserved for its segment, the segment is extended in place if the space after it is
free, and otherwise its bytes move to free space (virtual addresses stay the same, so nothing
that refers to them changes). Non-allocated sections (symbol and string tables) and the section
header table are placed in free space the same way. Everything is written with `pwrite`, so an
update touches only the bytes that change: headers are compared with what was last written, and
the bytes written are counted for the update summary.

`state` and `from_state` turn the layout into plain data (lists, numbers, strings) and back, so
that the next `toyc build` can continue where this one stopped.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from dataclasses import dataclass, field

from linker import elf
from linker.atom import align_forward, pad_to_ideal

MAX_PHDRS = 24  # a dynamically linked executable with C objects and thread-locals has 17
HEADER_RESERVE = elf.EHDR_SIZE + MAX_PHDRS * elf.PHDR_SIZE
# A segment's memory size reaches this far past its section (at least; as far again as the
# section for bigger ones), so that a running copy of the program, whose mappings are fixed
# when it starts, has zero-filled memory where the section grows and can be patched there.
MEMORY_HEADROOM = 1 << 20
PT_PHDR = 6
# From this many patches in one update on, they are written through a mapping of the file, not
# a system call each: that is what an edit above ~500 declarations with debug info costs
MANY_PATCHES = 1024


class LinkError(Exception):
    """The link cannot be completed (undefined symbols, a full section)."""


@dataclass(slots=True)
class Section:
    shdr: elf.Shdr
    phdr: int = -1  # index into ElfFile.phdrs of the segment holding it, -1 if none
    max_size: int = 0  # the virtual room the section may grow to
    min_capacity: int = 16  # the smallest capacity an atom gets
    first: int = 0  # first and last atom in address order
    last: int = 0
    free_list: list[int] = field(default_factory=list)
    file_capacity: int = 0  # bytes reserved in the file for a non-allocated section
    marker: bool = False  # an empty section at the start of its segment, following it around


class ElfFile:
    def __init__(self, fd: int, page_size: int):
        self.fd = fd
        self.page = page_size
        self.phdrs: list[elf.Phdr] = []
        self.sections: list[Section] = [Section(elf.Shdr("", elf.SHT_NULL, addralign=0))]
        self.shoff = 0
        self.shdr_capacity = 0
        self.written: dict[str, bytes] = {}  # header tables as last written
        self.bytes_written = 0

    # ---- building the structure ---------------------------------------------------------------

    def add_phdr(self, phdr: elf.Phdr) -> int:
        if len(self.phdrs) == MAX_PHDRS:
            raise LinkError("too many program headers")
        self.phdrs.append(phdr)
        return len(self.phdrs) - 1

    def add_section(self, section: Section) -> int:
        self.sections.append(section)
        return len(self.sections) - 1

    def remove_tail(self, first_section: int, first_phdr: int) -> None:
        """Remove the sections from index `first_section` on and the program headers from
        `first_phdr` on; the file space they held becomes free. Only the last ones can go:
        symbols and .rela sections name sections by index, and sections their segment."""
        if any(s.phdr >= first_phdr for s in self.sections[:first_section]):
            raise LinkError("a section that stays is in a segment that goes")
        del self.sections[first_section:]
        del self.phdrs[first_phdr:]

    def section_index(self, name: str) -> int:
        for i, s in enumerate(self.sections):
            if s.shdr.name == name:
                return i
        raise KeyError(name)

    def add_load_segment(self, vaddr: int, flags: int, filesz: int, memsz: int) -> int:
        size = align_forward(max(filesz, 1), self.page) if filesz else 0
        offset = self.find_free_space(size, self.page) if size else 0
        mem = align_forward(max(memsz, size, 1), self.page)
        return self.add_phdr(elf.Phdr(elf.PT_LOAD, flags, offset, vaddr, size, mem, self.page))

    def memory_size(self, index: int) -> int:
        """What section `index`'s segment should map: the section, and room to grow into."""
        sec = self.sections[index]
        size = sec.shdr.size
        return min(size + max(size, MEMORY_HEADROOM), max(sec.max_size, size))

    # ---- free space ---------------------------------------------------------------------------

    def _used_ranges(self):
        yield 0, HEADER_RESERVE
        for p in self.phdrs:
            if p.type == elf.PT_LOAD and p.filesz:
                yield p.offset, p.offset + p.filesz
        for s in self.sections:
            if s.file_capacity:
                yield s.shdr.offset, s.shdr.offset + s.file_capacity
        if self.shdr_capacity:
            yield self.shoff, self.shoff + self.shdr_capacity

    def find_free_space(self, size: int, align: int, ignore: tuple[int, int] | None = None) -> int:
        start = 0
        moved = True
        while moved:
            moved = False
            for lo, hi in self._used_ranges():
                if (lo, hi) == ignore:
                    continue
                if start < hi and lo < start + size:
                    start = align_forward(hi, align)
                    moved = True
        return start

    def _is_free(self, lo: int, hi: int, own: tuple[int, int]) -> bool:
        return all(not (lo < h and l_ < hi) for l_, h in self._used_ranges() if (l_, h) != own)

    # ---- growing sections ---------------------------------------------------------------------

    def grow_section(self, index: int, needed: int) -> None:
        """Make section `index` at least `needed` bytes long, moving its segment if it must.

        As in the seed, a section in a segment spans the whole segment, slack included.
        """
        sec = self.sections[index]
        if needed > sec.max_size:
            raise LinkError(f"section {sec.shdr.name} is full: {needed} bytes needed, "
                            f"{sec.max_size} available")
        if needed <= sec.shdr.size:
            return
        if sec.phdr < 0:
            if sec.shdr.type != elf.SHT_NOBITS and sec.shdr.flags & elf.SHF_ALLOC:
                self.reserve(index, needed)  # a relocatable object's section: file room
            sec.shdr.size = needed
            return
        phdr = self.phdrs[sec.phdr]
        new_size = min(align_forward(pad_to_ideal(needed), self.page), sec.max_size)
        if sec.shdr.type == elf.SHT_NOBITS:
            sec.shdr.size = new_size
            phdr.memsz = self.memory_size(index)
            return
        own = (phdr.offset, phdr.offset + phdr.filesz)
        if not self._is_free(phdr.offset, phdr.offset + new_size, own):
            new_offset = self.find_free_space(new_size, self.page, ignore=own)
            self.copy(phdr.offset, new_offset, phdr.filesz)
            phdr.offset = new_offset
            sec.shdr.offset = new_offset
        phdr.filesz = sec.shdr.size = new_size
        phdr.memsz = self.memory_size(index)

    def reserve(self, index: int, size: int) -> None:
        """File room for `size` bytes of a section outside any segment, moving what it
        holds if it must."""
        sec = self.sections[index]
        if size <= sec.file_capacity:
            return
        own = (sec.shdr.offset, sec.shdr.offset + sec.file_capacity)
        cap = pad_to_ideal(size)
        if sec.file_capacity and self._is_free(own[0], own[0] + cap, own):
            sec.file_capacity = cap
            return
        sec.file_capacity = 0
        offset = self.find_free_space(cap, max(sec.shdr.addralign, 1))
        if own[1] > own[0]:
            self.copy(own[0], offset, sec.shdr.size)
        sec.shdr.offset = offset
        sec.file_capacity = cap

    def copy(self, src: int, dst: int, size: int) -> None:
        chunk = 1 << 20
        for off in range(0, size, chunk):
            n = min(chunk, size - off)
            self.pwrite(self.pread(n, src + off), dst + off)

    # ---- reading and writing ------------------------------------------------------------------

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset).ljust(size, b"\0")

    def pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        self.bytes_written += len(view)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def pwrite_many(self, patches: list[tuple[int, bytes]]) -> None:
        """Write each (offset, bytes) of many small patches: through a mapping of the span
        they cover when there are many (a system call each would cost more than the
        patches), else one by one. Counted as the bytes patched."""
        if len(patches) < MANY_PATCHES:
            for offset, data in patches:
                self.pwrite(data, offset)
            return
        lo = min(o for o, _ in patches) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        hi = max(o + len(d) for o, d in patches)
        with mmap.mmap(self.fd, hi - lo, offset=lo) as m:
            for offset, data in patches:
                m[offset - lo : offset - lo + len(data)] = data
                self.bytes_written += len(data)

    def read_atom(self, section: int, value: int, size: int) -> bytes:
        shdr = self.sections[section].shdr
        if shdr.type == elf.SHT_NOBITS:
            return bytes(size)
        return self.pread(size, shdr.offset + value)

    def write_atom(self, section: int, value: int, data: bytes) -> None:
        shdr = self.sections[section].shdr
        if shdr.type != elf.SHT_NOBITS and data:
            self.pwrite(data, shdr.offset + value)

    def fits(self, index: int, size: int) -> bool:
        """Whether non-allocated section `index` can take `size` bytes where it is."""
        return size <= self.sections[index].file_capacity

    def write_nonalloc_part(self, index: int, offset: int, data: bytes, size: int) -> None:
        """Write `data` at `offset` within non-allocated section `index`, which now holds
        `size` bytes (less than its capacity)."""
        sec = self.sections[index]
        sec.shdr.size = size
        self.pwrite(data, sec.shdr.offset + offset)

    def write_nonalloc(self, index: int, data: bytes) -> None:
        """Write the whole contents of a non-allocated section, moving it if it grew."""
        sec = self.sections[index]
        if len(data) > sec.file_capacity:
            own = (sec.shdr.offset, sec.shdr.offset + sec.file_capacity)
            sec.file_capacity = 0
            cap = pad_to_ideal(len(data))
            if own[1] > own[0] and self._is_free(own[0], own[0] + cap, own):
                offset = own[0]
            else:
                offset = self.find_free_space(cap, sec.shdr.addralign)
            sec.shdr.offset = offset
            sec.file_capacity = cap
        sec.shdr.size = len(data)
        self.pwrite(data, sec.shdr.offset)

    def write_headers(self, file_type: int, machine: int, entry: int) -> None:
        if any(p.type == elf.PT_LOAD and p.offset == 0 and p.filesz for p in self.phdrs):
            # The file's first page is loaded (a dynamically linked executable's headers): a
            # zero-fill segment at offset 0 would seem, to eu-elflint, to read it. It gets an
            # offset past the file's end, where no segment's bytes are nor end.
            end = align_forward(max(hi for _, hi in self._used_ranges()) + 1, self.page)
            for i, p in enumerate(self.phdrs):
                if p.type == elf.PT_LOAD and not p.filesz:
                    p.offset = end
                    for s in self.sections:
                        if s.phdr == i:
                            s.shdr.offset = end + s.shdr.addr - p.vaddr
        for s in self.sections:
            if s.marker:  # at the same place in the segment, wherever the segment went
                p = self.phdrs[s.phdr]
                s.shdr.offset = p.offset + s.shdr.addr - p.vaddr
        shstrtab = elf.StringTable()
        for s in self.sections:
            s.shdr.name_offset = shstrtab.add(s.shdr.name)
        shstrndx = self.section_index(".shstrtab")
        if self._changed("shstrtab", bytes(shstrtab.data)):
            self.write_nonalloc(shstrndx, bytes(shstrtab.data))
        table = b"".join(s.shdr.pack() for s in self.sections)
        if len(table) > self.shdr_capacity:
            self.shdr_capacity = 0
            cap = pad_to_ideal(len(table))
            self.shoff = self.find_free_space(cap, 8)
            self.shdr_capacity = cap
            self.written.pop("shdrs", None)
        if self.phdrs and self.phdrs[0].type == PT_PHDR:  # it covers the table as it is now
            self.phdrs[0].filesz = self.phdrs[0].memsz = len(self.phdrs) * elf.PHDR_SIZE
        ehdr = elf.Ehdr(file_type, machine, entry, elf.EHDR_SIZE if self.phdrs else 0,
                        self.shoff, len(self.phdrs), len(self.sections), shstrndx).pack()
        phdrs = b"".join(p.pack() for p in self.phdrs)
        for key, data, offset, entry in (("shdrs", table, self.shoff, elf.SHDR_SIZE),
                                         ("phdrs", phdrs, elf.EHDR_SIZE, elf.PHDR_SIZE),
                                         ("ehdr", ehdr, 0, elf.EHDR_SIZE)):
            old = self.written.get(key)
            self.written[key] = data
            if old is None or len(old) != len(data):
                self.pwrite(data, offset)
                continue
            for i in range(0, len(data), entry):  # only the entries that changed
                if data[i : i + entry] != old[i : i + entry]:
                    self.pwrite(data[i : i + entry], offset + i)
        # The file ends where the last thing in it ends (or a zero-fill segment's offset, which
        # readers expect inside the file); keep it no longer than that.
        end = max(hi for _, hi in self._used_ranges())
        end = max([end] + [p.offset for p in self.phdrs if p.type == elf.PT_LOAD])
        if os.fstat(self.fd).st_size < end:
            os.ftruncate(self.fd, end)

    def _changed(self, key: str, data: bytes) -> bool:
        """Whether `data` differs from what was last written as `key`; remembers it."""
        if self.written.get(key) == data:
            return False
        self.written[key] = data
        return True

    # ---- state --------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "phdrs": [dataclasses.astuple(p) for p in self.phdrs],
            "sections": [[dataclasses.astuple(s.shdr), s.phdr, s.max_size, s.min_capacity,
                          s.first, s.last, s.free_list, s.file_capacity, s.marker]
                         for s in self.sections],
            "shoff": self.shoff,
            "shdr_capacity": self.shdr_capacity,
            "written": {k: v.hex() for k, v in self.written.items()},
        }

    @classmethod
    def from_state(cls, fd: int, page_size: int, state: dict) -> ElfFile:
        f = cls(fd, page_size)
        f.phdrs = [elf.Phdr(*p) for p in state["phdrs"]]
        f.sections = [Section(elf.Shdr(*shdr), phdr, max_size, min_cap, first, last,
                              list(free_list), file_capacity, marker)
                      for shdr, phdr, max_size, min_cap, first, last, free_list, file_capacity,
                      marker in state["sections"]]
        f.shoff = state["shoff"]
        f.shdr_capacity = state["shdr_capacity"]
        f.written = {k: bytes.fromhex(v) for k, v in state["written"].items()}
        return f
