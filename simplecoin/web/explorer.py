"""The block explorer: server-rendered HTML pages on the node's own HTTP port, next to the JSON API.

`/` is the dashboard, with charts of the last blocks and the mempool (`charts.py`: SVG drawn here, inline); every
other page lives under `/explorer/` (blocks, transactions, addresses, the mempool, the side branches the node
knows, its peers, search) and its CSS and script under `/explorer/static/`. The pages read the node through the
same `NodeService` as the API. Errors: a GET of a page gets the explorer's HTML error page (the blueprint's
handlers, plus a catch-all route for unknown `/explorer/...` paths); every other path, and any other method,
keeps the API's JSON errors.

Everything from the chain or the user reaches the page through Jinja's autoescaping, and the dashboard's
script writes with `textContent` only; the Content-Security-Policy allows no inline script and no other
origin, so a crafted coinbase or search string stays text. Amounts are exact: `format_coins` on integers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from simplecoin.core.amounts import format_coins
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import Transaction
from simplecoin.node.lookups import NotFound
from simplecoin.node.service import NodeService
from simplecoin.node.store import AddressQuery
from simplecoin.web import charts
from simplecoin.web.state import app_state

HASH_RE = re.compile(r"[0-9a-fA-F]{64}")
HEIGHT_RE = re.compile(r"[0-9]{1,10}")  # ASCII digits only, like the API
LATEST = 10  # blocks on the dashboard
PAGE = 25  # address history rows per page
MAX_QUERY = 200  # characters of a search string looked at (and shown back)
FORKS_SHOWN = 50  # side branches on the forks page: the most recently seen

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

explorer = Blueprint(
    "explorer",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/explorer/static",
)


class PageNotFound(Exception):
    """A page for something that does not exist: rendered as the friendly not-found page (404)."""

    def __init__(self, message: str, query: str = "") -> None:
        super().__init__(message)
        self.message, self.query = message, query


def _service() -> NodeService:
    return app_state().service


def _peer_count() -> int:
    peers = app_state().peers
    return peers.count() if peers else 0


# -- formatting (also Jinja filters) ---------------------------------------------------------------------------


def display_hash(h: bytes) -> str:
    """Internal byte order to the hex people see (reversed, like Bitcoin)."""
    return hash_hex(h)


def format_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_hashrate(rate: float) -> str:
    """Hashes per second with a unit; static/explorer.js formats the same way."""
    for unit in ("H/s", "kH/s", "MH/s", "GH/s"):
        if rate < 1000 or unit == "GH/s":
            return f"{rate:.1f} {unit}"
        rate /= 1000
    raise AssertionError("unreachable")


def format_difficulty(target: int, pow_limit: int) -> str:
    """pow_limit / target with three decimals (truncated), in integers: 1.000 at the network's easiest target."""
    scaled = pow_limit * 1000 // max(target, 1)
    return f"{scaled // 1000:,}.{scaled % 1000:03d}"


def format_fee_rate(fee: int, size: int) -> str:
    """Base units per byte, two decimals (truncated): a ratio for ordering, not an amount of money."""
    scaled = fee * 100 // size
    return f"{scaled // 100}.{scaled % 100:02d}"


def coinbase_text(data: bytes) -> str:
    """A coinbase's data after its 4-byte height as text: UTF-8 where it is printable, `\\xNN` for every other
    byte (and `\\\\` for a backslash), so a miner's message reads as written and no byte is hidden."""
    text = data[4:].decode("utf-8", errors="surrogateescape")
    return "".join(
        "\\\\" if c == "\\" else c if c.isprintable() else "".join(f"\\x{b:02x}" for b in _raw(c)) for c in text
    )


def _raw(char: str) -> bytes:
    """The bytes a decoded character came from (a lone byte for surrogateescape's stand-ins)."""
    return char.encode("utf-8", errors="surrogateescape")


@explorer.app_template_filter("coins")
def _coins(base_units: int) -> str:
    return format_coins(base_units)


@explorer.app_template_filter("hexhash")
def _hexhash(h: bytes) -> str:
    return display_hash(h)


@explorer.app_template_filter("short")
def _short(text: str, keep: int = 16) -> str:
    return text if len(text) <= keep else text[:keep] + "…"


@explorer.app_template_filter("utc")
def _utc(timestamp: int) -> str:
    return format_time(timestamp)


@explorer.app_template_filter("work")
def _work(work: int) -> str:
    """Chain work as people compare it: digits in groups, or powers of ten past a dozen digits."""
    return f"{work:,}" if work < 10**12 else f"{work:.3e}"


def difficulty_fields(bits: int) -> dict[str, str]:
    pow_limit = _service().params.pow_limit
    target = bits_to_target(bits)
    return {
        "bits": f"{bits:#010x}",
        "target": f"{target:064x}",
        "difficulty": format_difficulty(target, pow_limit),
    }


def address_of(pubkey_hash: bytes) -> str:
    return address_from_pubkey_hash(pubkey_hash, _service().params.address_version)


# -- pages ------------------------------------------------------------------------------------------------------


@explorer.after_request
def _headers(response):
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


@explorer.get("/")
def dashboard():
    service = _service()
    status = service.status()
    tip = service.tip()
    blocks = service.recent(tip.height, LATEST)
    return render_template(
        "dashboard.html",
        status=status,
        peers=_peer_count(),
        hashrate=format_hashrate(status["hashrate"]),
        pow_limit=f"{service.params.pow_limit:064x}",
        blocks=blocks,
        tx_counts=service.tx_counts(blocks[-1].height, blocks[0].height) if blocks else {},
        latest=LATEST,
        **difficulty_fields(status["bits"]),
        **_dashboard_charts(tip.height),
    )


def _dashboard_charts(tip_height: int) -> dict[str, Any]:
    """The dashboard's charts: the last blocks by height from the active chain (the same cost at any height),
    and the pool's samples (read without the node lock)."""
    service = _service()
    entries = service.recent(tip_height, charts.CHART_BLOCKS + charts.HASHRATE_WINDOW)
    return {
        "charts": charts.block_charts(charts.block_points(entries), service.params.pow_limit),
        "mempool_chart": charts.mempool_chart(service.pool_history()),
        "spacing": service.params.target_spacing,
        "fixed_difficulty": service.params.no_retargeting,
        "hashrate_window": charts.HASHRATE_WINDOW,
    }


@explorer.get("/explorer/charts.css")
def charts_css():
    """pygal's stylesheet for the charts (pygal puts it inline, which our Content-Security-Policy refuses)."""
    return Response(charts.stylesheet(), mimetype="text/css", headers={"Cache-Control": "public, max-age=3600"})


@explorer.get("/explorer/forks")
def forks():
    """The side branches this node knows (Bitcoin: getchaintips), where each left the active chain and why it lost."""
    service = _service()
    return render_template(
        "forks.html", branches=service.side_branches(FORKS_SHOWN), tip=service.tip(), shown=FORKS_SHOWN
    )


@explorer.get("/explorer/peers")
def peers():
    """Who this node is connected to: direction, since when, what each sent first, ban score and backoff."""
    manager = app_state().peers
    return render_template("peers.html", peers=manager.views() if manager else None)


@explorer.get("/explorer/")
def home():
    return redirect(url_for("explorer.dashboard"))


@explorer.get("/explorer/block/<ref>")
def block(ref: str):
    service = _service()
    if HEIGHT_RE.fullmatch(ref):
        block_hash = service.hash_at(int(ref))
    elif HASH_RE.fullmatch(ref):
        block_hash = hash_from_hex(ref)
    else:
        raise PageNotFound("A block is named by its height or its 64-digit hash.", ref)
    blk, entry, active = service.block(block_hash)
    tip = service.tip()
    next_hash = service.hash_at(entry.height + 1) if active and entry.height < tip.height else None
    prev_hash = blk.header.prev_hash if entry.height > 0 else None
    return render_template(
        "block.html",
        block=blk,
        entry=entry,
        active=active,
        confirmations=tip.height - entry.height + 1 if active else 0,
        prev_hash=prev_hash,
        next_hash=next_hash,
        coinbase=blk.txs[0],
        coinbase_text=coinbase_text(blk.txs[0].inputs[0].signature),
        rows=[_tx_row(tx) for tx in blk.txs],
        **difficulty_fields(blk.header.bits),
    )


@dataclass(frozen=True)
class TxRow:
    txid: str
    coinbase: bool
    inputs: int
    outputs: list[tuple[str, int]]  # (address, amount)
    total_out: int
    size: int


def _tx_row(tx: Transaction) -> TxRow:
    outputs = [(address_of(o.pubkey_hash), o.amount) for o in tx.outputs]
    return TxRow(display_hash(tx.txid), tx.is_coinbase(), len(tx.inputs), outputs, sum(a for _, a in outputs), tx.size)


@dataclass(frozen=True)
class InputView:
    prev_txid: str
    index: int
    address: str | None  # None: the spent output could not be found
    amount: int | None


@explorer.get("/explorer/tx/<txid>")
def tx(txid: str):
    if not HASH_RE.fullmatch(txid):
        raise PageNotFound("A transaction is named by its 64-digit txid.", txid)
    service = _service()
    found = service.tx(hash_from_hex(txid))
    transaction = found.tx
    inputs = (
        [] if transaction.is_coinbase() else [_input_view(t.prevout.txid, t.prevout.index) for t in transaction.inputs]
    )
    total_out = sum(o.amount for o in transaction.outputs)
    spends = service.output_spends(found)
    fee = found.fee
    if fee is None and inputs and all(i.amount is not None for i in inputs):
        fee = sum(i.amount for i in inputs) - total_out  # type: ignore[misc]
    return render_template(
        "tx.html",
        txid=display_hash(transaction.txid),
        tx=transaction,
        found=found,
        inputs=inputs,
        total_in=sum(i.amount or 0 for i in inputs),
        outputs=[
            (address_of(o.pubkey_hash), o.amount, spend.state, display_hash(spend.txid) if spend.txid else None)
            for o, spend in zip(transaction.outputs, spends, strict=True)
        ],
        block_time=service.block_times([found.height])[found.height] if found.height is not None else None,
        total_out=total_out,
        fee=fee,
        fee_rate=format_fee_rate(fee, transaction.size) if fee is not None else None,
        coinbase_text=coinbase_text(transaction.inputs[0].signature) if transaction.is_coinbase() else None,
    )


def _input_view(prev_txid: bytes, index: int) -> InputView:
    try:
        parent = _service().tx(prev_txid).tx
    except NotFound:
        return InputView(display_hash(prev_txid), index, None, None)
    if index >= len(parent.outputs):
        return InputView(display_hash(prev_txid), index, None, None)
    out = parent.outputs[index]
    return InputView(display_hash(prev_txid), index, address_of(out.pubkey_hash), out.amount)


@explorer.get("/explorer/address/<address>")
def address(address: str):
    service = _service()
    try:
        pubkey_hash = pubkey_hash_from_address(address, service.params.address_version)
    except DecodeError as e:
        raise PageNotFound(f"This is not a {service.params.name} address ({e}).", address) from e
    offset = request.args.get("offset", "0")
    offset = int(offset) if HEIGHT_RE.fullmatch(offset) else 0
    # one more row tells whether there is an older page; the coins are only counted here
    info = service.address(AddressQuery(pubkey_hash, history_limit=PAGE + 1, history_offset=offset, utxo_limit=1))
    tip = service.tip().height
    rows = info.history[:PAGE]
    times = service.block_times(sorted({r.height for r in rows}))
    pending = [
        (display_hash(e.tx.txid), sum(o.amount for o in e.tx.outputs if o.pubkey_hash == pubkey_hash), e.fee)
        for e in info.pending
    ]
    return render_template(
        "address.html",
        address=address,
        info=info,
        pending_balance=info.balance + info.pending_received - info.pending_sent,
        history=[
            (display_hash(r.txid), r.height, tip - r.height + 1, r.received, r.sent, times.get(r.height)) for r in rows
        ],
        pending=pending,
        offset=offset,
        newer=max(offset - PAGE, 0) if offset else None,
        older=offset + PAGE if len(info.history) > PAGE else None,
    )


@explorer.get("/explorer/mempool")
def mempool():
    snapshot = _service().mempool_snapshot()
    rows = [
        (
            display_hash(e.tx.txid),
            e.tx.size,
            e.fee,
            format_fee_rate(e.fee, e.tx.size),
            sum(o.amount for o in e.tx.outputs),
        )
        for e in snapshot.top
    ]
    return render_template(
        "mempool.html",
        rows=rows,
        count=snapshot.count,
        total_bytes=snapshot.total_bytes,
        total_fees=snapshot.total_fees,
    )


@explorer.get("/explorer/search")
def search():
    """A height, block hash, txid or address: redirect to its page, or say nothing was found."""
    query = request.args.get("q", "").strip()[:MAX_QUERY]
    service = _service()
    if not query:
        raise PageNotFound("Type a block height, a block hash, a txid or an address.")
    if HEIGHT_RE.fullmatch(query):
        try:
            block_hash = service.hash_at(int(query))
        except NotFound as e:
            tip = service.tip().height
            raise PageNotFound(f"There is no block at height {int(query)}: the tip is at {tip}.", query) from e
        return redirect(url_for("explorer.block", ref=display_hash(block_hash)))
    if HASH_RE.fullmatch(query):
        h = hash_from_hex(query)
        for lookup, page, arg in ((service.entry, "explorer.block", "ref"), (service.tx, "explorer.tx", "txid")):
            try:
                lookup(h)
            except NotFound:
                continue
            return redirect(url_for(page, **{arg: query.lower()}))
        raise PageNotFound("No block and no transaction has this hash.", query)
    try:
        pubkey_hash_from_address(query, service.params.address_version)
    except DecodeError as e:
        raise PageNotFound("This is not a block height, a block hash, a txid or an address.", query) from e
    return redirect(url_for("explorer.address", address=query))


@explorer.get("/explorer/<path:unknown>")
def unknown_page(unknown: str):
    raise PageNotFound("There is no such explorer page.")


# -- errors: HTML for the explorer's pages (the API's JSON handlers serve every other path) ---------------------


def _error_page(status: int, title: str, message: str, query: str = "") -> Any:
    return render_template("error.html", title=title, message=message, query=query), status


@explorer.errorhandler(PageNotFound)
def _page_not_found(e: PageNotFound):
    return _error_page(404, "Not found", e.message, e.query)


@explorer.errorhandler(NotFound)
def _chain_not_found(e: NotFound):
    text = str(e)[:300]
    return _error_page(404, "Not found", f"{text[:1].upper()}{text[1:]}.")


@explorer.errorhandler(HTTPException)
def _http_error(e: HTTPException):
    return _error_page(e.code or 500, "Not found" if e.code == 404 else e.name, e.description or e.name)
