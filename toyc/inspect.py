"""`toyc inspect`: what the linker did to an output, read back from the file and, when it is
there and intact, the state file beside it.

The file is read with pyelftools: its Zig sections (address range, size, the bytes atoms use
and the rest), its atoms as `.symtab` gives them (symbol, section, address, size), its exports
(global and weak symbols, with binding and visibility) and its TLS segment. The state adds
what only the linker knows: each atom's capacity and alignment, the free lists, the
trampolines and their targets, and the last builds and updates. An archive is inspected member
by member. `inspect` returns plain data (what `--json` prints); `render` lays it out as text.

An executable linked with C objects and archives also has their sections, outside the Zig
segments: the file lists them ("input_sections"); the state says which input files were
linked, the sections taken from each and where they went, and which archive members were
loaded, for which symbol and because of whom ("inputs").

A declaration exported under other names (`export("a") export("b") var shared`) has one atom
and several symbols sharing it: the atom is listed once, under the declaration's name, with
the other names as its aliases. The state says exactly which symbol is which; without it (an
archive member, or an output whose state file is gone) the symbols of one atom are those with
the same section, address, size and type, and the declaration's name is told from its
aliases by the debug info and the binding (see `_atom_name`).
"""

from __future__ import annotations

import io
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from toyc.source import UserError

ZIG_SECTIONS = (".text.zig", ".data.rel.ro.zig", ".data.zig", ".bss.zig", ".tdata", ".tbss")
ATOM_TYPES = {"STT_FUNC": "function", "STT_OBJECT": "object", "STT_TLS": "thread-local"}
# the output sections the linker makes for input objects (`linker.link_inputs.OUTPUT`)
INPUT_SECTIONS = (".text", ".rodata", ".eh_frame", ".init_array", ".fini_array",
                  ".data.rel.ro", ".got", ".data", ".bss")


def inspect(path: str) -> dict:
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory") from None
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None
    if data.startswith(b"!<arch>\n"):
        members = [_inspect_elf(f"{path}({name})", body, None) for name, body in _members(data)]
        return {"file": path, "kind": "archive", "members": members}
    return _inspect_elf(path, data, path)


def _members(data: bytes) -> list[tuple[str, bytes]]:
    """The object files of a GNU archive (its symbol index and name table left out)."""
    out, at, names = [], 8, b""
    while at + 60 <= len(data):
        header = data[at : at + 60]
        name, size = header[:16].decode().strip(), header[48:58].decode().strip()
        if header[58:60] != b"`\n" or not size.isdigit():
            raise UserError("the archive is malformed")
        body = data[at + 60 : at + 60 + int(size)]
        if name == "//":
            names = body
        elif name.startswith("/") and name[1:].isdigit():
            start = int(name[1:])
            out.append((names[start : names.index(b"/\n", start)].decode(), body))
        elif name != "/":
            out.append((name.rstrip("/"), body))
        at += 60 + int(size) + (int(size) & 1)
    return out


def _inspect_elf(path: str, data: bytes, output: str | None) -> dict:
    if not data.startswith(b"\x7fELF"):
        raise UserError(f"{path}: not an ELF file")
    zo, state = _linked(output) if output is not None else (None, None)
    try:
        elf = ELFFile(io.BytesIO(data))
        sections = {s.name: s for s in elf.iter_sections()}
        if ".text.zig" not in sections:
            raise UserError(f"{path}: not written by toyc (it has no .text.zig section)")
        kind = "object" if elf.header["e_type"] == "ET_REL" else "executable"
        names = [s.name for s in elf.iter_sections()]
        symbols = list(sections[".symtab"].iter_symbols()) if ".symtab" in sections else []
        for s in elf.iter_sections():
            if s.header["sh_type"] != "SHT_NOBITS" and \
                    s.header["sh_offset"] + s.header["sh_size"] > len(data):
                raise UserError(f"{path}: truncated ({s.name} ends past the end of the file)")
        report = {"file": path, "kind": kind, "machine": elf.header["e_machine"],
                  "entry": elf.header["e_entry"] if kind == "executable" else None}
        rows = []  # the symbols of atoms, aliases included
        for row, sym in enumerate(symbols):
            shndx = sym["st_shndx"]
            stype = sym["st_info"]["type"]
            if not isinstance(shndx, int) or names[shndx] not in ZIG_SECTIONS or \
                    stype not in ATOM_TYPES:
                continue
            rows.append({"name": sym.name, "section": names[shndx], "kind": ATOM_TYPES[stype],
                         "address": sym["st_value"], "size": sym["st_size"],
                         "binding": sym["st_info"]["bind"][4:].lower(),
                         "visibility": sym["st_other"]["visibility"][4:].lower(), "row": row})
        rows.sort(key=lambda a: (ZIG_SECTIONS.index(a["section"]), a["address"], a["row"]))
        atoms, alias_of = _atoms(rows, zo, elf)
        report["exports"] = [
            {"name": a["name"], "binding": a["binding"], "address": a["address"],
             "visibility": a["visibility"], "atom": alias_of.get(a["row"], a["name"])}
            for a in rows if a["binding"] in ("global", "weak")]
        for a in rows:
            del a["row"]
        report["sections"] = []
        for name in ZIG_SECTIONS:
            s = sections.get(name)
            if s is None:
                continue
            used = sum(a["size"] for a in atoms if a["section"] == name)
            report["sections"].append({
                "name": name, "address": s.header["sh_addr"],
                "end": s.header["sh_addr"] + s.header["sh_size"], "size": s.header["sh_size"],
                "used": used, "free": s.header["sh_size"] - used,
                "file_offset": s.header["sh_offset"]})
        report["input_sections"] = [
            {"name": name, "address": sections[name].header["sh_addr"],
             "size": sections[name].header["sh_size"]}
            for name in INPUT_SECTIONS if name in sections and kind == "executable"]
        tls = [seg for seg in elf.iter_segments() if seg.header["p_type"] == "PT_TLS"]
        report["tls"] = None if not tls else {
            "image_address": tls[0].header["p_vaddr"], "image_size": tls[0].header["p_filesz"],
            "block_size": tls[0].header["p_memsz"], "align": tls[0].header["p_align"]}
    except (ELFError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise UserError(f"{path}: a malformed or truncated ELF file ({e})") from None
    report["atoms"] = atoms
    report["state"] = False
    report["inputs"] = None
    report["free_list"], report["trampolines"], report["updates"] = [], [], []
    if zo is not None:
        _add_state(report, zo, state)
    return report


def _linked(output: str):
    """The linker's view of `output` as its state file keeps it, with the state, if the state
    file belongs to this very file; else (None, None)."""
    from linker.zig_object import ZigObject
    from toyc.plugins import get_arch
    from toyc.session import _stat_key, read_state

    state = read_state(output)
    try:
        if state is None or state.get("output_stat") != _stat_key(output):
            return None, None
        return ZigObject.from_state(state["linker"], -1, get_arch(state["arch"])), state
    except (KeyError, TypeError, ValueError, IndexError, UserError):
        return None, None


def _atoms(rows: list[dict], zo, elf: ELFFile) -> tuple[list[dict], dict[int, str]]:
    """The atoms among the symbols `rows` (sorted by address), each once, with the names of
    the other symbols sharing it as its "aliases"; and, for the .symtab row of each alias, the
    name of the atom it names."""
    if zo is not None:
        # The state knows each row's symbol: an alias is one whose `exports` names the nav.
        by_slot = {s.slot: s for s in zo.symbols if s.slot >= 0}
        by_atom, aliases = {}, set()
        for a in rows:
            s = by_slot.get(a["row"])
            if s is None or s.name != a["name"]:  # (cannot be, the state is this file's)
                by_atom[id(a)] = [a]
                continue
            by_atom.setdefault((s.atom, s.exports or s.name), []).append(a)
            if s.exports:
                aliases.add(a["row"])
        groups = [sorted(g, key=lambda a: a["row"] in aliases) for g in by_atom.values()]
    else:
        # Aliases have the section, value, size and type of the declaration they name, and
        # atoms do not overlap: an atom's symbols are those that agree on all four. (Symbols
        # of size 0 could share an address without naming one atom: they stay apart.)
        by_key = {}
        for a in rows:
            key = (a["section"], a["address"], a["size"], a["kind"]) if a["size"] else id(a)
            by_key.setdefault(key, []).append(a)
        groups = list(by_key.values())
        declared = _declared_names(elf) if any(len(g) > 1 for g in groups) else set()
        groups = [sorted(g, key=lambda a: _atom_name(a, declared)) for g in groups]
    atoms, alias_of = [], {}
    for first, *aliases in groups:
        atom = {k: v for k, v in first.items() if k != "row"}
        atom["aliases"] = sorted(a["name"] for a in aliases)
        atoms.append(atom)
        alias_of.update((a["row"], first["name"]) for a in aliases)
    atoms.sort(key=lambda a: (ZIG_SECTIONS.index(a["section"]), a["address"]))
    return atoms, alias_of


def _atom_name(symbol: dict, declared: set[str]) -> tuple:
    """Without the state, the symbol of an atom most likely to carry the declaration's own
    name sorts first: one the debug info declares (aliases are only symbols), then a local
    one (a declaration exported only under other names keeps a local symbol, while aliases
    are mostly global), then the first in .symtab. It can be misled only where nothing in the
    file tells them apart: without debug info, a declaration exported under its own name and
    others of the same binding, or under an internal alias."""
    return (symbol["name"] not in declared, symbol["binding"] != "local", symbol["row"])


def _declared_names(elf: ELFFile) -> set[str]:
    """The names of the functions and globals the debug info declares (none if stripped)."""
    try:
        if not elf.has_dwarf_info():
            return set()
        names = set()
        for cu in elf.get_dwarf_info().iter_CUs():
            # only the top level: a function's locals may be named like an alias
            for die in cu.get_top_DIE().iter_children():
                name = die.attributes.get("DW_AT_name")
                if die.tag in ("DW_TAG_subprogram", "DW_TAG_variable") and name is not None:
                    names.add(name.value.decode(errors="replace"))
        return names
    except Exception:  # debug info pyelftools cannot read only loses a hint: do without it
        return set()


def _add_state(report: dict, zo, state: dict) -> None:
    """What the state file knows and the ELF file does not."""
    from linker import atom as atoms_mod

    report["state"] = True
    by_name = {}
    for s in zo.symbols:
        # an alias may have the name of another declaration: its atom is not this name's
        if s.atom and zo.atoms[s.atom].alive and not s.exports:
            by_name.setdefault(s.name, s)
    for a in report["atoms"]:
        s = by_name.get(a["name"])
        if s is not None:
            a["capacity"] = atoms_mod.capacity(zo, s.atom)
            a["align"] = zo.atoms[s.atom].align
            a["last"] = not zo.atoms[s.atom].next  # its capacity is the section's room
    for sec in zo.elf.sections:
        for index in sec.free_list:
            atom = zo.atoms[index]
            report["free_list"].append({
                "section": sec.shdr.name, "after": atom.name,
                "address": zo.atom_address(index) + atom.size,
                "free": atoms_mod.capacity(zo, index) - atom.size})
    for s in zo.symbols:
        if s.trampoline and zo.atoms[s.trampoline].alive and s.atom:
            report["trampolines"].append({"function": s.name,
                                          "address": zo.atom_address(s.trampoline),
                                          "size": zo.atoms[s.trampoline].size,
                                          "target": zo.address(zo.symbols.index(s))})
    report["trampolines"].sort(key=lambda t: t["address"])
    report["updates"] = state.get("history", [])
    report["source"] = state.get("source")
    if zo.inputs:
        report["inputs"] = _inputs(zo)


def _inputs(zo) -> dict:
    """The linked input files as the state keeps them: the command line's inputs, the
    objects linked (given, or loaded from an archive, and why) and the sections taken from
    each, with the output section and address each went to."""
    taken: dict[str, list[dict]] = {}
    for index, a in enumerate(zo.atoms):
        if not a.alive or not a.name.endswith(")") or "(" not in a.name:
            continue
        obj, _, section = a.name[:-1].rpartition("(")
        out = zo.elf.sections[a.section].shdr.name
        if obj == "C " or not obj:
            continue
        taken.setdefault(obj, []).append({"section": section, "output": out,
                                          "address": zo.atom_address(index), "size": a.size})
    why = {f"{archive}({member})": {"archive": archive, "member": member, "defines": name,
                                    "referenced_by": who}
           for archive, member, name, who in zo.inputs.get("loaded", [])}
    return {"args": zo.inputs.get("args", []),
            "files": [path for path, _ in zo.inputs.get("files", [])],
            "objects": [{"name": name, "loaded": why.get(name),
                         "sections": sorted(taken.get(name, []), key=lambda t: t["address"])}
                        for name in zo.inputs.get("objects", [])],
            **(_dynamic(zo) if zo.dynamic is not None else {})}


def _dynamic(zo) -> dict:
    """A dynamically linked executable's libraries, imports, and its tables' use of their
    room."""
    d = zo.dynamic
    versions = {2 + k: name for k, (_, name) in enumerate(d.versions)}
    tables = []
    for name, index in d.sections.items():
        sec = zo.elf.sections[index]
        tables.append({"name": name, "address": sec.shdr.addr, "used": sec.shdr.size,
                       "room": sec.max_size})
    imports = []
    for imp in d.imports:
        how = []
        if imp.plt >= 0:
            how.append(f"stub {d.plt_address(zo, imp.plt):#x}")
        if imp.got >= 0:
            how.append(f"GOT slot {d.got_address(imp.got):#x}")
        if imp.copy >= 0:
            how.append(f"copied to {d.copy_address(imp.copy):#x}")
        if imp.exported:
            how.append("defined here, for the libraries")
        imports.append({"name": imp.name, "version": versions.get(imp.version, ""),
                        "library": "" if imp.exported else d.libraries[imp.library].soname,
                        "how": how})
    return {"libraries": [{"soname": lib.soname, "path": lib.path, "needed": lib.needed}
                          for lib in d.libraries],
            "imports": imports, "tables": tables}


def _render_dynamic(inputs: dict) -> list[str]:
    out = ["\nshared libraries"]
    for lib in inputs["libraries"]:
        needed = "needed" if lib["needed"] else "not needed (AS_NEEDED, unused)"
        out.append(f"  {lib['soname']:<20} {lib['path']}  {needed}")
    out.append("\nimports")
    for imp in inputs["imports"]:
        version = f"@{imp['version']}" if imp["version"] else ""
        out.append(f"  {imp['name'] + version:<32} {imp['library']:<14} "
                   f"{', '.join(imp['how'])}")
    out.append("\ndynamic tables      address          used       room")
    for t in inputs["tables"]:
        out.append(f"  {t['name']:<17} {t['address']:#012x} {t['used']:>10} {t['room']:>10}")
    return out


def render(report: dict) -> str:
    if report["kind"] == "archive":
        parts = [f"{report['file']}: archive of {len(report['members'])} object(s)"]
        return "\n\n".join(parts + [render(m) for m in report["members"]]) + "\n"
    out = [f"{report['file']}: {report['kind']} for {report['machine']}"
           + (f", entry {report['entry']:#x}" if report["entry"] is not None else "")
           + ("" if report["state"] else " (no state file: capacities and history unknown)")]
    out.append("\nsections            address range               size       used       free")
    for s in report["sections"]:
        out.append(f"  {s['name']:<17} {s['address']:#012x}-{s['end']:#012x} {s['size']:>10} "
                   f"{s['used']:>10} {s['free']:>10}")
    out.append("\natoms               section           address       size   capacity  align")
    for a in report["atoms"]:
        cap = "rest" if a.get("last") else a.get("capacity", "")
        align = a.get("align", "")
        also = f"  also {', '.join(a['aliases'])}" if a["aliases"] else ""
        out.append(f"  {a['name']:<17} {a['section']:<17} {a['address']:#012x} {a['size']:>6} "
                   f"{cap:>10} {align:>6}  {a['kind']}{also}")
    if report["free_list"]:
        out.append("\nfree list (room after an atom)")
        for f in report["free_list"]:
            out.append(f"  {f['section']:<17} after {f['after']:<17} at {f['address']:#x}: "
                       f"{f['free']} bytes")
    if report["trampolines"]:
        out.append("\ntrampolines")
        for t in report["trampolines"]:
            out.append(f"  {t['address']:#012x} ({t['size']} bytes) -> {t['target']:#x} "
                       f"{t['function']}")
    if report["tls"]:
        t = report["tls"]
        out.append(f"\nTLS: image at {t['image_address']:#x}, {t['image_size']} bytes in the "
                   f"file, {t['block_size']} per thread, aligned to {t['align']}")
    if report["exports"]:
        out.append("\nexports")
        for e in report["exports"]:
            alias = f"  alias of {e['atom']}" if e["atom"] != e["name"] else ""
            out.append(f"  {e['name']:<17} {e['binding']:<6} {e['visibility']:<8} "
                       f"{e['address']:#x}{alias}")
    if report.get("inputs"):
        out.append("\nlinked inputs: " + " ".join(report["inputs"]["args"]))
        for o in report["inputs"]["objects"]:
            loaded = o["loaded"]
            why = f"  (loaded from {loaded['archive']} for {loaded['defines']}, referenced " \
                f"by {loaded['referenced_by']})" if loaded else ""
            out.append(f"  {o['name']}{why}")
            for t in o["sections"]:
                out.append(f"    {t['section']:<20} -> {t['output']:<12} {t['address']:#x}  "
                           f"{t['size']} bytes")
        if report["inputs"].get("libraries"):
            out.extend(_render_dynamic(report["inputs"]))
    elif report.get("input_sections"):
        out.append("\nsections of linked objects")
        for t in report["input_sections"]:
            out.append(f"  {t['name']:<14} {t['address']:#x}  {t['size']} bytes")
    if report["updates"]:
        out.append("\nlast builds and updates")
        for u in report["updates"][-10:]:
            out.append(f"  {u['time']}  {u['summary']}")
    return "\n".join(out) + "\n"


# ---- one function's machine code -------------------------------------------------------------


def disassemble(path: str, name: str) -> dict:
    """The machine code of function `name` in `path`, disassembled with capstone (as the
    architecture says), with the relocations in it and the symbols they refer to."""
    report = inspect(path)
    if report["kind"] == "archive":
        raise UserError(f"{path}: an archive; inspect its object instead")
    functions = [a for a in report["atoms"] if a["kind"] == "function"]
    # the function's own name first: an alias may be named like another function
    atom = next((a for a in functions if a["name"] == name), None) or \
        next((a for a in functions if name in a["aliases"]), None)
    if atom is None:
        raise UserError(f"{path}: no function named '{name}'")
    elf = ELFFile(io.BytesIO(Path(path).read_bytes()))
    section = elf.get_section_by_name(atom["section"])
    start = atom["address"] - section["sh_addr"]
    code = section.data()[start : start + atom["size"]]
    info = _arch_of(elf)
    relocs = _object_relocs(elf, atom, start) if report["kind"] == "object" else \
        _linked_relocs(path, atom["name"])
    try:
        import capstone

        cs = capstone.Cs(*(getattr(capstone, c) for c in info.disassembler))
    except (AttributeError, TypeError, ImportError) as e:
        raise UserError(f"cannot disassemble {info.name} code ({e})") from None
    out = []
    for insn in cs.disasm(code, atom["address"]):
        here = [r for r in relocs
                if insn.address <= atom["address"] + r["offset"] < insn.address + insn.size]
        out.append({"address": insn.address, "bytes": bytes(insn.bytes).hex(),
                    "text": f"{insn.mnemonic} {insn.op_str}".strip(), "relocations": here})
    return {"file": path, "function": atom["name"], "section": atom["section"],
            "address": atom["address"], "size": atom["size"], "arch": info.name,
            "instructions": out}


def _arch_of(elf: ELFFile):
    from toyc.plugins import architectures

    machine = elf["e_machine"]
    number = machine if isinstance(machine, int) else ELF_MACHINES.get(machine)
    for info in architectures().values():
        if info.elf_machine == number and info.disassembler:
            return info
    raise UserError(f"no architecture plugin disassembles {machine} code")


ELF_MACHINES = {"EM_X86_64": 62, "EM_AARCH64": 183}


def _object_relocs(elf: ELFFile, atom: dict, start: int) -> list[dict]:
    """An object's .rela entries inside the function (offsets relative to it)."""
    from elftools.elf.descriptions import describe_reloc_type

    rela = elf.get_section_by_name(".rela" + atom["section"])
    if rela is None:
        return []
    symtab = elf.get_section(rela["sh_link"])
    out = []
    for r in rela.iter_relocations():
        if start <= r["r_offset"] < start + atom["size"]:
            sym = symtab.get_symbol(r["r_info_sym"])
            name = sym.name or elf.get_section(sym["st_shndx"]).name
            out.append({"offset": r["r_offset"] - start,
                        "type": describe_reloc_type(r["r_info_type"], elf),
                        "target": name, "addend": r["r_addend"], "address": None})
    return out


def _linked_relocs(path: str, name: str) -> list[dict]:
    """In an executable, the relocations the linker applied to the function, as the state
    file remembers them (none without it), with the address each target has now."""
    from elftools.elf.descriptions import describe_reloc_type

    from linker.zig_object import ZigObject
    from toyc.plugins import get_arch
    from toyc.session import _stat_key, read_state

    state = read_state(path)
    if state is None or state.get("output_stat") != _stat_key(path):
        return []
    arch = get_arch(state["arch"])
    zo = ZigObject.from_state(state["linker"], -1, arch)
    elf = ELFFile(io.BytesIO(Path(path).read_bytes()))
    sym = zo.navs.get(name, zo.lazy.get(name))  # a declaration, or a runtime helper
    if sym is None:
        return []
    atom = zo.symbol_atom(sym)
    out = []
    for r in atom.relocs:
        tables = {"nav": zo.navs, "uav": zo.uavs, "lazy": zo.lazy, "weak": zo.externs}
        sym = tables.get(r.target.kind, {}).get(r.target.key)
        out.append({"offset": r.offset, "type": describe_reloc_type(r.type, elf),
                    "target": zo.symbols[sym].name if sym is not None else r.target.describe(),
                    "addend": r.addend,
                    "address": zo.address(sym) if sym is not None else None})
    return out


def render_disassembly(d: dict) -> str:
    out = [f"{d['function']} in {d['section']} at {d['address']:#x}, {d['size']} bytes "
           f"({d['arch']})"]
    for i in d["instructions"]:
        out.append(f"  {i['address']:x}:  {i['bytes']:<22} {i['text']}")
        for r in i["relocations"]:
            where = f" ({r['address']:#x})" if r["address"] is not None else ""
            addend = f" {r['addend']:+d}" if r["addend"] else ""
            out.append(f"  {'':>{len(format(i['address'], 'x'))}}   ; {r['type']} "
                       f"{r['target']}{addend}{where}")
    return "\n".join(out) + "\n"


# ---- a picture of the address space ------------------------------------------------------------

MAP_WIDTH = 1200
BAND = 56
COLOURS = {"function": "#4e79a7", "object": "#59a14f", "thread-local": "#b07aa1",
           "runtime": "#9c9c9c", "constant": "#8cd17d"}


def _colour(a: dict) -> str:
    if a["name"].startswith("toy.rt.") or a["name"] in ("_start", "_start.tls"):
        return COLOURS["runtime"]
    if a["name"].startswith("toy.str."):
        return COLOURS["constant"]
    return COLOURS[a["kind"]]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&quot;")


def render_map(report: dict) -> str:
    """An SVG picture of the output's Zig sections: one band per section, its atoms as boxes
    to scale (the room an atom has beyond its size lighter), trampolines and free-list room
    marked apart. A section's unused end is drawn as a short scale break, so that the atoms
    fill the band."""
    if report["kind"] == "archive":
        raise UserError(f"{report['file']}: an archive; draw its object instead")
    parts, y = [], 60
    for sec in report["sections"]:
        atoms = [a for a in report["atoms"] if a["section"] == sec["name"]]
        if not atoms and sec["name"] != ".text.zig":
            continue
        lo = sec["address"]
        ends = [a["address"] + a["size"] for a in atoms]
        ends += [t["address"] + t["size"] for t in report["trampolines"]
                 if lo <= t["address"] < sec["end"]]
        used_end = max(ends, default=lo)
        span = max(used_end - lo, 1)
        room = MAP_WIDTH - 160  # the rest is the break that stands for the unused end
        scale = room / span
        parts.append(f'<text x="10" y="{y - 8}" class="title">{_esc(sec["name"])}  '
                     f'{sec["address"]:#x}-{sec["end"]:#x}: {sec["used"]} of {sec["size"]} '
                     f'bytes used</text>')
        parts.append(f'<rect x="10" y="{y}" width="{room}" height="{BAND}" class="band"/>')
        for a in atoms:
            x = 10 + (a["address"] - lo) * scale
            w = max(a["size"] * scale, 1.0)
            cap = min(a.get("capacity", a["size"]), used_end - a["address"]) * scale
            title = (f'{a["name"]}: {a["kind"]} at {a["address"]:#x}, {a["size"]} bytes'
                     + (f', capacity {a["capacity"]}' if "capacity" in a else "")
                     + (f', also {", ".join(a["aliases"])}' if a["aliases"] else ""))
            if cap > w:
                parts.append(f'<rect x="{x:.2f}" y="{y}" width="{cap:.2f}" height="{BAND}" '
                             f'fill="{_colour(a)}" opacity="0.25"/>')
            parts.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{BAND}" '
                         f'fill="{_colour(a)}" stroke="#ffffff" stroke-width="0.5">'
                         f'<title>{_esc(title)}</title></rect>')
            if w > 7 * len(a["name"]) + 4:
                parts.append(f'<text x="{x + 3:.2f}" y="{y + BAND / 2 + 4}" '
                             f'class="label">{_esc(a["name"])}</text>')
        for f in report["free_list"]:
            if f["section"] == sec["name"] and f["address"] < used_end:
                x = 10 + (f["address"] - lo) * scale
                parts.append(f'<rect x="{x:.2f}" y="{y + 2}" width="{f["free"] * scale:.2f}" '
                             f'height="{BAND - 4}" class="free"><title>free-list room after '
                             f'{_esc(f["after"])}: {f["free"]} bytes</title></rect>')
        for t in report["trampolines"]:
            if lo <= t["address"] < sec["end"]:
                x = 10 + (t["address"] - lo) * scale
                w = max(t["size"] * scale, 3)
                parts.append(f'<rect x="{x:.2f}" y="{y - 4}" width="{w:.2f}"'
                             f' height="{BAND + 8}" class="trampoline"><title>trampoline at '
                             f'{t["address"]:#x} to {_esc(t["function"])} at {t["target"]:#x}'
                             f'</title></rect>')
                parts.append(f'<text x="{x:.2f}" y="{y + BAND + 16}" class="small">'
                             f'&#8594; {_esc(t["function"])}</text>')
        # the unused end of the section, not to scale
        parts.append(f'<path d="M {10 + room + 8} {y} l 8 {BAND / 2} l -8 {BAND / 2}" '
                     f'class="break"/>')
        parts.append(f'<text x="{10 + room + 22}" y="{y + BAND / 2 + 4}" class="small">'
                     f'{sec["end"] - used_end} bytes free</text>')
        y += BAND + 56
    legend = [("function", COLOURS["function"]), ("global", COLOURS["object"]),
              ("thread-local", COLOURS["thread-local"]), ("runtime helper", COLOURS["runtime"]),
              ("string constant", COLOURS["constant"])]
    x = 10
    for name, colour in legend:
        parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{colour}"/>'
                     f'<text x="{x + 18}" y="{y + 12}" class="small">{name}</text>')
        x += 40 + 7 * len(name)
    parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{COLOURS["function"]}" '
                 f'opacity="0.25"/><text x="{x + 18}" y="{y + 12}" class="small">room to grow'
                 f'</text>')
    x += 110
    parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" class="free"/><text '
                 f'x="{x + 18}" y="{y + 12}" class="small">free-list room</text>')
    x += 120
    parts.append(f'<rect x="{x}" y="{y}" width="6" height="14" class="trampoline"/><text '
                 f'x="{x + 12}" y="{y + 12}" class="small">trampoline</text>')
    height = y + 40
    style = ("<style>.title{font:bold 13px sans-serif}.label{font:11px sans-serif;fill:#fff}"
             ".small{font:11px sans-serif}.band{fill:#f4f4f4;stroke:#bbb}"
             ".free{fill:none;stroke:#f28e2b;stroke-width:2;stroke-dasharray:4 2}"
             ".trampoline{fill:#e15759}.break{fill:none;stroke:#888;stroke-width:2}</style>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{MAP_WIDTH + 150}" '
            f'height="{height}" viewBox="0 0 {MAP_WIDTH + 150} {height}">{style}'
            f'<text x="10" y="20" class="title">{_esc(report["file"])}: {report["kind"]} for '
            f'{report["machine"]}</text>' + "".join(parts) + "</svg>\n")
