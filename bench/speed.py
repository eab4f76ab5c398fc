"""toyc's speed at every entry point, as issue 22's figures E1-E5, and a full build's peak memory.

    python3 bench/speed.py [--size 10000] [--edits 7] [--build-repeat 5] [--starts 21]
                           [--seed 1]

In one run, on bench/gen.py's program of --size functions and its C twin (bench/incremental.py
does the builds, the watch's edits and the `toyc build` updates, and checks the outputs):

* E1: `toyc build -v` after a one-function edit, median of --build-repeat, over tcc's full
  build of the C twin (best of 5): served by the build server (which has read the state once,
  in an untimed build before), and in-process (TOYC_SERVER=0, from the state file);
* E2: `toyc build --full` (in-process) over `gcc -O0`'s full build (one each: they take
  seconds);
* E3: `toyc build --full` of a program of about 40 lines (gen.py's of two functions) over
  `gcc -O0` on its C twin, medians of --starts, served and in-process;
* E4: `toyc --version` over `python3 -c pass`, medians of --starts;
* E5: a one-function edit in a running `toyc watch`, from the save to its line, median of
  --edits, for a same-size edit and for one that adds lines above half of the functions, over
  tcc's full build; and the one that adds lines in a watch with `--strip` (no debug info);
* the peak resident memory of the full build (`toyc build --full`, by wait4's rusage).

Printed: each figure, its goal, and PASS or FAIL. toyc runs as installed: the script beside
this Python, with its bytecode cache written (PYTHONDONTWRITEBYTECODE is dropped: pip compiles
bytecode when it installs), and a build server of the run's own, stopped at the end. Not part
of the test suite; gcc and tcc are needed.
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
    # As installed: bytecode cached (pip compiles it), and the run's own build server.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    figures: dict[str, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="toyc-bench-speed-") as tmp:
        work = Path(tmp)
        (work / "server").mkdir(mode=0o700)
        os.environ["TOYC_SERVER_DIR"] = str(work / "server")
        os.environ["TOYC_SERVER"] = "0"
        try:
            measure(args, toyc, work, figures)
        finally:
            os.environ.pop("TOYC_SERVER", None)
            subprocess.run([*toyc, "server", "stop"], capture_output=True)
        print(f"# {args.size} functions, seed {args.seed}")
    for name in ("E1", "E1 in-process", "E2", "E3", "E3 in-process", "E4", "E5 same size",
                 "E5 adds lines", "E5 adds lines, --strip"):
        ratio, what = figures[name]
        goal = GOALS[name.removesuffix(" in-process").removesuffix(", --strip")]
        print(f"{name:<22} {ratio:>7.2f}x  (goal: at most {goal}x) "
              f"{'PASS' if ratio <= goal else 'FAIL'}  {what}")
    peak, what = figures["peak"]
    print(f"{'peak memory':<22} {peak:>6.0f} MB  (goal: at most {PEAK_GOAL_MB} MB) "
          f"{'PASS' if peak <= PEAK_GOAL_MB else 'FAIL'}  {what}")
    return 0


def measure(args, toyc: list[str], work: Path, figures: dict) -> None:
    inc_args = argparse.Namespace(seed=args.seed, repeat=1, edits=args.edits,
                                  build_repeat=args.build_repeat, timeout=1200,
                                  update_timeout=120)
    res = incremental.bench_size(args.size, inc_args, work / "big")  # (in-process)
    tcc = res.best("tcc")
    inproc = res.median("build")
    figures["E1 in-process"] = (inproc / tcc, f"toyc build after an edit {inproc * 1000:.0f} "
                                              f"ms, tcc full {tcc * 1000:.0f} ms")
    figures["E2"] = (res.best("toyc") / res.best("gcc -O0"),
                     f"toyc full {res.best('toyc'):.1f} s, "
                     f"gcc -O0 {res.best('gcc -O0'):.1f} s")
    for kind, name in (("same-size", "E5 same size"), ("+lines", "E5 adds lines")):
        figures[name] = (res.median(kind) / tcc,
                         f"watch {kind} edit {res.median(kind) * 1000:.1f} ms")
    # The edit that adds lines patches each function's lines in the debug info below it;
    # without debug info it has nothing to patch.
    stripped = incremental.SizeResult(args.size)
    (work / "strip").mkdir()
    incremental.watch_edits(stripped, args.seed, args.edits, work / "strip", 120, 1200,
                            ("--strip",))
    figures["E5 adds lines, --strip"] = (
        stripped.median("+lines") / tcc,
        f"watch --strip +lines edit {stripped.median('+lines') * 1000:.1f} ms")
    big = work / "big"
    peak = peak_mb([*toyc, "build", "--full", "prog.toy", "-o", "peak"], big)
    figures["peak"] = (peak, "toyc build --full, in-process")

    os.environ.pop("TOYC_SERVER")
    # Two untimed builds: the first starts the server (and builds in-process), the second has
    # the server read the state file.
    res.build = []
    incremental.state_builds(res, args.seed, 2, res.edits, big, 120, 1200)
    first = res.build[1].seconds
    res.build = []
    incremental.state_builds(res, args.seed, args.build_repeat, res.edits, big, 120, 1200)
    served = res.median("build")
    figures["E1"] = (served / tcc, f"served toyc build after an edit {served * 1000:.0f} ms "
                                   f"(the server's first, reading the state: "
                                   f"{first * 1000:.0f} ms), tcc full {tcc * 1000:.0f} ms")

    small = work / "small"
    small.mkdir()
    (small / "prog.toy").write_text(gen.generate(2, args.seed, "toy"))
    (small / "prog.c").write_text(gen.generate(2, args.seed, "c"))
    lines = (small / "prog.toy").read_text().count("\n")
    gcc = median_of(["gcc", "-O0", "prog.c", "-o", "c"], small, args.starts)
    toy = median_of([*toyc, "build", "--full", "prog.toy", "-o", "t"], small, args.starts)
    figures["E3"] = (toy / gcc, f"{lines}-line program, served: toyc {toy * 1000:.0f} ms, "
                                f"gcc -O0 {gcc * 1000:.0f} ms")
    os.environ["TOYC_SERVER"] = "0"
    toy = median_of([*toyc, "build", "--full", "prog.toy", "-o", "t"], small, args.starts)
    figures["E3 in-process"] = (toy / gcc, f"{lines}-line program: toyc {toy * 1000:.0f} ms, "
                                           f"gcc -O0 {gcc * 1000:.0f} ms")
    version = median_of([*toyc, "--version"], small, args.starts)
    python = median_of([sys.executable, "-c", "pass"], small, args.starts)
    figures["E4"] = (version / python, f"toyc --version {version * 1000:.0f} ms, "
                                       f"python3 -c pass {python * 1000:.0f} ms")



if __name__ == "__main__":
    sys.exit(main())
