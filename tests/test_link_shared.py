"""Shared libraries and the C library: `toyc build prog.toy -lc -lz -o prog`.

A Toy program linked with a shared library is a dynamically linked executable, started by the
system's dynamic loader and the C library's own start-up. What is covered, each its own test:

- libc from Toy: printf with every kind of argument and more than six, puts, malloc and free,
  strlen, getenv, reading standard input (getchar, fgets on `stdin`, a library variable Toy
  declares `extern var`: copied into the executable), files with fopen;
- the C library's start and end: output order of C's stdio and Toy's print, in a pipe and on a
  pseudo-terminal; `exit`, returning from main and a panic flush stdio; atexit handlers run;
- zlib's crc32 and adler32 against Python's zlib (-lz; -lc added as gcc adds it);
- threads: many threads calling malloc, snprintf and free at once, `errno` per thread, Toy's
  thread-locals per thread (spawn is pthread_create);
- C objects calling the C library, built as PIE (gcc's default), -fno-pie (a COPY relocation
  for `stdout`, a canonical stub for a function's address), -fPIC and -fno-plt (GOT slots the
  loader fills);
- GNU ld scripts: the system's libc.so, one of the test's own (GROUP, INPUT, AS_NEEDED, -l);
- every output: `eu-elflint --gnu-ld` clean, `readelf -d` and `-V` right, `ldd` resolves, it
  runs with LD_BIND_NOW=1, pyelftools reads its dynamic section;
- bad input (a missing library, a symbol nothing defines, a library for another machine, a
  broken script): one error line, status 1, the previous output unchanged.

Incremental updates and hot swap with libraries are in test_link_shared_incremental.py.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import TOYC, Result, require, run

LIBC_SCRIPT = Path("/usr/lib/x86_64-linux-gnu/libc.so")


def build(tmp: Path, toy: str, *inputs, out: str = "prog") -> Path:
    (tmp / "prog.toy").write_text(toy)
    r = run([*TOYC, "build", "prog.toy", *map(str, inputs), "-o", out], cwd=tmp)
    assert (r.status, r.stderr) == (0, ""), r.stderr
    return tmp / out


def check_dynamic(exe: Path, needed: list[str], env: dict | None = None) -> None:
    """What elfutils, binutils, ldd and pyelftools say of a dynamically linked `exe`."""
    lint = run([require("eu-elflint"), "--gnu-ld", str(exe)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout + lint.stderr
    readelf = run([require("readelf"), "-a", "-W", str(exe)])
    assert readelf.status == 0 and readelf.stderr == "", readelf.stderr
    objdump = run([require("objdump"), "-d", str(exe)])
    assert objdump.status == 0 and objdump.stderr == "", objdump.stderr
    d = run([require("readelf"), "-d", str(exe)]).stdout
    listed = [line.split("[")[1].rstrip("]") for line in d.splitlines() if "(NEEDED)" in line]
    assert listed == needed, d
    assert "BIND_NOW" in d and "(DEBUG)" in d, d
    versions = run([require("readelf"), "-V", str(exe)]).stdout
    assert "File: libc.so.6" in versions and "GLIBC_2.2.5" in versions, versions
    p = subprocess.run([require("ldd"), str(exe)], capture_output=True, text=True, env=env)
    ldd = Result(p.returncode, p.stdout, p.stderr)
    assert ldd.status == 0 and "not found" not in ldd.stdout, ldd.stdout
    for lib in needed:
        assert f"{lib} => /" in ldd.stdout, ldd.stdout
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        interp = next(s for s in elf.iter_segments() if s.header.p_type == "PT_INTERP")
        assert interp.get_interp_name() == "/lib64/ld-linux-x86-64.so.2"
        tags = [t.entry.d_tag for t in elf.get_section_by_name(".dynamic").iter_tags()]
        assert tags.count("DT_NEEDED") == len(needed) and tags[-1] == "DT_NULL"
        types = [s.header.p_type for s in elf.iter_segments()]
        assert types[:2] == ["PT_PHDR", "PT_INTERP"] and "PT_DYNAMIC" in types
        assert "PT_GNU_RELRO" in types and "PT_GNU_STACK" in types


def run_exe(exe: Path, stdin: str = "", env: dict | None = None) -> Result:
    p = subprocess.run([str(exe)], capture_output=True, timeout=30, input=stdin.encode(),
                       env=env, cwd=exe.parent)
    return Result(p.returncode, p.stdout.decode(), p.stderr.decode())


def gcc(tmp: Path, name: str, source: str, *flags: str) -> Path:
    (tmp / f"{name}.c").write_text(source)
    out = tmp / f"{name}.o"
    r = run([require("gcc"), *flags, "-c", str(tmp / f"{name}.c"), "-o", str(out)])
    assert r.status == 0, r.stderr
    return out


# ---- the C library from Toy ---------------------------------------------------------------------

LIBC_CALLS = """\
extern fn printf(fmt: str, ...) -> int;
extern fn puts(s: str) -> int;
extern fn malloc(n: int) -> int;
extern fn free(p: int);
extern fn strlen(p: int) -> int;
extern fn strcpy(dst: int, src: str) -> int;
extern fn getenv(name: str) -> int;
extern fn atoi(p: int) -> int;
export("main") fn main() -> int {
    let n = printf("%d %ld %s %c %x %5d|%-3s|%% %d %d %d %d\\n", -7, 1234567890123, "str",
                   65, 255, 42, "ab", 1, 2, 3, 4);
    print("printf wrote", n);
    puts("puts line");
    let p = malloc(32);
    strcpy(p, "twelve bytes");
    print("strlen", strlen(p));
    free(p);
    let v = getenv("TOYC_TEST_VALUE");
    if v == 0 { print("unset"); } else { print("env", atoi(v) + 1); }
    return 5;
}
"""


def test_libc_calls_from_toy(tmp_path: Path):
    exe = build(tmp_path, LIBC_CALLS, "-lc")
    check_dynamic(exe, ["libc.so.6"])
    line = "-7 1234567890123 str A ff    42|ab |% 1 2 3 4\n"
    expected = f"{line}printf wrote {len(line)}\nputs line\nstrlen 12\n"
    r = run_exe(exe, env={**os.environ, "TOYC_TEST_VALUE": "41"})
    assert (r.stdout, r.stderr, r.status) == (expected + "env 42\n", "", 5)
    r = run_exe(exe, env={k: v for k, v in os.environ.items() if k != "TOYC_TEST_VALUE"})
    assert (r.stdout, r.status) == (expected + "unset\n", 5)
    bound = run_exe(exe, env={**os.environ, "LD_BIND_NOW": "1", "TOYC_TEST_VALUE": "1"})
    assert (bound.stdout, bound.status) == (expected + "env 2\n", 5)


STDIN = """\
extern var stdin: int;
extern fn getchar() -> int;
extern fn feof(f: int) -> int;
extern fn fgets(buf: int, n: int, f: int) -> int;
extern fn malloc(n: int) -> int;
extern fn printf(fmt: str, ...) -> int;
export("main") fn main() -> int {
    let buf = malloc(100);
    let lines = 0;
    while fgets(buf, 100, stdin) != 0 {
        printf("line: %s", buf);
        lines += 1;
        if lines == 2 { break; }
    }
    // (getchar's EOF is a C int, -1 in 32 bits, not a Toy int: feof tells it)
    let count = 0;
    while true {
        getchar();
        if feof(stdin) != 0 { break; }
        count += 1;
    }
    print("rest", count);
    return 0;
}
"""


def test_reads_standard_input(tmp_path: Path):
    exe = build(tmp_path, STDIN, "-lc")
    check_dynamic(exe, ["libc.so.6"])
    r = run_exe(exe, stdin="first\nsecond\nthird line\nx")
    assert (r.stdout, r.status) == ("line: first\nline: second\nrest 12\n", 0)
    # `stdin` is the executable's copy of the C library's variable, which it fills
    rela = run([require("readelf"), "-rW", str(exe)]).stdout
    assert "R_X86_64_COPY" in rela and "stdin" in rela, rela


FILES = """\
extern fn fopen(path: str, mode: str) -> int;
extern fn fputs(s: str, f: int) -> int;
extern fn fprintf(f: int, fmt: str, ...) -> int;
extern fn fclose(f: int) -> int;
extern fn fgets(buf: int, n: int, f: int) -> int;
extern fn malloc(n: int) -> int;
extern fn strlen(p: int) -> int;
export("main") fn main() -> int {
    let f = fopen("out.txt", "w");
    fputs("written by toy\\n", f);
    fprintf(f, "%d squared is %d\\n", 12, 144);
    fclose(f);
    let g = fopen("out.txt", "r");
    let buf = malloc(64);
    fgets(buf, 64, g);
    print("first line has", strlen(buf), "bytes");
    fclose(g);
    if fopen("no/such/dir/x", "r") == 0 { print("missing file: NULL"); }
    return 0;
}
"""


def test_files_with_fopen(tmp_path: Path):
    exe = build(tmp_path, FILES, "-lc")
    r = run_exe(exe)
    assert (r.stdout, r.status) == ("first line has 15 bytes\nmissing file: NULL\n", 0)
    assert (tmp_path / "out.txt").read_text() == "written by toy\n12 squared is 144\n"


# ---- start and end: stdio's order and flushing ---------------------------------------------------

ORDER = """\
extern fn printf(fmt: str, ...) -> int;
extern fn puts(s: str) -> int;
export("main") fn main() -> int {
    printf("c 1\\n");
    print("toy 2");
    printf("c 3 ");
    printf("same line\\n");
    print("toy 4");
    puts("c 5");
    eprint("toy to stderr");
    printf("c 6 without newline, flushed at exit");
    return 0;
}
"""
ORDERED = "c 1\ntoy 2\nc 3 same line\ntoy 4\nc 5\nc 6 without newline, flushed at exit"


def test_output_order_in_a_pipe(tmp_path: Path):
    exe = build(tmp_path, ORDER, "-lc")
    r = run_exe(exe)  # stdout is a pipe: C's stdio buffers it all
    assert (r.stdout, r.stderr, r.status) == (ORDERED, "toy to stderr\n", 0)


def test_output_order_on_a_terminal(tmp_path: Path):
    exe = build(tmp_path, ORDER, "-lc")
    master, slave = pty.openpty()
    p = subprocess.Popen([str(exe)], stdout=slave, stderr=subprocess.DEVNULL, cwd=tmp_path)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=30) == 0
    assert out.decode().replace("\r\n", "\n") == ORDERED


EXITS = """\
extern fn printf(fmt: str, ...) -> int;
extern fn setup();
export("main") fn main() -> int {
    setup();
    printf("c before\\n");
    print("toy line");
    printf("c buffered ");
    if argc() > 1 {
        if parse_int(argv(1)) == 1 { exit(3); }
        let xs = [1, 2];
        print(xs[argc() + 5]);
    }
    return 7;
}
"""
ATEXIT_C = """\
#include <stdio.h>
#include <stdlib.h>
static void bye(void) { printf("atexit ran\\n"); }
void setup(void) { atexit(bye); }
"""


@pytest.mark.parametrize("how, status, err", [
    ("return", 7, ""), ("exit", 3, ""),
    ("panic", 101, "panic: index out of bounds at prog.toy:11:15\n")])
def test_exit_and_panic_flush_stdio(tmp_path: Path, how: str, status: int, err: str):
    obj = gcc(tmp_path, "setup", ATEXIT_C)
    exe = build(tmp_path, EXITS, obj, "-lc")
    check_dynamic(exe, ["libc.so.6"])
    args = {"return": [], "exit": ["1"], "panic": ["2"]}[how]
    p = subprocess.run([str(exe), *args], capture_output=True, timeout=30)
    assert p.stdout.decode() == "c before\ntoy line\nc buffered atexit ran\n"
    assert (p.stderr.decode(), p.returncode) == (err, status)


# ---- other libraries -----------------------------------------------------------------------------

ZLIB = """\
extern fn crc32(crc: int, buf: str, n: int) -> int;
extern fn adler32(a: int, buf: str, n: int) -> int;
extern fn strlen(s: str) -> int;
export("main") fn main() -> int {
    let s = "The quick brown fox jumps over the lazy dog";
    print(crc32(0, s, strlen(s)), adler32(1, s, strlen(s)));
    return 0;
}
"""


def test_zlib_against_python(tmp_path: Path):
    if not Path("/usr/include/zlib.h").exists():
        pytest.skip("zlib's development files are not installed (Debian: zlib1g-dev)")
    exe = build(tmp_path, ZLIB, "-lz")  # -lc comes after, as gcc adds it
    check_dynamic(exe, ["libz.so.1", "libc.so.6"])
    data = b"The quick brown fox jumps over the lazy dog"
    r = run_exe(exe)
    assert (r.stdout, r.status) == (f"{zlib.crc32(data)} {zlib.adler32(data)}\n", 0)


# ---- threads -------------------------------------------------------------------------------------

THREADS = """\
extern fn malloc(n: int) -> int;
extern fn free(p: int);
extern fn snprintf(buf: int, n: int, fmt: str, ...) -> int;
extern fn atoi(p: int) -> int;
extern fn set_errno(v: int);
extern fn get_errno() -> int;
extern fn usleep(us: int) -> int;
threadlocal var hits: int = 7;
fn worker(n: int) -> int {
    set_errno(n);
    let i = 0;
    let sum = 0;
    while i < 3000 {
        let p = malloc(24 + i % 200);
        snprintf(p, 24, "%d", i);
        sum += atoi(p);
        free(p);
        hits += 1;
        i += 1;
    }
    usleep(1000);
    if get_errno() != n { return -1; }
    return sum + hits;
}
export("main") fn main() -> int {
    let a = spawn(worker, 11);
    let b = spawn(worker, 22);
    let c = spawn(worker, 33);
    let d = spawn(worker, 44);
    print(join(a), join(b), join(c), join(d), hits);
    return 0;
}
"""
ERRNO_C = """\
#include <errno.h>
void set_errno(long v) { errno = (int)v; }
long get_errno(void) { return errno; }
"""


def test_threads_share_the_heap_and_not_errno(tmp_path: Path):
    obj = gcc(tmp_path, "errno", ERRNO_C, "-O2")
    exe = build(tmp_path, THREADS, obj, "-lc")
    each = sum(range(3000)) + 3007
    for _ in range(3):
        r = run_exe(exe)
        assert (r.stdout, r.stderr, r.status) == (f"{each} {each} {each} {each} 7\n", "", 0)
    # every thread is the C library's
    assert "pthread_create" in run([require("nm"), "-D", str(exe)]).stdout


# ---- C objects calling the C library -------------------------------------------------------------

C_STDIO = """\
#include <stdio.h>
#include <string.h>
extern long toy_twice(long);
static int (*writer)(const char *) = puts;
long c_report(const char *who) {
    fprintf(stdout, "c got %s (%zu bytes)\\n", who, strlen(who));
    writer("via a pointer to puts");
    return toy_twice(21);
}
"""
C_USER = """\
extern fn c_report(who: str) -> int;
export("toy_twice") fn twice(x: int) -> int { return 2 * x; }
export("main") fn main() -> int {
    print("result", c_report("toy"));
    return 0;
}
"""


@pytest.mark.parametrize("flags", [(), ("-O2", "-fno-pie"), ("-fPIC",), ("-O2", "-fno-plt"),
                                   ("-fPIC", "-Wa,-mrelax-relocations=no")])
def test_c_objects_calling_libc(tmp_path: Path, flags):
    obj = gcc(tmp_path, "report", C_STDIO, *flags)
    exe = build(tmp_path, C_USER, obj, "-lc")
    check_dynamic(exe, ["libc.so.6"])
    r = run_exe(exe)
    assert (r.stdout, r.status) == (
        "c got toy (3 bytes)\nvia a pointer to puts\nresult 42\n", 0), r.stderr


# ---- scripts -------------------------------------------------------------------------------------


def test_libraries_through_scripts(tmp_path: Path):
    """The test's own library, named by a script beside it (GROUP with AS_NEEDED, INPUT and
    -l), the system's libc.so script by -lc."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "shout.c").write_text(
        "#include <ctype.h>\nlong shout(char *s) { long n = 0;\n"
        "  for (; *s; s++, n++) *s = toupper(*s); return n; }\n")
    r = run([require("gcc"), "-shared", "-fPIC", "-Wl,-soname,libshout.so.1", "-o",
             str(tmp_path / "lib" / "libshout.so.1"), str(tmp_path / "shout.c")])
    assert r.status == 0, r.stderr
    (tmp_path / "lib" / "libshout.so").write_text(
        "/* GNU ld script */\nOUTPUT_FORMAT(elf64-x86-64)\n"
        "GROUP ( libshout.so.1 AS_NEEDED ( -lm ) )\n")
    toy = """\
extern fn shout(s: int) -> int;
extern fn strdup(s: str) -> int;
extern fn puts(s: int) -> int;
export("main") fn main() -> int {
    let s = strdup("quiet words");
    print(shout(s));
    puts(s);
    return 0;
}
"""
    exe = build(tmp_path, toy, "-Llib", "-lshout", "-lc")
    env = {**os.environ, "LD_LIBRARY_PATH": str(tmp_path / "lib")}
    check_dynamic(exe, ["libshout.so.1", "libc.so.6"], env)  # (libm: as needed, and not)
    r = run_exe(exe, env=env)
    assert (r.stdout, r.status) == ("11\nQUIET WORDS\n", 0), r.stderr
    if LIBC_SCRIPT.exists():  # the system's script, given by path
        exe = build(tmp_path, toy, "lib/libshout.so", str(LIBC_SCRIPT), out="prog2")
        assert run_exe(exe, env=env).stdout == "11\nQUIET WORDS\n"


# ---- bad input -----------------------------------------------------------------------------------

GOOD = 'export("main") fn main() -> int { print("previous"); return 0; }\n'


@pytest.fixture
def previous(tmp_path: Path) -> bytes:
    """A previous output at the path the failing builds write."""
    exe = build(tmp_path, GOOD, "-lc")
    return exe.read_bytes()


def fails(tmp: Path, previous: bytes, toy: str, *inputs) -> str:
    (tmp / "prog.toy").write_text(toy)
    r = run([*TOYC, "build", "prog.toy", *map(str, inputs), "-o", "prog"], cwd=tmp)
    assert r.status == 1 and r.stdout == "", r
    assert "Traceback" not in r.stderr
    assert (tmp / "prog").read_bytes() == previous, "the previous output changed"
    assert not list(tmp.glob(".prog.*.tmp")), "a temporary file was left"
    return r.stderr


def test_error_missing_library(tmp_path: Path, previous: bytes):
    err = fails(tmp_path, previous, GOOD, "-lc", "-lno_such_library_here")
    assert err.startswith("toyc: error: -lno_such_library_here: no libno_such_library_here.so")


def test_error_symbol_nothing_defines(tmp_path: Path, previous: bytes):
    toy = 'extern fn no_such_function_anywhere() -> int;\n' \
        'export("main") fn main() -> int { return no_such_function_anywhere(); }\n'
    err = fails(tmp_path, previous, toy, "-lc")
    assert "prog.toy:2:42: error: undefined symbol: no_such_function_anywhere" in err, err
    obj = gcc(tmp_path, "u", "long c_u(void);\nlong use(void) { return c_u(); }\n")
    err = fails(tmp_path, previous, 'extern fn use() -> int;\n'
                'export("main") fn main() -> int { return use(); }\n', obj, "-lc")
    assert err.strip() == f"toyc: error: undefined symbol: c_u (referenced by {obj} (.text))", \
        err


def test_error_library_of_another_machine(tmp_path: Path, previous: bytes):
    for lib in ("/usr/aarch64-linux-gnu/lib/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6"):
        if Path(lib).exists():
            break
    else:
        pytest.skip("no AArch64 C library here (Debian: gcc-aarch64-linux-gnu)")
    err = fails(tmp_path, previous, GOOD, lib)
    assert lib in err and "another machine" in err, err


def test_error_broken_script(tmp_path: Path, previous: bytes):
    (tmp_path / "libbroken.so").write_text("/* a script */\nGROUP ( libc.so.6 \n")
    err = fails(tmp_path, previous, GOOD, "-L.", "-lbroken")
    assert err.startswith("toyc: error: ./libbroken.so:2:") or \
        err.startswith("toyc: error: libbroken.so:2:"), err
    (tmp_path / "libbroken.so").write_text("GROUP ( libnowhere.so.9 )\n")
    err = fails(tmp_path, previous, GOOD, "-L.", "-lbroken")
    assert "libnowhere.so.9" in err and ":1:" in err, err


def test_aarch64_links_no_shared_library(tmp_path: Path):
    lib = Path("/usr/aarch64-linux-gnu/lib/libc.so.6")
    if not lib.exists():
        pytest.skip("no AArch64 C library here (Debian: gcc-aarch64-linux-gnu)")
    (tmp_path / "prog.toy").write_text(GOOD)
    r = run([*TOYC, "build", "--arch", "aarch64", "prog.toy", str(lib), "-o", "prog"],
            cwd=tmp_path)
    assert r.status == 1 and "aarch64 does not link shared libraries" in r.stderr, r
    assert not (tmp_path / "prog").exists()


@pytest.fixture(autouse=True)
def _needs_libc_dev():
    if not LIBC_SCRIPT.exists() and not shutil.which("gcc"):
        pytest.skip("the C library's development files are not installed (Debian: libc6-dev)")


def test_wc_sample(tmp_path: Path):
    """samples/libc/wc.toy counts as wc does."""
    sample = Path(__file__).resolve().parent.parent / "samples" / "libc" / "wc.toy"
    r = run([*TOYC, "build", str(sample), "-lc", "-o", str(tmp_path / "wc")])
    assert r.status == 0, r.stderr
    text = "two words\n\tand  three more \n\nend"
    got = run_exe(tmp_path / "wc", stdin=text)
    assert got.stdout.split() == ["4", "6", str(len(text))] and got.status == 0
