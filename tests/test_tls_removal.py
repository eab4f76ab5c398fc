"""Removing the last thread-local removes the TLS sections and segments, as a clean build of the
same source has none; adding one again brings them back, as often as it happens.

Each update's output is compared with a clean build of the same text (`toyc build --full`, in a
directory of its own under the same file name) as `readelf -lSW` shows them: the section names
in order and the program header types in order; and `readelf -sW`'s symbols (section indices
included, so a section index that shifted would show). Every output must pass `eu-elflint
--gnu-ld`, `readelf -a`, `objdump -d` and pyelftools; objects must link with gcc. The same for
`toyc build` (one process per update, through the state file), `toyc build -c` and `toyc
watch` (the session in memory), and for an update also written into a running program.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import TOYC, require, run, symbols
from linker.hot_swap import HotSwap
from linker.process import Thread
from toyc.plugins import get_arch
from toyc.session import Session
from watching import Watcher, line_matching, save_in_place

WITH_TLS = """\
var g: int = 10;
threadlocal var count: int = 7;
threadlocal var zeros: [int; 4];
threadlocal var name: str = "tls!";

fn work(id: int) -> int {
    count += id;
    zeros[id] = id;
    return id + g + count + len(name);
}

export fn bump(n: int) -> int {
    count += n;
    return count;
}

fn main() {
    let a = spawn(work, 1);
    let b = spawn(work, 2);
    print(join(a), join(b), count, name);
}
"""
WITH_TLS_OUT = "23 25 7 tls!\n"
WITHOUT_TLS = """\
var g: int = 10;

fn work(id: int) -> int {
    return id + g;
}

export fn bump(n: int) -> int {
    return n + 7;
}

fn main() {
    let a = spawn(work, 1);
    let b = spawn(work, 2);
    print(join(a), join(b));
}
"""
WITHOUT_TLS_OUT = "11 12\n"
TLS_NAMES = {".tdata", ".tbss", ".tdata.writable", ".rela.tdata"}
# what the TLS sections' removal must not leave in the linker's state
TLS_STATE = {"tls": [-1, [], "_start"]}

MAIN_C = """\
#include <stdio.h>
long long bump(long long);
int main(void) { printf("%lld\\n", bump(5)); return 0; }
"""


def layout(path: Path) -> tuple[list[str], list[str]]:
    """`readelf -lSW`'s section names and program header types, each in file order."""
    r = run([require("readelf"), "-lSW", str(path)])
    assert r.status == 0 and r.stderr == "", r.stderr
    names = re.findall(r"^\s+\[\s*\d+\]\s+(\S*)\s+(?:NULL|[A-Z_]+\s)", r.stdout, re.M)
    headers = r.stdout.partition("Program Headers:")[2].partition("Section to Segment")[0]
    types = re.findall(r"^\s+([A-Z_]+)\s+0x", headers, re.M)
    return names, types


def clean_build(tmp_path: Path, text: str, name: str, obj: bool) -> Path:
    """A clean build of `text`, under the same file names, in a directory of its own."""
    clean = tmp_path / "clean"
    clean.mkdir(exist_ok=True)
    (clean / "src.toy").write_text(text)
    r = run([*TOYC, "build", "--full", *(["-c"] if obj else []), "src.toy", "-o", name],
            cwd=clean)
    assert r.status == 0, r.stderr
    return clean / name


def check_like_clean(tmp_path: Path, out: Path, text: str, obj: bool) -> None:
    ref = clean_build(tmp_path, text, out.name, obj)
    assert layout(out) == layout(ref)
    assert symbols(out) == symbols(ref)
    has_tls = "threadlocal" in text
    assert bool(TLS_NAMES & set(layout(out)[0])) == has_tls
    assert ("TLS" in layout(out)[1]) == (has_tls and not obj)
    lint = run([require("eu-elflint"), "--gnu-ld", str(out)])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout + lint.stderr
    readelf = run([require("readelf"), "-a", "-W", str(out)])
    assert readelf.status == 0 and readelf.stderr == "", readelf.stderr
    assert run([require("objdump"), "-d", str(out)]).status == 0
    with out.open("rb") as f:
        elf = ELFFile(f)
        for s in elf.iter_sections():
            if s["sh_type"] != "SHT_NOBITS":
                assert len(s.data()) == s["sh_size"], s.name
        assert [seg["p_type"].removeprefix("PT_") for seg in elf.iter_segments()] == \
            layout(ref)[1]


def check_state(out: Path) -> None:
    """The state file's TLS part is what a clean build without thread-locals has."""
    from test_state import read_state

    linker = read_state(out.parent / f".{out.name}.toyc-state")["linker"]
    for key, value in TLS_STATE.items():
        assert linker[key] == value
    assert "tdata" not in linker["section_of"] and "tbss" not in linker["section_of"]
    assert not TLS_NAMES & {s[0][0] for s in linker["elf"]["sections"]}


@pytest.mark.parametrize("obj", [False, True], ids=["executable", "object"])
def test_thread_locals_removed_and_added_again(tmp_path: Path, obj: bool):
    name = "src.o" if obj else "src"
    out = tmp_path / name
    for i, (text, expected) in enumerate([(WITHOUT_TLS, WITHOUT_TLS_OUT),
                                          (WITH_TLS, WITH_TLS_OUT),
                                          (WITHOUT_TLS, WITHOUT_TLS_OUT),
                                          (WITH_TLS, WITH_TLS_OUT),
                                          (WITHOUT_TLS, WITHOUT_TLS_OUT)]):
        (tmp_path / "src.toy").write_text(text)
        r = run([*TOYC, "build", "-v", *(["-c"] if obj else []), "src.toy", "-o", name],
                cwd=tmp_path)
        assert r.status == 0, r.stderr
        assert ("full build" in r.stdout) == (i == 0), r.stdout + r.stderr
        check_like_clean(tmp_path, out, text, obj)
        if obj:
            (tmp_path / "main.c").write_text(MAIN_C)
            for mode in ([], ["-static"]):
                cc = run([require("gcc"), *mode, "-pthread", "main.c", name, "-o", "prog"],
                         cwd=tmp_path)
                assert cc.status == 0, cc.stderr
                # 7 + 5 either way: from the thread-local, or from the constant
                assert run([str(tmp_path / "prog")]).stdout == "12\n"
        else:
            got = run([str(out)])
            assert (got.status, got.stdout, got.stderr) == (0, expected, "")
        if "threadlocal" not in text:
            check_state(out)


def test_thread_locals_removed_and_added_again_in_watch(tmp_path: Path):
    """`toyc watch` keeps the linker in memory between updates: the same, without the state
    file in between."""
    (tmp_path / "src.toy").write_text(WITH_TLS)
    w = Watcher(tmp_path)
    try:
        assert "(full build)" in w.line()
        w.wait_watching()
        for text, expected in [(WITHOUT_TLS, WITHOUT_TLS_OUT), (WITH_TLS, WITH_TLS_OUT),
                               (WITHOUT_TLS, WITHOUT_TLS_OUT)]:
            save_in_place(tmp_path / "src.toy", text)
            line = line_matching(w, r"(updated|added|removed).*").group(0)
            assert "full build" not in line, line
            check_like_clean(tmp_path, tmp_path / "prog", text, False)
            got = run([str(tmp_path / "prog")])
            assert (got.status, got.stdout) == (0, expected)
    finally:
        w.stop()
    assert w.proc.returncode == 0, w.drain_stderr()
    check_state(tmp_path / "prog")
    r = run([*TOYC, "build", "-v", "src.toy", "-o", "prog"], cwd=tmp_path)
    assert r.status == 0 and r.stdout.startswith("nothing changed"), r.stdout + r.stderr


class StoppedIn:
    """A stand-in for a running program whose one thread is stopped at `address`, with the
    memory a program with thread-locals maps."""

    def __init__(self, address: int):
        self.pid = 1
        self.address = address
        self.writes: list[tuple[int, bytes]] = []

    def poll(self):
        return None

    def stop(self):
        regs = bytearray(27 * 8)
        struct.pack_into("<Q", regs, 16 * 8, self.address)  # the instruction pointer
        return [Thread(1, bytes(regs), b"")]

    def resume(self):
        pass

    def maps(self):
        return [(0x4000000, 0x4100000, "rwxp"), (0xC000000, 0xC100000, "rw-p"),
                (0x10000000, 0x10100000, "rw-p"), (0x14000000, 0x14100000, "rw-p"),
                (0x60000000, 0x60101000, "rw-p")]

    def write(self, writes):
        self.writes += writes


def test_thread_locals_removed_while_the_program_runs(tmp_path: Path, monkeypatch):
    """The running copy keeps what its code may use: the old body of the function a thread is
    in, the string a removed thread-local points to, and its own toy.rt.tls_info (threads its
    old code starts get a TLS block as that code expects); the file loses the TLS sections and
    segments at once, and what was kept is freed once no copy runs."""
    monkeypatch.chdir(tmp_path)  # panic messages name the source as given: as the CLI's do
    (tmp_path / "src.toy").write_text(WITH_TLS)
    session, _ = Session.full_build("src.toy", "src")
    zo = session.zo
    work = zo.address(zo.navs["work"])
    info = zo.address(zo.lazy["toy.rt.tls_info"])
    swap = HotSwap(str(tmp_path / "src"), [], get_arch("x86_64").info)
    swap.process = StoppedIn(work + 8)
    session.swap = swap
    session.update(WITHOUT_TLS)
    assert swap.report() == "swapped into pid 1; work is running the old code until it returns"
    assert not any(address <= info + 8 < address + len(data)
                   for address, data in swap.process.writes)
    assert {zo.atoms[r].name for r, _ in zo.retired} == {"work$old"}
    assert any(t.kind == "uav" and t.key == b"tls!" for t in zo.deferred)
    out = tmp_path / "src"
    assert not TLS_NAMES & set(layout(out)[0]) and "TLS" not in layout(out)[1]
    assert run([str(out)]).stdout == WITHOUT_TLS_OUT
    session.swap = None
    session.release()
    assert zo.retired == [] and not zo.deferred
    check_like_clean(tmp_path, out, WITHOUT_TLS, False)
    session.update(WITH_TLS)  # and back, with no program running
    check_like_clean(tmp_path, out, WITH_TLS, False)
    assert run([str(out)]).stdout == WITH_TLS_OUT
