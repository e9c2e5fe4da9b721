"""The consensus core reads no clock, disk or network: it imports none of the modules that would."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "simplecoin" / "core"
CORE = [
    "errors",
    "encoding",
    "hashing",
    "primitives",
    "params",
    "pow",
    "keys",
    "validation",
    "chain",
    "mempool",
    "mining",
]
FORBIDDEN = {
    "flask",
    "requests",
    "sqlite3",
    "yaml",
    "multiprocessing",
    "socket",
    "time",
    "datetime",
    "os",
    "random",
    "threading",
    "subprocess",
    "urllib",
    "http",
    "pathlib",
    "logging",
}
IN_PACKAGE_IO = {"simplecoin.node.store", "simplecoin.node.node"}


def imports_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_no_io(module):
    imported = imports_of(module)
    assert not {name.split(".")[0] for name in imported} & FORBIDDEN, imported
    assert not imported & IN_PACKAGE_IO, imported


def test_the_check_sees_an_io_import():
    assert "sqlite3" in imports_of("../node/store")
