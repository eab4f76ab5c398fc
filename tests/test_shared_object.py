"""Reading shared libraries (`linker.shared_object`) and GNU ld input scripts
(`linker.ld_script`), the two readers dynamic linking needs.

- the system's C library, found through its ld script `libc.so` as gcc finds it: soname,
  needed libraries, functions, IFUNCs, TLS and data symbols, default and hidden versions, and
  every dynamic symbol and version definition compared with what `readelf` prints; libm and
  libz the same way (libz's symbols are mostly unversioned);
- a library built here with a version script and `.symver`, holding `foo@V1` and `foo@@V2`:
  the lookup binds to V2, as a program gcc links against it does (its `.gnu.version_r` and
  its output say so);
- what cannot be linked against is a LinkError naming the file: not ELF, truncated, 32-bit,
  an executable (PIE or not), a relocatable object, another machine, no `.dynsym`, and bytes
  overwritten at random (never another exception);
- ld scripts: the system's libc.so and libm.so, INPUT, comments, quoted names, nested
  AS_NEEDED, `-lNAME`, OUTPUT_FORMAT checked, and broken scripts with file:line; telling a
  script from an ELF file, an archive and binary garbage.
"""

from __future__ import annotations

import random
import re
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import require
from linker.elf_file import LinkError
from linker.ld_script import ScriptInput, file_kind, parse_script
from linker.shared_object import (
    STT_GNU_IFUNC,
    SharedObject,
    elf_hash,
    read_shared_object,
    type_name,
)

EM_X86_64, EM_AARCH64 = 62, 183
LIB_DIR = Path("/usr/lib/x86_64-linux-gnu")
LIBC_SCRIPT = LIB_DIR / "libc.so"
STT_FUNC, STT_OBJECT, STT_TLS = 2, 1, 6
STB_GLOBAL, STB_WEAK = 1, 2


def read(path: Path | str, data: bytes | None = None) -> SharedObject:
    data = Path(path).read_bytes() if data is None else data
    return read_shared_object(data, str(path), EM_X86_64, "x86_64")


def error(data: bytes, name: str = "lib.so") -> str:
    with pytest.raises(LinkError) as e:
        read_shared_object(data, name, EM_X86_64, "x86_64")
    return str(e.value)


def script_library(script: Path, suffix: str) -> Path:
    """The shared library an ld script such as libc.so names: its first ELF input."""
    for item in parse_script(script.read_bytes(), str(script), "elf64-x86-64").inputs:
        path = Path(item.name)
        if not item.library and not item.as_needed and path.name.endswith(suffix) \
                and path.is_file():
            return path
    pytest.fail(f"{script} names no {suffix} file")


@pytest.fixture(scope="module")
def libc_path() -> Path:
    if not LIBC_SCRIPT.is_file():
        pytest.skip(f"no {LIBC_SCRIPT} (Debian: apt-get install libc6-dev)")
    return script_library(LIBC_SCRIPT, ".so.6")


@pytest.fixture(scope="module")
def libc(libc_path: Path) -> SharedObject:
    return read(libc_path)


def readelf(*args: str) -> str:
    return subprocess.run([require("readelf"), "-W", *args], capture_output=True, text=True,
                          check=True).stdout


_SYM_ROW = re.compile(r"^\s*(\d+): ([0-9a-f]+)\s+(\d+|0x[0-9a-f]+) (\w+)\s+(\w+)\s+(\w+)\s+"
                      r"(\w+) (\S+)(?: \(\d+\))?$")


def readelf_symbols(path: Path) -> dict[int, tuple]:
    """`readelf --dyn-syms`'s global and weak rows by index: value, size, type, binding,
    visibility, section, and the name with its version ("puts@@GLIBC_2.2.5")."""
    out = {}
    for line in readelf("--dyn-syms", str(path)).splitlines():
        m = _SYM_ROW.match(line)
        if m is None or m[5] == "LOCAL":
            continue
        size = int(m[3], 0)
        bind = "GLOBAL" if m[5] == "UNIQUE" else m[5]
        out[int(m[1])] = (int(m[2], 16), size, m[4], bind, m[6], m[7], m[8])
    return out


def ours(so: SharedObject) -> dict[int, tuple]:
    ndx = {0: "UND", 0xFFF1: "ABS"}
    vis = ["DEFAULT", "INTERNAL", "HIDDEN", "PROTECTED"]
    return {s.index: (s.value, s.size, type_name(s.type),
                      {STB_GLOBAL: "GLOBAL", STB_WEAK: "WEAK"}[s.bind], vis[s.visibility],
                      ndx.get(s.shndx, str(s.shndx)), _readelf_name(s)) for s in so.symbols}


def _readelf_name(s) -> str:
    # readelf leaves the version off a version's own symbol (ABS, named as the version:
    # "GLIBC_2.2.5", not "GLIBC_2.2.5@@GLIBC_2.2.5")
    return s.name if s.shndx == 0xFFF1 and s.name == s.version else str(s)


def readelf_version_defs(path: Path) -> list[tuple[int, str, bool]]:
    """`readelf -V`'s version definitions: index, name, whether BASE."""
    out = []
    for m in re.finditer(r"Flags: (\w+)\s+Index: (\d+)\s+Cnt: \d+\s+Name: (\S+)",
                         readelf("-V", str(path))):
        out.append((int(m[2]), m[3], m[1] == "BASE"))
    return out


def compare_with_readelf(path: Path, so: SharedObject) -> None:
    theirs = readelf_symbols(path)
    mine = ours(so)
    assert len(theirs) > 0 and mine.keys() == theirs.keys()
    wrong = [(i, mine[i], theirs[i]) for i in theirs if mine[i] != theirs[i]]
    assert not wrong, wrong[:10]
    assert [(v.index, v.name, v.base) for v in so.versions] == readelf_version_defs(path)
    assert all(v.hash == elf_hash(v.name) for v in so.versions)


# ---- the C library ------------------------------------------------------------------------------


def test_libc_names(libc: SharedObject):
    assert libc.soname == "libc.so.6"
    assert any(n.startswith("ld-linux") for n in libc.needed), libc.needed
    assert len(libc.symbols) > 2000


@pytest.mark.parametrize("name", ["puts", "printf", "malloc", "free", "exit"])
def test_libc_functions_bind_to_glibc_2_2_5(libc: SharedObject, name: str):
    b = libc.lookup(name)
    assert b is not None and b.symbol.name == name and b.symbol.defined
    assert b.symbol.type == STT_FUNC and b.symbol.default
    assert b.version == b.symbol.version == "GLIBC_2.2.5"
    assert b.hash == elf_hash("GLIBC_2.2.5") == 0x09691A75
    assert str(b.symbol) == f"{name}@@GLIBC_2.2.5"


def test_libc_ifuncs_and_hidden_versions(libc: SharedObject):
    strlen = libc.lookup("strlen")
    assert strlen is not None and strlen.symbol.type == STT_GNU_IFUNC
    memcpy = libc.lookup("memcpy")
    assert memcpy is not None and memcpy.symbol.type == STT_GNU_IFUNC
    # memcpy@GLIBC_2.2.5 (the old memmove-like one) stays for old programs; new links get
    # memcpy@@GLIBC_2.14
    assert memcpy.version == "GLIBC_2.14" and str(memcpy.symbol) == "memcpy@@GLIBC_2.14"
    old = libc.lookup("memcpy", "GLIBC_2.2.5")
    assert old is not None and not old.symbol.default and old.symbol is not memcpy.symbol
    assert str(old.symbol) == "memcpy@GLIBC_2.2.5"
    assert old.hash == elf_hash("GLIBC_2.2.5")
    assert libc.lookup("memcpy", "NO_SUCH_VERSION") is None
    assert libc.lookup("no_such_function_in_libc") is None


def test_libc_data_and_tls(libc: SharedObject):
    errno = libc.exports["errno"]
    assert errno.type == STT_TLS and errno.version == "GLIBC_PRIVATE"
    assert libc.exports["__errno_location"].type == STT_FUNC
    for name in ("environ", "stdout", "stderr"):
        b = libc.lookup(name)
        assert b is not None and b.symbol.type == STT_OBJECT and b.symbol.size == 8, name


def test_libc_undefined_symbols(libc: SharedObject):
    """What the C library needs from the dynamic loader, with the loader's versions."""
    undefined = {s.name: s for s in libc.undefined()}
    assert "__tls_get_addr" in undefined
    assert undefined["__tls_get_addr"].version.startswith("GLIBC_")
    assert all(s.name not in libc.exports for s in undefined.values())


def test_libc_matches_readelf(libc_path: Path, libc: SharedObject):
    compare_with_readelf(libc_path, libc)


def test_libm_matches_readelf():
    script = LIB_DIR / "libm.so"
    if not script.is_file():
        pytest.skip(f"no {script} (Debian: apt-get install libc6-dev)")
    path = script_library(script, ".so.6") if file_kind(script.read_bytes(), str(script)) \
        == "script" else script
    so = read(path)
    assert so.soname == "libm.so.6" and "libc.so.6" in so.needed
    b = so.lookup("cos")
    assert b is not None and b.symbol.type in (STT_FUNC, STT_GNU_IFUNC)
    compare_with_readelf(path, so)


def test_hash_matches_what_gcc_links(tmp_path: Path, libc: SharedObject):
    """The version and vna_hash a program gcc links records for puts and memcpy."""
    (tmp_path / "p.c").write_text(
        "#include <stdio.h>\n#include <string.h>\n"
        "int main(int c, char **v) { char b[64]; memcpy(b, v[0], c); puts(b); return 0; }\n")
    exe = tmp_path / "p"
    subprocess.run([require("gcc"), "-O0", "-fno-builtin", str(tmp_path / "p.c"), "-o",
                    str(exe)], check=True)
    with open(exe, "rb") as f:
        needs = {(a.name, a.entry["vna_hash"])
                 for file, aux in ELFFile(f).get_section_by_name(".gnu.version_r")
                 .iter_versions() if file.name == "libc.so.6" for a in aux}
    for name in ("puts", "memcpy"):
        b = libc.lookup(name)
        assert (b.version, b.hash) in needs, (name, needs)


# ---- zlib ---------------------------------------------------------------------------------------


def test_libz():
    script = LIB_DIR / "libz.so"
    if not script.exists():
        pytest.skip(f"no {script} (Debian: apt-get install zlib1g-dev)")
    path = script.resolve()
    so = read(path)
    assert so.soname == "libz.so.1" and so.needed == ["libc.so.6"]
    # zlib versions only its newer functions: crc32 and adler32 are unversioned, as readelf
    # shows them (no "@"), and need no .gnu.version_r entry
    for name in ("crc32", "adler32"):
        b = so.lookup(name)
        assert b is not None and b.symbol.type == STT_FUNC
        assert b.version == "" and b.hash == 0 and str(b.symbol) == name
    crc32_z = so.lookup("crc32_z")
    if crc32_z is not None:  # zlib 1.2.9 on
        assert crc32_z.version.startswith("ZLIB_") and crc32_z.hash == elf_hash(crc32_z.version)
    assert so.versions[0].base and so.versions[0].name == "libz.so.1"
    assert all(v.name.startswith("ZLIB_") for v in so.versions[1:])
    compare_with_readelf(path, so)


# ---- a library with two versions of one symbol ----------------------------------------------

VERSIONED_C = r"""
int foo_v1(void) { return 1; }
int foo_v2(void) { return 2; }
int only_old_impl(void) { return 3; }
__asm__(".symver foo_v1, foo@V1");
__asm__(".symver foo_v2, foo@@V2");
__asm__(".symver only_old_impl, only_old@V1");
int plain(void) { return 4; }
int counter = 5;
__thread int per_thread;
int hidden_helper(void) { return 6; }
"""
# foo and only_old are named in the nodes, or `local: *` would make foo@V1 local too
VERSION_SCRIPT = ("V1 { global: foo; only_old; plain; counter; per_thread; local: *; };\n"
                  "V2 { global: foo; } V1;\n")
MAIN_C = r"""
#include <stdio.h>
int foo(void);
int main(void) { printf("%d\n", foo()); return 0; }
"""


@pytest.fixture(scope="module")
def versioned(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("versioned")
    (d / "v.c").write_text(VERSIONED_C)
    (d / "v.map").write_text(VERSION_SCRIPT)
    out = d / "libv.so"
    subprocess.run([require("gcc"), "-shared", "-fPIC", "-O1", "-Wl,--version-script",
                    str(d / "v.map"), "-Wl,-soname,libv.so.1", "-Wl,--no-as-needed", "-lm",
                    str(d / "v.c"), "-o", str(out)], check=True)
    (d / "libv.so.1").symlink_to(out.name)  # what the loader looks for: the soname
    return out


def test_versioned_library(versioned: Path):
    so = read(versioned)
    assert so.soname == "libv.so.1"
    assert "libm.so.6" in so.needed and "libc.so.6" in so.needed
    assert [(v.name, v.base) for v in so.versions] == [("libv.so.1", True), ("V1", False),
                                                      ("V2", False)]
    foos = sorted(str(s) for s in so.symbols if s.name == "foo")
    assert foos == ["foo@@V2", "foo@V1"]
    b = so.lookup("foo")
    assert b is not None and b.version == "V2" and b.hash == elf_hash("V2")
    assert b.symbol.default and b.symbol.type == STT_FUNC
    old = so.lookup("foo", "V1")
    assert old is not None and not old.symbol.default and old.symbol.value != b.symbol.value
    # only a hidden version: a plain reference binds to nothing (GNU ld: undefined)
    assert so.lookup("only_old") is None and so.lookup("only_old", "V1") is not None
    assert so.lookup("plain").version == "V1"
    assert so.lookup("counter").symbol.type == STT_OBJECT
    assert so.lookup("per_thread").symbol.type == STT_TLS
    assert so.lookup("hidden_helper") is None and so.lookup("foo_v1") is None
    compare_with_readelf(versioned, so)


def test_gcc_binds_as_lookup_does(tmp_path: Path, versioned: Path):
    """A program gcc links against the library needs foo@V2 and calls the V2 function."""
    (tmp_path / "m.c").write_text(MAIN_C)
    exe = tmp_path / "m"
    subprocess.run([require("gcc"), str(tmp_path / "m.c"), str(versioned), "-o", str(exe)],
                   check=True)
    with open(exe, "rb") as f:
        needs = {(file.name, a.name, a.entry["vna_hash"])
                 for file, aux in ELFFile(f).get_section_by_name(".gnu.version_r")
                 .iter_versions() for a in aux}
    b = read(versioned).lookup("foo")
    assert ("libv.so.1", b.version, b.hash) in needs
    ran = subprocess.run([str(exe)], capture_output=True, text=True, check=True,
                         env={"LD_LIBRARY_PATH": str(versioned.parent)})
    assert ran.stdout == "2\n"


def test_no_soname_is_the_file_name(tmp_path: Path):
    (tmp_path / "n.c").write_text("int n(void) { return 1; }\n")
    out = tmp_path / "libnoname.so"
    subprocess.run([require("gcc"), "-shared", "-fPIC", str(tmp_path / "n.c"), "-o", str(out)],
                   check=True)
    so = read(out)
    assert so.soname == "libnoname.so" and so.versions == []
    b = so.lookup("n")
    assert b is not None and b.version == "" and b.hash == 0


# ---- what cannot be linked against --------------------------------------------------------------


def test_error_not_elf():
    assert "lib.so: not an ELF" in error(b"these are not a library\n")


@pytest.mark.parametrize("keep", [40, 0.5])
def test_error_truncated(versioned: Path, keep: float):
    data = versioned.read_bytes()
    message = error(data[: int(keep if keep >= 1 else len(data) * keep)])
    assert message.startswith("lib.so: truncated"), message


def test_error_32_bit(versioned: Path):
    data = bytearray(versioned.read_bytes())
    data[4] = 1  # ELFCLASS32
    assert "lib.so: not a 64-bit" in error(bytes(data))


def test_error_another_machine(versioned: Path):
    data = bytearray(versioned.read_bytes())
    struct.pack_into("<H", data, 18, EM_AARCH64)
    message = error(bytes(data))
    assert "lib.so: is for another machine" in message and "183" in message
    assert "x86_64" in message


def test_error_executable_pie():
    true = Path("/bin/true").resolve()
    message = error(true.read_bytes(), str(true))
    assert message.startswith(f"{true}: is an executable"), message


def test_error_executable_and_object(tmp_path: Path):
    (tmp_path / "m.c").write_text("int main(void) { return 0; }\n")
    gcc = require("gcc")
    subprocess.run([gcc, "-no-pie", str(tmp_path / "m.c"), "-o", str(tmp_path / "m")],
                   check=True)
    subprocess.run([gcc, "-c", str(tmp_path / "m.c"), "-o", str(tmp_path / "m.o")], check=True)
    assert "m: is an executable, not a shared library" in error(
        (tmp_path / "m").read_bytes(), "m")
    assert "m.o: is a relocatable object, not a shared library" in error(
        (tmp_path / "m.o").read_bytes(), "m.o")


def test_error_no_dynsym(versioned: Path):
    """ld always makes a .dynsym: a library without one has lost its section headers (as
    sstrip leaves it), or is malformed (the sections that link to it say so)."""
    data = bytearray(versioned.read_bytes())
    struct.pack_into("<Q", data, 40, 0)  # e_shoff
    struct.pack_into("<HH", data, 60, 0, 0)  # e_shnum, e_shstrndx
    message = error(bytes(data))
    assert message.startswith("lib.so: has no dynamic symbol table (.dynsym), nor any section "
                              "headers"), message
    data = bytearray(versioned.read_bytes())
    with open(versioned, "rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections())
                     if s.header["sh_type"] == "SHT_DYNSYM")
        at = elf.header["e_shoff"] + index * elf.header["e_shentsize"]
    struct.pack_into("<I", data, at + 4, 1)  # sh_type: SHT_PROGBITS
    message = error(bytes(data))
    assert message.startswith("lib.so: malformed shared library") and "SHT_DYNSYM" in message


@pytest.mark.parametrize("kind", ["SHT_GNU_verdef", "SHT_GNU_verneed"])
def test_huge_version_counts_end_with_the_chain(versioned: Path, kind: str):
    """A version section's sh_info (its count of entries) made 2**32-1: the chain's last
    entry still ends the reading (pyelftools would parse that entry 4 billion times)."""
    data = bytearray(versioned.read_bytes())
    with open(versioned, "rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections())
                     if s.header["sh_type"] == kind)
        at = elf.header["e_shoff"] + index * elf.header["e_shentsize"]
    struct.pack_into("<I", data, at + 44, 0xFFFFFFFF)  # sh_info
    so = read(versioned, bytes(data))
    assert so.lookup("foo").version == "V2"
    assert so == read(versioned)


def test_overwritten_bytes_are_link_errors(versioned: Path):
    """Bytes overwritten at random in the headers and the sections the reader follows
    (.dynsym, .dynamic, the version sections, whose chains of offsets can be made to loop):
    the library reads, or a LinkError names it; never another exception, nor a hang."""
    original = versioned.read_bytes()
    with open(versioned, "rb") as f:
        elf = ELFFile(f)
        regions = [(s.header["sh_offset"], s.header["sh_size"]) for s in elf.iter_sections()
                   if s.header["sh_type"] in ("SHT_DYNSYM", "SHT_DYNAMIC", "SHT_GNU_versym",
                                              "SHT_GNU_verdef", "SHT_GNU_verneed")]
        shoff = elf.header["e_shoff"]
    regions += [(0, 64), (shoff, len(original) - shoff), (0, len(original))]
    rng = random.Random(7)
    failures = 0
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            start, size = rng.choice(regions)
            data[start + rng.randrange(size)] = rng.randrange(256)
        try:
            read_shared_object(bytes(data), "lib.so", EM_X86_64, "x86_64")
        except LinkError as e:
            assert str(e).startswith("lib.so"), e
            failures += 1
    assert failures > 0


# ---- ld scripts ---------------------------------------------------------------------------------


def test_system_libc_script(libc_path: Path):
    if not LIBC_SCRIPT.is_file():
        pytest.skip(f"no {LIBC_SCRIPT}")
    data = LIBC_SCRIPT.read_bytes()
    assert file_kind(data, str(LIBC_SCRIPT)) == "script"
    script = parse_script(data, str(LIBC_SCRIPT), "elf64-x86-64")
    assert script.output_format == "elf64-x86-64"
    names = [(Path(i.name).name, i.as_needed, i.library, i.group) for i in script.inputs]
    assert names == [("libc.so.6", False, False, 0), ("libc_nonshared.a", False, False, 0),
                     ("ld-linux-x86-64.so.2", True, False, 0)]
    assert file_kind(libc_path.read_bytes(), str(libc_path)) == "elf"
    nonshared = Path(script.inputs[1].name)
    if nonshared.is_file():
        assert file_kind(nonshared.read_bytes(), str(nonshared)) == "archive"


def test_script_input_comments_and_names():
    script = parse_script(
        "/* a comment\n   over lines */\n"
        "INPUT ( liba.so.1, ../b/libb.a /* inline */ \"with space.o\" -lfoo )\n"
        "; /**/ GROUP(-lbar AS_NEEDED(libx.so AS_NEEDED(-ly) liby2.so) last.a)\n"
        "GROUP(second.a)\n", "dir/libfoo.so")
    assert script.output_format is None
    assert script.inputs == [
        ScriptInput("liba.so.1", False, False, None, 3),
        ScriptInput("../b/libb.a", False, False, None, 3),
        ScriptInput("with space.o", False, False, None, 3),
        ScriptInput("foo", True, False, None, 3),
        ScriptInput("bar", True, False, 0, 4),
        ScriptInput("libx.so", False, True, 0, 4),
        ScriptInput("y", True, True, 0, 4),
        ScriptInput("liby2.so", False, True, 0, 4),
        ScriptInput("last.a", False, False, 0, 4),
        ScriptInput("second.a", False, False, 1, 5),
    ]
    assert [str(i) for i in script.inputs[3:5]] == ["-lfoo", "-lbar"]


def test_script_empty_and_only_comments():
    assert parse_script(b"", "e.so").inputs == []
    assert parse_script("/* nothing */\n", "e.so").inputs == []


def test_script_output_format():
    three = parse_script("OUTPUT_FORMAT(\"elf64-x86-64\", \"elf64-x86-64\", elf64-x86-64)\n"
                         "INPUT(a.so)", "s.so", "elf64-x86-64")
    assert three.output_format == "elf64-x86-64" and len(three.inputs) == 1
    with pytest.raises(LinkError, match=r"^s\.so:2: is for elf64-littleaarch64; this link is "
                                        r"for elf64-x86-64$"):
        parse_script("\nOUTPUT_FORMAT(elf64-littleaarch64)\nINPUT(a.so)", "s.so",
                     "elf64-x86-64")


@pytest.mark.parametrize("text, message", [
    ("GROUP ( a.so\n  b.so\n", r"s\.so:2: unbalanced parentheses: the '\(' of GROUP at line 1 "
                               r"is never closed"),
    ("INPUT(a AS_NEEDED(b)\n", r"s\.so:1: unbalanced parentheses: the '\(' of INPUT"),
    ("INPUT(a.so))\n", r"s\.so:1: unbalanced parentheses: '\)' without '\('"),
    ("\n\nSECTIONS { .text : { *(.text) } }\n", r"s\.so:3: unknown command 'SECTIONS'"),
    ("INPUT(a.so)\nfoo = 1;\n", r"s\.so:2: unknown command 'foo'"),
    ("GROUP a.so\n", r"s\.so:1: expected '\(' after GROUP"),
    ("INPUT(GROUP(a.so))", r"s\.so:1: GROUP inside INPUT"),
    ("AS_NEEDED(a.so)", r"s\.so:1: AS_NEEDED outside GROUP or INPUT"),
    ("INPUT(-l)", r"s\.so:1: -l without a library name"),
    ("INPUT(a.so)\n/* open", r"s\.so:2: a comment \(/\*\) that is never closed"),
    ('INPUT("a.so)', r"s\.so:1: a quoted name that is never closed"),
    ("OUTPUT_FORMAT(a, b)", r"s\.so:1: OUTPUT_FORMAT takes one format or three"),
    (b"INPUT(a.so)\n\xff\xfe", r"s\.so:2: a linker script that is not UTF-8 text"),
])
def test_broken_scripts(text: str | bytes, message: str):
    with pytest.raises(LinkError, match="^" + message):
        parse_script(text, "s.so")


def test_file_kinds():
    assert file_kind(b"\x7fELF\x02\x01", "x.o") == "elf"
    assert file_kind(b"!<arch>\n", "x.a") == "archive"
    assert file_kind(b"!<thin>\n", "x.a") == "archive"
    assert file_kind(b"", "empty.o") == "script"  # as GNU ld: an empty script
    assert file_kind(b"GROUP ( libc.so.6 )\n", "libc.so") == "script"
    assert file_kind("INPUT(caf\u00e9.so)\n".encode() * 1000, "long.so") == "script"
    for garbage in (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"\x1f\x8b\x08\0", b"GROUP(\0)",
                    b"\xff\xfe\xfd text"):
        with pytest.raises(LinkError, match=r"^g\.bin: not an ELF object, archive or linker "
                                            r"script$"):
            file_kind(garbage, "g.bin")
