"""Generate a Toy program with N functions (or the same program in C) for benchmarks.

    python3 bench/gen.py N [--seed S] [--c] [-o FILE]

Function `f{i}` does a little arithmetic, a short loop, updates two globals, prints one line
when called with x == 3 (so the program prints a few lines and stays fast), and calls
`f{i-1}(x - 1)` while x > 0; call chains are therefore at most four deep. `main` calls about a
hundred of the functions, evenly spread, the last one included, and prints a checksum.

The output depends only on N and the seed, and the program for N is a prefix of the program for
any larger N with the same seed (apart from `main`). `--c` writes the same program in C with
printf; both print exactly the same text, so one can check the other. All values stay far from
overflow, so C's undefined signed overflow never comes into play, and `/` and `%` act alike.

`generate(..., edits={i: Edit(...)})` (used by bench/incremental.py, not by the command line)
writes the program with some functions edited the same way in both languages: a modulus with
another last digit (same code size), extra `calls += 1;` statements on an existing line (the
code grows, no line moves), or extra statements on lines of their own (every later line moves).
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass

MODULUS = 1_000_003
TABLE = 64
MAIN_CALLS = 100


@dataclass(frozen=True)
class Edit:
    """How one function differs from the generated one (see the module docstring)."""

    modulus: int = 0  # added to MODULUS in the loop; 0..6 changes only its last digit
    inline: int = 0  # extra `calls += 1;` statements on the line of the first one
    lines: int = 0  # extra `calls += 1;` statements, one per new line, after that line


NO_EDIT = Edit()


@dataclass(frozen=True)
class Func:
    index: int
    mul: int
    add: int
    step: int
    loops: int


def functions(n: int, seed: int) -> list[Func]:
    rng = random.Random(seed)
    return [Func(i, rng.randrange(2, 1000), rng.randrange(0, 1000), rng.randrange(2, 1000),
                 rng.randrange(1, 5)) for i in range(n)]


def called_from_main(n: int) -> list[int]:
    step = max(1, n // MAIN_CALLS)
    chosen = list(range(step - 1, n, step))[:MAIN_CALLS]
    if chosen[-1] != n - 1:
        chosen.append(n - 1)
    return chosen


def executed(n: int) -> list[int]:
    """The functions the program runs (main's calls and their call chains), in order."""
    ran = {k - d for k in called_from_main(n) for d in range(k % 4 + 1)}
    return sorted(ran)


def _calls_line(e: Edit, indent: str = "    ") -> str:
    """The `calls += 1;` line of a function with edit `e`, and the lines it adds."""
    return (f"{indent}calls += 1;" + " calls += 1;" * e.inline + "\n"
            + f"{indent}calls += 1;\n" * e.lines)


def toy_function(f: Func, e: Edit = NO_EDIT) -> str:
    i = f.index
    if i == 0:
        if e != NO_EDIT:
            raise ValueError("f0 cannot be edited")
        return "fn f0(x: int) -> int {\n    calls += 1;\n    return x + 1;\n}\n"
    return (
        f"fn f{i}(x: int) -> int {{\n"
        f"    let acc = x * {f.mul} + {f.add};\n"
        f"    let j = 0;\n"
        f"    while j < {f.loops} {{\n"
        f"        acc = (acc * {f.step} + j) % {MODULUS + e.modulus};\n"
        f"        j += 1;\n"
        f"    }}\n"
        f"{_calls_line(e)}"
        f"    table[{i % TABLE}] += acc % 100;\n"
        f"    if x == 3 {{\n"
        f'        print("f{i}: x =", x, "acc =", acc);\n'
        f"    }}\n"
        f"    if x > 0 {{\n"
        f"        return acc + f{i - 1}(x - 1);\n"
        f"    }}\n"
        f"    return acc;\n"
        f"}}\n")


def c_function(f: Func, e: Edit = NO_EDIT) -> str:
    i = f.index
    if i == 0:
        if e != NO_EDIT:
            raise ValueError("f0 cannot be edited")
        return "long long f0(long long x) {\n    calls += 1;\n    return x + 1;\n}\n"
    return (
        f"long long f{i}(long long x) {{\n"
        f"    long long acc = x * {f.mul} + {f.add};\n"
        f"    long long j = 0;\n"
        f"    while (j < {f.loops}) {{\n"
        f"        acc = (acc * {f.step} + j) % {MODULUS + e.modulus};\n"
        f"        j += 1;\n"
        f"    }}\n"
        f"{_calls_line(e)}"
        f"    table[{i % TABLE}] += acc % 100;\n"
        f"    if (x == 3) {{\n"
        f'        printf("f{i}: x = %lld acc = %lld\\n", x, acc);\n'
        f"    }}\n"
        f"    if (x > 0) {{\n"
        f"        return acc + f{i - 1}(x - 1);\n"
        f"    }}\n"
        f"    return acc;\n"
        f"}}\n")


def generate(n: int, seed: int = 1, lang: str = "toy",
             edits: dict[int, Edit] | None = None) -> str:
    """The program for N functions in "toy" or "c", with function i edited by edits[i]."""
    if n < 1:
        raise ValueError("N must be at least 1")
    edits = edits or {}
    funcs = functions(n, seed)
    calls = called_from_main(n)
    if lang == "toy":
        out = [f"// Generated by bench/gen.py: {n} functions, seed {seed}.\n",
               "var calls: int = 0;\n", f"var table: [int; {TABLE}];\n\n"]
        out += [toy_function(f, edits.get(f.index, NO_EDIT)) + "\n" for f in funcs]
        out.append("fn main() -> int {\n    let total = 0;\n")
        out += [f"    total += f{k}({k % 4});\n" for k in calls]
        out.append('    print("total:", total, "calls:", calls);\n'
                   f'    print("table:", table[0], table[{TABLE - 1}]);\n'
                   "    return 0;\n}\n")
    elif lang == "c":
        out = [f"// Generated by bench/gen.py --c: {n} functions, seed {seed}.\n",
               "#include <stdio.h>\n\n", "static long long calls = 0;\n",
               f"static long long table[{TABLE}];\n\n"]
        out += [c_function(f, edits.get(f.index, NO_EDIT)) + "\n" for f in funcs]
        out.append("int main(void) {\n    long long total = 0;\n")
        out += [f"    total += f{k}({k % 4});\n" for k in calls]
        out.append('    printf("total: %lld calls: %lld\\n", total, calls);\n'
                   f'    printf("table: %lld %lld\\n", table[0], table[{TABLE - 1}]);\n'
                   "    return 0;\n}\n")
    else:
        raise ValueError(f"unknown language {lang!r}")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, metavar="N", help="number of functions")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--c", action="store_true", help="emit the equivalent C program")
    p.add_argument("-o", dest="output", help="write to this file (default: stdout)")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("N must be at least 1")
    text = generate(args.n, args.seed, "c" if args.c else "toy")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
