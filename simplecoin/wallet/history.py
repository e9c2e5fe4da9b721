"""The wallet's history, verified: every confirmed transaction shown has a merkle proof to a header the wallet
checked itself, and every row must touch the wallet's addresses.

A node chooses what it answers, so reading the history pages is bounded and must make progress; a node that
leaves a transaction out cannot be caught (SPV's limit), one that invents or reorders rows is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from simplecoin.core.hashing import hash160, hash_from_hex, hash_hex
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.core.params import NetworkParams
from simplecoin.core.primitives import Transaction
from simplecoin.core.spv import HeaderChain, SpvError
from simplecoin.wallet.nodeclient import NodeClient, parse_txid

if TYPE_CHECKING:
    from collections.abc import Callable

HISTORY_PAGE = 100  # rows per /address/{address}/txs request (the node's maximum)
# A node may not keep the wallet paging forever: at most this many rows, and so pages, per address and run.
MAX_HISTORY_ROWS = 200_000
MAX_HISTORY_PAGES = 5_000  # and every page must bring at least one new row (checked)


@dataclass(frozen=True)
class HistoryEntry:
    """One transaction touching the wallet, from the wallet's point of view."""

    txid: str
    direction: str  # "received", "sent" or "self"
    amount: int  # what left or reached the wallet, fee excluded
    counterparties: tuple[str, ...]
    fee: int | None  # known when the wallet paid it
    confirmations: int
    height: int | None
    time: int | None  # the verified header's time
    pending: bool
    position: int = 0  # in its block: orders the entries of one block


@dataclass(frozen=True)
class HistoryPage:
    """The newest entries of the wallet's history; `more` when older ones were not read."""

    entries: list[HistoryEntry]
    more: bool


@dataclass(frozen=True)
class _Row:
    """One verified transaction of an address's history page."""

    tx: Transaction
    height: int | None
    position: int
    time: int | None


class VerifiedHistory:
    """The history half of `LightWallet` (client.py), which supplies the node, the header chain and the
    checked transaction bytes this reads with."""

    client: NodeClient
    params: NetworkParams
    chain: HeaderChain
    sync_headers: Callable[[], int]
    addresses: Callable[[], list[tuple[str, str]]]
    _checked_tx: Callable[[bytes, object], Transaction]

    # -- history --------------------------------------------------------------------------------------------

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        """Every tx touching the wallet (or the newest `limit`), newest first, each checked against the headers."""
        return self.history_page(limit).entries

    def history_page(self, limit: int | None) -> HistoryPage:
        """The newest `limit` entries (None: all), each confirmed one proven by a merkle proof to a verified
        header, from one /address/{address}/txs request per page."""
        self.sync_headers()
        addresses = [a for a, _ in self.addresses()]
        version = self.params.address_version
        ours = {pubkey_hash_from_address(a, version) for a in addresses}
        rows: dict[bytes, _Row] = {}
        parents: dict[bytes, Transaction] = {}
        more = False
        for address in addresses:
            more |= self._read_history(address, limit, rows, parents)
        ordered = sorted(rows.values(), key=lambda r: (r.height is not None, -(r.height or 0), -r.position, r.tx.txid))
        if limit is not None and len(ordered) > limit:
            ordered, more = ordered[:limit], True
        entries = [self._history_entry(row, parents, ours) for row in ordered]
        return HistoryPage(entries, more)

    def _read_history(
        self, address: str, limit: int | None, rows: dict[bytes, _Row], parents: dict[bytes, Transaction]
    ) -> bool:
        """Read `address`'s pages (enough for the newest `limit`) into `rows`; True if older rows were left.

        A node chooses what it answers, so the paging is bounded and must make progress: each page starts where
        the last ended, holds at least one row, goes strictly back in (height, position), and there are at
        most MAX_HISTORY_ROWS rows and MAX_HISTORY_PAGES pages. Anything else is a lie, not a reason to loop.
        """
        liar = self.client.answered_by or "the node"
        pubkey_hash = pubkey_hash_from_address(address, self.params.address_version)
        offset, pages, read = 0, 0, 0
        last: tuple[int, int] | None = None
        while True:
            want = HISTORY_PAGE if limit is None else max(1, min(HISTORY_PAGE, limit - read))
            page = self.client.get(f"/address/{address}/txs", {"offset": offset, "limit": want})
            liar = self.client.answered_by
            pages += 1
            txs, page_parents, pending, next_offset = (
                page.get("txs"),
                page.get("parents"),
                page.get("pending"),
                page.get("next_offset", False),
            )
            if (
                not isinstance(txs, list)
                or not isinstance(page_parents, dict)
                or not isinstance(pending, list)
                or not (next_offset is None or isinstance(next_offset, int))
                or len(txs) > want
            ):
                raise SpvError(f"{liar} is not trustworthy: a malformed history page for {address}")
            for txid_hex, raw_hex in page_parents.items():
                txid = parse_txid(txid_hex)
                if txid is None:
                    raise SpvError(f"{liar} is not trustworthy: it names a txid {str(txid_hex)[:80]!r}")
                parents[txid] = self._checked_tx(txid, raw_hex)
            if offset == 0:
                for item in pending:
                    row = self._pending_row(item, liar)
                    self._require_touches(row.tx, pubkey_hash, parents, address, liar)
                    rows.setdefault(row.tx.txid, row)
            for item in txs:
                row = self._proven_row(item, liar)
                key = (row.height or 0, row.position)
                if last is not None and key >= last:
                    raise SpvError(f"{liar} is not trustworthy: its history of {address} is out of order or repeats")
                last = key
                self._require_touches(row.tx, pubkey_hash, parents, address, liar)
                rows[row.tx.txid] = row
            read += len(txs)
            if next_offset is None:
                return False
            if next_offset != offset + len(txs) or not txs:
                raise SpvError(f"{liar} is not trustworthy: its history pages of {address} do not move on")
            if read >= MAX_HISTORY_ROWS or pages >= MAX_HISTORY_PAGES:
                raise SpvError(
                    f"{liar} is not trustworthy: it keeps paging the history of {address} "
                    f"(over {MAX_HISTORY_ROWS:,} rows or {MAX_HISTORY_PAGES:,} pages)"
                )
            if limit is not None and read >= limit:
                return True
            offset = next_offset

    def _pending_row(self, item: object, liar: str) -> _Row:
        if not isinstance(item, dict):
            raise SpvError(f"{liar} is not trustworthy: a malformed pending tx")
        txid = parse_txid(item.get("txid"))
        if txid is None:
            raise SpvError(f"{liar} is not trustworthy: it names a txid {str(item.get('txid'))[:80]!r}")
        return _Row(self._checked_tx(txid, item.get("hex")), None, 0, None)

    def _proven_row(self, item: object, liar: str) -> _Row:
        """A history row whose bytes hash to its txid and whose merkle proof leads to a verified header on the
        best chain at the height the node gives."""
        if not isinstance(item, dict):
            raise SpvError(f"{liar} is not trustworthy: a malformed history row")
        txid = parse_txid(item.get("txid"))
        if txid is None:
            raise SpvError(f"{liar} is not trustworthy: it names a txid {str(item.get('txid'))[:80]!r}")
        try:
            block_hash = hash_from_hex(item["block_hash"])  # type: ignore[index]
            branch = [hash_from_hex(h) for h in item["branch"]]  # type: ignore[index]
            position, height = item["position"], item["height"]  # type: ignore[index]
            if not isinstance(position, int) or not isinstance(height, int) or len(branch) > 64:
                raise ValueError("bad field")
        except (KeyError, TypeError, ValueError) as e:
            raise SpvError(f"{liar} is not trustworthy: a malformed history row") from e
        tx = self._checked_tx(txid, item["hex"])  # type: ignore[index]
        try:
            entry = self.chain.verify_inclusion(txid, block_hash, position, branch, height)
        except SpvError as e:
            raise SpvError(f"{liar} is not trustworthy: {e}") from e
        return _Row(tx, entry.height, position, entry.header.time)

    def _require_touches(
        self, tx: Transaction, pubkey_hash: bytes, parents: dict[bytes, Transaction], address: str, liar: str
    ) -> None:
        """A history row must pay the address or spend its coins (with the parent sent along)."""
        if any(o.pubkey_hash == pubkey_hash for o in tx.outputs):
            return
        for txin in () if tx.is_coinbase() else tx.inputs:
            if hash160(txin.pubkey) == pubkey_hash:
                if txin.prevout.txid not in parents:
                    raise SpvError(f"{liar} is not trustworthy: it left out the tx that {hash_hex(tx.txid)} spends")
                return
        raise SpvError(f"{liar} is not trustworthy: tx {hash_hex(tx.txid)} does not touch {address}")

    def _history_entry(self, row: _Row, parents: dict[bytes, Transaction], ours: set[bytes]) -> HistoryEntry:
        tx = row.tx
        confirmations = 0 if row.height is None else self.chain.height - row.height + 1
        received = sum(o.amount for o in tx.outputs if o.pubkey_hash in ours)
        spent = 0
        fee = None
        our_inputs = [i for i in tx.inputs if not tx.is_coinbase() and hash160(i.pubkey) in ours]
        if our_inputs:
            for txin in our_inputs:
                parent = parents.get(txin.prevout.txid)
                if parent is None or txin.prevout.index >= len(parent.outputs):
                    raise SpvError(f"{self.client.answered_by} is not trustworthy: a spent coin it did not prove")
                spent += parent.outputs[txin.prevout.index].amount
            if len(our_inputs) == len(tx.inputs):
                fee = spent - sum(o.amount for o in tx.outputs)
        version = self.params.address_version
        if spent:
            outside = [o for o in tx.outputs if o.pubkey_hash not in ours]
            direction = "sent" if outside else "self"
            amount = sum(o.amount for o in outside)
            counterparties = tuple(dict.fromkeys(address_from_pubkey_hash(o.pubkey_hash, version) for o in outside))
        else:
            direction, amount = "received", received
            senders = () if tx.is_coinbase() else (hash160(i.pubkey) for i in tx.inputs)
            counterparties = tuple(dict.fromkeys(address_from_pubkey_hash(h, version) for h in senders)) or (
                ("coinbase",) if tx.is_coinbase() else ()
            )
        return HistoryEntry(
            hash_hex(tx.txid),
            direction,
            amount,
            counterparties,
            fee,
            confirmations,
            row.height,
            row.time,
            row.height is None,
            row.position,
        )
