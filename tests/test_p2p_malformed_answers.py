"""p2p_malformed_answers: a truncated or stalled answer is that peer's failure, never a thread's.

The attacker: three fake peers, one truncating its hello, one stalling its hello for 12 s, one answering hello
but truncating every relay call. Before (main at bd848d0): urllib3's ProtocolError/ReadTimeoutError escaped
httpjson, so the peer-sync thread died on the first hello and the supervisor had to restart it (/status showed
"ok (restarted 1x; last: ProtocolError ...)", and sync stalled during each restart backoff); after: every
failure is caught per peer, the threads never restart, and the node keeps syncing from its honest peer.
"""

from __future__ import annotations

from pathlib import Path

from tests.framework.fakepeer import FakePeer, hello_answer, stalled, truncated
from tests.framework.nodes import running_node, wait_until


def test_truncated_and_stalled_answers_stop_neither_sync_nor_relay(tmp_path: Path) -> None:
    bad_relay_answers = {
        "/p2p/hello": hello_answer(),
        "POST /p2p/inv": truncated,
        "POST /p2p/block": truncated,
        "POST /tx": truncated,
        "/headers": truncated,
        "/peers": truncated,
    }
    with (
        running_node(tmp_path / "a", mine=True, pause=0.5, host="127.10.0.1") as honest,
        FakePeer("127.30.0.1", {"/p2p/hello": truncated}) as bad_hello,
        FakePeer("127.31.0.1", {"/p2p/hello": stalled(12)}) as staller,
        FakePeer("127.32.0.1", bad_relay_answers) as bad_relay,
    ):
        peers = tuple(f"http://{p}" for p in (bad_hello.address, staller.address, bad_relay.address, honest.address))
        with running_node(tmp_path / "n", host="127.20.0.1", peers=peers) as node:
            wait_until(lambda: bad_hello.count("POST", "/p2p/hello") >= 2, timeout=60, what="two truncated hellos")
            wait_until(lambda: staller.count("POST", "/p2p/hello") >= 1, timeout=60, what="a stalled hello")
            relayed = lambda: bad_relay.count("POST", "/p2p/inv") + bad_relay.count("POST", "/p2p/block")  # noqa: E731
            wait_until(lambda: relayed() >= 2, timeout=60, what="two truncated relay answers")
            target = honest.status()["height"] + 3
            wait_until(lambda: node.status()["height"] >= target, timeout=60, what="sync from the honest peer")
            threads = node.status()["threads"]
            peer_threads = {name: state for name, state in threads.items() if name.startswith("peer")}
            assert peer_threads, threads
            assert all(state == "ok" for state in peer_threads.values()), peer_threads
            listed = {p["address"]: p for p in node.get("/peers").json()["peers"]}
            assert listed[bad_hello.address]["connected"] is False
            assert listed[honest.address]["connected"] is True
