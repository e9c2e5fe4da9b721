"""SimpleCoin relay benchmark: 8 nodes in a line on loopback, each with one slow peer attached.

Run from the repository root:

    python bench/bench_relay.py            # 3 blocks and 3 transactions (under a minute once nodes are up)

What is measured, and why (issue 10): relay used to be one thread posting to each peer in turn, so one peer
answering after 12 s delayed everyone. Now each peer has its own send queue and sender, and relay announces
hashes (POST /p2p/inv) before sending what the peer asks for.

Setup: real `miner.py` regtest nodes N1..N8 on 127.101.0.1 .. 127.108.0.1 (distinct addresses, so distinct
identities and network groups), each started with `--peer` its predecessor; N1 mines (one process, a 1 s
pause between blocks). Each node also has `--peer` a fake peer of its own (tests.framework.fakepeer) that answers
its hello at once and every relay call (inv, block, tx) only after 12 s.

1. Block: for each of 3 blocks N1 mines, the time from N1 reporting the new tip to N8 reporting the same tip
   (both polled every 20 ms). Goal: <= 2 s.
2. Transaction: once N1 has mature coinbases, 3 transactions are submitted to N1, one after the other; the
   time from the answer to POST /tx on N1 to N8 knowing the tx (GET /tx/<txid>, in its mempool or a block).
   Goal: <= 3 s.

Same-run reference: the same measurements on a fresh line without the slow peers, printed first.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from common import Run, load_average, stop_on_sigterm  # first: it puts the repository on sys.path

from tests.framework.client import mature_coinbases, reward_key, spend, submit
from tests.framework.fakepeer import FakePeer, hello_answer, reply, slow
from tests.framework.nodes import running_node, wait_until

NODES = 8
SLOW_SECONDS = 12.0
BLOCK_GOAL = 2.0
TX_GOAL = 3.0
ROUNDS = 3


def slow_answers() -> dict:
    ok = lambda h, p, q: reply(h, {"status": "ok", "want": {"blocks": [], "txs": []}})  # noqa: E731
    return {
        "/p2p/hello": hello_answer(),
        "POST /p2p/inv": slow(SLOW_SECONDS, ok),
        "POST /p2p/block": slow(SLOW_SECONDS, ok),
        "POST /tx": slow(SLOW_SECONDS, ok),
        "/peers": lambda h, p, q: reply(h, {"peers": []}),
    }


def measure(slow_peers_attached: bool, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds from N1 to N8 for ROUNDS blocks and ROUNDS transactions, on a fresh line of nodes."""
    with tempfile.TemporaryDirectory(prefix="bench_relay_") as tmp, contextlib.ExitStack() as stack:
        slow_peers = (
            [stack.enter_context(FakePeer(f"127.{201 + i}.0.1", slow_answers())) for i in range(NODES)]
            if slow_peers_attached
            else []
        )
        nodes = []
        for i in range(NODES):
            peers = ((slow_peers[i].address,) if slow_peers else ()) + ((nodes[-1].address,) if nodes else ())
            nodes.append(
                stack.enter_context(
                    running_node(
                        Path(tmp) / f"n{i + 1}",
                        mine=i == 0,
                        pause=1.0,
                        host=f"127.{101 + i}.0.1",
                        peers=peers,
                    )
                )
            )
        first, last = nodes[0], nodes[-1]
        wait_until(lambda: last.status()["height"] >= 2, timeout=120, what="the line to sync")

        block_delays = []
        for _ in range(rounds):
            start_tip = first.status()["tip"]
            tip = wait_until(
                lambda start_tip=start_tip: (s := first.status())["tip"] != start_tip and s["tip"],
                timeout=30,
                interval=0.02,
            )
            seen = time.monotonic()
            wait_until(lambda tip=tip: last.status()["tip"] == tip, timeout=60, interval=0.02, what="the block")
            block_delays.append(time.monotonic() - seen)

        key, address = reward_key(first)
        coins = wait_until(lambda: len(c := mature_coinbases(first, address)) >= rounds and c, timeout=120)
        tx_delays = []
        for coin in coins[:rounds]:
            txid = submit(first, spend(coin, key))
            sent = time.monotonic()
            wait_until(
                lambda txid=txid: last.get(f"/tx/{txid}").status_code == 200, timeout=60, interval=0.02, what="the tx"
            )
            tx_delays.append(time.monotonic() - sent)
    return block_delays, tx_delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="relay across 8 nodes with a slow peer on each")
    parser.add_argument("--quick", action="store_true", help="one block and one tx each way, for the smoke test")
    rounds = 1 if parser.parse_args(argv).quick else ROUNDS
    run = Run()
    print(f"bench_relay: {NODES} nodes in a line (load {load_average()})")
    ref_blocks, ref_txs = measure(slow_peers_attached=False, rounds=rounds)
    print(f"   reference, same run, no slow peers: block {_seconds(ref_blocks)}; tx {_seconds(ref_txs)}")
    block_delays, tx_delays = measure(slow_peers_attached=True, rounds=rounds)
    print(f"   with one {SLOW_SECONDS:.0f} s peer attached to each node (load {load_average()}):")
    block_ok, tx_ok = max(block_delays) <= BLOCK_GOAL, max(tx_delays) <= TX_GOAL
    print(f"1. block N1 -> N8: {_seconds(block_delays)} (goal <= {BLOCK_GOAL} s) {run.judge('block relay', block_ok)}")
    print(f"2. tx    N1 -> N8: {_seconds(tx_delays)} (goal <= {TX_GOAL} s) {run.judge('tx relay', tx_ok)}")
    return run.finish()


def _seconds(delays: list[float]) -> str:
    return ", ".join(f"{d:.2f} s" for d in delays)


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
