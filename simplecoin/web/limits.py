"""Limits for clients we do not know: the HTTP server's connection rules and the per-peer upload budget.

A client's identity is its connection's IP address (never a name it sends). Measured on waitress' defaults
(100 connections, a 120 s inactivity timeout, a 1 GiB body limit): 99 half-sent requests took the API down, and
one byte every 50 s per socket kept it down, because each byte resets the inactivity timer. The rules here:

- a cap on connections per IP, and a total cap that *evicts* (Bitcoin: AttemptToEvictConnection) instead of
  refusing everyone: when full, the connection not being served from the IP holding most connections, oldest
  first, makes room — so an honest newcomer always gets in while the attacker's sockets churn;
- a deadline for receiving a whole request from its first byte (Apache's mod_reqtimeout idea), because an
  inactivity timeout alone is what the trickling attacker defeats;
- bounded headers and bodies, the body refused from its Content-Length before it is read (waitress'
  `max_request_body_size`), with the refusal in the API's own `{"error", "reason"}` shape.

waitress stays: its asyncore loop holds a half-sent request as a few hundred bytes of buffer and no thread, so
sockets cost little; what it lacked was eviction and a request deadline, which its channel and server classes
let us add. (A thread-per-connection server would be worse here: each slow socket would hold a thread.)

Measured on a real regtest node (tests/test_http_limits.py's attacker, each socket from its own 127.x address,
trickling a header byte every 0.2 s and reconnecting whenever it is closed), an honest client polling /status
with a 1 s timeout for 8 s: before, 0 answers; after, with 200 sockets every answer came, median 8.6 ms and
slowest 41 ms (the attacker reconnected ~1,600 times); with 500 sockets, median 17 ms, slowest 330 ms.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from simplecoin.bounded import BoundedDict

log = logging.getLogger(__name__)


# -- connection rules -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionRules:
    """What one HTTP server allows: connections in total and per IP, and time to receive one request."""

    max_connections: int  # Bitcoin: DEFAULT_MAX_PEER_CONNECTIONS; past it, evict (see GuardedServer._evict)
    max_per_ip: int  # new connections from an IP holding this many are closed at once
    request_seconds: float  # from a request's first byte to its last, body included


# waitress' own error pages are text/plain; API clients expect the JSON error shape, with these reasons.
WAITRESS_REASONS = {400: "bad-request", 413: "body-too-large", 431: "headers-too-large", 501: "bad-request"}


class JsonErrorTask(ErrorTask):
    """waitress' answer to a request it refused while parsing (too large, malformed), as API JSON."""

    def execute(self) -> None:
        e, adj = self.request.error, self.channel.adj
        if e.code == 413:  # waitress refuses at >= its limit; the largest body it takes is one byte less
            error = f"the body is longer than {adj.max_request_body_size - 1} bytes"
        elif e.code == 431:
            error = f"the request line and headers reach {adj.max_request_header_size} bytes"
        else:
            error = f"{e.reason}: {e.body}"
        body = (json.dumps({"error": error, "reason": WAITRESS_REASONS.get(e.code, "bad-request")}) + "\n").encode()
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class GuardedChannel(HTTPChannel):
    """A waitress connection that remembers when the request it is receiving began."""

    error_task_class = JsonErrorTask
    request_started = 0.0  # time.monotonic() of the first byte of the request being received

    def received(self, data: bytes) -> bool:
        before = self.request
        result = super().received(data)
        if self.request is not None and self.request is not before:  # a new request began in these bytes
            self.request_started = time.monotonic()
        return result


class GuardedServer(TcpWSGIServer):
    """waitress' TCP server with a per-IP cap, eviction when full, and a deadline per request."""

    channel_class = GuardedChannel

    def __init__(self, application, *, rules: ConnectionRules, **kw) -> None:
        self.rules = rules
        self.refused = 0  # connections closed at accept (per-IP cap, or full with nothing to evict)
        self.evicted = 0  # connections closed to make room for a new one
        self.expired = 0  # connections closed for not finishing a request within rules.request_seconds
        super().__init__(application, **kw)

    def readable(self) -> bool:
        """Always accept while listening: handle_accept decides, instead of waitress' stop-accepting when full."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        try:
            pair = self.accept()
            if pair is None:
                return
            conn, addr = pair
            self.set_socket_options(conn)
        except OSError:  # the client left before we got to it (see waitress' handle_accept)
            return
        addr = self.fix_addr(addr)
        channels = list(self.active_channels.values())
        from_ip = sum(1 for c in channels if c.addr[0] == addr[0])
        if from_ip >= self.rules.max_per_ip or (len(channels) >= self.rules.max_connections and not self._evict()):
            self.refused += 1
            log.debug("refusing a connection from %s (%d from it, %d in all)", addr[0], from_ip, len(channels))
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def _evict(self) -> bool:
        """Close one connection that is not being served, to make room; False if every one is being served.

        Bitcoin: AttemptToEvictConnection protects peers and evicts from the netgroup with the most connections.
        Here: the IP with the most connections loses its oldest one, so an attacker's many sockets go before an
        honest client's one, and a connection with a request in service is never cut.
        """
        idle = [c for c in self.active_channels.values() if not c.requests and not c.will_close]
        if not idle:
            return False
        per_ip: dict[str, int] = {}
        for c in self.active_channels.values():
            per_ip[c.addr[0]] = per_ip.get(c.addr[0], 0) + 1
        victim = max(idle, key=lambda c: (per_ip[c.addr[0]], -c.creation_time))
        log.debug("evicting a connection from %s to make room", victim.addr[0])
        self.evicted += 1
        victim.handle_close()
        return True

    def maintenance(self, now: float) -> None:
        """waitress closes connections silent for channel_timeout; also close those slower than the deadline."""
        super().maintenance(now)
        cutoff = time.monotonic() - self.rules.request_seconds
        for channel in self.active_channels.values():
            if channel.request is not None and not channel.requests and channel.request_started < cutoff:
                self.expired += 1
                log.debug("closing a connection from %s: request not received in time", channel.addr[0])
                channel.will_close = True


def create_guarded_server(app, *, rules: ConnectionRules, **adjustments):
    """Like waitress.create_server, with GuardedServer for every TCP listen address."""
    adj = Adjustments(**adjustments)
    socket_map: dict = {}
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    servers = [
        GuardedServer(app, rules=rules, map=socket_map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)
        for sockinfo in adj.listen
    ]
    if len(servers) == 1:
        return servers[0]
    # Several addresses (a host name with IPv4 and IPv6): caps then count per listening socket.
    listening = [(s.effective_host, s.effective_port) for s in servers]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[-1].log_info)


# -- per-peer upload budget -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    tokens: float  # bytes this IP may still be sent; negative after an answer larger than what was left
    at: float  # when `tokens` was last brought up to date


class UploadBudget:
    """Bytes of blocks served per client IP: a token bucket of `limit_bytes` refilled over `window_seconds`.

    Bitcoin: -maxuploadtarget (one budget per 24 h for all peers). Here each IP has its own, so one greedy
    client cannot spend everyone's. A request is served while the IP's bucket is above zero and then charged
    what was sent, so one answer may overdraw it; the IP then waits until the refill brings it back above zero.
    The caller passes the time in (the web layer reads the clock).
    """

    def __init__(self, limit_bytes: int, window_seconds: float, max_peers: int = 4096) -> None:
        self.limit_bytes = limit_bytes
        self.rate = limit_bytes / window_seconds  # bytes per second of refill
        # Bounded: at most max_peers IPs; past it the least recently seen IP is forgotten (LRU). Forgetting
        # only ever refills that IP's budget, and an attacker with that many addresses has that many budgets
        # anyway.
        self.buckets: BoundedDict[str, _Bucket] = BoundedDict(max_peers)
        self.lock = threading.Lock()  # waitress serves requests on several threads

    def _bucket(self, ip: str, now: float) -> _Bucket:
        bucket = self.buckets.get(ip)
        if bucket is None:
            bucket = self.buckets[ip] = _Bucket(float(self.limit_bytes), now)
        else:
            self.buckets.touch(ip)
            bucket.tokens = min(float(self.limit_bytes), bucket.tokens + max(0.0, now - bucket.at) * self.rate)
            bucket.at = now
        return bucket

    def retry_after(self, ip: str, now: float) -> int | None:
        """None if `ip` may be served now; else whole seconds until it may."""
        with self.lock:
            tokens = self._bucket(ip, now).tokens
        if tokens > 0:
            return None
        return max(1, math.ceil((1 - tokens) / self.rate))

    def charge(self, ip: str, sent: int, now: float) -> None:
        with self.lock:
            self._bucket(ip, now).tokens -= sent
