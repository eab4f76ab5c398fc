"""Hostile source: whatever `toyc build` is given, it answers with status 0 or 1, never a
traceback or a hang, a `file:line:col` diagnostic for every rejection, and nothing at the output
path after one. The inputs and the worker that builds them are `tests/hostile.py`; the default
suite runs a short campaign, `python3 tests/hostile.py --count N` a long one (the README gives
its figures), and TOYC_HOSTILE_INPUTS=N makes this test run N."""

from __future__ import annotations

import os
from pathlib import Path

import hostile
import pytest

from conftest import TOYC, run

SHORT_CAMPAIGN = 400


def test_mutated_and_extreme_sources(tmp_path: Path):
    count = int(os.environ.get("TOYC_HOSTILE_INPUTS") or SHORT_CAMPAIGN)
    inputs = hostile.mutants(count, seed=1) + hostile.extremes()
    reports, failures = hostile.campaign(inputs, tmp_path)
    assert len(reports) == len(inputs)
    assert not failures, "\n".join(failures[:10])
    # the campaign means something only if it both builds and rejects many inputs
    built = sum(1 for r in reports if r["status"] == 0)
    assert built > count // 10 and len(reports) - built > count // 2


@pytest.mark.parametrize("make", ["directory", "missing", "fifo"])
def test_a_source_that_is_not_a_readable_file(tmp_path: Path, make: str):
    src = tmp_path / "p.toy"
    if make == "directory":
        src.mkdir()
    elif make == "fifo":
        os.mkfifo(src)
    r = run([*TOYC, "build", "p.toy", "-o", "out"], cwd=tmp_path, timeout=30)
    assert r.status == 1 and r.stderr.startswith("toyc: error: ") and "p.toy" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_a_string_literal_past_the_limit(tmp_path: Path):
    (tmp_path / "s.toy").write_bytes(b'const S: str = "' + b"a" * (17 << 20) + b'";\n'
                                     b"fn main() { print(len(S)); }\n")
    r = run([*TOYC, "build", "s.toy", "-o", "out"], cwd=tmp_path, timeout=60)
    assert r.status == 1 and not (tmp_path / "out").exists()
    first = r.stderr.splitlines()[0]
    assert first == ("s.toy:1:16: error: string literal of 17825792 bytes is too long "
                     "(the limit is 16 MiB)"), first
    assert len(r.stderr) < 2000  # the line is shown around the column, not whole
