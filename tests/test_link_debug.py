"""Debugging Toy and C together. C sources compiled here with gcc (-O0, and -O2, whose code keeps
no frame pointer, so that only its call frame information says how to unwind it: in
`.eh_frame`, or with -fno-asynchronous-unwind-tables in `.debug_frame`, before Toy's), one
object and one archive member, linked into a Toy program by `toyc build`, then debugged with
gdb in batch mode:
breakpoints in C stop at C's lines, C's locals and globals print, backtraces go Toy → C → Toy,
before and after incremental updates move Toy's functions and shift its lines. Every output is
read back by readelf, eu-elflint and pyelftools: both languages' units, Toy's after C's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.dwarf.callframe import FDE
from elftools.elf.elffile import ELFFile

from conftest import TOYC, require, run

C_SIDE = """\
/* Between two Toy frames: Toy's run calls c_apply, which calls back into Toy. */
long toy_cb(long x);
long c_scale(long v);
long c_calls;

long c_apply(long n)
{
    long acc = 0;
    c_calls++;
    for (long i = 0; i < n; i++) {
        long v = toy_cb(i);
        acc += c_scale(v);
    }
    return acc;
}
"""
SCALE = """\
/* A member of libscale.a, linked because c_apply calls it. */
long c_scale(long v)
{
    long s = v * 3;
    return s;
}
"""
PROGRAM = """\
extern fn c_apply(n: int) -> int;
extern var c_calls: int;

export fn toy_cb(x: int) -> int {
    let y = x * x;
    return y + 1;
}

fn run(n: int) -> int {
    let r = c_apply(n);
    return r;
}

fn main() -> int {
    let total = run(4);
    print(total, c_calls);
    return 0;
}
"""
OUTPUT = "54 1\n"  # 3 * (1 + 2 + 5 + 10), and one call into C
GROWN_CB = """\
export fn toy_cb(x: int) -> int {
    let y = x * x;
    y = y * 3 - y - y;
    y = y * 3 - y - y;
    y = y * 3 - y - y;
    y = y * 3 - y - y;
    y = y * 3 - y - y;
    y = y * 3 - y - y;
    return y + 1;
}
"""
# how gcc compiles the C side
FLAGS = {"O0": ["-O0"], "O2": ["-O2"], "O2-debug-frame": ["-O2", "-fno-asynchronous-unwind-tables"]}


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def compile_c(tmp: Path, flags: str) -> None:
    """c_side.o, and libscale.a holding scale.o, compiled with `-g` and FLAGS[flags]."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    (tmp / "c_side.c").write_text(C_SIDE)
    (tmp / "scale.c").write_text(SCALE)
    for name in ("c_side", "scale"):
        cc = run([gcc, "-g", *FLAGS[flags], "-c", f"{name}.c", "-o", f"{name}.o"], cwd=tmp)
        assert cc.status == 0, cc.stderr
    ar = run([require("ar"), "rcs", "libscale.a", "scale.o"], cwd=tmp)
    assert ar.status == 0, ar.stderr
    if "-O2" in FLAGS[flags]:  # what makes call frame information necessary: no frame pointer
        code = run([require("objdump"), "-d", str(tmp / "c_side.o")]).stdout
        assert "c_apply" in code and "%rsp,%rbp" not in code, code


def build(tmp: Path, text: str, *args: str) -> str:
    (tmp / "prog.toy").write_text(text)
    r = run([*TOYC, "build", "-v", "prog.toy", "c_side.o", "-L.", "-lscale", "-o", "prog",
             *args], cwd=tmp)
    assert r.status == 0, r.stderr
    assert run([str(tmp / "prog")]).stdout == OUTPUT
    return r.stdout


def gdb(exe: Path, *commands: str) -> str:
    """gdb's output for `commands`, run in batch mode on `exe`; it must read the debug info
    without complaint."""
    args = [require("gdb"), "-nx", "-batch"]
    for c in commands:
        args += ["-ex", c]
    p = subprocess.run([*args, str(exe)], capture_output=True, text=True, timeout=60,
                       cwd=exe.parent, stdin=subprocess.DEVNULL)
    assert "DW_FORM" not in p.stderr and "Dwarf Error" not in p.stderr, p.stderr
    assert "??" not in p.stdout and "Backtrace stopped" not in p.stdout, p.stdout
    return p.stdout


def backtrace(out: str) -> list[str]:
    """The function of each frame in gdb's backtrace in `out`, in order."""
    return re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(", out, re.M)


def check_session(exe: Path, text: str) -> None:
    """Breakpoints in C (by line, in the object; by name, in the archive member) and in the
    Toy function that C calls back; the backtraces from each; C's locals in C's frame."""
    acc = line_of(C_SIDE, "acc += c_scale(v)")
    calls_cb = line_of(C_SIDE, "long v = toy_cb(i)")
    in_run, in_main = line_of(text, "let r = c_apply(n)"), line_of(text, "let total = run(4)")
    toy_frames = rf"#1 .* run \(n=4\) at prog\.toy:{in_run}\n#2 .* main \(\) at prog\.toy:{in_main}"

    out = gdb(exe, f"break c_side.c:{acc}", "run", "bt", "info locals", "print c_calls",
              "print acc")
    assert f"Breakpoint 1, c_apply (n=4) at c_side.c:{acc}\n" in out, out
    assert re.search(rf"#0 +c_apply \(n=4\) at c_side\.c:{acc}\n{toy_frames}", out), out
    assert "v = 1\ni = 0\nacc = 0\n" in out, out
    assert "$1 = 1\n$2 = 0\n" in out, out

    # a Toy function called from C called from Toy: gdb unwinds Toy's frame with .debug_frame,
    # C's with .eh_frame
    let_y = line_of(text, "let y = x * x")
    out = gdb(exe, "break toy_cb", "run", "bt")
    assert re.search(rf"Breakpoint 1, toy_cb \(x=(x@entry=)?0\) at prog\.toy:{let_y}\n", out), out
    assert backtrace(out) == ["toy_cb", "c_apply", "run", "main"], out
    assert re.search(rf"#1 .* c_apply \(n=4\) at c_side\.c:{calls_cb}\n", out), out
    assert re.search(toy_frames.replace("#2", "#3").replace("#1", "#2"), out), out
    out = gdb(exe, "break toy_cb", "run", "up", "info locals")
    assert re.search(r"i = 0\nacc = 0\n", out), out

    # the archive member, two C frames deep
    out = gdb(exe, "break c_scale", "run", "bt", "finish")
    assert re.search(r"Breakpoint 1, c_scale \(v=1\) at scale\.c:[45]\n", out), out
    assert backtrace(out)[:4] == ["c_scale", "c_apply", "run", "main"], out
    assert re.search(rf"#1 .* c_apply \(n=4\) at c_side\.c:{acc}\n", out), out
    assert "Value returned is $1 = 3\n" in out, out


def check_readers(exe: Path) -> None:
    """readelf and eu-elflint accept the output; pyelftools reads C's units, then Toy's, each
    consistent with the symbol table and its line program, and every function's call frame
    information."""
    for args in (["-a", "-W"], ["--debug-dump"]):
        r = run([require("readelf"), *args, str(exe)])
        assert r.status == 0 and r.stderr == "", r.stderr
    r = run([require("readelf"), "--debug-dump=info,line", str(exe)])
    assert r.status == 0 and r.stderr == "", r.stderr
    names = re.findall(r"DW_AT_name +: \(indirect line string, offset: [0-9a-fx]+\): (\S+)",
                       r.stdout)
    assert names[:2] == ["c_side.c", "scale.c"] and "prog.toy" in names, names
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        dwarf = elf.get_dwarf_info()
        units = {cu.get_top_DIE().attributes["DW_AT_name"].value.decode(): cu
                 for cu in dwarf.iter_CUs()}
        assert list(units) == ["c_side.c", "scale.c", "prog.toy"]
        toy = units["prog.toy"]
        assert toy["debug_abbrev_offset"] > 0 and toy.cu_offset > 0  # after C's
        for unit, functions in (("c_side.c", {"c_apply"}), ("scale.c", {"c_scale"}),
                                ("prog.toy", {"toy_cb", "run", "main"})):
            cu = units[unit]
            rows = {e.state.address for e in dwarf.line_program_for_CU(cu).get_entries()
                    if e.state is not None and not e.state.end_sequence}
            lows = {}
            for die in cu.get_top_DIE().iter_children():
                if die.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in die.attributes:
                    lows[die.attributes["DW_AT_name"].value.decode()] = \
                        die.attributes["DW_AT_low_pc"].value
            assert set(lows) == functions, (unit, lows)
            for name, low in lows.items():
                assert low == symbols[name] and low in rows, (unit, name)
        # what Toy's unit names in other sections is its own: its producer, its address
        # ranges in .debug_aranges
        producers = {n: cu.get_top_DIE().attributes["DW_AT_producer"].value.decode()
                     for n, cu in units.items()}
        assert producers["prog.toy"].startswith("toyc ")
        assert producers["c_side.c"].startswith("GNU C")
        aranges = dwarf.get_aranges()
        for unit, name in (("c_side.c", "c_apply"), ("scale.c", "c_scale"), ("prog.toy", "main")):
            assert aranges.cu_offset_at_addr(symbols[name]) == units[unit].cu_offset, unit
        # C's functions have entries in .eh_frame or .debug_frame, Toy's in .debug_frame, whose
        # own common entry follows C's entries
        entries = [*(dwarf.EH_CFI_entries() if dwarf.has_EH_CFI() else []),
                   *(dwarf.CFI_entries() if dwarf.has_CFI() else [])]
        starts = {e.header.initial_location for e in entries if isinstance(e, FDE)}
        assert {symbols[n] for n in ("c_apply", "c_scale", "toy_cb", "run", "main")} <= starts
        c_code = {symbols["c_apply"], symbols["c_scale"]}
        fdes = [e for e in dwarf.CFI_entries() if isinstance(e, FDE)]
        c_end = max((e.offset for e in fdes if e.header.initial_location in c_code), default=-1)
        assert all(e.cie.offset > c_end for e in fdes if e.header.initial_location not in c_code)


@pytest.mark.parametrize("flags", FLAGS)
def test_gdb_debugs_c_linked_into_a_toy_program(tmp_path: Path, flags: str):
    compile_c(tmp_path, flags)
    build(tmp_path, PROGRAM)
    check_session(tmp_path / "prog", PROGRAM)
    check_readers(tmp_path / "prog")


@pytest.mark.parametrize("flags", FLAGS)
def test_gdb_debugs_c_after_toy_updates(tmp_path: Path, flags: str):
    """The same sessions after Toy's side changes in place: toy_cb, which C calls, outgrows
    its room and moves (C's call goes through the trampoline, and to the new body after the
    next full build); then lines shift above everything."""
    compile_c(tmp_path, flags)
    build(tmp_path, PROGRAM)
    old = PROGRAM.split("export fn toy_cb")[1].split("}\n", 1)[0]
    text = PROGRAM.replace("export fn toy_cb" + old + "}\n", GROWN_CB)
    said = build(tmp_path, text)
    assert "toy_cb (moved, trampoline)" in said and "full build" not in said, said
    check_session(tmp_path / "prog", text)
    check_readers(tmp_path / "prog")

    text = "// one\n// two\n// three\n" + text
    said = build(tmp_path, text)
    assert "line numbers of" in said and "full build" not in said, said
    check_session(tmp_path / "prog", text)
    check_readers(tmp_path / "prog")


def test_strip_leaves_cs_debug_info_out_but_not_eh_frame(tmp_path: Path):
    compile_c(tmp_path, "O2")
    build(tmp_path, PROGRAM, "--strip")
    exe = tmp_path / "prog"
    sections = run([require("readelf"), "-SW", str(exe)]).stdout
    assert ".debug_" not in sections and ".eh_frame" in sections, sections
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
    # C's frames still unwind (.eh_frame), Toy's from their frame pointer
    out = gdb(exe, "break c_scale", "run", "bt")
    assert backtrace(out)[:4] == ["c_scale", "c_apply", "run", "main"], out
