"""Exports in `.symtab`, read with `readelf -sW`: names, bindings, types, values and sizes.

An export under the declaration's own name sets the binding of its symbol (one row, as a C
compiler makes it); under another name it is a row of its own with the declaration's type,
value and size. After an incremental update that moves an exported function, its exports must
follow it.
"""

from __future__ import annotations

from pathlib import Path

from conftest import TOYC, build, require, run

PROGRAM = """\
export fn add(a: int, b: int) -> int {{ return a + b; }}
export("toy_sub") fn sub(a: int, b: int) -> int {{
    {body}
}}
export(weak) fn hook() {{ }}
export("toy_version", weak) const VERSION: int = 3;
export(internal) fn helper() -> int {{ return 1; }}
export("a") export("b", weak) var shared: int = 1;
fn main() {{
    hook();
    print(add(1, 2), sub(5, 1), VERSION, helper(), shared);
}}
"""


def rows(exe: Path) -> dict[str, list[tuple[str, str, int, int]]]:
    """name -> [(type, binding, value, size)] from readelf -sW."""
    out = run([require("readelf"), "-sW", str(exe)]).stdout
    table: dict[str, list[tuple[str, str, int, int]]] = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 8 and f[0].rstrip(":").isdigit():
            table.setdefault(f[7], []).append((f[3], f[4], int(f[1], 16), int(f[2])))
    return table


def check(exe: Path) -> None:
    t = rows(exe)
    assert [(ty, bind) for ty, bind, _, _ in t["add"]] == [("FUNC", "GLOBAL")]
    assert [(ty, bind) for ty, bind, _, _ in t["hook"]] == [("FUNC", "WEAK")]
    assert [(ty, bind) for ty, bind, _, _ in t["helper"]] == [("FUNC", "LOCAL")]
    for export, decl, ty, bind in (("toy_sub", "sub", "FUNC", "GLOBAL"),
                                   ("toy_version", "VERSION", "OBJECT", "WEAK"),
                                   ("a", "shared", "OBJECT", "GLOBAL"),
                                   ("b", "shared", "OBJECT", "WEAK")):
        [(own_ty, own_bind, value, size)] = t[decl]
        assert own_bind == "LOCAL" and own_ty == ty
        assert t[export] == [(ty, bind, value, size)], (export, t[export], t[decl])


def test_exports_in_symtab(tmp_path: Path):
    (tmp_path / "p.toy").write_text(PROGRAM.format(body="return a - b;"))
    r = build("p.toy", tmp_path / "p", cwd=tmp_path)
    assert r.status == 0, r.stderr
    assert run([str(tmp_path / "p")]).stdout == "3 4 3 1 1\n"
    check(tmp_path / "p")
    nm = run([require("nm"), str(tmp_path / "p")]).stdout.split("\n")
    assert "T add" in {line[17:] for line in nm} and "W hook" in {line[17:] for line in nm}


def test_exports_follow_a_moved_function(tmp_path: Path):
    (tmp_path / "p.toy").write_text(PROGRAM.format(body="return a - b;"))
    assert build("p.toy", tmp_path / "p", cwd=tmp_path).status == 0
    before = rows(tmp_path / "p")["toy_sub"][0][2]
    grown = "\n    ".join(["let x = a - b;", *["x = x + 1; x = x - 1;"] * 20, "return x;"])
    (tmp_path / "p.toy").write_text(PROGRAM.format(body=grown))
    r = run([*TOYC, "build", "-v", "p.toy", "-o", "p"], cwd=tmp_path)
    assert "updated sub (moved, trampoline)" in r.stdout, r.stdout + r.stderr
    assert run([str(tmp_path / "p")]).stdout == "3 4 3 1 1\n"
    check(tmp_path / "p")
    assert rows(tmp_path / "p")["toy_sub"][0][2] != before
    lint = run([require("eu-elflint"), "--gnu-ld", str(tmp_path / "p")])
    assert lint.status == 0 and "No errors" in lint.stdout, lint.stdout
