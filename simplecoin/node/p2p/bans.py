"""Who a peer is, what its misbehaviour has cost it, and whether it is banned (Bitcoin: Misbehaving, BanMan).

Who sent something is its connection's IP (addrman.identity, an IPv6 /64), never a name it chose. A peer on our
own IP (this machine) is scored by `ip:port` instead, since banning our own address would ban ourselves and every
local node (Bitcoin Core does not discourage local peers at all).

Only what an honest node cannot send scores: a block we already know to be invalid ("duplicate-invalid") scores
nothing, since a relayer need not have known, and neither does a block from the future ("time-too-new"), which
is early, not invalid. Not thread-safe: the peer table calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable

from simplecoin.bounded import BoundedDict
from simplecoin.core.errors import DecodeError
from simplecoin.node import addrman
from simplecoin.node.addrman import BadAddress, BanList, PeerAddress, identity

BAN_THRESHOLD = 100  # Bitcoin: DISCOURAGEMENT_THRESHOLD
BAN_SECONDS = 24 * 3600  # Bitcoin: DEFAULT_MISBEHAVING_BANTIME
MAX_SCORES = 10_000  # identities with ban score below the threshold; past it the least recently scored goes
LOCAL_IDENTITIES = (identity("127.0.0.1"), identity("::1"))  # the machine itself, as its own tools connect

# Ban score per misbehaviour.
SCORE_INVALID = 100
SCORE_UNCONNECTING_HEADERS = 10  # Bitcoin: MAX_NUM_UNCONNECTING_HEADERS_MSGS leads to a ban after several
SCORED_TX_REASONS = {  # a tx refused for one of these cannot come from an honest node, which checks them first
    "bad-txns-sig-invalid",
    "bad-txns-wrong-key",
    "bad-txns-vin-empty",
    "bad-txns-vout-empty",
    "bad-txns-oversize",
    "bad-txns-vout-notpositive",
    "bad-txns-vout-toolarge",
    "bad-txns-txouttotal-toolarge",
    "bad-txns-inputs-duplicate",
    "bad-cb-length",
    "bad-txns-prevout-null",
    "coinbase",
    "bad-encoding",
}


# Block reasons an honest node can send: a block we already knew to be invalid (a relayer need not have known), and
# one from the future, which is early, not invalid (clocks differ; Bitcoin Core: BLOCK_TIME_FUTURE is not punished).
UNSCORED_BLOCK_REASONS = {"duplicate-invalid", "time-too-new"}


def block_score(error: Exception) -> int:
    """What sending a block refused with `error` costs: nothing for a reason in UNSCORED_BLOCK_REASONS, a ban for
    anything else."""
    return 0 if getattr(error, "reason", "") in UNSCORED_BLOCK_REASONS else SCORE_INVALID


def tx_score(error: Exception) -> int:
    """What sending a tx refused with `error` costs: a ban for bytes no honest node sends, nothing otherwise (a
    double spend or a low fee can come from an honest node whose pool differs from ours)."""
    if isinstance(error, DecodeError) or getattr(error, "reason", "") in SCORED_TX_REASONS:
        return SCORE_INVALID
    return 0


class Scores:
    """Ban score per identity below the threshold (Bitcoin: Peer::m_misbehavior_score)."""

    def __init__(self) -> None:
        # Bounded: at most MAX_SCORES identities; the least recently scored is forgotten (forgetting only forgives).
        self.by_identity: BoundedDict[str, int] = BoundedDict(MAX_SCORES)

    def add(self, who: str, score: int) -> int:
        """Add to `who`'s score; its new total."""
        total = self.by_identity.get(who, 0) + score
        self.by_identity[who] = total
        return total


class Identities:
    """Identity rules for one node: what a request or a peer address is scored and banned by."""

    def __init__(self, own: PeerAddress, wall_clock: Callable[[], float]) -> None:
        self.own_identity = identity(own.host)
        self.scores = Scores()
        self.bans = BanList(clock=wall_clock)

    def is_local(self, host: str) -> bool:
        """Our own IP, or 127.0.0.1 / ::1 (where the operator's tools connect from): the machine itself."""
        return identity(host) == self.own_identity or identity(host) in LOCAL_IDENTITIES

    def ban_key(self, host: str, port: int | None) -> str:
        """What ban score and bans attach to: the IP identity, or `ip:port` for a peer on this machine (banning the
        address itself would ban every local node and the operator's own wallet)."""
        if self.is_local(host):
            return str(PeerAddress(host, port)) if port else ""
        return identity(host)

    def of_request(self, remote_ip: str, claimed: str) -> str:
        """The identity of an incoming request: its connection's IP. A claim (X-SimpleCoin-Peer: host:port) only
        lends its port, and only to a request from our own IP; "" means the request is not scored."""
        if not self.is_local(remote_ip):
            return identity(remote_ip)
        try:
            port = addrman.parse_address(claimed, allow_names=True).port if claimed else None
        except BadAddress:
            port = None
        return self.ban_key(remote_ip, port)

    def keys_of(self, who: str) -> set[str]:
        """Every key a ban on `who` (an identity, a ban key, or a peer address or URL) may be recorded under."""
        keys = {who}
        try:
            address = addrman.parse_address(who, allow_names=True)
            keys |= {str(address), identity(address.host), self.ban_key(address.host, address.port)}
        except BadAddress:
            pass
        return {k for k in keys if k}

    def address_banned(self, address: PeerAddress) -> bool:
        return self.bans.banned(identity(address.host)) or self.bans.banned(str(address))

    def address_score(self, address: PeerAddress) -> int:
        """The score shown for a peer: its identity's or its address's, the threshold once banned."""
        return max(
            self.scores.by_identity.get(identity(address.host), 0),
            self.scores.by_identity.get(str(address), 0),
            BAN_THRESHOLD if self.address_banned(address) else 0,
        )
