"""The plugin manager, the architectures plugins register, and `Arch`: one architecture as the
rest of toyc sees it.

Built-in plugins are registered by module name, third-party ones through the `toyc` entry-point
group; both answer the same hooks (`hookspecs.py`). Finding the entry points means reading every
installed distribution's metadata, so the list is cached in the user's cache directory, and
used while every directory Python finds packages in is as it was (installing or removing a
distribution changes its metadata directory). An architecture plugin registers objects
that answer the questions about the CPU (`toyc.arch.Architecture`); `Arch` wraps one and checks
its answers. TOYC_PLUGINS, if set, names the entry points to load (comma-separated; empty:
none). A plugin that fails to load, raises in a hook or a method of its architecture, or returns
something of the wrong kind is a user-facing error naming the plugin.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

import pluggy

from toyc import __version__, hookspecs
from toyc.arch import Architecture
from toyc.code import (
    Applied,
    ArchInfo,
    Code,
    DynamicInfo,
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
    for name, value in entry_points():
        if wanted is not None and name not in wanted or pm.has_plugin(name):
            continue
        try:
            pm.register(_load(value), name=name)
        except Exception as e:  # its code, not toyc's
            raise UserError(f"plugin '{name}' failed to load: {type(e).__name__}: {e}") \
                from None
    return pm


def _load(value: str) -> object:
    """What an entry point's value (`module:attr.attr [extras]`) names, as importlib.metadata
    loads it."""
    module, _, attrs = value.split("[")[0].strip().partition(":")
    obj = importlib.import_module(module.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj


def installed_in(path: str) -> list | int | None:
    """What is installed in directory `path`: its distributions' metadata directories with
    their times (a distribution installed, removed or reinstalled changes them; a cache or
    other file written there does not), None if it holds none, 0 if it cannot be read."""
    try:
        with os.scandir(path or ".") as entries:
            found = sorted([e.name, e.stat().st_mtime_ns] for e in entries
                           if e.name.endswith((".dist-info", ".egg-info", ".egg-link")))
    except OSError:
        return 0
    return found or None


def entry_points() -> list[tuple[str, str]]:
    """(name, value) of each installed entry point of the `toyc` group, from the cache while
    it holds: the directories on sys.path, with their modification times, are what they were
    when it was written."""
    key = [[p, installed_in(p)] for p in sys.path]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toyc"
    name = hashlib.blake2b(json.dumps([sys.executable, key]).encode(),
                           digest_size=8).hexdigest()
    cache = base / f"plugins-{name}.json"
    try:
        cached = json.loads(cache.read_text())
        if cached["key"] == key and all(isinstance(n, str) and isinstance(v, str)
                                        for n, v in cached["entry_points"]):
            return [(n, v) for n, v in cached["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import importlib.metadata

    found, seen = [], set()
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name not in seen:  # (the first of a name, as Python finds distributions)
            seen.add(ep.name)
            found.append((ep.name, ep.value))
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=cache.name, suffix=".tmp", dir=base)
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "entry_points": found}, f)
        os.replace(tmp, cache)
    except OSError:
        pass  # (no cache: the next run looks again)
    return found


def describe_plugins() -> list[str]:
    """One line per loaded plugin: name, version, the hooks it implements and the architectures
    it registers."""
    import importlib.metadata

    pm = plugin_manager()
    versions = {ep.name: ep.dist.version for ep in importlib.metadata.entry_points(group=GROUP)
                if ep.dist is not None}
    registered: dict[str, list[str]] = {}
    for plugin, arch in _registered():
        registered.setdefault(plugin, []).append(arch.info.name)
    lines = []
    for name, plugin in sorted(pm.list_name_plugin()):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        version = versions.get(name, f"{__version__} (built in)")
        line = f"{name} {version}: {', '.join(hooks)}"
        if name in registered:
            line += f"; architectures: {', '.join(registered[name])}"
        lines.append(line)
    return lines


def _registered() -> list[tuple[str, Architecture]]:
    """(plugin name, architecture) for each architecture every plugin registers."""
    pm = plugin_manager()
    found: list[tuple[str, Architecture]] = []
    for impl in pm.hook.toyc_register_architectures.get_hookimpls():
        name = pm.get_name(impl.plugin)
        # collected, and checked once the hook has returned, so that the plugin's code cannot
        # catch toyc's complaint about what it registered
        objects: list[object] = []
        try:
            impl.function(objects.append)
        except Exception as e:
            raise UserError(f"plugin '{name}' failed in toyc_register_architectures: "
                            f"{type(e).__name__}: {e}") from None
        for obj in objects:
            if not isinstance(obj, Architecture):
                raise UserError(f"plugin '{name}' registered {obj!r:.60} through "
                                "toyc_register_architectures, not a toyc.arch.Architecture")
            info = getattr(obj, "info", None)
            if not isinstance(info, ArchInfo):
                raise UserError(f"plugin '{name}' registered {type(obj).__name__}, whose info "
                                f"is {info!r:.60}, not a toyc.code.ArchInfo")
            found.append((name, obj))
    return found


def _providers() -> dict[str, Arch]:
    """Architecture name -> the architecture, wrapped with the plugin that registered it."""
    found: dict[str, Arch] = {}
    for plugin, obj in _registered():
        name = obj.info.name
        if name in found:
            raise UserError(f"architecture '{name}' is provided by both plugin "
                            f"'{found[name].plugin}' and plugin '{plugin}'")
        found[name] = Arch(obj, plugin)
    return found


def architectures() -> dict[str, ArchInfo]:
    return {name: arch.info for name, arch in _providers().items()}


class Arch(Architecture):
    """One architecture as the rest of toyc sees it: the object a plugin registered, whose
    answers are checked. What a method raises or returns of the wrong kind is reported
    against the providing plugin."""

    def __init__(self, impl: Architecture, plugin: str = ""):
        self.impl = impl
        self.info = impl.info
        self.dynamic = getattr(impl, "dynamic", None)
        if self.dynamic is not None and not isinstance(self.dynamic, DynamicInfo):
            raise UserError(f"plugin '{plugin}' (architecture {self.name}): its `dynamic` is "
                            f"{type(self.dynamic).__name__}, not DynamicInfo")
        self.name = impl.info.name
        self.plugin = plugin

    def _call(self, method: str, kind: type | None, *args):
        try:
            result = getattr(self.impl, method)(*args)
        except (UserError, RecursionError, RelocationOverflow):  # (the linker reports those)
            raise
        except ValueError as e:
            if method == "relocate":  # an input the architecture cannot link: the linker
                raise  # says which
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) failed in "
                            f"{method}: {type(e).__name__}: {e}") from None
        except Exception as e:
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) failed in "
                            f"{method}: {type(e).__name__}: {e}") from None
        if kind is not None and not isinstance(result, kind):
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) returned "
                            f"{type(result).__name__} from {method}, not {kind.__name__}")
        return result

    def lower_function(self, fn, program) -> Code:
        return self._call("lower_function", Code, fn, program)

    def lower_global(self, decl) -> Code:
        return self._call("lower_global", Code, decl)

    def lower_string(self, value: bytes) -> Code:
        return self._call("lower_string", Code, value)

    def lower_lazy_symbol(self, name: str) -> LazySymbol | None:
        result = self._call("lower_lazy_symbol", None, name)
        if result is not None and not isinstance(result, LazySymbol):
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) returned "
                            f"{type(result).__name__} from lower_lazy_symbol, not LazySymbol")
        return result

    def apply_relocation(self, buf: bytearray, reloc, place: int, target: int) -> None:
        self._call("apply_relocation", None, buf, reloc, place, target)

    def relocation_info(self, type: int) -> RelocInfo:
        return self._call("relocation_info", RelocInfo, type)

    def plt_entry(self, place: int, slot: int) -> bytes:
        return self._call("plt_entry", bytes, place, slot)

    def relocate(self, buf: bytearray, site) -> Applied:
        return self._call("relocate", Applied, buf, site)

    def trampoline(self, source: int, target: int) -> bytes:
        result = self._call("trampoline", bytes, source, target)
        if len(result) != self.info.trampoline_size:
            raise UserError(f"plugin '{self.plugin}' (architecture {self.name}) wrote a "
                            f"{len(result)}-byte trampoline; it said {self.info.trampoline_size}")
        return result


def get_arch(name: str) -> Arch:
    providers = _providers()
    if name not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise UserError(f"unknown architecture '{name}' (available: {known})")
    return providers[name]
