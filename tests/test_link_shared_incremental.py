"""Incremental updates and hot swap of dynamically linked programs: every update must still
equal a clean build.

1. `test_scenario_with_libc`: one program taken through steps, each a
   `toyc build -v src.toy -lc -o prog` checked by `test_incremental`'s runner against a clean
   build (stdout, status, symbols, sections and program headers, `eu-elflint`, `readelf -a`):
   calling a library function never called before (an IFUNC among them) is an update, and so
   is no longer calling one, calling it again, and starting threads (the runtime imports
   `pthread_create`); a new extern naming a library's variable, a library file that changed
   and another list of libraries are full builds with their reason.
2. `test_random_edits_with_libc`: random programs and edit sequences from
   `test_incremental_random`'s generator, with a part that calls C library functions, each
   edit choosing other ones (or none), compared with a clean build at every step.
3. `test_hot_swap_*`: `toyc watch --run` with `-lc`: an edit that calls library functions the
   program never called (strlen is an IFUNC: its address is what the resolver chose in the
   running program) is swapped into it, not restarted; the running program's GOT slot holds
   the function's address in that process.
4. A state whose dynamic tables name what the output does not have, and a `toyc build -lc`
   killed at a random write of an update that imports and drops functions: full builds that
   say so, and outputs that behave as clean builds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import test_hot_swap as hs
import test_incremental as inc
import test_incremental_random as gen
import test_link_incremental as link
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import require, run
from toyc.inputs import LinkArgs

env = inc.env
start = hs.start

PROGRAM = """\
extern fn printf(fmt: str, ...) -> int;
{externs}
fn helper(x: int) -> int {{
    {body}
}}

export("main") fn main() -> int {{
    printf("helper %d\\n", helper(2));
    {main}
    return 0;
}}
"""
WORKER = "\nfn worker(n: int) -> int {\n    return n * 3;\n}\n"


def program(externs: str = "", body: str = "return x + 1;", main: str = "") -> str:
    return PROGRAM.format(externs=externs, body=body, main=main)


def step(name: str, text: str, stdout: str, full: bool | None = None, summary=(),
         why: str = "") -> inc.Step:
    """A step; `why`: the reason toyc gives for its full build."""
    return inc.Step(name, 0, text, stdout, full=full, summary=list(summary),
                    messages=[why] if why else [])


def test_scenario_with_libc(tmp_path: Path, env: dict[str, str], monkeypatch):
    (tmp_path / "shout.c").write_text("long shout(long x) { return x * 1000; }\n")

    def library(version: int) -> None:
        r = run([require("gcc"), "-shared", "-fPIC", f"-DV={version}", "-o",
                 str(tmp_path / "libshout.so"), str(tmp_path / "shout.c")])
        assert r.status == 0, r.stderr

    library(1)
    labs = "extern fn labs(x: int) -> int;"
    more = labs + "\nextern fn strlen(s: str) -> int;\nextern fn toupper(c: int) -> int;"
    steps = [
        step("base", program(), "helper 3\n"),
        step("a new import", program(labs, "return labs(-x) * 10;"), "helper 20\n",
             summary=["updated helper"]),
        step("an IFUNC and another", program(
            more, 'return labs(-x) * 10 + strlen("four") + toupper(97);'), "helper 89\n"),
        step("labs no longer called", program(more, 'return strlen("four") + x;'),
             "helper 6\n"),
        step("called again", program(more, "return labs(x - 9);"), "helper 7\n"),
        step("threads", program(more, "return labs(x - 9);",
                                'print("thread", join(spawn(worker, 5)));') + WORKER,
             "helper 7\nthread 15\n"),
    ]
    image = None
    for s in steps:
        (tmp_path / inc.SOURCE).write_text(s.text)
        image = inc.check_good_step(tmp_path, env, s, image, "x86_64", ("-lc",))

    # A library's variable, new: a full build (it is copied when the program starts).
    text = program(more + "\nextern var stdin: int;",
                   "if stdin == 0 { return 0; }\n    return labs(x - 9);")
    s = step("a variable", text, "helper 7\n", full=True,
             why="stdin is a new extern naming a variable of")
    (tmp_path / inc.SOURCE).write_text(text)
    image = inc.check_good_step(tmp_path, env, s, image, "x86_64", ("-lc",))

    # Another library in the list; then that library's file changes.
    text = program("extern fn shout(x: int) -> int;\n" + more, "return shout(x);")
    inputs = ("-L.", "-lshout", "-lc")
    s = step("another library", text, "helper 2000\n", full=True,
             why="the linker inputs changed (were: -lc; now: -L. -lshout -lc)")
    (tmp_path / inc.SOURCE).write_text(text)
    env = {**env, "LD_LIBRARY_PATH": str(tmp_path)}
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))  # (the programs the runner runs)
    image = inc.check_good_step(tmp_path, env, s, image, "x86_64", inputs)
    library(2)
    s = step("the library changed", text, "helper 2000\n", full=True,
             why="libshout.so changed")
    image = inc.check_good_step(tmp_path, env, s, image, "x86_64", inputs)
    s = step("an update again", program("extern fn shout(x: int) -> int;\n" + more,
                                        "return shout(x) + labs(-1);"), "helper 2001\n")
    (tmp_path / inc.SOURCE).write_text(s.text)
    inc.check_good_step(tmp_path, env, s, image, "x86_64", inputs)


# ---- random edits --------------------------------------------------------------------------------

LINK_FUZZ_EXAMPLES = 3
LINK_FUZZ_STEPS = 6
# (extern declaration, call): what a slot of the libc part may call; None: nothing
POOL = {
    "labs": ("extern fn labs(x: int) -> int;", "labs(-n - {k})"),
    "strlen": ("extern fn strlen(s: str) -> int;", 'strlen("{word}")'),
    "toupper": ("extern fn toupper(c: int) -> int;", "toupper(97 + {k})"),
    "atoi": ("extern fn atoi(s: str) -> int;", 'atoi("{k}7")'),
    "puts": ("extern fn puts(s: str) -> int;", 'puts("{word}") * 0'),
    "printf": ("extern fn printf(fmt: str, ...) -> int;", 'printf("<%d>", n + {k}) * 0'),
    "strspn": ("extern fn strspn(s: str, accept: str) -> int;", 'strspn("{word}", "abcde")'),
    "memchr": ("extern fn memchr(s: str, c: int, n: int) -> int;",
               'memchr("{word}", 120, 3) * 0'),
}


@dataclass
class LibcPart:
    """Slots that call C library functions, appended to a generated program; `main` calls
    `lx_entry` first."""

    calls: list[str | None] = field(default_factory=lambda: [None, "labs", None, "strlen"])
    k: int = 1
    word: str = "abc"

    def render(self) -> str:
        used = sorted({c for c in self.calls if c is not None})
        externs = "".join(POOL[name][0] + "\n" for name in used)
        fns = []
        for i, name in enumerate(self.calls):
            call = "0" if name is None else POOL[name][1].format(k=self.k, word=self.word)
            fns.append(f"fn lx_f{i}(n: int) -> int {{\n    return n + {call};\n}}\n")
        args = ", ".join(f"lx_f{i}({i})" for i in range(len(self.calls)))
        return "\n" + externs + "\n".join(fns) + \
            f'\nfn lx_entry() -> int {{\n    print("libc", {args});\n    return 0;\n}}\n'


def libc_edit_call(part: LibcPart, rnd) -> str:
    i = rnd.randrange(len(part.calls))
    part.calls[i] = rnd.choice([None, *POOL])
    return f"slot {i} calls {part.calls[i]}"


def libc_edit_values(part: LibcPart, rnd) -> str:
    part.k, part.word = rnd.randrange(0, 9), rnd.choice(["abc", "xyz", "deadbeef", "q"])
    return f"k = {part.k}, word = {part.word}"


LIBC_EDITS = [libc_edit_call, libc_edit_call, libc_edit_values]


def render_with(program, part: LibcPart) -> str:
    text = gen.render(program)
    head = "fn main() -> int {"
    assert text.count(head) == 1, text
    return text.replace(head, head + " lx_entry();") + part.render()


def check_libc_edits(data, steps: int) -> None:
    link.edit_sequence(data, LinkArgs([("lib", "c")]), LibcPart(), LIBC_EDITS, render_with,
                       steps, "full build with -lc")


def test_random_edits_with_libc():
    @settings(max_examples=LINK_FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def fuzz(data):
        check_libc_edits(data, LINK_FUZZ_STEPS)

    fuzz()


# ---- hot swap ------------------------------------------------------------------------------------

SWAP = """\
extern fn printf(fmt: str, ...) -> int;
{externs}
fn value(i: int) -> int {{
    return {value};
}}

fn main() {{
    let limit = 100000;
    if argc() > 1 {{ limit = parse_int(argv(1)); }}
    let i = 0;
    while i != limit {{
        print("out", i, value(i), 0);
        sleep_ms(5);
        i += 1;
    }}
}}
"""


def swap_source(externs: str = "", value: str = "i") -> str:
    return SWAP.format(externs=externs, value=value)


def test_hot_swap_new_imports(tmp_path: Path, start):
    w, prog, pid = start(swap_source(), "-lc")
    prog.until(lambda i: i)
    swapped = f"swapped into pid {pid}"

    externs = "extern fn labs(x: int) -> int;\nextern fn strlen(s: str) -> int;"
    text = swap_source(externs, 'labs(-i) * 100 + strlen("four")')
    hs.edit(tmp_path, w, text, rf"^updated value \((in place|moved[^)]*)\);.*; {swapped}$")
    prog.until(lambda i: i * 100 + 4)
    hs.same_as_clean_build(tmp_path, text, ("-lc",))
    # strlen's GOT slot in the running program holds what its resolver chose there: the
    # address the C library in this process (the same file, on the same CPU) has for it
    import ctypes
    here = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
    slot = _got_slot(tmp_path / "prog", "strlen")
    got = int.from_bytes(_read(pid, slot, 8), "little")
    assert got and got != 0, "strlen's slot was not filled"
    assert (got - _libc_base(pid)) == (here - _libc_base("self"))

    # No longer called, called again: still swapped.
    text = swap_source(externs, "i * 7")
    hs.edit(tmp_path, w, text, rf"^updated value .*; {swapped}$")
    prog.until(lambda i: i * 7)
    text = swap_source("extern fn toupper(c: int) -> int;", "toupper(97) + i")
    hs.edit(tmp_path, w, text, rf"^updated value .*; {swapped}$")
    prog.until(lambda i: 65 + i)
    hs.same_as_clean_build(tmp_path, text, ("-lc",))


def _got_slot(exe: Path, name: str) -> int:
    out = run([require("readelf"), "-rW", str(exe)]).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[2] == "R_X86_64_JUMP_SLOT" and f[4].split("@")[0] == name:
            return int(f[0], 16)
    raise AssertionError(f"no JUMP_SLOT for {name}:\n{out}")


def _read(pid: int, address: int, size: int) -> bytes:
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(address)
        return f.read(size)


def _libc_base(pid) -> int:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if line.rstrip().endswith("/libc.so.6") and line.split()[2] == "00000000":
            return int(line.split("-")[0], 16)
    raise AssertionError(f"libc is not mapped in {pid}")


@pytest.fixture(autouse=True)
def _needs_gcc():
    require("gcc")


# ---- a state that cannot be trusted -------------------------------------------------------------


@pytest.mark.parametrize("damage", ["table elsewhere", "stub past the table", "no library",
                                    "not a table"])
def test_tampered_dynamic_state_means_a_full_build(tmp_path: Path, damage: str):
    import test_state as ts

    src, out = tmp_path / "p.toy", tmp_path / "p"
    src.write_text(program("extern fn labs(x: int) -> int;", "return labs(-x);"))
    assert run([*inc.TOYC, "build", str(src), "-lc", "-o", str(out)]).status == 0
    state = tmp_path / ".p.toyc-state"
    data = ts.read_state(state)
    d = data["linker"]["dynamic"]
    if damage == "table elsewhere":
        d["sections"][".dynsym"] = 1
    elif damage == "stub past the table":
        d["imports"][0][6] = 10_000
    elif damage == "no library":
        d["imports"][0][1] = 7
    else:
        d["imports"] = "everything"
    ts.write_state(state, data)
    r = run([*inc.TOYC, "build", str(src), "-lc", "-o", str(out)])
    assert r.status == 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("toyc: full build: the state file is corrupt"), r.stderr
    assert run([str(out)]).stdout == "helper 2\n"


# ---- killed in the middle of an update ----------------------------------------------------------


def test_build_killed_at_any_write_with_libc(tmp_path: Path):
    """`toyc build -lc` killed at a random write of updates that import and drop library
    functions: the next build is right (the same as a clean one) and says it rebuilt."""
    import test_crash as crash

    rnd = random.Random(5)
    prog, part = gen.new_program(rnd), LibcPart()
    (tmp_path / "src.toy").write_text(render_with(prog, part))
    build = [*inc.TOYC, "build", "-v", "src.toy", "-lc", "-o", "prog"]
    assert run(build, cwd=tmp_path).status == 0
    killed = 0
    for k in range(crash.KILLS):
        prog, done = gen.apply_edits(prog, rnd.sample(gen.EDITS, 1), rnd)
        done += [libc_edit_call(part, rnd), libc_edit_call(part, rnd)]
        (tmp_path / "src.toy").write_text(render_with(prog, part))
        n = rnd.randint(1, 40)
        log = tmp_path / "strace.log"
        r = run([*crash.killed_at(n, log), *build], cwd=tmp_path)
        what = f"kill {k} at write {n} of an update ({'; '.join(done)})"
        torn = r.status in (-9, 137)
        killed += torn
        assert torn or r.status == 0, f"{what}: {r.stderr}"
        after = run(build, cwd=tmp_path)
        assert after.status == 0, f"{what}: {after.stderr}"
        if torn and crash.wrote_to(log, "prog"):
            assert "full build" in after.stdout + after.stderr, f"{what}: trusted: {after}"
        clean = run([*inc.TOYC, "build", "--full", "src.toy", "-lc", "-o", "clean"],
                    cwd=tmp_path)
        assert clean.status == 0, clean.stderr
        assert crash.behaviour(tmp_path / "prog") == crash.behaviour(tmp_path / "clean"), what
        lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "prog")])
        assert lint.status == 0 and "No errors" in lint.stdout, f"{what}: {lint.stdout}"
    assert killed >= crash.KILLS // 3, f"only {killed} of {crash.KILLS} builds were killed"


def test_hot_swap_of_an_import_the_program_cannot_have(tmp_path: Path, start, monkeypatch):
    """The program runs another copy of the library than the one linked (LD_LIBRARY_PATH
    names it): a function of it called for the first time cannot be found in the program,
    whose line says so; the file is updated all the same."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "shout.c").write_text("long shout_a(long x) { return x * 10; }\n"
                                      "long shout_b(long x) { return x * 100; }\n")
    r = run([require("gcc"), "-shared", "-fPIC", "-o", str(tmp_path / "lib" / "libshout.so"),
             str(tmp_path / "shout.c")])
    assert r.status == 0, r.stderr
    (tmp_path / "run" / "libshout.so").write_bytes((tmp_path / "lib" / "libshout.so")
                                                   .read_bytes())
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path / "run"))
    a = "extern fn shout_a(x: int) -> int;\nextern fn shout_b(x: int) -> int;"
    w, prog, pid = start(swap_source(a, "shout_a(i)"), "-Llib", "-lshout")
    prog.until(lambda i: i * 10)
    hs.edit(tmp_path, w, swap_source(a, "shout_b(i)"),
            rf"^updated value .*; not swapped: shout_b cannot be found in the running program "
            rf"\(.*libshout\.so is not loaded in pid {pid}\); pid {pid} runs the previous "
            r"version \(--restart restarts it\)$")
    prog.until(lambda i: i * 10)  # the previous version, still running
    assert run([str(tmp_path / "prog"), "3"]).stdout.splitlines()[-1] == "out 2 200 0"


# ---- a library that calls the program back --------------------------------------------------


def test_library_calls_back_a_toy_export(tmp_path: Path, monkeypatch):
    """A library refers to a function and a variable the program defines (Toy exports): they
    are in `.dynsym`, so the loader binds the library's references to them; when the
    function moves, its row follows it; an export of such a name that goes is a full build."""
    (tmp_path / "cb.c").write_text("long app_cb(long x);\nextern long app_counter;\n"
                                   "long call_back(long x) { app_counter += 1; "
                                   "return app_cb(x) + 1; }\n")
    r = run([require("gcc"), "-shared", "-fPIC", "-o", str(tmp_path / "libcb.so"),
             str(tmp_path / "cb.c")])
    assert r.status == 0, r.stderr
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))

    def source(body: str) -> str:
        return ('extern fn call_back(x: int) -> int;\n'
                'export("app_counter") var counter: int = 0;\n'
                f'export("app_cb") fn cb(x: int) -> int {{\n{body}\n}}\n'
                'export("main") fn main() -> int {\n'
                '    print(call_back(4), call_back(5), counter);\n    return 0;\n}\n')

    def build(text: str, *extra: str) -> str:
        (tmp_path / "src.toy").write_text(text)
        r = run([*inc.TOYC, "build", "-v", *extra, "src.toy", "-L.", "-lcb", "-o", "prog"],
                cwd=tmp_path)
        assert r.status == 0, r.stderr
        return r.stdout + r.stderr

    def dynsym_value(name: str) -> int:
        out = run([require("readelf"), "--dyn-syms", "-W", str(tmp_path / "prog")]).stdout
        return next(int(line.split()[1], 16) for line in out.splitlines()
                    if line.split()[-1:] == [name])

    build(source("    return x * 10;"))
    assert run([str(tmp_path / "prog")]).stdout == "41 51 2\n"
    grown = "    let a = x;\n" + "    a = a + 1;\n" * 80 + "    return a * 10;"
    said = build(source(grown))
    assert "updated cb (moved" in said and "full build" not in said, said
    assert run([str(tmp_path / "prog")]).stdout == "841 851 2\n"
    assert dynsym_value("app_cb") == nm_values(tmp_path / "prog")["cb"]
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "prog")])
    assert "No errors" in lint.stdout, lint.stdout
    said = build(source(grown).replace('export("app_cb") ', ""))
    assert "toyc: full build: a Toy export that linked files define or use changed: app_cb" \
        in said, said


def nm_values(exe: Path) -> dict[str, int]:
    out = run([require("nm"), str(exe)]).stdout
    return {f[2]: int(f[0], 16) for f in (line.split() for line in out.splitlines())
            if len(f) == 3}
