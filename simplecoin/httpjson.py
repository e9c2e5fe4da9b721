"""Reading a JSON answer from another node with a size cap and a deadline: shared by the peer client and the wallet."""

from __future__ import annotations

import json
import time

import requests
import urllib3.exceptions

CHUNK_BYTES = 65_536


class BadAnswer(Exception):
    """Raised when an answer is too large, not JSON, or not a JSON object (or did not arrive whole: below)."""


class BrokenAnswer(BadAnswer):
    """Raised when an answer did not arrive whole: cut off, reset, or broken by the network."""


class TooLargeAnswer(BadAnswer):
    """Raised when an answer is longer than the reader's cap."""


class SlowAnswer(BrokenAnswer):
    """Raised when an answer is still arriving at its deadline."""


def read_json_object(response: requests.Response, max_bytes: int, deadline: float | None = None) -> dict:
    """The answer's JSON object, read from a streamed response without holding more than `max_bytes` (see
    `read_body`)."""
    return parse_json_object(read_body(response, max_bytes, deadline), response.status_code)


def read_body(response: requests.Response, max_bytes: int, deadline: float | None = None) -> bytes:
    """The answer's body, read from a streamed response without holding more than `max_bytes`.

    `deadline` (time.monotonic()) bounds the whole body: the read timeout alone restarts with every byte, so a
    peer trickling its answer could hold the reader forever. Reading `response.raw` raises urllib3's own errors
    (ProtocolError for a truncated body, ReadTimeoutError for a stalled one), which are not
    requests.RequestException: every one of them is a BrokenAnswer here, so no caller's thread dies of one.
    """
    chunks, total = [], 0
    try:
        while total <= max_bytes:
            if deadline is not None and time.monotonic() > deadline:
                raise SlowAnswer("took too long to answer")
            # read1: one recv at most, so the deadline is looked at between every piece a trickler sends
            chunk = response.raw.read1(min(CHUNK_BYTES, max_bytes + 1 - total), decode_content=True)
            if not chunk:
                if response.raw.length_remaining:  # the connection ended before the promised length
                    raise BrokenAnswer(f"answer cut off after {total} bytes")
                break
            chunks.append(chunk)
            total += len(chunk)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as e:
        raise BrokenAnswer(f"answer broke off: {type(e).__name__}") from e
    if total > max_bytes:
        raise TooLargeAnswer(f"answered more than {max_bytes} bytes")
    return b"".join(chunks)


def parse_json_object(body: bytes, status_code: int) -> dict:
    """An answer's body as a JSON object; BadAnswer if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise BadAnswer(f"answered {status_code} with something that is not JSON") from e
    if not isinstance(data, dict):
        raise BadAnswer("answered JSON that is not an object")
    return data
