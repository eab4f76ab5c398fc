"""The project's shape: which package may import which.

The compiler (`toyc`) depends on the linker (`linker`), never the reverse: what the linker needs
from a code generator is the linker's own contract (`linker.code`, `linker.dwarf`).
"""

from __future__ import annotations

import ast

from conftest import ROOT


def _imports(tree: ast.AST):
    """(line, module) of every import in `tree`, at any depth (a function's too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_linker_does_not_import_toyc():
    modules = sorted((ROOT / "linker").rglob("*.py"))
    assert modules, "no modules found in linker/"
    found = []
    for path in modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, module in _imports(tree):
            if module == "toyc" or module.startswith("toyc."):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not found, "linker/ imports the compiler:\n" + "\n".join(found)
