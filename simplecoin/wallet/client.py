"""The wallet library behind wallet.py: nodes to ask, coins to pick, payments to sign, history to check.

Private keys never leave this process: transactions are signed here and only their bytes are sent.
Nothing a node says is taken on trust where it can be checked: headers are verified from the genesis
(`spv.HeaderChain`), and every confirmed transaction shown needs a merkle proof to a verified header.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

from simplecoin.core.amounts import format_coins
from simplecoin.core.errors import DecodeError, SimpleCoinError
from simplecoin.core.hashing import hash160, hash_from_hex, hash_hex
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address, sign_input
from simplecoin.core.params import MAX_HEADERS_RESULTS, NetworkParams
from simplecoin.core.primitives import BlockHeader, OutPoint, Transaction, TxIn, TxOut
from simplecoin.core.spv import HeaderChain, SpvError, check_tx_bytes
from simplecoin.httpjson import BadAnswer
from simplecoin.wallet.headerfile import HeaderFile
from simplecoin.wallet.keyfile import WalletFile, WalletKey, locked

TIMEOUT = (3.0, 15.0)  # connect, and each read of the socket
ANSWER_SECONDS = 30.0  # a whole answer: a node trickling one byte every few seconds is a stalled node
MAX_RESPONSE_BYTES = 10_000_000
READ_CHUNK = 65_536
DEFAULT_FEE_RATE = 2  # base units per byte, when the node gives no estimate: twice the minimum relay fee
MAX_ESTIMATE_RATE = 10_000  # base units per byte: a larger "estimate" is a node trying to burn our coins
HISTORY_PAGE = 100  # rows per /address/{address}/txs request (the node's maximum)
# A node may not keep the wallet paging forever: at most this many rows, and so pages, per address and run.
MAX_HISTORY_ROWS = 200_000
MAX_HISTORY_PAGES = 5_000  # and every page must bring at least one new row (checked)
MAX_UTXOS = 200_000  # coins of one address in one /address answer (a miner collects 2,880 a day)


class NodeError(SimpleCoinError):
    """Raised when no node answers, or a node refuses a request (`reason` is the node's reject reason)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class WalletError(SimpleCoinError):
    """Raised for a payment the wallet will not make (amount, balance, address)."""


class _Unreachable(Exception):
    """Raised when one node's answer did not arrive whole (refused, reset, truncated, stalled): try the next."""


def _read_answer(response: requests.Response, max_bytes: int, deadline: float) -> dict:
    """The answer's JSON object, read in pieces with a cap on its size and on the time it takes.

    httpjson.read_json_object reads in one call, which waits as long as the node keeps sending a byte per read
    timeout; here the whole answer has ANSWER_SECONDS. Truncation and resets surface as urllib3 errors, which
    requests does not wrap when the body is read from `response.raw`.
    """
    chunks, size = [], 0
    try:
        while True:
            chunk = response.raw.read1(READ_CHUNK, decode_content=True)
            if not chunk:
                if response.raw.length_remaining:  # the connection ended before the promised length
                    raise _Unreachable(f"answer cut off after {size} bytes")
                break
            size += len(chunk)
            if size > max_bytes:
                raise BadAnswer(f"answered more than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise _Unreachable(f"answer took more than {ANSWER_SECONDS:.0f} s")
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as e:  # ProtocolError, IncompleteRead, ReadTimeoutError
        raise _Unreachable(f"answer broke off ({type(e).__name__})") from e
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as e:
        raise BadAnswer(f"answered {response.status_code} with something that is not JSON") from e
    if not isinstance(data, dict):
        raise BadAnswer("answered JSON that is not an object")
    return data


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
                    data = _read_answer(response, MAX_RESPONSE_BYTES, deadline)
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


@dataclass(frozen=True)
class Spendable:
    """A confirmed, mature output of one of the wallet's keys."""

    outpoint: OutPoint
    amount: int
    key: WalletKey


@dataclass(frozen=True)
class AddressBalance:
    address: str
    label: str
    spendable: int  # confirmed and mature
    immature: int  # coinbase rewards younger than coinbase_maturity blocks: the node counts them, send cannot
    pending: int  # received minus sent by pending transactions

    @property
    def confirmed(self) -> int:
        return self.spendable + self.immature


@dataclass(frozen=True)
class Payment:
    """A signed payment ready to send."""

    tx: Transaction
    to_address: str
    amount: int
    fee: int
    change: int
    change_address: str
    balance_after: int
    fee_rate: int = DEFAULT_FEE_RATE
    fee_source: str = ""  # "node estimate", "--fee", or "default"
    wallet: WalletFile | None = field(default=None, repr=False, compare=False)
    change_key: WalletKey | None = field(default=None, repr=False)  # saved in the wallet file by send()


@dataclass(frozen=True)
class FeeRate:
    """The node's fee-rate estimate (base units per byte) and the mempool's current floor."""

    rate: int
    mempool_min: int


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


class LightWallet:
    """One wallet file, the nodes it asks, and the headers it checked itself."""

    def __init__(
        self,
        path: Path,
        params: NetworkParams,
        client: NodeClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.params = params
        self.client = client
        self.clock = clock
        self.headers_path = self.path.with_name(self.path.name + ".headers")
        self.header_file = HeaderFile(self.headers_path, params)
        self._chain: HeaderChain | None = None  # loaded when first needed: balance does not read headers

    # -- headers --------------------------------------------------------------------------------------------

    @property
    def chain(self) -> HeaderChain:
        if self._chain is None:
            self._chain = self.header_file.load(int(self.clock()))
        return self._chain

    def sync_headers(self) -> int:
        """Fetch and verify headers from the node until its chain is known; SpvError if it lies."""
        total = 0
        chain = self.chain
        try:
            while True:
                locator = ",".join(hash_hex(h) for h in chain.locator())
                data = self.client.get("/headers", {"locator": locator})
                raw = data.get("headers")
                if not isinstance(raw, list) or len(raw) > MAX_HEADERS_RESULTS:
                    raise SpvError(f"{self.client.answered_by} answered /headers without a header list")
                try:
                    headers = [BlockHeader.deserialize(bytes.fromhex(h)) for h in raw]
                except (ValueError, TypeError, DecodeError) as e:
                    raise SpvError(f"{self.client.answered_by} sent undecodable headers") from e
                try:
                    added = chain.add(headers, int(self.clock()))
                except SpvError as e:
                    raise SpvError(f"{self.client.answered_by} is not trustworthy: {e}") from e
                total += added
                if len(headers) < MAX_HEADERS_RESULTS or not added:
                    return total
        finally:  # what was verified before a lie or a lost connection is kept
            with locked(self.headers_path):
                self.header_file.save(chain)

    # -- keys and addresses ---------------------------------------------------------------------------------

    def addresses(self) -> list[tuple[str, str]]:
        return WalletFile.addresses(self.path, self.params)

    def _address_report(self, address: str, offset: int = 0, limit: int = 1) -> dict:
        report = self.client.get(f"/address/{address}", {"limit": limit, "offset": offset})
        shape = {
            "balance": int,
            "pending_received": int,
            "pending_sent": int,
            "utxos": list,
            "history": list,
            "pending": list,
        }
        if not all(isinstance(report.get(key), kind) for key, kind in shape.items()) or not all(
            isinstance(row, dict) and isinstance(row.get("txid"), str) for row in report["history"] + report["pending"]
        ):
            raise SpvError(f"{self.client.answered_by} is not trustworthy: a malformed report on {address}")
        if len(report["utxos"]) > MAX_UTXOS:
            raise SpvError(f"{self.client.answered_by} is not trustworthy: over {MAX_UTXOS} coins for {address}")
        return report

    def _tip_height(self) -> int:
        height = self.client.get("/status").get("height")
        if not isinstance(height, int) or height < 0:
            raise SpvError(f"{self.client.answered_by} is not trustworthy: its status has no height")
        return height

    def _coins(self, report: dict, address: str, tip: int) -> list[tuple[OutPoint, int, bool]]:
        """(outpoint, amount, mature) of each coin in an /address report."""
        coins = []
        for u in report["utxos"]:
            try:
                outpoint = OutPoint(_parse_txid(u["txid"]), int(u["index"]))
                amount = int(u["amount"])
                mature = not u["coinbase"] or tip + 1 - int(u["height"]) >= self.params.coinbase_maturity
            except (KeyError, TypeError, ValueError, SpvError) as e:
                raise SpvError(f"{self.client.answered_by} is not trustworthy: a malformed coin of {address}") from e
            coins.append((outpoint, amount, mature))
        return coins

    def balances(self) -> list[AddressBalance]:
        """Per address: spendable, immature and pending, as the node reports them (SPV cannot prove unspent)."""
        tip = self._tip_height()
        result = []
        for address, label in self.addresses():
            report = self._address_report(address)
            coins = self._coins(report, address, tip)
            spendable = sum(amount for _, amount, mature in coins if mature)
            immature = sum(amount for _, amount, mature in coins if not mature)
            pending = int(report["pending_received"]) - int(report["pending_sent"])
            result.append(AddressBalance(address, label, spendable, immature, pending))
        return result

    def is_used(self, address: str) -> bool:
        """Whether any tx, confirmed or pending, touches `address` (for a restore's gap-limit scan)."""
        report = self._address_report(address)
        return bool(report["history"] or report["pending"] or report["utxos"])

    # -- verified transactions ------------------------------------------------------------------------------

    def fetch_tx(self, txid_hex: str) -> dict:
        """A tx as the node describes it, after checking its bytes hash to the txid."""
        txid = _parse_txid(txid_hex)
        if txid is None:
            raise SpvError(f"{self.client.answered_by} is not trustworthy: it names a txid {str(txid_hex)[:80]!r}")
        data = self.client.get(f"/tx/{txid_hex}")
        data["tx"] = self._checked_tx(txid, data.get("hex"))
        return data

    def _checked_tx(self, txid: bytes, raw_hex: object) -> Transaction:
        """A node's bytes for `txid`, decoded; SpvError unless they hash to it."""
        try:
            raw = bytes.fromhex(raw_hex)  # type: ignore[arg-type]
            check_tx_bytes(txid, raw)
            return Transaction.deserialize(raw)
        except (TypeError, ValueError, DecodeError, SpvError) as e:
            raise SpvError(
                f"{self.client.answered_by} is not trustworthy: its tx {hash_hex(txid)} is wrong ({e})"
            ) from e

    def verify_confirmed(self, txid_hex: str) -> tuple[int, int]:
        """(height, time) of a confirmed tx, proven by a merkle proof to a verified header."""
        proof = self.client.get(f"/merkle-proof/{txid_hex}")
        try:
            block_hash = hash_from_hex(proof["block_hash"])
            branch = [hash_from_hex(h) for h in proof["branch"]]
            position = int(proof["index"])
        except (KeyError, TypeError, ValueError) as e:
            raise SpvError(f"{self.client.answered_by} sent a malformed merkle proof for {txid_hex}") from e
        try:
            entry = self.chain.verify_inclusion(hash_from_hex(txid_hex), block_hash, position, branch)
        except SpvError as e:
            raise SpvError(f"{self.client.answered_by} is not trustworthy: {e}") from e
        return entry.height, entry.header.time

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
                txid = _parse_txid(txid_hex)
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
        txid = _parse_txid(item.get("txid"))
        if txid is None:
            raise SpvError(f"{liar} is not trustworthy: it names a txid {str(item.get('txid'))[:80]!r}")
        return _Row(self._checked_tx(txid, item.get("hex")), None, 0, None)

    def _proven_row(self, item: object, liar: str) -> _Row:
        """A history row whose bytes hash to its txid and whose merkle proof leads to a verified header on the
        best chain at the height the node gives."""
        if not isinstance(item, dict):
            raise SpvError(f"{liar} is not trustworthy: a malformed history row")
        txid = _parse_txid(item.get("txid"))
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

    # -- paying ---------------------------------------------------------------------------------------------

    def fee_estimate(self) -> FeeRate:
        """The node's estimate; SpvError for an answer that is not a sane rate (it would be paid as fee)."""
        data = self.client.get("/fee-estimate")
        rate, floor = data.get("fee_rate"), data.get("mempool_min_fee_rate", 0)
        if not isinstance(rate, int) or not isinstance(floor, int) or not 1 <= rate <= MAX_ESTIMATE_RATE:
            raise SpvError(
                f"{self.client.answered_by} is not trustworthy: a fee estimate of {str(rate)[:40]} per byte "
                f"(the wallet pays at most {MAX_ESTIMATE_RATE} without --fee)"
            )
        return FeeRate(rate, max(floor, 0))

    def spendable(self, wallet: WalletFile) -> list[Spendable]:
        """Confirmed outputs of our keys that are mature and not already spent by a pending tx."""
        tip = self._tip_height()
        pending_spends: set[OutPoint] = set()
        coins = []
        for key in wallet.keys:
            report = self._address_report(key.address)
            for row in report["pending"]:
                tx = self.fetch_tx(row["txid"])["tx"]
                pending_spends.update(txin.prevout for txin in tx.inputs)
            for outpoint, amount, mature in self._coins(report, key.address, tip):
                if mature:
                    coins.append(Spendable(outpoint, amount, key))
        return [c for c in coins if c.outpoint not in pending_spends]

    def _check_coin(self, coin: Spendable) -> None:
        """The coin as its parent tx (fetched by txid, so checked) says. Signatures do not commit to the amounts
        spent: a node understating a coin would make the difference an unseen fee."""
        parent = self.fetch_tx(hash_hex(coin.outpoint.txid))["tx"]
        index = coin.outpoint.index
        if index >= len(parent.outputs) or parent.outputs[index] != TxOut(coin.amount, coin.key.key.pubkey_hash):
            raise SpvError(
                f"{self.client.answered_by} is not trustworthy: it reports coin {coin.outpoint} as "
                f"{format_coins(coin.amount)} to {coin.key.address}, which is not what that tx pays"
            )

    def make_payment(self, wallet: WalletFile, to_address: str, amount: int, fee_rate: int | None = None) -> Payment:
        """Pick coins (largest first), send change to a fresh address of ours, sign every input here.

        `fee_rate` None: the node's estimate. The change key is saved in the wallet file (under its lock)
        before the tx is signed, so coins are never sent to a key the file does not hold.
        """
        try:
            to_hash = pubkey_hash_from_address(to_address, self.params.address_version)
        except DecodeError as e:
            raise WalletError(f"{to_address!r} is not a {self.params.name} address: {e}") from e
        if amount <= 0:
            raise WalletError("the amount must be more than zero")
        if fee_rate is None:
            try:
                fee_rate, source = self.fee_estimate().rate, "node estimate"
            except NodeError as e:
                if e.reason == "unreachable":
                    raise
                fee_rate, source = DEFAULT_FEE_RATE, "default: the node gives no estimate"
        else:
            source = "--fee"
        if fee_rate < 0:
            raise WalletError("the fee rate must not be negative")
        coins = sorted(self.spendable(wallet), key=lambda c: c.amount, reverse=True)
        available = sum(c.amount for c in coins)
        chosen: list[Spendable] = []
        for coin in coins:
            chosen.append(coin)
            total = sum(c.amount for c in chosen)
            fee = fee_rate * _estimated_size(len(chosen), 2)
            if total >= amount + fee:
                for coin_in in chosen:
                    self._check_coin(coin_in)
                change = total - amount - fee
                outputs = [TxOut(amount, to_hash)]
                change_key = None
                if change > 0:
                    change_key = wallet.next_change_key()  # privacy: never an address used before
                    outputs.append(TxOut(change, change_key.key.pubkey_hash))
                tx = Transaction(1, tuple(TxIn(c.outpoint, c.key.key.pubkey, b"") for c in chosen), tuple(outputs))
                signed = tx
                for i, coin_in in enumerate(chosen):
                    signature = sign_input(tx, i, coin_in.key.key, self.params.genesis_hash)
                    inputs = list(signed.inputs)
                    inputs[i] = TxIn(coin_in.outpoint, coin_in.key.key.pubkey, signature)
                    signed = Transaction(1, tuple(inputs), tx.outputs)
                return Payment(
                    signed,
                    to_address,
                    amount,
                    fee,
                    change,
                    change_key.address if change_key else "",
                    available - amount - fee,
                    fee_rate,
                    source,
                    wallet,
                    change_key,
                )
        needed = amount + fee_rate * _estimated_size(max(len(coins), 1), 2)
        raise WalletError(
            f"not enough spendable coins: {format_coins(available)} spendable, {format_coins(needed)} needed with fee"
        )

    def send(self, payment: Payment) -> list[tuple[str, str]]:
        """Save the change key, then send the tx to every node."""
        if payment.change_key is not None and payment.wallet is not None:
            payment.wallet.save_key(payment.change_key)
        return self.client.send_tx(payment.tx.serialize())


def _parse_txid(txid_hex: object) -> bytes | None:
    """A txid as shown to people (64 hex digits) in internal byte order; None if it is not one."""
    if not isinstance(txid_hex, str) or len(txid_hex) != 64:
        return None
    try:
        txid = hash_from_hex(txid_hex)
    except ValueError:
        return None
    return txid if len(txid) == 32 else None  # fromhex() skips spaces


def _estimated_size(inputs: int, outputs: int) -> int:
    """Bytes of a payment: 4 version + 1 + inputs x (36 outpoint + 34 key + 73 signature) + 1 + outputs x 28 + 4."""
    return 10 + inputs * 143 + outputs * 28
