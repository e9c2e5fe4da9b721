"""miner.py as a user runs it (the single-process version; issue #3 brings the server and peers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from simplecoin.node import Node
from simplecoin.params import REGTEST
from simplecoin.store import Store

REPO = Path(__file__).parent.parent


def run_miner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "miner.py", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_mines_blocks_that_a_fresh_node_accepts(tmp_path):
    result = run_miner("--network", "regtest", "--data-dir", str(tmp_path), "--blocks", "3")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "miner-key.json").stat().st_mode & 0o777 == 0o600
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST)
    try:
        assert node.height == 3
    finally:
        node.close()
    again = run_miner("--network", "regtest", "--data-dir", str(tmp_path), "--blocks", "1")
    assert again.returncode == 0, again.stderr
    assert "from height 3" in again.stderr


def test_bad_address_is_one_line_naming_it(tmp_path):
    result = run_miner("--network", "regtest", "--data-dir", str(tmp_path), "--address", "not-an-address")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["miner: --address 'not-an-address': '-' is not a Base58 character"]


def test_address_of_another_network_is_refused(tmp_path):
    main_address = "SMJ12qn9jNCCXJnTYRz5Yu9ZenERqvYwfg"
    result = run_miner("--network", "regtest", "--data-dir", str(tmp_path), "--address", main_address)
    assert result.returncode == 2
    assert "another network" in result.stderr
