"""docs/protocol.md stays complete: every reject reason in the code and both genesis hashes appear in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simplecoin.core.errors import DecodeError
from simplecoin.core.params import MAIN, REGTEST, NetworkParams
from simplecoin.node.addrman import network_group
from tests.test_rules import reasons_in_code

DOC = Path(__file__).parent.parent / "docs" / "protocol.md"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(text: str, number: int) -> str:
    """The body of the `## <number>.` section, up to the next `## ` heading."""
    match = re.search(rf"^## {number}\.[^\n]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/protocol.md has no section {number}"
    return match.group(1)


def table_reasons(text: str) -> set[str]:
    """Reasons named in the first cell of markdown table rows: | `reason` | ..."""
    return set(re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", text, re.MULTILINE))


def documented_reasons() -> set[str]:
    return table_reasons(section(doc_text(), 7))


def test_the_reason_tables_parse():
    reasons = documented_reasons()
    assert "bad-cb-amount" in reasons
    assert "mempool-full" in reasons


def test_every_reject_reason_in_the_code_is_documented():
    in_code = reasons_in_code()
    assert "bad-cb-amount" in in_code  # the scan itself works
    missing = in_code - documented_reasons()
    assert not missing, f"reasons missing from the tables of docs/protocol.md section 7: {sorted(missing)}"


def test_no_documented_reason_is_invented():
    extra = documented_reasons() - reasons_in_code() - {DecodeError.reason}
    assert not extra, f"docs/protocol.md section 7 lists reasons the code never raises: {sorted(extra)}"


@pytest.mark.parametrize("params", [MAIN, REGTEST], ids=lambda p: p.name)
def test_genesis_hash_is_documented(params: NetworkParams):
    assert params.genesis_block.hash == params.genesis_hash  # the constant is the hash of the built block
    assert params.genesis_hash_hex in section(doc_text(), 6)


def test_security_md_names_only_tests_and_benchmarks_that_exist():
    """Each limit in docs/security.md names the test that shows it: the file must be there."""
    root = DOC.parent.parent
    text = (root / "docs" / "security.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:tests|bench)/[\w/]+\.py)`", text))
    assert len(named) >= 10
    missing = sorted(path for path in named if not (root / path).is_file())
    assert not missing, f"docs/security.md names files that do not exist: {missing}"


def test_contributing_lists_every_module():
    """CONTRIBUTING.md's tables say where things live: a module missing from them is a room nobody can find."""
    root = DOC.parent.parent
    text = (root / "CONTRIBUTING.md").read_text(encoding="utf-8")
    modules = [p for p in (root / "simplecoin").rglob("*.py") if p.name != "__init__.py"]
    assert len(modules) >= 30
    missing = sorted(str(p.relative_to(root)) for p in modules if f"`{p.name}`" not in text)
    assert not missing, f"CONTRIBUTING.md does not list {missing}"


# -- the README, read by a newcomer (issue 22) ----------------------------------------------------------------------

README = Path(__file__).parent.parent / "README.md"


def shell_lines(text: str) -> list[str]:
    """The command lines of the README's ```sh blocks."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readmes_wallet_examples_keep_wallets_out_of_the_checkout():
    """Run from the checkout as written, an example must not drop a wallet file (and its companions) there."""
    paths = [m for line in shell_lines(README.read_text(encoding="utf-8")) for m in re.findall(r"--wallet (\S+)", line)]
    assert len(paths) >= 3
    for path in paths:
        assert path.startswith(("~", "/")), f"README: --wallet {path} would land in the checkout"


def test_the_readme_tells_what_a_newcomer_sees():
    text = " ".join(README.read_text(encoding="utf-8").split())
    # The fast first blocks on main, and why (item 7): the explanation names the rule and when it takes over.
    assert MAIN.asert_activation_height == 3
    assert "The first blocks come fast." in text
    assert "From block 3 the difficulty follows the hashrate" in text
    # One machine's nodes share a network group, and automatic connections take one per group (item 9).
    assert "soon knows both" not in text
    assert network_group("127.0.0.1") == network_group("127.0.0.2") == "127.0.0.0/16"
    assert "127.0.0.0/16" in text
    # The miner's wallet has recovery words, and an older one can be swept (item 1).
    assert "python wallet.py sweep" in text
    assert "recovery words" in text.split("## The wallet")[0]
