"""toyc's speed at every entry point, as issue 22's figures E1-E5, and a full build's peak memory.

    python3 bench/speed.py [--size 10000] [--edits 7] [--build-repeat 5] [--starts 21]
                           [--seed 1]

In one run, on bench/gen.py's program of --size functions and its C twin (bench/incremental.py
does the builds, the watch's edits and the `toyc build` updates, and checks the outputs):

* E1: `toyc build -v` after a one-function edit (a new process, from the state file), median of
  --build-repeat, over tcc's full build of the C twin (best of 5);
* E2: `toyc build --full` over `gcc -O0`'s full build (one each: they take seconds);
* E3: `toyc build --full` of a program of about 40 lines (gen.py's of two functions) over
  `gcc -O0` on its C twin, medians of --starts;
* E4: `toyc --version` over `python3 -c pass`, medians of --starts;
* E5: a one-function edit in a running `toyc watch`, from the save to its line, median of
  --edits, for a same-size edit and for one that adds lines above half of the functions, over
  tcc's full build;
* the peak resident memory of the full build (`toyc build --full`, by wait4's rusage).

Printed: each figure, its goal, and PASS or FAIL. Not part of the test suite; gcc and tcc are
needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402
import incremental  # noqa: E402

GOALS = {"E1": 2.0, "E2": 1.0, "E3": 2.0, "E4": 3.0, "E5 same size": 0.25,
         "E5 adds lines": 0.25}
PEAK_GOAL_MB = 258  # the "no higher than today"


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return seconds


def median_of(cmd: list[str], cwd: Path, runs: int) -> float:
    return statistics.median(timed(cmd, cwd) for _ in range(runs))


def peak_mb(cmd: list[str], cwd: Path) -> float:
    """The peak resident memory of `cmd`, in MB (its own, by wait4)."""
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode})")
    return usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=10000)
    p.add_argument("--edits", type=int, default=7)
    p.add_argument("--build-repeat", type=int, default=5)
    p.add_argument("--starts", type=int, default=21)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    for tool in ("gcc", "tcc"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: apt-get install {tool})")
    toyc = incremental.toyc_command()
    figures: dict[str, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="toyc-bench-speed-") as tmp:
        work = Path(tmp)
        inc_args = argparse.Namespace(seed=args.seed, repeat=1, edits=args.edits,
                                      build_repeat=args.build_repeat, timeout=1200,
                                      update_timeout=120)
        res = incremental.bench_size(args.size, inc_args, work / "big")
        tcc = res.best("tcc")
        figures["E1"] = (res.median("build") / tcc,
                         f"toyc build after an edit {res.median('build') * 1000:.0f} ms, "
                         f"tcc full {tcc * 1000:.0f} ms")
        figures["E2"] = (res.best("toyc") / res.best("gcc -O0"),
                         f"toyc full {res.best('toyc'):.1f} s, "
                         f"gcc -O0 {res.best('gcc -O0'):.1f} s")
        for kind, name in (("same-size", "E5 same size"), ("+lines", "E5 adds lines")):
            figures[name] = (res.median(kind) / tcc,
                             f"watch {kind} edit {res.median(kind) * 1000:.1f} ms")
        big = work / "big"
        peak = peak_mb([*toyc, "build", "--full", "prog.toy", "-o", "peak"], big)

        small = work / "small"
        small.mkdir()
        (small / "prog.toy").write_text(gen.generate(2, args.seed, "toy"))
        (small / "prog.c").write_text(gen.generate(2, args.seed, "c"))
        lines = (small / "prog.toy").read_text().count("\n")
        toy = median_of([*toyc, "build", "--full", "prog.toy", "-o", "t"], small, args.starts)
        gcc = median_of(["gcc", "-O0", "prog.c", "-o", "c"], small, args.starts)
        figures["E3"] = (toy / gcc, f"{lines}-line program: toyc {toy * 1000:.0f} ms, "
                                    f"gcc -O0 {gcc * 1000:.0f} ms")
        version = median_of([*toyc, "--version"], small, args.starts)
        python = median_of([sys.executable, "-c", "pass"], small, args.starts)
        figures["E4"] = (version / python, f"toyc --version {version * 1000:.0f} ms, "
                                           f"python3 -c pass {python * 1000:.0f} ms")
    print(f"# {args.size} functions ({res.lines} lines), seed {args.seed}")
    for name in ("E1", "E2", "E3", "E4", "E5 same size", "E5 adds lines"):
        ratio, what = figures[name]
        goal = GOALS[name]
        print(f"{name:<14} {ratio:>7.2f}x  (goal: at most {goal}x) "
              f"{'PASS' if ratio <= goal else 'FAIL'}  {what}")
    print(f"{'peak memory':<14} {peak:>6.0f} MB  (goal: at most {PEAK_GOAL_MB} MB) "
          f"{'PASS' if peak <= PEAK_GOAL_MB else 'FAIL'}  toyc build --full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
