"""HeaderChain: the light wallet's own header verification, from the fixed genesis.

Headers come from ChainBuilder, which mines real (regtest-easy) proof of work; broken headers are made by
editing a built one (and re-solving it where the point is some other rule than the work).
"""

from __future__ import annotations

import dataclasses

import pytest

from simplecoin.core.hashing import hash_hex, merkle_branch
from simplecoin.core.params import REGTEST
from simplecoin.core.pow import bits_to_target, block_work
from simplecoin.core.primitives import Block, BlockHeader
from simplecoin.core.spv import HeaderChain, SpvError, check_tx_bytes
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder, miss_target

RETARGETING = REGTEST.replace(no_retargeting=False, retarget_interval=4)


def headers(builder: ChainBuilder, names: list[str]) -> list[BlockHeader]:
    return [builder[name].header for name in names]


def resolved(header: BlockHeader, **changes: object) -> BlockHeader:
    """The header with `changes`, its nonce searched again so that its own work is valid."""
    header = dataclasses.replace(header, **changes)
    target = bits_to_target(header.bits)
    for nonce in range(1 << 20):
        candidate = dataclasses.replace(header, nonce=nonce)
        if int.from_bytes(candidate.hash(), "little") <= target:
            return candidate
    raise AssertionError("could not solve the header")


# -- accepting ----------------------------------------------------------------------------------------------------


def test_a_fresh_chain_holds_only_the_genesis():
    chain = HeaderChain(REGTEST)
    assert chain.tip.hash == REGTEST.genesis_hash
    assert chain.tip.height == 0
    assert chain.locator() == [REGTEST.genesis_hash]


def test_accepts_a_valid_chain_and_counts_only_new_headers():
    b = ChainBuilder(REGTEST)
    names = [f"b{i}" for i in range(1, 21)]
    b.chain(names)
    chain = HeaderChain(REGTEST)
    assert chain.add(headers(b, names[:12]), NOW) == 12
    assert chain.add(headers(b, names), NOW) == 8  # the first 12 are known: skipped, not an error
    assert chain.tip.hash == b["b20"].hash
    assert chain.tip.height == 20
    locator = chain.locator()
    assert locator[0] == b["b20"].hash
    assert locator[-1] == REGTEST.genesis_hash
    assert locator[:10] == [b[f"b{i}"].hash for i in range(20, 10, -1)]  # dense first, then sparse
    assert len(locator) < 20


def test_accepts_a_chain_across_retargets_with_the_bits_it_demands():
    b = ChainBuilder(RETARGETING)
    names = [f"r{i}" for i in range(1, 13)]
    for name in names:
        b.block(name, time_delta=1)  # far faster than the target spacing: every retarget makes it 4x harder
    hs = headers(b, names)
    assert hs[3].bits != RETARGETING.pow_limit_bits  # height 4 retargeted
    assert bits_to_target(hs[7].bits) < bits_to_target(hs[3].bits)  # height 8 again
    chain = HeaderChain(RETARGETING)
    assert chain.add(hs, NOW) == 12
    assert chain.tip.hash == b["r12"].hash


def test_follows_the_most_work_branch():
    """
    genesis - a1 - a2 - a3
                \\
                 x2 - x3 - x4*      the longer branch wins, whichever order the headers come in
    """
    b = ChainBuilder(REGTEST)
    b.chain(["a1", "a2", "a3"])
    b.chain(["x2", "x3", "x4"], parent="a1")
    chain = HeaderChain(REGTEST)
    chain.add(headers(b, ["a1", "a2", "a3"]), NOW)
    assert chain.tip.hash == b["a3"].hash
    chain.add(headers(b, ["x2", "x3"]), NOW)
    assert chain.tip.hash == b["a3"].hash  # equal work: the first seen stays
    chain.add(headers(b, ["x4"]), NOW)
    assert chain.tip.hash == b["x4"].hash
    assert chain.on_best_chain(b["a3"].hash) is None
    assert chain.on_best_chain(b["a1"].hash) is not None

    other = HeaderChain(REGTEST)
    other.add(headers(b, ["a1", "x2", "x3", "x4", "a2", "a3"]), NOW)
    assert other.tip.hash == b["x4"].hash


def test_most_work_is_not_most_headers():
    """A shorter branch of harder blocks beats a longer branch of easy ones (retargeting network)."""
    b = ChainBuilder(RETARGETING)
    for name in ["h1", "h2", "h3", "h4", "h5"]:
        b.block(name, time_delta=1)  # heights 4 and 5: a quarter of the target, four times the work
    b.block("e1", parent="genesis", time_delta=600)
    for name in ["e2", "e3", "e4", "e5", "e6"]:
        b.block(name, time_delta=600)  # slow: the target stays at the limit
    hard = headers(b, ["h1", "h2", "h3", "h4", "h5"])
    easy = headers(b, ["e1", "e2", "e3", "e4", "e5", "e6"])
    assert sum(block_work(h.bits) for h in hard) > sum(block_work(h.bits) for h in easy)
    chain = HeaderChain(RETARGETING)
    chain.add(hard, NOW)
    chain.add(easy, NOW)
    assert chain.tip.hash == b["h5"].hash
    assert chain.tip.height == 5


# -- refusing -----------------------------------------------------------------------------------------------------


def test_refuses_a_header_that_does_not_link():
    b = ChainBuilder(REGTEST)
    b.chain(["b1", "b2", "b3"])
    chain = HeaderChain(REGTEST)
    with pytest.raises(SpvError, match="does not link"):
        chain.add(headers(b, ["b1", "b3"]), NOW)  # b2 left out
    assert chain.tip.hash == b["b1"].hash  # what came before the bad header is kept
    stray = resolved(b["b2"].header, prev_hash=bytes(range(32)))
    with pytest.raises(SpvError, match=f"header {stray.hash_hex()} does not link"):
        chain.add([stray], NOW)
    assert chain.tip.hash == b["b1"].hash


def test_refuses_a_header_whose_hash_misses_its_target():
    b = ChainBuilder(REGTEST)
    b.chain(["b1", "b2", "b3"])
    chain = HeaderChain(REGTEST)
    bad = miss_target(b["b2"].header)
    with pytest.raises(SpvError, match=r"at height 2 has no valid work: hash .* is above the target"):
        chain.add([b["b1"].header, bad], NOW)
    assert chain.tip.hash == b["b1"].hash
    assert bad.hash() not in chain.index


def test_refuses_bits_easier_than_the_proof_of_work_limit():
    b = ChainBuilder(REGTEST)
    b.block("b1")
    easy = resolved(b["b1"].header, bits=0x2100FFFF)  # above the limit: any hash would do
    chain = HeaderChain(REGTEST)
    with pytest.raises(SpvError, match=r"no valid work: .*above the proof-of-work limit"):
        chain.add([easy], NOW)


def test_refuses_wrong_bits_at_a_retarget():
    b = ChainBuilder(RETARGETING)  # fast blocks: height 4 must retarget to a harder target
    for name in ["r1", "r2", "r3"]:
        b.block(name, time_delta=1)
    good = b.block("r4", time_delta=1).header
    assert good.bits != RETARGETING.pow_limit_bits
    stale = resolved(good, bits=RETARGETING.pow_limit_bits)  # valid work for the old, easier bits
    chain = HeaderChain(RETARGETING)
    chain.add(headers(b, ["r1", "r2", "r3"]), NOW)
    with pytest.raises(SpvError, match="at height 4 breaks bad-diffbits"):
        chain.add([stale], NOW)
    assert chain.tip.height == 3
    assert chain.add([good], NOW) == 1


def test_refuses_changed_bits_between_retargets():
    b = ChainBuilder(RETARGETING)
    b.block("r1")
    harder = resolved(b["r1"].header, bits=0x201FFFFF)  # more work than asked: still not the rule
    chain = HeaderChain(RETARGETING)
    with pytest.raises(SpvError, match="bad-diffbits"):
        chain.add([harder], NOW)


def test_refuses_a_time_not_after_the_median_time_past():
    b = ChainBuilder(REGTEST)
    names = [f"b{i}" for i in range(1, 12)]
    b.chain(names)
    chain = HeaderChain(REGTEST)
    chain.add(headers(b, names), NOW)
    mtp = chain.index.median_time_past(chain.tip)
    assert mtp == b["b6"].header.time
    tip_time = b["b11"].header.time
    at_median = b.block("late", parent="b11", time_delta=mtp - tip_time).header
    with pytest.raises(SpvError, match="at height 12 breaks time-too-old"):
        chain.add([at_median], NOW)
    just_after = b.block("ok", parent="b11", time_delta=mtp + 1 - tip_time).header
    assert chain.add([just_after], NOW) == 1


def test_refuses_a_time_too_far_in_the_future():
    b = ChainBuilder(REGTEST)
    b.block("b1")
    now = b["b1"].header.time
    limit = now + REGTEST.max_future_block_time
    too_new = b.block("far", parent="b1", time_delta=limit + 1 - now).header
    chain = HeaderChain(REGTEST)
    chain.add([b["b1"].header], now)
    with pytest.raises(SpvError, match="at height 2 breaks time-too-new"):
        chain.add([too_new], now)
    at_limit = b.block("near", parent="b1", time_delta=limit - now).header
    assert chain.add([at_limit], now) == 1
    assert chain.add([too_new], now + 1) == 1  # later, the same header is fine


# -- inclusion proofs ---------------------------------------------------------------------------------------------


@pytest.fixture
def proven() -> tuple[ChainBuilder, HeaderChain, Block]:
    """Chain m1..m5 - p6 (four spends: five txs, an odd level) - c7, plus a losing fork f6 from m5."""
    b = ChainBuilder(REGTEST)
    b.chain(["m1", "m2", "m3", "m4", "m5"])
    block = b.block("p6", txs=[b.spend(f"m{i}") for i in range(1, 5)])
    b.block("c7")
    b.block("f6", parent="m5", txs=[b.spend("m5")])
    chain = HeaderChain(REGTEST)
    chain.add(headers(b, ["m1", "m2", "m3", "m4", "m5", "p6", "c7", "f6"]), NOW)
    assert chain.tip.hash == b["c7"].hash
    return b, chain, block


def proof(block: Block, position: int) -> tuple[bytes, bytes, int, list[bytes]]:
    txids = [tx.txid for tx in block.txs]
    return txids[position], block.hash, position, merkle_branch(txids, position)


def test_verify_inclusion_accepts_real_proofs(proven):
    _, chain, block = proven
    assert len(block.txs) == 5
    for position in range(5):
        entry = chain.verify_inclusion(*proof(block, position))
        assert entry.hash == block.hash
        assert entry.height == 6


def test_verify_inclusion_refuses_a_tx_not_in_the_block(proven):
    b, chain, block = proven
    _, block_hash, position, branch = proof(block, 2)
    elsewhere = b["c7"].txs[0].txid
    with pytest.raises(SpvError, match=r"does not lead to block .* merkle root: the tx is not in that block"):
        chain.verify_inclusion(elsewhere, block_hash, position, branch)


def test_verify_inclusion_refuses_a_proof_aimed_at_another_block(proven):
    b, chain, block = proven
    txid, _, position, branch = proof(block, 2)
    with pytest.raises(SpvError, match="not in that block"):
        chain.verify_inclusion(txid, b["c7"].hash, position, branch)


def test_verify_inclusion_refuses_a_wrong_index(proven):
    _, chain, block = proven
    txid, block_hash, _, branch = proof(block, 1)
    for wrong in (0, 2, 3, 5, -1, 1 << len(branch), 1 + (1 << len(branch))):
        with pytest.raises(SpvError, match="not in that block"):
            chain.verify_inclusion(txid, block_hash, wrong, branch)


def test_verify_inclusion_refuses_a_changed_branch(proven):
    _, chain, block = proven
    txid, block_hash, position, branch = proof(block, 3)
    for i in range(len(branch)):
        forged = list(branch)
        forged[i] = bytes([forged[i][0] ^ 1]) + forged[i][1:]
        with pytest.raises(SpvError, match="not in that block"):
            chain.verify_inclusion(txid, block_hash, position, forged)
    with pytest.raises(SpvError, match="not in that block"):
        chain.verify_inclusion(txid, block_hash, position, branch[:-1])
    with pytest.raises(SpvError, match="not in that block"):
        chain.verify_inclusion(txid, block_hash, position, [*branch, branch[-1]])


def test_verify_inclusion_refuses_a_block_not_on_the_best_chain(proven):
    b, chain, _ = proven
    fork = b["f6"]
    assert fork.hash in chain.index  # known, with valid work, but on the losing branch
    with pytest.raises(SpvError, match="not on the best chain of verified headers"):
        chain.verify_inclusion(*proof(fork, 1))


def test_verify_inclusion_refuses_an_unknown_block(proven):
    b, chain, _ = proven
    unseen = b.block("u8", parent="c7", txs=[b.spend("p6")])
    with pytest.raises(SpvError, match="not on the best chain of verified headers"):
        chain.verify_inclusion(*proof(unseen, 1))
    chain.add([unseen.header], NOW)
    assert chain.verify_inclusion(*proof(unseen, 1)).height == 8


def test_check_tx_bytes_refuses_the_bytes_of_another_tx(proven):
    _, _, block = proven
    a, other = block.txs[1], block.txs[2]
    check_tx_bytes(a.txid, a.serialize())
    with pytest.raises(SpvError, match=f"bytes for tx {hash_hex(a.txid)} hash to something else"):
        check_tx_bytes(a.txid, other.serialize())
    with pytest.raises(SpvError):
        check_tx_bytes(a.txid, a.serialize() + b"\x00")


# -- in bulk: add_raw takes a chain extending the tip without an index entry per header, by the same rules -----------

MAIN_LIKE = REGTEST.replace(  # MAIN's rules (retargets, then aserti3-2d from height 10) at regtest's easy work
    no_retargeting=False,
    retarget_interval=4,
    asert_activation_height=10,
    asert_half_life=600,
    asert_max_future_block_time=180,
)


def raw(hs: list[BlockHeader]) -> bytes:
    return b"".join(h.serialize() for h in hs)


def no_slow_path(chain: HeaderChain, monkeypatch) -> None:
    def refuse(headers, now):
        raise AssertionError(f"header {headers[0].hash_hex()} went through add, not the bulk check")

    monkeypatch.setattr(chain, "add", refuse)


@pytest.mark.parametrize(
    ("params", "count"),
    [(REGTEST, 300), (RETARGETING, 12), (MAIN_LIKE, 40)],
    ids=["regtest", "retargets", "asert"],
)
def test_add_raw_takes_a_valid_chain_in_bulk_and_ends_where_add_does(params, count, monkeypatch):
    b = ChainBuilder(params)
    names = [f"b{i}" for i in range(1, count + 1)]
    for name in names:
        b.block(name, time_delta=1)  # fast blocks: retargets and aserti3-2d make them harder
    hs = headers(b, names)
    if params is not REGTEST:
        assert len({h.bits for h in hs}) > 2  # the difficulty rule moved the bits
    one_by_one = HeaderChain(params)
    assert one_by_one.add(hs, NOW) == count
    bulk = HeaderChain(params)
    no_slow_path(bulk, monkeypatch)
    assert bulk.add_raw(raw(hs[:7]), NOW) == 7
    assert bulk.add_raw(raw(hs[7:]), NOW) == count - 7
    assert bulk.raw_from(0) == one_by_one.raw_from(0)
    assert bulk.first_changed == 1
    for chain in (bulk, one_by_one):  # what the next header is checked against is the same
        assert chain.tip.hash == b[names[-1]].hash
    assert bulk.tip.chain_work == one_by_one.tip.chain_work
    assert bulk.locator() == one_by_one.locator()
    assert bulk.index.next_bits(bulk.tip) == one_by_one.index.next_bits(one_by_one.tip)
    assert bulk.index.median_time_past(bulk.tip) == one_by_one.index.median_time_past(one_by_one.tip)


def test_add_raw_passes_known_headers_and_forks_to_add():
    """
    genesis - a1 - a2 - a3
                \\
                 x2 - x3 - x4*
    """
    b = ChainBuilder(REGTEST)
    b.chain(["a1", "a2", "a3"])
    b.chain(["x2", "x3", "x4"], parent="a1")
    chain = HeaderChain(REGTEST)
    assert chain.add_raw(raw(headers(b, ["a1", "a2", "a3"])), NOW) == 3
    assert chain.add_raw(raw(headers(b, ["a1", "a2", "x2", "x3", "x4"])), NOW) == 3
    assert chain.tip.hash == b["x4"].hash
    assert chain.hash_at(2) == b["x2"].hash
    assert b["a3"].hash in chain.index


# Each bad header, and the message `add` refuses it with: add_raw must say the same and keep what came before.
def _unlinked(b: ChainBuilder) -> BlockHeader:
    return resolved(b["b5"].header, prev_hash=bytes(range(32)))


def _no_work(b: ChainBuilder) -> BlockHeader:
    return miss_target(b["b5"].header)


def _too_easy(b: ChainBuilder) -> BlockHeader:
    return resolved(b["b5"].header, bits=0x2100FFFF)


def _other_bits(b: ChainBuilder) -> BlockHeader:
    return resolved(b["b5"].header, bits=0x201FFFFF)


def _too_old(b: ChainBuilder) -> BlockHeader:
    return resolved(b["b5"].header, time=b["b1"].header.time)


def _too_new(b: ChainBuilder) -> BlockHeader:
    return resolved(b["b5"].header, time=NOW + 7201)


@pytest.mark.parametrize(
    ("params", "bad", "message"),
    [
        (REGTEST, _unlinked, "does not link"),
        (REGTEST, _no_work, "at height 5 has no valid work: hash .* is above the target"),
        (REGTEST, _too_easy, "at height 5 has no valid work: .*above the proof-of-work limit"),
        (RETARGETING, _other_bits, "at height 5 breaks bad-diffbits"),
        (MAIN_LIKE, _other_bits, "at height 5 breaks bad-diffbits"),
        (REGTEST, _too_old, "at height 5 breaks time-too-old"),
        (REGTEST, _too_new, "at height 5 breaks time-too-new"),
    ],
)
def test_add_raw_refuses_what_add_refuses_and_keeps_what_came_before(params, bad, message):
    b = ChainBuilder(params)
    names = [f"b{i}" for i in range(1, 9)]
    b.chain(names)
    hs = headers(b, names)
    forged = bad(b)
    for add in ("add", "add_raw"):
        chain = HeaderChain(params)
        batch = [*hs[:4], forged, *hs[5:]]
        with pytest.raises(SpvError, match=message):
            chain.add(batch, NOW) if add == "add" else chain.add_raw(raw(batch), NOW)
        assert chain.tip.hash == b["b4"].hash, add
        assert chain.height == 4
        assert forged.hash() not in chain.index


def test_add_raw_refuses_bytes_that_are_not_whole_headers():
    b = ChainBuilder(REGTEST)
    b.chain(["b1", "b2"])
    chain = HeaderChain(REGTEST)
    with pytest.raises(SpvError, match="not a whole number of 80-byte headers"):
        chain.add_raw(raw(headers(b, ["b1", "b2"]))[:-1], NOW)
    assert chain.height == 0
