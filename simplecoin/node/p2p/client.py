"""Outgoing calls to a peer: its fixed endpoints over HTTP, with timeouts, a deadline and size caps.

Also what goes wrong talking to a peer (`PeerError` and its kinds), and a block download kept in flight in a
thread of its own (`DownloadInThread`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from simplecoin.core.hashing import hash_from_hex
from simplecoin.httpjson import BadAnswer, read_json_object
from simplecoin.node.addrman import PeerAddress

TIMEOUT = (3.0, 10.0)  # connect, and silence between two reads (seconds)
ANSWER_SECONDS = 30.0  # a whole answer, first byte to last: a peer trickling its answer is stalling
MAX_RESPONSE_BYTES = 40_000_000  # 16 maximal blocks in hex, with room to spare
MAX_SMALL_ANSWER_BYTES = 1_000_000  # hello, inv, peers; 2,000 headers in hex are 320 kB


class PeerError(Exception):
    """Raised when a peer cannot be reached or answers something unusable."""


class Refused(PeerError):
    """Raised when a peer answered with an error status (it is up, but would not take or give something)."""


class Misbehaving(PeerError):
    """Raised when a peer sent something no honest node sends; carries the ban score it earns."""

    def __init__(self, score: int, why: str) -> None:
        super().__init__(why)
        self.score = score


class SourceAdapter(HTTPAdapter):
    """Sends from our own listening IP, so a peer sees the address it will call back (and tests on distinct
    127.x addresses exercise per-IP identity for real)."""

    def __init__(self, source_ip: str | None) -> None:
        self.source_ip = source_ip
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        if self.source_ip:
            kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


class PeerClient:
    """HTTP calls to one peer's fixed endpoints, with timeouts, a deadline and size caps; one per thread."""

    def __init__(self, own: PeerAddress, source_ip: str | None) -> None:
        self.own = own
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or .netrc from the environment
        adapter = SourceAdapter(source_ip)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _call(self, method: str, peer: PeerAddress, path: str, max_bytes: int, **kwargs) -> dict:
        url = peer.url + path  # path is one of the protocol's constants: never from a peer
        headers = {"X-SimpleCoin-Peer": str(self.own)}
        deadline = time.monotonic() + ANSWER_SECONDS
        try:
            with self.session.request(
                method, url, headers=headers, timeout=TIMEOUT, stream=True, allow_redirects=False, **kwargs
            ) as r:
                data = read_json_object(r, max_bytes, deadline)
                status = r.status_code
        except requests.RequestException as e:
            raise PeerError(f"cannot reach {peer}: {type(e).__name__}") from e
        except BadAnswer as e:
            raise PeerError(f"{peer} {path}: {e}") from e
        if status >= 300:
            raise Refused(f"{peer} {path} answered {status}: {str(data.get('reason', ''))[:40]!r}")
        return data

    def get(self, peer: PeerAddress, path: str, params: dict | str, max_bytes: int = MAX_SMALL_ANSWER_BYTES) -> dict:
        """GET `path`; `params` a dict, or a query string already encoded (no quoting of 16 x 64 hex digits)."""
        return self._call("GET", peer, path, max_bytes, params=params)

    def post(self, peer: PeerAddress, path: str, body: dict) -> dict:
        return self._call("POST", peer, path, MAX_SMALL_ANSWER_BYTES, json=body)


def parse_peer_hash(text: object) -> bytes:
    """A hash a peer wrote (64 hex digits, as people see it); PeerError if it is not one."""
    if not isinstance(text, str) or len(text) != 64:
        raise PeerError("a hash is not 64 hex digits")
    try:
        return hash_from_hex(text)
    except ValueError as e:
        raise PeerError("a hash is not hex") from e


class DownloadThread:
    """A daemon thread that runs the downloads handed to it one after another (one per connection).

    Starting a thread per batch cost the sync thread a wait for the new thread to get the interpreter lock,
    at every batch. `close` ends it after the download it is running, if any.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="peer-download", daemon=True).start()

    def put(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


class DownloadInThread:
    """A block download running in a daemon thread (its own, or a `DownloadThread`), so the next batch downloads
    while this one is checked.

    `result` waits for it and returns its value or raises its exception in the caller's thread. Neither a
    stopping node's sync thread nor the process waits for a download still in flight (it has a 30 s deadline):
    the thread is a daemon, like every peer thread.
    """

    def __init__(self, download: Callable[..., object], *args: object, thread: DownloadThread | None = None) -> None:
        self._done = threading.Event()
        self._value: object = None
        self._error: BaseException | None = None
        if thread is None:
            threading.Thread(target=self._run, args=(download, args), name="peer-download", daemon=True).start()
        else:
            thread.put(lambda: self._run(download, args))

    def _run(self, download: Callable[..., object], args: tuple) -> None:
        try:
            self._value = download(*args)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the result, raised there
            self._error = e
        finally:
            self._done.set()

    def wait(self, stop: threading.Event, timeout: float | None = None) -> bool:
        """Whether the download is done; False if `stop` is set first or `timeout` seconds pass (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.wait(timeout=0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))):
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return False
        return True

    def result(self, stop: threading.Event) -> Any:
        """The download's value (its exception is raised here); None if `stop` is set first."""
        while not self._done.wait(timeout=0.1):
            if stop.is_set():
                return None
        if self._error is not None:
            raise self._error
        return self._value
