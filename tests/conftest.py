"""Shared helpers: building Toy programs with the installed `toyc` and running them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TOYC = [sys.executable, "-m", "toyc"]


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 60, stdin: str = "") -> Result:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout, input=stdin.encode())
    return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"))


def toyc(*args: str, cwd: Path | None = None) -> Result:
    return run([*TOYC, *args], cwd=cwd)


def build(source: Path | str, out: Path, cwd: Path | None = None) -> Result:
    return toyc("build", str(source), "-o", str(out), cwd=cwd)


def build_text(tmp_path: Path, text: str, name: str = "prog") -> tuple[Result, Path]:
    src = tmp_path / f"{name}.toy"
    src.write_text(text)
    exe = tmp_path / name
    return build(src.name, exe, cwd=tmp_path), exe


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; .ci/run installs it")
    return path


def pytest_configure(config):
    # Long-running variants (e.g. the fuzz in test_incremental_random.py) skip themselves unless
    # asked for; the marker lets `-m slow` select them.
    config.addinivalue_line("markers", "slow: long-running variant, run only on request")


def symbols(exe: Path) -> Counter:
    """`readelf -sW`'s rows as (name, type, size, binding, section index), without the null,
    FILE and SECTION rows."""
    out = run([require("readelf"), "-sW", str(exe)]).stdout
    rows = Counter()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 8 and f[0].rstrip(":").isdigit() and f[3] not in ("FILE", "SECTION") \
                and f[0] != "0:":
            rows[(f[7], f[3], int(f[2]), f[4], f[6])] += 1
    return rows
