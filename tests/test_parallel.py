"""Full builds on every core (`toyc/parallel.py`, and `driver.lower_all`'s workers): the output
must be byte for byte what one process makes, and a program with errors must get exactly the
messages one process gives.

The random edit tests' generator makes the programs; the number of declarations a worker must
have is lowered so that these small programs are compiled by 2 and 3 workers.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import test_incremental_random as gen

from conftest import require, run
from toyc import driver
from toyc.link_args import split_link_args
from toyc.session import Session
from toyc.source import CompileError, UserError


@pytest.fixture
def small_parts(monkeypatch):
    """Workers for programs of a few declarations; and a record of the builds they made (not
    given up for one process)."""
    monkeypatch.setattr(driver, "PARALLEL_CHUNKS", 2)
    monkeypatch.setattr(driver, "LOWER_BATCH", 2)
    used = []
    from toyc import parallel

    real = parallel.compile_program

    def spy(*args):
        made = real(*args)
        used.append(args[4])
        return made

    monkeypatch.setattr(parallel, "compile_program", spy)
    return used


def build_with(jobs: str, monkeypatch, src: Path, out: Path, **options) -> bytes:
    monkeypatch.setenv("TOYC_JOBS", jobs)
    Session.full_build(str(src), str(out), **options)
    return out.read_bytes()


@pytest.mark.parametrize("seed", range(8))
def test_the_same_bytes_on_every_core(tmp_path: Path, monkeypatch, small_parts, seed: int):
    rnd = random.Random(seed)
    program = gen.new_program(rnd)
    for _ in range(seed % 4):
        program, _ = gen.apply_edits(program, rnd.sample(gen.EDITS, 2), rnd)
    src = tmp_path / "p.toy"
    src.write_text(gen.render(program))
    options = {"debug": seed % 2 == 0, "relocatable": seed == 5}
    one = build_with("1", monkeypatch, src, tmp_path / "one", **options)
    assert small_parts == []
    for jobs in ("2", "3"):
        assert build_with(jobs, monkeypatch, src, tmp_path / jobs, **options) == one, jobs
    assert small_parts == [2, 3]
    if seed != 5:
        assert run([str(tmp_path / "3")]).status == run([str(tmp_path / "one")]).status


@pytest.mark.parametrize("seed", range(10))
def test_the_same_messages_on_every_core(tmp_path: Path, monkeypatch, small_parts, seed: int):
    """Syntax errors, type errors, unknown names and duplicates anywhere in the file."""
    rnd = random.Random(100 + seed)
    text, what = gen.broken(gen.render(gen.new_program(rnd)), rnd)
    src = tmp_path / "p.toy"
    src.write_text(text)
    said = []
    for jobs in ("1", "3"):
        with pytest.raises(CompileError) as e:
            build_with(jobs, monkeypatch, src, tmp_path / "p")
        said.append(e.value.render())
    assert said[0] == said[1], what
    assert not (tmp_path / "p").exists()


def test_externs_and_the_c_library_on_every_core(tmp_path: Path, monkeypatch, small_parts):
    """Uses of externs, which the workers find in their bodies: linked with -lc, and an error
    (in one process's order) without it."""
    require("gcc")
    fns = "".join(f"fn f{i}(x: int) -> int {{\n    return labs(x - {i}) + {i};\n}}\n"
                  for i in range(12))
    text = ("extern fn labs(x: int) -> int;\n" + fns +
            "fn main() -> int {\n    print(f3(1), f11(2));\n    return 0;\n}\n")
    src = tmp_path / "p.toy"
    src.write_text(text)
    _, link = split_link_args(["p.toy", "-lc"])
    one = build_with("1", monkeypatch, src, tmp_path / "one", link=link)
    assert build_with("3", monkeypatch, src, tmp_path / "three", link=link) == one
    assert run([str(tmp_path / "three")]).stdout == "5 20\n"
    said = []
    for jobs in ("1", "3"):
        with pytest.raises((CompileError, UserError)) as e:
            build_with(jobs, monkeypatch, src, tmp_path / "p")
        said.append(e.value.render() if isinstance(e.value, CompileError) else str(e.value))
    assert said[0] == said[1] and "undefined symbol: labs" in said[0]


def test_workers_end_with_a_killed_build(tmp_path: Path):
    """A full build killed (SIGKILL) while its workers compile: the workers find the end of
    their pipes and end too, instead of waiting for it forever."""
    import os
    import signal
    import subprocess
    import time

    from test_server import big_program, finish, on_terminal_until

    from conftest import TOYC

    (tmp_path / "src.toy").write_text(big_program(6000))
    marker = str(tmp_path / "killed-build-output")
    build = on_terminal_until([*TOYC, "build", "--full", "src.toy", "-o", marker], tmp_path,
                              b"parsing")
    build[0].send_signal(signal.SIGKILL)
    finish(*build)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
        if not left.split():
            break
        time.sleep(0.2)
    assert not left.split(), f"workers left running: {left}"
    assert not os.path.exists(marker)
