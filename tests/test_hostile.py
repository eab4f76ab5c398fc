"""Hostile source: whatever `toyc build` is given, it answers with status 0 or 1, never a
traceback or a hang, a `file:line:col` diagnostic for every rejection, and nothing at the output
path after one. The inputs and the worker that builds them are `tests/hostile.py`; the default
suite runs a short campaign, `python3 tests/hostile.py --count N` a long one (the README gives
its figures), and TOYC_HOSTILE_INPUTS=N makes this test run N. Hypothesis also writes programs
from the grammar's productions (TOYC_HOSTILE_EXAMPLES=N of them; 60 by default)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import hostile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# ---- programs from the grammar, by hypothesis ------------------------------------------------

NAMES = st.sampled_from(["a", "b", "x", "main", "f", "print", "len", "int", "T", "_"])
LITERALS = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(
    ["true", "false", '"s"', '"\\n\\t\\\\"', '"\\q"', "0x7fffffffffffffff", "0b101", "1_000"]))
TYPES = st.sampled_from(["int", "bool", "str", "[int; 3]", "[bool; 0]", "[int; -1]", "void"])


def _expressions():
    return st.recursive(
        st.one_of(LITERALS, NAMES),
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(["-", "~", "not "]), inner).map("".join),
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%", "<<", ">>", "&", "|",
                                              "^", "==", "!=", "<", "<=", "and", "or"]),
                      inner).map(" ".join),
            st.tuples(NAMES, st.lists(inner, max_size=3))
            .map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.lists(inner, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
            inner.map(lambda x: f"({x})")),
        max_leaves=12)


EXPRS = _expressions()


def _statements():
    simple = st.one_of(
        st.tuples(NAMES, EXPRS).map(lambda t: f"let {t[0]} = {t[1]};"),
        st.tuples(NAMES, st.sampled_from(["=", "+=", "<<="]), EXPRS).map(" ".join).map(
            lambda s: s + ";"),
        EXPRS.map(lambda e: f"{e};"),
        EXPRS.map(lambda e: f"return {e};"),
        st.sampled_from(["break;", "continue;", "return;", ";"]))
    return st.recursive(simple, lambda inner: st.one_of(
        st.tuples(EXPRS, st.lists(inner, max_size=3)).map(
            lambda t: f"if {t[0]} {{ {' '.join(t[1])} }}"),
        st.tuples(EXPRS, st.lists(inner, max_size=3)).map(
            lambda t: f"while {t[0]} {{ {' '.join(t[1])} }}"),
        st.lists(inner, max_size=3).map(lambda b: "{ " + " ".join(b) + " }")), max_leaves=8)


DECLS = st.one_of(
    st.tuples(NAMES, st.lists(st.tuples(NAMES, TYPES), max_size=7), st.one_of(st.just(""), TYPES),
              st.lists(_statements(), max_size=4)).map(
        lambda t: f"fn {t[0]}({', '.join(f'{n}: {ty}' for n, ty in t[1])})"
                  f"{' -> ' + t[2] if t[2] else ''} {{\n    " + "\n    ".join(t[3]) + "\n}"),
    st.tuples(st.sampled_from(["var", "const", "threadlocal var", "export var", "extern fn"]),
              NAMES, TYPES, EXPRS).map(lambda t: f"{t[0]} {t[1]}: {t[2]} = {t[3]};"))


@settings(max_examples=int(os.environ.get("TOYC_HOSTILE_EXAMPLES") or 60), deadline=None,
          derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(decls=st.lists(DECLS, min_size=1, max_size=5), main=st.booleans())
def test_programs_from_the_grammar(decls, main):
    """Programs from the grammar's productions, valid or not (most are not): each answered
    with status 0 or 1 and diagnostics, in the worker, like the campaign's inputs."""
    text = "\n".join(decls) + ("\nfn main() { }\n" if main else "\n")
    with tempfile.TemporaryDirectory() as tmp:
        reports, failures = hostile.campaign([("g", text.encode())], Path(tmp))
    assert not failures, "\n".join(failures)
