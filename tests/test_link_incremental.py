"""Incremental updates and hot swap with C linked in: every update must still equal a clean build.

Three parts, all with C objects and a static archive compiled from `tests/c/inc_*.c` at test time
with gcc:

1. `test_scenario_with_c_linked`: one program taken through steps (in two halves, which run
   side by side), each built with
   `toyc build -v src.toy INPUTS -o prog` (one process per step, through the state file) and
   checked by `test_incremental`'s runner against a clean build of the same source and inputs
   (stdout, status, `.symtab` names, types, bindings and sizes, sections, `eu-elflint --gnu-ld`,
   `readelf -a`; a failing step leaves `prog` byte for byte as it was), and by its `-v` line
   and stderr: an update where nothing on the C side changes, a full build with its reason
   where it does. The steps move what C refers to (a function C calls, one C holds a pointer
   to in its `.data`, a var and a function that `-fPIC` code reaches through the GOT, relaxed
   or not) and check with `objdump -d` and the file's bytes that C's call sites, pointers and
   GOT slots hold the new addresses (not the trampoline's); they add and remove declarations
   around them, add externs (of a name C defines: an update; of a name nothing defines: a
   diagnostic; of a name only an archive member not yet loaded defines: a full build that loads
   it), add, rename and remove Toy exports C refers to, let a Toy export beat a C weak
   definition, touch and rebuild a C object and change the list of inputs.
   `test_thread_local_export_c_uses` does the same for a Toy `export threadlocal var` that C
   uses: it moves, Toy thread-locals are added before it, and it stops being a thread-local
   (a full build, which fails as a clean build does).
2. `test_random_edits_with_c_linked`: random programs and edit sequences from
   `test_incremental_random`'s generator, with a C object linked that calls Toy's exports and
   that Toy calls, thread-locals on both sides (C's own, and a Toy `export threadlocal var` that
   C reads and writes), and edits of the Toy side C depends on (its bodies grow and move, its
   var changes section, thread-locals come and go so the TLS layout changes under C's code).
   Every step is compared with a clean build. A few sequences by default;
   TOYC_LINK_FUZZ_EXAMPLES=N (or `-m slow`) runs N new random ones.
3. `test_hot_swap_*`: `toyc watch src.toy inc_swap.o --run` with a program that loops calling
   C, which calls back a Toy function printing a version: body edits are swapped; a callback
   that grows and moves is reached through C's re-patched call in the running program (read
   from its memory), not through the trampoline; a signature change of a Toy function that C
   calls, while a thread is inside that C code, is held with a line naming the C section, or
   swapped once the thread has left it; every line the watch prints is checked true.
"""

from __future__ import annotations

import copy
import io
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import test_hot_swap as hs
import test_incremental as inc
import test_incremental_random as gen
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import ROOT, require, run
from toyc.inputs import LinkArgs
from toyc.session import Session
from watching import Watcher, line_matching

C_DIR = ROOT / "tests" / "c"
SOURCE = inc.SOURCE

# `test_incremental`'s fixture: the toyc processes' environment (a bytecode cache of their own)
env = inc.env


# ---- C objects ----------------------------------------------------------------------------------


def cc(work: Path, source: str, out: str, *flags: str) -> Path:
    """Compile tests/c/SOURCE into work/OUT with gcc. Without debug info: the runner compares
    the debug info (`conftest.debug_description`) of the first compile unit, which would be
    C's."""
    r = run([require("gcc"), "-c", *flags, str(C_DIR / source), "-o", str(work / out)])
    assert r.status == 0, r.stderr
    return work / out


def archive(work: Path, name: str, members: list[Path]) -> Path:
    path = work / name
    path.unlink(missing_ok=True)
    r = run([require("ar"), "rcs", str(path), *map(str, members)])
    assert r.status == 0, r.stderr
    return path


# ---- reading an executable ----------------------------------------------------------------------


def symbol_values(exe: Path) -> dict[str, int]:
    """Every named symbol's value (the last one of a name; the names used here are unique)."""
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()
                if s.name}


def read_u64(exe: Path, address: int) -> int:
    elf = ELFFile(io.BytesIO(exe.read_bytes()))
    return int.from_bytes(inc._read(elf, address, 8), "little")


def got_slots(exe: Path) -> tuple[int, list[int]]:
    """The GOT's address and what its slots hold."""
    with open(exe, "rb") as f:
        got = ELFFile(f).get_section_by_name(".got")
        data = got.data()
        return got["sh_addr"], [int.from_bytes(data[i : i + 8], "little")
                                for i in range(0, len(data), 8)]


def disassembly(exe: Path, function: str) -> list[str]:
    r = run([require("objdump"), "-d", "--no-show-raw-insn", f"--disassemble={function}",
             str(exe)])
    assert r.status == 0, r.stderr
    return [line for line in r.stdout.splitlines() if re.match(r"\s+[0-9a-f]+:\t", line)]


def calls(exe: Path, function: str) -> list[int]:
    """The targets of `function`'s direct calls and jumps."""
    return [int(m.group(1), 16) for line in disassembly(exe, function)
            if (m := re.search(r"\t(?:call|jmp)\s+([0-9a-f]+) <", line))]


def references(exe: Path, function: str) -> set[int]:
    """Every address `function`'s code refers to: direct call targets and the addresses
    objdump resolves for RIP-relative operands (`# ADDR <name>`)."""
    out = set(calls(exe, function))
    for line in disassembly(exe, function):
        m = re.search(r"# ([0-9a-f]+) <", line)
        if m:
            out.add(int(m.group(1), 16))
    return out


# ---- part 1: scenario ---------------------------------------------------------------------------

INPUTS = ("inc_calls.o", "inc_pic.o", "inc_got.o", "-L.", "-linc")
CB_GROWN = "\n    ".join(["let a = 0;", *["a = a + x;"] * 40, "return a / 40 * {k};"])
TF_GROWN = "\n    ".join(["let b = x;", *["b = b + 1;"] * 40, "return b + 960;"])


@dataclass
class Model:
    """The program of one step, and what it prints."""

    cb: str = "return x * 3;"  # body of toy_cb
    cb_k: int = 3  # cb(x) = cb_k * x
    tf: str = "return x + 1000;"  # body of toy_fn, which is x + 1000 whatever its text
    counter: int = 5
    tv: int = 11
    bonus: int = 1  # what inc_calls.o's c_call_cb adds (-DBONUS)
    weak: int = 1  # what c_weak returns (C's weak one: 1)
    opt: str = ""  # the export name of `opt` ("" if none)
    externs: str = ""
    before: str = ""  # declarations around the exported ones
    between: str = ""
    after: str = ""
    main: list[tuple[str, str]] = field(default_factory=list)  # statement, its output line

    def text(self) -> str:
        weak = f'export("c_weak") fn w() -> int {{ return {self.weak}; }}\n' \
            if self.weak != 1 else ""
        opt = f'export("{self.opt}") ' if self.opt else ""
        main = "".join(f"    {s}\n" for s, _ in self.main)
        return f"""\
extern fn c_call_cb(x: int) -> int;
extern fn c_call_hook(x: int) -> int;
extern fn c_read_counter() -> int;
extern fn c_use_weak() -> int;
extern fn c_opt(x: int) -> int;
extern fn c_clamp(x: int, lo: int, hi: int) -> int;
extern fn pic_read() -> int;
extern fn pic_call(x: int) -> int;
extern fn pic_via(x: int) -> int;
extern fn got_read() -> int;
extern fn got_call(x: int) -> int;
extern fn got_via(x: int) -> int;
{self.externs}
{self.before}
export("toy_cb") fn cb(x: int) -> int {{
    {self.cb}
}}
{self.between}
export("toy_counter") var counter: int = {self.counter};
export("toy_var") var tv: int = {self.tv};

export("toy_fn") fn tf(x: int) -> int {{
    {self.tf}
}}

{opt}fn opt(x: int) -> int {{
    return x + 500;
}}
{weak}{self.after}
fn main() {{
    print("cb", c_call_cb(2), c_call_hook(3), c_clamp(99, 0, 10));
    print("data", c_read_counter(), c_use_weak(), c_opt(4), opt(0));
    print("pic", pic_read(), pic_call(5), pic_via(6));
    print("got", got_read(), got_call(7), got_via(8));
{main}}}
"""

    def stdout(self) -> str:
        k, tv = self.cb_k, self.tv
        c_tls = 5 + 1  # c_call_cb counts its calls in C's thread-local before c_call_hook
        opt = 4 + 500 if self.opt == "toy_opt" else -1
        lines = [f"cb {2 * k + self.bonus} {3 * k * 2 + c_tls} 10",
                 f"data {self.counter} {self.weak * 10} {opt} 500",
                 f"pic {tv} {1005 + tv} {1006 * 2}",
                 f"got {tv} {1007 + tv} {1008 * 2}",
                 *(out for _, out in self.main)]
        return "".join(line + "\n" for line in lines)


NL = "\n"


def where(text: str, needle: str, nth: int = 0) -> str:
    """LINE:COL of the `nth` occurrence of `needle` in `text`, as diagnostics give it."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return f"{line}:{at - text.rfind(NL, 0, at)}"


@dataclass
class CStep:
    """One step: `prepare(work)` runs first (rebuild a C object, say), then the source is
    saved and built with `inputs`; `check(work, before, after)` gets the symbol values of
    `prog` before and after the step."""

    step: inc.Step
    inputs: tuple[str, ...] = INPUTS
    fails: bool = False
    prepare: object = None
    check: object = None


def check_cb_moved(work: Path, before: dict[str, int], after: dict[str, int],
                   callers: tuple[str, ...] = ("c_call_cb",)) -> None:
    """toy_cb moved: C's calls and C's pointer hold its new address, not the trampoline's,
    which jumps to it."""
    prog = work / "prog"
    old, new = before["toy_cb"], after["toy_cb"]
    assert old != new, "toy_cb did not move"
    for caller in callers:
        assert calls(prog, caller) == [new], \
            f"{caller} calls {[hex(a) for a in calls(prog, caller)]}, toy_cb is at {new:#x}"
    assert read_u64(prog, after["c_hook"]) == new, "C's pointer to toy_cb was not re-patched"
    r = run([require("objdump"), "-d", "--no-show-raw-insn", f"--start-address={old}",
             f"--stop-address={old + 5}", str(prog)])
    assert re.search(rf"\tjmp\s+{new:x} <", r.stdout), f"no trampoline at {old:#x}:\n{r.stdout}"


def check_got_moved(work: Path, before: dict[str, int], after: dict[str, int]) -> None:
    """toy_fn and toy_var moved: the GOT slots hold their new addresses; the relaxed `-fPIC`
    code refers to the new addresses directly."""
    prog = work / "prog"
    for name in ("toy_fn", "toy_var"):
        assert before[name] != after[name], f"{name} did not move"
    got, slots = got_slots(prog)
    # (gcc's default PIE code reads inc_calls.o's weak toy_opt from the GOT too: a 0 here)
    assert {after["toy_fn"], after["toy_var"]} <= set(slots) and \
        not {before["toy_fn"], before["toy_var"]} & set(slots), \
        f"GOT {[hex(s) for s in slots]}; toy_fn {after['toy_fn']:#x}, " \
        f"toy_var {after['toy_var']:#x}"
    for fn in ("got_read", "got_call", "got_via"):  # (which reach them only through it)
        refs = references(prog, fn)
        assert refs and all(got <= a < got + 8 * len(slots) for a in refs), \
            f"{fn} refers to {[hex(a) for a in refs]}, not only to the GOT at {got:#x}"
    assert calls(prog, "pic_call") == [after["toy_fn"]]
    assert after["toy_var"] in references(prog, "pic_read")
    assert after["toy_fn"] in references(prog, "pic_via")
    for fn in ("pic_read", "pic_call", "pic_via"):
        stale = references(prog, fn) & {before["toy_fn"], before["toy_var"]}
        assert not stale, f"{fn} still refers to {[hex(a) for a in stale]}"


def check_counter_moved(work: Path, before: dict[str, int], after: dict[str, int]) -> None:
    assert before["toy_counter"] != after["toy_counter"], "toy_counter did not move"
    refs = references(work / "prog", "c_read_counter")
    assert after["toy_counter"] in refs and before["toy_counter"] not in refs, refs


# The scenario runs in two halves, side by side (pytest-xdist): the second starts with a full
# build of the program the first ends with.
HALVES = ("moves", "links")


def scenario(half: str) -> list[CStep]:
    steps: list[CStep] = []
    m = Model()
    first = "initial build"

    def add(name: str, *, full: bool | None = None, summary: tuple[str, ...] = (),
            messages: tuple[str, ...] = (), errors: tuple[str, ...] = (), **kw) -> None:
        s = inc.Step(name, len(steps) + 1, m.text(), m.stdout(), summary=list(summary),
                     full=full, messages=list(messages), errors=list(errors))
        steps.append(CStep(s, **kw))

    add(first, messages=("toyc: full build: no output file yet",))
    m.cb, m.cb_k = "return x * 5;", 5
    add("toy_cb's body changes in place", summary=("updated cb (in place)",))
    m.cb, m.cb_k = CB_GROWN.format(k=4), 4
    add("toy_cb grows: it moves, C's call and pointer follow",
        summary=("updated cb (moved, trampoline)",), check=check_cb_moved)
    m.cb, m.cb_k = "return x * 6;", 6
    add("toy_cb shrinks", summary=("updated cb (shrunk in place)",))
    m.tv, m.tf = 0, TF_GROWN
    add("toy_var becomes zero (.bss.zig) and toy_fn grows: both move under the GOT",
        summary=("tv (moved)", "tf (moved, trampoline)"), check=check_got_moved)
    m.counter = 0
    add("toy_counter, which C reads, moves to .bss.zig", summary=("counter (moved)",),
        check=check_counter_moved)
    m.before = "fn pad_a(x: int) -> int {\n    return x + 1;\n}\nvar pad_b: [int; 9];\n"
    m.between = 'const PAD_C: str = "between";\n'
    m.after = "var pad_d: int = 77;\n"
    m.main = [("print(pad_a(1), PAD_C, pad_d, pad_b[8]);", "2 between 77 0")]
    add("declarations added around the exported ones", summary=("added",))
    m.before, m.between = "", "fn pad_e() -> int {\n    return 5;\n}\n"
    m.main = [("print(pad_e(), pad_d);", "5 77")]
    add("declarations removed and added around them", summary=("removed",))
    m.externs = "extern var c_calls: int;"
    m.main.append(("print(c_calls);", "1"))
    add("a new extern of a name C defines: an update", summary=("updated main",))

    good = m.text()
    bad = good.replace("print(c_calls);", "print(c_calls, c_missing());").replace(
        "extern var c_calls: int;", "extern var c_calls: int;\nextern fn c_missing() -> int;")
    s = inc.Step("a new extern that nothing defines: a diagnostic, prog unchanged",
                 len(steps) + 1, bad,
                 errors=[f"{where(bad, 'c_missing()', 1)}: undefined symbol: c_missing"])
    steps.append(CStep(s, fails=True))
    m.main.append(("print(pad_e() * 2);", "10"))
    add("the next good edit is an update", summary=("updated main",))
    m.externs += "\nextern fn c_late(x: int) -> int;"
    m.main.append(("print(c_late(2));", str(6 * 2 * 100)))
    add("an extern only an archive member not loaded yet defines: a full build loads it",
        full=True, messages=("toyc: full build: c_late is a new extern, not defined by the "
                             "objects linked in the last build",))
    m.cb, m.cb_k = CB_GROWN.format(k=7), 7
    m.main[-1] = ("print(c_late(2));", str(7 * 2 * 100))
    add("toy_cb moves again: the loaded member's call follows too",
        summary=("updated cb (moved, trampoline)",),
        check=lambda w, b, a: check_cb_moved(w, b, a, ("c_call_cb", "c_late")))
    if half == "moves":
        return steps
    del steps[:]
    add(first, messages=("toyc: full build: no output file yet",))
    m.opt = "toy_opt"
    add("a Toy export that C refers to (weakly) appears: a full build", full=True,
        messages=("toyc: full build: a Toy export that linked files define or use "
                  "changed: toy_opt",))
    m.opt = "toy_opt2"
    add("the export is renamed: a full build", full=True,
        messages=("changed: toy_opt",))
    m.opt = ""
    add("an export C does not refer to goes: an update", summary=("updated opt (exports)",))
    m.opt = "toy_opt"
    add("the export C refers to is back: a full build", full=True,
        messages=("changed: toy_opt",))
    m.opt = ""
    add("and goes: a full build", full=True, messages=("changed: toy_opt",))

    good = m.text()
    bad = good.replace('export("toy_cb") fn cb', "fn cb")
    s = inc.Step("the export C calls is removed: an error, prog unchanged", len(steps) + 1,
                 bad, messages=["toyc: error: undefined symbol: toy_cb (referenced by "
                                "inc_calls.o ("])
    steps.append(CStep(s, fails=True))
    m.weak = 7
    add("a Toy export beats C's weak definition", full=True,
        messages=("toyc: full build: a Toy export that linked files define or use "
                  "changed: c_weak",))

    def touch(work: Path) -> None:
        st = os.stat(work / "inc_calls.o")
        os.utime(work / "inc_calls.o", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    add("inc_calls.o is touched: a full build", full=True, prepare=touch,
        messages=("toyc: full build: inc_calls.o changed",))
    m.bonus = 2
    add("inc_calls.o is rebuilt with other code: a full build", full=True,
        prepare=lambda w: cc(w, "inc_calls.c", "inc_calls.o", "-O2", "-DBONUS=2"),
        messages=("toyc: full build: inc_calls.o changed",))
    extra = (*INPUTS[:3], "inc_extra.o", *INPUTS[3:])

    def spelled(args: tuple[str, ...]) -> str:  # as toyc lists them: as given
        return " ".join(args)

    add("another object joins the inputs: a full build", full=True, inputs=extra,
        messages=("toyc: full build: the linker inputs changed (were: "
                  f"{spelled(INPUTS)}; now: {spelled(extra)})",))
    m.cb, m.cb_k = "return x * 2;", 2
    m.main[-1] = ("print(c_late(2));", str(2 * 2 * 100))
    add("toy_cb shrinks: an update with the new inputs", inputs=extra,
        summary=("updated cb (shrunk in place)",))
    return steps


@pytest.fixture
def c_objects(tmp_path: Path) -> Path:
    """The scenario's inputs, in its directory: inc_calls.o (-O2), inc_pic.o (-fPIC -O0, GOT
    loads the linker relaxes), inc_got.o (the same code under other names, with GOT accesses
    that are not relaxed), libinc.a (c_clamp, needed at once; c_late, later) and
    inc_extra.o."""
    cc(tmp_path, "inc_calls.c", "inc_calls.o", "-O2")
    cc(tmp_path, "inc_pic.c", "inc_pic.o", "-fPIC", "-O0")
    cc(tmp_path, "inc_pic.c", "inc_got.o", "-fPIC", "-O0", "-fno-plt",
       "-Wa,-mrelax-relocations=no", "-DP=got")
    members = [cc(tmp_path, f"inc_lib_{m}.c", f"{m}.o", "-O2") for m in ("clamp", "late")]
    archive(tmp_path, "libinc.a", members)
    cc(tmp_path, "inc_extra.c", "inc_extra.o", "-O2")
    return tmp_path


def run_steps(work: Path, env: dict[str, str], steps: list[CStep]) -> None:
    good: inc.Step | None = None
    image: inc.Image | None = None
    values: dict[str, int] = {}
    for cs in steps:
        step = cs.step
        if cs.prepare is not None:
            cs.prepare(work)
        (work / SOURCE).write_text(step.text, encoding="utf-8")
        if cs.fails:
            assert good is not None
            inc.check_failing_step(work, env, step, good, "x86_64", cs.inputs)
            continue
        image = inc.check_good_step(work, env, step, image, "x86_64", cs.inputs)
        good = step
        now = symbol_values(work / "prog")
        if cs.check is not None:
            cs.check(work, values, now)
        values = now


@pytest.mark.parametrize("half", HALVES)
def test_scenario_with_c_linked(half: str, c_objects: Path, env: dict[str, str]):
    run_steps(c_objects, env, scenario(half))


TLS_PROGRAM = """\
extern fn c_apply(x: int) -> int;
extern fn c_tls_step(n: int) -> int;

export("toy_step") fn cx_step(n: int) -> int {{
    return n * 2;
}}

export("toy_counter") var cx_counter: int = 5;
{more}
export("toy_tl") {tls}var cx_tl: int = {tl};

fn main() {{
    print(c_apply(3), c_tls_step(2), cx_tl{use});
}}
"""


def test_thread_local_export_c_uses(tmp_path: Path, env: dict[str, str]):
    """C reads and writes a Toy `export threadlocal var` (initial exec, relaxed to local
    exec): its offset follows Toy thread-locals added before it and its move to .tbss; the
    export ceasing to be a thread-local is a full build, which fails as a clean build does."""
    cc(tmp_path, "inc_random.c", "inc_random.o", "-O2")
    more = "threadlocal var more: [int; 5] = [1, 2, 3, 4, 5];"

    def step(name: str, out: str = "", *, tls: str = "threadlocal ", tl: int = 3,
             extra: bool = False, **kw) -> CStep:
        text = TLS_PROGRAM.format(more=more if extra else "", tls=tls, tl=tl,
                                  use=", more[4]" if extra else "")
        return CStep(inc.Step(name, 0, text, out, **kw), inputs=("inc_random.o",),
                     fails=not out)

    # c_apply(3) = toy_step(3) * 3 + toy_step(4) + toy_counter; c_tls_step(2) = C's c_tl
    # (7 + 2) * 1000 + C's c_tl_zero (1) * 10 + toy_tl (+ 1)
    run_steps(tmp_path, env, [
        step("initial", "31 9014 4\n"),
        step("the export is no longer a thread-local: an error", tls="",
             messages=["toyc: error: inc_random.o (.text): relocation R_X86_64_GOTTPOFF "
                       "against toy_tl, which is not a thread-local"]),
        step("a Toy thread-local before it", "31 9014 4 5\n", extra=True,
             summary=["added more"]),
        step("it moves to .tbss", "31 9011 1 5\n", extra=True, tl=0,
             summary=["updated cx_tl (moved)"]),
    ])


# ---- part 2: random edits -----------------------------------------------------------------------

LINK_FUZZ_EXAMPLES = 3
LINK_FUZZ_STEPS = 8
SLOW_LINK_FUZZ_EXAMPLES = 100
SLOW_LINK_FUZZ_STEPS = 16
# How inc_random.c is compiled: non-PIC calls and initial exec TLS; -fPIC (GOT loads, general
# dynamic TLS); TLS descriptors at -O0
C_BUILDS = {"o2": ("-O2",), "pic": ("-O2", "-fPIC"),
            "desc": ("-O0", "-fPIC", "-mtls-dialect=gnu2")}


@dataclass
class CPart:
    """The Toy declarations inc_random.c uses, appended to a generated program; `main` calls
    `cx_entry` first."""

    k: int = 2  # toy_step(n) = n * k + n * grow
    grow: int = 0  # statements added to toy_step's body: enough of them move it
    counter: int = 5  # toy_counter's initializer: 0 puts it in .bss.zig
    tl: int = 3  # toy_tl's initializer: 0 puts it in .tbss
    pad: int = 0  # a Toy thread-local [int; pad] before toy_tl (0: none)
    pad_init: bool = False  # with a non-zero initializer (.tdata) or not (.tbss)
    order: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4, 5])

    def render(self) -> str:
        body = "".join("    a = a + n;\n" for _ in range(self.grow))
        pad = ""
        if self.pad:
            init = " = [" + ", ".join(str(j + 1) for j in range(self.pad)) + "]" \
                if self.pad_init else ""
            pad = f"threadlocal var cx_pad: [int; {self.pad}]{init};\n"
        uses_pad = " + cx_pad[0]" if self.pad else ""
        blocks = [
            "extern fn c_apply(x: int) -> int;\nextern fn c_tls_step(n: int) -> int;\n",
            f'export("toy_step") fn cx_step(n: int) -> int {{\n    let a = n * {self.k};\n'
            f"{body}    return a;\n}}\n",
            f'export("toy_counter") var cx_counter: int = {self.counter};\n',
            f'{pad}export("toy_tl") threadlocal var cx_tl: int = {self.tl};\n',
            f"fn cx_thread(k: int) -> int {{\n    return c_tls_step(k) + cx_tl{uses_pad};\n}}\n",
            'fn cx_entry() -> int {\n    print("c", c_apply(3), c_tls_step(2), cx_tl, '
            "join(spawn(cx_thread, 4)), c_tls_step(1), cx_tl);\n    return 0;\n}\n",
        ]
        return "\n" + "\n".join(blocks[i] for i in self.order)


def c_edit_constant(c: CPart, rnd) -> str:
    c.k = rnd.randrange(-9, 100)
    return f"toy_step multiplies by {c.k}"


def c_edit_grow(c: CPart, rnd) -> str:
    c.grow = rnd.choice([0, 3, 40, 150])
    return f"toy_step has {c.grow} more statements"


def c_edit_counter(c: CPart, rnd) -> str:
    c.counter = rnd.choice([0, rnd.randrange(1, 1000)])
    return f"toy_counter = {c.counter}"


def c_edit_tl(c: CPart, rnd) -> str:
    c.tl = rnd.choice([0, rnd.randrange(1, 1000)])
    return f"toy_tl = {c.tl}"


def c_edit_pad(c: CPart, rnd) -> str:
    c.pad, c.pad_init = rnd.choice([0, 1, 3, 40]), rnd.random() < 0.5
    return f"a Toy thread-local of {c.pad} ints before toy_tl ({c.pad_init=})"


def c_edit_order(c: CPart, rnd) -> str:
    rnd.shuffle(c.order)
    return f"the C part's declarations in the order {c.order}"


C_EDITS = [c_edit_constant, c_edit_grow, c_edit_counter, c_edit_tl, c_edit_pad, c_edit_order]


def render_linked(program, part: CPart) -> str:
    text = gen.render(program)
    head = "fn main() -> int {"
    assert text.count(head) == 1, text
    return text.replace(head, head + " cx_entry();") + part.render()


def check_linked_edits(data, objects: dict[str, Path], steps: int) -> None:
    build = data.draw(st.sampled_from(sorted(objects)), label="inc_random.o built as")
    link = LinkArgs([("file", str(objects[build]))])
    edit_sequence(data, link, CPart(), C_EDITS, render_linked, steps,
                  f"full build, inc_random.o built with {' '.join(C_BUILDS[build])}")


def edit_sequence(data, link: LinkArgs, part, part_edits: list, render, steps: int,
                  first: str) -> None:
    """A random program with `part` (edited by `part_edits`, rendered into the program's text
    by `render(program, part)`) linked with `link`: a full build, then `steps` steps of random
    edits, each an update (in this process or through `toyc build -v`), some after a broken
    save that must be rejected, every step compared with a clean build."""
    rnd = random.Random(data.draw(st.integers(0, 2**32 - 1), label="program seed"))
    program = gen.new_program(rnd)
    arch = "x86_64"
    with tempfile.TemporaryDirectory(prefix="toyc-link-fuzz-") as tmp:
        src, out, ref = Path(tmp) / "src.toy", Path(tmp) / "prog", Path(tmp) / "clean"
        src.write_text(render(program, part), encoding="utf-8")
        history = [first]
        session, _ = Session.full_build(str(src), str(out), arch, link=link)
        problems = gen.compare_with_clean(src, out, ref, arch, link)
        assert not problems, "\n".join(problems)
        for step in range(steps):
            edits = data.draw(st.lists(st.sampled_from(gen.EDITS + part_edits), min_size=1,
                                       max_size=3), label=f"edits {step}")
            erng = random.Random(data.draw(st.integers(0, 2**32 - 1), label=f"seed {step}"))
            via_cli = data.draw(st.integers(0, 4), label=f"cli {step}") == 0
            bad_first = data.draw(st.integers(0, 9), label=f"broken {step}") == 0
            how = "toyc build -v" if via_cli else "Session.update"
            if bad_first:
                bad, what = gen.broken(render(program, part), erng)
                history.append(f"save with a {what} [{how}]: rejected, nothing written")
                note(history[-1])
                gen.check_rejected(session, src, out, bad, via_cli, history, arch)
            program, done = gen.apply_edits(program, [e for e in edits if e in gen.EDITS],
                                            erng)
            part = copy.deepcopy(part)
            done += [e(part, erng) for e in edits if e in part_edits]
            history.append(f"{'; '.join(done)} [{how}]")
            note(history[-1])
            text = render(program, part)
            src.write_text(text, encoding="utf-8")
            context = "\n".join(["steps:", *history, "source:", text])
            session = gen.incremental_step(session, src, out, arch, via_cli, context, link)
            problems = gen.compare_with_clean(src, out, ref, arch, link)
            assert not problems, "\n".join(problems) + "\n" + context


@pytest.fixture
def random_objects(tmp_path: Path) -> dict[str, Path]:
    return {name: cc(tmp_path, "inc_random.c", f"inc_random_{name}.o", *flags)
            for name, flags in C_BUILDS.items()}


def test_random_edits_with_c_linked(random_objects: dict[str, Path]):
    @settings(max_examples=LINK_FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def fuzz(data):
        check_linked_edits(data, random_objects, LINK_FUZZ_STEPS)

    fuzz()


@pytest.mark.slow
def test_random_edits_with_c_linked_slow(random_objects: dict[str, Path], request):
    markexpr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if not os.environ.get("TOYC_LINK_FUZZ_EXAMPLES") and "slow" not in markexpr:
        pytest.skip("set TOYC_LINK_FUZZ_EXAMPLES=N or select -m slow to run the long fuzz")

    @settings(max_examples=int(os.environ.get("TOYC_LINK_FUZZ_EXAMPLES")
                               or SLOW_LINK_FUZZ_EXAMPLES),
              deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])
    @given(data=st.data())
    def fuzz(data):
        check_linked_edits(data, random_objects, SLOW_LINK_FUZZ_STEPS)

    fuzz()


# ---- part 3: hot swap ---------------------------------------------------------------------------

# `hs.start(text, *args)`: `toyc watch src.toy -o prog --run ARGS` in tmp_path, its first line
# read (the pid); the watch must end cleanly, and the program with it
start = hs.start

SWAP_PROGRAM = """\
extern fn c_tick(i: int) -> int;
extern fn c_run(i: int, n: int, ms: int) -> int;

export("toy_version") fn version(i: int) -> int {{
    {version}
}}

export("toy_step") fn step({params}) -> int {{
    print("step", {step}, i);
    return i;
}}

export("toy_pause") fn pause(ms: int) {{
    sleep_ms(ms);
}}

fn main() {{
    let limit = -1;
    let n = {n};
    if argc() > 1 {{
        limit = parse_int(argv(1));
        n = 2;
    }}
    let k = 0;
    while k != limit {{
        {loop}
        k += 1;
    }}
}}
"""
# main's loops: a tick into C every few ms; a call of C that never returns (with the program's
# argument, `prog 3`, it does: for the comparison with a clean build); a short call of C, then
# a longer sleep in Toy
TICK = "c_tick(k);\n        sleep_ms(4);"
STAY = "c_run(k * n, n, 3);"
VISIT = "c_run(k * n, n, 1);\n        sleep_ms(30);"
SWAP_LINE = re.compile(r"(version|step) (\d+) (\d+)$")


def swap_source(version: int = 1, step: int = 1, loop: str = TICK, n: int = 2,
                grown: bool = False, params: str = "i: int") -> str:
    if grown:  # past the room of the short body: it moves
        body = "\n    ".join(["let a = i;", *["a = a + 1;"] * 40,
                              f'print("version", {version}, a - 40);', "return i;"])
    else:
        body = f'print("version", {version}, i);\n    return i;'
    return SWAP_PROGRAM.format(version=body, step=step, params=params, loop=loop, n=n)


class Output:
    """The running program's lines (`version V I`, `step V I`): I only goes up (the program
    is never restarted)."""

    def __init__(self, w: Watcher):
        self.w = w
        self.last = -1

    def next(self, kind: str) -> int:
        """The version of the next `kind` line."""
        m = line_matching(self.w, SWAP_LINE.pattern)
        assert m.group(1) == kind, m.group(0)
        i = int(m.group(3))
        assert i > self.last, f"the program restarted: {i} after {self.last}"
        self.last = i
        return int(m.group(2))

    def until(self, kind: str, version: int) -> None:
        while self.next(kind) != version:
            pass

    def only(self, kind: str, version: int, count: int, old: int = 0) -> None:
        """The next `count` lines are of `version`, after at most `old` lines of another
        (computed by a thread that was in the old code when it was swapped)."""
        seen = [self.next(kind) for _ in range(count + old)]
        while seen and seen[0] != version and old:
            seen.pop(0)
            old -= 1
        assert seen[:count] == [version] * count, seen


def running_u64(pid: int, address: int) -> int:
    """Eight bytes of the running program's memory."""
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(address)
        return int.from_bytes(f.read(8), "little")


def running_jump(pid: int, address: int) -> tuple[int, int]:
    """(opcode, target) of the `call`/`jmp rel32` at `address` in the running program."""
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(address)
        code = f.read(5)
    return code[0], address + 5 + int.from_bytes(code[1:], "little", signed=True)


@pytest.fixture
def swap_object(tmp_path: Path) -> tuple[str, ...]:
    """inc_swap.o beside the watched source; the inputs of a clean build elsewhere."""
    return (str(cc(tmp_path, "inc_swap.c", "inc_swap.o", "-O2")),)


def test_hot_swap_callback_edits_and_move(tmp_path: Path, start, swap_object):
    w, _, pid = start(swap_source(), "inc_swap.o")
    out = Output(w)
    out.until("version", 1)
    swapped = f"swapped into pid {pid}"
    old_code = "; version is running the old code until it returns"

    # The body C calls back changes: swapped, the next tick runs it.
    text = swap_source(version=2)
    line = hs.edit(tmp_path, w, text, rf"^updated version \(in place|moved[^)]*\);.*; "
                                      rf"{swapped}({old_code})?$")
    out.only("version", 2, 3, old=1 if old_code in line else 0)
    hs.same_as_clean_build(tmp_path, text, swap_object)

    # A new extern that nothing defines: an error, and nothing changes (the next save is an
    # update, swapped as usual: the failed full build it needed did not count as one).
    bad = text.replace("fn main() {", "extern fn c_missing() -> int;\n\nfn main() {\n"
                                      "    c_missing();", 1)
    hs.edit(tmp_path, w, bad, r"^not updated: 1 error; prog is unchanged$")
    w.stderr_line(r"^src\.toy:\d+:\d+: error: undefined symbol: c_missing$")
    out.only("version", 2, 2)

    # It grows and moves: C's call in the running program is re-patched to the new body (not
    # left on the trampoline, which jumps there too), and so is C's pointer to it. (If the
    # first edit found a thread in `version`, it moved then, to the end of its section, where
    # it now grows in place: C's call and pointer must still reach it.)
    before = symbol_values(tmp_path / "prog")
    how = "(moved, trampoline|in place)" if "moved" in line else "moved, trampoline"
    text = swap_source(version=3, grown=True)
    line = hs.edit(tmp_path, w, text, rf"^updated version \({how}\);.*; "
                                      rf"{swapped}({old_code})?$")
    out.only("version", 3, 3, old=1 if old_code in line else 0)
    after = symbol_values(tmp_path / "prog")
    old, new = before["toy_version"], after["toy_version"]
    assert (old != new) == ("moved" in line)
    (site,) = [int(line.split(":")[0], 16) for line in disassembly(tmp_path / "prog", "c_tick")
               if "\tcall" in line]
    assert calls(tmp_path / "prog", "c_tick") == [new]  # the file
    assert running_jump(pid, site) == (0xE8, new), "C's call was not re-patched in the program"
    assert running_u64(pid, after["c_version_ptr"]) == new
    if old != new:
        assert running_jump(pid, old) == (0xE9, new), "no trampoline in the program"
    hs.same_as_clean_build(tmp_path, text, swap_object)

    # It shrinks where it now is.
    text = swap_source(version=4)
    line = hs.edit(tmp_path, w, text, rf"^updated version \((shrunk in place|moved[^)]*)\);"
                                      rf".*; {swapped}({old_code})?$")
    out.only("version", 4, 3, old=1 if old_code in line else 0)
    assert running_jump(pid, site)[1] == symbol_values(tmp_path / "prog")["toy_version"]
    hs.same_as_clean_build(tmp_path, text, swap_object)

    # The C object is rebuilt (and renamed into place, so that the watch never reads half of
    # it): a full build, which the running program does not get.
    os.replace(cc(tmp_path, "inc_swap.c", "inc_swap.new.o", "-O1"), tmp_path / "inc_swap.o")
    hs.summary(w, r"^full build: inc_swap\.o changed$")
    hs.summary(w, rf"^built \d+ declarations \(full build\);.*; not swapped: the output was "
                  rf"rebuilt from scratch; pid {pid} runs the previous version \(--restart "
                  r"restarts it\)$")
    out.only("version", 4, 2)
    hs.same_as_clean_build(tmp_path, text, (str(tmp_path / "inc_swap.o"),))


def test_hot_swap_held_while_c_calls_the_changed_function(tmp_path: Path, start, swap_object):
    """The main thread never leaves c_run, which calls step: a new signature of step is not
    swapped, and the line names C's section; the program goes on with the old code."""
    w, _, pid = start(swap_source(loop=STAY, n=1_000_000), "inc_swap.o")
    out = Output(w)
    out.until("step", 1)

    text = swap_source(loop=STAY, n=1_000_000, step=2, params="i: int, more: int")
    why = r"inc_swap\.o\(\.text\) is running and uses step, which changed its signature"
    hs.edit(tmp_path, w, text, rf"^updated step .*; not swapped: {why}; pid {pid} runs the "
                               r"previous version \(--restart restarts it\)$")
    out.only("step", 1, 5)  # (C calls the old step, with the old arguments)
    hs.same_as_clean_build(tmp_path, text, swap_object)

    text = swap_source(loop=STAY, n=1_000_000, step=3, params="i: int, more: int")
    hs.edit(tmp_path, w, text, rf"^updated step .*; not swapped: pid {pid} runs an older "
                               rf"version \(since: {why}\)$")
    out.only("step", 1, 3)
    hs.same_as_clean_build(tmp_path, text, swap_object)


def test_hot_swap_waits_for_the_thread_to_leave_c(tmp_path: Path, start, swap_object):
    """The main thread is in c_run (which calls step) for a few ms out of every 30: the new
    signature of step is swapped once it is out, and C's next calls run the new body."""
    w, _, pid = start(swap_source(loop=VISIT), "inc_swap.o")
    out = Output(w)
    out.until("step", 1)

    text = swap_source(loop=VISIT, step=2, params="i: int, more: int")
    hs.edit(tmp_path, w, text, rf"^updated step .*; swapped into pid {pid}$")
    # No thread was in code that calls step when it was swapped: every line after it is new.
    out.only("step", 2, 4)
    hs.same_as_clean_build(tmp_path, text, swap_object)


def test_watch_reports_a_missing_object_once(tmp_path: Path):
    """An object deleted while `toyc watch` runs: one line saying the output is unchanged (not
    one per poll), and a full build once it is back."""
    cc(tmp_path, "inc_calls.c", "inc_calls.o", "-O2")
    keep = (tmp_path / "inc_calls.o").read_bytes()
    (tmp_path / "src.toy").write_text(
        "extern fn c_call_cb(x: int) -> int;\n"
        'export("toy_cb") fn cb(x: int) -> int { return x * 2; }\n'
        'export("toy_counter") var counter: int = 0;\n'
        "fn main() -> int { print(c_call_cb(20)); return 0; }\n")
    w = Watcher(tmp_path, "inc_calls.o")
    try:
        assert "(full build)" in w.line()
        (tmp_path / "inc_calls.o").unlink()
        line = w.line()
        assert line.startswith("not updated: ") and "inc_calls.o" in line, line
        time.sleep(1.0)  # twenty polls: none of them reports it again
        w.quiet()
        (tmp_path / "inc_calls.o.tmp").write_bytes(keep)
        os.replace(tmp_path / "inc_calls.o.tmp", tmp_path / "inc_calls.o")
        assert w.line() == "full build: inc_calls.o changed"
        assert "(full build)" in w.line()
        assert run([str(tmp_path / "prog")]).stdout == "41\n"
    finally:
        w.stop()
