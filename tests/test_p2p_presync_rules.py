"""p2p_presync_rules: headers presync refuses exactly the headers the block index refuses, for the same reasons.

Presync once re-derived median time past, the expected bits (its own retarget maths) and time-too-new by hand,
and read `time.time()` although the peer manager has an injected clock: a change of the difficulty rule in
core/chain.py would have left presync on the old one. Each case below runs the same headers through presync
(`HeadersPresync` on a fresh node) and their blocks through the node (`Node.submit_block`), on a chain that
crosses a retarget (every 8 blocks, blocks 1 s apart: each retarget makes mining 4x harder):

    genesis - r1 - ... - r7 - r8 - ... - r12         r8 carries new bits: both accept
                          \\
                           x8                          x8 keeps r7's bits: both refuse, bad-diffbits
                     r6 - o7                           o7 older than its median time past: time-too-old
                     r6 - f7                           f7 3 hours past the clock: time-too-new, not scored
"""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs

import pytest

from simplecoin.core.errors import BlockValidationError
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.primitives import Block
from simplecoin.node.node import Node
from simplecoin.node.p2p import sync
from simplecoin.node.p2p.bans import SCORE_INVALID, SCORE_UNCONNECTING_HEADERS
from simplecoin.node.p2p.client import Misbehaving, PeerError
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.p2p.sync import HeadersPresync
from simplecoin.node.p2p.table import MAX_BACKOFF
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder, miss_target
from tests.framework.fakepeer import FakePeer, chain_answers, reply
from tests.test_asert_activation import easy

RETARGETING = REGTEST.replace(no_retargeting=False, retarget_interval=8)


@pytest.fixture
def service(tmp_path):
    service = NodeService(Node(Store(tmp_path / "chain.db", RETARGETING), RETARGETING, clock=lambda: NOW))
    yield service
    service.close()


def with_bits(bits: int):
    def tweak(block: Block) -> Block:
        return Block(dataclasses.replace(block.header, bits=bits), block.txs)

    return tweak


def scenario(case: str) -> list[Block]:
    """The blocks of one case, in order; the last is the one the case is about."""
    b = ChainBuilder(RETARGETING)
    honest = [b.block(f"r{i}", time_delta=1) for i in range(1, 13)]
    if case == "valid":
        return honest
    if case == "bad-diffbits":
        return [*honest[:7], b.block("x8", parent="r7", time_delta=1, tweak=with_bits(honest[6].header.bits))]
    if case == "time-too-old":
        return [*honest[:6], b.block("o7", parent="r6", time_delta=-100)]
    assert case == "time-too-new"
    future = NOW - honest[5].header.time + 3 * 3600
    return [*honest[:6], b.block("f7", parent="r6", time_delta=future)]


def index_verdict(service: NodeService, blocks: list[Block]) -> str:
    """ "accepted", or the reason the node refuses the first block it refuses."""
    for block in blocks:
        try:
            service.submit_block(block)
        except BlockValidationError as e:
            return e.reason
    return "accepted"


def presync_verdict(
    service: NodeService, blocks: list[Block], clock=lambda: NOW
) -> tuple[str, PeerError | None, HeadersPresync]:
    """ "accepted", or the reason presync refuses the headers (the index's error it was raised from), the error,
    and the presync. A header from the future is early, not refused: its reason, no error, the headers before it
    kept."""
    presync = HeadersPresync(service, clock)
    try:
        presync.extend([block.header for block in blocks])
    except PeerError as e:
        cause = e.__cause__
        if not isinstance(cause, BlockValidationError):
            raise AssertionError(f"presync refused for a reason of its own: {e}") from e
        return cause.reason, e, presync
    return ("accepted" if presync.due_at is None else "time-too-new"), None, presync


@pytest.mark.parametrize("case", ["valid", "bad-diffbits", "time-too-old", "time-too-new"])
def test_presync_and_the_block_index_agree(service, case):
    blocks = scenario(case)
    if case == "valid":
        assert blocks[7].header.bits != blocks[6].header.bits  # r8 retargeted: the chain crosses a retarget
    reason, error, presync = presync_verdict(service, blocks)
    assert service.tip().height == 0  # presync adds nothing to the node's index
    assert reason == index_verdict(service, blocks) == case.replace("valid", "accepted")
    if case in ("bad-diffbits", "time-too-old"):
        assert isinstance(error, Misbehaving)
        assert error.score == SCORE_INVALID
    elif case == "time-too-new":  # early, not invalid: no failure, no score; the headers before it are kept
        assert error is None
        assert presync.missing == [block.hash for block in blocks[:6]]
        assert presync.due_at == blocks[6].header.time - RETARGETING.future_block_time_limit(7)


def test_presync_reads_the_clock_it_is_given(service):
    """With the clock put back three hours before the chain, its first header is from the future."""
    blocks = scenario("valid")
    assert presync_verdict(service, blocks)[0] == "accepted"
    back = blocks[0].header.time - 3 * 3600
    reason, error, presync = presync_verdict(service, blocks, clock=lambda: back)
    assert reason == "time-too-new"
    assert error is None
    assert presync.missing == []


def test_presync_spans_batches_on_the_view_it_grew(service):
    """The second batch's bits at the retarget are computed from headers of the first, still only in the view."""
    blocks = scenario("valid")
    presync = HeadersPresync(service, lambda: NOW)
    presync.extend([block.header for block in blocks[:5]])
    presync.extend([block.header for block in blocks[5:]])
    assert presync.last_hash == blocks[-1].hash
    # The next batch is asked with the index's own locator, from the last header: dense, then sparse, to genesis.
    assert presync.locator[:10] == [block.hash for block in reversed(blocks)][:10]
    assert presync.locator[-1] == RETARGETING.genesis_hash
    assert presync.missing == [block.hash for block in blocks]
    assert service.tip().height == 0


def test_the_peer_manager_hands_presync_its_wall_clock(service):
    """The sync thread's presync uses the manager's wall clock: put back three hours, the peer's headers are early.
    Early is no fault: no failure, no score, nothing downloaded, and the peer is asked again at most 5 minutes on."""
    blocks = scenario("valid")
    back = blocks[0].header.time - 3 * 3600
    with FakePeer("127.0.0.1", chain_answers(blocks, 10**6)) as peer:
        manager = PeerManager(
            service, "http://127.0.0.1:1", (f"http://{peer.address}",), progress=False, wall_clock=lambda: back
        )
        target = next(iter(manager.peers.values()))
        manager._visit(manager.new_client(), target)
    assert service.tip().height == 0
    assert peer.count("GET", "/p2p/blocks") == 0
    assert target.failures == 0
    assert manager.clock() + MAX_BACKOFF - 5 <= target.next_try <= manager.clock() + MAX_BACKOFF


def test_headers_that_do_not_connect_or_link_or_lack_work_score(service):
    """Checked before the index's rules: a first header on a parent we lack, a gap, a hash above the target."""
    headers = [block.header for block in scenario("valid")]
    cases = [
        (headers[1:], SCORE_UNCONNECTING_HEADERS, "do not connect"),
        (headers[:3] + headers[4:], SCORE_INVALID, "do not link"),
        ([*headers[:3], miss_target(headers[3])], SCORE_INVALID, "without valid work"),
    ]
    for batch, score, why in cases:
        with pytest.raises(Misbehaving, match=why) as caught:
            HeadersPresync(service, lambda: NOW).extend(batch)
        assert caught.value.score == score


def test_a_fork_longer_than_one_batch_is_asked_for_with_the_index_locator(tmp_path, monkeypatch):
    """
    genesis - r1 - ... - r8                 ours
           \\
            x1 - ... - x5 | x6 - ... - x10   the peer's, two batches of 5: the first shows less work than ours,
                                             the second is asked with the locator from x5, then all is fetched
    """
    monkeypatch.setattr(sync, "MAX_HEADERS_RESULTS", 5)
    service = NodeService(Node(Store(tmp_path / "n.db", REGTEST), REGTEST, clock=lambda: NOW))
    ours, theirs = ChainBuilder(REGTEST), ChainBuilder(REGTEST)
    for block in ours.chain([f"r{i}" for i in range(1, 9)]):
        service.submit_block(block)
    fork = theirs.chain([f"x{i}" for i in range(1, 11)])
    answers = chain_answers(fork, 10**6)
    hashes = [block.header.hash_hex() for block in fork]
    asked: list[list[str]] = []  # the locator of each headers request

    def five_headers(handler, path, query):
        asked.append(parse_qs(query)["locator"][0].split(","))
        known = next((h for h in asked[-1] if h in hashes), None)
        start = hashes.index(known) + 1 if known else 0
        reply(handler, {"headers": [block.header.serialize().hex() for block in fork[start : start + 5]]})

    answers["/headers"] = five_headers
    try:
        with FakePeer("127.0.0.1", answers) as peer:
            manager = PeerManager(service, "http://127.0.0.1:1", (f"http://{peer.address}",), progress=False)
            manager._visit(manager.new_client(), next(iter(manager.peers.values())))
        assert service.tip().hash == theirs["x10"].hash
        assert len(asked) == 2
        assert asked[1][:5] == [theirs[f"x{i}"].header.hash_hex() for i in range(5, 0, -1)]
    finally:
        service.close()


# -- across the ASERT activation: presync follows the rule the index follows, on both sides of the height ----------


@pytest.mark.parametrize("old_bits_above", [False, True])
def test_presync_and_the_index_agree_across_the_asert_activation(tmp_path, old_bits_above):
    """
    genesis - a1 - a2 (anchor) - a3 (first ASERT block) - ... - a8      blocks 1 s apart: ahead of the 30 s schedule
                                  \\
                                   x3 (the old rule's bits at height 3)  both refuse it, bad-diffbits
    """
    params = easy(MAIN)  # main's rule from height 3, with regtest's easy pow limit
    assert params.asert_activation_height == 3
    b = ChainBuilder(params)
    blocks = [b.block(f"a{i}", time_delta=1) for i in range(1, 9)]
    assert blocks[2].header.bits != blocks[1].header.bits  # a3 is ASERT's: harder, the chain being ahead
    if old_bits_above:
        blocks = [*blocks[:2], b.block("x3", parent="a2", time_delta=1, tweak=with_bits(blocks[1].header.bits))]
    now = blocks[-1].header.time
    service = NodeService(Node(Store(tmp_path / "chain.db", params), params, clock=lambda: now))
    try:
        reason, error, presync = presync_verdict(service, blocks, clock=lambda: now)
        assert service.tip().height == 0
        assert reason == index_verdict(service, blocks) == ("bad-diffbits" if old_bits_above else "accepted")
        assert isinstance(error, Misbehaving) is old_bits_above
        if not old_bits_above:
            assert presync.missing == [block.hash for block in blocks]  # every header checked on the view
    finally:
        service.close()
