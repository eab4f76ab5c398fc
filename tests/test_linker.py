"""The ZigObject driven directly: growth, moves and reuse that a hinted full build never needs.

Outputs are checked by running them and with pyelftools and eu-elflint, not with toyc's reader.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import build, require, run
from linker.elf_file import ElfFile, LinkError
from linker.zig_object import ZigObject
from toyc.code import Code, Reloc, Target
from toyc.driver import Timings, front_end, lower
from toyc.plugins import get_arch

ARCH = get_arch("x86_64")


def compile_to_codes(tmp_path: Path, text: str):
    src = tmp_path / "p.toy"
    src.write_text(text)
    program, _ = front_end(str(src), Timings())
    funcs, globals_ = lower(program, ARCH)
    return program, funcs, globals_


def open_output(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o755)


def symbols(path: Path) -> dict[str, tuple[int, int]]:
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name: (s["st_value"], s["st_size"]) for s in symtab.iter_symbols() if s.name}


def elflint_clean(path: Path) -> None:
    out = subprocess.run([require("eu-elflint"), "--gnu-ld", str(path)], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "No errors" in out.stdout, out.stdout + out.stderr


def program_with(n: int) -> str:
    fns = "".join(f"fn f{i}(x: int) -> int {{ return x + {i}; }}\n" for i in range(n))
    calls = " + ".join(f"f{i}(1)" for i in range(n))
    return fns + f'const NAME: str = "grown";\nvar total: int = 7;\n' \
        f"fn main() {{ print(NAME, total, {calls}); }}\n"


def test_sections_grow_and_segments_move_without_hints(tmp_path: Path):
    n = 400
    program, funcs, globals_ = compile_to_codes(tmp_path, program_with(n))
    out = tmp_path / "grown"
    fd = open_output(out)
    try:
        zo = ZigObject(ElfFile(fd, 4096), ARCH, "p.toy", {})
        # Globals first: the read-only and data segments sit right after the code segment, so
        # the code segment cannot grow in place and has to move.
        for g in program.globals:
            zo.update_nav(g.name, globals_[g.name], const=g.kind == "const")
        first_text_offset = zo.elf.phdrs[0].offset
        for name, code in funcs.items():
            zo.update_func(name, code)
        zo.flush()
        assert zo.elf.phdrs[0].offset != first_text_offset
    finally:
        os.close(fd)
    expected = sum(1 + i for i in range(n))
    assert run([str(out)]).stdout == f"grown 7 {expected}\n"
    elflint_clean(out)
    syms = symbols(out)
    assert syms["f0"][0] == 0x4000000
    assert all(0x4000000 <= syms[f"f{i}"][0] < 0xC000000 for i in range(n))


def test_freed_space_is_reused(tmp_path: Path):
    program, funcs, globals_ = compile_to_codes(tmp_path, program_with(6))
    out = tmp_path / "reuse"
    fd = open_output(out)
    try:
        zo = ZigObject(ElfFile(fd, 4096), ARCH, "p.toy", {"text": 8192})
        for g in program.globals:
            zo.update_nav(g.name, globals_[g.name], const=g.kind == "const")
        # The freed space goes to the atom before it, so there has to be one.
        zo.update_func("before", Code(b"\xc3", [], 16))
        zo.update_func("filler", Code(bytes(300), [], 16))
        zo.update_func("after", Code(b"\xc3", [], 16))
        filler_addr = zo.address(zo.navs["filler"])
        zo.free_nav("filler")
        for name, code in funcs.items():
            zo.update_func(name, code)
        zo.flush()
    finally:
        os.close(fd)
    syms = symbols(out)
    assert "filler" not in syms
    reused = [name for name, (value, _) in syms.items()
              if filler_addr <= value < filler_addr + 300 and name.startswith("f")]
    assert reused, "no function took the freed atom's place"
    assert run([str(out)]).stdout.startswith("grown 7 ")
    elflint_clean(out)


def test_an_atom_that_becomes_last_leaves_the_free_list(tmp_path: Path):
    # "before" gets filler's room (free list); when "after" goes too, "before" is the last
    # atom, whose room runs to the end of the section's virtual space. A new atom must then go
    # after it, inside the section, not at the far end of that space.
    program, funcs, globals_ = compile_to_codes(tmp_path, program_with(3))
    out = tmp_path / "last"
    fd = open_output(out)
    try:
        zo = ZigObject(ElfFile(fd, 4096), ARCH, "p.toy", {})
        for g in program.globals:
            zo.update_nav(g.name, globals_[g.name], const=g.kind == "const")
        zo.update_func("before", Code(b"\xc3", [], 16))
        zo.update_func("filler", Code(bytes(300), [], 16))
        zo.update_func("after", Code(b"\xc3", [], 16))
        zo.free_nav("filler")
        zo.free_nav("after")
        for name, code in funcs.items():
            zo.update_func(name, code)
        zo.flush()
        text = zo.elf.sections[zo.section_of["text"]].shdr
        for name in funcs:
            a = zo.symbol_atom(zo.navs[name])
            assert a.value + a.size <= text.size, f"{name} lies outside .text.zig"
    finally:
        os.close(fd)
    assert run([str(out)]).stdout.startswith("grown 7 ")
    elflint_clean(out)


def test_undefined_symbol_names_it_and_its_references(tmp_path: Path):
    fd = open_output(tmp_path / "undef")
    try:
        zo = ZigObject(ElfFile(fd, 4096), ARCH, "p.toy", {})
        call = Code(b"\xe8\0\0\0\0\xc3", [Reloc(1, 4, Target("nav", "missing"), -4)], 16)
        zo.update_func("main", call)
        zo.update_func("other", call)
        with pytest.raises(LinkError, match=r"undefined symbol: missing \(referenced by main, "
                                            r"other\)"):
            zo.flush()
    finally:
        os.close(fd)


def test_full_build_reserves_enough_so_no_segment_moves(tmp_path: Path):
    lines = "".join(f'    print("string literal number {i}");\n' for i in range(2000))
    src = tmp_path / "lits.toy"
    src.write_text(f"var x: int = 1;\nfn main() {{\n{lines}}}\n")
    out = tmp_path / "lits"
    assert build(src, out).status == 0
    with open(out, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
        filled = [s for s in loads if s["p_filesz"]]
        # Each file-backed segment starts where the one before it ends: no space was left
        # behind by a segment that had to move.
        for before, after in zip(filled, filled[1:], strict=False):
            assert after["p_offset"] == before["p_offset"] + before["p_filesz"]
    assert run([str(out)]).stdout.count("\n") == 2000


def test_thread_pointer_offsets_of_both_tls_variants():
    """x86_64 (variant 2): the block ends at the thread pointer; AArch64 (variant 1): it
    starts after a 16-byte thread control block."""
    from linker.zig_object import thread_pointer_offset
    from toyc.code import ArchInfo

    x86 = ArchInfo("x", 62, 8, 4096, 16, 5)
    arm = ArchInfo("a", 183, 8, 4096, 4, 16, tls_variant=1, tls_tcb_size=16)
    assert thread_pointer_offset(x86, 0, 32) == -32
    assert thread_pointer_offset(x86, 24, 32) == -8
    assert thread_pointer_offset(arm, 0, 32) == 16
    assert thread_pointer_offset(arm, 24, 32) == 40
