"""The compact block index: skip pointers, its walks against a naive walk, its load from the store.

The index trusts what it is given (checks are the node's), so these chains are bare headers: no proof of work,
each block one second after its parent unless a test says otherwise.
"""

from __future__ import annotations

import random

import pytest

from simplecoin.core.chain import BlockIndex, BlockStatus, IndexEntry, _Blocks, locator_heights, skip_height
from simplecoin.core.headerview import HeaderView
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import BlockHeader
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder
from tests.test_asert_activation import ACTIVATION, EASY_MAIN, OLD_RULE, fast_chain


def add_block(index: BlockIndex, parent: IndexEntry | None, time: int | None = None, tag: int = 0) -> IndexEntry:
    """A bare header on `parent` (genesis if None), added to `index`."""
    prev = parent.hash if parent else bytes(32)
    if time is None:
        time = parent.time + 1 if parent else 1_000_000
    header = BlockHeader(1, prev, tag.to_bytes(32, "little"), time, REGTEST.pow_limit_bits, 0)
    entry = index.make_entry(header, BlockStatus.VALID)
    index.add(entry)
    return entry


def chain_on(index: BlockIndex, parent: IndexEntry | None, length: int, tag: int = 0) -> list[IndexEntry]:
    blocks = []
    for _ in range(length):
        parent = add_block(index, parent, tag=tag)
        blocks.append(parent)
    return blocks


def naive_ancestor(index: BlockIndex, entry: IndexEntry, height: int) -> IndexEntry:
    while entry.height > height:
        entry = index[entry.prev_hash]
    return entry


def naive_fork(index: BlockIndex, a: IndexEntry, b: IndexEntry) -> IndexEntry:
    a = naive_ancestor(index, a, min(a.height, b.height))
    b = naive_ancestor(index, b, min(a.height, b.height))
    while a.hash != b.hash:
        a, b = index[a.prev_hash], index[b.prev_hash]
    return a


def naive_median_time_past(index: BlockIndex, entry: IndexEntry) -> int:
    times = [naive_ancestor(index, entry, h).time for h in range(max(entry.height - 10, 0), entry.height + 1)]
    return sorted(times)[len(times) // 2]


def test_skip_heights_are_below_and_odd_heights_skip_far():
    assert [skip_height(h) for h in range(8)] == [0, 0, 0, 1, 0, 1, 4, 1]
    assert all(0 <= skip_height(h) < h for h in range(2, 5000))


def test_ancestor_on_a_fork_that_branches_below_a_skip_pointers_target():
    """
    genesis - ... - m500 - ... - m768 - ... - m1000          (the main chain)
                       \\
                        s501 - ... - s768 - ... - s1000       (a side branch forking at 500)

    s768's skip pointer goes to height 512, above the fork: it must point into the side branch, not to m512.
    """
    index = BlockIndex(REGTEST)
    main = chain_on(index, None, 1001)  # heights 0..1000
    side = chain_on(index, main[500], 500, tag=1)  # heights 501..1000
    s768 = side[768 - 501]
    assert skip_height(768) == 512
    assert index.ancestor(s768, 512).hash == side[512 - 501].hash != main[512].hash
    assert index.ancestor(s768, 500).hash == main[500].hash
    assert index.ancestor(s768, 3).hash == main[3].hash
    for height in range(0, 769, 7):
        assert index.ancestor(s768, height) == naive_ancestor(index, s768, height)
    assert index.find_fork(side[-1], main[-1]).hash == main[500].hash
    assert index.find_fork(s768, main[600]).hash == main[500].hash


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_walks_agree_with_a_naive_walk_on_a_random_tree(seed):
    """Seeded: a tree of ~2,000 blocks grown by adding each block on a random earlier one (mostly recent ones,
    so there are long branches), random times; every walk compared with the plain parent-by-parent walk."""
    rng = random.Random(seed)
    index = BlockIndex(REGTEST)
    blocks = [add_block(index, None)]
    for i in range(2_000):
        parent = blocks[-1] if rng.random() < 0.9 else rng.choice(blocks[-300:])
        blocks.append(add_block(index, parent, time=parent.time + rng.randint(-300, 900), tag=i + 1))
    for _ in range(300):
        a, b = rng.choice(blocks), rng.choice(blocks)
        height = rng.randint(0, a.height)
        assert index.ancestor(a, height) == naive_ancestor(index, a, height)
        assert index.find_fork(a, b) == naive_fork(index, a, b)
        assert index.median_time_past(a) == naive_median_time_past(index, a)
        assert index.locator(a) == [naive_ancestor(index, a, h).hash for h in locator_heights(a.height)]


def stored_rows(index: BlockIndex, order: list[IndexEntry]) -> list[tuple[bytes, bytes, int, int, int]]:
    return [(e.hash, e.header.serialize(), e.height, int(e.status), e.seq) for e in order]


@pytest.mark.parametrize("shuffled", [False, True])
def test_load_gives_the_index_add_gives(shuffled):
    """
    genesis - m1 - ... - m40*                 (active)
                 \\
                  s11 - ... - s25             (a side branch; s20 invalid, so s19 is a candidate tip)
    """
    built = BlockIndex(REGTEST)
    main = chain_on(built, None, 41)
    side = chain_on(built, main[10], 15, tag=1)
    built.mark_invalid(side[20 - 11].hash)
    order = sorted((built[h] for h in built.entries), key=lambda e: e.seq)
    if shuffled:  # the store reads them in its key's order (by hash): any order loads
        random.Random(7).shuffle(order)
    loaded = BlockIndex(REGTEST)
    active = loaded.load(stored_rows(built, order), main[-1].hash)
    assert active == [e.hash for e in main]
    assert {h: loaded[h] for h in loaded.entries} == {h: built[h] for h in built.entries}
    assert loaded._candidates == built._candidates == {main[-1].hash, side[19 - 11].hash}
    assert loaded.best_candidate() == built.best_candidate()
    for entry in [*main, *side]:
        assert set(loaded.children(entry.hash)) == set(built.children(entry.hash))
        assert loaded.locator(entry) == built.locator(entry)
    assert loaded._seq == built._seq


def test_load_refuses_an_active_tip_that_is_not_stored_or_does_not_reach_genesis():
    built = BlockIndex(REGTEST)
    main = chain_on(built, None, 5)
    with pytest.raises(ValueError, match="not a stored block"):
        BlockIndex(REGTEST).load(stored_rows(built, main[:3]), main[4].hash)
    with pytest.raises(ValueError, match="does not reach the genesis"):
        BlockIndex(REGTEST).load(stored_rows(built, main[2:]), main[4].hash)


def test_a_node_starts_without_walking_its_chain(tmp_path, monkeypatch, builder):
    """At start, the active chain's skip pointers come from the stored active chain: only side-branch blocks
    walk (O(log n) each). Counted: the walks the index makes while the node opens.

    genesis - b1 - ... - b30*
                 \\
                  c2 - c3
    """
    b = builder
    b.chain([f"b{i}" for i in range(1, 31)])
    b.chain(["c2", "c3"], parent="b1")
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    for name in [*(f"b{i}" for i in range(1, 31)), "c2", "c3"]:
        node.submit_block(b[name])
    node.close()
    walks: list[int] = []
    ancestor = _Blocks.ancestor

    def counted(self: _Blocks, row: int, height: int) -> int:
        walks.append(row)
        return ancestor(self, row, height)

    monkeypatch.setattr(_Blocks, "ancestor", counted)
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert node.tip.hash == b["b30"].hash
        assert len(walks) == 2  # c2 and c3; none for the 31 active blocks
        assert node.index[b["c3"].hash].chain_work == node.index[b["b3"].hash].chain_work
        assert node.tip.header == b["b30"].header  # read back from the store
    finally:
        node.close()


def test_a_header_view_copies_nothing_of_its_base():
    index = BlockIndex(REGTEST)
    main = chain_on(index, None, 100)
    view = HeaderView(index)
    assert view._blocks.hashes == []
    assert len(view) == len(index) == 100
    extra = chain_on(view, main[-1], 3, tag=1)
    assert len(view) == 103
    assert len(index) == 100
    assert extra[-1].hash not in index
    assert view.ancestor(extra[-1], 50).hash == main[50].hash
    assert view.children(main[-1].hash) == [extra[0].hash]
    assert index.children(main[-1].hash) == []


def test_load_remembers_where_an_old_rule_chain_breaks_the_difficulty_rule():
    """The first height off the rule is worked out during the load (no walk later), as `add` does."""
    for rule, off_at in ((OLD_RULE, ACTIVATION), (EASY_MAIN, None)):
        b = ChainBuilder(rule)
        names = fast_chain(b, 8)
        side = fast_chain(b, 3, prefix="s", parent=names[4])
        built = BlockIndex(EASY_MAIN)
        for name in ["genesis", *names, *side]:
            built.add(built.make_entry(b[name].header, BlockStatus.VALID))
        order = sorted((built[h] for h in built.entries), key=lambda e: e.seq)
        loaded = BlockIndex(EASY_MAIN)
        loaded.load(stored_rows(built, order), b[names[-1]].hash)
        for name in [*names, *side]:
            entry = loaded[b[name].hash]
            assert loaded.first_height_off_the_difficulty_rule(entry) == built.first_height_off_the_difficulty_rule(
                built[b[name].hash]
            )
        assert loaded.first_height_off_the_difficulty_rule(loaded[b[names[-1]].hash]) == off_at
