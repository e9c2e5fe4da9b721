"""Shared fixtures: a regtest node on a temporary store, and a chain builder for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simplecoin.core.params import REGTEST
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.framework.builder import ChainBuilder

# Tests run with the clock stopped a day after genesis: far enough that no built block is "too new".
NOW = REGTEST.genesis_time + 86_400


@pytest.fixture
def node(tmp_path) -> Iterator[Node]:
    n = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    yield n
    n.close()


@pytest.fixture
def builder() -> ChainBuilder:
    return ChainBuilder(REGTEST)


@pytest.fixture
def funded(node: Node, builder: ChainBuilder) -> tuple[Node, ChainBuilder]:
    """A node at height 13 whose blocks m1..m4 have coinbases mature for the next block."""
    for block in builder.chain([f"m{i}" for i in range(1, 14)]):
        node.submit_block(block)
    assert node.height == 13
    return node, builder
