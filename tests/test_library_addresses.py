"""Finding a shared library's symbols in a running program (`linker.library_addresses`).

A C program built here prints where it sees libc's `puts`, `getenv` and `strlen` (an IFUNC:
the address is the implementation glibc's resolver chose) and, given a library to dlopen, the
addresses dlsym gives for names in it; then it waits. The module's answers must be the same:

- libc's functions, found by its path as gcc names it, through a symlink, and through the
  other spelling of Debian's merged /usr; `strlen` with and without its version;
- a library built here, in a directory whose name holds a space, in three layouts: the usual
  one, one whose data segment maps the first page of the file again (`-z noseparate-code`),
  and one whose first segment is not at address 0 (`-Ttext-segment`): a function, a data
  object and an IFUNC of its own;
- what is not there is NotLoaded, with a message saying what: a library the program does not
  map (libz, a copy of libc, which has another inode, the library built here before the
  program loads it), and a name or version dlsym cannot find; an ended program is
  ProcessGone;
- mappings whose device is not the file's (overlayfs) are recognised by their name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from linker.library_addresses import (
    NotLoaded,
    _file_mappings,
    _parse_maps,
    library_bias,
    symbol_address,
)
from linker.process import ProcessGone
from linker.shared_object import STT_GNU_IFUNC, SharedObject, read_shared_object

EM_X86_64 = 62

CHILD = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    /* volatile, so that gcc neither inlines strlen nor folds the addresses */
    int (*volatile p)(const char *) = puts;
    size_t (*volatile s)(const char *) = strlen;
    char *(*volatile g)(const char *) = getenv;
    printf("%p %p %p", (void *)p, (void *)s, (void *)g);
    if (argc > 1) {
        void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            printf(" error: %s\n", dlerror());
            return 1;
        }
        for (int i = 2; i < argc; i++)
            printf(" %p", dlsym(lib, argv[i]));
    }
    printf("\n");
    fflush(stdout);
    getchar();
    return 0;
}
"""

LIBRARY = r"""
typedef int fn(int);
int counter = 7;
int plain(int x) { return x + counter; }
static int twice_impl(int x) { return 2 * x; }
static fn *choose(void) { return twice_impl; }
int twice(int x) __attribute__((ifunc("choose")));
"""

LAYOUTS = {
    "usual": [],
    "shared-page": ["-Wl,-z,noseparate-code"],
    "based": ["-Wl,-Ttext-segment=0x200000"],
}


def gcc() -> str:
    path = shutil.which("gcc")
    if path is None:
        pytest.skip("gcc is not installed")
    return path


def library_file(name: str) -> Path | None:
    """Where gcc finds library file `name`, if it does."""
    out = subprocess.run([gcc(), f"-print-file-name={name}"], capture_output=True, text=True,
                         check=True).stdout.strip()
    return Path(out) if "/" in out and Path(out).exists() else None


def read(path: Path) -> SharedObject:
    return read_shared_object(path.read_bytes(), str(path), EM_X86_64, "x86_64")


def value(lib: SharedObject, name: str) -> tuple[int, bool]:
    binding = lib.lookup(name)
    assert binding is not None, name
    return binding.symbol.value, binding.symbol.type == STT_GNU_IFUNC


@pytest.fixture(scope="module")
def libc() -> tuple[Path, SharedObject]:
    path = library_file("libc.so.6")
    if path is None:
        pytest.skip("gcc finds no libc.so.6")
    return path, read(path)


@pytest.fixture(scope="module")
def child(tmp_path_factory) -> Path:
    cc = gcc()
    work = tmp_path_factory.mktemp("child")
    (work / "child.c").write_text(CHILD)
    # A PIE, so that its function pointers are the libraries' addresses, not PLT entries
    subprocess.run([cc, "-fPIE", "-pie", "-O1", "-o", str(work / "child"),
                    str(work / "child.c"), "-ldl"], check=True)
    return work / "child"


@pytest.fixture(scope="module")
def libraries(tmp_path_factory) -> dict[str, Path]:
    cc = gcc()
    work = tmp_path_factory.mktemp("libs") / "lib dir"
    work.mkdir()
    (work / "t.c").write_text(LIBRARY)
    out = {}
    for layout, flags in LAYOUTS.items():
        out[layout] = work / f"lib{layout}.so"
        subprocess.run([cc, "-shared", "-fPIC", "-O1", *flags, "-o", str(out[layout]),
                        str(work / "t.c")], check=True)
    return out


@contextlib.contextmanager
def running(exe: Path, *args: str) -> Iterator[tuple[int, list[int]]]:
    """The child's pid and the addresses it printed, while it waits."""
    p = subprocess.Popen([str(exe), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline()
        assert "error" not in line and line.strip(), line
        yield p.pid, [int(word, 16) for word in line.split()]
    finally:
        p.kill()
        p.wait()


def test_libc_functions(child, libc):
    path, lib = libc
    with running(child) as (pid, (puts, _, getenv)):
        bias = library_bias(pid, str(path))
        assert bias % os.sysconf("SC_PAGE_SIZE") == 0
        for name, seen in (("puts", puts), ("getenv", getenv)):
            v, ifunc = value(lib, name)
            assert not ifunc
            assert symbol_address(pid, str(path), name, v, False) == seen
            assert bias + v == seen


def test_libc_ifunc(child, libc):
    path, lib = libc
    v, ifunc = value(lib, "strlen")
    assert ifunc
    version = lib.lookup("strlen").version
    assert version  # GLIBC_2.2.5
    with running(child) as (pid, (_, strlen, _)):
        assert symbol_address(pid, str(path), "strlen", v, True) == strlen
        assert symbol_address(pid, str(path), "strlen", v, True, version) == strlen
        # the resolver itself is not the answer
        assert library_bias(pid, str(path)) + v != strlen


def test_other_names_of_libc(child, libc, tmp_path):
    path, lib = libc
    link = tmp_path / "libc-link.so"
    link.symlink_to(path)
    names = [str(link), str(path.resolve())]
    resolved = str(path.resolve())
    for usr, root in (("/usr/lib/", "/lib/"), ("/lib/", "/usr/lib/")):
        # merged /usr: the maps name one spelling, the caller may use the other
        if resolved.startswith(usr) and os.path.exists(root + resolved[len(usr):]):
            names.append(root + resolved[len(usr):])
    puts, _ = value(lib, "puts")
    strlen, _ = value(lib, "strlen")
    with running(child) as (pid, seen):
        bias = library_bias(pid, str(path))
        for name in names:
            assert library_bias(pid, name) == bias, name
            assert symbol_address(pid, name, "puts", puts, False) == seen[0], name
            assert symbol_address(pid, name, "strlen", strlen, True) == seen[1], name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_library_built_here(child, libraries, layout):
    path = libraries[layout]
    lib = read(path)
    names = ["plain", "counter", "twice"]
    with running(child, str(path), *names) as (pid, seen):
        for name, address in zip(names, seen[3:], strict=True):
            v, ifunc = value(lib, name)
            assert ifunc == (name == "twice")
            assert symbol_address(pid, str(path), name, v, ifunc) == address, name
    # the layout is what the test is about
    with path.open("rb") as f:
        loads = [(s["p_offset"], s["p_vaddr"]) for s in ELFFile(f).iter_segments()
                 if s["p_type"] == "PT_LOAD"]
    page = os.sysconf("SC_PAGE_SIZE")
    assert (sum(offset < page for offset, _ in loads) > 1) == (layout == "shared-page")
    assert min(loads)[1] == (0x200000 if layout == "based" else 0)


def test_not_loaded(child, libc, libraries, tmp_path):
    path, lib = libc
    copy = tmp_path / "libc.so.6"
    shutil.copyfile(path, copy)
    others = [copy, libraries["usual"]]
    libz = library_file("libz.so")
    if libz is not None:
        others.append(libz)
    puts, _ = value(lib, "puts")
    twice, _ = value(read(libraries["usual"]), "twice")
    with running(child) as (pid, _):
        for other in others:
            with pytest.raises(NotLoaded, match=f"{other} is not loaded in pid {pid}"):
                library_bias(pid, str(other))
            with pytest.raises(NotLoaded, match=f"is not loaded in pid {pid}"):
                symbol_address(pid, str(other), "puts", puts, False)
        # an IFUNC resolved here (the library is loaded into this process for that) whose
        # library the program does not have
        with pytest.raises(NotLoaded, match=f"lib dir/libusual.so is not loaded in pid {pid}"):
            symbol_address(pid, str(libraries["usual"]), "twice", twice, True)


def test_dlsym_fails(child, libc):
    path, lib = libc
    strlen, _ = value(lib, "strlen")
    with running(child) as (pid, _):
        with pytest.raises(NotLoaded, match="dlsym cannot find no_such_function in .*libc"):
            symbol_address(pid, str(path), "no_such_function", 0, True)
        with pytest.raises(NotLoaded, match="dlvsym cannot find strlen@GLIBC_9.99"):
            symbol_address(pid, str(path), "strlen", strlen, True, "GLIBC_9.99")


def test_process_gone(child, libc):
    path, _ = libc
    with running(child) as (pid, _):
        pass
    with pytest.raises(ProcessGone):
        library_bias(pid, str(path))


def test_mapping_named_but_on_another_device(libc):
    """overlayfs: the maps give the underlying file's device and inode, stat the overlay's."""
    path, _ = libc
    st = os.stat(path)
    real = str(path.resolve())
    maps = _parse_maps(
        f"7f0000000000-7f0000026000 r--p 00000000 00:99 4242     {real}\n"
        f"7f0000026000-7f000017c000 r-xp 00026000 00:99 4242     {real}\n"
        "7f0000200000-7f0000201000 r--p 00000000 00:99 4243     /nonexistent/libz.so.1\n"
        "7f0000300000-7f0000301000 rw-p 00000000 00:00 0 \n"
        f"7f0000400000-7f0000401000 r--p 00000000 00:99 4244     {real} (deleted)\n")
    assert maps[3].path == "" and maps[4].path == real + " (deleted)"
    assert maps[0].dev == os.makedev(0, 0x99) and maps[0].inode == 4242
    found = _file_mappings(maps, st.st_dev, st.st_ino)
    assert [m.start for m in found] == [0x7F0000000000, 0x7F0000026000]
