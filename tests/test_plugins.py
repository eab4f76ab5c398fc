"""The plugin hooks and the architecture protocol: every one documented, the linker reached only
through the hooks, so that an observer plugin sees every update, and architectures registered
through one hook, a misbehaving one named."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
from pathlib import Path

import linker.arch
from conftest import TOYC
from toyc import arch, hookspecs
from toyc.code import UNSUPPORTED, ArchInfo, RelocInfo
from toyc.hookspecs import hookimpl
from toyc.plugins import get_arch, plugin_manager
from toyc.session import Session


def test_every_hook_is_documented():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("toyc_")]
    assert len(hooks) >= 10
    for f in hooks:
        assert f.__doc__ and len(f.__doc__.split()) >= 8, f"{f.__name__} has no real docstring"


def test_every_question_of_the_protocol_is_documented():
    """What an architecture answers is documented where it is declared: the linker's questions
    in `linker.arch`, the compiler's in `toyc.arch`."""
    linker_questions = {"lower_string", "lower_lazy_symbol", "apply_relocation", "trampoline",
                        "relocation_info", "relocate"}
    compiler_questions = {"lower_function", "lower_global"}
    for cls, own in ((linker.arch.Architecture, linker_questions),
                     (arch.Architecture, compiler_questions)):
        assert cls.__doc__ and len(cls.__doc__.split()) >= 8
        for name in own:
            f = vars(cls)[name]
            assert f.__doc__ and len(f.__doc__.split()) >= 8, f"{name} has no real docstring"
    assert arch.Architecture.__abstractmethods__ == \
        (linker_questions | compiler_questions) - {"relocation_info", "relocate"}


def test_optional_questions_say_unsupported():
    class Minimal(arch.Architecture):  # the required questions, unasked here
        info = ArchInfo("minimal", 62, 8, 4096, 16, 5)
        lower_function = lower_global = lower_string = lower_lazy_symbol = \
            apply_relocation = trampoline = None

    assert Minimal().relocation_info(42) == RelocInfo("type 42", UNSUPPORTED)


def test_architectures_are_registered_objects():
    x86 = get_arch("x86_64")
    assert x86.plugin == "x86_64" and x86.info.name == "x86_64"
    assert isinstance(x86.impl, arch.Architecture)
    assert x86.relocation_info(2).name == "R_X86_64_PC32"


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


class Counter:
    def __init__(self):
        self.seen = []

    @hookimpl
    def toyc_updated(self, source, output, summary):
        self.seen.append((Path(output).name, summary.full, dict(summary.outcomes)))


def test_an_observer_is_told_what_each_update_did(tmp_path: Path):
    src = tmp_path / "p.toy"
    src.write_text("fn f() -> int { return 1; }\nfn main() { print(f()); }\n")
    counter = Counter()
    plugin_manager().register(counter, name="counter")
    try:
        session, _ = Session.full_build(str(src), str(tmp_path / "p"))
        session.update("fn f() -> int { return 2; }\nfn main() { print(f()); }\n")
        session.update("fn f() -> int { return 2; }\nfn main() { print(f()); }\n")
    finally:
        plugin_manager().unregister(name="counter")
    assert counter.seen[0] == ("p", True, {"f": "new", "main": "new"})
    assert counter.seen[1] == ("p", False, {"f": "in place"})
    assert counter.seen[2] == ("p", False, {})  # nothing changed: told so


# ---- third-party plugins, installed as a stranger would install them ---------------------------

OBSERVER = '''\
from toyc.hookspecs import hookimpl

@hookimpl
def toyc_updated(source, output, summary):
    with open(output + ".log", "a") as f:
        f.write(f"{'full' if summary.full else 'update'} {sorted(summary.outcomes.items())}\\n")
'''
BAD_ARCH = '''\
from toyc.code import ArchInfo
from toyc.hookspecs import hookimpl
import toyc_x86_64

class Bad(toyc_x86_64.X86_64):
    info = ArchInfo("{name}", 62, 8, 4096, 16, 5)

    def lower_function(self, fn, program):
        {body}

@hookimpl
def toyc_register_architectures(register):
    register(Bad())
'''
REGISTERS = '''\
from toyc.hookspecs import hookimpl
import toyc_x86_64

@hookimpl
def toyc_register_architectures(register):
    {body}
'''


def install(site: Path, name: str, version: str, module: str, code: str) -> None:
    """A distribution in `site` (put on PYTHONPATH) with a `toyc` entry point."""
    (site / f"{module}.py").write_text(code)
    # (the directory's name has the name with underscores, as a wheel's: importlib.metadata
    # reads the name up to the first hyphen)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[toyc]\n{name} = {module}\n")


def toyc_with(site: Path, *args: str, cwd: Path, plugins: str | None = None):
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("TOYC_PLUGINS", None)
    if plugins is not None:
        env["TOYC_PLUGINS"] = plugins
    p = subprocess.run([*TOYC, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_entry_point_plugins_load_and_can_be_restricted(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "toyc-logger", "1.2", "toyc_logger", OBSERVER)
    status, out, err = toyc_with(site, "plugins", cwd=tmp_path)
    assert status == 0, err
    assert "toyc-logger 1.2: toyc_updated" in out.splitlines()
    assert any(line.startswith("x86_64 ") for line in out.splitlines())
    (tmp_path / "p.toy").write_text("fn main() {}\n")
    status, _, err = toyc_with(site, "build", "p.toy", cwd=tmp_path)
    assert status == 0, err
    assert (tmp_path / "p.log").read_text() == "full [('main', 'new')]\n"
    status, out, _ = toyc_with(site, "plugins", cwd=tmp_path, plugins="")
    assert "toyc-logger" not in out and "x86_64" in out  # built-ins always load
    status, out, _ = toyc_with(site, "plugins", cwd=tmp_path, plugins="toyc-logger, other")
    assert "toyc-logger 1.2" in out


def test_a_plugin_that_fails_is_named(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "p.toy").write_text("fn main() {}\n")
    install(site, "broken", "0.1", "broken_plugin", "raise ImportError('no such thing')\n")
    status, out, err = toyc_with(site, "build", "p.toy", cwd=tmp_path)
    assert (status, out) == (1, "")
    assert err == "toyc: error: plugin 'broken' failed to load: ImportError: no such thing\n"
    status, out, err = toyc_with(site, "build", "p.toy", cwd=tmp_path, plugins="")
    assert status == 0, err


def test_an_architecture_that_raises_or_returns_nonsense_is_named(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "p.toy").write_text("fn main() {}\n")
    install(site, "raiser", "0.1", "raiser_plugin",
            BAD_ARCH.format(name="raiser", body="raise ValueError('cannot do that')"))
    install(site, "liar", "0.1", "liar_plugin",
            BAD_ARCH.format(name="liar", body="return 'machine code, honest'"))
    status, _, err = toyc_with(site, "build", "--arch", "raiser", "p.toy", cwd=tmp_path)
    assert status == 1 and err == ("toyc: error: plugin 'raiser' (architecture raiser) failed "
                                   "in lower_function: ValueError: cannot do that\n"), err
    status, _, err = toyc_with(site, "build", "--arch", "liar", "p.toy", cwd=tmp_path)
    assert status == 1 and err == ("toyc: error: plugin 'liar' (architecture liar) returned "
                                   "str from lower_function, not Code\n"), err
    assert not (tmp_path / "p").exists()
    status, _, err = toyc_with(site, "build", "--arch", "nope", "p.toy", cwd=tmp_path,
                               plugins="liar,raiser")
    assert status == 1 and "unknown architecture 'nope' (available: liar, raiser, x86_64)" in err


def test_toyc_plugins_lists_the_architectures_registered(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "liar", "0.1", "liar_plugin", BAD_ARCH.format(name="liar", body="return 1"))
    status, out, err = toyc_with(site, "plugins", cwd=tmp_path, plugins="liar")
    assert status == 0, err
    lines = out.splitlines()
    assert "liar 0.1: toyc_register_architectures; architectures: liar" in lines
    assert any(line.startswith("x86_64 ") and line.endswith("; architectures: x86_64")
               for line in lines)


def test_registering_wrongly_is_named(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "p.toy").write_text("fn main() {}\n")
    cases = {
        "twice": ("register(toyc_x86_64.X86_64())",
                  "architecture 'x86_64' is provided by both plugin 'x86_64' and plugin 'twice'"),
        "stranger": ("register('x86_64')",
                     "plugin 'stranger' registered 'x86_64' through toyc_register_architectures, "
                     "not a toyc.arch.Architecture"),
        "nameless": ("register(type('Nameless', (toyc_x86_64.X86_64,), {'info': None})())",
                     "plugin 'nameless' registered Nameless, whose info is None, not a "
                     "toyc.code.ArchInfo"),
        "thrower": ("raise RuntimeError('no CPU today')",
                    "plugin 'thrower' failed in toyc_register_architectures: RuntimeError: "
                    "no CPU today"),
    }
    for name, (body, _) in cases.items():
        install(site, name, "0.1", f"{name}_plugin", REGISTERS.format(body=body))
    for name, (_, message) in cases.items():
        status, out, err = toyc_with(site, "build", "p.toy", cwd=tmp_path, plugins=name)
        assert (status, out, err) == (1, "", f"toyc: error: {message}\n"), name
    assert not (tmp_path / "p").exists()


def test_installing_and_removing_a_plugin_is_noticed_through_the_cache(tmp_path: Path,
                                                                      monkeypatch):
    """The entry points are cached (in XDG_CACHE_HOME) while the directories on sys.path are
    as they were: a build after a plugin is installed loads it, one after it is removed does
    not, and an unchanged installation reads the cache instead of every distribution."""
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "p.toy").write_text("fn main() {}\n")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    install(site, "toyc-other", "1.0", "toyc_other", "")  # (metadata in `site` from the start)
    assert toyc_with(site, "build", "p.toy", cwd=tmp_path)[0] == 0
    assert not (tmp_path / "p.log").exists()
    install(site, "toyc-logger", "1.2", "toyc_logger", OBSERVER)
    assert toyc_with(site, "build", "--full", "p.toy", cwd=tmp_path)[0] == 0
    assert (tmp_path / "p.log").read_text().startswith("full ")
    cached = [json.loads(p.read_text()) for p in cache.glob("toyc/plugins-*.json")]
    assert any(["toyc-logger", "toyc_logger"] in c["entry_points"] for c in cached)
    shutil.rmtree(site / "toyc_logger-1.2.dist-info")
    (tmp_path / "p.log").unlink()
    assert toyc_with(site, "build", "--full", "p.toy", cwd=tmp_path)[0] == 0
    assert not (tmp_path / "p.log").exists()
