"""The wallet's connection to nodes: the first reachable one answers queries; payments go to all.

Every answer is read with a size cap and a deadline (`httpjson.read_json_object`); one that did not arrive whole
means "try the next node", one that arrived but is not a JSON object means the node is not to be trusted.
"""

from __future__ import annotations

import time

import requests

from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.params import MAX_HEADERS_BINARY_RESULTS, MAX_HEADERS_RESULTS
from simplecoin.core.primitives import HEADER_SIZE
from simplecoin.core.spv import SpvError
from simplecoin.httpjson import BadAnswer, BrokenAnswer, SlowAnswer, TooLargeAnswer, parse_json_object, read_body

TIMEOUT = (3.0, 15.0)  # connect, and each read of the socket
ANSWER_SECONDS = 30.0  # a whole answer: a node trickling one byte every few seconds is a stalled node
MAX_RESPONSE_BYTES = 10_000_000
BINARY = "application/octet-stream"


class NodeError(SimpleCoinError):
    """Raised when no node answers, or a node refuses a request (`reason` is the node's reject reason)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class _Unreachable(Exception):
    """Raised when one node's answer did not arrive whole (refused, reset, truncated, stalled): try the next."""


class NodeClient:
    """Talks to one or more nodes: the first reachable one answers queries; payments go to all."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.session = requests.Session()
        self.answered_by = ""

    def _request(self, method: str, url: str, binary: bool = False, **kwargs) -> dict | bytes:
        """One node's answer: JSON, or with `binary` the bytes of a 200 answer the node sends as BINARY (a node
        that does not know the binary form answers JSON). _Unreachable if it did not come whole; SpvError if it
        is not JSON; NodeError (with the node's reason) for a 4xx/5xx."""
        deadline = time.monotonic() + ANSWER_SECONDS
        try:
            with self.session.request(method, url, timeout=TIMEOUT, stream=True, **kwargs) as response:
                try:
                    body = read_body(response, MAX_RESPONSE_BYTES, deadline)
                    if binary and response.status_code == 200 and response.headers.get("Content-Type") == BINARY:
                        return body
                    data = parse_json_object(body, response.status_code)
                except SlowAnswer as e:
                    raise _Unreachable(f"answer took more than {ANSWER_SECONDS:.0f} s") from e
                except BrokenAnswer as e:
                    raise _Unreachable(str(e)) from e
                except TooLargeAnswer as e:
                    # Not a lie: a node that answers a whole address at once (no paging) sends 14 MB for 112,000
                    # coins. Say what happened rather than blame the node.
                    raise NodeError(
                        f"{url} answered more than {MAX_RESPONSE_BYTES:,} bytes, more than the wallet reads of one "
                        "answer (a node without paged /address answers sends every coin of a busy address at once)",
                        "too-large",
                    ) from e
                except BadAnswer as e:
                    raise SpvError(f"{url} is not trustworthy: it {e}") from e
                if response.status_code >= 400:
                    raise NodeError(str(data.get("error", response.status_code)), str(data.get("reason", "")))
                return data
        except requests.RequestException as e:
            raise _Unreachable(type(e).__name__) from e

    def fetch(self, path: str, params: dict | None = None, binary: bool = False) -> dict | bytes:
        """The first reachable node's answer (bytes only if `binary` and the node sent them)."""
        errors = []
        for base in self.urls:
            try:
                data = self._request("GET", base + path, binary, params=params)
                self.answered_by = base
                return data
            except _Unreachable as e:
                errors.append(f"{base}: {e}")
        raise NodeError("no node could be reached (" + "; ".join(errors) + ")", "unreachable")

    def get(self, path: str, params: dict | None = None) -> dict:
        data = self.fetch(path, params)
        assert isinstance(data, dict), "only a binary request is answered in bytes"
        return data

    def headers(self, locator: list[bytes]) -> bytes:
        """The active-chain headers after `locator`, 80 bytes each, oldest first: the binary answer of up to
        MAX_HEADERS_BINARY_RESULTS, or an old node's JSON one of up to MAX_HEADERS_RESULTS. SpvError if it is
        not whole headers within those caps (the headers themselves are checked by the caller)."""
        params = {"locator": ",".join(hash_hex(h) for h in locator), "format": "binary"}
        answer = self.fetch("/headers", params, binary=True)
        if isinstance(answer, bytes):
            if len(answer) % HEADER_SIZE or len(answer) > MAX_HEADERS_BINARY_RESULTS * HEADER_SIZE:
                raise SpvError(
                    f"{self.answered_by} answered /headers with {len(answer)} bytes, not whole headers "
                    f"(at most {MAX_HEADERS_BINARY_RESULTS})"
                )
            return answer
        listed = answer.get("headers")
        if not isinstance(listed, list) or len(listed) > MAX_HEADERS_RESULTS:
            raise SpvError(f"{self.answered_by} answered /headers without a header list")
        try:
            raw = b"".join(bytes.fromhex(h) for h in listed)
        except (ValueError, TypeError) as e:
            raise SpvError(f"{self.answered_by} sent undecodable headers") from e
        if len(raw) != len(listed) * HEADER_SIZE:
            raise SpvError(f"{self.answered_by} sent undecodable headers")
        return raw

    def send_tx(self, raw: bytes) -> list[tuple[str, str]]:
        """POST the tx to every node; (url, "" or the error) per node. NodeError if none accepted it."""
        results = []
        for base in self.urls:
            try:
                self._request("POST", base + "/tx", json={"hex": raw.hex()})
                results.append((base, ""))
            except _Unreachable as e:
                results.append((base, f"unreachable ({e})"))
            except NodeError as e:
                results.append((base, f"{e.reason}: {e}" if e.reason else str(e)))
            except SpvError as e:
                results.append((base, f"untrustworthy: {e}"))
        if not any(error == "" for _, error in results):
            first = next((r for r in results if not r[1].startswith("unreachable")), None)
            if first is None:
                raise NodeError("no node could be reached (" + "; ".join(e for _, e in results) + ")", "unreachable")
            raise NodeError(f"the node refused the payment: {first[1]}", first[1].split(":")[0])
        return results


def parse_txid(txid_hex: object) -> bytes | None:
    """A txid as shown to people (64 hex digits) in internal byte order; None if it is not one."""
    if not isinstance(txid_hex, str) or len(txid_hex) != 64:
        return None
    try:
        txid = hash_from_hex(txid_hex)
    except ValueError:
        return None
    return txid if len(txid) == 32 else None  # fromhex() skips spaces
