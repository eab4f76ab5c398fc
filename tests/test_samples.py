"""Every sample under samples/ builds and does what it says; hello.toy is LANGUAGE.md's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ARCHES, ROOT, SAMPLES, build, run, runner

FIZZBUZZ = [("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0
             else str(i)) for i in range(1, 31)]

EXPECTED = {
    "hello": ([], ["hello, toy", "sum of squares: 14 calls: 3"], [], 0),
    "fizzbuzz": ([], FIZZBUZZ, [], 0),
    "primes": ([], ["primes below 100000 = 9592", "2", "3", "5", "7", "11", "13", "17", "19",
                    "23", "29"], [], 0),
    "fib": (["25"], ["fib 25 = 75025"], [], 0),
    "strings": ([], ["name\tvalue", 'she said "hi"\\ 14', "true true true",
                     "bytes of h\u00e9: 3 3", "'l' in hello world: 3",
                     "first byte of A: 65 nul inside: 3"], ["98", "97"], 0),
    "panic": ([], [f"table {i} = {10 * (i + 1)}" for i in range(4)],
              ["panic: index out of bounds at panic.toy:5:12"], 101),
    "ticker": (["3"], ["hello 1 4", "hello 2 13", "hello 3 40"], [], 0),
    "threadlocal": ([], [*(f"thread {k} counted {(k + 1) * 1000}" for k in range(4)),
                         "main's count: 0"], [], 0),
    "threads": ([], [*(f"thread {k} summed {sum(range(k * 10**6, (k + 1) * 10**6))}"
                       for k in range(4)), f"total {sum(range(4 * 10**6))}"], [], 0),
}


def test_every_sample_is_checked():
    assert sorted(p.stem for p in SAMPLES.glob("*.toy")) == sorted(EXPECTED)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str, arch: str, tmp_path: Path):
    args, stdout, stderr, status = EXPECTED[name]
    exe = tmp_path / name
    built = build(f"{name}.toy", exe, cwd=SAMPLES, arch=arch)
    assert built.status == 0 and built.stderr == "", built.stderr
    result = run([*runner(arch), str(exe), *args])
    assert result.stdout.splitlines() == stdout
    assert result.stderr.splitlines() == stderr
    assert result.status == status


def test_fib_default_argument(tmp_path: Path):
    exe = tmp_path / "fib"
    assert build("fib.toy", exe, cwd=SAMPLES).status == 0
    assert run([str(exe)]).stdout == "fib 20 = 6765\n"


LANGUAGE = ROOT.parent / "shared" / "LANGUAGE.md"


@pytest.mark.skipif(not LANGUAGE.exists(), reason="shared/LANGUAGE.md is not beside the project")
def test_hello_is_languages_first_program():
    text = LANGUAGE.read_text()
    first = re.search(r"```toy\n(// samples/hello\.toy\n.*?)```", text, re.S).group(1)
    assert (SAMPLES / "hello.toy").read_text() == first
