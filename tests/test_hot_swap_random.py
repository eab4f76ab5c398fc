"""Random edit sequences swapped into a running program: it must compute what a clean build does.

The program loops forever printing `tick I compute(I)`; `compute` combines three functions
whose bodies the test edits at random: new constants (same size), much longer bodies (they
move, leaving trampolines), shorter ones, calls to new helper functions, helpers removed once
nothing calls them, new string literals (through `len`), a changed `const`. After every update
the watch's line must say the update was swapped into the same pid, and from some line on, the
next lines of the running program must all equal what a clean build of the same source prints
for the same I (the clean build, run as `clean I`, prints `compute(I)` once); so must the
patched output file. When the watch ends, the file's symbols must be a clean build's.

By default three fixed seeds of ten edits each run; TOYC_HOT_SWAP_SEQUENCES=N runs N more
seeds (new ones every run, printed on failure), and `-m slow` runs 30.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_hot_swap import symbols

from conftest import TOYC, run
from watching import Watcher, line_matching, save_in_place

STEPS = 10
SLOW_SEQUENCES = 30


@dataclass
class Model:
    k: int = 3
    bodies: list[str] = field(default_factory=lambda: ["return x + 1;", "return x * 2;",
                                                       "return x - 5;"])
    helpers: dict[str, str] = field(default_factory=dict)  # name -> body
    next_helper: int = 0

    def source(self) -> str:
        helpers = "".join(f"fn {n}(x: int) -> int {{\n    {b}\n}}\n\n"
                          for n, b in self.helpers.items())
        fns = "".join(f"fn f{i}(x: int) -> int {{\n    {b}\n}}\n\n"
                      for i, b in enumerate(self.bodies))
        return (f"const K: int = {self.k};\n\n{helpers}{fns}"
                "fn compute(i: int) -> int {\n    return f0(i) + f1(i) * 3 + f2(i) * 7 + K;\n}\n\n"
                "fn main() -> int {\n    if argc() > 1 {\n"
                "        print(compute(parse_int(argv(1))));\n        return 0;\n    }\n"
                "    let i: int = 0;\n    while true {\n        print(\"tick\", i, compute(i));\n"
                "        sleep_ms(2);\n        i += 1;\n    }\n    return 0;\n}\n")

    def used_helpers(self) -> set[str]:
        return {n for b in [*self.bodies, *self.helpers.values()] for n in self.helpers
                if f"{n}(" in b}


def edit(m: Model, rng: random.Random) -> str:
    """Apply one random edit to the model; what it was."""
    i = rng.randrange(len(m.bodies))
    kind = rng.choice(["const", "same", "grow", "shrink", "call", "remove", "string", "k"])
    if kind == "grow":
        n = rng.choice([20, 60, 150])
        m.bodies[i] = "\n    ".join(["let t: int = x;",
                                     *[f"t = t + {rng.randrange(1, 9)};" for _ in range(n)],
                                     "return t;"])
    elif kind == "shrink":
        m.bodies[i] = f"return x + {rng.randrange(100)};"
    elif kind == "call":
        name = f"g{m.next_helper}"
        m.next_helper += 1
        m.helpers[name] = f"return x * {rng.randrange(2, 9)} + {rng.randrange(100)};"
        m.bodies[i] = f"return {name}(x) - {rng.randrange(10)};"
    elif kind == "remove":
        unused = sorted(set(m.helpers) - m.used_helpers())
        if unused:
            del m.helpers[rng.choice(unused)]
        else:
            m.bodies[i] = f"return x * {rng.randrange(2, 9)};"
    elif kind == "string":
        text = "".join(rng.choice("abcxyz ") for _ in range(rng.randrange(1, 30)))
        m.bodies[i] = f'return x + len("{text}");'
    elif kind == "k":
        m.k = rng.randrange(1000)
    else:  # a new constant in place, often the same size
        m.bodies[i] = re.sub(r"(?<![\w])\d+", lambda _: str(rng.randrange(10, 99)), m.bodies[i],
                             count=1)
    return f"{kind} f{i}"


def clean_value(tmp_path: Path, i: int, cache: dict) -> str:
    if i not in cache:
        r = run([str(tmp_path / "clean" / "prog"), str(i)])
        assert r.status == 0, r.stderr
        cache[i] = r.stdout.strip()
    return cache[i]


def sequence(tmp_path: Path, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    m = Model()
    src = tmp_path / "src.toy"
    src.write_text(m.source())
    clean = tmp_path / "clean"  # the same file name, so that the symbols can be compared
    clean.mkdir()
    w = Watcher(tmp_path, "--run")
    try:
        first = line_matching(w, r"(built|not built).*$").group(0)
        pid = re.search(r"started pid (\d+)$", first).group(1)
        w.wait_watching()
        history = []
        for _ in range(steps):
            history.append(edit(m, rng))
            text = m.source()
            save_in_place(src, text)
            (clean / "src.toy").write_text(text)
            r = run([*TOYC, "build", "--full", "src.toy", "-o", "prog"], cwd=clean)
            assert r.status == 0, r.stderr
            line = line_matching(w, r"(updated|added|removed|nothing|not |full).*$").group(0)
            where = f"seed {seed}, steps {history}:\n{text}"
            if not line.startswith("nothing changed"):
                assert line.endswith(f"swapped into pid {pid}"), f"{line}\n{where}"
            cache: dict[int, str] = {}
            for _ in range(200):  # the first lines may come from before the swap
                i, v = line_matching(w, r"tick (\d+) (-?\d+)$").groups()
                if v == clean_value(tmp_path, int(i), cache):
                    break
            else:
                pytest.fail(f"the running program never computed the new values; {where}")
            for _ in range(5):  # and from then on, every line
                i, v = line_matching(w, r"tick (\d+) (-?\d+)$").groups()
                assert v == clean_value(tmp_path, int(i), cache), f"tick {i}: {v}; {where}"
                patched = run([str(tmp_path / "prog"), i]).stdout.strip()
                assert patched == v, f"the output file says {patched} for {i}; {where}"
        assert os.path.exists(f"/proc/{pid}")
        # Ending the watch frees what was kept for the program: a clean build's symbols.
        w.stop()
        assert w.proc.returncode == 0, w.drain_stderr()
        assert symbols(tmp_path / "prog") == symbols(clean / "prog"), f"seed {seed}, {history}"
    finally:
        w.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_edits_swapped_into_a_running_program(tmp_path: Path, seed: int):
    sequence(tmp_path, seed, STEPS)


@pytest.mark.slow
def test_random_edits_swapped_into_a_running_program_slow(tmp_path: Path, request):
    markexpr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if not os.environ.get("TOYC_HOT_SWAP_SEQUENCES") and "slow" not in markexpr:
        pytest.skip("set TOYC_HOT_SWAP_SEQUENCES=N or select -m slow to run more sequences")
    count = int(os.environ.get("TOYC_HOT_SWAP_SEQUENCES") or SLOW_SEQUENCES)
    base = random.randrange(1 << 30)
    for k in range(count):
        work = tmp_path / str(k)
        work.mkdir()
        sequence(work, base + k, STEPS * 2)
