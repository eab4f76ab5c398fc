"""Full-build benchmark: toyc against tcc and gcc -O0 on the same generated program.

    python3 bench/full_build.py [--sizes 1000,10000] [--seed 1] [--runs N] [--keep DIR]

For each size N, bench/gen.py writes a Toy program of N functions and the equivalent C program.
The script times, by wall clock, `toyc build --time` (best of 3 runs for N <= 1000, one run
above, unless --runs says otherwise; every run builds into a fresh directory so it is always a
full build), `tcc` and `gcc -O0` compiling the C program (the same number of runs each), checks
that the toyc executable runs and prints exactly what the C program prints, and prints a table
with the seconds and the ratios, then toyc's per-pass breakdown of its best run.

tcc and gcc are optional: a missing one is skipped with a note (`apt-get install -y tcc`).
Note that toyc writes a static executable with no libc, while tcc and gcc here link dynamically
against libc, as they do by default.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402

PASS_LINE = re.compile(r"^\s*([\w.-]+):\s*([\d.]+)\s*ms\s*$")


@dataclass
class Timing:
    best: float | None = None  # seconds; None when the tool is missing
    runs: list[float] = field(default_factory=list)
    passes: dict[str, float] = field(default_factory=dict)  # toyc only, of the best run
    note: str = ""


def toyc_command() -> list[str]:
    script = shutil.which("toyc")
    return [script] if script else [sys.executable, "-m", "toyc"]


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, p


def run_tool(name: str, make_cmd, runs: int, work: Path, parse_passes: bool = False) -> Timing:
    """Run make_cmd(out_dir) `runs` times, each in a fresh directory; keep the best time."""
    t = Timing()
    for k in range(runs):
        out_dir = work / f"{name}-{k}"
        out_dir.mkdir()
        seconds, p = timed(make_cmd(out_dir), work)
        if p.returncode != 0:
            raise SystemExit(f"{name} failed (status {p.returncode}):\n{p.stderr[-3000:]}")
        t.runs.append(seconds)
        if t.best is None or seconds < t.best:
            t.best = seconds
            if parse_passes:
                t.passes = {m.group(1): float(m.group(2)) / 1000
                            for m in map(PASS_LINE.match, p.stderr.splitlines()) if m}
    return t


def run_program(exe: Path) -> str:
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"{exe} exited with status {p.returncode}:\n{p.stderr[-2000:]}")
    return p.stdout


def bench_size(n: int, seed: int, runs: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    toy, c = work / f"bench_{n}.toy", work / f"bench_{n}.c"
    toy.write_text(gen.generate(n, seed, "toy"), encoding="utf-8")
    c.write_text(gen.generate(n, seed, "c"), encoding="utf-8")
    lines = toy.read_text().count("\n")
    exe_name = f"bench_{n}"
    toyc = toyc_command()

    results: dict[str, Timing] = {}
    print(f"  N={n}: toyc build ({runs} run{'s' if runs > 1 else ''}) ...", file=sys.stderr)
    results["toyc"] = run_tool(
        "toyc", lambda d: [*toyc, "build", "--time", str(toy), "-o", str(d / exe_name)],
        runs, work, parse_passes=True)
    toyc_out = run_program(work / "toyc-0" / exe_name)

    reference = None
    for name, cmd in (("tcc", ["tcc"]), ("gcc -O0", ["gcc", "-O0"])):
        if shutil.which(cmd[0]) is None:
            hint = " (apt-get install -y tcc)" if name == "tcc" else ""
            results[name] = Timing(note=f"{cmd[0]} not found, skipped{hint}")
            continue
        print(f"  N={n}: {name} ...", file=sys.stderr)
        tag = name.replace(" ", "")
        results[name] = run_tool(tag, lambda d, cmd=cmd: [*cmd, "-o", str(d / exe_name), str(c)],
                                 runs, work)
        out = run_program(work / f"{tag}-0" / exe_name)
        if reference is None:
            reference = (name, out)
        elif out != reference[1]:
            raise SystemExit(f"N={n}: {name} and {reference[0]} programs disagree")
    if reference is not None:
        if toyc_out != reference[1]:
            raise SystemExit(f"N={n}: the toyc program's output differs from the C program's "
                             f"({reference[0]}); see {work}")
        verified = f"output identical to the C program built by {reference[0]}"
    else:
        if not toyc_out.startswith("total:") and "\ntotal:" not in toyc_out:
            raise SystemExit(f"N={n}: unexpected output from the toyc program:\n{toyc_out}")
        verified = "output not compared (no C compiler)"
    return {"n": n, "lines": lines, "results": results, "verified": verified}


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


def report(rows: list[dict]) -> None:
    print()
    print("Full build, wall clock seconds (best of the runs)")
    header = (f"{'functions':>9}  {'lines':>7}  {'runs':>4}  {'toyc':>8}  {'tcc':>8}  "
              f"{'gcc -O0':>8}  {'toyc/tcc':>8}  {'toyc/gcc':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        r = row["results"]
        t, tcc, gcc = r["toyc"].best, r["tcc"].best, r["gcc -O0"].best
        print(f"{row['n']:>9}  {row['lines']:>7}  {len(r['toyc'].runs):>4}  {fmt(t):>8}  "
              f"{fmt(tcc):>8}  {fmt(gcc):>8}  {ratio(t, tcc):>8}  {ratio(t, gcc):>8}")
    notes = {t.note for row in rows for t in row["results"].values() if t.note}
    for note in sorted(notes):
        print(f"note: {note}")
    print()
    print("toyc build --time, passes of the best run (seconds)")
    names: list[str] = []
    for row in rows:
        names += [p for p in row["results"]["toyc"].passes if p not in names]
    print(f"{'functions':>9}  " + "  ".join(f"{p:>8}" for p in names) + f"  {'sum':>8}")
    for row in rows:
        passes = row["results"]["toyc"].passes
        print(f"{row['n']:>9}  " + "  ".join(f"{fmt(passes.get(p)):>8}" for p in names)
              + f"  {fmt(sum(passes.values())):>8}")
    print()
    for row in rows:
        runs = ", ".join(f"{s:.3f}" for s in row["results"]["toyc"].runs)
        print(f"N={row['n']}: toyc runs [{runs}]; {row['verified']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000",
                   help="comma-separated numbers of functions (default 1000,10000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=0,
                   help="runs per tool (default: 3 for N <= 1000, 1 above)")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: not a list of numbers: {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        p.error("--sizes needs numbers >= 1")

    def work_for(base: Path) -> list[dict]:
        rows = []
        for n in sizes:
            runs = args.runs or (3 if n <= 1000 else 1)
            rows.append(bench_size(n, args.seed, runs, base / f"n{n}"))
        return rows

    if args.keep:
        base = Path(args.keep)
        if base.exists() and any(base.iterdir()):
            p.error(f"--keep {base}: the directory is not empty")
        rows = work_for(base)
    else:
        with tempfile.TemporaryDirectory(prefix="toyc-bench-") as tmp:
            rows = work_for(Path(tmp))
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
