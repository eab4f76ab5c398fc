"""Debug info (DWARF 5), with gdb as the client: breakpoints, backtraces, locals, globals,
stepping and the line table, after a clean build and after incremental updates that move,
remove and add functions and shift lines; objects linked into C programs; what pyelftools,
readelf and eu-elflint read back. AArch64 programs run under `qemu-aarch64 -g`, with
gdb-multiarch attached (tests/install-tools.sh installs it)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
from elftools.dwarf.callframe import FDE, RegisterRule
from elftools.elf.elffile import ELFFile

from conftest import ARCHES, TOYC, arch_args, debug_description, require, run, runner

PROGRAM = """\
const LIMIT: int = 3;
var counter: int = 0;
var flags: [bool; 4];
const NAME: str = "toy";
{extra}
fn square(x: int) -> int {{
    let y = x * x;
    counter += 1;
    return y;
}}

fn sum(n: int) -> int {{
    let total = 0;
    let i = 1;
    while i <= n {{
        total += square(i);
        i += 1;
    }}
    return total;
}}

fn main() -> int {{
    let table = [1, 2, 3];
    let r = sum(LIMIT);
    flags[2] = true;
    print(NAME, r, table[1]);
    return 0;
}}
"""


def gdb(exe: Path, *commands: str, arch: str = "x86_64") -> str:
    """gdb's output for `commands` run in batch mode on `exe` (the program's own output goes
    to the same place, as in a terminal). A program of another architecture runs under
    `qemu-ARCH -g PORT`, and gdb-multiarch attaches to it: `run` means `continue` there."""
    emulator = runner(arch)
    qemu = None
    if emulator:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        qemu = subprocess.Popen([*emulator, "-g", str(port), str(exe)], cwd=exe.parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        commands = (f"target remote 127.0.0.1:{port}",
                    *("continue" if c == "run" else c for c in commands), "kill")
    args = [require("gdb-multiarch" if emulator else "gdb"), "-nx", "-batch"]
    for c in commands:
        args += ["-ex", c]
    try:
        p = subprocess.run([*args, str(exe)], capture_output=True, text=True, timeout=60,
                           cwd=exe.parent, stdin=subprocess.DEVNULL)
    finally:
        if qemu is not None:
            qemu.kill()
            qemu.wait()
    assert "DW_FORM" not in p.stderr and "Dwarf Error" not in p.stderr, p.stderr
    return p.stdout


def build(tmp: Path, text: str, *args: str, arch: str = "x86_64") -> str:
    (tmp / "debug.toy").write_text(text)
    r = run([*TOYC, "build", "-v", "debug.toy", "-o", "prog", *args, *arch_args(arch)],
            cwd=tmp)
    assert r.status == 0, r.stderr
    return r.stdout


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def check_session(exe: Path, text: str, arch: str = "x86_64") -> None:
    """The whole gdb session of the issue on the program `text` built at `exe`."""
    let_y, call = line_of(text, "let y = x * x"), line_of(text, "total += square(i)")
    in_main = line_of(text, "let r = sum(LIMIT)")
    out = gdb(exe, f"break debug.toy:{let_y}", "run", "bt", "print x", "next", "info locals",
              "print counter", "print NAME", "print LIMIT", "print flags", "up",
              "info locals", arch=arch)
    assert f"Breakpoint 1, square (x=1) at debug.toy:{let_y}" in out, out
    assert re.search(rf"#1 .* sum \(n=3\) at debug\.toy:{call}", out), out
    assert re.search(rf"#2 .* main \(\) at debug\.toy:{in_main}", out), out
    assert "$1 = 1\n" in out  # x
    assert "y = 1\n" in out  # after `next`
    assert "$2 = 0\n" in out  # counter, before the increment
    assert '$3 = (str) ' in out and '"toy"' in out
    assert "$4 = 3\n" in out
    assert "$5 = {false, false, false, false}" in out
    assert "total = 0\ni = 1\n" in out  # sum's locals, one frame up

    # stepping: next stays in main, step goes into sum at its first statement
    first_in_sum = line_of(text, "let total = 0")
    table = line_of(text, "let table = [1, 2, 3]")
    out = gdb(exe, "break main", "run", "next", "print table", "step", "bt 1", arch=arch)
    assert f"main () at debug.toy:{table}" in out, out
    assert "$1 = {1, 2, 3}" in out
    assert re.search(rf"^{in_main}\s+let r = sum\(LIMIT\);", out, re.M), out
    assert re.search(rf"sum \(n=3\) at debug\.toy:{first_in_sum}", out), out

    # the line table, both ways
    out = gdb(exe, f"info line debug.toy:{call}", "list square", arch=arch)
    assert re.search(rf'Line {call} of "debug\.toy" starts at address 0x[0-9a-f]+ <sum\+\d+>',
                     out), out
    assert re.search(rf"^{let_y}\s+let y = x \* x;", out, re.M), out


def check_readers(exe: Path) -> None:
    """pyelftools reads the DIEs and the line program back, and they agree with the symbol
    table; readelf and eu-elflint accept the sections."""
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        table = list(elf.get_section_by_name(".symtab").iter_symbols())
        symbols = {s.name: s["st_value"] for s in table}
        # the program's functions: not the runtime's, not the entry point
        declared = {s.name for s in table if s["st_info"]["type"] == "STT_FUNC"
                    and not s.name.startswith(("toy.", "_start"))}
        dwarf = elf.get_dwarf_info()
        cu = next(dwarf.iter_CUs())
        functions = {}
        for die in cu.get_top_DIE().iter_children():
            if die.tag == "DW_TAG_subprogram":
                functions[die.attributes["DW_AT_name"].value.decode()] = die
        assert set(functions) == declared
        rows = [e.state for e in dwarf.line_program_for_CU(cu).get_entries()
                if e.state is not None and not e.state.end_sequence]
        for name, die in functions.items():
            low = die.attributes["DW_AT_low_pc"].value
            assert low == symbols[name], name
            first = [r for r in rows if r.address == low]
            assert first and first[0].line == die.attributes["DW_AT_decl_line"].value, name
        if elf["e_machine"] == "EM_X86_64":
            # call frame information: one entry per function, over its code; past the
            # prologue the frame is found from rbp
            fdes = {e.header.initial_location: e for e in dwarf.CFI_entries()
                    if isinstance(e, FDE)}
            for name, die in functions.items():
                fde = fdes[symbols[name]]
                assert fde.header.address_range == die.attributes["DW_AT_high_pc"].value, name
                body = [row["cfa"] for row in fde.get_decoded().table
                        if row["pc"] == symbols[name] + 4]
                assert body and (body[0].reg, body[0].offset) == (6, 16), name
    r = run([require("readelf"), "--debug-dump", str(exe)])
    assert r.status == 0 and r.stderr == "", r.stderr
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout


@pytest.mark.parametrize("arch", ARCHES)
def test_gdb_session_on_a_clean_build(tmp_path: Path, arch: str):
    text = PROGRAM.format(extra="")
    build(tmp_path, text, arch=arch)
    check_session(tmp_path / "prog", text, arch)
    check_readers(tmp_path / "prog")
    assert run([*runner(arch), str(tmp_path / "prog")]).stdout == "toy 14 2\n"


BIG_SQUARE = """\
fn square(x: int) -> int {
    let y = x * x;
    counter += 1;
    let pad = 0;
    while pad < 3 { pad += 1; }
    if pad > 10 { print("never", pad, pad, pad, pad); }
    if pad > 20 { print("never either", pad, pad, pad, pad); }
    return y;
}
"""


@pytest.mark.parametrize("arch", ARCHES)
def test_gdb_session_after_updates(tmp_path: Path, arch: str):
    """The same session after each update: a function moves, one is removed and one added,
    lines shift above everything."""
    text = PROGRAM.format(extra="fn helper() -> int { return 7; }\n")
    build(tmp_path, text, arch=arch)
    check_session(tmp_path / "prog", text, arch)

    # square outgrows its room: it moves, and leaves a trampoline
    small = text.split("fn square")[1].split("}\n", 1)[0]
    text = text.replace("fn square" + small + "}\n", BIG_SQUARE)
    said = build(tmp_path, text, arch=arch)
    assert "square (moved, trampoline)" in said, said
    check_session(tmp_path / "prog", text, arch)
    check_readers(tmp_path / "prog")

    # helper goes, fresh comes (and main calls it)
    text = text.replace("fn helper() -> int { return 7; }\n",
                        "fn fresh(a: int) -> int {\n    let b = a + 1;\n    return b;\n}\n")
    text = text.replace("    return 0;\n}", "    return fresh(-1);\n}")
    said = build(tmp_path, text, arch=arch)
    assert "removed helper" in said and "added fresh" in said, said
    check_session(tmp_path / "prog", text, arch)
    check_readers(tmp_path / "prog")
    out = gdb(tmp_path / "prog", "break fresh", "run", "bt", "info functions ^helper$",
              "info functions ^fresh$", arch=arch)
    b_line = line_of(text, "let b = a + 1")
    assert f"fresh (a=-1) at debug.toy:{b_line}" in out, out
    listed = re.findall(r"^\d+:\s+(.*);$", out, re.M)  # the functions the debug info has
    assert listed == ["static int fresh(int)"], out

    # five lines above everything: nothing is regenerated, every line is patched
    text = "// one\n// two\n// three\n// four\n// five\n" + text
    said = build(tmp_path, text, arch=arch)
    assert "updated" not in said and "line numbers of" in said, said
    check_session(tmp_path / "prog", text, arch)
    check_readers(tmp_path / "prog")
    clean = tmp_path / "clean"
    r = run([*TOYC, "build", "--full", "debug.toy", "-o", str(clean), *arch_args(arch)],
            cwd=tmp_path)
    assert r.status == 0
    check_session(clean, text, arch)


RECURSION = """\
fn walk(n: int, acc: int) -> int {
    let here = n * 10;
    let kept = acc + here;
    if n == 0 {
        return kept;
    }
    let below = walk(n - 1, kept);
    return below + here;
}

fn main() {
    let first = 7;
    let r = walk(3, first);
    print(r, first);
}
"""


def check_frames(exe: Path, text: str) -> None:
    """Every frame of a recursion shows its own parameters and locals: they live in
    callee-saved registers, which each call saves, and the call frame information says
    where."""
    stop = line_of(text, "return kept;")
    commands = [f"break debug.toy:{stop}", "run", "bt"]
    for frame in range(4):
        commands += [f"frame {frame}", "print n", "print acc", "print here", "print kept"]
    commands += ["frame 4", "print first"]
    out = gdb(exe, *commands)
    call = line_of(text, "let below = walk")
    assert re.search(rf"#0 +walk \(n=0, acc=67\) at debug\.toy:{stop}", out), out
    for frame, (n, acc) in enumerate([(1, 57), (2, 37), (3, 7)], 1):
        assert re.search(rf"#{frame} .* walk \(n={n}, acc={acc}\) at debug\.toy:{call}", out), out
    values = [int(v) for v in re.findall(r"^\$\d+ = (-?\d+)$", out, re.M)]
    assert values == [0, 67, 0, 67, 1, 57, 10, 67, 2, 37, 20, 57, 3, 7, 30, 37, 7], out


def test_gdb_finds_callers_register_locals(tmp_path: Path):
    build(tmp_path, RECURSION)
    check_frames(tmp_path / "prog", RECURSION)
    check_readers(tmp_path / "prog")
    # walk outgrows its room: its frame description moves with it
    grown = "    let kept = acc + here;\n" + "    kept = kept * 3 - kept - kept;\n" * 12
    text = RECURSION.replace("    let kept = acc + here;\n", grown)
    said = build(tmp_path, text)
    assert "walk (moved, trampoline)" in said, said
    check_frames(tmp_path / "prog", text)
    check_readers(tmp_path / "prog")


def test_strip_leaves_debug_info_out(tmp_path: Path):
    text = PROGRAM.format(extra="")
    build(tmp_path, text, "--strip")
    sections = run([require("readelf"), "-SW", str(tmp_path / "prog")]).stdout
    assert ".debug_" not in sections
    assert "No symbol table is loaded" not in gdb(tmp_path / "prog", "info functions square")
    # asking for debug info again is a full build that says why
    (tmp_path / "debug.toy").write_text(text)
    r = run([*TOYC, "build", "-v", "debug.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status == 0 and "full build" in r.stdout
    assert "with --strip" in r.stderr + r.stdout
    assert ".debug_info" in run([require("readelf"), "-SW", str(tmp_path / "prog")]).stdout


LIB = """\
export fn add(a: int, b: int) -> int {
    let s = a + b;
    print("toy add", a, b);
    return s + bonus;
}
export var bonus: int = 100;
"""
MAIN_C = """\
#include <stdio.h>
long long add(long long, long long);
int main(void) {
    printf("%lld\\n", add(2, 3));
    return 0;
}
"""


@pytest.mark.parametrize("edit", [False, True], ids=["clean", "updated"])
def test_gdb_debugs_toy_code_inside_a_c_program(tmp_path: Path, edit: bool):
    (tmp_path / "lib.toy").write_text(LIB)
    (tmp_path / "main.c").write_text(MAIN_C)
    assert run([*TOYC, "build", "-c", "lib.toy"], cwd=tmp_path).status == 0
    if edit:  # an update of the object: add grows, moves (objects have no trampolines)
        (tmp_path / "lib.toy").write_text(LIB.replace(
            "    let s = a + b;\n",
            "    let s = a + b;\n" + "    s = s * 3 - s - s;\n" * 8))
        r = run([*TOYC, "build", "-c", "-v", "lib.toy"], cwd=tmp_path)
        assert r.status == 0 and "add (moved)" in r.stdout, r.stdout + r.stderr
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "lib.o")])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
    cc = run([require("gcc"), "-g", "main.c", "lib.o", "-o", "cprog"], cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    line = line_of((tmp_path / "lib.toy").read_text(), "print(")
    out = gdb(tmp_path / "cprog", f"break lib.toy:{line}", "run", "bt", "info locals",
              "print bonus", "finish")
    assert f"add (a=2, b=3) at lib.toy:{line}" in out, out
    assert re.search(r"#1 .* main \(\) at main\.c:4", out), out
    assert "s = 5\n" in out and "= 100\n" in out
    assert "Value returned is $2 = 105" in out
    check_readers_object(tmp_path / "cprog")


def check_readers_object(exe: Path) -> None:
    r = run([require("readelf"), "--debug-dump=info,line", str(exe)])
    assert r.status == 0 and "Warning" not in r.stderr, r.stderr
    with open(exe, "rb") as f:
        names = {cu.get_top_DIE().attributes["DW_AT_name"].value.decode()
                 for cu in ELFFile(f).get_dwarf_info().iter_CUs()}
    assert {"lib.toy", "main.c"} <= names


SHADOW = """\
fn main() {
    let x = 1;
    if x > 0 {
        let x = 2;
        print(x);
    }
    let y = 3;
    print(x, y);
}
"""


def test_a_local_in_a_nested_block_is_the_one_gdb_shows_there(tmp_path: Path):
    build(tmp_path, SHADOW)
    out = gdb(tmp_path / "prog", "break debug.toy:5", "break debug.toy:8", "run", "print x",
              "continue", "print x", "print y")
    assert "$1 = 2\n" in out and "$2 = 1\n" in out and "$3 = 3\n" in out, out
    check_readers(tmp_path / "prog")


def test_lines_shifted_above_many_declarations(tmp_path: Path):
    """Lines added above 700 declarations: each one's lines in the debug info are patched
    (through a mapping of the file, for so many), and say what a clean build's say."""
    funcs = "".join(f"fn f{i}(x: int) -> int {{\n    let y = x + {i};\n    return y;\n}}\n"
                    for i in range(700))
    text = funcs + "fn main() {\n    print(f699(1));\n}\n"
    build(tmp_path, text)
    text = "// one\n// two\n" + text
    said = build(tmp_path, text)
    assert "line numbers of 701 declarations" in said and "updated" not in said, said
    r = run([*TOYC, "build", "--full", "debug.toy", "-o", "clean"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    assert debug_description(tmp_path / "prog") == debug_description(tmp_path / "clean")
    line = line_of(text, "let y = x + 699;")
    out = gdb(tmp_path / "prog", "break f699", "run", "bt 1")
    assert f"f699 (x=1) at debug.toy:{line}" in out, out


def test_watch_strip_writes_no_debug_info(tmp_path: Path):
    from watching import Watcher, save_in_place

    (tmp_path / "src.toy").write_text("fn main() { print(1); }\n")
    w = Watcher(tmp_path, "--strip")
    try:
        assert "(full build)" in w.line()
        w.wait_watching()
        save_in_place(tmp_path / "src.toy", "fn main() { print(2); }\n")
        assert w.line().startswith("updated main")
    finally:
        w.stop()
    sections = run([require("readelf"), "-SW", str(tmp_path / "prog")]).stdout
    assert ".text.zig" in sections and ".debug_" not in sections
    assert run([str(tmp_path / "prog")]).stdout == "2\n"


THREADS = """\
fn worker(n: int) -> int {
    let i = 0;
    while i < n {
        sleep_ms(1);
        i += 1;
    }
    return n;
}

fn main() -> int {
    let t = spawn(worker, 100000);
    print(join(t));
    return 0;
}
"""
TLS_LINE = "threadlocal var hits: int = 3;\n"


def backtrace(out: str) -> list[str]:
    """The function of each frame in gdb's backtraces in `out`, in order."""
    return re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(", out, re.M)


def check_outermost(exe: Path, text: str, arch: str) -> None:
    """Backtraces end at the code where the thread began (its return address is undefined in
    the call frame information), with nothing made up after it; gdb is told to go past main
    and the entry point, so that the call frame information alone is what stops it."""
    past = ("set backtrace past-main on", "set backtrace past-entry on")
    out = gdb(exe, *past, "break worker", "run", "bt", "break toy.rt.sleep_ms", "continue",
              "bt", arch=arch)
    assert f"worker (n=100000) at debug.toy:{line_of(text, 'let i = 0')}" in out, out
    assert backtrace(out) == ["worker", "toy.rt.thread_start",
                              "toy.rt.sleep_ms", "worker", "toy.rt.thread_start"], out
    assert "??" not in out and "Backtrace stopped" not in out, out
    # the main thread: before main, and in it
    out = gdb(exe, *past, "break toy.rt.args_init", "break main", "run", "bt", "continue", "bt",
              arch=arch)
    assert backtrace(out) == ["toy.rt.args_init", "_start", "main", "_start"], out
    assert "??" not in out and "Backtrace stopped" not in out, out


def check_outermost_frames(exe: Path) -> None:
    """pyelftools reads the entry points' frame description entries: the return address is
    undefined at every address of them."""
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        dwarf = elf.get_dwarf_info()
        fdes = {e.header.initial_location: e for e in dwarf.CFI_entries() if isinstance(e, FDE)}
        ra = 16 if elf["e_machine"] == "EM_X86_64" else 30
        for name in ("_start", "toy.rt.thread_start"):
            table = fdes[symbols[name]].get_decoded().table
            assert table and all(row[ra].type == RegisterRule.UNDEFINED for row in table), name


@pytest.mark.parametrize("arch", ARCHES)
def test_backtraces_end_where_threads_begin(tmp_path: Path, arch: str):
    """In a spawned thread gdb's backtrace is the thread's function, then toy.rt.thread_start,
    and nothing more; in the main thread it ends at _start. After updates too: _start changes
    (thread-locals come), toy.rt.thread_start goes with the last spawn and comes back."""
    build(tmp_path, THREADS, arch=arch)
    exe = tmp_path / "prog"
    check_outermost(exe, THREADS, arch)
    check_outermost_frames(exe)
    check_readers(exe)
    steps = [
        TLS_LINE + THREADS.replace("i += 1;", "i += 1;\n        hits += 1;"),  # _start.tls
        TLS_LINE + THREADS.replace("spawn(worker, 100000)", "worker(0)")
        .replace("join(t)", "t + hits"),  # no thread_start
        THREADS,  # it is back, and thread-locals are gone
    ]
    for text in steps:
        build(tmp_path, text, arch=arch)
        r = run([*TOYC, "build", "--full", "debug.toy", "-o", "clean", *arch_args(arch)],
                cwd=tmp_path)
        assert r.status == 0, r.stderr
        assert debug_description(exe) == debug_description(tmp_path / "clean")
        check_readers(exe)
        if "spawn" in text:
            check_outermost(exe, text, arch)
            check_outermost_frames(exe)


def test_an_objects_thread_start_has_its_frame_description(tmp_path: Path):
    """In an object, the entry of toy.rt.thread_start is relocated against its symbol."""
    (tmp_path / "lib.toy").write_text(THREADS.replace("fn main() -> int", "export fn go() -> int"))
    assert run([*TOYC, "build", "-c", "lib.toy"], cwd=tmp_path).status == 0
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "lib.o")])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
    r = run([require("readelf"), "-rW", "--debug-dump=frames", str(tmp_path / "lib.o")])
    assert r.status == 0 and r.stderr == "", r.stderr
    rela = r.stdout.split("'.rela.debug_frame'")[1].split("\n\n")[0]
    assert "toy.rt.thread_start" in rela, r.stdout
    assert "DW_CFA_undefined: r16 (rip)" in r.stdout, r.stdout
