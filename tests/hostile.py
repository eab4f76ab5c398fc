"""Hostile source for `toyc build`: the inputs, and a worker that builds many of them fast.

Inputs come from three places: mutations of every program under samples/ and tests/programs/
(tokens deleted, duplicated, swapped or inserted, the text truncated, bytes overwritten with
random ones, invalid UTF-8 spliced in), random programs from the generator of the random edit
tests (valid ones, then mutated the same way), and a fixed list of extremes (a 1 MB line,
10,000-deep nesting, literals past 64 bits, an empty file, a directory, NUL bytes).

Building each input in its own `toyc` process would cost a quarter of a second of Python start-up
per input, so a worker process (`python3 tests/hostile.py --worker DIR`) builds the inputs of a
directory one after the other through `toyc.cli.main`, exactly as the command line does, each
under a time limit, and reports one JSON line per input. The harness checks each report:
status 0 or 1, no traceback or internal error, every rejection with `file:line:col: error:`
diagnostics, nothing left at the output path after a rejection. If the worker itself dies (a
crash of the interpreter), the input it was building is the one reported.

`python3 tests/hostile.py --count N [--seed S]` runs a campaign of N mutated inputs from the
command line and prints its figures (the long campaign of the README).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIME_LIMIT = 20  # seconds for one input (the largest extremes take a few)
TOKEN = re.compile(rb'\s+|//[^\n]*|"(?:\\.|[^"\\\n])*"|0[xX][0-9a-fA-F_]+|\w+|.', re.S)
POOL = [b"fn", b"let", b"var", b"const", b"if", b"else", b"while", b"return", b"break",
        b"continue", b"true", b"false", b"export", b"extern", b"threadlocal", b"int", b"bool",
        b"str", b"{", b"}", b"(", b")", b"[", b"]", b";", b",", b":", b"->", b"=", b"+=", b"==",
        b"<", b"<<", b">>", b"&", b"|", b"^", b"~", b"and", b"or", b"not", b"%", b"/", b"-",
        b"*", b"0", b"1", b"-9223372036854775808", b"9223372036854775808", b"0x", b'"',
        b'"\\q"', b"x", b"main", b"print", b"len", b"spawn", b"join", b"\xff", b"\xc3", b"\0",
        b"\t", b"\r\n", b"\n"]
DIAGNOSTIC = re.compile(r"^(.+?):(\d+):(\d+): error: \S")


class TimeLimit(BaseException):
    """An input took longer than TIME_LIMIT (a BaseException: nothing in toyc catches it)."""


# ---- inputs ----------------------------------------------------------------------------------


def seeds() -> list[bytes]:
    paths = sorted((ROOT / "samples").glob("*.toy")) + \
        sorted((ROOT / "tests" / "programs").rglob("*.toy"))
    return [p.read_bytes() for p in paths]


def generated(rnd: random.Random) -> bytes:
    """A valid random program from the random edit tests' generator."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_incremental_random as gen

    return gen.render(gen.new_program(rnd)).encode()


def mutate(text: bytes, rnd: random.Random) -> bytes:
    tokens = TOKEN.findall(text) or [b""]
    for _ in range(rnd.choice((1, 1, 1, 2, 3, 8))):
        how = rnd.randrange(8)
        i = rnd.randrange(len(tokens))
        if how == 0:
            del tokens[i]
        elif how == 1:
            tokens.insert(i, tokens[i])
        elif how == 2 and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif how == 3:
            tokens.insert(i, rnd.choice(POOL))
        elif how == 4:
            tokens = tokens[:i]
        elif how == 5:
            raw = bytearray(b"".join(tokens))
            for _ in range(rnd.randint(1, 4)):
                if raw:
                    raw[rnd.randrange(len(raw))] = rnd.randrange(256)
            tokens = [bytes(raw)] if raw else [b""]
        elif how == 6:
            tokens.insert(i, rnd.choice([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80"]))
        else:
            tokens.insert(i, b" ".join(rnd.choice(POOL) for _ in range(rnd.randint(2, 6))))
        if not tokens:
            tokens = [b""]
    return b"".join(tokens)


def mutants(count: int, seed: int) -> list[tuple[str, bytes]]:
    rnd = random.Random(seed)
    sources = seeds()
    out = []
    for n in range(count):
        base = rnd.choice(sources) if n % 4 else generated(rnd)
        out.append((f"m{n:05d}", mutate(base, rnd) if n % 8 != 4 else base))
    return out


def extremes() -> list[tuple[str, bytes]]:
    deep = 10_000
    return [
        ("empty", b""),
        ("only_comment", b"// nothing here\n"),
        ("long_line", b"fn main() { let x = 0; " + b"x = x + 1; " * 100_000 + b"print(x); }\n"),
        ("long_sum", b"fn main() { print(" + b"1 + " * 100_000 + b"1); }\n"),
        ("deep_parens", b"fn main() { print(" + b"(" * deep + b"1" + b")" * deep + b"); }\n"),
        ("deep_blocks", b"fn main() " + b"{ " * deep + b"}" * deep + b"\n"),
        ("deep_ifs", b"fn main() { " + b"if true { " * deep + b"}" * deep + b" }\n"),
        ("deep_unary", b"fn main() { print(" + b"-" * deep + b"1); }\n"),
        ("deep_calls", b"fn f(x: int) -> int { return x; }\nfn main() { print("
         + b"f(" * deep + b"1" + b")" * deep + b"); }\n"),
        ("unclosed", b"fn main() { " + b"{ " * deep + b"\n"),
        ("big_int", b"fn main() { print(" + b"9" * 100 + b"); }\n"),
        ("int_past_64", b"fn main() { print(18446744073709551616); }\n"),
        ("hex_past_64", b"const X: int = 0x1" + b"0" * 16 + b";\nfn main() { print(X); }\n"),
        ("huge_array", b"var a: [int; 1" + b"0" * 30 + b"];\nfn main() { }\n"),
        ("huge_string", b'const S: str = "' + b"a" * 1_000_000 + b'";\nfn main() { }\n'),
        ("huge_literal", b"fn main() { let a = [" + b"7, " * 50_000 + b"7]; print(a[1]); }\n"),
        ("bad_utf8", b'fn main() { print("\xff\xfe"); }\n'),
        ("nul", b"fn main() {\0}\n"),
        ("binary", bytes(random.Random(7).randrange(256) for _ in range(4096))),
        ("crlf", b"fn main() {\r\n    print(1);\r\n}\r\n"),
        ("bom", b"\xef\xbb\xbffn main() { print(1); }\n"),
        ("many_functions", b"".join(b"fn f%d() { }\n" % i for i in range(5000))
         + b"fn main() { }\n"),
        ("many_errors", b"fn main() {\n" + b"    x;\n" * 5000 + b"}\n"),
    ]


# ---- the worker ------------------------------------------------------------------------------


def _alarm(signum, frame):
    raise TimeLimit


def worker(directory: Path) -> None:
    """Build every `*.toy` in `directory` (names in order), one JSON report line each."""
    from toyc import cli

    signal.signal(signal.SIGALRM, _alarm)
    for src in sorted(directory.glob("*.toy")):
        out = directory / (src.stem + ".out")
        err = io.StringIO()
        start = time.perf_counter()
        signal.alarm(TIME_LIMIT)
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(err):
                try:
                    status = cli.main(["build", src.name, "-o", out.name])
                except SystemExit as e:
                    status = e.code
        except TimeLimit:
            status = "timeout"
        finally:
            signal.alarm(0)
        report = {"input": src.name, "status": status, "stderr": err.getvalue(),
                  "seconds": time.perf_counter() - start, "output": out.exists()}
        print(json.dumps(report), flush=True)
        if out.exists():
            out.unlink()
        for state in directory.glob(f".{out.name}.toyc-state"):
            state.unlink()


def _run_worker(directory: Path) -> list[dict]:
    """Reports for every input in `directory`, restarting the worker after an input that
    killed it (which is reported as such)."""
    names = sorted(p.name for p in directory.glob("*.toy"))
    reports: list[dict] = []
    while len(reports) < len(names):
        rest = names[len(reports):]
        todo = Path(tempfile.mkdtemp(dir=directory))
        for name in rest:
            os.rename(directory / name, todo / name)
        p = subprocess.run([sys.executable, str(Path(__file__)), "--worker", str(todo)],
                           capture_output=True, text=True, cwd=todo)
        got = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        reports += got
        if len(got) < len(rest):  # the worker died building the next one
            reports.append({"input": rest[len(got)], "status": f"worker died ({p.returncode})",
                            "stderr": p.stderr[-2000:], "seconds": 0, "output": False})
        for name in rest:
            if (todo / name).exists():
                os.rename(todo / name, directory / name)
    return reports


# ---- the harness -----------------------------------------------------------------------------


def problems(report: dict, source: bytes) -> list[str]:
    """What is wrong with one input's report."""
    status, stderr = report["status"], report["stderr"]
    out = []
    if status not in (0, 1):
        out.append(f"status {status}")
    if "Traceback" in stderr or "internal error" in stderr:
        out.append("a traceback or internal error")
    if status == 1:
        if report["output"]:
            out.append("a rejected input left a file at the output path")
        lines = stderr.splitlines()
        if not lines:
            out.append("rejected without a message")
        elif not any(DIAGNOSTIC.match(line) for line in lines) and \
                not lines[0].startswith("toyc: error: "):
            out.append(f"a rejection without file:line:col: {lines[0][:100]!r}")
    if status == 0 and not report["output"]:
        out.append("success without an output file")
    return out


def campaign(inputs: list[tuple[str, bytes]], workdir: Path) -> tuple[list[dict], list[str]]:
    """Build every input; the reports and the failures (input, what, its source's start)."""
    by_name = {}
    for name, data in inputs:
        (workdir / f"{name}.toy").write_bytes(data)
        by_name[f"{name}.toy"] = data
    reports = _run_worker(workdir)
    failures = []
    for r in reports:
        for what in problems(r, by_name[r["input"]]):
            failures.append(f"{r['input']}: {what}\n  stderr: {r['stderr'][:300]!r}\n"
                            f"  source: {by_name[r['input']][:200]!r}")
    return reports, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=2000, help="mutated inputs (default 2000)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="toyc-hostile-") as tmp:
        inputs = mutants(args.count, args.seed) + extremes()
        reports, failures = campaign(inputs, Path(tmp))
    accepted = sum(1 for r in reports if r["status"] == 0)
    slowest = max(reports, key=lambda r: r["seconds"])
    print(f"{len(reports)} inputs in {time.perf_counter() - start:.0f} s: {accepted} built, "
          f"{len(reports) - accepted - len(failures)} rejected with diagnostics, "
          f"{len(failures)} failures; slowest {slowest['input']} {slowest['seconds']:.1f} s")
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
