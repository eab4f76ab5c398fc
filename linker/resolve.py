"""Symbol resolution: which file defines each global name, in one pass over the link's inputs.

The inputs are taken in command-line order, as GNU ld takes them: the Toy program first, then
objects, archives and shared libraries. A strong definition beats a weak one and a COMMON
symbol, and any of them a shared library's (which only the first library defining a name
gives; a name a library defines loads no archive member); two strong
definitions are an error naming both places; COMMON symbols of one name merge (the largest
size and alignment). An archive member is loaded when it defines a name that is undefined
(referenced, strongly, and defined by nothing so far) when the archive is reached, and its own
references then count too; the archive is searched again until nothing more is loaded. A
COMDAT group is linked from the first object that has it. Names that nothing defines are
collected with who refers to them; the caller reports them (a Toy reference is a diagnostic at
its source position).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linker import elf
from linker.archive import Archive
from linker.elf_file import LinkError
from linker.input_object import SHN_COMMON, ObjectFile
from linker.shared_object import SharedObject

TOY = -1  # the file index of the Toy program
SHARED = -2  # the file index of a shared library's definition (its `symbol`: the library)
STRONG, WEAK, COMMON, DYNAMIC = 2, 1, 0, -1
# Names the linker defines when an input refers to them and none defines them (`synthetic.py`),
# and the one a thread-local access sequence calls, which relaxation removes.
LINKER_DEFINED = ("_GLOBAL_OFFSET_TABLE_", "__init_array_start", "__init_array_end",
                  "__fini_array_start", "__fini_array_end", "__preinit_array_start",
                  "__preinit_array_end", "__tls_get_addr", "__dso_handle")


@dataclass(slots=True)
class Definition:
    file: int  # TOY, SHARED, or an index into Resolution.objects
    symbol: int  # index into the object's symbols (TOY: 0; SHARED: into Resolution.shared)
    rank: int  # STRONG, WEAK, COMMON or DYNAMIC
    nav: str = ""  # TOY: the declaration exported under this name
    where: str = ""  # for messages: "a.o (.text)", "game.toy:3:1"
    tls: bool = False  # TOY: the declaration is a thread-local


@dataclass
class Resolution:
    objects: list[ObjectFile] = field(default_factory=list)  # linked, in order
    # shared libraries, in order, each with whether it was named inside AS_NEEDED
    shared: list[tuple[SharedObject, bool]] = field(default_factory=list)
    defs: dict[str, Definition] = field(default_factory=dict)
    # archive members loaded: (object index, archive path, member name, the name it defined,
    # who referred to that name)
    loaded: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    commons: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> size, align
    seen_groups: set[str] = field(default_factory=set)
    # name -> who refers to it first: where in the Toy source, or (object, symbol index);
    # and the names only referred to weakly
    refs: dict[str, str | tuple[int, int]] = field(default_factory=dict)
    weak_refs: set[str] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)
    archive_names: set[str] = field(default_factory=set)  # what the archives' members define
    shared_refs: set[str] = field(default_factory=set)  # what the shared libraries refer to

    def undefined(self) -> list[str]:
        """Names referred to strongly that nothing defines (the linker's own aside)."""
        return [n for n in self.refs
                if n not in self.defs and n not in self.weak_refs and n not in LINKER_DEFINED]

    def referrer(self, name: str) -> str:
        """Who refers to `name` first, for messages: a Toy source position, or an object's
        first section with a relocation against it."""
        who = self.refs[name]
        if isinstance(who, str):
            return who
        obj = self.objects[who[0]]
        for index, s in enumerate(obj.sections):
            if s is not None and s.kept and any(x.symbol == who[1] for x in s.relocs):
                return obj.where(index)
        return obj.name

    def c_names(self) -> set[str]:
        """The global names C code defines or refers to: a Toy export of one of these that
        appears, goes or changes owner changes the resolution."""
        out = set()
        for obj in self.objects:
            for i in obj.globals():
                out.add(obj.symbols[i].name)
        out.discard("")
        return out


def resolve(toy_defs: dict[str, tuple[str, str, str, bool]], toy_refs: dict[str, str],
            inputs: list, load_member) -> Resolution:
    """Resolve `toy_defs` (export name -> (linkage, declaration, where, whether it is a
    thread-local)), `toy_refs` (extern name -> where it is used) and the inputs: ObjectFiles,
    Archives, (SharedObject, as needed) pairs, and lists of these (a GROUP: its archives are
    searched again, in turn, until none loads a member). `load_member(archive, index)` reads a
    member as an ObjectFile."""
    r = Resolution()
    for name, (linkage, nav, where, tls) in toy_defs.items():
        if linkage != "internal":
            r.defs[name] = Definition(TOY, 0, STRONG if linkage == "strong" else WEAK, nav,
                                      where, tls)
    for name, where in toy_refs.items():
        r.refs.setdefault(name, where)
    for item in inputs:
        _add(r, item, load_member)
    if r.duplicates:
        raise LinkError("\n".join(r.duplicates))
    return r


def _add(r: Resolution, item, load_member) -> bool:
    """Add one input; whether it loaded an archive member."""
    if isinstance(item, ObjectFile):
        _add_object(r, item)
    elif isinstance(item, Archive):
        return _search_archive(r, item, load_member)
    elif isinstance(item, tuple):
        _add_shared(r, *item)
    else:
        count = len(r.objects)
        for member in item:
            _add(r, member, load_member)
        archives = [m for m in item if isinstance(m, Archive)]
        while archives and any([_search_archive(r, a, load_member) for a in archives]):
            pass
        return len(r.objects) > count
    return False


def _add_shared(r: Resolution, so: SharedObject, as_needed: bool) -> None:
    """A shared library defines every name it exports that nothing defined before it; an
    object later beats it (as any regular definition beats a library's)."""
    index = len(r.shared)
    r.shared.append((so, as_needed))
    r.shared_refs.update(s.name for s in so.undefined())
    for name, sym in so.exports.items():
        if name not in r.defs:
            r.defs[name] = Definition(SHARED, index, DYNAMIC, where=so.path,
                                      tls=sym.type == elf.STT_TLS)


def _search_archive(r: Resolution, archive: Archive, load_member) -> bool:
    """Load the members that define an undefined name; whether any was."""
    loaded: set[int] = set()
    index = archive.index
    if index is None:  # no index: every member's own symbols say what it defines
        index = {}
        for i in range(len(archive.members)):
            obj = load_member(archive, i)
            for s in (obj.symbols[k] for k in obj.globals()):
                if s.defined and s.shndx != SHN_COMMON and s.name:
                    index.setdefault(s.name, []).append(i)
    r.archive_names.update(index)
    while True:
        wanted = [n for n in r.undefined() if n in index]
        more = False
        for name in wanted:
            if name in r.defs:  # a member loaded for an earlier name defined it
                continue
            member = next((i for i in index[name] if i not in loaded), None)
            if member is None:
                continue
            loaded.add(member)
            obj = load_member(archive, member)
            r.loaded.append((len(r.objects), archive.path, archive.members[member].name, name,
                             r.referrer(name)))
            _add_object(r, obj)
            more = True
        if not more:
            return bool(loaded)


def _add_object(r: Resolution, obj: ObjectFile) -> None:
    file = len(r.objects)
    r.objects.append(obj)
    _drop_duplicate_groups(r, obj)
    for i in obj.globals():
        s = obj.symbols[i]
        if not s.name:
            continue
        if s.shndx == elf.SHN_UNDEF or _in_dropped_section(obj, s.shndx):
            if s.name not in r.refs:
                r.refs[s.name] = (file, i)
                if s.bind == elf.STB_WEAK:
                    r.weak_refs.add(s.name)
            elif s.bind != elf.STB_WEAK:
                r.weak_refs.discard(s.name)
            continue
        if s.bind == elf.STB_LOCAL:
            continue
        where = obj.where(s.shndx) if s.shndx < len(obj.sections) else obj.name
        rank = COMMON if s.shndx == SHN_COMMON else WEAK if s.bind == elf.STB_WEAK else STRONG
        new = Definition(file, i, rank, where=where)
        old = r.defs.get(s.name)
        if rank == COMMON:
            size, align = r.commons.get(s.name, (0, 1))
            r.commons[s.name] = (max(size, s.size), max(align, s.value, 1))
        if old is None:
            r.defs[s.name] = new
        elif old.rank == STRONG and rank == STRONG:
            r.duplicates.append(f"multiple definition of {s.name}: {old.where} and {where}")
        elif rank > old.rank:
            r.defs[s.name] = new


def _drop_duplicate_groups(r: Resolution, obj: ObjectFile) -> None:
    for signature, members in obj.groups:
        if signature in r.seen_groups:
            for m in members:
                if obj.sections[m] is not None:
                    obj.sections[m].kept = False
        else:
            r.seen_groups.add(signature)


def _in_dropped_section(obj: ObjectFile, shndx: int) -> bool:
    if shndx >= len(obj.sections) or shndx in (elf.SHN_ABS, SHN_COMMON):
        return False
    s = obj.sections[shndx]
    return s is not None and not s.kept
