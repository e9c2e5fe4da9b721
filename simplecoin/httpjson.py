"""Reading a JSON answer from another node with a size cap: shared by the peer client and the wallet."""

from __future__ import annotations

import json

import requests


class BadAnswer(Exception):
    """Raised when an answer is too large, not JSON, or not a JSON object."""


def read_json_object(response: requests.Response, max_bytes: int) -> dict:
    """The answer's JSON object, read from a streamed response without holding more than `max_bytes`."""
    body = response.raw.read(max_bytes + 1, decode_content=True)
    if len(body) > max_bytes:
        raise BadAnswer(f"answered more than {max_bytes} bytes")
    try:
        data = json.loads(body)
    except ValueError as e:
        raise BadAnswer(f"answered {response.status_code} with something that is not JSON") from e
    if not isinstance(data, dict):
        raise BadAnswer("answered JSON that is not an object")
    return data
