"""The `toyc` command line, in the manner of chibicc's test/driver.sh.

`-o`, the default output name, `toyc run`, `--version`, `--help`, quiet success, and every way an
invocation can fail: each failure is exit status 1, a message on stderr (never a traceback) and
no output file, not even a half-written temporary one.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from conftest import SAMPLES, TOYC, build, run, toyc

HELLO = SAMPLES / "hello.toy"
HELLO_OUT = "hello, toy\nsum of squares: 14 calls: 3\n"
ARGS_TOY = """\
// Prints its arguments, one per line, then exits with parse_int(argv(1)).
fn main() -> int {
    let i = 1;
    while i < argc() {
        print(i, argv(i));
        i += 1;
    }
    eprint("to stderr");
    return parse_int(argv(1));
}
"""
PANIC_TOY = """\
var table: [int; 4];

fn main() -> int {
    print("before the panic");
    let i = 4;
    return table[i];
}
"""
POSITION = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): error: ", re.M)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """`toyc run` caches executables under $XDG_CACHE_HOME; keep them out of the real home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def files_under(root: Path) -> set[str]:
    """Every file below `root`, except the build state toyc keeps beside each output."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not p.name.endswith(".toyc-state")}


def assert_clean_failure(result, *, mentions: str | None = None) -> None:
    assert result.status == 1, f"status {result.status}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "error" in result.stderr.lower(), result.stderr
    assert result.stdout == ""
    if mentions is not None:
        assert mentions in result.stderr, result.stderr


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---- -o, default output, the output file ---------------------------------------------------------

def test_dash_o_names_the_output(tmp_path: Path):
    (tmp_path / "out").mkdir()
    r = build(HELLO, tmp_path / "out" / "greeter")
    assert r.status == 0, r.stderr
    assert run([str(tmp_path / "out" / "greeter")]).stdout == HELLO_OUT
    # -o before the file, and a relative path, resolved against the current directory
    r = toyc("build", "-o", "out/second", str(HELLO), cwd=tmp_path)
    assert r.status == 0, r.stderr
    assert run([str(tmp_path / "out" / "second")]).stdout == HELLO_OUT
    assert files_under(tmp_path) == {"out", "out/greeter", "out/second"}


def test_default_output_is_name_in_current_directory(tmp_path: Path):
    src, work = tmp_path / "src", tmp_path / "work"
    src.mkdir()
    work.mkdir()
    shutil.copy(HELLO, src / "hello.toy")
    r = toyc("build", "../src/hello.toy", cwd=work)
    assert r.status == 0, r.stderr
    assert files_under(work) == {"hello"}, "the output belongs in the current directory"
    assert files_under(src) == {"hello.toy"}
    assert run(["./hello"], cwd=work).stdout == HELLO_OUT


def test_source_without_toy_suffix_is_not_overwritten(tmp_path: Path):
    text = HELLO.read_text()
    write(tmp_path / "prog", text)
    r = toyc("build", "prog", cwd=tmp_path)
    assert r.status == 0, r.stderr
    assert (tmp_path / "prog").read_text() == text
    new = files_under(tmp_path) - {"prog"}
    assert len(new) == 1, new
    assert run([str(tmp_path / new.pop())]).stdout == HELLO_OUT


def test_output_is_executable(tmp_path: Path):
    exe = tmp_path / "hello"
    p = subprocess.run([*TOYC, "build", str(HELLO), "-o", str(exe)], capture_output=True,
                       preexec_fn=lambda: os.umask(0o022), timeout=60)
    assert p.returncode == 0, p.stderr
    mode = stat.S_IMODE(exe.stat().st_mode)
    assert mode == 0o755, oct(mode)
    assert os.access(exe, os.X_OK)


def test_quiet_on_success(tmp_path: Path):
    r = build(HELLO, tmp_path / "hello")
    assert (r.status, r.stdout, r.stderr) == (0, "", "")


def test_time_prints_passes_on_stderr_only(tmp_path: Path):
    r = toyc("build", "--time", str(HELLO), "-o", str(tmp_path / "hello"))
    assert r.status == 0 and r.stdout == ""
    assert re.search(r"\d", r.stderr) and len(r.stderr.splitlines()) >= 2, r.stderr


def test_failed_build_keeps_the_existing_output(tmp_path: Path):
    exe = tmp_path / "prog"
    assert build(HELLO, exe).status == 0
    before = exe.read_bytes()
    broken = write(tmp_path / "broken.toy", "fn main() -> int {\n    return true;\n}\n")
    r = build(broken, exe)
    assert_clean_failure(r, mentions="broken.toy:2:")
    assert exe.read_bytes() == before
    assert run([str(exe)]).stdout == HELLO_OUT
    assert files_under(tmp_path) == {"prog", "broken.toy"}, "temporary files left behind"


def test_output_over_the_source_is_refused(tmp_path: Path):
    text = HELLO.read_text()
    src = write(tmp_path / "hello.toy", text)
    r = toyc("build", "hello.toy", "-o", "hello.toy", cwd=tmp_path)
    assert_clean_failure(r)
    assert src.read_text() == text


# ---- toyc run ------------------------------------------------------------------------------------

def test_run_passes_arguments_and_status(tmp_path: Path):
    write(tmp_path / "args.toy", ARGS_TOY)
    r = toyc("run", "args.toy", "--", "42", "two words", "--help", "-o", cwd=tmp_path)
    assert r.status == 42, r.stderr
    assert r.stdout == "1 42\n2 two words\n3 --help\n4 -o\n"
    assert r.stderr == "to stderr\n"
    r = toyc("run", "args.toy", "--", "300", cwd=tmp_path)
    assert r.status == 300 & 255
    assert files_under(tmp_path) == {"args.toy"}, "toyc run wrote into the source directory"


def test_run_panic_exits_101_with_output_passed_through(tmp_path: Path):
    write(tmp_path / "boom.toy", PANIC_TOY)
    r = toyc("run", "boom.toy", cwd=tmp_path)
    assert r.status == 101
    assert r.stdout == "before the panic\n"
    assert re.fullmatch(r"panic: index out of bounds at [^\n]*boom\.toy:6:12\n", r.stderr), \
        r.stderr


def test_run_of_a_bad_program_does_not_run(tmp_path: Path):
    write(tmp_path / "bad.toy", 'fn main() {\n    print("x")\n}\n')
    r = toyc("run", "bad.toy", cwd=tmp_path)
    assert_clean_failure(r, mentions="bad.toy:")
    assert "x" not in r.stdout


# ---- --version, --help ---------------------------------------------------------------------------

def test_version():
    r = toyc("--version")
    assert r.status == 0, r.stderr
    assert r.stdout.strip() == f"toyc {metadata.version('toyc')}"


def test_help():
    r = toyc("--help")
    assert r.status == 0
    assert "build" in r.stdout and "run" in r.stdout
    for command in ("build", "run"):
        r = toyc(command, "--help")
        assert r.status == 0 and "FILE" in r.stdout, r.stdout


# ---- every way to fail ---------------------------------------------------------------------------

BAD_INVOCATIONS = {
    # name: (setup returning argv, text stderr must contain)
    "missing file": (lambda t: ["build", "nope.toy"], "nope.toy"),
    "directory": (lambda t: (t / "dir.toy").mkdir() or ["build", "dir.toy"], "dir.toy"),
    "invalid utf-8": (lambda t: write(t / "bad.toy", b'fn main() {\n    print("caf\xe9");\n}\n')
                      and ["build", "bad.toy"], "bad.toy:2:15: error:"),
    "syntax error": (lambda t: write(t / "syn.toy", "fn main() {\n    let x = ;\n}\n")
                     and ["build", "syn.toy"], "syn.toy:2:"),
    "empty source": (lambda t: write(t / "empty.toy", "") and ["build", "empty.toy"], "main"),
    "no main": (lambda t: write(t / "nomain.toy", "fn helper() {\n}\n")
                and ["build", "nomain.toy"], "main"),
    "int literal past 64 bits": (
        lambda t: write(t / "big.toy", "fn main() -> int {\n    let x = 18446744073709551616;\n"
                        "    return 0;\n}\n") and ["build", "big.toy"], "big.toy:2:13: error:"),
    "hex literal past 64 bits": (
        lambda t: write(t / "hex.toy", "const H: int = 0x1_0000_0000_0000_0000;\n"
                        "fn main() {\n}\n") and ["build", "hex.toy"], "hex.toy:1:16: error:"),
    "unknown command": (lambda t: ["frobnicate", "x.toy"], "frobnicate"),
    "no command": (lambda t: [], None),
    "build without file": (lambda t: ["build"], None),
    "run without file": (lambda t: ["run"], None),
    "-o without value": (lambda t: write(t / "ok.toy", HELLO.read_text())
                         and ["build", "ok.toy", "-o"], None),
    "empty -o value": (lambda t: write(t / "ok.toy", HELLO.read_text())
                       and ["build", "ok.toy", "-o", ""], None),
    "unknown option": (lambda t: write(t / "ok.toy", HELLO.read_text())
                       and ["build", "--frobnicate", "ok.toy"], "--frobnicate"),
    "output in a missing directory": (lambda t: write(t / "ok.toy", HELLO.read_text())
                                      and ["build", "ok.toy", "-o", "nodir/ok"], "nodir"),
    "output is a directory": (lambda t: write(t / "ok.toy", HELLO.read_text())
                              and ((t / "outdir").mkdir() or ["build", "ok.toy", "-o", "outdir"]),
                              "outdir"),
    "run a missing file": (lambda t: ["run", "nope.toy", "--", "1"], "nope.toy"),
}


@pytest.mark.parametrize("case", list(BAD_INVOCATIONS))
def test_bad_invocation(tmp_path: Path, case: str):
    setup, mentions = BAD_INVOCATIONS[case]
    argv = setup(tmp_path)
    before = files_under(tmp_path)
    r = toyc(*argv, cwd=tmp_path)
    assert_clean_failure(r, mentions=mentions)
    assert files_under(tmp_path) == before, "a failed build left a file behind"


def test_unreadable_source(tmp_path: Path):
    """chmod 000. Root reads anything, so as root the capabilities that allow it are dropped."""
    src = write(tmp_path / "secret.toy", HELLO.read_text())
    src.chmod(0)
    cmd = [*TOYC, "build", "secret.toy"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else []
        if not setpriv or run([*drop, "cat", str(src)]).status == 0:
            pytest.skip("running as root: chmod 000 does not stop reading")
        cmd = [*drop, *cmd]
    r = run(cmd, cwd=tmp_path)
    assert_clean_failure(r, mentions="secret.toy")
    assert files_under(tmp_path) == {"secret.toy"}


def test_every_error_is_reported_at_once(tmp_path: Path):
    write(tmp_path / "two.toy", "fn main() -> int {\n    let a = 1 + true;\n"
          "    let b = undefined_name;\n    return 0;\n}\n")
    r = toyc("build", "two.toy", cwd=tmp_path)
    assert_clean_failure(r)
    lines = [m.group("line") for m in POSITION.finditer(r.stderr)]
    assert lines == ["2", "3"], r.stderr
    assert files_under(tmp_path) == {"two.toy"}


# ---- deep nesting --------------------------------------------------------------------------------

N = 10_000


def deep(kind: str) -> tuple[str, int]:
    """A program nested N deep, and the status it exits with if a compiler accepts it."""
    body = {
        "parentheses": ("    let x = " + "(" * N + "7" + ")" * N + ";\n    return x;\n", 7),
        "blocks": ("    let x = 0;\n    " + "{" * N + "x = 5;" + "}" * N + "\n    return x;\n", 5),
        "if statements": ("    let x = 0;\n    " + "if true {" * N + "x = 6;" + "}" * N
                          + "\n    return x;\n", 6),
        "nested sums": ("    let x = " + "(1 + " * N + "1" + ")" * N + ";\n    return x & 255;\n",
                        (N + 1) & 255),
        "unary minus": ("    let x = " + "-" * N + "9;\n    return x;\n", 9),
        "calls": ("    return " + "id(" * N + "3" + ")" * N + ";\n", 3),
        "indexing": ("    let a: [int; 2];\n    return " + "a[" * N + "0" + "]" * N + ";\n", 0),
    }
    text, status = body[kind]
    return "fn id(x: int) -> int {\n    return x;\n}\n\nfn main() -> int {\n" + text + "}\n", status


@pytest.mark.parametrize("kind", ["parentheses", "blocks", "if statements", "nested sums",
                                  "unary minus", "calls", "indexing"])
def test_deep_nesting_is_handled_cleanly(tmp_path: Path, kind: str):
    """10,000 levels: a positioned error and status 1 in a few seconds, no crash, no hang.

    docs/language.md limits the nesting of expressions and blocks to 1000 levels. Parentheses
    alone add no level of syntax, so for them a compiler that accepts the program and gets it
    right is fine too.
    """
    text, status = deep(kind)
    write(tmp_path / "deep.toy", text)
    start = time.monotonic()
    r = toyc("build", "deep.toy", "-o", "deep", cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"toyc took {elapsed:.1f}s"
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-2000:]
    assert len(r.stderr) < 1_000_000, "the diagnostics are unreasonably long"
    if r.status == 0 and kind == "parentheses":
        assert run([str(tmp_path / "deep")]).status == status
        return
    assert_clean_failure(r)
    m = POSITION.search(r.stderr)
    assert m and m.group("file") == "deep.toy", r.stderr[:500]
    assert files_under(tmp_path) == {"deep.toy"}


def test_int_literal_limits_are_accepted(tmp_path: Path):
    text = ("const MAX: int = 9223372036854775807;\nconst MIN: int = -9223372036854775808;\n"
            "fn main() {\n    print(MAX, MIN, 0x7fff_ffff_ffff_ffff, -0x8000_0000_0000_0000);\n}\n")
    write(tmp_path / "limits.toy", text)
    r = toyc("build", "limits.toy", cwd=tmp_path)
    assert r.status == 0, r.stderr
    out = run([str(tmp_path / "limits")]).stdout
    assert out == ("9223372036854775807 -9223372036854775808 9223372036854775807 "
                   "-9223372036854775808\n")


def test_toyc_is_the_same_as_python_m_toyc(tmp_path: Path):
    """The installed `toyc` script and `python -m toyc` agree (the tests use the latter)."""
    script = shutil.which("toyc") or str(Path(sys.executable).parent / "toyc")
    if not os.path.exists(script):
        pytest.skip("no toyc script on PATH")
    r = run([script, "--version"])
    assert r.status == 0 and r.stdout == toyc("--version").stdout


def test_version_and_help_import_none_of_the_compiler():
    """`toyc --version` and `toyc --help` start quickly: no parser (lark), assembler
    (keystone), ELF reader (pyelftools), disassembler (capstone), nor toyc's passes."""
    heavy = ("lark", "keystone", "elftools", "capstone", "toyc.driver", "toyc.session",
             "linker.zig_object", "linker.dwarf")
    for args in (["--version"], ["--help"], ["build", "--help"]):
        p = subprocess.run([*TOYC, *args], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
        assert p.returncode == 0, p.stderr
        imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines()
                    if line.startswith("import time:")}
        assert imported and not {m for m in imported if m.split(".")[0] in heavy or m in heavy}, \
            sorted(m for m in imported if m.split(".")[0] in heavy or m in heavy)


def _on_terminal(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[int, bytes]:
    """Run `cmd` with a 24x80 pseudo-terminal as its stdin, stdout and stderr: (status,
    everything it wrote)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    p = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=120), out


def drew_progress(cwd: Path, env: dict) -> None:
    """`toyc build --full big.toy` on a terminal drew the bars of a full build's steps, and
    erased them."""
    status, out = _on_terminal([*TOYC, "build", "--full", "big.toy"], cwd, env)
    assert status == 0, out
    text = out.decode("utf-8", "replace")
    assert all(step in text for step in ("parsing", "generating code", "linking")), text[:500]
    assert text.replace("\r", "\n").split("\n")[-1].strip() == "", "the bar was left"


def test_long_full_build_shows_progress_on_a_terminal_only(tmp_path: Path):
    """A full build draws a progress bar on a terminal (parsing, generating code, linking),
    erased when it ends; nothing with -q, in a pipe, or for a build shorter than the delay.
    (The bars are asked for at once, TOYC_PROGRESS_DELAY=0: how long a phase takes depends on
    the machine.)"""
    body = "".join(f"fn f{i}(x: int) -> int {{\n    let y = x * {i} + 1;\n"
                   f"    if y > 100 {{ return y - {i}; }}\n    return y;\n}}\n"
                   for i in range(2500))
    (tmp_path / "big.toy").write_text(body + "fn main() -> int { print(f7(3)); return 0; }\n")
    at_once = {**os.environ, "TOYC_PROGRESS_DELAY": "0"}
    drew_progress(tmp_path, at_once)
    assert run([str(tmp_path / "big")]).stdout == "22\n"
    assert _on_terminal([*TOYC, "build", "-q", "--full", "big.toy"], tmp_path,
                        at_once) == (0, b"")
    piped = run([*TOYC, "build", "--full", "big.toy"], cwd=tmp_path)
    assert (piped.status, piped.stdout, piped.stderr) == (0, "", "")
    (tmp_path / "small.toy").write_text("fn main() -> int { return 0; }\n")
    patient = {**os.environ, "TOYC_PROGRESS_DELAY": "20"}
    assert _on_terminal([*TOYC, "build", "--full", "small.toy"], tmp_path, patient) == (0, b"")
