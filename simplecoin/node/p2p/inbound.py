"""The inbound half of the peer protocol: what a peer's request costs it, and what we answer.

The web layer parses each `/p2p/*` request (and `POST /tx`) and hands it here; every decision is made here: who
sent it, whether it is banned, what an invalid block or tx scores, whether to sync from its sender soon.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from simplecoin.core.errors import DecodeError, ValidationError
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.primitives import Block, Transaction
from simplecoin.node.addrman import PeerAddress, identity, ip_or_none
from simplecoin.node.node import BlockOutcome
from simplecoin.node.p2p.bans import block_score, tx_score
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.p2p.relay import Kind
from simplecoin.node.service import NodeService

T = TypeVar("T")


class Banned(Exception):
    """Raised when a request comes from an identity that is banned."""


class NotLocal(Exception):
    """Raised when an operator's request (adding a peer) comes from another machine."""


class Inbound:
    """One node's answers to peers' messages; `peers` is None for a node without a peer layer (nothing scores)."""

    def __init__(self, service: NodeService, peers: PeerManager | None) -> None:
        self.service = service
        self.peers = peers

    def admit(self, remote_ip: str, claimed: str) -> str:
        """Who sent a request, for ban score: its connection's IP (an IPv6 /64), never a name it chose; Banned if
        that identity is banned. `claimed` (X-SimpleCoin-Peer, host:port) only lends its port, and only to a request
        from the node's own IP, where several local nodes share one address. "" means: not scored."""
        if self.peers is None:
            return identity(remote_ip)
        who = self.peers.identity_of_request(remote_ip, claimed)
        if self.peers.is_banned(who):
            raise Banned(who)
        return who

    def add_peer(self, remote_ip: str, text: str) -> PeerAddress:
        """The operator adds a peer (Bitcoin: the addnode RPC): from this machine only, or anyone could point the
        node at any address. NotLocal from elsewhere; BadAddress if the address is refused."""
        assert self.peers is not None, "a node without a peer layer adds no peers"
        if not self.from_operator(remote_ip):
            raise NotLocal(remote_ip)
        return self.peers.add(text)

    def from_operator(self, remote_ip: str) -> bool:
        """Whether a request comes from the operator's machine: what may steer the node or read its metrics."""
        # The operator's tools connect from 127.0.0.1 or ::1 (or the node's own address); other loopback addresses
        # are other local nodes and processes, which may not steer this one.
        remote = ip_or_none(remote_ip)
        own = self.peers.own.host if self.peers is not None else None
        return remote is not None and (str(remote) in ("127.0.0.1", "::1") or str(remote) == own)

    def hello(self, remote_ip: str, data: dict) -> dict:
        """Another node said hello (from an admitted identity): remember it; answer with our network and tip."""
        if self.peers is not None:
            self.peers.hello_from(remote_ip, data)
        tip = self.service.tip()
        params = self.service.params
        return {
            "network": params.name,
            "genesis": params.genesis_hash_hex,
            "height": tip.height,
            "tip": tip.header.hash_hex(),
            "chain_work": str(tip.chain_work),
            "time": int(self.peers.wall_clock() if self.peers is not None else time.time()),  # for its clock check
        }

    def inv(self, remote_ip: str, data: dict, blocks: list[bytes], txs: list[bytes]) -> dict[str, list[bytes]]:
        """An announcement: the hashes we want sent, by inv field (Bitcoin: inv, then getdata)."""
        if self.peers is None:  # no peer layer (tests, tools): want whatever we lack
            announced = {Kind.BLOCK: blocks, Kind.TX: txs}
            return {k.inv_field: [h for h in hs if self.service.lacks(k.value, h)] for k, hs in announced.items()}
        announcer = self.peers.table.hello_from(remote_ip, data)  # an inv also says it is up (same checks)
        return self.peers.relay.wanted(blocks, txs, announcer)

    def block(self, who: str, raw: bytes) -> tuple[Block, BlockOutcome]:
        """A block pushed to us; an invalid one scores (see bans.block_score) and its error is raised."""

        def take() -> tuple[Block, BlockOutcome]:
            block = Block.deserialize(raw)
            return block, self.service.submit_block(block, source=who)

        block, outcome = self._scored(who, block_score, "sent invalid block: {}", take)
        if outcome.status == "orphan" and self.peers is not None and who:
            self.peers.table.due_now(who)  # it has the parent we lack: sync from it soon
        return block, outcome

    def tx(self, who: str, raw: bytes) -> tuple[Transaction, MempoolEntry]:
        """A tx sent to us (by a peer or a wallet); one no honest node sends scores (bans.tx_score)."""

        def take() -> tuple[Transaction, MempoolEntry]:
            tx = Transaction.deserialize(raw)
            return tx, self.service.submit_tx(tx, source=who)

        return self._scored(who, tx_score, "sent an invalid tx ({})", take)

    def _scored(self, who: str, score: Callable[[Exception], int], why: str, take: Callable[[], T]) -> T:
        """Decode and submit what `who` sent (`take`); if it is invalid, charge `who` what `score` says and raise."""
        try:
            return take()
        except (ValidationError, DecodeError) as e:
            self._misbehaving(who, score(e), why.format(e))
            raise

    def _misbehaving(self, who: str, score: int, why: str) -> None:
        if self.peers is not None and score > 0:
            self.peers.table.misbehaving(who, score, why)
