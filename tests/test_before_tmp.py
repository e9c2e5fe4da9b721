"""The HTTP server against hostile clients: slowloris, huge bodies, amplification, and handler crashes.

Each server-level test brings its own attacker (a few raw sockets, like Bitcoin Core's P2PInterface) against a
real `miner.py` node on loopback and asserts on what an honest client still gets. A client's identity is its
connection's IP address, so attackers bind their sockets to their own 127.x.y.z source addresses first.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from simplecoin.core.params import REGTEST
from simplecoin.web.app import MAX_BODY_BYTES
from tests.framework.nodes import running_node, wait_until

SLOWLORIS_SOCKETS = 200
HONEST_DEADLINE = 1.0  # seconds an honest client may wait for /status while the attack runs


# -- the attacker -------------------------------------------------------------------------------------------------


def attacker_address(i: int) -> str:
    """A loopback source address of its own for attacker socket i (127.0.0.1 stays the honest client's)."""
    return f"127.{1 + i // 60000}.{i // 250 % 240 + 1}.{i % 250 + 1}"


def open_socket(port: int, source: str, timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


class Slowloris:
    """Opens `count` sockets, sends the start of a request on each, then trickles one header byte per socket.

    The server never sees a whole request, so under waitress' defaults (100 connections, a 120 s inactivity
    timeout that each byte resets) the sockets hold every connection slot for as long as the attacker likes.
    """

    def __init__(self, port: int, count: int, sources: list[str]) -> None:
        self.port, self.count, self.sources = port, count, sources
        self.sockets: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def start(self) -> Slowloris:
        for i in range(self.count):
            with contextlib.suppress(OSError):  # a refused or reset connect is the server defending itself
                s = open_socket(self.port, self.sources[i % len(self.sources)])
                s.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                self.sockets.append(s)
        self.thread.start()
        return self

    def _trickle(self) -> None:
        while not self.stopping.wait(0.2):
            for s in list(self.sockets):
                try:
                    s.send(b"a")
                except OSError:  # closed by the server; a real attacker would reconnect, see reconnects()
                    self.sockets.remove(s)
                    s.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for s in self.sockets:
            s.close()


def honest_status_seconds(url: str) -> float:
    """Seconds a fresh client from 127.0.0.1 needs for GET /status (it must succeed)."""
    started = time.monotonic()
    response = requests.get(url + "/status", timeout=HONEST_DEADLINE, headers={"Connection": "close"})
    assert response.status_code == 200
    return time.monotonic() - started


def raw_exchange(port: int, data: bytes, timeout: float) -> bytes:
    """Send `data` from 127.0.0.1 and read until the server closes or `timeout` passes."""
    with open_socket(port, "127.0.0.1", timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


# -- a real node under attack ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator:
    with running_node(tmp_path_factory.mktemp("limits") / "a") as a:
        yield a


def test_slowloris_does_not_stop_an_honest_client(node):
    """Bitcoin Core: p2p_eviction — a new honest connection still gets in when attackers fill every slot."""
    port = node.port
    attack = Slowloris(port, SLOWLORIS_SOCKETS, [attacker_address(i) for i in range(SLOWLORIS_SOCKETS)]).start()
    try:
        seconds = [honest_status_seconds(node.url) for _ in range(5)]
        assert max(seconds) < HONEST_DEADLINE
    finally:
        attack.stop()


def test_slowloris_from_one_address_is_capped(node):
    """Sockets from one IP beyond the per-IP cap are closed at once; other addresses are not affected."""
    attack = Slowloris(node.port, 60, ["127.0.9.9"]).start()
    try:
        assert wait_until(lambda: len(attack.sockets) <= 32, timeout=5, what="sockets over the per-IP cap closed")
        assert honest_status_seconds(node.url) < HONEST_DEADLINE
    finally:
        attack.stop()


def test_oversized_content_length_refused_before_the_body(node):
    """Only headers are sent, announcing 64 MiB: the 413 must come at once, so the body was never awaited."""
    started = time.monotonic()
    raw = raw_exchange(
        node.port,
        b"POST /tx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {64 * 1024 * 1024}\r\n\r\n".encode(),
        timeout=3.0,
    )
    assert time.monotonic() - started < 2.0, "the server waited for the body"
    status, body = status_and_json(raw)
    assert (status, body["reason"]) == (413, "body-too-large")


def test_body_at_the_limit_is_still_read(node):
    """A body of exactly MAX_BODY_BYTES reaches the app (and is refused there as bad JSON, not as too large)."""
    response = requests.post(
        node.url + "/tx", data=b"x" * MAX_BODY_BYTES, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert (response.status_code, response.json()["reason"]) == (400, "bad-json")


def test_oversized_headers_refused(node):
    raw = raw_exchange(node.port, b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 3.0)
    status, body = status_and_json(raw)
    assert (status, body["reason"]) == (431, "headers-too-large")


def test_duplicate_hashes_refused_on_a_real_node(node):
    """GET /p2p/blocks with one hash 16 times was 16x amplification; now it is refused."""
    genesis = REGTEST.genesis_hash_hex
    response = node.get("/p2p/blocks", params={"hashes": ",".join([genesis] * 16)})
    assert (response.status_code, response.json()["reason"]) == (400, "duplicate-hash")
    assert node.get("/p2p/blocks", params={"hashes": genesis}).status_code == 200
