"""Packaging: the wheel a user installs with pip holds the package and its data, and its commands run a node.

The dependency check is quick. The rest (marked slow, and run by CI like every test) builds the wheel as a release is
built, with `python -m build --wheel` (PyPA's `build`, in an isolated build environment, so setuptools comes
from the package index as it does for a user), from a copy of only what the wheel is made of (pyproject.toml, README.md,
simplecoin/), so nothing else of the checkout can leak in and no build/ or egg-info lands in it. It then
installs the wheel into a fresh venv in a temporary directory, with its dependencies from the package index:
that is what proves pyproject.toml lists every one (about 20 s with pip's cache). The commands run from a
directory outside the checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.framework.nodes import REPO, NodeProcess, free_port, node_args

PIP_TIMEOUT = 600  # a cold pip cache downloads every dependency
COMMANDS = ("simplecoin-node", "simplecoin-wallet", "simplecoin-demo")


def requirement_lines(text: str) -> list[str]:
    """The requirement specifiers of a requirements file: no comments, no blank lines, no `-r` includes."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def disagreements(declared: list[str], pinned: list[str]) -> list[str]:
    """How requirements.txt (`pinned`) differs from pyproject.toml's dependencies (`declared`).

    Both must name the same packages; requirements.txt may pin a package tighter, never looser: every
    specifier pyproject.toml gives a package must be among requirements.txt's for it.
    """
    ours = {canonicalize_name(r.name): r for r in map(Requirement, declared)}
    theirs = {canonicalize_name(r.name): r for r in map(Requirement, pinned)}
    problems = [f"{name}: only in pyproject.toml" for name in sorted(ours.keys() - theirs.keys())]
    problems += [f"{name}: only in requirements.txt" for name in sorted(theirs.keys() - ours.keys())]
    for name in sorted(ours.keys() & theirs.keys()):
        looser = set(ours[name].specifier) - set(theirs[name].specifier)
        if looser:
            problems.append(f"{name}: requirements.txt lacks {','.join(sorted(map(str, looser)))}")
    return problems


def test_requirements_txt_agrees_with_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert disagreements(declared, requirement_lines((REPO / "requirements.txt").read_text())) == []


def test_the_agreement_check_catches_a_missing_package_and_a_looser_pin():
    pinned = requirement_lines("flask>=3.0  # the web app\n-r other.txt\n\nPyYAML>=6.0,<7\nextra>=1\n")
    assert disagreements(["flask>=3.0,<4", "pyyaml>=6.0,<7", "requests>=2"], pinned) == [
        "requests: only in pyproject.toml",
        "extra: only in requirements.txt",
        "flask: requirements.txt lacks <4",
    ]
    assert disagreements(["flask>=3.0"], ["flask>=3.0,<3.1"]) == []  # pinned tighter: fine


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "simplecoin", source / "simplecoin", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)]
    subprocess.run(build, check=True, timeout=PIP_TIMEOUT, capture_output=True)
    (built,) = out.glob("simplecoin-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (no access to this one's packages) with the wheel and its dependencies installed."""
    env = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "--python", str(python)]
    subprocess.run([*pip, "install", str(wheel)], check=True, timeout=PIP_TIMEOUT)
    return env


@pytest.fixture
def outside(tmp_path, monkeypatch) -> Path:
    """A working directory outside the checkout, and no PYTHONPATH that could lead back into it."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cwd


@pytest.mark.slow
def test_the_wheel_holds_the_package_its_data_and_its_commands_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert tops == {"simplecoin", wheel.name.split("-py3")[0] + ".dist-info"}  # no bench/, images/, tests/
    package_files = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "simplecoin").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"simplecoin/web/templates/base.html", "simplecoin/web/static/explorer.css"} <= package_files
    assert package_files - names == set()  # every template, static file and module
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/entry_points.txt").decode()
    assert all(f"{command} = " in entry_points for command in COMMANDS)


@pytest.mark.slow
def test_the_installed_package_is_the_wheels_not_the_checkouts(venv, outside):
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import simplecoin.cli.node, sys; print(simplecoin.__file__)"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(run.stdout.strip()).is_relative_to(venv)


@pytest.mark.slow
def test_an_installed_node_serves_status_and_the_explorer_with_its_static_files(venv, outside, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    node = NodeProcess(
        data_dir,
        port,
        node_args(data_dir, port, mine=False),
        tmp_path / "node.log",
        command=(str(venv / "bin" / "simplecoin-node"),),
        cwd=outside,
    )
    try:
        node.start()  # waits for /status to answer
        assert node.status()["network"] == "regtest"
        page = node.get("/")
        assert page.status_code == 200, page.text
        assert "SimpleCoin" in page.text
        links = re.findall(r'(?:href|src)="(/explorer/static/[^"]+)"', page.text)
        assert {Path(link).suffix for link in links} >= {".css", ".js"}, links
        for link in links:
            served = node.get(link)
            assert served.status_code == 200, link
            assert served.content == (REPO / "simplecoin/web/static" / Path(link).name).read_bytes()
    finally:
        assert node.stop() == 0, node.log()


@pytest.mark.slow
def test_the_installed_wallet_answers_help(venv, outside):
    run = subprocess.run(
        [str(venv / "bin" / "simplecoin-wallet"), "--help"], cwd=outside, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "usage: simplecoin-wallet" in run.stdout


@pytest.mark.slow
def test_the_installed_demo_answers_help(venv, outside):
    if not (REPO / "simplecoin" / "demo.py").exists():
        pytest.skip("simplecoin/demo.py is not in this checkout yet (the demo branch brings it)")
    run = subprocess.run(
        [str(venv / "bin" / "simplecoin-demo"), "--help"], cwd=outside, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
