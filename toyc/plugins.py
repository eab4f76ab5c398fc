"""The plugin manager, and `Arch`: one architecture as the rest of toyc sees it.

Built-in plugins are registered by module name, third-party ones through the `toyc` entry-point
group; both answer the same hooks (`hookspecs.py`).
"""

from __future__ import annotations

import functools
import importlib

import pluggy

from toyc import hookspecs
from toyc.code import ArchInfo
from toyc.source import UserError

DEFAULT_PLUGINS = {"x86_64": "toyc_x86_64", "zig-linker": "linker.plugin"}


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("toyc")
    pm.add_hookspecs(hookspecs)
    for name, module in DEFAULT_PLUGINS.items():
        pm.register(importlib.import_module(module), name=name)
    pm.load_setuptools_entrypoints("toyc")
    return pm


def architectures() -> dict[str, ArchInfo]:
    found: dict[str, ArchInfo] = {}
    for infos in plugin_manager().hook.toyc_architectures():
        for info in infos:
            found[info.name] = info
    return found


class Arch:
    """One architecture: its facts, and its hooks with the `arch` argument filled in."""

    def __init__(self, info: ArchInfo):
        self.info = info
        self.name = info.name
        self.hook = plugin_manager().hook

    def lower_function(self, fn, program):
        return self.hook.toyc_lower_function(arch=self.name, fn=fn, program=program)

    def lower_global(self, decl):
        return self.hook.toyc_lower_global(arch=self.name, decl=decl)

    def lower_string(self, value: bytes):
        return self.hook.toyc_lower_string(arch=self.name, value=value)

    def lower_lazy_symbol(self, name: str):
        return self.hook.toyc_lower_lazy_symbol(arch=self.name, name=name)

    def apply_relocation(self, buf: bytearray, reloc, place: int, target: int) -> None:
        self.hook.toyc_apply_relocation(arch=self.name, buf=buf, reloc=reloc, place=place,
                                        target=target)

    def trampoline(self, source: int, target: int) -> bytes:
        return self.hook.toyc_write_trampoline(arch=self.name, source=source, target=target)


def get_arch(name: str) -> Arch:
    arches = architectures()
    if name not in arches:
        known = ", ".join(sorted(arches)) or "none"
        raise UserError(f"unknown architecture '{name}' (available: {known})")
    return Arch(arches[name])
