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
from simplecoin.node.service import NodeService
from simplecoin.server import MAX_CONNECTIONS_PER_IP, MAX_HEADER_BYTES
from simplecoin.web.app import MAX_BODY_BYTES, create_app
from simplecoin.web.limits import ConnectionRules, UploadBudget, create_guarded_server
from tests.framework.builder import ChainBuilder
from tests.framework.nodes import free_port, running_node, wait_until

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

    def __init__(self, port: int, count: int, sources: list[str], reconnect: bool = False) -> None:
        self.port, self.count, self.sources, self.reconnect = port, count, sources, reconnect
        self.reconnects = 0
        self.sources_of: dict[socket.socket, str] = {}  # each open socket and the address it is bound to
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def start(self) -> Slowloris:
        for i in range(self.count):
            self._open(self.sources[i % len(self.sources)])
        self.thread.start()
        return self

    def _open(self, source: str) -> None:
        with contextlib.suppress(OSError):  # a refused or reset connect is the server defending itself
            s = open_socket(self.port, source)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            self.sources_of[s] = source

    def _trickle(self) -> None:
        while not self.stopping.wait(0.2):
            for s, source in list(self.sources_of.items()):
                try:
                    s.send(b"a")
                except OSError:  # closed by the server (the first send after its FIN draws an RST)
                    del self.sources_of[s]
                    s.close()
                    if self.reconnect:
                        self.reconnects += 1
                        self._open(source)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for s in self.sources_of:
            s.close()

    @property
    def open_sockets(self) -> int:
        return len(self.sources_of)


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
def real_node(tmp_path_factory) -> Iterator:
    with running_node(tmp_path_factory.mktemp("limits") / "a") as a:
        yield a


def test_slowloris_does_not_stop_an_honest_client(real_node):
    """Bitcoin Core: p2p_eviction — a new honest connection still gets in when attackers fill every slot."""
    sources = [attacker_address(i) for i in range(SLOWLORIS_SOCKETS)]
    attack = Slowloris(real_node.port, SLOWLORIS_SOCKETS, sources, reconnect=True).start()
    try:
        assert attack.open_sockets == SLOWLORIS_SOCKETS  # every connect got through (the backlog takes them)
        seconds = []
        deadline = time.monotonic() + 3.0  # while the attacker trickles, and reconnects whatever is evicted
        while time.monotonic() < deadline:
            seconds.append(honest_status_seconds(real_node.url))
            time.sleep(0.1)  # pacing the honest client, not waiting for a condition
        assert attack.reconnects > 0, "the server never had to evict: the attack did not fill it"
        assert max(seconds) < HONEST_DEADLINE, seconds
    finally:
        attack.stop()


def test_slowloris_from_one_address_is_capped(real_node):
    """Sockets from one IP beyond the per-IP cap are closed at once; other addresses are not affected."""
    attack = Slowloris(real_node.port, 2 * MAX_CONNECTIONS_PER_IP, ["127.0.9.9"]).start()
    try:
        over_cap_closed = lambda: attack.open_sockets <= MAX_CONNECTIONS_PER_IP  # noqa: E731
        wait_until(over_cap_closed, timeout=5, what="the sockets over the per-IP cap to be closed")
        assert honest_status_seconds(real_node.url) < HONEST_DEADLINE
    finally:
        attack.stop()


def test_oversized_content_length_refused_before_the_body(real_node):
    """Only headers are sent, announcing 64 MiB: the 413 must come at once, so the body was never awaited."""
    started = time.monotonic()
    raw = raw_exchange(
        real_node.port,
        b"POST /tx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {64 * 1024 * 1024}\r\n\r\n".encode(),
        timeout=3.0,
    )
    assert time.monotonic() - started < 2.0, "the server waited for the body"
    status, body = status_and_json(raw)
    assert (status, body["reason"]) == (413, "body-too-large")


def test_body_at_the_limit_is_still_read(real_node):
    """A body of exactly MAX_BODY_BYTES reaches the app (and is refused there as bad JSON, not as too large)."""
    response = requests.post(
        real_node.url + "/tx", data=b"x" * MAX_BODY_BYTES, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert (response.status_code, response.json()["reason"]) == (400, "bad-json")


def test_oversized_headers_refused(real_node):
    """Headers past MAX_HEADER_BYTES are refused without waiting for their end (which never comes here)."""
    start = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: "
    # Exactly the limit: the server reads it all before answering, so closing leaves no unread bytes (an RST).
    raw = raw_exchange(real_node.port, start + b"a" * (MAX_HEADER_BYTES - len(start)), 3.0)
    status, body = status_and_json(raw)
    assert (status, body["reason"]) == (431, "headers-too-large")


def test_duplicate_hashes_refused_on_a_real_node(real_node):
    """GET /p2p/blocks with one hash 16 times was 16x amplification; now it is refused."""
    genesis = REGTEST.genesis_hash_hex
    response = real_node.get("/p2p/blocks", params={"hashes": ",".join([genesis] * 16)})
    assert (response.status_code, response.json()["reason"]) == (400, "duplicate-hash")
    assert real_node.get("/p2p/blocks", params={"hashes": genesis}).status_code == 200


# -- the request deadline, on an in-process server with a short one -------------------------------------------------


@contextlib.contextmanager
def guarded_server(app, rules: ConnectionRules) -> Iterator:
    """A GuardedServer on a free loopback port, run by a thread; closed (with its worker threads) at the end."""
    server = create_guarded_server(app, rules=rules, host="127.0.0.1", port=free_port(), threads=2, cleanup_interval=1)
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server, int(server.effective_port)
    finally:
        stopping.set()
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()
        server.asyncore.close_all(server._map)


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def test_request_deadline_closes_a_trickling_client():
    """Each byte resets waitress' inactivity timer; the deadline from the request's first byte does not reset."""
    with guarded_server(hello_app, ConnectionRules(10, 10, request_seconds=1.0)) as (server, port):
        attack = Slowloris(port, 3, ["127.0.0.1"]).start()
        try:
            started = time.monotonic()
            wait_until(lambda: attack.open_sockets == 0, timeout=6, what="the trickling sockets to be closed")
            assert time.monotonic() - started < 4.0
            assert server.expired == 3
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=2).text == "hello"
        finally:
            attack.stop()


def test_full_server_evicts_the_address_with_most_connections():
    """Bitcoin Core: AttemptToEvictConnection. Full, a newcomer gets in and the crowded address loses a socket."""
    with guarded_server(hello_app, ConnectionRules(6, 4, request_seconds=30.0)) as (server, port):
        crowd = Slowloris(port, 4, ["127.0.5.1"]).start()  # holds 4 of 6 slots
        pair = Slowloris(port, 2, ["127.0.5.2", "127.0.5.3"]).start()
        try:
            wait_until(lambda: len(server.active_channels) == 6, timeout=5, what="the server to be full")
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=2).text == "hello"
            wait_until(lambda: crowd.open_sockets == 3, timeout=5, what="one of the crowd's sockets evicted")
            assert pair.open_sockets == 2
            assert server.evicted == 1
        finally:
            crowd.stop()
            pair.stop()


# -- /p2p/blocks: duplicates and the per-peer upload budget (Flask test client, a clock we move) ---------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def block_hashes(builder: ChainBuilder, names: list[str]) -> str:
    return ",".join(builder[name].header.hash_hex() for name in names)


def test_duplicate_hashes_refused(funded):
    node, builder = funded
    client = create_app(NodeService(node)).test_client()
    response = client.get(f"/p2p/blocks?hashes={block_hashes(builder, ['m1', 'm2', 'm1'])}")
    assert (response.status_code, response.get_json()["reason"]) == (400, "duplicate-hash")
    assert client.get(f"/p2p/blocks?hashes={block_hashes(builder, ['m1', 'm2'])}").status_code == 200


def test_upload_budget_per_peer(funded):
    """Bitcoin: -maxuploadtarget, per IP. Past its budget a client gets 429; another IP is still served."""
    node, builder = funded
    block_hex = len(builder["m1"].serialize().hex())
    clock = Clock()
    app = create_app(NodeService(node), upload_budget=UploadBudget(3 * block_hex, 60.0), clock=clock)
    greedy = app.test_client()
    greedy.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "127.0.0.3"
    one = f"/p2p/blocks?hashes={block_hashes(builder, ['m1'])}"

    served = 0
    while (response := greedy.get(one)).status_code == 200:
        served += 1
        assert served <= 3
    assert served == 3
    assert (response.status_code, response.get_json()["reason"]) == (429, "upload-limit")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert other.get(one).status_code == 200  # others are unaffected

    clock.now += int(response.headers["Retry-After"])  # the bucket refills with time
    assert greedy.get(one).status_code == 200
    assert greedy.get(one).status_code == 429


def test_upload_budget_table_is_bounded():
    """The table holds at most max_peers IPs; past it the least recently seen is forgotten (its budget refills)."""
    budget = UploadBudget(1000, 60.0, max_peers=3)
    for i in range(5):
        budget.charge(f"10.0.0.{i}", 1000, now=0.0)
    assert list(budget.buckets) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert budget.retry_after("10.0.0.4", now=0.0) is not None
    assert budget.retry_after("10.0.0.0", now=0.0) is None  # forgotten: a fresh budget
    assert len(budget.buckets) == 3


# -- internal-error: a bug in a handler is a JSON 500, logged with its traceback ----------------------------------


class BrokenService:
    """A NodeService stand-in whose every read fails the way a bug would."""

    params = REGTEST

    def __getattr__(self, name: str):
        def broken(*args, **kwargs):
            raise RuntimeError(f"bug in {name}")

        return broken


@pytest.mark.parametrize("path", ["/blocks", "/status", "/block/1", "/p2p/blocks?hashes=" + REGTEST.genesis_hash_hex])
def test_a_handler_bug_is_internal_error(path, caplog):
    client = create_app(BrokenService()).test_client()  # type: ignore[arg-type]
    with caplog.at_level("ERROR"):
        response = client.get(path)
    assert response.status_code == 500
    assert response.get_json()["reason"] == "internal-error"
    assert set(response.get_json()) == {"error", "reason"}
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records), "no traceback logged"


def test_bad_input_is_still_not_a_500(funded):
    node, _ = funded
    client = create_app(NodeService(node)).test_client()
    for path in ["/block/xyz", "/p2p/blocks?hashes=zz", "/blocks?limit=-1", "/nowhere"]:
        assert 400 <= client.get(path).status_code < 500
