"""Multi-step edit scenarios (tests/incremental/*.toyinc), in the manner of Zig's test/incremental.

This module owns the scenario format and its runner. One scenario file holds several successive
versions of one program; each version is a step, written over `src.toy` in the scenario's own
directory and built with `toyc build -v src.toy -o prog`, one toyc process per step, so the first
step is a full build and every later one an incremental update from the state file the last
successful step left.

Format. A line starting with `#` is a directive (Toy has no `#` token, so no program line starts
with one); `## text` is a comment. A step's directives (and comments) come first, its program
text after them; a `#` line inside the program text is an error:

    ## Comment lines are ignored.
    #update=DESCRIPTION          starts a step (the first line of every step)
    #expect_stdout="..."         the program's standard output, a JSON string (default "")
    #expect_stderr="..."         the program's standard error, a JSON string (default "")
    #expect_status=N             the program's exit status (default 0)
    #expect_summary=TEXT         TEXT appears in the one-line `-v` summary (repeatable)
    #reject_summary=TEXT         TEXT does not appear in it (repeatable)
    #expect_section=NAME SECTION symbol NAME is defined in section SECTION (repeatable)
    #expect_string="..."         a `toy.str.*` symbol holds exactly this string (repeatable)
    #reject_string="..."         no `toy.str.*` symbol holds it (repeatable)
    #expect_grown=SECTION        SECTION's size grew in this step: what it had reserved did not
                                 suffice (repeatable)
    #expect_build=full           this step is a full build (the default for the first step; every
                                 later step must be incremental, its summary free of "full build"
                                 and toyc's stderr empty, unless it says so)
    #expect_message=TEXT         a line toyc writes to stderr contains TEXT (repeatable; say, the
                                 reason of a full build, `toyc: full build: REASON`)
    #expect_error=L:C: MESSAGE   the build fails with exactly these diagnostics, in order
                                 (repeatable); such a step takes no other expectation than
                                 #expect_message
    #KEY@ARCH=VALUE              directive KEY applies only when building for ARCH (for what
                                 depends on code size: what moves, when a section grows)
    fn main() { ... }            the COMPLETE program text of this version, verbatim, up to the
                                 next `#update=` (trailing blank lines dropped); line 1 is the
                                 first line after the directives

The program is always named `src.toy`, so panics read `panic: ... at src.toy:L:C`.

After a successful step the runner checks the summary, runs `./prog` (stdout, stderr, status),
and compares `prog` with a clean build of the same text (`toyc build --full src.toy -o clean`):
same behaviour, same `.symtab` symbols (name, type, binding, size, section; addresses ignored,
STT_FILE and STT_SECTION entries left out), the same section names in the same order and the
same program header types in the same order, the same debug info (`conftest.debug_description`:
declarations, locals, blocks and line tables, addresses relative to their function), and
`prog` must pass `eu-elflint --gnu-ld` and
`readelf -a` cleanly. After a failing step, `prog` must be byte-identical to before and still
behave as the last good version did, and the clean build must report the same diagnostics.
`tests/test_link_incremental.py` runs the same checks on steps of its own that link C objects
(`builds`' `inputs`).
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import (
    ARCHES,
    ROOT,
    TOYC,
    Result,
    arch_args,
    debug_description,
    require,
    run,
    runner,
)

SCENARIO_DIR = ROOT / "tests" / "incremental"
SCENARIOS = sorted(SCENARIO_DIR.glob("*.toyinc"))
SOURCE = "src.toy"
DIAGNOSTIC = re.compile(r"^src\.toy:(\d+):(\d+): error: (.*)$")
STT_SKIPPED = ("STT_FILE", "STT_SECTION")

# Scenarios that fail because of a bug in toyc, with the bug; strict, so a fix is noticed.
KNOWN_BUGS: dict[str, str] = {}


# ---- the scenario format -------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    line: int  # of its `#update=` in the scenario file, for messages
    text: str = ""
    stdout: str = ""
    stderr: str = ""
    status: int = 0
    summary: list[str] = field(default_factory=list)
    not_summary: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    not_strings: list[bytes] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    full: bool | None = None  # None: full for the first step, incremental after
    messages: list[str] = field(default_factory=list)  # each in a line of toyc's stderr
    errors: list[str] = field(default_factory=list)
    given: set[str] = field(default_factory=set)  # directives this step used

    def where(self) -> str:
        return f"step {self.name!r} (line {self.line})"


class FormatError(Exception):
    pass


def _json_string(value: str, line: int) -> str:
    try:
        s = json.loads(value)
    except ValueError as e:
        raise FormatError(f"line {line}: expected a JSON string, got {value!r} ({e})") from None
    if not isinstance(s, str):
        raise FormatError(f"line {line}: expected a JSON string, got {value!r}")
    return s


def _directive(step: Step, key: str, value: str, line: int) -> None:
    step.given.add(key)
    if key == "expect_stdout":
        step.stdout = _json_string(value, line)
    elif key == "expect_stderr":
        step.stderr = _json_string(value, line)
    elif key == "expect_status":
        step.status = int(value)
    elif key == "expect_summary":
        step.summary.append(value)
    elif key == "reject_summary":
        step.not_summary.append(value)
    elif key == "expect_section":
        name, section = value.split()
        step.sections.append((name, section))
    elif key == "expect_string":
        step.strings.append(_json_string(value, line).encode())
    elif key == "reject_string":
        step.not_strings.append(_json_string(value, line).encode())
    elif key == "expect_grown":
        step.grown.append(value.strip())
    elif key == "expect_build":
        if value not in ("full", "incremental"):
            raise FormatError(f"line {line}: expect_build is 'full' or 'incremental'")
        step.full = value == "full"
    elif key == "expect_message":
        step.messages.append(value)
    elif key == "expect_error":
        if not re.fullmatch(r"\d+:\d+: .+", value):
            raise FormatError(f"line {line}: expect_error wants 'LINE:COL: MESSAGE'")
        step.errors.append(value)
    else:
        raise FormatError(f"line {line}: unknown directive #{key}")


def parse_scenario(path: Path, arch: str = "x86_64") -> list[Step]:
    steps: list[Step] = []
    body: list[str] = []
    in_text = False

    def finish() -> None:
        while body and not body[-1].strip():
            body.pop()
        steps[-1].text = "\n".join(body) + "\n"
        body.clear()

    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.startswith("#update="):
            if steps:
                finish()
            steps.append(Step(raw[len("#update="):].strip(), n))
            in_text = False
            continue
        if raw.startswith("#"):
            if in_text:
                raise FormatError(f"line {n}: directives go before the program text")
            if raw.startswith("##"):
                continue
            m = re.fullmatch(r"#(\w+)(?:@(\w+))?=(.*)", raw)
            if m is None or not steps:
                raise FormatError(f"line {n}: expected '#update=' or '#KEY=VALUE'")
            if m.group(2) not in (None, *ARCHES):
                raise FormatError(f"line {n}: unknown architecture {m.group(2)!r}")
            if m.group(2) in (None, arch):
                _directive(steps[-1], m.group(1), m.group(3), n)
            continue
        if not steps:
            if raw.strip():
                raise FormatError(f"line {n}: text before the first '#update='")
            continue
        in_text = True
        body.append(raw)
    if not steps:
        raise FormatError("no '#update=' step")
    finish()
    if steps[0].errors:
        raise FormatError("the first step must build")
    for s in steps:
        if s.errors and not s.given <= {"expect_error", "expect_message"}:
            raise FormatError(f"{s.where()}: an error step takes only #expect_error "
                              "and #expect_message")
    return steps


# ---- reading the output --------------------------------------------------------------------------


@dataclass
class Image:
    symbols: list[tuple[str, str, str, int, str]]  # name, type, binding, size, section
    strings: list[bytes]  # contents of the toy.str.* symbols
    section_of: dict[str, list[str]]
    sizes: dict[str, int]  # section name -> sh_size
    layout: tuple[list[str], list[str]]  # section names in order, program header types


def _read(elf: ELFFile, addr: int, size: int) -> bytes:
    for seg in elf.iter_segments():
        h = seg.header
        if h.p_type == "PT_LOAD" and h.p_vaddr <= addr and addr + size <= h.p_vaddr + h.p_memsz:
            rel = addr - h.p_vaddr
            data = seg.data()
            return (data[rel : rel + size]).ljust(size, b"\0")
    raise AssertionError(f"[{addr:#x}, +{size}) is not inside one PT_LOAD segment")


def _string_contents(elf: ELFFile, value: int, size: int) -> bytes:
    """A `toy.str.*` symbol's string: u64 length, the bytes, a NUL; the symbol covers all
    three or starts at the bytes (LANGUAGE.md: the value of a str is its first byte)."""
    raw = _read(elf, value, size)
    if size >= 9 and struct.unpack("<Q", raw[:8])[0] == size - 9 and raw[-1] == 0:
        return raw[8:-1]
    (length,) = struct.unpack("<Q", _read(elf, value - 8, 8))
    assert length == size - 1 and raw[-1:] == b"\0", f"string symbol at {value:#x} is malformed"
    return raw[:-1]


def load_image(path: Path) -> Image:
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    names = [s.name for s in elf.iter_sections()]
    symtab = elf.get_section_by_name(".symtab")
    assert symtab is not None, f"{path.name} has no .symtab"
    symbols, strings, section_of = [], [], {}
    for i, s in enumerate(symtab.iter_symbols()):
        kind = s["st_info"]["type"]
        if i == 0 or kind in STT_SKIPPED:
            continue
        shndx = s["st_shndx"]
        section = names[shndx] if isinstance(shndx, int) else str(shndx)
        symbols.append((s.name, kind, s["st_info"]["bind"], s["st_size"], section))
        section_of.setdefault(s.name, []).append(section)
        if s.name.startswith("toy.str."):
            strings.append(_string_contents(elf, s["st_value"], s["st_size"]))
    sizes = {s.name: s["sh_size"] for s in elf.iter_sections()}
    layout = (names, [seg["p_type"] for seg in elf.iter_segments()])
    return Image(sorted(symbols), strings, section_of, sizes, layout)


def diagnostics(stderr: str) -> list[str]:
    return [f"{m.group(1)}:{m.group(2)}: {m.group(3)}"
            for m in map(DIAGNOSTIC.match, stderr.splitlines()) if m]


# ---- the runner ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of the toyc processes: Python may cache their bytecode (in a directory
    of its own, not in the tree), which saves a quarter of each process's start-up where
    PYTHONDONTWRITEBYTECODE is set; nothing else differs."""
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return e


def start(work: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([*TOYC, "build", *args], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p: subprocess.Popen) -> Result:
    out, err = p.communicate(timeout=120)
    return Result(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def builds(work: Path, env: dict[str, str], arch: str,
           inputs: tuple[str, ...] = ()) -> tuple[Result, Result]:
    """The update under test, `toyc build -v src.toy INPUTS -o prog`, and the reference, a
    clean build of the same text and linker inputs into `clean`: two separate toyc processes,
    run side by side."""
    clean = start(work, env, "--full", SOURCE, *inputs, "-o", "clean", *arch_args(arch))
    update = start(work, env, "-v", SOURCE, *inputs, "-o", "prog", *arch_args(arch))
    return finish(update), finish(clean)


def check_messages(step: Step, stderr: str) -> None:
    lines = stderr.splitlines()
    for text in step.messages:
        assert any(text in line for line in lines), \
            f"{step.where()}: no line of toyc's stderr says {text!r}:\n{stderr}"


def check_behaviour(exe: Path, step: Step, what: str, arch: str) -> None:
    r = run([*runner(arch), str(exe)], cwd=exe.parent, timeout=30)
    assert (r.stdout, r.stderr, r.status) == (step.stdout, step.stderr, step.status), \
        f"{what} after {step.where()}: got stdout={r.stdout!r} stderr={r.stderr!r} " \
        f"status={r.status}"


def check_failing_step(work: Path, env: dict[str, str], step: Step, good: Step,
                       arch: str, inputs: tuple[str, ...] = ()) -> None:
    prog = work / "prog"
    before = prog.read_bytes()
    clean_before = (work / "clean").read_bytes()
    r, c = builds(work, env, arch, inputs)
    assert r.status == 1, f"{step.where()} should fail:\n{r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert r.stdout == "", f"{step.where()}: a failed build printed a summary: {r.stdout!r}"
    assert diagnostics(r.stderr) == step.errors, f"{step.where()}:\n{r.stderr}"
    check_messages(step, r.stderr)
    assert c.status == 1 and diagnostics(c.stderr) == step.errors, \
        f"{step.where()}: a clean build reports other errors:\n{c.stderr}"
    assert prog.read_bytes() == before, f"{step.where()}: a failed update changed prog"
    assert (work / "clean").read_bytes() == clean_before, "a failed full build changed clean"
    check_behaviour(prog, good, f"prog (unchanged by {step.name!r})", arch)


def check_good_step(work: Path, env: dict[str, str], step: Step, before: Image | None,
                    arch: str, inputs: tuple[str, ...] = ()) -> Image:
    r, c = builds(work, env, arch, inputs)
    assert r.status == 0, f"{step.where()} failed:\n{r.stderr}"
    assert c.status == 0, f"{step.where()}: the clean build failed:\n{c.stderr}"
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"{step.where()}: expected one summary line, got {r.stdout!r}"
    summary = lines[0]
    full = before is None if step.full is None else step.full
    if full:
        assert "full build" in summary, f"{step.where()}: expected a full build: {summary}"
    else:
        assert "full build" not in summary, f"{step.where()}: not incremental: {summary}\n" \
            f"{r.stderr}"
        assert r.stderr == "", f"{step.where()}: {r.stderr}"
    check_messages(step, r.stderr)
    for text in step.summary:
        assert text in summary, f"{step.where()}: {text!r} not in summary: {summary}"
    for text in step.not_summary:
        assert text not in summary, f"{step.where()}: {text!r} in summary: {summary}"

    prog, reference = work / "prog", work / "clean"
    check_behaviour(prog, step, "prog", arch)
    check_behaviour(reference, step, "the clean build", arch)

    img, ref = load_image(prog), load_image(reference)
    assert img.symbols == ref.symbols, f"{step.where()}: symbols differ from a clean build\n" \
        f"only in prog: {sorted(set(img.symbols) - set(ref.symbols))}\n" \
        f"only in clean: {sorted(set(ref.symbols) - set(img.symbols))}"
    # The same sections, in the same order, and the same kinds of segments: an update must
    # also take away what a clean build does not have (say, the TLS sections and segments).
    assert img.layout == ref.layout, f"{step.where()}: sections or program headers differ " \
        f"from a clean build's:\nprog:  {img.layout}\nclean: {ref.layout}"
    for name, section in step.sections:
        assert img.section_of.get(name) == [section], \
            f"{step.where()}: {name} is in {img.section_of.get(name)}, not {section}"
    for s in step.strings:
        assert img.strings.count(s) == 1, \
            f"{step.where()}: {s!r} is stored {img.strings.count(s)} times"
    for s in step.not_strings:
        assert s not in img.strings, f"{step.where()}: {s!r} is still stored"
    for name in step.grown:
        assert before is not None and img.sizes[name] > before.sizes[name], \
            f"{step.where()}: {name} did not grow: {before and before.sizes[name]} -> " \
            f"{img.sizes[name]} bytes"

    assert debug_description(prog) == debug_description(reference), \
        f"{step.where()}: the debug info differs from a clean build's"
    lint = run([require("eu-elflint"), "--gnu-ld", str(prog)])
    assert lint.status == 0 and "No errors" in lint.stdout, \
        f"{step.where()}: eu-elflint:\n{lint.stdout}{lint.stderr}"
    readelf = run([require("readelf"), "-a", str(prog)])
    assert readelf.status == 0 and readelf.stderr == "", \
        f"{step.where()}: readelf -a:\n{readelf.stderr}"
    return img


def _params():
    for path in SCENARIOS:
        marks = []
        if path.stem in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[path.stem]))
        yield pytest.param(path, id=path.stem, marks=marks)


def test_scenarios_exist():
    assert len(SCENARIOS) >= 18, [p.name for p in SCENARIOS]
    for name in KNOWN_BUGS:
        assert (SCENARIO_DIR / f"{name}.toyinc").exists(), f"KNOWN_BUGS names {name}"


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("path", list(_params()))
def test_scenario(path: Path, arch: str, tmp_path: Path, env: dict[str, str]):
    steps = parse_scenario(path, arch)
    good: Step | None = None
    image: Image | None = None
    for step in steps:
        (tmp_path / SOURCE).write_text(step.text, encoding="utf-8")
        if step.errors:
            assert good is not None
            check_failing_step(tmp_path, env, step, good, arch)
        else:
            image = check_good_step(tmp_path, env, step, image, arch)
            good = step


@pytest.mark.parametrize("text, message", [
    ("fn main() {}\n", "text before the first"),
    ("#update=a\n#expect_stdout=hi\nfn main() {}\n", "JSON string"),
    ("#update=a\nfn main() {}\n#expect_status=1\n", "before the program text"),
    ("#update=a\n#expect_stdot=\"\"\nfn main() {}\n", "unknown directive"),
    ("#update=a\n#expect_status@vax=1\nfn main() {}\n", "unknown architecture"),
    ("#update=a\n#expect_error=1:1: oops\nfn main( {}\n", "first step must build"),
    ("#update=a\nfn main() {}\n#update=b\n#expect_error=oops\nfn main( {}\n", "LINE:COL"),
    ("#update=a\nfn main() {}\n#update=b\n#expect_error=1:9: oops\n#expect_status=1\nfn main(\n",
     "only #expect_error"),
])
def test_format_errors(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.toyinc"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        parse_scenario(path)


def test_format_keeps_program_text_verbatim(tmp_path: Path):
    path = tmp_path / "ok.toyinc"
    path.write_text("## about\n#update=one\n#expect_stdout=\"a\\n\"\n#expect_summary=x; y\n"
                    "\n\n// line 3\nfn main() {}\n\n\n"
                    "#update=two\n#expect_build=full\nfn main() {}\n")
    one, two = parse_scenario(path)
    assert (one.name, one.stdout, one.summary) == ("one", "a\n", ["x; y"])
    assert one.text == "\n\n// line 3\nfn main() {}\n"
    assert (two.name, two.full, two.text) == ("two", True, "fn main() {}\n")
