"""The consensus core reads no clock, disk or network: nothing it imports, directly or not, may.

Every module under simplecoin/core/ is walked with all the imports it reaches. Inside the package only
simplecoin.core.* may be reached; outside it only the standard-library modules a pure module needs and the
curve arithmetic libraries (ecdsa; coincurve, which wraps libsecp256k1; gmpy2).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "simplecoin" / "core"

# What a pure module may import from outside the package: computation only.
ALLOWED = {
    "__future__",
    "abc",
    "array",  # the block index keeps its columns in arrays
    "bisect",
    "collections",
    "dataclasses",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "hmac",
    "io",
    "itertools",
    "math",
    "operator",
    "re",
    "struct",
    "typing",
    "coincurve",
    "ecdsa",
    "gmpy2",  # big-integer arithmetic for the on-curve check of public keys
}


def module_file(module: str) -> Path | None:
    """The source file of a simplecoin module, or None for anything outside the package."""
    if module != "simplecoin" and not module.startswith("simplecoin."):
        return None
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def direct_imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports, at any depth of its code, with `from x import y` also giving `x.y`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def reachable(start: str) -> dict[str, str]:
    """Each module reachable from `start` by imports, with the module that first imported it."""
    found = {start: ""}
    stack = [start]
    while stack:
        module = stack.pop()
        path = module_file(module)
        if path is None or not path.exists():
            continue
        for name in direct_imports(path, module):
            if name not in found:
                found[name] = module
                stack.append(name)
    return found


def chain_to(found: dict[str, str], module: str) -> str:
    steps = [module]
    while found[steps[-1]]:
        steps.append(found[steps[-1]])
    return " <- ".join(steps)


def impurities(start: str) -> list[str]:
    """How `start` reaches something a pure module may not: each as an import chain."""
    found = reachable(start)
    bad = []
    for name in found:
        path = module_file(name)
        if path is not None:
            if path.exists() and not path.is_relative_to(CORE) and name != "simplecoin":
                bad.append(chain_to(found, name))
        elif name.split(".")[0] not in ALLOWED:
            bad.append(chain_to(found, name))
    return sorted(bad)


CORE_MODULES = sorted(f"simplecoin.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")


def test_the_walk_sees_every_core_module():
    assert {"simplecoin.core.validation", "simplecoin.core.spv", "simplecoin.core.coins"} <= set(CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_reaches_no_io(module):
    assert impurities(module) == []


def test_the_walk_catches_a_shell_module_and_an_io_library():
    # The node reaches sqlite3 through the store; the server reaches the peer layer and the web app.
    assert any(chain.startswith("sqlite3 <- simplecoin.node.store") for chain in impurities("simplecoin.node.node"))
    server = reachable("simplecoin.server")
    assert {"simplecoin.node.p2p.manager", "simplecoin.web.app", "requests", "flask"} <= set(server)


def test_the_walk_follows_imports_transitively(tmp_path, monkeypatch):
    """A core module that imports a core module that imports the shell is caught, with the chain."""
    package = tmp_path / "simplecoin"
    (package / "core").mkdir(parents=True)
    (package / "node").mkdir()
    for init in (package / "__init__.py", package / "core" / "__init__.py", package / "node" / "__init__.py"):
        init.write_text("")
    (package / "core" / "a.py").write_text("from simplecoin.core import b\n")
    (package / "core" / "b.py").write_text("def f():\n    from simplecoin.node.service import NodeService\n")
    (package / "node" / "service.py").write_text("import threading\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "CORE", package / "core")
    assert impurities("simplecoin.core.a") == [
        "simplecoin.node.service <- simplecoin.core.b <- simplecoin.core.a",
        "threading <- simplecoin.node.service <- simplecoin.core.b <- simplecoin.core.a",
    ]


# -- the shell's layers: each package imports only the ones below it ------------------------------------------------

# Who may import whom inside the package (`simplecoin.server`, the server process's composition root, sits on top).
LAYERS = {
    "core": set(),
    "node": {"core"},
    "web": {"core", "node"},
    "wallet": {"core"},
    "server": {"core", "node", "web"},
    "demo": {"core", "wallet"},  # the classroom network starts nodes as processes and talks to them over HTTP
    "cli": {"core", "node", "wallet", "server"},  # the commands (miner.py, wallet.py): on top, imported by none
}
SHARED = {"simplecoin", "simplecoin.httpjson", "simplecoin.bounded"}  # helpers any layer may use


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "simplecoin" or len(parts) < 2 or module in SHARED or module.startswith("simplecoin.httpjson."):
        return None
    return parts[1] if parts[1] in LAYERS else None


def upward_imports(root: Path) -> list[str]:
    """Every `importer -> imported` where a module imports a layer that is not below its own."""
    bad = set()
    for path in sorted((root / "simplecoin").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        own = layer_of(module)
        if own is None:
            continue
        for name in direct_imports(path, module):
            other = layer_of(name)
            if other is not None and other != own and other not in LAYERS[own]:
                bad.add(f"{module} -> {'.'.join(name.split('.')[:3])}")  # the module, not each name it lends
    return sorted(bad)


def test_no_layer_imports_one_above_it():
    assert upward_imports(ROOT) == []


def test_the_layer_check_catches_an_upward_import(tmp_path):
    package = tmp_path / "simplecoin"
    for sub in ("node", "web"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "web" / "app.py").write_text("import flask\n")
    (package / "node" / "server.py").write_text("def serve():\n    from simplecoin.web.app import create_app\n")
    assert upward_imports(tmp_path) == ["simplecoin.node.server -> simplecoin.web.app"]
