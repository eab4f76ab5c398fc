"""The state file beside an output: trusted only when it matches, else a full build with the
reason on one line; and `--full`, which ignores it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run, toyc

V1 = 'fn twice(x: int) -> int { return x * 2; }\nfn main() { print("v", twice(21)); }\n'
V2 = 'fn twice(x: int) -> int { return x + x + 1; }\nfn main() { print("v", twice(21)); }\n'


def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = tmp_path / "p.toy"
    src.write_text(V1)
    out = tmp_path / "p"
    r = toyc("build", "-v", str(src), "-o", str(out))
    assert r.status == 0, r.stderr
    assert "full build" in r.stdout
    state = tmp_path / ".p.toyc-state"
    assert state.exists()
    src.write_text(V2)
    return src, out, state


def read_state(state: Path) -> dict:
    """The state, read as SQLite and JSON: the head's rows and the pages it names."""
    con = sqlite3.connect(state)
    try:
        (data,) = con.execute("SELECT data FROM head").fetchone()
        pages = dict(con.execute("SELECT id, data FROM pages"))
    finally:
        con.close()
    head = json.loads(data)

    def assemble(node):
        if isinstance(node, dict) and "\x00pages" in node:
            rows = [json.loads(pages[i]) for i, _ in node["pages"]]
            return "".join(rows) if node["\x00pages"] == "text" else \
                [r for page in rows for r in page]
        if isinstance(node, dict):
            return {k: assemble(v) for k, v in node.items()}
        return node
    return assemble(head)


def write_state(state: Path, data: dict) -> None:
    """A state file with `data` and digests that match: what a tool that knows the format
    could write."""
    from toyc import state_store
    from toyc.session import PAGED

    state_store.save(state, data, PAGED)


def rebuild(src: Path, out: Path, *extra: str):
    r = toyc("build", "-v", *extra, str(src), "-o", str(out))
    assert r.status == 0, r.stderr
    assert run([str(out)]).stdout == "v 43\n"
    return r


def test_state_is_a_versioned_database_naming_its_files(tmp_path: Path):
    src, out, state = setup(tmp_path)
    data = read_state(state)
    assert data["format"] == 5
    assert data["source"] == str(src.resolve()) and data["output"] == str(out.resolve())
    r = rebuild(src, out)
    assert "full build" not in r.stdout and "updated twice (" in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("damage, reason", [
    ("missing", "no state from a previous build"),
    ("garbage", "the state file is damaged"),
    ("truncated", "the state file is damaged"),
    ("format", "the state file has another format"),
    ("version", "the state file is from toyc 0.0.0"),
    ("corrupt", "the state file is corrupt"),
    ("bit flipped", "the state file is damaged"),
    ("digest", "the state file is damaged"),
    ("page missing", "the state file is damaged"),
    ("page swapped", "the state file is damaged"),
    ("pending", "the last update did not finish"),
    ("old format", "the state file is damaged"),
    ("another table", "the state file has another format"),
    ("a trigger", "the state file has another format"),
    ("outside the output", "the state file is corrupt"),
    ("debug info outside", "the state file is corrupt"),
    ("enormous", "the state file is too large"),
    ("foreign", "the state file belongs to another source or output"),
    ("output changed", "the output file was changed since the last build"),
    ("output replaced", "the output file was changed since the last build"),
])
def test_untrusted_state_means_a_full_build_with_the_reason(tmp_path: Path, damage: str,
                                                           reason: str):
    src, out, state = setup(tmp_path)
    data = read_state(state)
    if damage == "missing":
        state.unlink()
    elif damage == "garbage":
        state.write_bytes(b"\x80\x03not json at all")
    elif damage == "truncated":
        state.write_bytes(state.read_bytes()[: 2000])
    elif damage == "format":
        data["format"] = 99
        write_state(state, data)
    elif damage == "version":
        data["toyc"] = "0.0.0"
        write_state(state, data)
    elif damage == "corrupt":
        data["linker"]["atoms"] = [["x"]]
        write_state(state, data)
    elif damage == "bit flipped":  # in the rows of a page: what the state says
        raw = bytearray(state.read_bytes())
        raw[raw.index(b'"twice",')] ^= 0x04
        state.write_bytes(bytes(raw))
    elif damage == "digest":
        state.write_bytes(b"0" * 32 + state.read_bytes()[32:])
    elif damage in ("page missing", "page swapped", "pending", "another table", "a trigger"):
        with sqlite3.connect(state) as con:
            first, second = [i for (i,) in con.execute("SELECT id FROM pages ORDER BY id")][:2]
            con.execute({
                "page missing": f"DELETE FROM pages WHERE id = {second}",
                "page swapped": f"UPDATE pages SET data = (SELECT data FROM pages WHERE id = "
                                f"{first}) WHERE id = {second}",
                "pending": "UPDATE head SET pending = 1",
                "another table": "CREATE TABLE extra(x)",
                "a trigger": "CREATE TRIGGER t AFTER UPDATE ON head BEGIN "
                             "DELETE FROM pages; END",
            }[damage])
        con.close()
    elif damage == "old format":  # a digest line and JSON, as toyc wrote before
        state.write_bytes(b"0" * 32 + b"\n" + json.dumps(data).encode())
    elif damage == "outside the output":  # an atom far past the end of its section
        atom = next(a for a in data["linker"]["atoms"] if a[0] == "twice")
        atom[2] = 1 << 40
        write_state(state, data)
    elif damage == "debug info outside":
        entry = next(e for e in data["linker"]["dwarf"]["entries"] if e[0] == "twice")
        entry[1][0] = 1 << 30
        write_state(state, data)
    elif damage == "enormous":
        state.write_bytes(state.read_bytes() + b" " * (64 * out.stat().st_size + (2 << 20)))
    elif damage == "foreign":
        other = tmp_path / "other"
        other.mkdir()
        shutil.copy(src, other / "p.toy")
        shutil.copy(out, other / "p")
        shutil.copy(state, other / ".p.toyc-state")
        src, out = other / "p.toy", other / "p"
        stat = os.stat(out)
        data["output_stat"] = [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev]
        write_state(other / ".p.toyc-state", data)
    elif damage == "output changed":
        with open(out, "r+b") as f:  # someone patches a byte of the output
            f.seek(0x40)
            f.write(f.read(1))
    elif damage == "output replaced":
        shutil.copy(out, tmp_path / "copy")
        os.replace(tmp_path / "copy", out)
    r = rebuild(src, out)
    assert "full build" in r.stdout
    lines = r.stderr.splitlines()
    assert lines == [f"toyc: full build: {lines[0].split(': ', 2)[2]}"] and reason in lines[0], \
        r.stderr
    # and the state written by that full build is trusted next time
    r = rebuild(src, out)
    assert "full build" not in r.stdout and r.stderr == ""


def test_full_flag_ignores_a_good_state(tmp_path: Path):
    src, out, _ = setup(tmp_path)
    r = rebuild(src, out, "--full")
    assert "full build" in r.stdout


def test_errors_leave_output_and_state_alone(tmp_path: Path):
    src, out, state = setup(tmp_path)
    before = out.read_bytes(), state.read_bytes()
    src.write_text(V1.replace("x * 2", "x * true"))
    r = toyc("build", "-v", str(src), "-o", str(out))
    assert r.status == 1 and "error:" in r.stderr and r.stdout == ""
    assert (out.read_bytes(), state.read_bytes()) == before
    src.write_text(V2)
    r = rebuild(src, out)
    assert "full build" not in r.stdout


def test_missing_output_is_rebuilt(tmp_path: Path):
    src, out, _ = setup(tmp_path)
    out.unlink()
    r = rebuild(src, out)
    assert "full build" in r.stdout


def test_output_being_run_gets_a_full_build_beside_it(tmp_path: Path):
    # A running executable cannot be opened for writing (ETXTBSY): the update becomes a full
    # build to a new file renamed over the output, and the running program is not disturbed.
    src = tmp_path / "p.toy"
    src.write_text('fn main() { sleep_ms(1500); print("old"); }\n')
    out = tmp_path / "p"
    assert toyc("build", str(src), "-o", str(out)).status == 0
    running = subprocess.Popen([str(out)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        src.write_text('fn main() { sleep_ms(1500); print("new"); }\n')
        r = toyc("build", "-v", str(src), "-o", str(out))
        assert r.status == 0, r.stderr
        assert "full build" in r.stdout
        assert r.stderr == "toyc: full build: the output file is being run\n"
    finally:
        stdout, _ = running.communicate(timeout=10)
    assert (running.returncode, stdout) == (0, "old\n")
    assert run([str(out)]).stdout == "new\n"
    r = toyc("build", "-v", str(src), "-o", str(out))
    assert r.stdout.startswith("nothing changed"), r.stdout


def test_any_flipped_bit_is_noticed_or_harmless(tmp_path: Path):
    """One bit flipped anywhere in the state file, at 400 places spread over it (or
    TOYC_STATE_FLIPS=N): a full build's reason, or (a bit SQLite does not use) a state that
    says exactly what the good one says. Every flip inside what the state says is noticed."""
    from toyc import state_store
    from toyc.session import PAGED, FullBuildNeeded, Session

    src, out, state = setup(tmp_path)
    good = state.read_bytes()
    said = state_store.load(state, PAGED)[0]
    # where the rows the store wrote are: every byte of them is under a digest
    rows = [good.index(blob[:40]) for blob in (
        sqlite3.connect(state).execute("SELECT data FROM head").fetchone()[0],
        *(b for (b,) in sqlite3.connect(state).execute("SELECT data FROM pages")))]
    flips = int(os.environ.get("TOYC_STATE_FLIPS") or 400)
    noticed = 0
    for i in range(flips):
        at = i * len(good) // flips
        raw = bytearray(good)
        raw[at] ^= 1 << (i % 8)
        state.write_bytes(bytes(raw))
        try:
            session = Session.load(str(src), str(out), "x86_64")
        except FullBuildNeeded as e:
            assert any(w in str(e) for w in ("damaged", "unreadable", "another format")), e
            noticed += 1
            continue
        assert session is not None
        assert state_store.load(state, PAGED)[0] == said, f"flip at {at} was trusted"
        assert not any(start <= at < start + 40 for start in rows), at
    assert noticed > flips // 4
    state.write_bytes(good)
    assert Session.load(str(src), str(out), "x86_64") is not None


def test_another_spelling_of_the_source_path_is_a_full_build(tmp_path: Path):
    """A panic message and the debug info hold the source's name as given: `p.toy`,
    `./p.toy` and the absolute path make different outputs, so an update made under another
    spelling would mix them."""
    text = "fn f(x: int) -> int {\n    return 10 / x;\n}\nfn main() -> int {\n" \
           "    return f(argc() - 1);\n}\n"
    (tmp_path / "p.toy").write_text(text)
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "p.toy").write_text(text.replace("10 /", "20 /"))
    spellings = ["p.toy", "./p.toy", str(tmp_path / "p.toy"), "p.toy"]
    assert toyc("build", "p.toy", "-o", "out", cwd=tmp_path).status == 0
    (tmp_path / "p.toy").write_text(text.replace("10 /", "20 /"))
    for before, name in zip(spellings, spellings[1:], strict=False):
        r = toyc("build", "-v", name, "-o", "out", cwd=tmp_path)
        assert r.status == 0, r.stderr
        assert f"full build: the source was named {before} in the last build, now {name}" in \
            r.stderr, r.stderr
        c = toyc("build", name.replace(str(tmp_path), str(clean)), "-o", "out", cwd=clean)
        assert c.status == 0, c.stderr
        got, want = run([str(tmp_path / "out")]), run([str(clean / "out")])
        assert got.stderr == want.stderr.replace(str(clean), str(tmp_path)), got.stderr
        assert name in got.stderr
        again = toyc("build", "-v", name, "-o", "out", cwd=tmp_path)
        assert again.stdout.startswith("nothing changed"), again.stdout + again.stderr
