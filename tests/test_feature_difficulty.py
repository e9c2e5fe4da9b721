"""feature_difficulty: real nodes on a network whose difficulty follows its hashrate (aserti3-2d, issue 18).

Regtest with MAIN's rule scaled to one block a second (`--regtest-asert 1`: half-life 20 s, future limit 6 s): what
MAIN does in hours, this network does in a minute. The simulation behind the rule's parameters is
bench/bench_difficulty.py; this test shows the rule on real nodes.
"""

from __future__ import annotations

from pathlib import Path

from simplecoin.core.params import regtest_with_asert
from simplecoin.core.pow import bits_to_target
from tests.framework.nodes import NodeProcess, running_node, wait_until

SPACING = 1
PARAMS = regtest_with_asert(SPACING)
ASERT = ("--regtest-asert", str(SPACING))


def mean_interval(node: NodeProcess, blocks: int, top: int | None = None) -> float:
    """The mean time between the last `blocks` blocks up to height `top` (default: the tip), by their timestamps."""
    answer = node.get("/blocks", params={"limit": blocks + 1, **({"start": top} if top is not None else {})}).json()
    times = [b["time"] for b in answer["blocks"]]
    return (times[0] - times[-1]) / (len(times) - 1)


def test_the_chain_keeps_about_its_spacing_after_its_main_miner_leaves(tmp_path: Path) -> None:
    """The big miner (two processes at 1,000 hashes a second each) and a small one (one process at 100) mine
    together until the difficulty has settled; then the big one stops: the network's hashrate falls 21x. Under the
    old rule the small miner would mine the rest of a 120-block period at about 21 times the spacing (40 minutes
    here, 21 hours on MAIN); under aserti3-2d the chain is back to about its spacing within a few half-lives.
    Hashrates are held (--max-hashrate), so the test asks the same of a busy machine as of an idle one."""
    with (
        running_node(
            tmp_path / "big", mine=True, workers=2, pause=0, host="127.40.0.1", extra=(*ASERT, "--max-hashrate", "1000")
        ) as big,
        running_node(
            tmp_path / "small",
            mine=True,
            workers=1,
            pause=0,
            host="127.41.0.1",
            peers=(big.address,),
            extra=(*ASERT, "--max-hashrate", "100"),
        ) as small,
    ):
        # Settled: the chain runs at about its spacing with both mining (from the pow limit, the first hundreds of
        # blocks come fast until the difficulty has caught up with the hashrate).
        wait_until(
            lambda: small.status()["height"] > 100 and 0.5 <= mean_interval(small, 30) <= 2.0 * SPACING,
            timeout=240,
            interval=1.0,
            what="the difficulty to settle with both miners",
        )
        big.stop()
        left_at = small.status()["height"]
        settled_bits = small.status()["bits"]
        # Twenty blocks mined by the small miner alone, the last ten at about the spacing again.
        wait_until(
            lambda: small.status()["height"] >= left_at + 20 and mean_interval(small, 10) <= 2.0 * SPACING,
            timeout=300,
            interval=1.0,
            what="the chain to keep about its spacing with the small miner alone",
        )
        easier = small.status()["bits"]
        assert PARAMS.pow_limit >= bits_to_target(easier) > 5 * bits_to_target(settled_bits)  # the rule followed
