"""feature_old_chain: a node whose data directory holds a chain mined before the difficulty rule refuses to start,
with one line that says what to do (issue 18: never a silent failure or a crash loop).

The chain here is regtest's, mined with regtest's fixed target one second a block; the node is started under the
rule at ten seconds a block (`--regtest-asert 10`), so from the activation height on the chain is ahead of the
rule's schedule and its bits are not the rule's: exactly a `main` chain mined before aserti3-2d, in miniature.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from simplecoin.core.params import REGTEST, regtest_with_asert
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from simplecoin.server import REFUSED_EXIT_CODE
from tests.framework.builder import ChainBuilder
from tests.framework.nodes import REPO, free_port, running_node

RULE = regtest_with_asert(10)


def start(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    port = free_port()
    args = ["--network", "regtest", "--data-dir", str(data_dir), "--port", str(port), "--no-mine", *extra]
    return subprocess.run(
        [sys.executable, "miner.py", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_chain_mined_before_the_rule_is_refused_with_what_to_do(tmp_path: Path) -> None:
    builder = ChainBuilder(REGTEST)
    (tmp_path / "node").mkdir()
    node = Node(Store(tmp_path / "node" / "chain.db", REGTEST), REGTEST)
    try:
        for i in range(1, 8):  # one second apart: ahead of the rule's schedule of ten
            node.submit_block(builder.block(f"b{i}", time_delta=1))
        assert node.height == 7
    finally:
        node.close()
    assert RULE.asert_activation_height is not None
    done = start(tmp_path / "node", "--regtest-asert", str(RULE.target_spacing))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    refused = [line for line in output.splitlines() if "breaks the difficulty rule" in line]
    assert len(refused) == 1, output
    assert f"from height {RULE.asert_activation_height}" in refused[0]
    assert "chain.db aside and start again" in refused[0]
    assert f"died with exit code {REFUSED_EXIT_CODE} (it refused to start" in output
    # Nothing was changed: under the rule it was mined with, the same data directory starts at the same tip.
    with running_node(tmp_path / "node") as same:
        assert same.status()["height"] == 7
        assert "breaks the difficulty rule" not in same.run_log()
