"""Every consensus and mempool rule, one row per reject reason.

Each row builds something that breaks exactly one rule on top of the `funded` chain (tip at height 13, the
coinbases of m1..m4 spendable), submits it, and checks the exact reason and that nothing changed: tip,
active chain, UTXO set and mempool.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from ecdsa.util import sigdecode_der, sigencode_der

from simplecoin.core.coins import Coin
from simplecoin.core.errors import BlockValidationError, TxValidationError, ValidationError
from simplecoin.core.hashing import hash160
from simplecoin.core.keys import CURVE_ORDER
from simplecoin.core.mining import make_coinbase
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import NULL_OUTPOINT, Block, OutPoint, Transaction, TxIn, TxOut
from simplecoin.core.validation import check_tx_inputs
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, ChainBuilder, assert_rejected, resolve, sign_all

SPEND_HEIGHT = 14  # the next block, and what the mempool checks against


# -- transaction makers: each returns a tx that breaks one rule -------------------------------------------------


def with_sig(tx: Transaction, i: int, sig: bytes) -> Transaction:
    inputs = list(tx.inputs)
    inputs[i] = dataclasses.replace(inputs[i], signature=sig)
    return dataclasses.replace(tx, inputs=tuple(inputs))


def high_s(b: ChainBuilder) -> Transaction:
    tx = b.spend("m1")
    r, s = sigdecode_der(tx.inputs[0].signature, CURVE_ORDER)
    return with_sig(tx, 0, sigencode_der(r, CURVE_ORDER - s, CURVE_ORDER))


def redirected(b: ChainBuilder) -> Transaction:
    """A signed payment whose recipient was changed afterwards."""
    tx = b.spend("m1")
    return dataclasses.replace(tx, outputs=(TxOut(tx.outputs[0].amount, ALICE.pubkey_hash),))


def repriced(b: ChainBuilder) -> Transaction:
    """A signed payment whose amount was lowered afterwards (a larger fee for whoever changed it)."""
    tx = b.spend("m1")
    return dataclasses.replace(tx, outputs=(TxOut(tx.outputs[0].amount - 1, tx.outputs[0].pubkey_hash),))


def other_network(b: ChainBuilder) -> Transaction:
    """Signed for the main network: must not be replayable on regtest."""
    return sign_all(b.spend("m1", sign=False), b.key, REGTEST, genesis_hash=MAIN.genesis_hash)


def unsigned_copy(b: ChainBuilder, **changes) -> Transaction:
    """A tx with changed fields, signed after the change (so only the changed rule fails)."""
    tx = dataclasses.replace(b.spend("m1", sign=False), **changes)
    return sign_all(tx, b.key, REGTEST)


def two_inputs_same_coin(b: ChainBuilder) -> Transaction:
    return b.spend([b.coinbase_outpoint("m1"), b.coinbase_outpoint("m1")], [(1000, BOB.pubkey_hash)])


def bad_point_key(node: Node, b: ChainBuilder) -> Transaction:
    """x = 0 is not on secp256k1 (7 is not a square mod p); the coin is paid to that key's hash.

    The coin must belong to the malformed key for the key check to be reached at all, so m1 is rebuilt
    paying it first.
    """
    key = b"\x02" + bytes(32)
    _pay_m1_to(node, b, hash160(key))
    return Transaction(1, (TxIn(b.coinbase_outpoint("m1"), key, bytes(70)),), (TxOut(1000, BOB.pubkey_hash),))


TX_CASES: dict[str, Callable[[Node, ChainBuilder], Transaction]] = {
    "bad-txns-vin-empty": lambda n, b: Transaction(1, (), (TxOut(1, BOB.pubkey_hash),)),
    "bad-txns-vout-empty": lambda n, b: unsigned_copy(b, outputs=()),
    "bad-txns-oversize": lambda n, b: b.spend("m1", [(1, BOB.pubkey_hash)] * 4000),
    "bad-txns-vout-notpositive": lambda n, b: b.spend("m1", [(0, BOB.pubkey_hash)]),
    "bad-txns-vout-toolarge": lambda n, b: b.spend("m1", [(REGTEST.max_money + 1, BOB.pubkey_hash)]),
    "bad-txns-txouttotal-toolarge": lambda n, b: b.spend("m1", [(REGTEST.max_money, BOB.pubkey_hash)] * 2),
    "bad-txns-inputs-duplicate": lambda n, b: two_inputs_same_coin(b),
    "bad-txns-prevout-null": lambda n, b: b.spend(
        [b.coinbase_outpoint("m1"), NULL_OUTPOINT], [(1000, BOB.pubkey_hash)]
    ),
    "bad-txns-inputs-missingorspent": lambda n, b: b.spend(OutPoint(bytes(range(32)), 0), [(1000, BOB.pubkey_hash)]),
    "bad-txns-premature-spend-of-coinbase": lambda n, b: b.spend("m5"),
    "bad-txns-wrong-key": lambda n, b: b.spend("m1", key=ALICE),
    "bad-txns-in-belowout": lambda n, b: b.spend("m1", [(REGTEST.initial_subsidy + 1, BOB.pubkey_hash)]),
    "bad-txns-nonfinal": lambda n, b: unsigned_copy(b, locktime=SPEND_HEIGHT),
    "bad-txns-sig-der": lambda n, b: with_sig(b.spend("m1"), 0, b.spend("m1").inputs[0].signature + b"\x00"),
    "bad-txns-sig-high-s": lambda n, b: high_s(b),
    "bad-txns-sig-invalid": lambda n, b: redirected(b),
    "bad-txns-pubkey": bad_point_key,  # sets up its own coin
}

# Signature cases that matter enough to name: a signature covers recipient, amount and network.
SIGNATURE_CASES = {"redirected": redirected, "repriced": repriced, "replayed-from-main": other_network}


@pytest.mark.parametrize("reason", sorted(TX_CASES))
def test_invalid_tx_rejected_from_mempool(funded, reason):
    node, b = funded
    tx = TX_CASES[reason](node, b)
    assert_rejected(node, lambda: node.submit_tx(tx), reason, TxValidationError)


@pytest.mark.parametrize("reason", sorted(TX_CASES))
def test_invalid_tx_rejected_in_block(funded, reason):
    node, b = funded
    block = b.block("bad", txs=[TX_CASES[reason](node, b)])
    assert_rejected(node, lambda: node.submit_block(block), reason, BlockValidationError)


def _pay_m1_to(node, b: ChainBuilder, pubkey_hash: bytes) -> None:
    """Rewrite history so that m1's coinbase pays `pubkey_hash`: rebuild the funded chain on a fork."""
    b.block("k1", parent="genesis", pay_to=pubkey_hash)
    names = ["k1"] + [f"k{i}" for i in range(2, 15)]
    b.chain(names[1:], parent="k1")
    for name in names:
        node.submit_block(b[name])
    assert node.tip.hash == b["k14"].hash
    b.blocks["m1"] = b["k1"]


@pytest.mark.parametrize("case", sorted(SIGNATURE_CASES))
def test_signature_commits_to_recipient_amount_and_network(funded, case):
    node, b = funded
    tx = SIGNATURE_CASES[case](b)
    assert_rejected(node, lambda: node.submit_tx(tx), "bad-txns-sig-invalid", TxValidationError)


def test_one_input_signature_cannot_serve_another(funded):
    node, b = funded
    tx = b.spend([b.coinbase_outpoint("m1"), b.coinbase_outpoint("m2")], [(1000, BOB.pubkey_hash)])
    swapped = with_sig(tx, 1, tx.inputs[0].signature)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(swapped)
    assert err.value.reason == "bad-txns-sig-invalid"
    assert node.submit_tx(tx).fee == 2 * REGTEST.initial_subsidy - 1000


def test_input_values_out_of_range_is_checked():
    """No valid chain holds such a coin, so the rule is checked against a forged view."""
    outpoint = OutPoint(bytes(range(32)), 0)
    tx = Transaction(1, (TxIn(outpoint, BOB.pubkey, b""),), (TxOut(1, ALICE.pubkey_hash),))

    class View:
        def get_coin(self, o):
            return Coin(REGTEST.max_money + 1, BOB.pubkey_hash, 0, False) if o == outpoint else None

    with pytest.raises(TxValidationError) as err:
        check_tx_inputs(tx, View(), 1, REGTEST)
    assert err.value.reason == "bad-txns-inputvalues-outofrange"


# -- mempool policy -------------------------------------------------------------------------------------------


def test_mempool_policy_reasons(funded):
    node, b = funded
    tx = b.spend("m1")
    node.submit_tx(tx)
    cases = {
        "txn-already-in-mempool": tx,
        "txn-mempool-conflict": b.spend("m1", fee=2 * DEFAULT_FEE_X),
        "min-relay-fee-not-met": b.spend("m2", fee=1),
        "dust": b.spend("m2", [(REGTEST.subsidy(2) - DEFAULT_FEE_X - 512, BOB.pubkey_hash), (512, BOB.pubkey_hash)]),
        "coinbase": make_coinbase(SPEND_HEIGHT, BOB.pubkey_hash, 1),
        "too-long-mempool-chain": long_chain_tip(node, b, "m3"),
    }
    for reason, bad in cases.items():
        assert_rejected(node, lambda bad=bad: node.submit_tx(bad), reason, TxValidationError)


DEFAULT_FEE_X = 10_000


def long_chain_tip(node, b, source: str) -> Transaction:
    """The 26th of a chain of pending spends from `source`; the first 25 go into the pool (25 ancestors max)."""
    chain = [b.spend(source)]
    while len(chain) < 26:
        chain.append(b.spend(OutPoint(chain[-1].txid, 0), key=BOB))
    for tx in chain[:-1]:
        node.submit_tx(tx)
    return chain[-1]


# -- block cases ----------------------------------------------------------------------------------------------


def unsolved_bad_pow(node, b):
    block = b.block("x")
    target = bits_to_target(block.header.bits)
    for nonce in range(1000):
        header = dataclasses.replace(block.header, nonce=nonce)
        if int.from_bytes(header.hash(), "little") > target:
            return Block(header, block.txs)
    raise AssertionError("no failing nonce found")


def replace_txs(txs: Callable[[tuple[Transaction, ...]], tuple[Transaction, ...]]):
    return lambda block: resolve(Block(block.header, txs(block.txs)))


def coinbase_data(data: bytes):
    def edit(txs):
        cb = txs[0]
        return (dataclasses.replace(cb, inputs=(dataclasses.replace(cb.inputs[0], signature=data),)), *txs[1:])

    return replace_txs(edit)


def oversized_block(node, b):
    big = Transaction(1, (TxIn(b.coinbase_outpoint("m1"), BOB.pubkey, bytes(70)),), (TxOut(1, BOB.pubkey_hash),) * 3500)
    assert big.size < REGTEST.max_tx_size
    copies = [dataclasses.replace(big, locktime=i) for i in range(REGTEST.max_block_size // big.size + 1)]
    return b.block("x", tweak=replace_txs(lambda txs: (txs[0], *copies)))


def header_tweak(**changes):
    return lambda block: Block(dataclasses.replace(block.header, **changes), block.txs)


def invalid_parent(node, b):
    bad = b.block("bad-parent", coinbase_extra=1)
    with pytest.raises(BlockValidationError):
        node.submit_block(bad)
    return b.block("x", parent="bad-parent")


def known_invalid(node, b):
    bad = b.block("x", coinbase_extra=1)
    with pytest.raises(BlockValidationError):
        node.submit_block(bad)
    return bad


def double_spend_across_txs(node, b):
    return b.block("x", txs=[b.spend("m1"), b.spend("m1", fee=20_000)])


BLOCK_CASES: dict[str, Callable] = {
    "high-hash": unsolved_bad_pow,
    "bad-blk-length": oversized_block,
    "bad-txnmrklroot": lambda n, b: b.block("x", tweak=header_tweak(merkle_root=bytes(32))),
    "bad-txns-duplicate": lambda n, b: b.block("x", txs=[b.spend("m1")], tweak=replace_txs(lambda t: (*t, t[-1]))),
    "bad-cb-missing": lambda n, b: b.block("x", txs=[b.spend("m1")], tweak=replace_txs(lambda t: t[1:])),
    "bad-cb-multiple": lambda n, b: b.block(
        "x", tweak=replace_txs(lambda t: (t[0], make_coinbase(14, BOB.pubkey_hash, 1)))
    ),
    "bad-cb-length": lambda n, b: b.block("x", tweak=coinbase_data(b"\x0e\x00\x00")),
    "bad-cb-height": lambda n, b: b.block("x", tweak=coinbase_data((15).to_bytes(4, "little"))),
    "bad-cb-amount": lambda n, b: b.block("x", coinbase_extra=1),
    "bad-txns-inputs-duplicate": double_spend_across_txs,
    "bad-diffbits": lambda n, b: b.block("x", tweak=header_tweak(bits=0x2007FFFF)),
    "time-too-old": lambda n, b: b.block("x", time_delta=-30 * 6),
    "time-too-new": lambda n, b: b.block("x", time_delta=NOW + 2 * 3600 + 1 - n.tip.header.time),
    "bad-prevblk": invalid_parent,
    "duplicate-invalid": known_invalid,
}


@pytest.mark.parametrize("reason", sorted(BLOCK_CASES))
def test_invalid_block_rejected(funded, reason):
    node, b = funded
    block = BLOCK_CASES[reason](node, b)
    assert_rejected(node, lambda: node.submit_block(block), reason, BlockValidationError)


def test_high_hash_also_covers_bad_bits_encodings(funded):
    node, b = funded
    for bits in (0x04923456, 0xFF123456, 0x21010000):  # negative, overflowing, above the proof-of-work limit
        valid = b.block(f"bits-{bits:x}", parent="m13")
        block = Block(dataclasses.replace(valid.header, bits=bits), valid.txs)
        assert_rejected(node, lambda block=block: node.submit_block(block), "high-hash", BlockValidationError)


def test_locktime_in_the_past_is_final(funded):
    node, b = funded
    tx = unsigned_copy(b, locktime=SPEND_HEIGHT - 1)
    assert node.submit_tx(tx).tx == tx


# -- completeness: every reason in the code has a row ---------------------------------------------------------

SOURCES = ["core/validation.py", "core/keys.py", "core/mempool.py", "node/node.py"]
TESTED_ELSEWHERE = {
    "bad-txns-inputvalues-outofrange",
    "txn-already-in-mempool",
    "txn-mempool-conflict",
    "min-relay-fee-not-met",
    "dust",  # test_mempool_policy_reasons above; the attack in test_mempool_address.py
    "coinbase",
    "mempool-full",
    "too-long-mempool-chain",  # test_mempool_policy_reasons above; the other limits in test_mempool_policy.py
    "mempool-min-fee-not-met",  # test_mempool_policy.py::test_rolling_minimum_fee_rises_on_eviction_and_decays...
}


def reasons_in_code() -> set[str]:
    package = Path(__file__).parent.parent / "simplecoin"
    text = "".join((package / name).read_text() for name in SOURCES)
    return set(re.findall(r'(?:Error|fail)\(\s*"([a-z0-9-]+)"', text)) | set(
        re.findall(r'return "([a-z0-9-]+)", ', text)
    )


def test_every_reject_reason_has_a_test():
    untested = reasons_in_code() - TX_CASES.keys() - BLOCK_CASES.keys() - TESTED_ELSEWHERE
    assert not untested, f"reasons with no test: {sorted(untested)}"
    assert "bad-cb-amount" in reasons_in_code()  # the scan itself works


def test_reasons_are_validation_errors():
    assert issubclass(TxValidationError, ValidationError)
    assert issubclass(BlockValidationError, ValidationError)


def test_blocks_stay_valid_after_the_subsidy_runs_out(tmp_path):
    """With a halving every block the subsidy is zero from height 64: an empty block pays nothing."""
    params = REGTEST.replace(halving_interval=1)
    b = ChainBuilder(params)
    node = Node(Store(tmp_path / "chain.db", params), params, clock=lambda: NOW)
    try:
        for i in range(1, 67):
            node.submit_block(b.block(f"h{i}"))
        assert node.height == 66
        assert b["h65"].txs[0].outputs == ()
        assert params.subsidy(66) == 0
    finally:
        node.close()


def test_a_payment_without_outputs_is_still_refused(funded):
    node, b = funded
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(unsigned_copy(b, outputs=()))
    assert err.value.reason == "bad-txns-vout-empty"
