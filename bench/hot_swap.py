"""Hot-swap benchmark: from saving a file to the running program's first line of new output.

    python3 bench/hot_swap.py [--sizes 100,1000] [--edits N] [--rebuilds N] [--seed S] [--libc]

For each size N the program is bench/gen.py's N functions, plus `probe(i)`, which returns
`i * K`, and a `main` that loops forever printing `i probe(i)` and sleeping 1 ms. In one run the
script measures, by wall clock:

* toyc: `toyc watch prog.toy --run` runs the program; each edit changes K (the code keeps its
  size: an in-place swap) and the time is taken from just before the new source is written to
  the first line the program prints with the new K. This includes the file-watch delay
  (inotify, and the watch's step of `toyc.watch.STEP_MS`), the update, the swap into the
  running process, and up to one loop iteration (about 1 ms). Median of --edits saves.
  Every summary line must say the update was swapped into the same pid.
* the usual loop without hot swap, for tcc and `gcc -O0` on the same program in C: write the
  source, compile it, start the program, read its first line. Median of --rebuilds runs.

With --libc the Toy program is linked with the C library (`toyc watch prog.toy -lc --run`: a
dynamically linked program, whose `probe` calls `labs`).

The table shows the medians and the ratios against toyc; the target (README) is at most 100 ms
for toyc. Not part of the test suite; tcc and gcc are optional (skipped with a note).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gen  # noqa: E402

from toyc.watch import STEP_MS  # noqa: E402

TARGET_MS = 100


def toy_program(n: int, seed: int, k: int, libc: bool = False) -> str:
    funcs = "".join(gen.toy_function(f) + "\n" for f in gen.functions(n, seed))
    extern, value = ("extern fn labs(x: int) -> int;\n", f"labs(i * -{k})") if libc \
        else ("", f"i * {k}")
    return (f"{extern}var calls: int = 0;\nvar table: [int; {gen.TABLE}];\n\n{funcs}"
            f"fn probe(i: int) -> int {{\n    return {value};\n}}\n\n"
            "fn main() -> int {\n    let i = 0;\n    while true {\n"
            "        print(i, probe(i));\n        sleep_ms(1);\n        i += 1;\n    }\n"
            "    return 0;\n}\n")


def c_program(n: int, seed: int, k: int) -> str:
    funcs = "".join(gen.c_function(f) + "\n" for f in gen.functions(n, seed))
    return ("#include <stdio.h>\n#include <time.h>\n\nstatic long long calls = 0;\n"
            f"static long long table[{gen.TABLE}];\n\n{funcs}"
            f"long long probe(long long i) {{\n    return i * {k};\n}}\n\n"
            "int main(void) {\n    struct timespec ms = {0, 1000000};\n"
            "    for (long long i = 0;; i++) {\n"
            '        printf("%lld %lld\\n", i, probe(i));\n        fflush(stdout);\n'
            "        nanosleep(&ms, 0);\n    }\n}\n")


class Lines:
    """A process's stdout, line by line, read by a thread."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def until(self, accept, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.q.get(timeout=max(deadline - time.monotonic(), 0.001))
            if line is None:
                raise RuntimeError(f"the process ended (status {self.proc.wait()})")
            if accept(line):
                return line


def new_value(k: int):
    def accept(line: str) -> bool:
        parts = line.split()
        return len(parts) == 2 and parts[0].isdigit() and int(parts[1]) == int(parts[0]) * k
    return accept


def write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def bench_toyc(n: int, seed: int, edits: int, work: Path, libc: bool = False) -> list[float]:
    src = work / "prog.toy"
    write(src, toy_program(n, seed, 1001, libc))
    proc = subprocess.Popen([sys.executable, "-m", "toyc", "watch", str(src), "-o",
                             str(work / "prog"), "--run", *(["-lc"] if libc else [])],
                            cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    lines = Lines(proc)
    try:
        started = lines.until(lambda s: "started pid" in s, timeout=600)
        pid = started.rsplit(" ", 1)[1]
        lines.until(new_value(1001))
        time.sleep(0.5)  # the watch warms up after its first build
        times = []
        for e in range(edits):
            k = 1002 + e % 2  # alternate, so every save is a real change of the same size
            text = toy_program(n, seed, k, libc)
            t0 = time.perf_counter()
            write(src, text)
            summaries = []

            # A big file's save can reach the watch as two events: the second one finds
            # "nothing changed"; only the other summaries count.
            def summary(line: str) -> bool:
                return line.startswith(("updated", "not ", "full"))

            def seen(line: str, k=k, summaries=summaries) -> bool:
                if summary(line):
                    summaries.append(line)
                return new_value(k)(line)

            lines.until(seen)
            times.append(time.perf_counter() - t0)
            if not summaries:
                summaries.append(lines.until(summary))
            if not summaries[-1].endswith(f"swapped into pid {pid}"):
                raise RuntimeError(f"not swapped: {summaries[-1]}")
            time.sleep(0.05)
        return times
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def bench_c(cc: list[str], n: int, seed: int, runs: int, work: Path) -> list[float]:
    src, exe = work / "prog.c", work / "cprog"
    times = []
    for r in range(runs):
        k = 1002 + r % 2
        t0 = time.perf_counter()
        write(src, c_program(n, seed, k))
        subprocess.run([*cc, "-o", str(exe), str(src)], check=True)
        proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True, bufsize=1)
        try:
            Lines(proc).until(new_value(k))
            times.append(time.perf_counter() - t0)
        finally:
            proc.kill()
            proc.wait()
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000", help="numbers of functions (default 100,1000)")
    p.add_argument("--edits", type=int, default=30, help="saves per size for toyc (default 30)")
    p.add_argument("--rebuilds", type=int, default=10, help="rebuilds per compiler (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--libc", action="store_true", help="link the Toy program with -lc")
    args = p.parse_args(argv)
    compilers = {"tcc": ["tcc"], "gcc -O0": ["gcc", "-O0"]}
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="toyc-bench-") as tmp:
            work = Path(tmp)
            toyc_ms = statistics.median(
                bench_toyc(n, args.seed, args.edits, work, args.libc)) * 1000
            others = {}
            for name, cc in compilers.items():
                if shutil.which(cc[0]) is None:
                    print(f"note: {cc[0]} not found, skipped", file=sys.stderr)
                    continue
                others[name] = statistics.median(
                    bench_c(cc, n, args.seed, args.rebuilds, work)) * 1000
        rows.append((n, toyc_ms, others))
    print(f"save -> first line of new output in the running program (median; watch step "
          f"{STEP_MS} ms; probe loop sleeps 1 ms{'; Toy linked with -lc' if args.libc else ''})")
    print(f"{'functions':>9}  {'toyc swap':>10}  {'tcc rebuild+run':>16}  "
          f"{'gcc -O0 rebuild+run':>20}  target")
    for n, toyc_ms, others in rows:
        cells = []
        for name in compilers:
            v = others.get(name)
            cells.append("-" if v is None else f"{v:.1f} ms ({v / toyc_ms:.1f}x)")
        verdict = "PASS" if toyc_ms <= TARGET_MS else "FAIL"
        print(f"{n:>9}  {toyc_ms:>7.1f} ms  {cells[0]:>16}  {cells[1]:>20}  "
              f"<= {TARGET_MS} ms {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
