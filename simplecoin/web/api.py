"""The JSON API: a Blueprint of endpoints over a `NodeService`. docs/api.md describes every endpoint.

Handlers refuse bad input by raising `ApiError` (or a domain error); `simplecoin.web.app` turns both into
`{"error": ..., "reason": ...}` with a 4xx status.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.core.params import (
    MAX_BLOCKS_PER_REQUEST,
    MAX_HEADERS_BINARY_RESULTS,
    MAX_HEADERS_RESULTS,
    MAX_LOCATOR_HASHES,
)
from simplecoin.core.primitives import BlockHeader, Transaction
from simplecoin.node.addrman import BadAddress, identity
from simplecoin.node.p2p.inbound import Banned, Inbound, NotLocal
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.p2p.relay import MAX_INV
from simplecoin.node.service import NodeService
from simplecoin.node.store import MAX_UTXO_PAGE, AddressQuery
from simplecoin.web.state import app_state

MAX_PAGE = 100
HASH_RE = re.compile(r"[0-9a-fA-F]{64}")
NUMBER_RE = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
# amount:txid:index of a page's last coin; 18 digits fit SQLite's int64 (all money is 2.1e15 base units)
UTXO_CURSOR_RE = re.compile(r"([0-9]{1,18}):([0-9a-fA-F]{64}):([0-9]{1,10})")
HISTORY_CURSOR_RE = re.compile(r"([0-9]{1,10}):([0-9]{1,10})")  # height:position of a page's last row

api = Blueprint("api", __name__)


class ApiError(Exception):
    """Raised by a handler for a request it refuses; becomes a JSON error response."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(error)
        self.status, self.error, self.reason = status, error, reason
        self.headers: dict[str, str] = {}


def _service() -> NodeService:
    return app_state().service


def _peers() -> PeerManager | None:
    return app_state().peers


# -- input parsing: every helper raises ApiError naming what was wrong ----------------------------------------------


def json_body() -> dict:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # deeply nested arrays or objects: not a ValueError, so `silent` lets it through
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", "bad-json")
    return data


def hex_field(data: dict, name: str) -> bytes:
    value = data.get(name)
    if not isinstance(value, str):
        raise ApiError(400, f"'{name}' must be a hex string", "bad-field")
    try:
        return bytes.fromhex(value)
    except ValueError as e:
        raise ApiError(400, f"'{name}' is not valid hex", "bad-hex") from e


def parse_hash(text: str, what: str = "hash") -> bytes:
    """A hash as shown to people (64 hex digits, byte-reversed) to internal byte order."""
    if not HASH_RE.fullmatch(text):
        raise ApiError(400, f"{what} must be 64 hex digits", "bad-hash")
    return hash_from_hex(text)


def int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not NUMBER_RE.fullmatch(text) or not low <= int(text) <= high:
        raise ApiError(400, f"'{name}' must be a whole number from {low} to {high}", "bad-param")
    return int(text)


def cursor_arg(name: str, pattern: re.Pattern, form: str) -> tuple[str, ...] | None:
    """The parts of a paging cursor (`utxo_cursor`, `history_cursor`) as the last page's `next_...` gave it."""
    text = request.args.get(name)
    if text is None:
        return None
    match = pattern.fullmatch(text)
    if match is None:
        raise ApiError(400, f"'{name}' must be {form}, as next_{name} gave it", "bad-param")
    return match.groups()


def parse_address(text: str) -> bytes:
    try:
        return pubkey_hash_from_address(text, _service().params.address_version)
    except DecodeError as e:
        raise ApiError(400, f"{text[:80]!r} is not a {_service().params.name} address: {e}", "bad-address") from e


def _inbound() -> Inbound:
    """The peer layer's answers to this request's message: every decision about a peer is made there."""
    state = app_state()
    return Inbound(state.service, state.peers)


def _remote_ip() -> str:
    return request.remote_addr or ""  # the same client IP as web/limits.py's per-IP caps and upload budget


def admitted_sender() -> str:
    """Who sent this request, for ban score (see Inbound.admit); a banned sender is refused with 403."""
    try:
        return _inbound().admit(_remote_ip(), request.headers.get("X-SimpleCoin-Peer", ""))
    except Banned as e:
        raise ApiError(403, "you are banned", "banned") from e


# -- JSON shapes --------------------------------------------------------------------------------------------------


def address_of(pubkey_hash: bytes) -> str:
    return address_from_pubkey_hash(pubkey_hash, _service().params.address_version)


def header_json(header: BlockHeader) -> dict:
    return {
        "hash": header.hash_hex(),
        "version": header.version,
        "prev_hash": hash_hex(header.prev_hash),
        "merkle_root": hash_hex(header.merkle_root),
        "time": header.time,
        "bits": header.bits,
        "nonce": header.nonce,
    }


def tx_json(tx: Transaction) -> dict:
    return {
        "txid": hash_hex(tx.txid),
        "version": tx.version,
        "locktime": tx.locktime,
        "size": tx.size,
        "coinbase": tx.is_coinbase(),
        "inputs": [
            {
                "txid": hash_hex(txin.prevout.txid),
                "index": txin.prevout.index,
                "pubkey": txin.pubkey.hex(),
                "signature": txin.signature.hex(),
            }
            for txin in tx.inputs
        ],
        "outputs": [{"amount": out.amount, "address": address_of(out.pubkey_hash)} for out in tx.outputs],
        "hex": tx.serialize().hex(),
    }


# -- public endpoints -----------------------------------------------------------------------------------------------


def status_json(service: NodeService, peers: PeerManager | None) -> dict:
    data = service.status()
    data["peers"] = peers.count() if peers else 0
    data["clock"] = peers.clock_report() if peers else {"offset": 0, "peers": 0, "warning": None}
    data["chain_work"] = str(data["chain_work"])  # may exceed what JSON readers hold in a number
    data["threads"] = service.threads()  # {"mining-pump": "ok", "peer-sync": "restarting (3x): ...", ...}
    data["faults"] = service.faults()  # {"chain.db": "cannot connect a block in ...: database or disk is full"}
    if peers:
        data["threads"]["peer-senders"] = peers.sender_health()  # one sender thread per peer
    return data


@api.get("/status")
def status():  # GET is answered by _status_fast_path; this serves HEAD
    return jsonify(status_json(_service(), _peers()))


@api.get("/address/<address>")
def address(address: str):
    """Totals, a page of coins (largest first) and of history (newest first), pending txs: docs/api.md."""
    pubkey_hash = parse_address(address)
    offset = int_arg("offset", 0, 0, 10**9)
    limit = int_arg("limit", 25, 1, MAX_PAGE)
    utxo_limit = int_arg("utxo_limit", MAX_UTXO_PAGE, 1, MAX_UTXO_PAGE)
    last_coin = cursor_arg("utxo_cursor", UTXO_CURSOR_RE, "amount:txid:index")
    last_row = cursor_arg("history_cursor", HISTORY_CURSOR_RE, "height:position")
    query = AddressQuery(
        pubkey_hash,
        history_limit=limit,
        history_offset=offset,
        history_cursor=(int(last_row[0]), int(last_row[1])) if last_row else None,
        utxo_limit=utxo_limit,
        utxo_cursor=(int(last_coin[0]), hash_from_hex(last_coin[1]), int(last_coin[2])) if last_coin else None,
    )
    info = _service().address(query)
    next_utxo = info.next_utxo_cursor
    next_history = info.next_history_cursor
    return jsonify(
        address=address,
        tip_height=info.tip_height,
        tip=hash_hex(info.tip_hash),
        balance=info.balance,
        immature=info.immature,
        pending_received=info.pending_received,
        pending_sent=info.pending_sent,
        utxo_count=info.utxo_count,
        utxos=[
            {
                "txid": hash_hex(o.txid),
                "index": o.index,
                "amount": c.amount,
                "height": c.height,
                "coinbase": c.is_coinbase,
            }
            for o, c in info.utxos
        ],
        next_utxo_cursor=f"{next_utxo[0]}:{hash_hex(next_utxo[1])}:{next_utxo[2]}" if next_utxo else None,
        history=[
            {
                "txid": hash_hex(row.txid),
                "height": row.height,
                "confirmations": info.tip_height - row.height + 1,
                "received": row.received,
                "sent": row.sent,
            }
            for row in info.history
        ],
        next_history_cursor=f"{next_history[0]}:{next_history[1]}" if next_history else None,
        pending=[{"txid": hash_hex(e.tx.txid), "fee": e.fee} for e in info.pending],
        offset=offset,
        limit=limit,
    )


@api.get("/address/<address>/txs")
def address_txs(address: str):
    """A history page for light wallets: each tx's bytes and merkle proof in the one answer."""
    pubkey_hash = parse_address(address)
    offset = int_arg("offset", 0, 0, 10**9)
    limit = int_arg("limit", MAX_PAGE, 1, MAX_PAGE)
    page = _service().address_page(pubkey_hash, offset, limit)
    return jsonify(
        address=address,
        tip_height=page.tip_height,
        offset=offset,
        limit=limit,
        next_offset=page.next_offset,
        txs=[
            {
                "txid": hash_hex(p.tx.txid),
                "height": p.height,
                "position": p.position,
                "block_hash": hash_hex(p.block_hash),
                "branch": [hash_hex(h) for h in p.branch],
                "hex": p.tx.serialize().hex(),
            }
            for p in page.txs
        ],
        parents={hash_hex(txid): tx.serialize().hex() for txid, tx in page.parents.items()},
        pending=[{"txid": hash_hex(e.tx.txid), "fee": e.fee, "hex": e.tx.serialize().hex()} for e in page.pending],
    )


@api.get("/fee-estimate")
def fee_estimate():
    estimate = _service().fee_estimate()
    return jsonify(
        fee_rate=estimate.fee_rate,
        min_relay_fee_rate=estimate.min_relay,
        mempool_min_fee_rate=estimate.mempool_min,
        mempool_fee_rate=estimate.mempool,
        recent_blocks_fee_rate=estimate.blocks,
        pending_bytes=estimate.pending_bytes,
        unit="base units per byte",
        source=estimate.source,
        target_blocks=estimate.target,
        confirmed_samples=estimate.samples,
        watched_pending=estimate.watching,
    )


def _block_hash_from(ref: str) -> bytes:
    if NUMBER_RE.fullmatch(ref):
        return _service().hash_at(int(ref))
    return parse_hash(ref, "a block height or hash")


@api.get("/block/<ref>")
def block(ref: str):
    blk, entry, active = _service().block(_block_hash_from(ref))
    tip = _service().tip()
    data = header_json(blk.header)
    data.update(
        height=entry.height,
        active=active,
        status=entry.status.name.lower(),
        confirmations=tip.height - entry.height + 1 if active else 0,
        size=blk.size,
        chain_work=str(entry.chain_work),
        txs=[tx_json(tx) for tx in blk.txs],
    )
    return jsonify(data)


@api.get("/blocks")
def blocks():
    tip = _service().tip().height
    start = int_arg("start", tip, 0, 10**9)
    limit = int_arg("limit", 10, 1, MAX_PAGE)
    entries = _service().recent(start, limit)
    counts = _service().tx_counts(entries[-1].height, entries[0].height) if entries else {}
    return jsonify(
        blocks=[{**header_json(e.header), "height": e.height, "tx_count": counts.get(e.height)} for e in entries],
        tip=tip,
    )


@api.get("/tx/<txid>")
def tx(txid: str):
    found = _service().tx(parse_hash(txid, "txid"))
    data = tx_json(found.tx)
    data.update(
        confirmations=found.confirmations,
        block_hash=hash_hex(found.block_hash) if found.block_hash else None,
        height=found.height,
        position=found.position,
        fee=found.fee,
    )
    return jsonify(data)


@api.post("/tx")
def submit_tx():
    raw = hex_field(json_body(), "hex")
    transaction, entry = _inbound().tx(admitted_sender(), raw)
    return jsonify(txid=hash_hex(transaction.txid), fee=entry.fee)


@api.get("/merkle-proof/<txid>")
def merkle_proof(txid: str):
    proof = _service().merkle_proof(parse_hash(txid, "txid"))
    return jsonify(
        txid=txid.lower(),
        block_hash=proof.header.hash_hex(),
        height=proof.height,
        index=proof.index,
        branch=[hash_hex(h) for h in proof.branch],
        header=proof.header.serialize().hex(),
    )


@api.get("/headers")
def headers():
    """JSON hex headers (peers, old wallets) or, with format=binary, the 80-byte headers end to end: a light
    wallet's first run fetches the whole chain, ten times as many per request and half the bytes."""
    text = request.args.get("locator", "")
    locator = [parse_hash(h, "locator hash") for h in text.split(",") if h][:MAX_LOCATOR_HASHES]
    form = request.args.get("format", "json")
    if form not in ("json", "binary"):
        raise ApiError(400, "'format' must be json or binary", "bad-param")
    cap = MAX_HEADERS_BINARY_RESULTS if form == "binary" else MAX_HEADERS_RESULTS
    found = _service().headers_after(locator, int_arg("limit", cap, 1, cap))
    if form == "binary":  # joined here, outside the node lock
        return Response(b"".join(found), mimetype="application/octet-stream")
    return jsonify(headers=[h.hex() for h in found])


@api.get("/peers")
def peers():
    manager = _peers()
    return jsonify(peers=manager.describe() if manager else [])


@api.post("/peers")
def add_peer():
    """The operator adds a peer (Bitcoin: the addnode RPC): from this machine only, or anyone could point the node
    at any address."""
    manager = _peers()
    data = json_body()
    text = data.get("address", data.get("url"))
    if not isinstance(text, str) or manager is None:
        raise ApiError(400, "'address' must be host:port", "bad-field")
    try:
        address = _inbound().add_peer(_remote_ip(), text)
    except NotLocal as e:
        raise ApiError(403, "peers are added from the node's own machine only", "local-only") from e
    except BadAddress as e:
        raise ApiError(400, f"not adding peer {text[:100]!r}: {e}", "bad-peer") from e
    return jsonify(added=str(address))


# -- peer-to-peer endpoints -----------------------------------------------------------------------------------------


@api.post("/p2p/hello")
def hello():
    data = json_body()
    admitted_sender()
    return jsonify(_inbound().hello(_remote_ip(), data))


def _hash_list(data: dict, name: str) -> list[bytes]:
    value = data.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_INV or not all(isinstance(h, str) for h in value):
        raise ApiError(400, f"'{name}' must be a list of at most {MAX_INV} hashes", "bad-field")
    return [parse_hash(h) for h in value]


@api.post("/p2p/inv")
def inv():
    """A peer announces blocks and txs by hash; the answer names those we lack (Bitcoin: inv, then getdata)."""
    data = json_body()
    admitted_sender()
    blocks, txs = _hash_list(data, "blocks"), _hash_list(data, "txs")
    want = _inbound().inv(_remote_ip(), data, blocks, txs)
    return jsonify(want={kind: [hash_hex(h) for h in hashes] for kind, hashes in want.items()})


@api.post("/p2p/block")
def push_block():
    raw = hex_field(json_body(), "hex")
    blk, outcome = _inbound().block(admitted_sender(), raw)
    return jsonify(status=outcome.status, hash=blk.header.hash_hex())


@api.get("/p2p/blocks")
def raw_blocks():
    text = request.args.get("hashes", "")
    hashes = [parse_hash(h, "block hash") for h in text.split(",") if h]
    if not 1 <= len(hashes) <= MAX_BLOCKS_PER_REQUEST:
        raise ApiError(400, f"'hashes' must list 1 to {MAX_BLOCKS_PER_REQUEST} block hashes", "bad-param")
    if len(set(hashes)) != len(hashes):  # one hash 16 times turned a 1 kB request into 16 copies of a block
        raise ApiError(400, "'hashes' lists a block more than once", "duplicate-hash")
    state = app_state()
    budget, clock = state.upload_budget, state.clock
    # The connection's identity (an IPv6 /64, as for bans): a peer cannot spend another's budget, nor get a fresh
    # one from each address of its own /64.
    ip = identity(request.remote_addr or "")
    wait = budget.retry_after(ip, clock())
    if wait is not None:
        error = ApiError(429, f"upload budget for {ip} spent; retry in {wait} s", "upload-limit")
        error.headers = {"Retry-After": str(wait)}
        raise error
    blocks = [_service().raw_block(h).hex() for h in hashes]
    budget.charge(ip, sum(len(b) for b in blocks), clock())
    return jsonify(blocks=blocks)
