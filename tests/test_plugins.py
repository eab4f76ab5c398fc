"""The plugin hooks: every one documented, and the linker reached only through them, so that an
observer plugin sees every update."""

from __future__ import annotations

import inspect
from pathlib import Path

from toyc import hookspecs
from toyc.hookspecs import hookimpl
from toyc.plugins import plugin_manager
from toyc.session import Session


def test_every_hook_is_documented():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("toyc_")]
    assert len(hooks) >= 12
    for f in hooks:
        assert f.__doc__ and len(f.__doc__.split()) >= 8, f"{f.__name__} has no real docstring"


def test_builtin_backends_are_plugins():
    names = {plugin_manager().get_name(p) for p in plugin_manager().get_plugins()}
    assert {"x86_64", "zig-linker"} <= names


class Observer:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def toyc_update_func(self, linker, name, code, line):
        self.calls.append(("update_func", name))

    @hookimpl
    def toyc_update_nav(self, linker, name, code, const, line):
        self.calls.append(("update_nav", name))

    @hookimpl
    def toyc_free_nav(self, linker, name):
        self.calls.append(("free_nav", name))

    @hookimpl
    def toyc_update_line(self, linker, name, line):
        self.calls.append(("update_line", name))

    @hookimpl
    def toyc_flush(self, linker):
        self.calls.append(("flush", ""))


def test_an_observer_sees_each_update(tmp_path: Path):
    src = tmp_path / "p.toy"
    src.write_text("var n: int = 1;\nfn f() -> int { return n / n; }\nfn g() {}\n"
                   "fn main() { print(f()); }\n")
    observer = Observer()
    pm = plugin_manager()
    pm.register(observer, name="observer")
    try:
        session, _ = Session.full_build(str(src), str(tmp_path / "p"))
        assert ("update_func", "main") in observer.calls and observer.calls[-1][0] == "flush"
        observer.calls.clear()
        src.write_text("// a new first line\nvar n: int = 2;\nfn f() -> int { return n / n; }\n"
                       "fn main() { print(f()); }\n")
        session.update()
        assert observer.calls == [("free_nav", "g"), ("update_nav", "n"), ("update_line", "f"),
                                  ("flush", "")]
    finally:
        pm.unregister(name="observer")
