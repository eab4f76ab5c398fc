"""Toy objects (`toyc build -c`) whose final link has a C library, and whose does not.

An object finds C's `pthread_create`/`pthread_join` and `exit` through weak references
(undefined WEAK symbols, 0 when the final link has no C library): linked by gcc, `spawn` makes
pthreads, each with its own thread-locals (Toy's and C's), and Toy's `exit` and panics run C's
exit handling (atexit handlers, stdio flushed); linked with `-nostdlib` and a `_start` of its
own, the same object uses raw clone threads and exit_group, as toyc's executables do.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

from conftest import TOYC, require, run

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the x86_64 runtime's objects, linked by this gcc")

MODES = pytest.mark.parametrize("mode", [[], ["-no-pie"]], ids=["pie", "no-pie"])

TLS_TOY = """\
threadlocal var hits: int = 7;
fn worker(n: int) -> int {
    let i = 0;
    while i < n { hits += 1; i += 1; }
    return hits;
}
export("main") fn main() -> int {
    let a = spawn(worker, 1000);
    let b = spawn(worker, 500);
    print("tls", join(a), join(b), hits);
    return 0;
}
"""

C_TLS_TOY = """\
extern fn bump_c(n: int) -> int;
fn worker(n: int) -> int { bump_c(n); return bump_c(n); }
export fn run() -> int {
    let a = spawn(worker, 1);
    let b = spawn(worker, 10);
    print("c tls", join(a), join(b), bump_c(0));
    return 0;
}
"""
C_TLS_C = """\
__thread long long counter = 100;
long long run(void);
long long bump_c(long long n) { counter += n; return counter; }
int main(void) { run(); return (int)counter; }
"""

EXIT_TOY = """\
export fn toy_exit(n: int) -> int {
    print("toy exiting", n);
    exit(n);
    return 0;
}
export fn divide(a: int, b: int) -> int { return a / b; }
"""
EXIT_C = """\
#include <stdio.h>
#include <stdlib.h>
long long toy_exit(long long);
long long divide(long long, long long);
static void bye(void) { printf("c atexit\\n"); }
int main(int argc, char **argv) {
    atexit(bye);
    printf("c before\\n");
    if (argc > 1)
        divide(1, 0);
    toy_exit(3);
    return 0;
}
"""

# No C library: a _start of its own, which calls Toy's `run` and exits with its result.
NOLIBC_TOY = """\
var zero: int = 0;
fn sq(n: int) -> int { return n * n; }
export fn run() -> int {
    let a = spawn(sq, 7);
    let b = spawn(sq, 9);
    print("threads", join(a), join(b));
    if join(spawn(sq, 2)) == 4 { exit(3); }
    return 0;
}
export fn crash() -> int { return 1 / zero; }
"""
START_S = """\
    .globl _start
_start:
    xor %ebp, %ebp
    and $-16, %rsp
    call {entry}
    mov %eax, %edi
    mov $231, %eax
    syscall
    .section .note.GNU-stack,"",@progbits
"""


def toy_object(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.toy").write_text(text)
    r = run([*TOYC, "build", "-c", f"{name}.toy"], cwd=tmp_path)
    assert r.status == 0 and r.stderr == "", r.stderr
    return tmp_path / f"{name}.o"


def gcc(tmp_path: Path, *args: str) -> Path:
    cc = run([require("gcc"), *args, "-o", "prog"], cwd=tmp_path)
    assert cc.status == 0, cc.stderr
    return tmp_path / "prog"


def run_to_file(exe: Path, *args: str) -> tuple[int, str, str]:
    """Run `exe` with stdout to a file (C's stdout fully buffered); status, stdout, stderr."""
    out = exe.parent / "out.txt"
    with out.open("wb") as f:
        p = subprocess.run([str(exe), *args], stdout=f, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, out.read_text(), p.stderr.decode()


@MODES
def test_spawned_threads_have_their_own_thread_locals(tmp_path: Path, mode: list[str]):
    obj = toy_object(tmp_path, "t", TLS_TOY)
    nm = {tuple(line.split()) for line in run([require("nm"), str(obj)]).stdout.splitlines()}
    # weak references: the object links without a C library too
    assert {("w", "pthread_create"), ("w", "pthread_join"), ("w", "exit")} <= nm
    lint = run([require("eu-elflint"), "--gnu-ld", str(obj)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout + lint.stderr
    exe = gcc(tmp_path, *mode, "t.o")
    for _ in range(3):
        r = run([str(exe)])
        assert (r.status, r.stdout, r.stderr) == (0, "tls 1007 507 7\n", "")


@MODES
def test_c_thread_locals_in_toy_threads(tmp_path: Path, mode: list[str]):
    toy_object(tmp_path, "ct", C_TLS_TOY)
    (tmp_path / "main.c").write_text(C_TLS_C)
    exe = gcc(tmp_path, *mode, "main.c", "ct.o")
    r = run([str(exe)])
    assert (r.status, r.stdout, r.stderr) == (100, "c tls 102 120 100\n", "")


@MODES
def test_exit_runs_c_exit_handling(tmp_path: Path, mode: list[str]):
    toy_object(tmp_path, "ex", EXIT_TOY)
    (tmp_path / "main.c").write_text(EXIT_C)
    exe = gcc(tmp_path, *mode, "main.c", "ex.o")
    # Toy's print is written at once; C's buffered line and its atexit handler's at exit
    assert run_to_file(exe) == (3, "toy exiting 3\nc before\nc atexit\n", "")


@MODES
def test_panic_keeps_c_output(tmp_path: Path, mode: list[str]):
    toy_object(tmp_path, "ex", EXIT_TOY)
    (tmp_path / "main.c").write_text(EXIT_C)
    exe = gcc(tmp_path, *mode, "main.c", "ex.o")
    status, out, err = run_to_file(exe, "panic")
    assert (status, out) == (101, "c before\nc atexit\n")
    assert err.startswith("panic: division by zero at ex.toy:6:"), err


@pytest.mark.parametrize("entry,want", [("run", (3, "threads 49 81\n", "")),
                                        ("crash", (101, "", "panic: division by zero"))])
def test_object_without_c_library(tmp_path: Path, entry: str, want: tuple):
    """The same helpers with no C library: the weak references are 0, so raw clone threads
    and exit_group."""
    toy_object(tmp_path, "n", NOLIBC_TOY)
    (tmp_path / "start.s").write_text(START_S.format(entry=entry))
    exe = gcc(tmp_path, "-nostdlib", "-static", "n.o", "start.s")
    r = run([str(exe)])
    assert (r.status, r.stdout, r.stderr[:len(want[2])]) == want
