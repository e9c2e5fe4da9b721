"""Fuzz the HTTP API of a real mining regtest node with requests generated from docs/openapi.yaml.

One `miner.py` process serves the whole module. Every operation in the spec gets a few hundred requests built
from its parameters and request body: values that fit the schema (real hashes, txids and addresses of the
node's chain among them), values that do not (wrong types, huge and negative numbers, unicode, empty
strings), random bytes as bodies, wrong content types and random HTTP methods. Signed and mangled
transactions and blocks go to the POST endpoints. The rules checked on every answer:

- never a 5xx;
- every 4xx (but HEAD's, which has no body) is JSON with a string "error" and a string "reason";
- every 2xx to a GET or POST is JSON, but GET /metrics's (Prometheus's text format, parsed) and a binary
  GET /headers's (whole 80-byte headers);
- but a GET of an explorer page (`/`, `/explorer/...`) is HTML, whatever its status.

Afterwards the node must still answer /status and still mine.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.primitives import NULL_HASH, Block, BlockHeader, OutPoint, Transaction, TxIn, TxOut
from simplecoin.wallet.keyfile import WalletFile
from tests.framework.builder import BOB, sign_all
from tests.framework.nodes import running_node, wait_until

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
TIMEOUT = (3.0, 15.0)
EXAMPLES_PER_OPERATION = 230
COUNTS: Counter[str] = Counter()  # requests sent, per test
STATUSES: Counter[int] = Counter()
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "application/problem+json",
    None,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,  # the node's chain differs every run: replaying old examples means nothing
    derandomize=True,  # the same draws every run, so a failure in CI is a failure on every machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# -- the spec --------------------------------------------------------------------------------------------------


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


SPEC = load_spec()


def resolve(node):
    """Follow `$ref`s (one level at a time) inside the spec."""
    while isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str
    params: tuple[dict, ...]
    body: dict | None  # the JSON schema of the request body

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations() -> list[Operation]:
    found = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            params = tuple(resolve(p) for p in op.get("parameters", []))
            body = op.get("requestBody")
            schema = resolve(resolve(body)["content"]["application/json"]["schema"]) if body else None
            found.append(Operation(method.upper(), path, params, schema))
    return found


OPERATIONS = operations()


# -- the node --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """The running node and what the fuzzer knows of its chain."""

    url: str
    session: requests.Session
    hashes: list[str]  # block hashes (display hex)
    txids: list[str]
    addresses: list[str]
    coinbases: list[OutPoint]
    wallet_key: object

    def send(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, self.url + path, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        STATUSES[response.status_code] += 1
        check(method, path, response)
        return response


def check(method: str, path: str, response: requests.Response) -> None:
    where = f"{method} {path[:200]!r} -> {response.status_code}: {response.text[:300]!r}"
    assert response.status_code < 500, where
    if method == "HEAD":
        return
    # The path as sent: the client resolves dot segments ("/block/.." is "/"), the router merges slashes.
    page = re.sub("/+", "/", urlsplit(response.request.url).path)
    if method == "GET" and (page == "/" or page.startswith("/explorer/")):  # the explorer's pages answer in HTML
        assert response.headers.get("Content-Type", "").startswith("text/html"), where
        return
    if 400 <= response.status_code < 500:
        assert response.headers.get("Content-Type", "").startswith("application/json"), where
        body = response.json()
        assert isinstance(body, dict), where
        assert isinstance(body.get("error"), str), where
        assert body["error"], where
        assert isinstance(body.get("reason"), str), where
        assert body["reason"], where
    elif 200 <= response.status_code < 300 and method == "GET" and page == "/metrics":  # Prometheus's text format
        assert any(f.name == "simplecoin_height" for f in text_string_to_metric_families(response.text)), where
    elif 200 <= response.status_code < 300 and response.headers.get("Content-Type") == "application/octet-stream":
        assert page == "/headers", where  # the one binary answer: GET /headers?format=binary, whole 80-byte headers
        assert len(response.content) % 80 == 0, where
    elif 200 <= response.status_code < 300 and method in ("GET", "POST"):
        assert isinstance(response.json(), dict), where


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    with running_node(tmp_path_factory.mktemp("fuzz-node"), mine=True, pause=0.2) as node:
        wait_until(lambda: node.status()["height"] >= 12, timeout=60, what="12 blocks")
        session = requests.Session()
        hashes, txids, addresses, coinbases = [REGTEST.genesis_hash_hex], [], [], []
        for height in range(1, 12):
            block = session.get(f"{node.url}/block/{height}", timeout=TIMEOUT).json()
            hashes.append(block["hash"])
            for tx in block["txs"]:
                txids.append(tx["txid"])
                addresses += [o["address"] for o in tx["outputs"]]
            coinbases.append(OutPoint(hash_from_hex(block["txs"][0]["txid"]), 0))
        wallet = WalletFile.load(node.data_dir / "wallet.json", REGTEST)
        yield Target(node.url, session, hashes, txids, sorted(set(addresses)), coinbases, wallet.keys[0].key)
        session.close()
        print(f"\nfuzz requests per test: {dict(COUNTS)}; total {sum(COUNTS.values())}; statuses {dict(STATUSES)}")


# -- strategies ------------------------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
SPECIAL = st.sampled_from(
    [
        "",
        " ",
        "-1",
        "0",
        "00",
        "+1",
        "1.5",
        "1e9",
        "0x10",
        "²",
        "١٢",
        "１",
        "Ⅻ",
        "9" * 12,
        "9" * 5000,
        "-" + "9" * 40,
        "null",
        "NaN",
        "%",
        "%00",
        "%ff",
        "\x00",
        "..",
        "a,b",
        ",,,",
        "💥" * 10,
        "http://[::1",
        "ftp://x",
        "http://",
    ]
)
DIGITISH = st.one_of(
    # str.isdigit() accepts all of these; int() refuses the superscripts and circled digits
    st.text(alphabet="0123456789²³¹⁰①④٣۵१", min_size=1, max_size=12),
    st.integers(4_301, 6_000).map(lambda n: "9" * n),  # more digits than int() converts
)
URLISH = st.builds(
    str.__add__,
    st.sampled_from(["http://", "https://", "ftp://", "http:", ""]),
    st.one_of(
        st.integers(1, 19).map(lambda p: f"127.0.0.1:{p}"),
        st.sampled_from(["[::1", "[", "]x", "[::1]:5", "127.0.0.1:99999", "h:p", ""]),
        TEXT,
    ),
)
JUNK_STRING = st.one_of(
    TEXT,
    SPECIAL,
    DIGITISH,
    st.integers(-(10**40), 10**40).map(str),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.from_regex(r"[0-9a-fA-F]{0,130}", fullmatch=True),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), TEXT, SPECIAL
)
JSON_ANY = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=20,
)


def known_values(target: Target, name: str, schema: dict) -> st.SearchStrategy[str] | None:
    """Real values from the node's chain, for parameters the spec marks as hashes, txids or addresses."""
    pattern = schema.get("pattern", "")
    if name == "address":
        return st.sampled_from([*target.addresses, "rBga4Jp4JXPxebLAJKFo7bjKpTBmjgqXou"])
    if name == "txid":
        return st.sampled_from(target.txids)
    if name == "ref":
        return st.one_of(st.sampled_from(target.hashes), st.integers(0, 40).map(str))
    if name in ("locator", "hashes"):
        return st.lists(st.sampled_from(target.hashes), min_size=1, max_size=16).map(",".join)
    if name == "genesis" or "{64}" in pattern:
        return st.sampled_from([REGTEST.genesis_hash_hex, MAIN.genesis_hash_hex, *target.hashes])
    return None


def string_value(target: Target, name: str, schema: dict, good: bool) -> st.SearchStrategy[str]:
    schema = resolve(schema)
    kind = schema.get("type")
    if not good:
        return JUNK_STRING
    options = []
    known = known_values(target, name, schema)
    if known is not None:
        options.append(known)
    if kind == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", 10**9)
        options += [st.integers(low, high).map(str), st.integers(high + 1, 10**30).map(str)]
    elif "pattern" in schema:
        options.append(st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) < 1200))
    elif "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    elif name == "url":
        options.append(URLISH)
    else:
        options.append(TEXT)
    return st.one_of(options)


def json_value(target: Target, name: str, schema: dict) -> st.SearchStrategy:
    """A value for one body field: a fitting string, a wrong type, or any JSON at all."""
    return st.one_of(
        string_value(target, name, schema, good=True),
        string_value(target, name, schema, good=False),
        JSON_SCALARS,
        JSON_ANY,
    )


@st.composite
def body_for(draw, target: Target, schema: dict) -> dict:
    """kwargs for requests: a JSON body from the schema, other JSON, random bytes, a wrong content type."""
    kind = draw(st.sampled_from(["schema", "schema", "schema", "any-json", "bytes", "text", "empty"]))
    if kind == "schema":
        fields = {}
        for name, field in resolve(schema).get("properties", {}).items():
            if draw(st.integers(0, 9)) > 0:
                fields[name] = draw(json_value(target, name, field))
        fields.update(draw(st.dictionaries(TEXT, JSON_SCALARS, max_size=2)))
        data = json_bytes(fields)
    elif kind == "any-json":
        data = json_bytes(draw(JSON_ANY))
    elif kind == "bytes":
        data = draw(st.binary(max_size=4000))
    elif kind == "text":
        data = draw(TEXT).encode("utf-8")
    else:
        data = b""
    content_type = (
        draw(st.sampled_from(CONTENT_TYPES[:3])) if draw(st.booleans()) else draw(st.sampled_from(CONTENT_TYPES))
    )
    headers = {"Content-Type": content_type} if content_type else {}
    return {"data": data, "headers": headers}


def json_bytes(value) -> bytes:
    return json.dumps(value).encode("utf-8")


def header_value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(1, 19).map(lambda p: f"http://127.0.0.1:{p}"),
        st.from_regex(r"[!-~][ -~]{0,60}[!-~]", fullmatch=True),
    )


@st.composite
def request_for(draw, target: Target, op: Operation) -> tuple[str, str, dict]:
    """(method, path, requests kwargs) for one operation."""
    method = op.method if draw(st.integers(0, 9)) else draw(st.sampled_from(METHODS))
    path = op.path
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    for param in op.params:
        good = draw(st.integers(0, 2)) > 0
        if param["in"] == "path":
            value = draw(string_value(target, param["name"], param["schema"], good))
            path = path.replace("{" + param["name"] + "}", quote(value, safe="" if draw(st.integers(0, 9)) else "/"))
        elif param["in"] == "query" and draw(st.integers(0, 3)) > 0:
            query[param["name"]] = draw(string_value(target, param["name"], param["schema"], good))
        elif param["in"] == "header" and draw(st.booleans()):
            headers[param["name"]] = draw(header_value())
    if draw(st.integers(0, 9)) == 0:
        query.update(draw(st.dictionaries(TEXT, JUNK_STRING, max_size=3)))
    kwargs: dict = {"params": query}
    if op.body is not None or draw(st.integers(0, 9)) == 0:
        kwargs.update(draw(body_for(target, op.body or {"type": "object"})))
    kwargs.setdefault("headers", {}).update(headers)
    return method, path, kwargs


# -- structured transactions and blocks --------------------------------------------------------------------------

AMOUNTS = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, 50 * 10**8, 21_000_000 * 10**8, -1, 2**63 - 1])
)


@st.composite
def transactions(draw, target: Target) -> Transaction:
    """Mostly well-formed transactions spending the node's real coinbases, signed right or wrong."""
    prevouts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(target.coinbases),
                st.builds(OutPoint, st.binary(min_size=32, max_size=32), st.integers(0, 2**32 - 1)),
                st.just(OutPoint(NULL_HASH, 0xFFFFFFFF)),
            ),
            max_size=3,
        )
    )
    key = target.wallet_key
    inputs = tuple(
        TxIn(
            p,
            draw(st.one_of(st.just(key.pubkey), st.binary(max_size=40))),
            draw(st.binary(max_size=80)),
        )
        for p in prevouts
    )
    outputs = tuple(
        TxOut(draw(AMOUNTS), draw(st.sampled_from([BOB.pubkey_hash, key.pubkey_hash, bytes(20)])))
        for _ in range(draw(st.integers(0, 3)))
    )
    tx = Transaction(draw(st.integers(-(2**31), 2**31 - 1)), inputs, outputs, draw(st.integers(0, 2**32 - 1)))
    if inputs and draw(st.booleans()):
        tx = sign_all(tx, key, REGTEST)
    return tx


@st.composite
def blocks(draw, target: Target) -> Block:
    """Blocks on a real or random parent with coinbases and mangled transactions; rarely valid, always parseable."""
    txs = tuple(draw(st.lists(transactions(target), min_size=0, max_size=3)))
    if draw(st.booleans()):
        parent = hash_from_hex(draw(st.sampled_from(target.hashes)))
    else:
        parent = draw(st.binary(min_size=32, max_size=32))
    header = BlockHeader(
        draw(st.integers(-(2**31), 2**31 - 1)),
        parent,
        draw(st.binary(min_size=32, max_size=32)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.sampled_from([REGTEST.pow_limit_bits, draw(st.integers(0, 2**32 - 1))])),
        draw(st.integers(0, 2**32 - 1)),
    )
    block = Block(header, txs)
    if txs and draw(st.booleans()):
        block = Block(dataclasses.replace(header, merkle_root=block.compute_merkle_root()), txs)
    return block


# -- the tests -------------------------------------------------------------------------------------------------


def test_the_spec_lists_operations():
    assert len(OPERATIONS) >= 13
    assert {str(op) for op in OPERATIONS} >= {"GET /status", "POST /tx", "GET /p2p/blocks", "POST /p2p/block"}


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_fuzz_operation(target: Target, op: Operation):
    name = f"op {op}"

    @FUZZ_SETTINGS
    @given(st.data())
    def run(data):
        method, path, kwargs = data.draw(request_for(target, op))
        COUNTS[name] += 1
        target.send(method, path, **kwargs)

    run()


@settings(FUZZ_SETTINGS, max_examples=300)
@given(data=st.data())
def test_fuzz_random_paths_and_methods(target: Target, data):
    method = data.draw(st.sampled_from(METHODS))
    segments = data.draw(
        st.lists(
            st.one_of(
                st.sampled_from(
                    ["tx", "block", "blocks", "p2p", "peers", "address", "headers", "status", "merkle-proof"]
                ),
                JUNK_STRING,
            ),
            min_size=0,
            max_size=4,
        )
    )
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    COUNTS["random paths"] += 1
    target.send(method, path, **data.draw(body_for(target, {"type": "object"})))


@settings(FUZZ_SETTINGS, max_examples=300)
@given(data=st.data())
def test_fuzz_structured_transactions(target: Target, data):
    tx = data.draw(transactions(target))
    raw = tx.serialize()
    if data.draw(st.integers(0, 3)) == 0:  # flip, cut or extend the bytes
        cut = data.draw(st.integers(0, len(raw)))
        raw = raw[:cut] + data.draw(st.binary(max_size=8)) + raw[cut + data.draw(st.integers(0, 4)) :]
    COUNTS["structured txs"] += 1
    target.send("POST", "/tx", json={"hex": raw.hex()})


@settings(FUZZ_SETTINGS, max_examples=200)
@given(data=st.data())
def test_fuzz_structured_blocks(target: Target, data):
    block = data.draw(blocks(target))
    COUNTS["structured blocks"] += 1
    target.send("POST", "/p2p/block", json={"hex": block.serialize().hex()})


def test_a_valid_transaction_is_accepted_then_refused(target: Target):
    """The happy path under fuzzing: a signed spend of a mature coinbase, sent twice."""
    coinbase = target.coinbases[0]
    amount = target.session.get(f"{target.url}/tx/{hash_hex(coinbase.txid)}", timeout=TIMEOUT).json()
    amount = amount["outputs"][0]["amount"]
    tx = Transaction(1, (TxIn(coinbase, target.wallet_key.pubkey, b""),), (TxOut(amount - 10_000, BOB.pubkey_hash),))
    tx = sign_all(tx, target.wallet_key, REGTEST)
    first = target.send("POST", "/tx", json={"hex": tx.serialize().hex()})
    second = target.send("POST", "/tx", json={"hex": tx.serialize().hex()})
    COUNTS["valid tx"] += 2
    if first.status_code == 200:  # the fuzzer may have spent that coinbase already
        assert first.json()["txid"] == hash_hex(tx.txid)
    assert second.status_code == 400
    assert second.json()["reason"] in ("txn-already-in-mempool", "bad-txns-inputs-missingorspent")


def test_oversized_and_odd_bodies(target: Target):
    big = b'{"hex": "' + b"0" * 2_300_000 + b'"}'
    for path in ("/tx", "/p2p/block", "/peers", "/p2p/hello"):
        response = target.send("POST", path, data=big, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["reason"] == "body-too-large"
        deep = b"[" * 200_000 + b"]" * 200_000
        response = target.send("POST", path, data=deep, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["reason"] == "bad-json"
        COUNTS["odd bodies"] += 2


def test_the_node_still_serves_and_mines(target: Target):
    total = sum(COUNTS.values())
    if all(op_name in COUNTS for op_name in (f"op {op}" for op in OPERATIONS)):  # the whole module ran
        assert total >= 3_000, COUNTS
    status = target.session.get(target.url + "/status", timeout=TIMEOUT)
    assert status.status_code == 200
    height = status.json()["height"]
    wait_until(
        lambda: target.session.get(target.url + "/status", timeout=TIMEOUT).json()["height"] >= height + 2,
        timeout=60,
        what="two more blocks after the fuzzing",
    )
