"""The classroom network (`python -m simplecoin.demo`, `simplecoin-demo`): what it prints, and a real run.

The functional test starts the demo as a learner would, in its own session, and reads only what it prints and
what its nodes answer; after Ctrl-C no process of the demo's or of any node's process group may be left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from simplecoin import demo
from simplecoin.core.params import REGTEST
from simplecoin.wallet.client import NodeError
from tests.framework.nodes import REPO, REQUEST_TIMEOUT, wait_until

GENESIS = REGTEST.genesis_hash_hex

# -- what it prints, against nodes whose answers the test writes ------------------------------------------------


class FakeClient:
    """A node's API as `DemoNode` reads it: /status and /block/<hash> from the test's dicts."""

    def __init__(self, blocks: dict[str, dict]) -> None:
        self.blocks = blocks
        self.tip: str | None = GENESIS  # None: the node does not answer

    def get(self, path: str) -> dict:
        if self.tip is None:
            raise NodeError("no node could be reached", "unreachable")
        if path == "/status":
            return {"tip": self.tip, "height": self.blocks[self.tip]["height"]}
        block_hash = path.removeprefix("/block/")
        if block_hash not in self.blocks:
            raise NodeError("not found", "not-found")
        return self.blocks[block_hash]


class FakeWallet:
    def __init__(self, client: FakeClient) -> None:
        self.client = client


def block(name: str, parent: str, height: int, finder: str, payments: int = 0) -> dict:
    coinbase = {"outputs": [{"address": f"address-of-{finder}"}]}
    return {"hash": name, "prev_hash": parent, "height": height, "txs": [coinbase] + [{}] * payments}


def fake_node(name: str, blocks: dict[str, dict]) -> demo.DemoNode:
    node = demo.DemoNode(name, "127.0.0.1", 1, Path("."), False, FakeWallet(FakeClient(blocks)), f"address-of-{name}")  # type: ignore[arg-type]
    node.tip, node.height = GENESIS, 0
    return node


def set_chain(node: demo.DemoNode, chain: list[str]) -> None:
    """Make `chain` (genesis first) the node's active chain."""
    blocks = node.wallet.client.blocks
    for block_hash, entry in blocks.items():
        entry["active"] = block_hash in chain
    node.wallet.client.tip = chain[-1]


def printed(capsys) -> list[str]:
    return [line.split("  ", 1)[1] for line in capsys.readouterr().out.splitlines()]


def test_each_new_block_is_printed_once_with_its_finder_and_a_reorg_with_its_depth(capsys):
    #   genesis -- a1 -- a2            node1 mines a1, a2: both nodes follow
    #          \
    #           - b1 -- b2 -- b3       node2's branch overtakes: 2 blocks off each node's chain
    blocks = {
        GENESIS: {"hash": GENESIS, "prev_hash": "0" * 64, "height": 0, "txs": []},
        "a1": block("a1", GENESIS, 1, "node1"),
        "a2": block("a2", "a1", 2, "node1", payments=2),
        "b1": block("b1", GENESIS, 1, "node2"),
        "b2": block("b2", "b1", 2, "node2"),
        "b3": block("b3", "b2", 3, "outsider"),
    }
    one, two = fake_node("node1", blocks), fake_node("node2", dict(blocks))
    two.wallet.client.blocks = one.wallet.client.blocks  # one chain store; each node its own tip
    classroom = demo.Classroom([one, two], interval=3)

    set_chain(one, [GENESIS, "a1", "a2"])
    two.wallet.client.tip = "a2"
    classroom.watch_tips()
    classroom.watch_tips()  # nothing new: nothing printed twice
    assert printed(capsys) == [
        "block 1 found by node1 (a1…), 0 payment(s) in it",
        "block 2 found by node1 (a2…), 2 payment(s) in it",
    ]

    set_chain(one, [GENESIS, "b1", "b2", "b3"])
    two.wallet.client.tip = "b3"
    classroom.watch_tips()
    assert printed(capsys) == [
        "reorg on node1: 2 block(s) off its chain, tip now 3",
        "reorg on node2: 2 block(s) off its chain, tip now 3",
        "block 1 found by node2 (b1…), 0 payment(s) in it",
        "block 2 found by node2 (b2…), 0 payment(s) in it",
        "block 3 found by a miner outside the demo (b3…), 0 payment(s) in it",
    ]


def test_a_node_that_stops_answering_is_said_once_and_so_is_its_return(capsys):
    blocks = {GENESIS: {"hash": GENESIS, "prev_hash": "0" * 64, "height": 0, "txs": [], "active": True}}
    one, two = fake_node("node1", blocks), fake_node("node2", blocks)
    classroom = demo.Classroom([one, two], interval=3)
    one.wallet.client.tip = None
    for _ in range(3):
        classroom.watch_tips()
    one.wallet.client.tip = GENESIS
    classroom.watch_tips()
    classroom.watch_tips()
    assert printed(capsys) == [
        "node1 does not answer as it should: no node could be reached",
        "node1 answers again",
    ]


def test_nodes_run_miner_py_in_a_checkout_and_the_installed_simplecoin_node_elsewhere(tmp_path, monkeypatch):
    assert demo.node_command() == [sys.executable, str(REPO / "miner.py")]
    installed = tmp_path / "venv" / "lib" / "site-packages" / "simplecoin"  # a wheel: no miner.py beside it
    installed.mkdir(parents=True)
    (tmp_path / "venv" / "bin").mkdir()
    script = tmp_path / "venv" / "bin" / "simplecoin-node"
    script.write_text("#!/bin/sh\n")
    monkeypatch.setattr(demo, "__file__", str(installed / "demo.py"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    assert demo.node_command() == [str(script)]
    script.unlink()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(demo.DemoError, match=r"neither miner\.py nor simplecoin-node"):
        demo.node_command()


@pytest.mark.parametrize(
    "argv",
    [["--nodes", "1"], ["--nodes", "3", "--miners", "4"], ["--miners", "0"], ["--interval", "0"], ["--duration", "-1"]],
)
def test_a_network_it_cannot_make_is_refused_before_anything_starts(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    assert "simplecoin-demo: error:" in capsys.readouterr().err


# -- a real run -----------------------------------------------------------------------------------------------------

NODE_LINE = re.compile(r"^\S+  (node\d+)  (http://127\.0\.0\.\d+:\d+)/  pid (\d+)  (?:mining|not mining)$", re.M)
CONFIRMED = re.compile(r"payment confirmed: (node\d+) -> (node\d+), [\d.]+ coin in block (\d+)")


def process_groups() -> dict[int, int]:
    """pid: process group of every process on the machine, from /proc."""
    groups = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                groups[int(entry)] = int(stat.rsplit(")", 1)[1].split()[2])  # after the name: state, ppid, pgrp
    return groups


@dataclass
class DemoRun:
    """A `python -m simplecoin.demo` process in its own session, its output in a file."""

    process: subprocess.Popen
    out: Path
    temp: Path  # where its temporary data directory goes
    groups: set[int]  # process groups it and its nodes run in

    def output(self) -> str:
        return self.out.read_text()

    def nodes(self) -> list[tuple[str, str, str]]:
        """(name, url, pid) of each node, once all three are up."""
        found = NODE_LINE.findall(self.output())
        if len(found) != 3:
            return []
        self.groups |= {int(pid) for _, _, pid in found}  # each node runs in its own session: its pid is its group
        return found

    def stop(self, signum: int) -> None:
        """Send `signum`: it must exit 0, with no process of its own or its nodes' groups, nor its directory, left."""
        self.process.send_signal(signum)
        assert self.process.wait(timeout=60) == 0, self.output()
        left = {pid: group for pid, group in process_groups().items() if group in self.groups}
        assert not left, f"processes left after signal {signum}: {left}"
        assert list(self.temp.iterdir()) == [], "the temporary data directory was not removed"
        assert self.output().splitlines()[-1].endswith("  stopped")


@contextlib.contextmanager
def demo_run(tmp_path: Path, *args: str) -> Iterator[DemoRun]:
    temp = tmp_path / "temp"
    temp.mkdir()
    out = tmp_path / "demo.out"
    with out.open("wb") as f:
        process = subprocess.Popen(
            [sys.executable, "-m", "simplecoin.demo", *args],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, like a learner's terminal
            env={**os.environ, "TMPDIR": str(temp)},
        )
    run = DemoRun(process, out, temp, {process.pid})
    try:
        yield run
    finally:
        if process.poll() is None:  # the test failed: leave nothing running either
            for group in run.groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
            process.wait(timeout=10)


def test_three_nodes_pay_each_other_on_one_tip_and_ctrl_c_leaves_nothing(tmp_path):
    with demo_run(tmp_path, "--block-time", "1", "--interval", "1.5", "--duration", "150") as run:
        nodes = wait_until(run.nodes, timeout=60, what="three nodes up")
        confirmed = wait_until(
            lambda: len(CONFIRMED.findall(run.output())) >= 5 and CONFIRMED.findall(run.output()),
            timeout=90,
            what="5 confirmed payments",
        )
        names = {name for name, _, _ in nodes}
        for payer, payee, _ in confirmed:
            assert {payer, payee} <= names
            assert payer != payee

        def one_tip() -> bool:
            tips = {requests.get(url + "/status", timeout=REQUEST_TIMEOUT).json()["tip"] for _, url, _ in nodes}
            return len(tips) == 1

        wait_until(one_tip, timeout=30, what="the three nodes on one tip")
        assert any(group in run.groups for group in process_groups().values())
        run.stop(signal.SIGINT)


def test_sigterm_as_soon_as_the_nodes_are_up_leaves_nothing(tmp_path):
    with demo_run(tmp_path) as run:
        wait_until(run.nodes, timeout=60, what="three nodes up")
        run.stop(signal.SIGTERM)
