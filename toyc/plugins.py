"""The plugin manager, and `Arch`: one architecture as the rest of toyc sees it.

Built-in plugins are registered by module name, third-party ones through the `toyc` entry-point
group; both answer the same hooks (`hookspecs.py`). TOYC_PLUGINS, if set, names the entry
points to load (comma-separated; empty: none). A plugin that fails to load, raises in a hook or
returns something of the wrong kind is a user-facing error naming the plugin.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os

import pluggy

from toyc import __version__, hookspecs
from toyc.code import (
    UNSUPPORTED,
    Applied,
    ArchInfo,
    Code,
    LazySymbol,
    RelocationOverflow,
    RelocInfo,
)
from toyc.source import UserError

DEFAULT_PLUGINS = {"x86_64": "toyc_x86_64", "zig-linker": "linker.plugin"}
PLUGINS_ENV = "TOYC_PLUGINS"
GROUP = "toyc"


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("toyc")
    pm.add_hookspecs(hookspecs)
    for name, module in DEFAULT_PLUGINS.items():
        pm.register(importlib.import_module(module), name=name)
    allowed = os.environ.get(PLUGINS_ENV)
    wanted = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            pm.load_setuptools_entrypoints(GROUP, name=ep.name)
        except Exception as e:  # its code, not toyc's
            raise UserError(f"plugin '{ep.name}' failed to load: {type(e).__name__}: {e}") \
                from None
    return pm


def describe_plugins() -> list[str]:
    """One line per loaded plugin: name, version, and the hooks it implements."""
    pm = plugin_manager()
    versions = {pm.get_name(p): dist.version for p, dist in pm.list_plugin_distinfo()}
    lines = []
    for name, plugin in sorted(pm.list_name_plugin()):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        version = versions.get(name, f"{__version__} (built in)")
        lines.append(f"{name} {version}: {', '.join(hooks)}")
    return lines


def _providers() -> dict[str, tuple[ArchInfo, str]]:
    """Architecture name -> (its facts, the plugin providing it)."""
    pm = plugin_manager()
    found: dict[str, tuple[ArchInfo, str]] = {}
    for impl in pm.hook.toyc_architectures.get_hookimpls():
        name = pm.get_name(impl.plugin)
        try:
            infos = impl.function()
        except Exception as e:
            raise UserError(f"plugin '{name}' failed in toyc_architectures: "
                            f"{type(e).__name__}: {e}") from None
        if not isinstance(infos, list) or not all(isinstance(i, ArchInfo) for i in infos):
            raise UserError(f"plugin '{name}' returned {infos!r:.60} from toyc_architectures, "
                            "not a list of toyc.code.ArchInfo")
        for info in infos:
            if info.name in found:
                raise UserError(f"architecture '{info.name}' is provided by both plugin "
                                f"'{found[info.name][1]}' and plugin '{name}'")
            found[info.name] = (info, name)
    return found


def architectures() -> dict[str, ArchInfo]:
    return {name: info for name, (info, _) in _providers().items()}


class Arch:
    """One architecture: its facts, and its hooks with the `arch` argument filled in. What a
    hook raises or returns of the wrong kind is reported against the providing plugin."""

    def __init__(self, info: ArchInfo, plugin: str = ""):
        self.info = info
        self.name = info.name
        self.plugin = plugin
        self.hook = plugin_manager().hook

    def _call(self, hook: str, kind: type | None, **kwargs):
        try:
            result = getattr(self.hook, hook)(arch=self.name, **kwargs)
        except (UserError, RecursionError, RelocationOverflow):  # (the linker reports those)
            raise
        except ValueError as e:
            if hook == "toyc_relocate":  # an input the architecture cannot link: the
                raise  # linker says which
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) failed in "
                            f"{hook}: {type(e).__name__}: {e}") from None
        except Exception as e:
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) failed in "
                            f"{hook}: {type(e).__name__}: {e}") from None
        if kind is not None and not isinstance(result, kind):
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) returned "
                            f"{type(result).__name__} from {hook}, not {kind.__name__}")
        return result

    def lower_function(self, fn, program) -> Code:
        return self._call("toyc_lower_function", Code, fn=fn, program=program)

    def lower_global(self, decl) -> Code:
        return self._call("toyc_lower_global", Code, decl=decl)

    def lower_string(self, value: bytes) -> Code:
        return self._call("toyc_lower_string", Code, value=value)

    def lower_lazy_symbol(self, name: str) -> LazySymbol | None:
        result = self._call("toyc_lower_lazy_symbol", None, name=name)
        if result is not None and not isinstance(result, LazySymbol):
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) returned "
                            f"{type(result).__name__} from toyc_lower_lazy_symbol, "
                            "not LazySymbol")
        return result

    def apply_relocation(self, buf: bytearray, reloc, place: int, target: int) -> None:
        self._call("toyc_apply_relocation", None, buf=buf, reloc=reloc, place=place,
                   target=target)

    def relocation_info(self, rtype: int) -> RelocInfo:
        """What an input object's relocation of `rtype` needs; an architecture without the
        hook links no input objects."""
        result = self._call("toyc_relocation_info", None, type=rtype)
        if result is None:
            return RelocInfo(f"type {rtype}", UNSUPPORTED)
        if not isinstance(result, RelocInfo):
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) returned "
                            f"{type(result).__name__} from toyc_relocation_info, "
                            "not RelocInfo")
        return result

    def relocate(self, buf: bytearray, site) -> Applied:
        return self._call("toyc_relocate", Applied, buf=buf, site=site)

    def trampoline(self, source: int, target: int) -> bytes:
        result = self._call("toyc_write_trampoline", bytes, source=source, target=target)
        if len(result) != self.info.trampoline_size:
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) wrote a "
                            f"{len(result)}-byte trampoline; it said {self.info.trampoline_size}")
        return result


def get_arch(name: str) -> Arch:
    providers = _providers()
    if name not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise UserError(f"unknown architecture '{name}' (available: {known})")
    info, plugin = providers[name]
    return Arch(info, plugin)
