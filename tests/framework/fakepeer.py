"""A fake peer for p2p tests (Bitcoin Core's P2PInterface): an HTTP server on its own 127.x address whose answer to
each path is a function the test chooses, and a client that sends from a chosen 127.x address.

    with FakePeer("127.66.0.1", {"/p2p/hello": truncated}) as fake:
        ...fake.requests...

Stopped by the test that started it (shutdown, then the thread is joined).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block

# An answer: (handler, path, query) -> None; it writes whatever it likes (or nothing) to handler.wfile.
Answer = Callable[[BaseHTTPRequestHandler, str, str], None]


def reply(handler: BaseHTTPRequestHandler, data: dict, status: int = 200) -> None:
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def hello_answer(height: int = 0, chain_work: int = 2, tip: str = REGTEST.genesis_hash_hex) -> Answer:
    def answer(handler, path, query):
        reply(
            handler,
            {
                "network": REGTEST.name,
                "genesis": REGTEST.genesis_hash_hex,
                "height": height,
                "tip": tip,
                "chain_work": str(chain_work),
            },
        )

    return answer


def chain_answers(chain: list[Block], chain_work: int) -> dict[str, Answer]:
    """A peer serving a fixed chain (genesis excluded): a hello claiming `chain_work`, headers after the first
    locator hash it knows (all of them if none), blocks by hash, and an empty address list."""
    hashes = [block.header.hash_hex() for block in chain]

    def hello(handler, path, query):
        tip = hashes[-1] if hashes else REGTEST.genesis_hash_hex
        hello_answer(height=len(chain), chain_work=chain_work, tip=tip)(handler, path, query)

    def headers(handler, path, query):
        start = 0
        for known in parse_qs(query).get("locator", [""])[0].split(","):
            if known in hashes:
                start = hashes.index(known) + 1
                break
        reply(handler, {"headers": [block.header.serialize().hex() for block in chain[start:]]})

    def blocks(handler, path, query):
        wanted = set(parse_qs(query).get("hashes", [""])[0].split(","))
        reply(handler, {"blocks": [b.serialize().hex() for b, h in zip(chain, hashes, strict=True) if h in wanted]})

    return {
        "POST /p2p/hello": hello,
        "POST /p2p/inv": lambda handler, path, query: reply(handler, {"want": {"blocks": [], "txs": []}}),
        "/headers": headers,
        "/p2p/blocks": blocks,
        "/peers": lambda handler, path, query: reply(handler, {"peers": []}),
    }


def truncated(handler: BaseHTTPRequestHandler, path: str, query: str) -> None:
    """Promise 1,000 bytes, send 10 and hang up (urllib3's ProtocolError at the reader)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"network"')
    handler.wfile.flush()
    handler.close_connection = True


def stalled(seconds: float, until: threading.Event | None = None) -> Answer:
    """Headers and a few bytes, then silence for `seconds`, or until `until` is set (urllib3's ReadTimeoutError
    at the reader)."""

    def answer(handler, path, query):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"a"')
        handler.wfile.flush()
        if until is None:
            time.sleep(seconds)
        else:
            until.wait(timeout=seconds)
        handler.close_connection = True

    return answer


def slow(seconds: float, then: Answer) -> Answer:
    def answer(handler, path, query):
        time.sleep(seconds)
        then(handler, path, query)

    return answer


class FakePeer:
    """An HTTP 'node' on `host`, answering each path with the test's function; 404 JSON for any other path."""

    def __init__(self, host: str, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, str]] = []  # (method, path, client IP)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                if method == "POST":
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                fake.requests.append((method, parts.path, self.client_address[0]))
                answer = fake.answers.get(f"{method} {parts.path}") or fake.answers.get(parts.path)
                if answer is None:
                    reply(self, {"error": "no such endpoint", "reason": "not-found"}, 404)
                else:
                    try:
                        answer(self, parts.path, parts.query)
                    except (BrokenPipeError, ConnectionResetError):  # the node gave up on a slow answer: expected
                        self.close_connection = True

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.address = f"{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"fake-peer {host}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))

    def __enter__(self) -> FakePeer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def call(
    target: str,
    method: str,
    path: str,
    body: dict | None = None,
    source: str = "127.0.0.1",
    headers: dict | None = None,
) -> tuple[int, dict]:
    """One request from the loopback address `source` to `target` (host:port); (status, JSON answer)."""
    host, port = target.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        with contextlib.suppress(ValueError):
            return response.status, json.loads(raw)
        return response.status, {}
    finally:
        conn.close()


@contextlib.contextmanager
def counting_server(host: str) -> Iterator[FakePeer]:
    """A third party that only counts who calls it (for SSRF tests)."""
    with FakePeer(host, {}) as server:
        yield server
