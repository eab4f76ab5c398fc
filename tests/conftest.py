"""Shared helpers: building Toy programs with the installed `toyc` and running them."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

# The tests run toyc without its build server (tests/test_server.py runs it on purpose, each
# with a server of its own): one server shared by every test would carry sessions from test to
# test, and a kill aimed at a build would hit a client instead.
os.environ["TOYC_SERVER"] = "0"

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TOYC = [sys.executable, "-m", "toyc"]
# The architectures the shared programs are built for: the built-in one and the plugin in
# plugins/toyc-aarch64 (the README's test command installs it).
ARCHES = ("x86_64", "aarch64")
ELF_MACHINE = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}


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


def arch_args(arch: str) -> list[str]:
    return [] if arch == "x86_64" else ["--arch", arch]


def build(source: Path | str, out: Path, cwd: Path | None = None,
          arch: str = "x86_64") -> Result:
    return toyc("build", str(source), "-o", str(out), *arch_args(arch), cwd=cwd)


def runner(arch: str) -> list[str]:
    """What runs a program of `arch` here: nothing for this machine's own, else qemu's
    user-mode emulator, which tests/install-tools.sh installs (Debian's qemu-user)."""
    if arch == platform.machine():
        return []
    path = shutil.which(f"qemu-{arch}")
    if path is None:
        pytest.skip(f"qemu-{arch} is not installed and tests/install-tools.sh could not "
                    f"install qemu-user here, so {arch} programs cannot run")
    return [path]


def binutil(tool: str, arch: str) -> str:
    """A binutils program that reads `arch`'s code: the system one for this machine's
    architecture, else the cross one (tests/install-tools.sh installs
    binutils-aarch64-linux-gnu)."""
    return require(tool if arch == platform.machine() else f"{arch}-linux-gnu-{tool}")


def build_text(tmp_path: Path, text: str, name: str = "prog") -> tuple[Result, Path]:
    src = tmp_path / f"{name}.toy"
    src.write_text(text)
    exe = tmp_path / name
    return build(src.name, exe, cwd=tmp_path), exe


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; tests/install-tools.sh installs it")
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


def debug_description(exe: Path) -> dict:
    """What the debug info of `exe` says, read with pyelftools, with every address made
    relative to its function: declarations (name, line, column, type, locals and nested
    blocks), each function's line table rows, each function's and runtime helper's call frame
    instructions. Equal for a patched output and a clean build of the same source; empty
    without debug info."""
    from elftools.elf.elffile import ELFFile

    def type_name(die) -> str:
        if "DW_AT_type" not in die.attributes:
            return "void"
        t = die.get_DIE_from_attribute("DW_AT_type")
        if t.tag == "DW_TAG_array_type":
            count = next(t.iter_children()).attributes["DW_AT_count"].value
            return f"[{type_name(t)}; {count}]"
        return t.attributes["DW_AT_name"].value.decode()

    def children(die, base: int) -> list:
        out = []
        for c in die.iter_children():
            if c.tag == "DW_TAG_lexical_block":
                low = c.attributes["DW_AT_low_pc"].value - base
                out.append(("block", low, c.attributes["DW_AT_high_pc"].value,
                            children(c, base)))
            else:
                out.append((c.tag, c.attributes["DW_AT_name"].value.decode(), type_name(c),
                            bytes(c.attributes["DW_AT_location"].value)))
        return out

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return {}
        dwarf = elf.get_dwarf_info()
        decls, starts = {}, {}
        cu = next(dwarf.iter_CUs())
        for die in cu.get_top_DIE().iter_children():
            if die.tag not in ("DW_TAG_subprogram", "DW_TAG_variable"):
                continue
            a = die.attributes
            name = a["DW_AT_name"].value.decode()
            entry = [die.tag, a["DW_AT_decl_line"].value, a["DW_AT_decl_column"].value,
                     a["DW_AT_external"].value, type_name(die)]
            if die.tag == "DW_TAG_subprogram":
                low = a["DW_AT_low_pc"].value
                starts[low] = name
                entry += [a["DW_AT_high_pc"].value, children(die, low)]
            decls[name] = entry
        rows: dict[str, list] = {}
        current = None
        for e in dwarf.line_program_for_CU(cu).get_entries():
            s = e.state
            if s is None:
                continue
            if current is None:
                current = (starts.get(s.address, f"? {s.address:#x}"), s.address)
                rows[current[0]] = []
            if s.end_sequence:
                rows[current[0]].append(("end", s.address - current[1]))
                current = None
            else:
                rows[current[0]].append((s.address - current[1], s.line, s.column,
                                         s.prologue_end))
        # call frame information: per function, its range and instructions; runtime helpers
        # (no DIE) have some too, named by the symbol table
        frames = {}
        if dwarf.has_CFI():
            symtab = elf.get_section_by_name(".symtab")
            helpers = {s["st_value"]: s.name for s in symtab.iter_symbols()
                       if s["st_info"]["type"] == "STT_FUNC"} if symtab else {}
            for e in dwarf.CFI_entries():
                if "initial_location" in e.header:
                    low = e.header["initial_location"]
                    frames[starts.get(low, helpers.get(low, f"? {low:#x}"))] = (
                        e.header["address_range"],
                        [(i.opcode, i.args) for i in e.instructions if i.opcode])  # not nops
        return {"decls": decls, "rows": rows, "frames": frames}
