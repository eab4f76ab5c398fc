"""`toyc build -c`: relocatable objects that the system's gcc links into C programs.

Each object is read by `readelf -a` (no complaint on stderr), `eu-elflint --gnu-ld`, `objdump -d`
and `nm`, then linked with gcc (as a PIE, the default; without PIE; statically) into a C
program that calls exported Toy functions and reads and writes exported globals, and run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TOYC, require, run, symbols

LIB = """\
export fn add(a: int, b: int) -> int {
    print("toy add", a, b);
    return a + b;
}
export("toy_scale") fn scale(x: int) -> int { return x * FACTOR; }
const FACTOR: int = 10;
export var shared: int = 42;
export(weak) fn hook() -> int { return 7; }
export const NAME: str = "toy";
export fn divide(a: int, b: int) -> int { return a / b; }
fn main() -> int { return 3; }
"""

MAIN_C = """\
#include <stdio.h>
long long add(long long, long long);
long long toy_scale(long long);
long long hook(void);
long long divide(long long, long long);
extern long long shared;
extern const char *NAME;
int main(int argc, char **argv) {
    long long r = add(2, 3);
    printf("%lld %lld %lld %lld %s\\n", r, toy_scale(4), shared, hook(), NAME);
    shared = 5;
    printf("%lld\\n", shared);
    fflush(stdout);
    return (int)divide(10, argc - 1);
}
"""


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    (tmp_path / "lib.toy").write_text(LIB)
    r = run([*TOYC, "build", "-c", "lib.toy"], cwd=tmp_path)
    assert r.status == 0 and r.stdout == "" and r.stderr == "", r.stderr
    return tmp_path / "lib.o"


def test_object_is_read_cleanly(lib: Path):
    readelf = run([require("readelf"), "-a", "-W", str(lib)])
    assert readelf.status == 0 and readelf.stderr == "", readelf.stderr
    assert "REL (Relocatable file)" in readelf.stdout
    assert "There are no program headers" in readelf.stdout
    assert "_start" not in readelf.stdout
    lint = run([require("eu-elflint"), "--gnu-ld", str(lib)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout + lint.stderr
    assert run([require("objdump"), "-d", str(lib)]).status == 0
    nm = {tuple(line.split()[1:]) for line in run([require("nm"), str(lib)]).stdout.splitlines()}
    assert {("T", "add"), ("T", "toy_scale"), ("W", "hook"), ("D", "shared"),
            ("D", "NAME")} <= nm
    assert ("t", "main") in nm  # an ordinary, local function in an object


@pytest.mark.parametrize("mode", [[], ["-no-pie"], ["-static"]], ids=["pie", "no-pie", "static"])
def test_c_program_calls_toy(lib: Path, mode: list[str]):
    (lib.parent / "main.c").write_text(MAIN_C)
    exe = lib.parent / "prog"
    cc = run([require("gcc"), *mode, "main.c", "lib.o", "-o", str(exe)], cwd=lib.parent)
    assert cc.status == 0, cc.stderr
    r = run([str(exe), "x"])
    assert (r.status, r.stdout, r.stderr) == (10, "toy add 2 3\n5 40 42 7 toy\n5\n", "")
    r = run([str(exe)])  # divide by zero: Toy's panic, with the Toy source position
    assert r.status == 101
    assert r.stderr == "panic: division by zero at lib.toy:10:50\n"


def test_object_needs_no_main_but_an_executable_does(tmp_path: Path):
    (tmp_path / "nomain.toy").write_text("export fn one() -> int { return 1; }\n")
    r = run([*TOYC, "build", "-c", "nomain.toy", "-o", "x.o"], cwd=tmp_path)
    assert r.status == 0 and (tmp_path / "x.o").exists(), r.stderr
    r = run([*TOYC, "build", "nomain.toy"], cwd=tmp_path)
    assert r.status == 1 and "the program has no 'main' function" in r.stderr


STEPS = [
    # (what changes, the body of twice, extra declarations, what the summary must say)
    ("an edit in place", "return x * 3 - x;", "", "updated twice (in place)"),
    ("a body that outgrows its room: it moves, with no trampoline in an object",
     "let t = x;\n" + "    t = t + x; t = t - x;\n" * 12 + "    return t * 2;", "",
     "updated twice (moved);"),
    ("a call to C through a new extern", "return c_helper(x) - 1000 + x;",
     "extern fn c_helper(x: int) -> int;\n", "updated twice ("),
    ("a new exported function, an extern dropped", "return x * 2;",
     'export fn extra() -> int { return 5; }\n', "added extra"),
    ("an export renamed, a function removed", "return x + x;",
     'export("extra2") fn extra() -> int { return 5; }\n', "extra (exports)"),
]
INCREMENTAL = """\
{extra}export fn twice(x: int) -> int {{
    {body}
}}
export fn after() -> int {{ return 1; }}
export var shared: int = 42;
"""
INCREMENTAL_C = """\
#include <stdio.h>
long long twice(long long);
long long c_helper(long long x) { return x + 1000; }
extern long long shared;
int main(void) { printf("%lld %lld\\n", twice(21), shared); return 0; }
"""


def test_objects_are_updated_incrementally(tmp_path: Path):
    """Each edit patches the object (the summary says what changed, no full build); after
    each, it links and runs as a clean build of the same source does, with the same
    symbols."""
    clean = tmp_path / "clean"
    clean.mkdir()
    for d in (tmp_path, clean):
        (d / "main.c").write_text(INCREMENTAL_C)
    (tmp_path / "lib.toy").write_text(INCREMENTAL.format(extra="", body="return x * 2;"))
    r = run([*TOYC, "build", "-c", "lib.toy"], cwd=tmp_path)
    assert r.status == 0 and (tmp_path / ".lib.o.toyc-state").exists(), r.stderr
    for what, body, extra, said in STEPS:
        text = INCREMENTAL.format(extra=extra, body=body)
        (tmp_path / "lib.toy").write_text(text)
        (clean / "lib.toy").write_text(text)
        r = run([*TOYC, "build", "-c", "-v", "lib.toy"], cwd=tmp_path)
        assert r.status == 0 and said in r.stdout and "full build" not in r.stdout, \
            f"{what}: {r.stdout}{r.stderr}"
        assert run([*TOYC, "build", "-c", "lib.toy"], cwd=clean).status == 0
        outputs = []
        for d in (tmp_path, clean):
            cc = run([require("gcc"), "main.c", "lib.o", "-o", "prog"], cwd=d)
            assert cc.status == 0, f"{what}: {cc.stderr}"
            outputs.append(run([str(d / "prog")]).stdout)
        assert outputs[0] == outputs[1] == "42 42\n", (what, outputs)
        assert symbols(tmp_path / "lib.o") == symbols(clean / "lib.o"), what
        lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "lib.o")])
        assert lint.status == 0 and "No errors" in lint.stdout, f"{what}: {lint.stdout}"


CALLS_C = """\
extern fn c_helper(x: int) -> int;
extern var c_counter: int;
extern var c_table: [int; 3];
extern fn puts(s: str) -> int;
extern fn labs(x: int) -> int;
extern fn abs(x: int) -> int;  // C's int: the low half of a Toy int, and a result that fits
extern fn nobody_defines_this() -> int;

export fn run(n: int) -> int {
    puts("hello from toy via puts");
    c_counter += n;
    c_table[1] = labs(-7) + abs(-30);
    return c_helper(n) + c_counter;
}
"""

C_SIDE = """\
#include <stdio.h>
long long c_counter = 100;
long long c_table[3];
long long c_helper(long long x) { return x * 1000; }
long long run(long long);
int main(void) {
    long long r = run(5);
    printf("%lld %lld %lld\\n", r, c_counter, c_table[1]);
    return 0;
}
"""


@pytest.mark.parametrize("mode", [[], ["-no-pie"]], ids=["pie", "no-pie"])
def test_toy_calls_c_through_externs(tmp_path: Path, mode: list[str]):
    (tmp_path / "calls_c.toy").write_text(CALLS_C)
    (tmp_path / "c_side.c").write_text(C_SIDE)
    r = run([*TOYC, "build", "-c", "calls_c.toy"], cwd=tmp_path)
    assert r.status == 0, r.stderr
    undefined = {line.split()[-1] for line in
                 run([require("nm"), "-u", str(tmp_path / "calls_c.o")]).stdout.splitlines()}
    # only what is used: an extern nothing refers to leaves no symbol
    assert undefined == {"c_helper", "c_counter", "c_table", "puts", "labs", "abs"}
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "calls_c.o")])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
    cc = run([require("gcc"), *mode, "c_side.c", "calls_c.o", "-o", "prog"], cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    r = run([str(tmp_path / "prog")])
    assert (r.status, r.stdout) == (0, "hello from toy via puts\n5105 105 37\n")


@pytest.mark.parametrize("stem", ["lib", "a_library_with_a_long_name"])
def test_archive_links(tmp_path: Path, stem: str):
    (tmp_path / f"{stem}.toy").write_text(LIB)
    (tmp_path / "main.c").write_text(MAIN_C)
    r = run([*TOYC, "build", "--lib", f"{stem}.toy"], cwd=tmp_path)
    assert r.status == 0 and r.stderr == "", r.stderr
    archive = tmp_path / f"lib{stem}.a"
    assert run([require("ar"), "t", str(archive)]).stdout == f"{stem}.o\n"
    index = {line.split(" in ")[0] for line in
             run([require("nm"), "-s", str(archive)]).stdout.splitlines()
             if line.endswith(f" in {stem}.o")}
    # exported names, weak ones included; not the local main and scale
    assert index == {"add", "toy_scale", "hook", "shared", "NAME", "divide"}
    cc = run([require("gcc"), "main.c", f"-L{tmp_path}", f"-l{stem}", "-o", "prog"],
             cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    r = run([str(tmp_path / "prog"), "x"])
    assert (r.status, r.stdout) == (10, "toy add 2 3\n5 40 42 7 toy\n5\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{stem}.toy", "main.c", f"lib{stem}.a", "prog"])  # nothing left behind


TLS_TOY = """\
export threadlocal var tl: int = 5;
threadlocal var hidden: int;
export fn bump(n: int) -> int { tl += n; hidden += 1; return tl * 100 + hidden; }
"""
TLS_C = """\
#include <stdio.h>
#include <pthread.h>
extern __thread long long tl;
long long bump(long long);
void *t(void *a) { long long r = bump(10); printf("thread %lld %lld\\n", r, tl); return 0; }
int main(void) {
    pthread_t th;
    pthread_create(&th, 0, t, 0);
    pthread_join(th, 0);
    long long r = bump(1);
    printf("main %lld %lld\\n", r, tl);
    return 0;
}
"""


@pytest.mark.parametrize("mode", [[], ["-static"]], ids=["pie", "static"])
def test_thread_locals_in_a_c_program(tmp_path: Path, mode: list[str]):
    """Toy's thread-locals (local exec) in a C program with pthreads: C's TLS setup serves
    them, and C sees an exported one as a __thread variable."""
    (tmp_path / "tl.toy").write_text(TLS_TOY)
    (tmp_path / "main.c").write_text(TLS_C)
    assert run([*TOYC, "build", "-c", "tl.toy"], cwd=tmp_path).status == 0
    rows = {line.split()[-1]: line.split() for line in
            run([require("readelf"), "-sW", str(tmp_path / "tl.o")]).stdout.splitlines()
            if line.split()[-1:] in (["tl"], ["hidden"])}
    assert rows["tl"][3:5] == ["TLS", "GLOBAL"] and rows["hidden"][3:5] == ["TLS", "LOCAL"]
    cc = run([require("gcc"), *mode, "main.c", "tl.o", "-o", "prog", "-pthread"], cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    r = run([str(tmp_path / "prog")])
    assert (r.status, r.stdout) == (0, "thread 1501 15\nmain 601 6\n")
