"""Linking the C library: one-function updates with and without `-lc`, and start-up time.

    python3 bench/link_libc.py [--sizes 1000,10000] [--runs N] [--updates N] [--starts N]
                               [--seed S]

For each size N, bench/gen.py's Toy program of N functions is built twice: alone (a static
executable), and calling the C library (`printf`, `strlen`) with `-lc` (a dynamically linked
one). In one run, by wall clock, the two taking turns so that the machine's drift hits both:

* `toyc build -v` as a new process after a same-size edit of one function in the middle of the
  file (from the previous build's state file): median of --runs;
* the same edit as `toyc watch` makes it, an update of the session kept in memory
  (`Session.update`, in this process, with the garbage collector as the watch has it: what
  the full build made frozen, a collection between updates): median of --updates (they take
  milliseconds, and their spread is wide);
* a check that each updated program prints what a clean build of its source prints.

Then start-up: a program that prints one line, run --starts times each, one after the other:
Toy with `-lc` (printf), Toy without (print), C from `gcc -O0` (printf, dynamically linked,
as gcc links by default) and from tcc when installed. Printed: the medians, and the ratios the
issue asks for (updates with -lc over without: at most 1.1x; start-up against gcc's). Not part
of the test suite; gcc is needed.
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gen  # noqa: E402
from link_c import SUMMARY, run, toyc  # noqa: E402

from toyc.inputs import LinkArgs  # noqa: E402
from toyc.session import Session  # noqa: E402

LIBC_SIDE = """
extern fn printf(format: str, ...) -> int;
extern fn strlen(s: str) -> int;
fn use_libc() { printf("libc: %d\\n", strlen("four")); }
"""
HELLO_TOY_LIBC = 'extern fn printf(f: str, ...) -> int;\n' \
    'export("main") fn main() -> int { printf("hello\\n"); return 0; }\n'
HELLO_TOY = 'fn main() -> int { print("hello"); return 0; }\n'
HELLO_C = '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }\n'


def toy_source(n: int, seed: int, libc: bool, edit: int | None) -> str:
    edits = {} if edit is None else {n // 2: gen.Edit(modulus=edit)}
    text = gen.generate(n, seed, "toy", edits)
    if libc:
        text = text.replace("    return 0;\n}\n", "    use_libc();\n    return 0;\n}\n")
        text += LIBC_SIDE
    return text


def inputs(libc: bool) -> list[str]:
    return ["-lc"] if libc else []


def cli_update(n: int, seed: int, libc: bool, k: int, work: Path) -> float:
    (work / "prog.toy").write_text(toy_source(n, seed, libc, 1 + k % 2))
    seconds, out = run([*toyc(), "build", "-v", "prog.toy", *inputs(libc), "-o", "prog"], work)
    if "full build" in out or not SUMMARY.search(out):
        sys.exit(f"N={n}: an edit made a full build:\n{out}")
    return seconds


def check(n: int, libc: bool, work: Path) -> None:
    patched = subprocess.run([str(work / "prog")], capture_output=True, text=True).stdout
    run([*toyc(), "build", "--full", "prog.toy", *inputs(libc), "-o", "check"], work)
    expected = subprocess.run([str(work / "check")], capture_output=True, text=True).stdout
    if patched != expected or ("libc: 4" in expected) != libc:
        sys.exit(f"N={n}: the updated program prints something else than a clean build")


def startup(cmd: list[str], runs: int) -> float:
    """Median seconds to start `cmd` and see it exit."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--updates", type=int, default=61)
    p.add_argument("--starts", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if not shutil.which("gcc"):
        sys.exit("gcc is needed")
    print(f"# {platform.machine()}, Python {platform.python_version()}")
    print(f"{'N':>6} {'-lc':>4} {'toyc build':>11} {'watch update':>13}")
    with tempfile.TemporaryDirectory(prefix="toyc-bench-libc-") as tmp:
        work = {False: Path(tmp) / "alone", True: Path(tmp) / "libc"}
        for w in work.values():
            w.mkdir()
        for n in (int(s) for s in args.sizes.split(",")):
            cli: dict[bool, list[float]] = {False: [], True: []}
            mem: dict[bool, list[float]] = {False: [], True: []}
            sessions = {}
            for c in (False, True):
                (work[c] / "prog.toy").write_text(toy_source(n, args.seed, c, None))
                run([*toyc(), "build", "--full", "prog.toy", *inputs(c), "-o", "prog"], work[c])
            for k in range(args.runs):
                for c in (False, True):
                    cli[c].append(cli_update(n, args.seed, c, k, work[c]))
            for c in (False, True):
                check(n, c, work[c])
                src, out = str(work[c] / "mem.toy"), str(work[c] / "mem")
                Path(src).write_text(toy_source(n, args.seed, c, None))
                link = LinkArgs([("lib", "c")]) if c else None
                sessions[c], _ = Session.full_build(src, out, link=link)
            # the two versions of each source, made before anything is timed
            texts = {c: [toy_source(n, args.seed, c, 1 + k) for k in range(2)]
                     for c in (False, True)}
            gc.freeze()
            for k in range(args.updates):
                for c in (False, True) if k % 2 else (True, False):
                    text = texts[c][k % 2]
                    gc.collect()
                    t0 = time.perf_counter()
                    summary = sessions[c].update(text)
                    mem[c].append(time.perf_counter() - t0)
                    if summary.full:
                        sys.exit(f"N={n}: the in-memory update was a full build")
            for c in (False, True):
                print(f"{n:>6} {'yes' if c else 'no':>4} "
                      f"{statistics.median(cli[c]) * 1000:>9.0f}ms "
                      f"{statistics.median(mem[c]) * 1000:>11.1f}ms", flush=True)
            for what, times in (("toyc build", cli), ("watch update", mem)):
                ratio = statistics.median(times[True]) / statistics.median(times[False])
                print(f"{n:>6}  {what} with -lc / without: {ratio:.2f}x (goal: at most 1.1x) "
                      f"{'PASS' if ratio <= 1.1 else 'FAIL'}")

        s = Path(tmp) / "start"
        s.mkdir()
        (s / "hello_libc.toy").write_text(HELLO_TOY_LIBC)
        (s / "hello.toy").write_text(HELLO_TOY)
        (s / "hello.c").write_text(HELLO_C)
        run([*toyc(), "build", "hello_libc.toy", "-lc", "-o", "toy_libc"], s)
        run([*toyc(), "build", "hello.toy", "-o", "toy_static"], s)
        run(["gcc", "-O0", "hello.c", "-o", "gcc_hello"], s)
        programs = {"toyc -lc (dynamic)": "toy_libc", "toyc (static, no libc)": "toy_static",
                    "gcc -O0 (dynamic)": "gcc_hello"}
        if shutil.which("tcc"):
            run(["tcc", "hello.c", "-o", "tcc_hello"], s)
            programs["tcc (dynamic)"] = "tcc_hello"
        medians = {}
        for _ in range(2):  # twice, interleaved: the second round counts
            for name, exe in programs.items():
                medians[name] = startup([str(s / exe)], args.starts)
        gcc = medians["gcc -O0 (dynamic)"]
        print(f"\nhello: start, print a line, exit (median of {args.starts} runs)")
        for name, seconds in medians.items():
            print(f"  {name:<24} {seconds * 1e6:>8.0f} us  ({seconds / gcc:.2f}x gcc's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
