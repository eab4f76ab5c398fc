"""How fast the code toyc generates runs, against gcc -O0, gcc -O2 and tcc on the same
algorithms.

    python3 bench/runtime.py [--runs N] [--only NAME,...]

Each program in bench/programs/ is written in Toy (NAME.toy) and in C (NAME.c), printing the
same line: recursive fib(32), a sieve of the primes below 10,000,000 over a global array, the
longest Collatz chain below 1,000,000, 10 queens, an integer-only Mandelbrot set, and a
byte-by-byte string scan. fib and queens take a few milliseconds, about as long as starting a
process, so they are run ROUNDS times within one run (their first argument). For each
program, in one run: the build time of each compiler, then the median wall time of N runs of
each executable (default 11; the four take turns, so that a slow moment of the machine is
shared), the ratios of toyc's time to the others', and a check that all four print the same.
Needs gcc and tcc (`apt-get install tcc`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = ["fib", "sieve", "collatz", "queens", "mandelbrot", "scan"]
ROUNDS = {"fib": 20, "queens": 50}  # repetitions of the short ones, within one run


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return took, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--only", default="", help="comma-separated program names")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or PROGRAMS
    for tool in ("gcc", "tcc"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    compilers = {
        "toyc": lambda src, out: [sys.executable, "-m", "toyc", "build", "--full",
                                  str(src.with_suffix(".toy")), "-o", str(out)],
        "gcc -O0": lambda src, out: ["gcc", "-O0", str(src.with_suffix(".c")), "-o", str(out)],
        "gcc -O2": lambda src, out: ["gcc", "-O2", str(src.with_suffix(".c")), "-o", str(out)],
        "tcc": lambda src, out: ["tcc", str(src.with_suffix(".c")), "-o", str(out)],
    }
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"run time: median of {args.runs} runs; ratios are toyc's time over the other's\n")
    header = (f"{'program':<11} {'toyc':>8} {'gcc -O0':>8} {'gcc -O2':>8} {'tcc':>8} | "
              f"{'/gcc-O0':>7} {'/gcc-O2':>7} {'/tcc':>6} | build: toyc, gcc -O0, gcc -O2, tcc")
    print(header)
    print("-" * len(header))
    ratios = {"gcc -O0": [], "gcc -O2": [], "tcc": []}
    with tempfile.TemporaryDirectory(prefix="toyc-runtime-") as tmp:
        work = Path(tmp)
        for name in names:
            src = HERE / "programs" / name
            builds, runs, outputs = {}, {}, {}
            exes = {}
            for label, command in compilers.items():
                exes[label] = work / f"{name}-{label.replace(' ', '')}"
                builds[label], _ = timed(command(src, exes[label]), work)
                runs[label] = []
            rounds = [str(ROUNDS[name])] if name in ROUNDS else []
            # the four in turn, so that a slow moment of the machine is shared among them
            for _ in range(args.runs):
                for label, exe in exes.items():
                    took, outputs[label] = timed([str(exe), *rounds], work)
                    runs[label].append(took)
            times = {label: statistics.median(r) for label, r in runs.items()}
            if len(set(outputs.values())) != 1:
                sys.exit(f"{name}: the programs disagree: {outputs}")
            r = {k: times["toyc"] / times[k] for k in ratios}
            for k in ratios:
                ratios[k].append(r[k])
            label = f"{name} x{ROUNDS[name]}" if name in ROUNDS else name
            print(f"{label:<11} {times['toyc']:>7.3f}s {times['gcc -O0']:>7.3f}s "
                  f"{times['gcc -O2']:>7.3f}s {times['tcc']:>7.3f}s | {r['gcc -O0']:>6.2f}x "
                  f"{r['gcc -O2']:>6.2f}x {r['tcc']:>5.2f}x | "
                  + ", ".join(f"{builds[k]:.2f}s" for k in compilers))
    print(f"\nmedian ratio over the set: {statistics.median(ratios['gcc -O0']):.2f}x gcc -O0, "
          f"{statistics.median(ratios['gcc -O2']):.2f}x gcc -O2, "
          f"{statistics.median(ratios['tcc']):.2f}x tcc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
