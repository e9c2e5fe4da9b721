"""Peer addresses: what a peer is (host:port), who a connection is (its IP), and which addresses we keep.

Glossary:
- *address*: `host:port` of a peer's HTTP server. Learned addresses are IP literals; only the operator
  (`--peer`, `POST /peers` from this machine) may name a host. No scheme beyond http, no path, no query, no user
  info: the node speaks only the peer protocol's fixed endpoints to it (docs/protocol.md, "Peers").
- *identity*: who sent a request: the connection's IP address, an IPv6 address cut to its /64 (one customer's
  whole allocation). Ban score and bans are per identity, never per a name the sender chose.
- *network group*: an IPv4 /16 or an IPv6 /32 (Bitcoin: CNetAddr::GetGroup): addresses one party can easily
  hold many of. Buckets are chosen by group, so one party fills only its own buckets.

Deliberate simplifications of Bitcoin Core's addrman (kept small): 64 "new" buckets and 16 "tried" buckets of
16 slots each; a source group reaches at most 4 new buckets, an address group at most 2 tried buckets; a full
slot is taken over by the newcomer only if the occupant is "terrible" (long failing) or older and untried.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_PORT = 5000
NEW_BUCKETS = 64  # Bitcoin: ADDRMAN_NEW_BUCKET_COUNT (1024)
TRIED_BUCKETS = 16  # Bitcoin: ADDRMAN_TRIED_BUCKET_COUNT (256)
BUCKET_SIZE = 16  # Bitcoin: ADDRMAN_BUCKET_SIZE (64)
NEW_BUCKETS_PER_SOURCE_GROUP = 4  # Bitcoin: ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP (64)
TRIED_BUCKETS_PER_GROUP = 2  # Bitcoin: ADDRMAN_TRIED_BUCKETS_PER_GROUP (8)
MAX_FAILURES = 10  # Bitcoin: ADDRMAN_MAX_FAILURES: after this many failures in a row an address is terrible
HORIZON_SECONDS = 30 * 24 * 3600  # Bitcoin: ADDRMAN_HORIZON: not seen for this long, an address is terrible
MAX_BANS = 10_000  # bans kept; past it the one expiring first is dropped
FILE_NAME = "peers.json"  # Bitcoin: peers.dat and banlist.json
LOOPBACK = "127.0.0.1"  # what `localhost` means (RFC 6761), and the address a node on this machine calls from


class BadAddress(ValueError):
    """Raised when a text is not a usable peer address (host:port, nothing more)."""


@dataclass(frozen=True, slots=True, order=True)
class PeerAddress:
    """Where a peer's HTTP server listens."""

    host: str  # an IP literal (IPv6 without brackets), or a host name the operator gave
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL of its API; the only URL the node ever builds for a peer (plus fixed paths)."""
        return f"http://{self}"

    @property
    def is_ip(self) -> bool:
        return ip_or_none(self.host) is not None


def ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_address(text: str, allow_names: bool = False) -> PeerAddress:
    """`host:port`, `[v6]:port` or (for compatibility) `http://host:port`, and nothing more; else BadAddress.

    Paths, query strings, fragments, user info and https are refused: a peer is a network address, and a URL
    with more in it was how a hello made the node fetch arbitrary pages (SSRF).
    """
    if not isinstance(text, str) or len(text) > 300:
        raise BadAddress("not a short string")
    raw = text.strip()
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        if scheme.lower() != "http":
            raise BadAddress(f"scheme {scheme!r}: peers speak plain http")
        raw = rest[:-1] if rest.endswith("/") else rest
    if any(c in raw for c in "/?#@\\ ") or not raw:
        raise BadAddress("only host:port (no path, query, fragment or user info)")
    try:
        parts = urlsplit("//" + raw)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise BadAddress(str(e)) from e
    if not host:
        raise BadAddress("no host")
    port = DEFAULT_PORT if port is None else port
    if not 1 <= port <= 65535:
        raise BadAddress("port out of range")
    ip = ip_or_none(host)
    if ip is not None:
        if ip.is_unspecified or ip.is_multicast:
            raise BadAddress(f"{ip} is not a host")
        return PeerAddress(str(ip), port)
    # A name is resolved anew on each connection (so it is no identity) and could point anywhere: only the
    # operator may give one. "127.1" style short forms are names to ipaddress, so they are refused here too.
    if not allow_names or not all(c.isalnum() or c in "-." for c in host) or host.replace(".", "").isdigit():
        raise BadAddress(f"{host!r} is not an IP address")
    if host.lower().rstrip(".") == "localhost":  # the node that calls back says 127.0.0.1: one peer, not two
        return PeerAddress(LOOPBACK, port)
    return PeerAddress(host.lower(), port)


def identity(ip_text: str) -> str:
    """The ban identity of a connection's IP: the IP itself, an IPv6 address cut to its /64."""
    ip = ip_or_none(ip_text)
    if ip is None:
        return ip_text.lower()
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def network_group(host: str) -> str:
    """Bitcoin: CNetAddr::GetGroup. IPv4 /16, IPv6 /32; a host name is its own group."""
    ip = ip_or_none(host)
    if ip is None:
        return "name:" + host
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((int(ip) >> 16 << 16, 16)))
    return str(ipaddress.IPv6Network((int(ip) >> 96 << 96, 32)))


@dataclass(slots=True)
class AddrInfo:
    """One known address (Bitcoin: AddrInfo)."""

    address: PeerAddress
    source: str  # network group of whoever told us about it
    seen: float  # wall-clock time it was last heard of
    tried: bool = False
    attempts: int = 0  # failures since the last success
    last_success: float = 0.0

    def terrible(self, now: float) -> bool:
        """Bitcoin: AddrInfo::IsTerrible."""
        return self.attempts >= MAX_FAILURES or (now - max(self.seen, self.last_success) > HORIZON_SECONDS)


@dataclass
class AddrMan:
    """ "new" and "tried" tables of addresses, bucketed by network group so no single source can fill them."""

    clock: Callable[[], float] = time.time
    key: bytes = field(default_factory=lambda: os.urandom(16))  # Bitcoin: nKey, so buckets cannot be predicted
    rng: random.Random = field(default_factory=random.Random)
    # bucket -> {address: info}; each bucket holds at most BUCKET_SIZE, so the tables hold at most
    # (NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE = 1,280 addresses.
    new: dict[int, dict[PeerAddress, AddrInfo]] = field(default_factory=dict)
    tried: dict[int, dict[PeerAddress, AddrInfo]] = field(default_factory=dict)

    def _hash(self, *parts: str) -> int:
        return int.from_bytes(hashlib.sha256(self.key + "|".join(parts).encode()).digest()[:8], "little")

    def _new_bucket(self, address: PeerAddress, source: str) -> int:
        # Bitcoin: AddrInfo::GetNewBucket -- the source group picks one of only a few buckets.
        slot = self._hash(network_group(address.host), source) % NEW_BUCKETS_PER_SOURCE_GROUP
        return self._hash(source, str(slot)) % NEW_BUCKETS

    def _tried_bucket(self, address: PeerAddress) -> int:
        slot = self._hash(str(address)) % TRIED_BUCKETS_PER_GROUP
        return self._hash(network_group(address.host), str(slot)) % TRIED_BUCKETS

    def find(self, address: PeerAddress) -> AddrInfo | None:
        for table in (self.tried, self.new):
            for bucket in table.values():
                if address in bucket:
                    return bucket[address]
        return None

    def __len__(self) -> int:
        return sum(len(b) for b in self.new.values()) + sum(len(b) for b in self.tried.values())

    def add(self, address: PeerAddress, source_host: str) -> bool:
        """Remember an address heard of from `source_host`; False if its bucket is full of better ones."""
        now = self.clock()
        known = self.find(address)
        if known is not None:
            known.seen = max(known.seen, now)
            return True
        source = network_group(source_host)
        bucket = self.new.setdefault(self._new_bucket(address, source), {})
        if len(bucket) >= BUCKET_SIZE and not self._evict(bucket, now):
            return False
        bucket[address] = AddrInfo(address, source, now)
        return True

    def _evict(self, bucket: dict[PeerAddress, AddrInfo], now: float) -> bool:
        """Make room in a full new bucket: drop a terrible entry, else the one heard of longest ago."""
        victim = max(bucket.values(), key=lambda i: (i.terrible(now), i.attempts, -i.seen))
        del bucket[victim.address]
        return True

    def good(self, address: PeerAddress) -> None:
        """We completed a handshake with it: move it to "tried" (Bitcoin: AddrMan::Good)."""
        now = self.clock()
        info = self.find(address)
        if info is None:
            info = AddrInfo(address, network_group(address.host), now)
        info.attempts, info.last_success, info.seen = 0, now, now
        if info.tried:
            return
        self._remove(address)
        info.tried = True
        bucket = self.tried.setdefault(self._tried_bucket(address), {})
        if len(bucket) >= BUCKET_SIZE:
            # Bitcoin moves the occupant back to "new"; kept small, the least recently successful one goes.
            oldest = min(bucket.values(), key=lambda i: i.last_success)
            del bucket[oldest.address]
            oldest.tried = False
            self.new.setdefault(self._new_bucket(oldest.address, oldest.source), {})[oldest.address] = oldest
            self._trim(self.new.get(self._new_bucket(oldest.address, oldest.source), {}), now)
        bucket[address] = info

    def _trim(self, bucket: dict[PeerAddress, AddrInfo], now: float) -> None:
        while len(bucket) > BUCKET_SIZE:
            self._evict(bucket, now)

    def attempt_failed(self, address: PeerAddress) -> None:
        """A connection attempt failed; a new address failing MAX_FAILURES times in a row is forgotten."""
        info = self.find(address)
        if info is None:
            return
        info.attempts += 1
        if info.terrible(self.clock()) and not info.tried:
            self._remove(address)

    def _remove(self, address: PeerAddress) -> None:
        for table in (self.new, self.tried):
            for bucket in table.values():
                bucket.pop(address, None)

    def select(self, exclude_groups: set[str], exclude: set[PeerAddress]) -> PeerAddress | None:
        """An address to try next: half the time from "tried", a random bucket and entry, outside the groups we
        already have an outbound peer in (Bitcoin: AddrMan::Select and ThreadOpenConnections' setConnected)."""
        now = self.clock()
        for _ in range(100):
            table = self.tried if (self.rng.random() < 0.5 and self.tried) else self.new
            buckets = [b for b in table.values() if b]
            if not buckets:
                table = self.tried if table is self.new else self.new
                buckets = [b for b in table.values() if b]
                if not buckets:
                    return None
            info = self.rng.choice(list(self.rng.choice(buckets).values()))
            if info.address in exclude or network_group(info.address.host) in exclude_groups or info.terrible(now):
                continue
            return info.address
        return None

    def tried_addresses(self, limit: int) -> list[PeerAddress]:
        """Addresses we connected to ourselves: the only ones we tell others about (verified by our call)."""
        found = [i for b in self.tried.values() for i in b.values()]
        self.rng.shuffle(found)
        return [i.address for i in found[:limit]]

    # -- persistence (Bitcoin: peers.dat) ------------------------------------------------------------------------

    def to_json(self) -> list[dict]:
        return [
            {
                "address": str(i.address),
                "source": i.source,
                "seen": i.seen,
                "tried": i.tried,
                "attempts": i.attempts,
                "last_success": i.last_success,
            }
            for table in (self.tried, self.new)
            for b in table.values()
            for i in b.values()
        ]

    def load_json(self, rows: object) -> None:
        """Re-add saved addresses through the same buckets and bounds; malformed rows are skipped."""
        if not isinstance(rows, list):
            return
        for row in rows[: (NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE]:
            try:
                address = parse_address(str(row["address"]), allow_names=True)
                info = AddrInfo(address, str(row["source"]), float(row["seen"]), bool(row["tried"]))
                info.attempts, info.last_success = int(row["attempts"]), float(row["last_success"])
            except (KeyError, TypeError, ValueError):
                continue
            table, number = (
                (self.tried, self._tried_bucket(address))
                if info.tried
                else (self.new, self._new_bucket(address, info.source))
            )
            bucket = table.setdefault(number, {})
            if len(bucket) < BUCKET_SIZE and self.find(address) is None:
                bucket[address] = info


@dataclass
class BanList:
    """Banned identities until a wall-clock time (Bitcoin: BanMan, banlist.json)."""

    clock: Callable[[], float] = time.time
    until: dict[str, float] = field(default_factory=dict)  # at most MAX_BANS; past it the soonest to expire goes

    def ban(self, who: str, seconds: float) -> None:
        self.until[who] = max(self.until.get(who, 0.0), self.clock() + seconds)
        if len(self.until) > MAX_BANS:
            self.sweep()
        while len(self.until) > MAX_BANS:
            del self.until[min(self.until, key=self.until.__getitem__)]

    def banned(self, who: str) -> bool:
        return self.until.get(who, 0.0) > self.clock()

    def sweep(self) -> None:
        now = self.clock()
        for who in [w for w, t in self.until.items() if t <= now]:
            del self.until[who]


def save(path: Path, addrman: AddrMan, bans: BanList) -> None:
    """Write peers and bans atomically (a crash leaves the old file or the new one, never half of one)."""
    bans.sweep()
    data = {"addresses": addrman.to_json(), "bans": bans.until}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def load(path: Path, addrman: AddrMan, bans: BanList) -> None:
    """Read what `save` wrote; a missing or damaged file leaves both empty (logged)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        log.warning("ignoring %s: %s", path, e)
        return
    if not isinstance(data, dict):
        return
    addrman.load_json(data.get("addresses"))
    saved = data.get("bans")
    if isinstance(saved, dict):
        for who, until in list(saved.items())[:MAX_BANS]:
            if isinstance(who, str) and isinstance(until, int | float) and until > bans.clock():
                bans.until[who] = float(until)
