"""MAIN's switch to aserti3-2d at `asert_activation_height`: the block index, the miner's template and the light
wallet's header chain, each from both sides of the activation height.

The chains are MAIN's parameters with an easy pow limit (every other hash wins), so blocks mine at once; the
rest (spacing, half-life, activation height, future limits) is MAIN's. Times are chosen so that ASERT's bits
differ from the old rule's: fast blocks (1 s apart) make ASERT harder from the first block it decides.
"""

from __future__ import annotations

import dataclasses

import pytest

from simplecoin.core.chain import BlockIndex, BlockStatus, IndexEntry
from simplecoin.core.errors import BlockValidationError
from simplecoin.core.headerview import HeaderView
from simplecoin.core.params import MAIN, NetworkParams
from simplecoin.core.pow import asert_target, bits_to_target, retarget, target_to_bits
from simplecoin.core.primitives import BlockHeader
from simplecoin.core.spv import HeaderChain, SpvError
from simplecoin.core.validation import check_header_contextual
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.framework.builder import ChainBuilder
from tests.test_spv import resolved


def easy(params: NetworkParams) -> NetworkParams:
    """`params` with regtest's pow limit (and the genesis hash that goes with it)."""
    params = params.replace(pow_limit_bits=0x207FFFFF)
    return params.replace(genesis_hash_hex=params.genesis_block.header.hash_hex())


EASY_MAIN = easy(MAIN)
ACTIVATION = MAIN.asert_activation_height
# Retargets every 4 blocks below an activation at 10: height 8 retargets, block 9 is the anchor.
SHORT_PERIODS = easy(MAIN.replace(retarget_interval=4, asert_activation_height=10))
OLD_RULE = EASY_MAIN.replace(asert_activation_height=None)


def fast_chain(b: ChainBuilder, count: int, prefix: str = "b", parent: str | None = None) -> list[str]:
    names = [f"{prefix}{i}" for i in range(1, count + 1)]
    for name in names:
        b.block(name, parent=parent, time_delta=1)
        parent = name
    return names


def asert_bits(params: NetworkParams, anchor: BlockHeader, anchor_parent: BlockHeader, prev: IndexEntry) -> int:
    """The bits aserti3-2d gives on top of `prev`, written out from the specification's inputs."""
    anchor_height = params.asert_activation_height - 1
    target = asert_target(
        bits_to_target(anchor.bits),
        prev.header.time - anchor_parent.time,
        prev.height - anchor_height,
        params.target_spacing,
        params.asert_half_life,
        params.pow_limit,
    )
    return target_to_bits(target)


def test_main_activates_asert_with_a_shorter_future_limit():
    assert MAIN.asert_activation_height == 3
    assert not MAIN.uses_asert(2)
    assert MAIN.uses_asert(3)
    assert MAIN.future_block_time_limit(2) == 7_200
    assert MAIN.future_block_time_limit(3) == 180
    assert 2 ** (MAIN.asert_max_future_block_time / MAIN.asert_half_life) <= 1.25  # the leverage goal


# -- the block index -----------------------------------------------------------------------------------------------


def test_below_the_activation_the_old_rule_retargets_and_from_it_asert_decides():
    """genesis - b1 - ... - b8 (retarget) - b9 (anchor) | b10 (first ASERT block) - ... - b16

    All 1 s apart: the old rule makes b4 and b8 4x harder; ASERT starts from b9's bits and b8's time.
    """
    params = SHORT_PERIODS
    b = ChainBuilder(params)
    fast_chain(b, 16)
    index = b.index
    entry = {name: index[b[name].hash] for name in b.blocks}
    # b8 is a retarget just below the activation: the old rule, 4x harder than b7 (clamped).
    expected_b8 = retarget(b["b7"].header.bits, b["b7"].header.time - b["b4"].header.time, 120, params.pow_limit)
    assert index.next_bits(entry["b7"]) == expected_b8 == b["b8"].header.bits
    assert bits_to_target(b["b8"].header.bits) < bits_to_target(b["b4"].header.bits)
    assert index.next_bits(entry["b8"]) == b["b8"].header.bits  # b9, the anchor: still the old rule
    for height in range(10, 17):
        prev = entry[f"b{height - 1}"]
        expected = asert_bits(params, b["b9"].header, b["b8"].header, prev)
        assert index.next_bits(prev) == expected == b[f"b{height}"].header.bits
    # ASERT, not the old rule: b10 is not a retarget height (old: b9's bits) and b12 would retarget.
    assert b["b10"].header.bits != b["b9"].header.bits
    assert index.next_bits(entry["b11"]) != retarget(
        b["b11"].header.bits, b["b11"].header.time - b["b8"].header.time, 120, params.pow_limit
    )


def test_a_block_carrying_the_old_rules_bits_is_refused_from_the_activation_height_only():
    b = ChainBuilder(EASY_MAIN)
    fast_chain(b, ACTIVATION)
    index = b.index
    below = index[b[f"b{ACTIVATION - 2}"].hash]
    anchor = index[b[f"b{ACTIVATION - 1}"].hash]
    old_bits = anchor.header.bits  # what the old rule would ask at the activation height (no retarget there)
    assert index.next_bits(below) == old_bits  # the anchor itself: the old rule
    assert index.next_bits(anchor) != old_bits
    header = dataclasses.replace(b[f"b{ACTIVATION}"].header, bits=old_bits)
    with pytest.raises(BlockValidationError) as e:
        check_header_contextual(
            header,
            height=ACTIVATION,
            expected_bits=index.next_bits(anchor),
            median_time_past=index.median_time_past(anchor),
            now=header.time,
            params=EASY_MAIN,
        )
    assert e.value.reason == "bad-diffbits"


def test_a_fork_below_the_activation_gives_each_branch_its_own_anchor():
    """genesis - a1 - a2 (anchor) - a3 - a4          (a1 30 s after the genesis)
              \\
               c1 - c2 (anchor) - c3 - c4          (c1 600 s after the genesis, c4 600 s after c3)
    """
    b = ChainBuilder(EASY_MAIN)
    for name, parent, delta in (("a1", "genesis", 30), ("c1", "genesis", 600)):
        b.block(name, parent=parent, time_delta=delta)
        for height in (2, 3, 4):
            slow = name == "c1" and height == 4  # c4 comes late: c3 and c4 ask for different bits than a3, a4
            b.block(f"{name[0]}{height}", parent=f"{name[0]}{height - 1}", time_delta=600 if slow else 1)
    index = b.index
    for branch in ("a", "c"):
        tip = index[b[f"{branch}4"].hash]
        expected = asert_bits(EASY_MAIN, b[f"{branch}2"].header, b[f"{branch}1"].header, tip)
        assert index.next_bits(tip) == expected
        assert index.asert_anchor(tip).parent_time == b[f"{branch}1"].header.time
    assert index.next_bits(index[b["a4"].hash]) != index.next_bits(index[b["c4"].hash])


class CountingColumn(list):
    """A column of a block index's rows that counts the reads made of it."""

    reads = 0

    def __getitem__(self, row):  # type: ignore[override]
        self.reads += 1
        return super().__getitem__(row)


def count_steps(index: BlockIndex) -> list[CountingColumn]:
    """Count the steps `index` takes through its blocks (to a parent, along a skip pointer) from now on."""
    blocks = index._blocks
    blocks.parents = CountingColumn(blocks.parents)  # type: ignore[assignment]
    blocks.skips = CountingColumn(blocks.skips)  # type: ignore[assignment]
    return [blocks.parents, blocks.skips]  # type: ignore[list-item]


def test_next_bits_jumps_to_the_anchor():
    """The anchor is the tip's ancestor at the anchor height, reached by skip pointers: O(log n), not a walk."""
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, 300)
    tip = b.index[b[names[-1]].hash]
    expected = asert_bits(EASY_MAIN, b["b2"].header, b["b1"].header, tip)
    steps = count_steps(b.index)
    assert b.index.next_bits(tip) == expected
    assert 0 < sum(c.reads for c in steps) <= 40  # 300 blocks above the anchor: a walk took 300 steps


def test_a_header_view_over_the_nodes_index():
    """As presync builds it: a HeaderView over the node's index, extended with make_entry/add. Its next_bits is
    the index's; the node's index is left as it was; the view finds the anchor through the base in O(log n)."""
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, 300)
    node_index = BlockIndex(EASY_MAIN)
    for name in ["genesis", *names[:200]]:
        node_index.add(node_index.make_entry(b[name].header, BlockStatus.VALID))
    steps = count_steps(node_index)
    view = HeaderView(node_index)
    for name in names[200:]:
        prev = view.entries[b[name].header.prev_hash]
        assert view.next_bits(prev) == b.index.next_bits(b.index[prev.hash]) == b[name].header.bits
        view.add(view.make_entry(b[name].header))
    assert view.ancestor(view[b[names[-1]].hash], 5).hash == b[names[4]].hash
    assert view.find_fork(view[b[names[-1]].hash], node_index[b[names[150]].hash]).hash == b[names[150]].hash
    assert b[names[-1]].hash not in node_index  # the node's own index is untouched
    assert len(node_index) == 201
    assert sum(c.reads for c in steps) < 100 * 60  # per header two next_bits of O(log n) steps; a walk: 200+ each


def test_the_first_height_off_the_rule_tells_an_old_rule_chain_apart():
    old = ChainBuilder(OLD_RULE)
    old_names = fast_chain(old, 6)
    new = ChainBuilder(EASY_MAIN)
    new_names = fast_chain(new, 6)
    for builder, names, off_at in ((old, old_names, ACTIVATION), (new, new_names, None)):
        index = BlockIndex(EASY_MAIN)
        for name in ["genesis", *names]:
            index.add(index.make_entry(builder[name].header, BlockStatus.VALID))
        assert index.first_height_off_the_difficulty_rule(index[builder[names[-1]].hash]) == off_at
        below = index[builder[names[ACTIVATION - 2]].hash]
        assert index.first_height_off_the_difficulty_rule(below) is None  # below: nothing to ask


# -- the future-time limit -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "limit"), [(ACTIVATION - 1, 7_200), (ACTIVATION, 180), (ACTIVATION + 1, 180)])
def test_the_future_limit_follows_the_height(height: int, limit: int):
    now = MAIN.genesis_time + 10_000
    header = BlockHeader(1, bytes(32), bytes(32), now + limit, 0x1E0FFFFF, 0)
    context = {"height": height, "expected_bits": header.bits, "median_time_past": now - 100, "params": MAIN}
    check_header_contextual(header, now=now, **context)  # exactly at the limit: allowed
    with pytest.raises(BlockValidationError) as e:
        check_header_contextual(dataclasses.replace(header, time=now + limit + 1), now=now, **context)
    assert e.value.reason == "time-too-new"


# -- the miner's template ------------------------------------------------------------------------------------------


def test_the_block_template_carries_asert_bits_at_and_after_the_activation(tmp_path):
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, ACTIVATION + 2)
    last_time = b[names[-1]].header.time
    node = Node(Store(tmp_path / "chain.db", EASY_MAIN), EASY_MAIN, clock=lambda: last_time + 5)
    try:
        for height, name in enumerate(names, start=1):
            if height >= ACTIVATION - 1:  # the template on the anchor, and on blocks above it
                template = node.block_template(b.key.pubkey_hash)
                assert template.header.bits == node.index.next_bits(node.tip) == b[name].header.bits
            assert node.submit_block(b[name]).status == "accepted"
        template = node.block_template(b.key.pubkey_hash)
        tip = node.tip
        assert template.header.bits == asert_bits(EASY_MAIN, b["b2"].header, b["b1"].header, tip)
        assert template.header.bits != OLD_RULE.pow_limit_bits
    finally:
        node.close()


# -- the light wallet ----------------------------------------------------------------------------------------------


def test_header_chain_accepts_a_main_like_chain_across_the_activation():
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, 40)
    chain = HeaderChain(EASY_MAIN)
    assert chain.add([b[n].header for n in names], b[names[-1]].header.time) == 40
    assert chain.tip.hash == b[names[-1]].hash
    assert len({b[n].header.bits for n in names}) > 10  # ASERT moved the bits at almost every block


def test_header_chain_refuses_the_old_rules_bits_above_the_activation():
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, ACTIVATION + 3)
    chain = HeaderChain(EASY_MAIN)
    chain.add([b[n].header for n in names[:ACTIVATION]], b[names[-1]].header.time)
    old = ChainBuilder(OLD_RULE)  # the same chain under the old rule: bits stay at the limit
    old_names = fast_chain(old, ACTIVATION + 1)
    stale = old[old_names[ACTIVATION]].header
    assert stale.bits == OLD_RULE.pow_limit_bits != b[names[ACTIVATION]].header.bits
    stale = resolved(stale, prev_hash=b[names[ACTIVATION - 1]].hash)
    with pytest.raises(SpvError, match="bad-diffbits"):
        chain.add([stale], stale.time)


@pytest.mark.parametrize("saved", [HeaderChain(EASY_MAIN)._window + 2, 200])
def test_header_chain_resumes_across_the_activation(saved: int):
    """The saved chain's window may start at the anchor (saved = window + 2) or far above it (200): the
    resumed chain still checks the next headers' ASERT bits, with the anchor kept beside the window."""
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, saved + 10)
    chain = HeaderChain(EASY_MAIN)
    now = b[names[-1]].header.time
    chain.add([b[n].header for n in names[:saved]], now)
    resumed = HeaderChain.resume(EASY_MAIN, chain.raw_from(0), chain.tip.chain_work)
    assert resumed.tip.hash == b[names[saved - 1]].hash
    assert resumed.add([b[n].header for n in names[saved:]], now) == 10
    assert resumed.tip.hash == b[names[-1]].hash
    old_bits = resolved(b[names[-1]].header, bits=EASY_MAIN.pow_limit_bits)
    with pytest.raises(SpvError, match="bad-diffbits"):  # the resumed chain checks the bits, not only the links
        resumed.add([old_bits], now)


def test_a_restarted_node_finds_each_blocks_anchor_again(tmp_path):
    """The node rebuilds its index from the store at start: every block above the anchor finds its anchor again
    (its ancestor at the anchor height), so next_bits gives the same bits."""
    b = ChainBuilder(EASY_MAIN)
    names = fast_chain(b, 12)
    clock = lambda: b[names[-1]].header.time + 5  # noqa: E731
    node = Node(Store(tmp_path / "chain.db", EASY_MAIN), EASY_MAIN, clock=clock)
    try:
        for name in names:
            node.submit_block(b[name])
        before = node.index.next_bits(node.tip)
    finally:
        node.close()
    node = Node(Store(tmp_path / "chain.db", EASY_MAIN), EASY_MAIN, clock=clock)
    try:
        assert node.tip.hash == b[names[-1]].hash
        assert node.index.next_bits(node.tip) == before == b.index.next_bits(b.index[node.tip.hash])
        assert node.index.first_height_off_the_difficulty_rule(node.tip) is None
    finally:
        node.close()


def test_header_chain_follows_a_heavier_branch_forking_below_the_anchor_after_resume():
    """genesis - a1 - a2 (anchor) - ... - a150        (30 s apart: every target at the pow limit)
                   \\
                    c2 (anchor) - c3 - ... - c150    (1 s apart: ASERT makes each harder, so more work)

    The resumed chain holds only a window near a150; c2's parent a1 is far below it, so the index is
    rebuilt from there, and each c header's bits are checked against c2, its own anchor."""
    b = ChainBuilder(EASY_MAIN)
    a_names = [f"a{i}" for i in range(1, 151)]
    for name in a_names:
        b.block(name)  # 30 s apart: on schedule
    c_names, parent = [f"c{h}" for h in range(2, 151)], "a1"
    for name in c_names:
        b.block(name, parent=parent, time_delta=1)
        parent = name
    chain = HeaderChain(EASY_MAIN)
    now = b[c_names[-1]].header.time + 10_000
    chain.add([b[n].header for n in a_names], now)
    resumed = HeaderChain.resume(EASY_MAIN, chain.raw_from(0), chain.tip.chain_work)
    assert b["a2"].hash not in resumed.index  # the anchor is below the window
    assert resumed.add([b[n].header for n in c_names], now) == len(c_names)
    assert resumed.tip.hash == b[c_names[-1]].hash
    assert resumed.hash_at(2) == b["c2"].hash
