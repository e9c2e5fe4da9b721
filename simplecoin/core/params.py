"""Network parameters: one immutable value per network, passed in wherever rules depend on them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from simplecoin.core.amounts import COIN
from simplecoin.core.hashing import hash_from_hex
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import NULL_OUTPOINT, Block, BlockHeader, Transaction, TxIn, TxOut


@dataclass(frozen=True)
class NetworkParams:
    """Everything that makes one network differ from another (Bitcoin: CChainParams)."""

    name: str
    address_version: int  # first byte of an address' Base58Check payload
    pow_limit_bits: int  # easiest allowed target, compact (Bitcoin: powLimit)
    target_spacing: int  # seconds between blocks (Bitcoin: nPowTargetSpacing)
    retarget_interval: int  # blocks between retargets (Bitcoin: DifficultyAdjustmentInterval)
    no_retargeting: bool  # regtest keeps its trivial target forever (Bitcoin: fPowNoRetargeting)
    initial_subsidy: int  # base units paid to the first blocks' miners
    halving_interval: int  # blocks between subsidy halvings (Bitcoin: nSubsidyHalvingInterval)
    max_money: int  # no amount may exceed this (Bitcoin: MAX_MONEY)
    coinbase_maturity: int  # blocks before a coinbase output may be spent (Bitcoin: COINBASE_MATURITY)
    max_block_size: int  # bytes (Bitcoin: MAX_BLOCK_SERIALIZED_SIZE before segwit)
    max_tx_size: int  # bytes; also bounds the work of checking one transaction
    genesis_time: int
    genesis_nonce: int
    genesis_message: bytes
    genesis_hash_hex: str  # a constant: every node of the network starts from exactly this block
    # A chain with less work is never stored from an unrequested push (Bitcoin: nMinimumChainWork, raised with
    # each release to the work of the chain as it stood). 0 until this network has a history worth pinning.
    min_chain_work: int = 0
    max_future_block_time: int = 2 * 60 * 60  # Bitcoin: MAX_FUTURE_BLOCK_TIME; below the ASERT activation
    median_time_span: int = 11  # blocks whose median time a new block must beat
    # From this height on the difficulty is aserti3-2d (`pow.asert_target`; Bitcoin Cash since 2020), anchored at
    # the block just below it; blocks below keep the retarget rule. None: the retarget rule forever.
    asert_activation_height: int | None = None
    asert_half_life: int = 0  # seconds behind (ahead of) schedule that halve (double) the difficulty
    # From the activation height: a block stamped `limit` seconds ahead eases the next by 2^(limit / half-life).
    asert_max_future_block_time: int = 0

    def __post_init__(self) -> None:
        if self.asert_activation_height is not None and (self.asert_activation_height < 2 or self.asert_half_life <= 0):
            raise ValueError("the ASERT anchor (the block below the activation height) needs a parent and a half-life")

    @property
    def pow_limit(self) -> int:
        return bits_to_target(self.pow_limit_bits)

    @property
    def retarget_timespan(self) -> int:
        return self.target_spacing * self.retarget_interval

    def uses_asert(self, height: int) -> bool:
        """Whether a block at `height` gets its bits from aserti3-2d rather than the retarget rule."""
        activation = self.asert_activation_height
        return not self.no_retargeting and activation is not None and height >= activation

    def future_block_time_limit(self, height: int) -> int:
        """How far past the node's clock a block at `height` may be stamped (Bitcoin: MAX_FUTURE_BLOCK_TIME)."""
        return self.asert_max_future_block_time if self.uses_asert(height) else self.max_future_block_time

    def subsidy(self, height: int) -> int:
        """New coins a block at `height` may create (Bitcoin: GetBlockSubsidy)."""
        halvings = height // self.halving_interval
        return 0 if halvings >= 64 else self.initial_subsidy >> halvings

    @cached_property
    def genesis_block(self) -> Block:
        """Built from constants only, so it is identical on every node. Its output is never spendable."""
        coinbase = Transaction(
            version=1,
            inputs=(TxIn(NULL_OUTPOINT, b"", (0).to_bytes(4, "little") + self.genesis_message),),
            outputs=(TxOut(self.initial_subsidy, bytes(20)),),
        )
        header = BlockHeader(
            version=1,
            prev_hash=bytes(32),
            merkle_root=coinbase.txid,
            time=self.genesis_time,
            bits=self.pow_limit_bits,
            nonce=self.genesis_nonce,
        )
        return Block(header, (coinbase,))

    @property
    def genesis_hash(self) -> bytes:
        return hash_from_hex(self.genesis_hash_hex)

    def replace(self, **changes: object) -> NetworkParams:
        """A copy with some values changed (tests use this for small retarget intervals)."""
        return dataclasses.replace(self, **changes)


MAIN = NetworkParams(
    name="main",
    address_version=63,  # addresses start with 'S'
    pow_limit_bits=0x1E0FFFFF,  # about 2^20 hashes a block: a laptop in pure Python mines the first ones in seconds
    target_spacing=30,
    retarget_interval=120,  # an hour at the target spacing
    no_retargeting=False,
    initial_subsidy=50 * COIN,
    halving_interval=210_000,
    max_money=21_000_000 * COIN,
    coinbase_maturity=10,  # five minutes at the target spacing
    max_block_size=1_000_000,
    max_tx_size=100_000,
    genesis_time=1794182400,  # 2026-11-09 00:00:00 UTC
    genesis_nonce=2338910,
    genesis_message=b"SimpleCoin: a small coin that validates like Bitcoin",
    genesis_hash_hex="000005b241d72f43c7c34582e4de2a9ce01284d4ee90b23b527395d69a9df60f",
    # aserti3-2d from height 3 (docs/protocol.md section 5 has the simulation that chose these): the anchor is
    # block 2 and its parent block 1, the first block a group mines, so the schedule starts when its chain did
    # (anchored on block 1, the schedule would start at the genesis' fixed 2026-11-09 time, and a chain begun
    # later would sit at the pow limit until it caught up). A new chain is spared the old rule's first hour of
    # pow-limit blocks (bench: 231 blocks in it instead of 428) and every 100x drop's stall of days; chains
    # already mined above height 2 under the old rule are not valid under it: their nodes start again.
    asert_activation_height=3,
    asert_half_life=600,  # 10 min: a 100x drop is over in ~1.2 h, a 100x rise adds ~130 blocks (bench_difficulty)
    asert_max_future_block_time=180,  # 0.3 half-lives: a block stamped this far ahead eases the next by 2^0.3 = 1.23x
)

REGTEST = NetworkParams(
    name="regtest",
    address_version=122,  # addresses start with 'r'
    pow_limit_bits=0x207FFFFF,  # every other hash wins: for tests and demos (Bitcoin regtest's limit)
    target_spacing=30,
    retarget_interval=120,
    no_retargeting=True,
    initial_subsidy=50 * COIN,
    halving_interval=150,  # Bitcoin regtest's
    max_money=21_000_000 * COIN,
    coinbase_maturity=10,
    max_block_size=1_000_000,
    max_tx_size=100_000,
    genesis_time=1794182400,
    genesis_nonce=5,
    genesis_message=b"SimpleCoin regtest",
    genesis_hash_hex="16f80063788c567ec12e93bcd732f85b3cddb291a712bdd466e9c1b09fddd757",
)

NETWORKS = {p.name: p for p in (MAIN, REGTEST)}


def regtest_with_asert(spacing: int) -> NetworkParams:
    """Regtest with MAIN's difficulty rule scaled to `spacing` seconds a block (half-life and future-time limit in
    MAIN's proportions), to watch difficulty follow hashrate in minutes (Bitcoin Core: regtest's -test options).
    Its genesis is regtest's; every node of such a network must use the same spacing."""
    assert MAIN.asert_activation_height is not None
    scale = Fraction(spacing, MAIN.target_spacing)
    return REGTEST.replace(
        no_retargeting=False,
        target_spacing=spacing,
        asert_activation_height=MAIN.asert_activation_height,
        asert_half_life=max(1, int(MAIN.asert_half_life * scale)),
        asert_max_future_block_time=max(1, int(MAIN.asert_max_future_block_time * scale)),
    )


# -- limits of the peer protocol and the light-client API (policy, not consensus) ----------------------------------
MAX_HEADERS_RESULTS = 2_000  # headers in one answer (Bitcoin: MAX_HEADERS_RESULTS)
MAX_HEADERS_BINARY_RESULTS = 20_000  # headers in one binary GET /headers answer (1.6 MB): a light wallet's first run
MAX_BLOCKS_PER_REQUEST = 16  # blocks asked of a peer at once (Bitcoin: MAX_BLOCKS_IN_TRANSIT_PER_PEER)
MAX_LOCATOR_HASHES = 101  # hashes read from a locator (Bitcoin: MAX_LOCATOR_SZ)
