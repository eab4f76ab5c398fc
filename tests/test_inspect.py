"""`toyc inspect`: its text and JSON views cross-checked against readelf and nm, on samples
and after updates that move a function; objects and archives; a declaration exported under
several names (one atom, its other symbols aliases); bad input; a reader that stops early."""

from __future__ import annotations

import io
import json
import re
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from conftest import SAMPLES, TOYC, require, run

PROGRAM = """\
export var shared: int = 42;
threadlocal var counter: int = 5;
fn grow(x: int) -> int {{
    {body}
}}
fn main() {{
    counter += grow(2);
    print(grow(3), counter, shared);
}}
"""
BIG = "let t = x;\n" + "    t = t * 3 + x; t = t - x * 2;\n" * 10 + "    return t;"


def inspect_json(path: Path) -> dict:
    r = run([*TOYC, "inspect", "--json", str(path)])
    assert r.status == 0 and r.stderr == "", r.stderr
    return json.loads(r.stdout)


def nm(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (value, size) of every sized symbol, as nm -S prints them."""
    out = {}
    for line in run([require("nm"), "-S", str(path)]).stdout.splitlines():
        f = line.split()
        if len(f) == 4:
            out[f[3]] = (int(f[0], 16), int(f[1], 16))
    return out


def check_against_tools(path: Path, report: dict) -> None:
    symbols = nm(path)
    for a in report["atoms"]:
        for name in [a["name"], *a["aliases"]]:  # an alias has its atom's value and size
            assert symbols[name] == (a["address"], a["size"]), name
    assert {n for a in report["atoms"] for n in [a["name"], *a["aliases"]]} == \
        {n for n in symbols if not n.endswith(".writable")}
    for section in {a["section"] for a in report["atoms"]}:  # each atom once: none overlap
        atoms = [a for a in report["atoms"] if a["section"] == section]
        for a, b in pairwise(atoms):
            assert a["address"] + a["size"] <= b["address"], (a["name"], b["name"])
    sections = run([require("readelf"), "-SW", str(path)]).stdout
    for s in report["sections"]:
        row = next(line for line in sections.splitlines() if f" {s['name']} " in line)
        fields = row.split("]")[1].split()
        assert int(fields[2], 16) == s["address"] and int(fields[4], 16) == s["size"], row
        assert s["used"] + s["free"] == s["size"]
    for a in report["atoms"]:
        if "capacity" in a and not a["last"]:
            assert a["capacity"] >= a["size"]


@pytest.mark.parametrize("sample", ["hello", "threads", "threadlocal"])
def test_samples_against_readelf_and_nm(tmp_path: Path, sample: str):
    exe = tmp_path / sample
    assert run([*TOYC, "build", str(SAMPLES / f"{sample}.toy"), "-o", str(exe)]).status == 0
    report = inspect_json(exe)
    assert report["kind"] == "executable" and report["machine"] == "EM_X86_64"
    assert report["state"]
    check_against_tools(exe, report)
    text = run([*TOYC, "inspect", str(exe)]).stdout
    for a in report["atoms"]:
        assert a["name"] in text


def test_after_an_update_that_moves_a_function(tmp_path: Path):
    src = tmp_path / "p.toy"
    src.write_text(PROGRAM.format(body="return x + 1;"))
    assert run([*TOYC, "build", "p.toy"], cwd=tmp_path).status == 0
    before = {a["name"]: a for a in inspect_json(tmp_path / "p")["atoms"]}
    src.write_text(PROGRAM.format(body=BIG))
    assert run([*TOYC, "build", "p.toy"], cwd=tmp_path).status == 0
    report = inspect_json(tmp_path / "p")
    check_against_tools(tmp_path / "p", report)
    grow = next(a for a in report["atoms"] if a["name"] == "grow")
    assert grow["address"] != before["grow"]["address"]
    (tramp,) = report["trampolines"]
    assert (tramp["function"], tramp["address"], tramp["target"]) == \
        ("grow", before["grow"]["address"], grow["address"])
    assert tramp["size"] == 5
    assert [u["outcomes"].get("grow") for u in report["updates"]] == ["new", "moved, trampoline"]
    assert report["tls"] is not None and report["tls"]["image_size"] >= 8
    assert [(e["name"], e["binding"], e["visibility"]) for e in report["exports"]
            if e["name"] == "shared"] == [("shared", "global", "default")]
    text = run([*TOYC, "inspect", str(tmp_path / "p")]).stdout
    assert f"{tramp['address']:#012x} (5 bytes) -> {grow['address']:#x} grow" in text


def test_objects_and_archives(tmp_path: Path):
    (tmp_path / "lib.toy").write_text("export fn add(a: int, b: int) -> int { return a + b; }\n")
    assert run([*TOYC, "build", "-c", "lib.toy"], cwd=tmp_path).status == 0
    assert run([*TOYC, "build", "--lib", "lib.toy"], cwd=tmp_path).status == 0
    obj = inspect_json(tmp_path / "lib.o")
    assert obj["kind"] == "object" and obj["entry"] is None
    check_against_tools(tmp_path / "lib.o", obj)
    ar = inspect_json(tmp_path / "liblib.a")
    assert ar["kind"] == "archive" and [m["kind"] for m in ar["members"]] == ["object"]
    assert [a["name"] for a in ar["members"][0]["atoms"]] == [a["name"] for a in obj["atoms"]]


ALIASES = """\
export("a") export("b") var shared: int = 1;
export("tick", weak) threadlocal var counter: int = 5;
export export("twice_c") fn twice(x: int) -> int { return x * 2; }
fn main() -> int { counter += 1; return twice(shared) + counter; }
"""
# the atoms exported under other names, and those names
ALIASED = {"shared": ["a", "b"], "counter": ["tick"], "twice": ["twice_c"]}


def elf_symbols(path: Path) -> list[tuple[str, str, int, int, str]]:
    """(name, section, value, size, binding) of the function, object and TLS symbols in
    `path`'s .symtab (its one member's, for an archive), as pyelftools reads them."""
    from elftools.elf.elffile import ELFFile

    data = path.read_bytes()
    if data.startswith(b"!<arch>\n"):
        data = data[data.index(b"\x7fELF") :]
    elf = ELFFile(io.BytesIO(data))
    return [(s.name, elf.get_section(s["st_shndx"]).name, s["st_value"], s["st_size"],
             s["st_info"]["bind"]) for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_TLS")]


@pytest.mark.parametrize("kind", ["executable", "executable without its state", "object",
                                  "archive", "stripped archive"])
def test_a_declaration_exported_under_other_names_is_one_atom(tmp_path: Path, kind: str):
    (tmp_path / "p.toy").write_text(ALIASES)
    options = {"executable": [], "executable without its state": [], "object": ["-c"],
               "archive": ["--lib"], "stripped archive": ["--lib", "--strip"]}[kind]
    out = tmp_path / ("p.o" if kind == "object" else "libp.a" if "archive" in kind else "p")
    assert run([*TOYC, "build", *options, "p.toy", "-o", out.name], cwd=tmp_path).status == 0
    if kind == "executable without its state":
        (tmp_path / ".p.toyc-state").unlink()
    report = inspect_json(out)
    if "archive" in kind:
        (report,) = report["members"]
    check_against_tools(out, report)
    # the tools see several symbols at one address; inspect, one atom with aliases
    rows = elf_symbols(out)
    for nav, aliases in ALIASED.items():
        (value,) = {(sec, v, size) for name, sec, v, size, _ in rows if name in [nav, *aliases]}
        assert [a for a in report["atoms"] if (a["section"], a["address"], a["size"]) == value]
    groups = {a["name"]: a["aliases"] for a in report["atoms"] if a["aliases"]}
    if kind == "stripped archive":
        # Nothing in the file tells `twice` from `twice_c` (both global, no debug info): only
        # which symbols share an atom is certain.
        assert sorted(sorted([n, *a]) for n, a in groups.items()) == \
            sorted(sorted([n, *a]) for n, a in ALIASED.items())
    else:
        assert groups == ALIASED
    # each atom's bytes count once: .data.zig holds `shared` alone, 8 bytes
    data = next(s for s in report["sections"] if s["name"] == ".data.zig")
    assert data["used"] == 8 and data["used"] + data["free"] == data["size"]
    for s in report["sections"]:
        assert s["used"] == sum({(sec, v): size for _, sec, v, size, _ in rows
                                 if sec == s["name"]}.values()), s["name"]
    # the global and weak symbols are the exports, each alias naming its atom
    exports = {e["name"]: (e["binding"], e["atom"]) for e in report["exports"]}
    assert {n: b for n, (b, _) in exports.items()} == \
        {name: bind[4:].lower() for name, _, _, _, bind in rows if bind != "STB_LOCAL"}
    for nav, aliases in groups.items():
        assert all(exports[alias][1] == nav for alias in aliases)
    assert exports["a"] == exports["b"] == ("global", "shared")
    assert exports["tick"] == ("weak", "counter")
    text = run([*TOYC, "inspect", str(out)]).stdout
    atoms = text.split("\natoms")[1].split("\n\n")[0]
    assert [line.split()[0] for line in atoms.splitlines()[1:]] == \
        [a["name"] for a in report["atoms"]]
    assert re.search(r"\n  shared +\.data\.zig .* object  also a, b\n", atoms), atoms
    assert re.search(r"\n  a +global default +0x[0-9a-f]+  alias of shared\n", text), text
    assert re.search(r"\n  \.data\.zig +0x[0-9a-f]+-0x[0-9a-f]+ +\d+ +8 ", text), text
    if kind in ("executable", "object"):  # an alias names the function it aliases
        d = json.loads(run([*TOYC, "inspect", "--json", "--disasm", "twice_c", str(out)]).stdout)
        twice = next(a for a in report["atoms"] if a["name"] == "twice")
        assert (d["function"], d["address"], d["size"]) == \
            ("twice", twice["address"], twice["size"])


@pytest.mark.parametrize("what, message", [
    ("text", "not an ELF file"),
    ("foreign", "not written by toyc"),
    ("truncated", "truncated"),
    ("missing", "No such file or directory"),
    ("directory", "is a directory"),
])
def test_bad_input_is_one_line(tmp_path: Path, what: str, message: str):
    path = tmp_path / "x"
    if what == "text":
        path.write_text("hello\n")
    elif what == "foreign":
        path.write_bytes(Path(require("true")).read_bytes())
    elif what == "truncated":
        assert run([*TOYC, "build", str(SAMPLES / "hello.toy"), "-o", str(path)]).status == 0
        path.write_bytes(path.read_bytes()[:3000])
    elif what == "directory":
        path.mkdir()
    r = run([*TOYC, "inspect", str(path)])
    assert r.status == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("toyc: error: ") and message in r.stderr, r.stderr


def objdump_instructions(path: Path, lo: int, hi: int, arch: str) -> list[tuple[int, str]]:
    from conftest import binutil

    out = run([binutil("objdump", arch), "-d", "--start-address", hex(lo), "--stop-address",
               hex(hi), str(path)]).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().endswith(":"):
            address = int(parts[0].strip()[:-1], 16)
            raw = parts[1].replace(" ", "")
            if arch == "aarch64":  # objdump shows each instruction as a little-endian word
                raw = bytes.fromhex(raw)[::-1].hex()
            if rows and rows[-1][0] + len(rows[-1][1]) // 2 == address and \
                    len(parts) == 2:  # objdump's continuation line of a long instruction
                rows[-1] = (rows[-1][0], rows[-1][1] + raw)
            else:
                rows.append((address, raw))
    return rows


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_disassembly_against_objdump(tmp_path: Path, arch: str):
    from conftest import arch_args

    src = tmp_path / "p.toy"
    src.write_text(PROGRAM.format(body=BIG))
    assert run([*TOYC, "build", "p.toy", *arch_args(arch)], cwd=tmp_path).status == 0
    r = run([*TOYC, "inspect", "--json", "--disasm", "main", str(tmp_path / "p")])
    assert r.status == 0, r.stderr
    d = json.loads(r.stdout)
    got = [(i["address"], i["bytes"]) for i in d["instructions"]]
    lo = d["address"]
    want = objdump_instructions(tmp_path / "p", lo, lo + d["size"], arch)
    want = [(a, b) for a, b in want if a < lo + d["size"]]
    assert got[: len(want)] == want[: len(got)] and len(got) >= len(want) - 2, (got, want)
    # main calls grow: a relocation to it, at grow's address
    grow = next(a for a in inspect_json(tmp_path / "p")["atoms"] if a["name"] == "grow")
    hits = [r for i in d["instructions"] for r in i["relocations"] if r["target"] == "grow"]
    assert hits and all(h["address"] == grow["address"] for h in hits), hits
    text = run([*TOYC, "inspect", "--disasm", "main", str(tmp_path / "p")]).stdout
    assert re.search(rf"; \S+ grow( [-+]\d+)? \({grow['address']:#x}\)", text), text


def test_disassembly_of_an_object_shows_its_rela_entries(tmp_path: Path):
    (tmp_path / "lib.toy").write_text(
        'export fn add(a: int, b: int) -> int { print("add", a); return a + b; }\n')
    assert run([*TOYC, "build", "-c", "lib.toy"], cwd=tmp_path).status == 0
    text = run([*TOYC, "inspect", "--disasm", "add", str(tmp_path / "lib.o")]).stdout
    assert "R_X86_64_PLT32 toy.rt.print -4" in text, text
    r = run([*TOYC, "inspect", "--disasm", "nosuch", str(tmp_path / "lib.o")])
    assert r.status == 1 and "no function named 'nosuch'" in r.stderr


def test_map_is_an_svg_a_renderer_draws_with_every_function(tmp_path: Path):
    import xml.etree.ElementTree as ET

    src = tmp_path / "p.toy"
    src.write_text(PROGRAM.format(body="return x + 1;"))
    assert run([*TOYC, "build", "p.toy"], cwd=tmp_path).status == 0
    src.write_text(PROGRAM.format(body=BIG))  # grow moves: a trampoline to draw
    assert run([*TOYC, "build", "p.toy"], cwd=tmp_path).status == 0
    r = run([*TOYC, "inspect", str(tmp_path / "p"), "--map", str(tmp_path / "map.svg")])
    assert r.status == 0 and r.stdout == "" and r.stderr == "", r.stderr
    svg = ET.parse(tmp_path / "map.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    words = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith(("title", "text")))
    for name in ("grow", "main", "shared", "counter", "_start"):
        assert name in words, name
    assert "trampoline at" in words and "to grow" in words
    png = tmp_path / "map.png"
    r = run([require("rsvg-convert"), "-o", str(png), str(tmp_path / "map.svg")])
    assert r.status == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr


@pytest.mark.parametrize("sample", ["hello", "threadlocal"])
def test_a_samples_map_names_every_function(tmp_path: Path, sample: str):
    import xml.etree.ElementTree as ET

    exe = tmp_path / sample
    assert run([*TOYC, "build", str(SAMPLES / f"{sample}.toy"), "-o", str(exe)]).status == 0
    assert run([*TOYC, "inspect", str(exe), "--map", str(tmp_path / "m.svg")]).status == 0
    svg = ET.parse(tmp_path / "m.svg").getroot()
    words = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith(("title", "text")))
    functions = [a["name"] for a in inspect_json(exe)["atoms"] if a["kind"] == "function"]
    assert functions and all(f"{name}: function" in words for name in functions)


def first_line_then_close(cmd: list[str]) -> tuple[str, str, int]:
    """Run `cmd` into a pipe whose reader reads one line and closes it, as `| head -1` does:
    the first line, what the command wrote on stderr and its exit status."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline().decode()
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    return first, err, p.wait(timeout=60)


def test_a_reader_that_stops_after_one_line_ends_inspect_quietly(tmp_path: Path):
    # enough functions, and calls in main, for each output to be twice a pipe's capacity
    # (64 KiB): toyc is still writing when the reader goes away
    src = "".join(f"fn f{i}(x: int) -> int {{ return x + {i}; }}\n" for i in range(2000))
    src += "fn main() -> int {\n    let t = 0;\n"
    src += "".join(f"    t = t + f{i}(t);\n" for i in range(800)) + "    return t;\n}\n"
    (tmp_path / "p.toy").write_text(src)
    assert run([*TOYC, "build", "p.toy"], cwd=tmp_path).status == 0
    out = str(tmp_path / "p")
    for args, line in ((["--disasm", "main"], "main in .text.zig at 0x"),
                       ([], f"{out}: executable for EM_X86_64"), (["--json"], "{")):
        first, err, status = first_line_then_close([*TOYC, "inspect", out, *args])
        assert first.startswith(line), first
        # Nothing on stderr (no "internal error", no traceback, no "Exception ignored"), and
        # the status a shell gives a tool that SIGPIPE killed, 128 + 13, as `seq 1000000 |
        # head -1` gives seq. (Status 0 would mean the output fit in the pipe.)
        assert err == "" and status == 141, (args, err, status)


def test_a_runtime_helper_is_disassembled_with_the_state_beside_it(tmp_path: Path):
    (tmp_path / "p.toy").write_text("fn main() -> int { print(1); return 0; }\n")
    assert run([*TOYC, "build", "p.toy", "-o", "p"], cwd=tmp_path).status == 0
    r = run([*TOYC, "inspect", "p", "--disasm", "_start"], cwd=tmp_path)
    assert r.status == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("_start in .text.zig at 0x")
    objdump = run([require("objdump"), "-d", str(tmp_path / "p")]).stdout
    first = r.stdout.splitlines()[1].split()[0].rstrip(":")
    assert f"{first} <_start>:" in objdump
