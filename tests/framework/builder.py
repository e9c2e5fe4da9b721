"""A chain builder for tests: blocks by name on any parent, signed spends, and whole-store checks.

b = ChainBuilder(REGTEST)
b.block("b1")                       # on the builder's tip: genesis at first, then the last block built
b.block("b2", txs=[b.spend("b1")])  # on b1
b.block("b2x", parent="b1")         # a fork; the tip is now b2x
b.move_tip("b2")                    # build on b2 again (Bitcoin's feature_block.py: move_tip)

A name stands for one block: building a second block under a name already used is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from simplecoin.core.chain import BlockIndex, BlockStatus
from simplecoin.core.coins import Coin
from simplecoin.core.errors import ValidationError
from simplecoin.core.keys import PrivateKey, sign_input
from simplecoin.core.mining import make_block, solve
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import Block, BlockHeader, OutPoint, Transaction, TxIn, TxOut
from simplecoin.core.validation import connect_block
from simplecoin.node.node import Node
from simplecoin.node.store import Store

MINER_KEY = PrivateKey(bytes.fromhex("11" * 32))
ALICE = PrivateKey(bytes.fromhex("22" * 32))
BOB = PrivateKey(bytes.fromhex("33" * 32))
DEFAULT_FEE = 10_000


class ChainBuilder:
    """Builds solved blocks by name. Keeps its own block index to know heights, times and bits."""

    def __init__(self, params: NetworkParams, key: PrivateKey = MINER_KEY) -> None:
        self.params = params
        self.key = key
        self.index = BlockIndex(params)
        genesis = params.genesis_block
        self.index.add(self.index.make_entry(genesis.header, BlockStatus.VALID))
        self.blocks: dict[str, Block] = {"genesis": genesis}
        self.tip = "genesis"
        self.loose: dict[bytes, Transaction] = {}  # spends built but maybe in no block

    def __getitem__(self, name: str) -> Block:
        return self.blocks[name]

    def height(self, name: str) -> int:
        return self.index[self.blocks[name].hash].height

    def name_of(self, block_hash: bytes) -> str:
        return next(n for n, b in self.blocks.items() if b.hash == block_hash)

    def block(
        self,
        name: str,
        parent: str | None = None,
        txs: Sequence[Transaction] = (),
        *,
        time_delta: int | None = None,
        coinbase_extra: int = 0,
        pay_to: bytes | None = None,
        tweak: Callable[[Block], Block] | None = None,
    ) -> Block:
        """A solved block on `parent` (default: the tip). `tweak` may break it before it is solved."""
        if name in self.blocks:
            raise ValueError(f"a block named {name!r} was built already: name each block once")
        parent = parent or self.tip
        prev = self.index[self.blocks[parent].hash]
        fees = self.fees(txs)
        block = make_block(
            prev_hash=prev.hash,
            height=prev.height + 1,
            bits=self.index.next_bits(prev),
            time=prev.header.time + (self.params.target_spacing if time_delta is None else time_delta),
            pubkey_hash=pay_to or self.key.pubkey_hash,
            params=self.params,
            txs=txs,
            fees=fees + coinbase_extra,
            extra=name.encode(),  # distinct names give distinct blocks on the same parent
        )
        if tweak is not None:
            block = tweak(block)
        block = solve(block)
        assert block is not None
        self.blocks[name] = block
        if block.header.prev_hash in self.index and block.hash not in self.index:
            self.index.add(self.index.make_entry(block.header))
        self.tip = name
        return block

    def move_tip(self, name: str) -> None:
        """Build the next block without a parent on `name`."""
        if name not in self.blocks:
            raise KeyError(f"no block named {name!r}")
        self.tip = name

    def chain(self, names: Sequence[str], parent: str | None = None) -> list[Block]:
        """Blocks one on another: chain(["b1", "b2"]) builds b1 on `parent` (default: the tip), b2 on b1."""
        built = []
        for name in names:
            built.append(self.block(name, parent))
            parent = name
        return built

    def fees(self, txs: Sequence[Transaction]) -> int:
        """Fees of `txs`, for spends made by this builder (their inputs are outputs it knows)."""
        total = 0
        for tx in txs:
            spent = 0
            for txin in tx.inputs:
                source = self._find_tx(txin.prevout.txid)
                if source is None or txin.prevout.index >= len(source.outputs):
                    return 0  # spending something unknown: the block will be invalid anyway
                spent += source.outputs[txin.prevout.index].amount
            total += spent - sum(o.amount for o in tx.outputs)
        return max(total, 0)

    def _find_tx(self, txid: bytes) -> Transaction | None:
        for block in self.blocks.values():
            for tx in block.txs:
                if tx.txid == txid:
                    return tx
        return self.loose.get(txid)

    def coinbase_outpoint(self, name: str) -> OutPoint:
        return OutPoint(self.blocks[name].txs[0].txid, 0)

    def spend(
        self,
        source: str | OutPoint | Sequence[OutPoint],
        outputs: Sequence[tuple[int, bytes]] | None = None,
        *,
        fee: int = DEFAULT_FEE,
        key: PrivateKey | None = None,
        locktime: int = 0,
        sign: bool = True,
    ) -> Transaction:
        """A signed tx spending a block's coinbase (by block name) or the given outpoints.

        Without `outputs` it pays everything but `fee` to Bob.
        """
        if isinstance(source, str):
            prevouts = [self.coinbase_outpoint(source)]
        elif isinstance(source, OutPoint):
            prevouts = [source]
        else:
            prevouts = list(source)
        key = key or self.key
        if outputs is None:
            total = sum(self._find_tx(p.txid).outputs[p.index].amount for p in prevouts)  # type: ignore[union-attr]
            outputs = [(total - fee, BOB.pubkey_hash)]
        tx = Transaction(
            1,
            tuple(TxIn(p, key.pubkey, b"") for p in prevouts),
            tuple(TxOut(amount, pkh) for amount, pkh in outputs),
            locktime,
        )
        if sign:
            tx = sign_all(tx, key, self.params)
        self.loose[tx.txid] = tx
        return tx


def funded_data_dir(data_dir: Path, params: NetworkParams) -> tuple[Node, ChainBuilder]:
    """A node on a store in `data_dir` at height 13 (m1..m13, MINER_KEY's coinbases), for a data directory built
    offline and then served by a real node; the caller closes the node."""
    data_dir.mkdir(parents=True, exist_ok=True)
    b = ChainBuilder(params)
    node = Node(Store(data_dir / "chain.db", params), params)
    for block in b.chain([f"m{i}" for i in range(1, 14)]):
        node.submit_block(block)
    return node, b


def sign_all(tx: Transaction, key: PrivateKey, params: NetworkParams, genesis_hash: bytes | None = None) -> Transaction:
    """`tx` with every input signed by `key` (over `genesis_hash`, by default the network's own)."""
    genesis_hash = genesis_hash or params.genesis_hash
    inputs = tuple(
        dataclasses.replace(txin, signature=sign_input(tx, i, key, genesis_hash)) for i, txin in enumerate(tx.inputs)
    )
    return dataclasses.replace(tx, inputs=inputs)


def miss_target(header: BlockHeader) -> BlockHeader:
    """The header with another nonce whose hash is above its target (on regtest about every other nonce)."""
    target = bits_to_target(header.bits)
    for nonce in range(header.nonce + 1, header.nonce + 1000):
        candidate = dataclasses.replace(header, nonce=nonce)
        if int.from_bytes(candidate.hash(), "little") > target:
            return candidate
    raise AssertionError("no nonce missing the target")


def resolve(block: Block) -> Block:
    """Recompute the merkle root of an edited block (tweaks call this; solve() follows)."""
    header = dataclasses.replace(block.header, merkle_root=block.compute_merkle_root())
    return Block(header, block.txs)


class DictView:
    """A UTXO set in a dict, for replaying a chain without the store."""

    def __init__(self) -> None:
        self.coins: dict[OutPoint, Coin] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)


def recompute_utxos(node: Node) -> dict[OutPoint, Coin]:
    """The UTXO set of the node's active chain, rebuilt from its stored blocks with the pure rules."""
    view = DictView()
    index = node.index
    for height, block_hash in enumerate(node.active[1:], start=1):
        block = node.store.get_block(block_hash)
        assert block is not None
        parent = index[block.header.prev_hash]
        connect_block(block, view, height, node.params, index.median_time_past(parent))
        for tx in block.txs:
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    del view.coins[txin.prevout]
            for i, out in enumerate(tx.outputs):
                view.coins[OutPoint(tx.txid, i)] = Coin.from_output(out, height, tx.is_coinbase())
    return view.coins


def snapshot(node: Node) -> tuple:
    """Everything a rejected block or transaction must leave alone."""
    return (
        node.tip.hash,
        tuple(node.active),
        tuple(node.store.active_chain()),
        node.store.utxos(),
        tuple(node.mempool.entries),
    )


def assert_rejected(
    node: Node, submit: Callable[[], object], reason: str, kind: type[ValidationError] = ValidationError
) -> ValidationError:
    """`submit()` must raise `kind` with exactly `reason` and leave the node as it was (Core: reject_reason=)."""
    before = snapshot(node)
    try:
        submit()
    except ValidationError as e:
        error = e
    else:
        raise AssertionError(f"accepted; expected a rejection with reason {reason!r}")
    assert isinstance(error, kind), f"{type(error).__name__} {error}; expected {kind.__name__}"
    assert error.reason == reason, f"rejected as {error.reason!r} ({error}); expected {reason!r}"
    assert snapshot(node) == before, f"the rejection of {reason!r} changed the node"
    return error
