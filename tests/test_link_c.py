"""Linking C into Toy executables: `toyc build prog.toy x.o libx.a -L DIR -l NAME -o OUT`.

The C sources are in tests/c/ and are compiled when the tests run, once per module and mode
(the `cc` fixture). What is covered, each its own test:

- compilers and modes: the same C (calls, globals, strings, pointers, bools, a jump table)
  built by gcc -O0, -O2, its default PIE, -fno-pie, -fPIC (with and without relaxable GOT
  relocations, and in the large code model), -fno-plt, by tcc, and by clang when it is
  installed;
- what C and Toy share: calls both ways (Toy -> C -> Toy), globals both ways, `str` as a
  `const char *`, C pointers kept in an `int`, C `bool`s whose upper bits are garbage, a
  switch's jump table, mergeable string literals, COMMON symbols, weak definitions beaten by
  strong ones (C's and a Toy export), constructors and destructors with priorities (at the
  return from main and at `exit`), C `__thread` variables in Toy's threads in every TLS
  model the linker relaxes (local exec, general and local dynamic, initial exec, TLS
  descriptors);
- static archives: members loaded only when needed and transitively, with and without a
  symbol index, long member names, found by `-L`/`-l` or given by path;
- every executable passes `eu-elflint --gnu-ld`, `readelf -a` and `objdump -d`, and `nm` lists
  its C and Toy symbols;
- what cannot be linked fails with status 1 and one `toyc: error:` line (a Toy extern that
  nothing defines: a diagnostic at its use), no traceback, and leaves the output path as it
  was: not ELF, truncated, another machine, an unsupported relocation, a missing `-l`
  library, an undefined symbol in C, two strong definitions, `-c`/`--lib` with inputs;
- the AArch64 plugin reads a C `bool` by its low byte too (an object linked by GNU ld with
  assembly that leaves garbage above it, run under qemu).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import TOYC, Result, binutil, require, run, runner

C_DIR = Path(__file__).resolve().parent / "c"
# There is no libc to provide __stack_chk_fail or the canary it checks, and some
# distributions' gcc turn the stack protector on by default.
NO_LIBC = ("-fno-stack-protector",)


def _compiler(name: str) -> str:
    if name == "gcc":
        return require("gcc")
    path = shutil.which(name)
    if path is None:
        if name == "tcc":  # CI installs it (Debian's tcc package)
            pytest.skip("tcc is not installed (Debian: apt-get install tcc)")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def cc(tmp_path_factory):
    """`cc(source, *flags, compiler="gcc")`: the object of tests/c/SOURCE built with those
    flags, compiled once per module."""
    root = tmp_path_factory.mktemp("objects")
    made: dict[tuple, Path] = {}

    def compile_c(source: str, *flags: str, compiler: str = "gcc") -> Path:
        key = (compiler, source, flags)
        if key not in made:
            out = root / f"{len(made)}-{Path(source).stem}.o"
            extra = NO_LIBC if compiler != "tcc" else ()
            r = run([_compiler(compiler), *extra, *flags, "-c", str(C_DIR / source), "-o",
                     str(out)])
            assert r.status == 0, r.stderr
            made[key] = out
        return made[key]

    return compile_c


# ---- building, checking and running ----------------------------------------------------------


def toyc_build(tmp: Path, toy: str, *inputs, out: str = "prog", options=()) -> Result:
    (tmp / "prog.toy").write_text(toy)
    return run([*TOYC, "build", *options, "prog.toy", *map(str, inputs), "-o", out], cwd=tmp)


def check_elf(exe: Path, names) -> None:
    """What binutils and elfutils say of `exe`: no complaint, and `names` in its symbols."""
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout + lint.stderr
    readelf = run([require("readelf"), "-a", "-W", str(exe)])
    assert readelf.status == 0 and readelf.stderr == "", readelf.stderr
    objdump = run([require("objdump"), "-d", str(exe)])
    assert objdump.status == 0, objdump.stderr
    nm = run([require("nm"), str(exe)])
    assert nm.status == 0, nm.stderr
    listed = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    missing = set(names) - listed
    assert not missing, f"nm does not list {sorted(missing)}"


def build_ok(tmp: Path, toy: str, *inputs, names=()) -> Path:
    """Build `toy` with `inputs` (quietly), check the executable, return its path."""
    r = toyc_build(tmp, toy, *inputs)
    assert (r.status, r.stdout, r.stderr) == (0, "", ""), r.stderr
    exe = tmp / "prog"
    check_elf(exe, {"main", *names})
    return exe


def run_ok(exe: Path, expected: str, status: int = 0) -> None:
    r = run([str(exe)], timeout=20)
    assert (r.stdout, r.stderr, r.status) == (expected, "", status)


def nm_types(exe: Path) -> dict[str, str]:
    """Symbol name -> nm's type letter."""
    out = run([require("nm"), str(exe)]).stdout
    return {f[-1]: f[-2] for f in (line.split() for line in out.splitlines()) if len(f) >= 2}


def relocation_types(obj: Path) -> set[str]:
    out = run([require("readelf"), "-rW", str(obj)]).stdout
    return {f[2] for f in (line.split() for line in out.splitlines())
            if len(f) > 2 and f[2].startswith("R_X86_64_")}


# ---- what C and Toy share: one C file and its Toy side per feature --------------------------


class Feature(NamedTuple):
    source: str  # in tests/c
    toy: str  # declarations, and `fn check_NAME()` that prints
    expected: str  # what check_NAME prints
    names: tuple[str, ...]  # C and Toy symbols the executable lists


CALLBACK_TOY = """
extern fn c_add(a: int, b: int) -> int;
extern fn c_fold_range(n: int) -> int;
extern fn c_weigh(a: int, b: int, c: int, d: int, e: int, f: int) -> int;
export("toy_twice") fn twice(x: int) -> int { return 2 * x; }
export("toy_fold") fn fold(acc: int, x: int) -> int { return acc * 2 + x; }
fn check_callback() {
    print("callback", c_add(1, 2), c_fold_range(5), c_weigh(1, 2, 3, 4, 5, 6));
}
"""

GLOBALS_TOY = """
extern var c_counter: int;
extern var c_zeroed: int;
extern fn c_bump(by: int);
extern fn c_private_value() -> int;
extern fn c_add_to_total(n: int);
extern fn c_read_total() -> int;
extern fn c_table_sum() -> int;
export("toy_total") var total: int = 100;
export("toy_table") var table: [int; 4] = [1, 2, 3, 4];
fn check_globals() {
    print("globals", c_counter, c_zeroed);
    c_counter += 2;
    c_zeroed = 5;
    c_bump(10);
    print("globals", c_counter, c_zeroed, c_private_value());
    c_add_to_total(5);
    total += 1;
    print("globals", total, c_read_total());
    print("globals", c_table_sum(), table[3]);
}
"""

TEXT_TOY = r"""
extern fn c_length(s: str) -> int;
extern fn c_byte_sum(s: str) -> int;
extern fn c_fruit(s: str) -> int;
extern fn c_fruit_bytes() -> int;
const GREETING: str = "hello, toy";
fn check_text() {
    print("text", c_length(GREETING), c_length(""), c_length("a\0b"), c_byte_sum("AB"));
    print("text", c_fruit("apple"), c_fruit("elder"), c_fruit("fig"), c_fruit("grape"),
          c_fruit("kiwi"), c_fruit("appl"));
    print("text", c_fruit_bytes());
}
"""
FRUITS = ("apple", "banana", "cherry", "damson", "elder", "fig", "grape")

POINTERS_TOY = """
extern fn c_push(list: int, value: int) -> int;
extern fn c_list_sum(list: int) -> int;
extern fn c_is_in_arena(p: int) -> int;
fn check_pointers() {
    let list = 0;
    let i = 1;
    while i <= 4 {
        list = c_push(list, i);
        i += 1;
    }
    print("pointers", c_list_sum(list), c_is_in_arena(list), c_is_in_arena(list + 4096));
}
"""

# toy_garbage's result stays in rax above the byte C's `bool` result sets; c_call_pick calls
# toy_pick with bits above the low byte of its `bool` argument set.
BOOLS_TOY = """
extern fn c_is_big(x: int) -> bool;
extern fn c_not(b: bool) -> bool;
extern fn c_call_pick(garbage: int) -> int;
extern fn c_count_odd(n: int) -> int;
export("toy_garbage") fn garbage(x: int) -> int { return 0x7700; }
export("toy_pick") fn pick(b: bool) -> int {
    if b { return 10; }
    return 20;
}
export("toy_is_odd") fn is_odd(x: int) -> bool { return x % 2 == 1; }
fn check_bools() {
    print("bools", c_is_big(3), c_is_big(6), c_is_big(-1), c_not(true), c_not(false));
    if c_is_big(2) { print("bools: c_is_big(2) reads as true"); }
    let either = c_is_big(2) or c_is_big(1);
    let same = c_is_big(0) == false;
    print("bools", either, same, c_call_pick(0x100), c_call_pick(1), c_call_pick(0x7701),
          c_count_odd(9));
}
"""

SWITCH_TOY = """
extern fn c_dispatch(op: int, x: int) -> int;
fn check_switch() {
    print("switch", c_dispatch(-1, 20), c_dispatch(0, 20), c_dispatch(1, 20), c_dispatch(2, 20),
          c_dispatch(3, 20), c_dispatch(4, 20));
    print("switch", c_dispatch(5, 20), c_dispatch(6, 20), c_dispatch(7, 20), c_dispatch(8, 20),
          c_dispatch(9, 20));
}
"""

FEATURES = {
    "callback": Feature("callback.c", CALLBACK_TOY, "callback 5 57 91\n",
                        ("c_add", "c_fold_range", "toy_twice", "toy_fold")),
    "globals": Feature("globals.c", GLOBALS_TOY,
                       "globals 40 0\nglobals 52 -5 8\nglobals 106 106\nglobals 30 -1\n",
                       ("c_counter", "c_zeroed", "c_bump", "toy_total", "toy_table")),
    "text": Feature("text.c", TEXT_TOY,
                    "text 10 0 1 131\ntext 0 4 10 11 -1 -1\n"
                    f"text {sum(sum(f.encode()) for f in FRUITS)}\n",
                    ("c_length", "c_fruit", "c_fruit_bytes")),
    "pointers": Feature("pointers.c", POINTERS_TOY, "pointers 4321 1 0\n",
                        ("c_push", "c_list_sum")),
    "bools": Feature("bools.c", BOOLS_TOY,
                     "bools false true false false true\nbools false true 20 10 10 4\n",
                     ("c_is_big", "c_call_pick", "toy_pick", "toy_garbage", "toy_is_odd")),
    "switch": Feature("switch.c", SWITCH_TOY,
                      "switch 0 21 60 13 80 10\nswitch -20 65 0 1020 0\n", ("c_dispatch",)),
}


def program(*features: str) -> str:
    calls = "".join(f"    check_{name}();\n" for name in features)
    return "".join(FEATURES[name].toy for name in features) + \
        f"\nfn main() -> int {{\n{calls}    return 0;\n}}\n"


# compiler and flags, and relocation types that show the objects are built the way meant
MODES = {
    "gcc-O0": ("gcc", ("-O0",), set()),
    "gcc-O2": ("gcc", ("-O2",), set()),
    # Debian's gcc builds position-independent code for a PIE by default
    "gcc-default-pie": ("gcc", (), set()),
    "gcc-fno-pie": ("gcc", ("-O2", "-fno-pie"), {"R_X86_64_32S", "R_X86_64_64"}),
    "gcc-fPIC": ("gcc", ("-O2", "-fPIC"), {"R_X86_64_REX_GOTPCRELX"}),
    # GOT loads the linker may not rewrite into `lea`: read through real GOT slots
    "gcc-fPIC-no-relax": ("gcc", ("-O2", "-fPIC", "-Wa,-mrelax-relocations=no"),
                          {"R_X86_64_GOTPCREL"}),
    "gcc-fno-plt": ("gcc", ("-O2", "-fno-plt"), {"R_X86_64_GOTPCRELX"}),
    # the large code model's 64-bit GOT-relative references
    "gcc-fPIC-large": ("gcc", ("-O2", "-fPIC", "-mcmodel=large"),
                       {"R_X86_64_GOTPC64", "R_X86_64_GOT64", "R_X86_64_GOTOFF64",
                        "R_X86_64_PLTOFF64"}),
    "tcc": ("tcc", (), set()),
    "clang": ("clang", ("-O2",), set()),
}


@pytest.mark.parametrize("mode", MODES)
def test_compilers_and_modes(tmp_path: Path, cc, mode: str):
    """Every feature's C built by one compiler in one mode, linked into one program."""
    compiler, flags, relocs = MODES[mode]
    objects = [cc(f.source, *flags, compiler=compiler) for f in FEATURES.values()]
    seen = set().union(*(relocation_types(o) for o in objects))
    assert relocs <= seen, f"{mode}: no {sorted(relocs - seen)} in {sorted(seen)}"
    names = {n for f in FEATURES.values() for n in f.names}
    exe = build_ok(tmp_path, program(*FEATURES), *objects, names=names)
    run_ok(exe, "".join(f.expected for f in FEATURES.values()))


@pytest.mark.parametrize("feature", FEATURES)
def test_feature(tmp_path: Path, cc, feature: str):
    """Calls both ways, globals both ways, `str` to C, C pointers in an `int`, C `bool`s
    (gcc -O2 leaves garbage above the byte that holds them), a switch's jump table."""
    f = FEATURES[feature]
    exe = build_ok(tmp_path, program(feature), cc(f.source, "-O2"), names=f.names)
    run_ok(exe, f.expected)


def test_switch_has_a_jump_table(cc):
    """gcc -O2 makes test_feature[switch]'s switch a table of offsets in .rodata."""
    obj = cc("switch.c", "-O2")
    out = run([require("readelf"), "-rW", str(obj)]).stdout
    assert "'.rela.rodata'" in out and out.count(".text") >= 9, out


def test_mergeable_strings(tmp_path: Path, cc):
    """C's string literals in .rodata.str1.1 (SHF_MERGE | SHF_STRINGS), referred to through
    the section's symbol plus an addend from code and from a table of pointers."""
    obj = cc("text.c", "-O2")
    sections = run([require("readelf"), "-SW", str(obj)]).stdout
    assert ".rodata.str1.1" in sections and " AMS " in sections, sections
    exe = build_ok(tmp_path, program("text"), obj, names=FEATURES["text"].names)
    run_ok(exe, FEATURES["text"].expected)


# ---- COMMON and weak symbols ----------------------------------------------------------------


def test_common_symbols(tmp_path: Path, cc):
    """Tentative definitions in two objects (gcc -fcommon) are one object, of the larger
    size, in .bss; Toy reads and writes it."""
    a, b = cc("common_a.c", "-O2", "-fcommon"), cc("common_b.c", "-O2", "-fcommon")
    assert "C c_common" in run([require("nm"), str(a)]).stdout
    toy = """
extern var c_common: int;
extern fn c_common_add(n: int);
extern fn c_common_get() -> int;
fn main() -> int {
    c_common_add(5);
    c_common += 1;
    c_common_add(2);
    print(c_common, c_common_get());
    return 0;
}
"""
    exe = build_ok(tmp_path, toy, a, b, names=("c_common", "c_common_pair", "c_common_add",
                                               "c_common_get"))
    run_ok(exe, "8 820\n")
    types = nm_types(exe)
    assert types["c_common"] == "B" and types["c_common_pair"] == "B", types
    sizes = run([require("nm"), "-S", str(exe)]).stdout
    assert any(line.split()[1:] == ["0000000000000020", "B", "c_common_pair"]
               for line in sizes.splitlines()), sizes


WEAK_TOY = """
extern fn c_call_hook() -> int;
fn main() -> int {
    print(c_call_hook());
    return 0;
}
"""


@pytest.mark.parametrize("order", ["weak-first", "strong-first"])
def test_weak_definition_beaten_by_a_strong_one(tmp_path: Path, cc, order: str):
    """A weak function and variable in one object, strong ones in another, in either order
    on the command line: the strong ones are linked, and the weak ones' code still calls
    through the name."""
    weak, strong = cc("weak.c", "-O2"), cc("strong.c", "-O2")
    inputs = [weak, strong] if order == "weak-first" else [strong, weak]
    exe = build_ok(tmp_path, WEAK_TOY, *inputs, names=("c_hook", "c_level", "c_call_hook"))
    run_ok(exe, "22\n")
    types = nm_types(exe)
    assert (types["c_hook"], types["c_level"]) == ("T", "D"), types


def test_weak_definition_alone_is_linked(tmp_path: Path, cc):
    exe = build_ok(tmp_path, WEAK_TOY, cc("weak.c", "-O2"), names=("c_hook", "c_level"))
    run_ok(exe, "11\n")
    types = nm_types(exe)
    assert (types["c_hook"], types["c_level"]) == ("W", "V"), types


def test_weak_definition_beaten_by_a_toy_export(tmp_path: Path, cc):
    """Toy's strong exports beat C's weak definitions: C calls Toy's function and reads
    Toy's variable."""
    toy = WEAK_TOY + """
export("c_hook") fn hook() -> int { return 3; }
export("c_level") var level: int = 4;
"""
    exe = build_ok(tmp_path, toy, cc("weak.c", "-O2"), names=("c_hook", "c_level"))
    run_ok(exe, "34\n")
    types = nm_types(exe)
    assert (types["c_hook"], types["c_level"]) == ("T", "D"), types


def test_weak_toy_export_beaten_by_strong_c(tmp_path: Path, cc):
    toy = WEAK_TOY + 'export("c_hook", weak) fn hook() -> int { return 3; }\n'
    exe = build_ok(tmp_path, toy, cc("weak.c", "-O2"), cc("strong.c", "-O2"),
                   names=("c_hook",))
    run_ok(exe, "22\n")


# ---- constructors and destructors ------------------------------------------------------------

NOTE_TOY = """
export("toy_note") fn note(x: int) { print("note", x); }
"""
CTOR_NOTES = "note 1\nnote 2\nnote 3\n"
DTOR_NOTES = "note -3\nnote -2\nnote -1\n"


def test_constructors_and_destructors_at_return_from_main(tmp_path: Path, cc):
    """Constructors by priority (101, 200, then none) before main; destructors in the
    opposite order after main returns; main's status stays."""
    toy = NOTE_TOY + 'fn main() -> int {\n    print("main");\n    return 7;\n}\n'
    exe = build_ok(tmp_path, toy, cc("ctors.c", "-O2"), names=("toy_note",))
    run_ok(exe, CTOR_NOTES + "main\n" + DTOR_NOTES, 7)


def test_destructors_at_exit(tmp_path: Path, cc):
    """`exit(n)` deep in Toy's calls runs C's destructors too, then exits with n."""
    toy = NOTE_TOY + """
fn leave(n: int) -> int {
    if n > 0 { exit(n); }
    return 0;
}
fn main() -> int {
    print("main");
    leave(4);
    print("not reached");
    return 0;
}
"""
    exe = build_ok(tmp_path, toy, cc("ctors.c", "-O0"), names=("toy_note",))
    run_ok(exe, CTOR_NOTES + "main\n" + DTOR_NOTES, 4)


# ---- thread-locals ---------------------------------------------------------------------------

# Each spawned thread steps C's thread-locals (c_tls = 5, c_tls_zero, c_tls_static = 1000)
# and Toy's own twice; the main thread steps them once, while the threads run. LANGUAGE.md:
# "Every thread has its own copy of each threadlocal var, starting from the variable's
# initializer" -- C's alike. A thread's result packs what it saw.
TLS_TOY = """
extern fn c_tls_step(n: int) -> int;
extern fn c_tls_static_value() -> int;
extern fn c_tls_peek() -> int;
threadlocal var mine: int = 5;
fn step(n: int) -> int {
    mine += n;
    return mine;
}
fn worker(n: int) -> int {
    c_tls_step(n);
    let seen = c_tls_step(n);
    step(n);
    step(n);
    sleep_ms(2);  // (the threads overlap: their copies exist at once)
    return seen * 1000000000 + c_tls_static_value() * 1000000 + c_tls_peek() * 1000 + mine;
}
fn main() -> int {
    let a = spawn(worker, 10);
    let b = spawn(worker, 20);
    let c = spawn(worker, 30);
    let here = c_tls_step(1);
    step(1);
    print(join(a));
    print(join(b));
    print(join(c));
    print(here, c_tls_static_value(), c_tls_peek(), mine);
    return 0;
}
"""


def tls_expected() -> str:
    lines = []
    for n in (10, 20, 30):
        c_tls = 5 + 2 * n
        lines.append(str((c_tls * 100 + 2) * 1000000000 + 1002 * 1000000 + c_tls * 1000 +
                         (5 + 2 * n)))
    lines.append("601 1001 6 6")
    return "\n".join(lines) + "\n"


TLS_MODELS = {
    # local exec (an executable's own thread-locals) and initial exec (tls_use.c's extern)
    "default": ((), {"R_X86_64_TPOFF32", "R_X86_64_GOTTPOFF"}),
    # general dynamic (globals) and local dynamic (the static), relaxed to local exec
    "fPIC": (("-fPIC",), {"R_X86_64_TLSGD", "R_X86_64_TLSLD", "R_X86_64_DTPOFF32"}),
    "initial-exec": (("-fPIC", "-ftls-model=initial-exec"), {"R_X86_64_GOTTPOFF"}),
    "gnu2": (("-fPIC", "-mtls-dialect=gnu2"),
             {"R_X86_64_GOTPC32_TLSDESC", "R_X86_64_TLSDESC_CALL"}),
}


@pytest.mark.parametrize("model", TLS_MODELS)
def test_c_thread_locals_in_toy_threads(tmp_path: Path, cc, model: str):
    flags, relocs = TLS_MODELS[model]
    objects = [cc("tls.c", "-O2", *flags), cc("tls_use.c", "-O2", *flags)]
    seen = relocation_types(objects[0]) | relocation_types(objects[1])
    assert relocs <= seen, f"{model}: no {sorted(relocs - seen)} in {sorted(seen)}"
    exe = build_ok(tmp_path, TLS_TOY, *objects, names=("c_tls", "c_tls_zero", "c_tls_step",
                                                        "c_tls_peek"))
    run_ok(exe, tls_expected())
    assert nm_types(exe)["c_tls"] in ("D", "d"), "c_tls is not in .tdata"


# ---- archives ----------------------------------------------------------------------------------

# vec_scale.o comes before vec_add.o, which needs it: a second pass over the archive
MEMBERS = ("vec_scale", "vec_add", "vec_unused", "vec_member_with_a_long_name")
ARCHIVE_TOY = """
extern fn vec_add_scaled(a: int, b: int) -> int;
extern fn vec_long_named() -> int;
fn main() -> int {
    print(vec_add_scaled(4, 2), vec_long_named());
    return 0;
}
"""


@pytest.fixture(scope="module")
def archives(tmp_path_factory, cc) -> Path:
    """libvec.a (`ar rcs`, with a symbol index) and libvec_noindex.a (`ar rcS`, without), of
    the members in tests/c/archive, named as in MEMBERS."""
    root = tmp_path_factory.mktemp("archives")
    for name in MEMBERS:
        shutil.copy(cc(f"archive/{name}.c", "-O2"), root / f"{name}.o")
    ar = require("ar")
    for lib, flags in (("libvec.a", "rcs"), ("libvec_noindex.a", "rcS")):
        r = run([ar, flags, lib, *(f"{m}.o" for m in MEMBERS)], cwd=root)
        assert r.status == 0, r.stderr
    return root


def has_index(path: Path) -> bool:
    return path.read_bytes()[8:24].rstrip() in (b"/", b"/SYM64/")


def test_archive_member_nothing_needs_is_left_out(tmp_path: Path, archives: Path):
    """vec_unused.o refers to a function nothing defines: loading it would fail the link."""
    exe = build_ok(tmp_path, ARCHIVE_TOY, archives / "libvec.a", names=("vec_add_scaled",))
    run_ok(exe, "42 77\n")
    assert "vec_unused" not in nm_types(exe)


def test_archive_members_load_transitively(tmp_path: Path, archives: Path):
    """vec_add.o, loaded for Toy, needs vec_scale.o, which comes before it."""
    exe = build_ok(tmp_path, ARCHIVE_TOY, archives / "libvec.a",
                   names=("vec_add_scaled", "vec_scale"))
    run_ok(exe, "42 77\n")


def test_archive_without_index(tmp_path: Path, archives: Path):
    lib = archives / "libvec_noindex.a"
    assert not has_index(lib) and has_index(archives / "libvec.a")
    exe = build_ok(tmp_path, ARCHIVE_TOY, lib, names=("vec_add_scaled", "vec_scale",
                                                     "vec_long_named"))
    run_ok(exe, "42 77\n")
    assert "vec_unused" not in nm_types(exe)


def test_archive_long_member_names(tmp_path: Path, archives: Path):
    """A member named in the archive's "//" table (more than 15 characters) is found and
    linked."""
    listed = run([require("ar"), "t", str(archives / "libvec.a")]).stdout.split()
    assert "vec_member_with_a_long_name.o" in listed
    assert b"vec_member_with_a_long_name.o/\n" in (archives / "libvec.a").read_bytes()
    exe = build_ok(tmp_path, ARCHIVE_TOY, archives / "libvec.a", names=("vec_long_named",))
    run_ok(exe, "42 77\n")


def test_library_found_by_L_and_l(tmp_path: Path, archives: Path):
    r = toyc_build(tmp_path, ARCHIVE_TOY, "-L", archives, "-lvec")
    assert (r.status, r.stderr) == (0, ""), r.stderr
    check_elf(tmp_path / "prog", ("main", "vec_add_scaled"))
    run_ok(tmp_path / "prog", "42 77\n")
    # spelled as one argument each, as gcc allows too
    r = toyc_build(tmp_path, ARCHIVE_TOY, f"-L{archives}", "-lvec_noindex", out="prog2")
    assert (r.status, r.stderr) == (0, ""), r.stderr
    check_elf(tmp_path / "prog2", ("main", "vec_add_scaled"))
    run_ok(tmp_path / "prog2", "42 77\n")


def test_library_given_by_path(tmp_path: Path, archives: Path):
    shutil.copy(archives / "libvec.a", tmp_path / "libx.a")
    r = toyc_build(tmp_path, ARCHIVE_TOY, "libx.a")
    assert (r.status, r.stderr) == (0, ""), r.stderr
    check_elf(tmp_path / "prog", ("main", "vec_add_scaled", "vec_long_named"))
    run_ok(tmp_path / "prog", "42 77\n")


def test_toyc_run_links_c(tmp_path: Path, cc):
    (tmp_path / "prog.toy").write_text(program("callback"))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    p = subprocess.run([*TOYC, "run", "prog.toy", str(cc("callback.c", "-O2")), "--", "x"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, FEATURES["callback"].expected, "")
    (exe,) = (tmp_path / "cache").glob("toyc/run/*/prog")
    check_elf(exe, ("main", "c_add", "toy_twice"))


# ---- errors ----------------------------------------------------------------------------------

# builds without any input: the previous output that a failed build must leave alone
PREVIOUS_TOY = """
export("toy_twice") fn twice(x: int) -> int { return 2 * x; }
export("toy_fold") fn fold(acc: int, x: int) -> int { return acc + x; }
fn main() -> int {
    print("previous");
    return 0;
}
"""


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> bytes:
    """The executable of PREVIOUS_TOY, built once."""
    tmp = tmp_path_factory.mktemp("previous")
    r = toyc_build(tmp, PREVIOUS_TOY)
    assert r.status == 0, r.stderr
    return (tmp / "prog").read_bytes()


def fails(tmp: Path, previous: bytes, args, toy: str = PREVIOUS_TOY, options=()) -> str:
    """Build `toy` with `args` over a previous good output, and into a new path: both fail
    with status 1, no traceback, the previous output unchanged and no new file. The
    message (stderr)."""
    (tmp / "prog").write_bytes(previous)
    (tmp / "prog").chmod(0o755)
    (tmp / "prog.toy").write_text(toy)
    files = sorted(p.name for p in tmp.iterdir())
    r = toyc_build(tmp, toy, *args, options=options)
    fresh = toyc_build(tmp, toy, *args, out="fresh", options=options)
    for x in (r, fresh):
        assert x.status == 1, x.stderr
        assert "Traceback" not in x.stderr and "internal error" not in x.stderr, x.stderr
        assert x.stdout == ""
    assert (tmp / "prog").read_bytes() == previous
    assert not (tmp / "fresh").exists()
    assert sorted(p.name for p in tmp.iterdir()) == files, "a failed build left files"
    return r.stderr


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("toyc: error: "), stderr
    return lines[0]


def test_error_not_elf(tmp_path: Path, previous: bytes):
    (tmp_path / "notes.o").write_text("these are not an object\n")
    line = one_line(fails(tmp_path, previous, ["notes.o"]))
    assert "notes.o" in line and "not an ELF" in line, line


@pytest.mark.parametrize("keep", [40, 0.5])
def test_error_truncated_object(tmp_path: Path, cc, previous: bytes, keep: float):
    """Cut inside the ELF header, and halfway (sections and their headers past the end)."""
    data = cc("callback.c", "-O2").read_bytes()
    (tmp_path / "cut.o").write_bytes(data[: int(keep if keep >= 1 else len(data) * keep)])
    line = one_line(fails(tmp_path, previous, ["cut.o"]))
    assert "cut.o" in line and "truncated" in line, line


def test_error_object_for_another_machine(tmp_path: Path, cc, previous: bytes):
    data = bytearray(cc("callback.c", "-O2").read_bytes())
    struct.pack_into("<H", data, 18, 183)  # e_machine: EM_AARCH64
    (tmp_path / "arm.o").write_bytes(data)
    line = one_line(fails(tmp_path, previous, ["arm.o"]))
    assert "arm.o" in line and "another machine" in line and "183" in line, line


def _patch_first_relocation(obj: Path, section: str, rtype: int) -> tuple[bytes, int]:
    """A copy of `obj` whose first relocation in `section` has type `rtype`; and that
    relocation's offset."""
    from elftools.elf.elffile import ELFFile

    data = bytearray(obj.read_bytes())
    with open(obj, "rb") as f:
        rela = ELFFile(f).get_section_by_name(section)
        at = rela["sh_offset"]
    offset, info = struct.unpack_from("<QQ", data, at)
    struct.pack_into("<Q", data, at + 8, (info & ~0xFFFFFFFF) | rtype)
    return bytes(data), offset


def test_error_unsupported_relocation(tmp_path: Path, cc, previous: bytes):
    """A code relocation made R_X86_64_DTPMOD64 (16): the message names the object, the
    section and the type."""
    data, offset = _patch_first_relocation(cc("callback.c", "-O2"), ".rela.text", 16)
    (tmp_path / "odd.o").write_bytes(data)
    line = one_line(fails(tmp_path, previous, ["odd.o"]))
    assert "odd.o (.text)" in line and "R_X86_64_DTPMOD64" in line, line
    assert f"{offset:#x}" in line, line


def test_error_missing_library(tmp_path: Path, previous: bytes):
    line = one_line(fails(tmp_path, previous, ["-L", ".", "-lnosuch_toyc_test"]))
    assert "-lnosuch_toyc_test" in line and "libnosuch_toyc_test.a" in line, line


def test_error_undefined_symbol_in_c(tmp_path: Path, cc, previous: bytes):
    toy = PREVIOUS_TOY + "extern fn c_calls_nowhere(x: int) -> int;\n" \
        "fn use() -> int { return c_calls_nowhere(1); }\n"
    obj = cc("undefined.c", "-O2")
    shutil.copy(obj, tmp_path / "undefined.o")
    line = one_line(fails(tmp_path, previous, ["undefined.o"], toy))
    assert "undefined symbol: c_nowhere" in line and "undefined.o (.text)" in line, line


def test_error_undefined_toy_extern(tmp_path: Path, cc, previous: bytes):
    """An extern nothing defines: a diagnostic at its use in the Toy source."""
    toy = PREVIOUS_TOY + "extern fn nowhere(x: int) -> int;\n" \
        "fn use() -> int {\n    return nowhere(1);\n}\n"
    err = fails(tmp_path, previous, [cc("callback.c", "-O2")], toy)
    line = toy.splitlines().index("    return nowhere(1);") + 1
    assert err.splitlines()[0] == f"prog.toy:{line}:12: error: undefined symbol: nowhere", err


@pytest.mark.parametrize("first", ["c", "toy"])
def test_error_two_strong_definitions(tmp_path: Path, cc, previous: bytes, first: str):
    """Two objects defining c_dup, or Toy exporting it and an object defining it: the message
    names both places."""
    shutil.copy(cc("dup_a.c", "-O2"), tmp_path / "dup_a.o")
    shutil.copy(cc("dup_b.c", "-O2"), tmp_path / "dup_b.o")
    if first == "c":
        line = one_line(fails(tmp_path, previous, ["dup_a.o", "dup_b.o"]))
        assert "multiple definition of c_dup" in line, line
        assert "dup_a.o (.text)" in line and "dup_b.o (.text)" in line, line
    else:
        toy = PREVIOUS_TOY + 'export("c_dup") fn dup() -> int { return 3; }\n'
        line = one_line(fails(tmp_path, previous, ["dup_b.o"], toy))
        where = len(PREVIOUS_TOY.splitlines()) + 1
        assert "multiple definition of c_dup" in line, line
        assert f"prog.toy:{where}:1" in line and "dup_b.o (.text)" in line, line


@pytest.mark.parametrize("option", ["-c", "--lib"])
def test_error_object_or_library_with_inputs(tmp_path: Path, cc, previous: bytes,
                                             option: str):
    """An object or archive is linked later, by another linker: inputs make no sense."""
    obj = cc("callback.c", "-O2")
    line = one_line(fails(tmp_path, previous, [obj, "-L", "."], options=(option,)))
    assert option in line and "linked later" in line, line


# ---- AArch64 -----------------------------------------------------------------------------------

AARCH64_TOY = """
extern fn c_is_big(x: int) -> bool;
extern fn c_call_pick(garbage: int) -> int;
export("toy_pick") fn pick(b: bool) -> int {
    if b { return 10; }
    return 20;
}
export fn check() -> int {
    print(c_is_big(3), c_is_big(6), c_call_pick(0x100), c_call_pick(0x7701));
    return 0;
}
fn main() { }
"""
# c_is_big sets the low byte of x0 and leaves 0x7700 above it; c_call_pick calls toy_pick
# with x0 as Toy gave it (bits above the low byte set).
AARCH64_ASM = """\
    .global _start, c_is_big, c_call_pick
_start:
    bl check
    mov x8, #94
    svc #0
c_is_big:
    mov x9, #0x7700
    cmp x0, #5
    cset x10, gt
    orr x0, x9, x10
    ret
c_call_pick:
    b toy_pick
"""


def test_aarch64_reads_c_bools_by_their_low_byte(tmp_path: Path):
    exe_runner = runner("aarch64")
    r = toyc_build(tmp_path, AARCH64_TOY, out="prog.o", options=("-c", "--arch", "aarch64"))
    assert r.status == 0, r.stderr
    (tmp_path / "c.s").write_text(AARCH64_ASM)
    assert run([binutil("as", "aarch64"), "c.s", "-o", "c.o"], cwd=tmp_path).status == 0
    ld = run([binutil("ld", "aarch64"), "c.o", "prog.o", "-o", "prog"], cwd=tmp_path)
    assert ld.status == 0, ld.stderr
    r = run([*exe_runner, str(tmp_path / "prog")])
    assert (r.status, r.stdout, r.stderr) == (0, "false true 20 10\n", "")


def test_error_lto_object(tmp_path: Path, cc, previous: bytes):
    """A gcc -flto object holds GIMPLE, not machine code: said so, not 'undefined symbol'."""
    obj = cc("callback.c", "-O2", "-flto")
    shutil.copy(obj, tmp_path / "lto.o")
    line = one_line(fails(tmp_path, previous, ["lto.o"]))
    assert "lto.o" in line and "LTO object" in line and "-ffat-lto-objects" in line, line


def test_error_c_library_call_has_a_note(tmp_path: Path, previous: bytes):
    """C code calling the C library, which is not linked: the undefined symbol, and a note
    saying why (gcc makes such calls of plain loops too)."""
    (tmp_path / "copy.c").write_text(
        "void *memcpy(void *, const void *, unsigned long);\n"
        "long c_copy(long *dst, const long *src, long n) { memcpy(dst, src, n * 8); "
        "return n; }\n")
    r = run([require("gcc"), "-O2", "-c", "copy.c"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    toy = PREVIOUS_TOY + "extern fn c_copy(d: int, s: int, n: int) -> int;\n" \
        "fn use() -> int { return c_copy(0, 0, 0); }\n"
    err = fails(tmp_path, previous, ["copy.o"], toy)
    lines = err.splitlines()
    assert lines[0] == "toyc: error: undefined symbol: memcpy (referenced by copy.o (.text))", err
    assert lines[1].startswith("note: no C library is linked"), err


def test_object_without_code(tmp_path: Path, cc):
    """An object whose .text is empty (data only): the empty output section is left out, as
    GNU ld leaves it (eu-elflint: an allocated section is in a segment)."""
    exe = build_ok(tmp_path, "extern var c_table: int;\n"
                   "fn main() -> int { print(c_table); return 0; }\n",
                   cc("data_only.c", "-O2"), names={"c_table", "c_ro", "c_zeros"})
    run_ok(exe, "1\n")
    r = run([binutil("readelf", "x86_64"), "-SW", str(exe)])
    assert " .text " not in r.stdout and " .rodata " in r.stdout, r.stdout


def test_error_ifunc(tmp_path: Path, previous: bytes):
    """An IFUNC's symbol is its resolver: linking it as a function would call the resolver."""
    (tmp_path / "ifn.c").write_text(
        "static long impl(long x) { return x + 1; }\n"
        "static void *resolve_f(void) { return impl; }\n"
        "long c_f(long x) __attribute__((ifunc(\"resolve_f\")));\n")
    r = run([require("gcc"), "-O2", "-c", "ifn.c"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    toy = PREVIOUS_TOY + "extern fn c_f(x: int) -> int;\nfn use() -> int { return c_f(1); }\n"
    line = one_line(fails(tmp_path, previous, ["ifn.o"], toy))
    assert "ifn.o (.text)" in line and "c_f" in line and "IFUNC" in line, line
