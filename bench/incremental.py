"""Incremental benchmark: one-function edits in `toyc watch` and `toyc build`, against full builds.

    python3 bench/incremental.py [--sizes 1000,10000] [--seed 1] [--repeat N] [--edits N]
                                 [--build-repeat N] [--json FILE] [--keep DIR] [--profile]

For each size N, bench/gen.py writes a Toy program of N functions and the same program in C.
In one run the script measures, by wall clock:

* full builds: `toyc build --full`, `gcc -O0` and `tcc` (best of --repeat runs: 3 for N <= 2000,
  1 above; tcc, which takes milliseconds, best of at least 5), and checks once that the three
  programs print the same text;
* edits seen by a running `toyc watch` (started as a subprocess, which makes its own full
  build first): the time from just before the new source is written until the watch's summary
  line is read from its stdout, median of --edits saves, for three kinds of one-function edit
  in the middle of the file:
    - same-size: one digit of a constant changes (alternating between two versions, so every
      save is a real change); the code keeps its size and is patched in place;
    - growing: statements are added on an existing line, so the function outgrows its atom's
      capacity and moves, but no line number changes;
    - +lines: the same statements on lines of their own, so the function moves and every later
      function's line fields are rewritten;
  each growing save edits one more function, keeping the earlier edits (an atom that has
  moved is the last of its section and could then grow in place), and the summary line must
  say that it moved;
* `toyc build -v` as a new process after a same-size edit (the state file of the previous
  build): wall time, median of --build-repeat runs.

The bytes each update wrote come from the `N bytes written in T ms` part of the summary line,
whose time (the update alone, without the file-system notification and the watch's 5 ms step)
is shown in parentheses. After the watch has stopped, its executable must print what the C
program with the same edits prints (built by tcc, else gcc), and so must the last `toyc build`'s.

The table is followed by the targets (a watch update within a quarter of tcc's full build and
1/300 of toyc's, at most 4096 bytes written by the median update; the most is shown beside it,
since now and then a moved function makes the code segment outgrow its room in the file and
the linker copies the whole segment) with PASS or FAIL. `--json FILE` saves the raw
numbers; `--profile` also runs one update of each kind in this process under cProfile
(`Session.full_build`, then the edit, then `session.update()`) and prints the 25 most expensive
entries by cumulative time. Not part of the test suite; tcc and gcc are optional (skipped with a
note when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402

SUMMARY = re.compile(r"; (\d+) bytes written in ([\d.]+) ms\s*$")
GROW = 24  # statements a growing edit adds: well past the third of slack an atom keeps
KINDS = ("same-size", "growing", "+lines")
SAME_SIZE = 3  # 1000003 and 1000006 divide alike (see toyc.divconst)
TARGET_TCC = 4  # a watch update within 1/4 of tcc's full build of the C twin
TARGET_TOYC = 300  # ... and within 1/300 of toyc's own full build
TARGET_BYTES = 4096


@dataclass
class Update:
    """One incremental update as the benchmark saw it."""

    seconds: float  # wall clock: from just before the write until the line was read
    self_ms: float  # what toyc itself reports for the update
    written: int
    line: str
    edited: int  # the function edited


@dataclass
class SizeResult:
    n: int
    lines: int = 0
    full: dict[str, list[float]] = field(default_factory=dict)  # tool -> seconds of each run
    notes: list[str] = field(default_factory=list)
    watch_first_line: str = ""
    watch: dict[str, list[Update]] = field(default_factory=dict)
    build: list[Update] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    edits: dict = field(default_factory=dict)  # the edits in force after the watch's

    def best(self, tool: str) -> float | None:
        runs = self.full.get(tool)
        return min(runs) if runs else None

    def median(self, kind: str) -> float | None:
        ups = self.build if kind == "build" else self.watch.get(kind, [])
        return statistics.median(u.seconds for u in ups) if ups else None

    def median_self(self, kind: str) -> float | None:
        ups = self.build if kind == "build" else self.watch.get(kind, [])
        return statistics.median(u.self_ms for u in ups) / 1000 if ups else None

    def written(self, kind: str) -> tuple[int, int] | None:
        """Median and most bytes one update of this kind wrote."""
        ups = self.build if kind == "build" else self.watch.get(kind, [])
        if not ups:
            return None
        return int(statistics.median(u.written for u in ups)), max(u.written for u in ups)


class BenchError(Exception):
    pass


# ---- helpers -------------------------------------------------------------------------------


def toyc_command() -> list[str]:
    """The `toyc` script pip installed beside this Python (found first there: a version
    manager's shim on PATH, such as pyenv's, runs a shell script before it, tens of
    milliseconds that are not toyc's)."""
    beside = Path(sys.executable).parent / "toyc"
    if beside.exists():
        return [str(beside)]
    script = shutil.which("toyc")
    return [script] if script else [sys.executable, "-m", "toyc"]


def run(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed (status {p.returncode}):\n{p.stderr[-3000:]}")
    return seconds, p


def program_output(exe: Path, timeout: float = 120) -> str:
    try:
        p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{exe} ran for more than {timeout:.0f} s") from None
    if p.returncode != 0:
        raise BenchError(f"{exe} exited with status {p.returncode}:\n{p.stderr[-2000:]}")
    return p.stdout


def write_source(path: Path, text: str) -> None:
    """Save as an editor that writes a new file and renames it over the old one: the watch
    never sees half a file, and the rename is one event."""
    tmp = path.with_name(f".{path.name}.bench-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def parse_summary(line: str) -> tuple[int, float]:
    m = SUMMARY.search(line)
    if not m:
        raise BenchError(f"not a summary line: {line!r}")
    return int(m.group(1)), float(m.group(2))


def c_compiler() -> list[str] | None:
    """The fastest C compiler at hand, to check what incremental builds produced."""
    if shutil.which("tcc"):
        return ["tcc"]
    if shutil.which("gcc"):
        return ["gcc", "-O0"]
    return None


def expected_output(n: int, seed: int, edits: dict[int, gen.Edit], work: Path,
                    timeout: float) -> str | None:
    """What the C twin of the edited program prints (None without a C compiler)."""
    cc = c_compiler()
    if cc is None:
        return None
    c, exe = work / "check.c", work / "check-c"
    c.write_text(gen.generate(n, seed, "c", edits), encoding="utf-8")
    run([*cc, "-o", str(exe), str(c)], work, timeout)
    return program_output(exe)


def pick_targets(n: int, count: int) -> list[int]:
    """Functions the program runs (so the edits change its output and the check means
    something), nearest to the middle of the file first, f0 excluded."""
    ran = [i for i in gen.executed(n) if i > 0]
    ran.sort(key=lambda i: (abs(i - n // 2), i))
    if len(ran) < count:
        raise BenchError(f"N={n}: only {len(ran)} functions run, {count} edits need more; "
                         "lower --edits or raise N")
    return ran[:count]


# ---- the watch -----------------------------------------------------------------------------


class Watch:
    """`toyc watch` as a subprocess; a thread reads its stdout and timestamps every line."""

    def __init__(self, toy: Path, out: Path, stderr_path: Path, extra: tuple[str, ...] = ()):
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "w")  # a file, so a chatty watch never blocks on a pipe
        try:
            self.proc = subprocess.Popen([*toyc_command(), "watch", *extra, str(toy), "-o",
                                          str(out)],
                                         cwd=toy.parent, stdout=subprocess.PIPE,
                                         stderr=self.stderr, text=True, bufsize=1)
        except OSError:
            self.stderr.close()
            raise
        self.lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line.rstrip("\n")))
        self.lines.put((time.perf_counter(), None))

    def summary(self, timeout: float) -> tuple[float, str, list[str]]:
        """The next summary line and when it was read; lines before it (such as `full build:
        REASON`) are returned too. `not updated` or the watch's end is an error."""
        deadline = time.monotonic() + timeout
        before: list[str] = []
        while True:
            left = deadline - time.monotonic()
            try:
                when, line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise BenchError(f"no line from toyc watch within {timeout:.0f} s"
                                 f"{self._stderr_tail()}") from None
            if line is None:
                raise BenchError(f"toyc watch ended (status {self.proc.poll()})"
                                 f"{self._stderr_tail()}")
            if line.startswith(("not updated", "not built")):
                raise BenchError(f"toyc watch: {line}{self._stderr_tail()}")
            if SUMMARY.search(line):
                return when, line, before
            before.append(line)

    def _stderr_tail(self) -> str:
        self.stderr.flush()
        text = self.stderr_path.read_text(errors="replace")[-2000:]
        return f"\n{text}" if text.strip() else ""

    def stop(self, timeout: float) -> int | None:
        """Ctrl-C, as a user would: the watch saves its state and exits. Killed if it hangs."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            return self.proc.returncode
        finally:
            self.reader.join(5)
            self.stderr.close()


# ---- one size ------------------------------------------------------------------------------


def full_builds(res: SizeResult, seed: int, repeat: int, work: Path, timeout: float) -> None:
    n = res.n
    toy, c = work / "prog.toy", work / "prog.c"
    toy.write_text(gen.generate(n, seed, "toy"), encoding="utf-8")
    c.write_text(gen.generate(n, seed, "c"), encoding="utf-8")
    res.lines = toy.read_text().count("\n")
    tools = {"toyc": [*toyc_command(), "build", "--full", str(toy), "-o"],
             "gcc -O0": ["gcc", "-O0", str(c), "-o"], "tcc": ["tcc", str(c), "-o"]}
    outputs = {}
    for tool, cmd in tools.items():
        if shutil.which(cmd[0]) is None:
            res.notes.append(f"{cmd[0]} not found, skipped"
                             + (" (apt-get install -y tcc)" if tool == "tcc" else ""))
            continue
        # tcc takes milliseconds, where one run is noisy and more runs cost nothing.
        runs = max(repeat, 5) if tool == "tcc" else repeat
        log(f"N={n}: {tool} full build x{runs}")
        tag = tool.replace(" ", "")
        res.full[tool] = []
        for k in range(runs):
            exe = work / f"full-{tag}-{k}"
            seconds, _ = run([*cmd, str(exe)], work, timeout)
            res.full[tool].append(seconds)
        outputs[tool] = program_output(work / f"full-{tag}-0")
    if len(outputs) > 1:
        ref_tool, ref = next(iter(outputs.items()))
        for tool, out in outputs.items():
            if out != ref:
                raise BenchError(f"N={n}: the {tool} and {ref_tool} programs print different "
                                 f"text; see {work}")
        res.checks.append(f"full builds: {', '.join(outputs)} print the same text")


def watch_edits(res: SizeResult, seed: int, edits_per_kind: int, work: Path,
                timeout: float, full_timeout: float,
                extra: tuple[str, ...] = ()) -> dict[int, gen.Edit]:
    """Run the three kinds of edit through one `toyc watch` (with the options `extra`);
    returns the edits in force."""
    n = res.n
    d = work / "watch"
    d.mkdir()
    toy, out = d / "prog.toy", d / "prog"
    edits: dict[int, gen.Edit] = {}
    toy.write_text(gen.generate(n, seed, "toy", edits), encoding="utf-8")
    targets = pick_targets(n, 1 + 2 * edits_per_kind)
    same, grow = targets[0], targets[1:]
    log(f"N={n}: toyc watch (first build)")
    w = Watch(toy, out, work / "watch.stderr", extra)
    try:
        _, res.watch_first_line, _ = w.summary(full_timeout)
        for kind in KINDS:
            res.watch[kind] = []
            log(f"N={n}: watch, {edits_per_kind} {kind} edits")
            for k in range(edits_per_kind):
                if kind == "same-size":
                    target = same
                    # Alternate between two moduli with another last digit whose division
                    # compiles to the same instructions (a multiplier of the same sign, the
                    # same shift): same code size.
                    edits[target] = gen.Edit(modulus=SAME_SIZE if k % 2 == 0 else 0)
                else:
                    target = grow[k] if kind == "growing" else grow[edits_per_kind + k]
                    edits[target] = (gen.Edit(inline=GROW) if kind == "growing"
                                     else gen.Edit(lines=GROW))
                text = gen.generate(n, seed, "toy", edits)  # before the clock starts
                time.sleep(0.1)  # let the previous update's writes settle
                start = time.perf_counter()
                write_source(toy, text)
                when, line, before = w.summary(timeout)
                written, self_ms = parse_summary(line)
                res.watch[kind].append(Update(when - start, self_ms, written, line, target))
                expect = "(in place)" if kind == "same-size" else "(moved"
                if f"updated f{target} {expect}" not in line or before:
                    res.notes.append(f"N={n} {kind} edit of f{target}: unexpected "
                                     f"{' / '.join([*before, line])!r}")
    finally:
        status = w.stop(max(60.0, full_timeout / 4))
    if status != 0:
        raise BenchError(f"N={n}: toyc watch exited with status {status}")
    check_output(res, "watch", out, n, seed, edits, work, timeout)
    return edits


def state_builds(res: SizeResult, seed: int, runs: int, edits: dict[int, gen.Edit],
                 work: Path, timeout: float, full_timeout: float) -> None:
    """`toyc build -v` from the state file the watch saved, after a same-size edit."""
    n = res.n
    d = work / "watch"
    toy, out = d / "prog.toy", d / "prog"
    cmd = [*toyc_command(), "build", "-v", str(toy), "-o", str(out)]
    if not (d / ".prog.toyc-state").exists():
        res.notes.append(f"N={n}: the watch left no state file; one untimed build made it")
        run(cmd, d, full_timeout)
    target = pick_targets(n, 1)[0]
    log(f"N={n}: toyc build -v x{runs} (state file)")
    for k in range(runs):
        # The watch left modulus +1 or +0 depending on the count of its edits; flip it.
        edits[target] = gen.Edit(modulus=0 if edits.get(target, gen.NO_EDIT).modulus else 1)
        write_source(toy, gen.generate(n, seed, "toy", edits))
        seconds, p = run(cmd, d, full_timeout)
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        written, self_ms = parse_summary(line)
        res.build.append(Update(seconds, self_ms, written, line, target))
        if "(full build)" in line or p.stderr.strip():
            res.notes.append(f"N={n} build #{k}: {line!r} {p.stderr.strip()!r}")
    check_output(res, "toyc build", out, n, seed, edits, work, timeout)


def check_output(res: SizeResult, what: str, exe: Path, n: int, seed: int,
                 edits: dict[int, gen.Edit], work: Path, timeout: float) -> None:
    expected = expected_output(n, seed, edits, work, timeout)
    got = program_output(exe)
    if expected is None:
        res.checks.append(f"{what}: output not compared (no C compiler)")
    elif got != expected:
        raise BenchError(f"N={n}: after the {what} updates the program prints other text than "
                         f"the C program with the same edits; see {work}")
    else:
        res.checks.append(f"{what}: after {len(edits)} edited functions, the patched executable "
                          "prints what the edited C program prints")


def bench_size(n: int, args, work: Path) -> SizeResult:
    pick_targets(n, 1 + 2 * args.edits)  # enough functions to edit? Say so before building.
    work.mkdir(parents=True, exist_ok=True)
    res = SizeResult(n)
    repeat = args.repeat or (3 if n <= 2000 else 1)
    full_builds(res, args.seed, repeat, work, args.timeout)
    toyc_full = res.best("toyc") or 60.0
    full_timeout = max(args.timeout, 20 * toyc_full)
    edits = res.edits = watch_edits(res, args.seed, args.edits, work, args.update_timeout,
                                    full_timeout)
    state_builds(res, args.seed, args.build_repeat, edits, work, args.update_timeout,
                 full_timeout)
    return res


# ---- profile -------------------------------------------------------------------------------


def profile(n: int, seed: int, work: Path, top: int = 25) -> None:
    """One update of each kind in this process under cProfile, as the watch makes them (the
    cycle collector off, as `toyc` turns it off)."""
    import cProfile
    import gc
    import pstats

    from toyc.session import Session

    work.mkdir(parents=True, exist_ok=True)
    toy, out = work / "prof.toy", work / "prof"
    edits: dict[int, gen.Edit] = {}
    toy.write_text(gen.generate(n, seed, "toy", edits), encoding="utf-8")
    gc.disable()
    try:
        log(f"N={n}: profile: in-process full build")
        session, summary = Session.full_build(str(toy), str(out))
        print(f"\nN={n} profile: {summary.line()}")
        same, grown, lined = pick_targets(n, 3)
        for kind, target, edit in (("same-size", same, gen.Edit(modulus=SAME_SIZE)),
                                   ("growing", grown, gen.Edit(inline=GROW)),
                                   ("+lines", lined, gen.Edit(lines=GROW))):
            edits[target] = edit
            toy.write_text(gen.generate(n, seed, "toy", edits), encoding="utf-8")
            prof = cProfile.Profile()
            prof.enable()
            summary = session.update()
            prof.disable()
            print(f"\n--- N={n}, {kind} edit of f{target}: {summary.line()}")
            stats = pstats.Stats(prof, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(top)
    finally:
        gc.enable()


# ---- report --------------------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    versions = {}
    for tool, cmd in (("toyc", [*toyc_command(), "--version"]), ("gcc", ["gcc", "--version"]),
                      ("tcc", ["tcc", "-v"])):
        if tool == "toyc" or shutil.which(cmd[0]):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
                versions[tool] = (p.stdout or p.stderr).strip().splitlines()[0]
            except (OSError, subprocess.TimeoutExpired, IndexError):
                versions[tool] = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "load_before": os.getloadavg(),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions}


def secs(s: float | None) -> str:
    return "-" if s is None else f"{s:.3f} s" if s < 10 else f"{s:.1f} s"


def ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1000:.1f} ms" if s < 10 else f"{s * 1000:.0f} ms"


def report(results: list[SizeResult], info: dict, args) -> list[dict]:
    print()
    # Other work on the machine skews every number (tcc's milliseconds most): show the load.
    info["load_after"] = os.getloadavg()
    load = "/".join(f"{x:.2f}" for x in info["load_before"])
    print(f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
          f"Python {info['python']}, {info['platform']}; load average {load} before, "
          + "/".join(f"{x:.2f}" for x in info["load_after"]) + " after")
    print("tools: " + "; ".join(f"{k}: {v}" for k, v in info["versions"].items()))
    print()
    print("Full builds: best wall time. Edits: median wall time from just before the save "
          f"until the summary line (toyc's own update time), {args.edits} saves each;")
    print(f"build: median of {args.build_repeat} `toyc build -v` processes after a same-size "
          "edit. Bytes: median written by one update (same / growing / +lines / build).")
    head = (f"{'functions':>9}  {'toyc full':>9}  {'gcc -O0':>9}  {'tcc':>8} | "
            f"{'watch same-size':>18}  {'watch growing':>18}  {'watch +lines':>18} | "
            f"{'build (state file)':>18} | bytes written")
    print(head)
    print("-" * len(head))
    for r in results:
        cells = []
        for kind in KINDS:
            cells.append(f"{ms(r.median(kind))} ({ms(r.median_self(kind))})")
        written = " / ".join(str((r.written(k) or ("-",))[0]) for k in (*KINDS, "build"))
        print(f"{r.n:>9}  {secs(r.best('toyc')):>9}  {secs(r.best('gcc -O0')):>9}  "
              f"{secs(r.best('tcc')):>8} | {cells[0]:>18}  {cells[1]:>18}  {cells[2]:>18} | "
              f"{ms(r.median('build')) + ' (' + ms(r.median_self('build')) + ')':>18} | "
              f"{written}")
    print()
    verdicts = []
    print("Targets (watch: median wall time per kind of edit)")
    for r in results:
        tcc, toyc = r.best("tcc"), r.best("toyc")
        for kind in KINDS:
            t, b = r.median(kind), r.written(kind)
            rows = []
            if tcc is not None and t is not None:
                rows.append(("<= tcc/4", t <= tcc / TARGET_TCC,
                             f"{ms(t)} = {t / tcc:.2f}x tcc's full build of {ms(tcc)} "
                             f"(limit {ms(tcc / TARGET_TCC)})"))
            if toyc is not None and t is not None:
                rows.append(("<= toyc/300", t <= toyc / TARGET_TOYC,
                             f"{ms(t)} = 1/{toyc / t:.0f} of toyc's full build of "
                             f"{secs(toyc)} (limit {ms(toyc / TARGET_TOYC)})"))
            if b is not None:
                # The median: now and then an update also moves a whole segment that ran out
                # of file room (amortised, as in Zig); the most is shown beside it.
                rows.append((f"<= {TARGET_BYTES} B", b[0] <= TARGET_BYTES,
                             f"median {b[0]} bytes written, most {b[1]}"))
            for name, ok, detail in rows:
                print(f"  N={r.n:<6} {kind:<10} {name:<12} {'PASS' if ok else 'FAIL'}  {detail}")
                verdicts.append({"n": r.n, "kind": kind, "target": name, "pass": ok,
                                 "detail": detail})
    print()
    for r in results:
        print(f"N={r.n} ({r.lines} lines): watch's first build: {r.watch_first_line}")
        for kind in KINDS:
            ups = r.watch.get(kind, [])
            if not ups:
                continue
            # What the update itself does not account for: the write, inotify, the watch's
            # step (toyc/watch.py STEP_MS) and the wake-up.
            rest = statistics.median(u.seconds - u.self_ms / 1000 for u in ups)
            print(f"  watch {kind}: " + ", ".join(f"{u.seconds * 1000:.1f}" for u in ups)
                  + f" ms (median outside the update {ms(rest)}); bytes "
                  + ", ".join(str(u.written) for u in ups)
                  + f"; e.g. {ups[len(ups) // 2].line!r}")
        if r.build:
            print("  toyc build -v: " + ", ".join(f"{u.seconds * 1000:.0f}" for u in r.build)
                  + f" ms; e.g. {r.build[-1].line!r}")
        for tool, runs in r.full.items():
            print(f"  {tool} full builds: " + ", ".join(f"{s:.3f}" for s in runs) + " s")
        for c in r.checks:
            print(f"  check: {c}")
    for note in sorted({x for r in results for x in r.notes}):
        print(f"note: {note}")
    return verdicts


def log(msg: str) -> None:
    print(f"  {msg} ...", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000",
                   help="comma-separated numbers of functions (default 1000,10000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=0,
                   help="full builds per tool (default: 3 for N <= 2000, 1 above; tcc >= 5)")
    p.add_argument("--edits", type=int, default=7, help="saves per kind of watch edit (7)")
    p.add_argument("--build-repeat", type=int, default=3,
                   help="`toyc build -v` runs from the state file (3)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds allowed to one full build (default 600, at least 20x toyc's)")
    p.add_argument("--update-timeout", type=float, default=120,
                   help="seconds allowed to one watch update (default 120)")
    p.add_argument("--json", metavar="FILE", help="save the raw numbers as JSON")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    p.add_argument("--profile", action="store_true",
                   help="also profile one update of each kind in-process (cProfile, top 25)")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: not a list of numbers: {args.sizes!r}")
    if not sizes or min(sizes) < 10:
        p.error("--sizes needs numbers >= 10")
    if args.edits < 1 or args.build_repeat < 1 or args.repeat < 0:
        p.error("--edits and --build-repeat need at least 1, --repeat at least 0")

    info = machine()
    results: list[SizeResult] = []

    def work_in(base: Path) -> int:
        status = 0
        try:
            for n in sizes:
                results.append(bench_size(n, args, base / f"n{n}"))
        except BenchError as e:
            print(f"incremental.py: {e}", file=sys.stderr)
            status = 1
        # The table first (what was measured, even after a failure), then the profiles.
        verdicts = report(results, info, args) if results else []
        if args.json:
            data = {"machine": info, "args": vars(args), "grow_statements": GROW,
                    "complete": status == 0, "sizes": [asdict(r) for r in results],
                    "verdicts": verdicts}
            Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            print(f"raw numbers saved to {args.json}")
        if args.profile and status == 0:
            for n in sizes:
                profile(n, args.seed, base / f"profile-n{n}")
        return status

    if args.keep:
        base = Path(args.keep)
        if base.exists() and any(base.iterdir()):
            p.error(f"--keep {base}: the directory is not empty")
        return work_in(base)
    with tempfile.TemporaryDirectory(prefix="toyc-incr-") as tmp:
        return work_in(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
