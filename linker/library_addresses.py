"""Where a shared library's symbol is in a running program (Linux only).

When an update makes the program toyc runs call a library function it never imported, the
new GOT slot needs the function's address in that process. This module owns that answer:
the load bias of a library file in a process (from /proc/PID/maps and the file's program
headers), and from it a symbol's address. Nothing here writes to the process or decides what
it imports.

A library is recognised in the maps by the device and inode of the file, not by its name:
Debian's merged /usr makes the maps say /usr/lib/... where the caller may say /lib/..., and a
symlink (libz.so.1 -> libz.so.1.3) names the same file. Where the maps show another device
than `stat` does (overlayfs reports the underlying file's), a mapping whose name `stat`s to
the same file counts too.

An IFUNC's address (glibc's strlen, memcpy) is what its resolver returns on this CPU, which
cannot be computed from the file. It is resolved in toyc's own process with dlsym, which runs
the resolver, and carried over as an offset into the file holding the implementation: both
processes run on the same CPU with the same library, so the resolver chooses alike (unless the
program's environment sets GLIBC_TUNABLES to disable CPU features toyc's does not).
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from linker.process import ProcessGone

_PAGE = os.sysconf("SC_PAGE_SIZE")

# The libraries dlopen'ed to resolve IFUNCs, by path: a handle is never closed, since the
# addresses it gave out must stay valid (and dlopen of a loaded file only counts a reference).
_handles: dict[str, ctypes.CDLL] = {}


class NotLoaded(Exception):
    """The library (or the file holding a symbol's implementation) is not mapped in the
    process, or the symbol cannot be found; the message says which."""


@dataclass(frozen=True, slots=True)
class _Mapping:
    start: int
    end: int
    offset: int  # in the file
    dev: int  # os.makedev(major, minor)
    inode: int  # 0: not a file
    path: str  # "" for anonymous memory; may end in " (deleted)"


def library_bias(pid: int, path: str) -> int:
    """The load bias of the shared library file `path` in process `pid`: what its symbol
    values are added to. Raises NotLoaded if the file is not mapped there, ProcessGone if
    the process has ended."""
    st = os.stat(path)
    return _bias(_maps(pid), pid, st.st_dev, st.st_ino, path, path)


def symbol_address(pid: int, path: str, name: str, value: int, ifunc: bool,
                   version: str = "") -> int:
    """The address of the library's symbol `name` (st_value `value`) in process `pid`; for an
    IFUNC (`ifunc`), of the implementation its resolver chooses, found with dlvsym when
    `version` is given and dlsym otherwise. Not for TLS symbols, whose value is no address.
    Raises NotLoaded when the file (holding the implementation) is not mapped in `pid` or
    dlsym cannot find the symbol, ProcessGone if the process has ended."""
    if not ifunc:
        return library_bias(pid, path) + value
    address = _dlsym(path, name, version)
    here = os.getpid()
    own = _maps(here)
    mine = [m for m in own if m.inode and m.start <= address < m.end]
    if not mine:
        raise NotLoaded(f"{_describe(name, version)} resolves to {address:#x}, which is in no "
                        "file mapped in toyc's process")
    held = mine[0]
    st = os.stat(path)
    if (held.dev, held.inode) == (st.st_dev, st.st_ino):
        elf_path = path
    else:
        # Another file (or overlayfs showing the underlying device): its program headers are
        # read through the name the maps give it.
        elf_path = held.path
    offset = address - _bias(own, here, held.dev, held.inode, elf_path, elf_path)
    try:
        return _bias(_maps(pid), pid, held.dev, held.inode, elf_path, elf_path) + offset
    except NotLoaded as e:
        if elf_path == path:
            raise
        raise NotLoaded(f"{_describe(name, version)} of {path} is implemented in {elf_path}, "
                        f"which is not loaded in pid {pid}") from e


def _describe(name: str, version: str) -> str:
    return f"{name}@{version}" if version else name


def _maps(pid: int) -> list[_Mapping]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone from None
    return _parse_maps(text)


def _parse_maps(text: str) -> list[_Mapping]:
    """The lines of /proc/PID/maps: `start-end perms offset major:minor inode   path`, numbers
    in hex but the inode; the path (absent for anonymous memory) may hold spaces."""
    out = []
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            continue
        lo, hi = fields[0].split("-")
        major, minor = fields[3].split(":")
        out.append(_Mapping(int(lo, 16), int(hi, 16), int(fields[2], 16),
                            os.makedev(int(major, 16), int(minor, 16)), int(fields[4]),
                            fields[5] if len(fields) > 5 else ""))
    return out


def _file_mappings(maps: list[_Mapping], dev: int, inode: int) -> list[_Mapping]:
    """The mappings of the file with device `dev` and inode `inode`."""
    found = [m for m in maps if m.inode == inode and m.dev == dev]
    if found:
        return found
    # overlayfs: the maps name the underlying file's device (and maybe inode), stat the
    # overlay's; the mapping's name, if it still names that file, says it is the same.
    same: dict[str, bool] = {}
    for m in maps:
        if m.inode and m.path.startswith("/") and m.path not in same:
            try:
                st = os.stat(m.path)
            except OSError:  # " (deleted)", or no longer there
                same[m.path] = False
            else:
                same[m.path] = (st.st_dev, st.st_ino) == (dev, inode)
    return [m for m in maps if m.inode and same.get(m.path)]


def _bias(maps: list[_Mapping], pid: int, dev: int, inode: int, elf_path: str,
          name: str) -> int:
    """The load bias of the file (`dev`, `inode`), whose program headers `elf_path` holds:
    the start of the mapping of its first PT_LOAD's first page (file offset 0, for every
    library ld.so loads) minus that page's virtual address."""
    mappings = _file_mappings(maps, dev, inode)
    if not mappings:
        raise NotLoaded(f"{name} is not loaded in pid {pid}")
    offset, vaddr = _first_load(elf_path)
    page = offset & -_PAGE
    # The lowest: a small library's data segment may map the same page of the file again,
    # above the first segment.
    starts = [m.start for m in mappings if m.offset == page]
    if not starts:
        raise NotLoaded(f"{name} is mapped in pid {pid}, but not as a loaded library (no "
                        f"mapping of its first segment, file offset {page:#x})")
    return min(starts) - (vaddr & -_PAGE)


def _first_load(path: str) -> tuple[int, int]:
    """p_offset and p_vaddr of the PT_LOAD segment of `path` lowest in the file."""
    try:
        with open(path, "rb") as f:
            loads = [(s["p_offset"], s["p_vaddr"]) for s in ELFFile(f).iter_segments()
                     if s["p_type"] == "PT_LOAD"]
    except ELFError as e:
        raise NotLoaded(f"{path}: not an ELF file ({e})") from None
    if not loads:
        raise NotLoaded(f"{path}: has no loadable segment")
    return min(loads)


@functools.cache
def _dl() -> ctypes.CDLL:
    """The dl functions, as this process has them (in libc since glibc 2.34)."""
    dl = ctypes.CDLL(None)
    dl.dlerror.restype = ctypes.c_char_p
    dl.dlerror.argtypes = []
    dl.dlsym.restype = ctypes.c_void_p
    dl.dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    dl.dlvsym.restype = ctypes.c_void_p
    dl.dlvsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    return dl


def _dlsym(path: str, name: str, version: str) -> int:
    """What dlsym (dlvsym with `version`) returns for `name` in the library `path`, loaded
    into toyc's process: for an IFUNC, the implementation its resolver chose."""
    handle = _handles.get(path)
    if handle is None:
        try:
            handle = ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_LAZY)
        except OSError as e:
            raise NotLoaded(f"cannot load {path} to resolve {_describe(name, version)}: "
                            f"{e}") from None
        _handles[path] = handle
    dl = _dl()
    dl.dlerror()  # clear an earlier error, so that the one read below is this call's
    if version:
        address = dl.dlvsym(handle._handle, name.encode(), version.encode())
    else:
        address = dl.dlsym(handle._handle, name.encode())
    if not address:
        why = dl.dlerror()
        raise NotLoaded(f"{'dlvsym' if version else 'dlsym'} cannot find "
                        f"{_describe(name, version)} in {path}"
                        + (f": {why.decode(errors='replace')}" if why else ""))
    return address
