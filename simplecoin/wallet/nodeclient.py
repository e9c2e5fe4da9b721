"""The wallet's connection to nodes: the first reachable one answers queries; payments go to all.

Every answer is read with a size cap and a deadline (`httpjson.read_json_object`); one that did not arrive whole
means "try the next node", one that arrived but is not a JSON object means the node is not to be trusted.
"""

from __future__ import annotations

import time

import requests

from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.hashing import hash_from_hex
from simplecoin.core.spv import SpvError
from simplecoin.httpjson import BadAnswer, BrokenAnswer, SlowAnswer, TooLargeAnswer, read_json_object

TIMEOUT = (3.0, 15.0)  # connect, and each read of the socket
ANSWER_SECONDS = 30.0  # a whole answer: a node trickling one byte every few seconds is a stalled node
MAX_RESPONSE_BYTES = 10_000_000


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

    def _request(self, method: str, url: str, **kwargs) -> dict:
        """One node's JSON answer. _Unreachable if it did not come whole; SpvError if it is not JSON;
        NodeError (with the node's reason) for a 4xx/5xx."""
        deadline = time.monotonic() + ANSWER_SECONDS
        try:
            with self.session.request(method, url, timeout=TIMEOUT, stream=True, **kwargs) as response:
                try:
                    data = read_json_object(response, MAX_RESPONSE_BYTES, deadline)
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

    def get(self, path: str, params: dict | None = None) -> dict:
        errors = []
        for base in self.urls:
            try:
                data = self._request("GET", base + path, params=params)
                self.answered_by = base
                return data
            except _Unreachable as e:
                errors.append(f"{base}: {e}")
        raise NodeError("no node could be reached (" + "; ".join(errors) + ")", "unreachable")

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
