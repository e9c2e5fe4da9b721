"""The poison signature against a real node: refused with a reason by POST /tx, POST /p2p/block and peer sync; the
node keeps serving, mining and restarting on the same data directory.

The poison (see tests/test_signatures.py): key (n-1)*G, r = sighash mod n, so u1*G + u2*Q is the point at
infinity. Before the fix, python-ecdsa raised TypeError on it: POST /tx answered 500, and a block carrying it
(valid proof of work) was stored, could not be connected, and the node never started again on that directory;
the same block fetched from a peer killed the node's peer-sync thread ("Exception in thread peer-sync"), so it
never synced from anyone again.

    A's chain:  genesis - ... - f (funds the poison key) - ... - tip
                                                                 \\
                                                                  poison (spends f's output with the poison signature)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from simplecoin.core.hashing import hash160, hash_from_hex, hash_hex
from simplecoin.core.keys import signature_hash
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction, TxIn, TxOut
from tests.framework.builder import BOB, ChainBuilder
from tests.framework.client import confirmed, get_json, mature_coinbases, reward_key, spend, submit
from tests.framework.fakepeer import FakePeer, chain_answers
from tests.framework.nodes import NodeProcess, running_node, wait_until
from tests.test_signatures import POISON_KEY, POISON_PUBKEY, poison_signature

FEE = 10_000
MATURITY = REGTEST.coinbase_maturity


def poison_tx(funding: OutPoint, amount: int) -> Transaction:
    """Spends `funding` (paid to the poison key) to Bob, signed with the signature whose R is infinity."""
    unsigned = Transaction(1, (TxIn(funding, POISON_PUBKEY, b""),), (TxOut(amount - FEE, BOB.pubkey_hash),))
    signature = poison_signature(signature_hash(unsigned, 0, REGTEST.genesis_hash))
    return dataclasses.replace(unsigned, inputs=(dataclasses.replace(unsigned.inputs[0], signature=signature),))


def adopt_chain(node: NodeProcess) -> ChainBuilder:
    """A builder that knows the node's active chain, block by block (named h1, h2, ...), to build on its tip."""
    builder = ChainBuilder(REGTEST)
    height = node.status()["height"]
    for h in range(1, height + 1):
        block_hash = get_json(node, f"/block/{h}")["hash"]
        (raw,) = get_json(node, f"/p2p/blocks?hashes={block_hash}")["blocks"]
        block = Block.deserialize(bytes.fromhex(raw))
        builder.index.add(builder.index.make_entry(block.header))
        builder.blocks[f"h{h}"] = block
        builder.tip = f"h{h}"
    return builder


def assert_refused(response, reason: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.json()["reason"] == reason, response.text


def test_poison_signature_is_refused_in_a_tx_and_a_block_and_the_node_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "a"

    # 1. A mining node: fund the poison key, then offer the poison tx. The node must answer 400 and keep mining.
    with running_node(data_dir, mine=True, pause=0.2) as a:
        wait_until(lambda: a.status()["height"] >= MATURITY + 1, timeout=90, what="a mature coinbase")
        assert "verifying signatures with libsecp256k1" in a.run_log()
        key, address = reward_key(a)
        coin = wait_until(lambda: mature_coinbases(a, address), timeout=60, what="a mature coinbase of A")[0]
        funding = spend(coin, key, to=hash160(POISON_PUBKEY))
        funding_txid = submit(a, funding)
        wait_until(lambda: confirmed(a, funding_txid), timeout=60, what="the funding tx to confirm")

        poison = poison_tx(OutPoint(hash_from_hex(funding_txid), 0), funding.outputs[0].amount)
        assert_refused(a.post("/tx", json={"hex": poison.serialize().hex()}), "bad-txns-sig-invalid")
        height = a.status()["height"]
        wait_until(lambda: a.status()["height"] >= height + 2, timeout=60, what="A to keep mining")
        assert get_json(a, f"/tx/{funding_txid}")["confirmations"] >= 1
        assert a.get(f"/tx/{hash_hex(poison.txid)}").status_code == 404
    assert a.process is not None
    assert a.process.returncode == 0, a.run_log()  # stopped by SIGTERM, cleanly

    # 2. Restarted without mining (so the tip holds still): a block with valid proof of work carrying the poison.
    with running_node(data_dir) as a:
        builder = adopt_chain(a)
        tip = a.status()
        block = builder.block("poison", txs=[poison])
        assert block.header.prev_hash == hash_from_hex(tip["tip"])
        assert_refused(a.post("/p2p/block", json={"hex": block.serialize().hex()}), "bad-txns-sig-invalid")
        assert a.status()["tip"] == tip["tip"]
        # Refused on its signatures before the node took its lock: never stored, and remembered.
        assert a.get(f"/block/{block.header.hash_hex()}").status_code == 404
        assert_refused(a.post("/p2p/block", json={"hex": block.serialize().hex()}), "bad-txns-sig-invalid")
        # An honest block on the same tip is still accepted.
        honest = builder.block("honest", parent=builder.name_of(hash_from_hex(tip["tip"])))
        accepted = a.post("/p2p/block", json={"hex": honest.serialize().hex()})
        assert accepted.status_code == 200, accepted.text
        assert a.status()["tip"] == honest.header.hash_hex()
    assert a.process is not None
    assert a.process.returncode == 0, a.run_log()  # stopped by SIGTERM, cleanly

    # 3. Restarted with mining on the same data directory: it starts, stays on the valid chain and mines on.
    with running_node(data_dir, mine=True, pause=0.2) as a:
        assert a.status()["height"] >= tip["height"] + 1
        wait_until(lambda: a.status()["height"] >= tip["height"] + 3, timeout=60, what="A to mine after restart")
        assert get_json(a, f"/block/{tip['height'] + 1}")["hash"] == honest.header.hash_hex()
        assert a.get(f"/block/{block.header.hash_hex()}").status_code == 404
        # Sent again: the chain has moved on, so it is dropped on its work before its signatures cost anything.
        again = a.post("/p2p/block", json={"hex": block.serialize().hex()})
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "not-stored"


# -- the same block from a peer we sync from ------------------------------------------------------------------------


def test_poison_block_from_a_peer_bans_it_and_sync_goes_on_with_an_honest_peer(tmp_path: Path) -> None:
    """
    genesis - b1 (pays the poison key) - b2 - ... - b11 - poison      served by the attacker
                                                    \
                                                     h12 - h13         served, with b1..b11, by an honest peer
    """
    builder = ChainBuilder(REGTEST, key=POISON_KEY)
    names = [f"b{i}" for i in range(1, MATURITY + 2)]
    builder.chain(names)
    unsigned = builder.spend("b1", sign=False)
    poison = dataclasses.replace(
        unsigned,
        inputs=(
            dataclasses.replace(
                unsigned.inputs[0], signature=poison_signature(signature_hash(unsigned, 0, REGTEST.genesis_hash))
            ),
        ),
    )
    builder.block("poison", parent="b11", txs=[poison])
    builder.chain(["h12", "h13"], parent="b11")
    work = {name: builder.index[builder[name].hash].chain_work for name in ("poison", "h13")}
    attack_chain = [builder[n] for n in [*names, "poison"]]
    honest_chain = [builder[n] for n in [*names, "h12", "h13"]]
    data_dir = tmp_path / "n"

    with (
        FakePeer("127.0.0.1", chain_answers(attack_chain, work["poison"])) as attacker,
        FakePeer("127.0.0.1", chain_answers(honest_chain, work["h13"])) as honest,
    ):
        with running_node(data_dir, peers=(attacker.url,)) as node:

            def attacker_banned() -> bool:
                return any(p["url"] == attacker.url and p["banned"] for p in get_json(node, "/peers")["peers"])

            wait_until(attacker_banned, timeout=60, what="the attacker to be banned")
            ban_lines = [line for line in node.log().splitlines() if "banned peer" in line and attacker.url in line]
            assert ban_lines, node.log()
            assert "bad-txns-sig-invalid" in ban_lines[0], ban_lines[0]
            assert node.status()["tip"] == builder["b11"].header.hash_hex()
            assert node.get(f"/block/{builder['poison'].header.hash_hex()}").status_code == 404  # never stored

            # The sync thread survived: an honest peer added now is synced from.
            assert node.post("/peers", json={"url": honest.url}).status_code == 200
            wait_until(
                lambda: node.status()["tip"] == builder["h13"].header.hash_hex(), timeout=60, what="sync from honest"
            )
        assert node.process is not None
        assert node.process.returncode == 0, node.run_log()

        with running_node(data_dir) as node:  # restarts on the same directory, on the valid chain
            assert node.status()["tip"] == builder["h13"].header.hash_hex()
