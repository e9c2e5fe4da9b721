"""The wallet library behind wallet.py: nodes to ask, coins to pick, payments to sign, history to check.

Private keys never leave this process: transactions are signed here and only their bytes are sent.
Nothing a node says is taken on trust where it can be checked: headers are verified from the genesis
(`spv.HeaderChain`), and every confirmed transaction shown needs a merkle proof to a verified header.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from simplecoin.core.amounts import format_coins
from simplecoin.core.errors import DecodeError, SimpleCoinError
from simplecoin.core.hashing import hash160, hash_from_hex, hash_hex
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address, sign_input
from simplecoin.core.params import MAX_HEADERS_RESULTS, NetworkParams
from simplecoin.core.primitives import HEADER_SIZE, BlockHeader, OutPoint, Transaction, TxIn, TxOut
from simplecoin.core.spv import HeaderChain, SpvError, check_tx_bytes
from simplecoin.httpjson import BadAnswer, read_json_object
from simplecoin.wallet.keyfile import WalletFile, WalletKey

TIMEOUT = (3.0, 15.0)
MAX_RESPONSE_BYTES = 10_000_000
DEFAULT_FEE_RATE = 2  # base units per byte: twice the nodes' minimum relay fee
HISTORY_LIMIT = 100


class NodeError(SimpleCoinError):
    """Raised when no node answers, or a node refuses a request (`reason` is the node's reject reason)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class WalletError(SimpleCoinError):
    """Raised for a payment the wallet will not make (amount, balance, address)."""


class NodeClient:
    """Talks to one or more nodes: the first reachable one answers queries; payments go to all."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.session = requests.Session()
        self.answered_by = ""

    def _request(self, method: str, url: str, **kwargs) -> dict:
        with self.session.request(method, url, timeout=TIMEOUT, stream=True, **kwargs) as response:
            try:
                data = read_json_object(response, MAX_RESPONSE_BYTES)
            except BadAnswer as e:
                raise NodeError(f"{url} {e}") from e
            if response.status_code >= 400:
                raise NodeError(str(data.get("error", response.status_code)), str(data.get("reason", "")))
            return data

    def get(self, path: str, params: dict | None = None) -> dict:
        errors = []
        for base in self.urls:
            try:
                data = self._request("GET", base + path, params=params)
                self.answered_by = base
                return data
            except requests.RequestException as e:
                errors.append(f"{base}: {type(e).__name__}")
        raise NodeError("no node could be reached (" + "; ".join(errors) + ")", "unreachable")

    def send_tx(self, raw: bytes) -> list[tuple[str, str]]:
        """POST the tx to every node; (url, "" or the error) per node. NodeError if none accepted it."""
        results = []
        for base in self.urls:
            try:
                self._request("POST", base + "/tx", json={"hex": raw.hex()})
                results.append((base, ""))
            except requests.RequestException as e:
                results.append((base, f"unreachable ({type(e).__name__})"))
            except NodeError as e:
                results.append((base, f"{e.reason}: {e}" if e.reason else str(e)))
        if not any(error == "" for _, error in results):
            first = next((r for r in results if not r[1].startswith("unreachable")), results[0])
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
    confirmed: int
    pending: int  # received minus sent by pending transactions


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
        self.chain = HeaderChain(params)
        self._load_headers()

    # -- headers --------------------------------------------------------------------------------------------

    def _load_headers(self) -> None:
        """Headers saved by an earlier run are checked again: the file is a cache, not a trusted source."""
        if not self.headers_path.exists():
            return
        raw = self.headers_path.read_bytes()
        headers = [BlockHeader.deserialize(raw[i : i + HEADER_SIZE]) for i in range(0, len(raw) - len(raw) % 80, 80)]
        try:
            self.chain.add(headers, int(self.clock()))
        except SpvError:
            self.chain = HeaderChain(self.params)  # a damaged cache: start again from the genesis

    def sync_headers(self) -> int:
        """Fetch and verify headers from the node until its chain is known; SpvError if it lies."""
        total = 0
        while True:
            locator = ",".join(hash_hex(h) for h in self.chain.locator())
            data = self.client.get("/headers", {"locator": locator})
            raw = data.get("headers")
            if not isinstance(raw, list):
                raise SpvError(f"{self.client.answered_by} answered /headers without a header list")
            try:
                headers = [BlockHeader.deserialize(bytes.fromhex(h)) for h in raw]
            except (ValueError, TypeError, DecodeError) as e:
                raise SpvError(f"{self.client.answered_by} sent undecodable headers") from e
            try:
                added = self.chain.add(headers, int(self.clock()))
            except SpvError as e:
                raise SpvError(f"{self.client.answered_by} is not trustworthy: {e}") from e
            if added:
                with self.headers_path.open("ab") as f:
                    for header in headers:
                        f.write(header.serialize())
            total += added
            if len(headers) < MAX_HEADERS_RESULTS or not added:
                return total

    # -- keys and addresses ---------------------------------------------------------------------------------

    def addresses(self) -> list[tuple[str, str]]:
        return WalletFile.addresses(self.path, self.params)

    def _address_report(self, address: str, offset: int = 0) -> dict:
        report = self.client.get(f"/address/{address}", {"limit": HISTORY_LIMIT, "offset": offset})
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
        return report

    def balances(self) -> list[AddressBalance]:
        result = []
        for address, label in self.addresses():
            report = self._address_report(address)
            pending = int(report["pending_received"]) - int(report["pending_sent"])
            result.append(AddressBalance(address, label, int(report["balance"]), pending))
        return result

    # -- verified transactions ------------------------------------------------------------------------------

    def fetch_tx(self, txid_hex: str) -> dict:
        """A tx as the node describes it, after checking its bytes hash to the txid."""
        txid = _parse_txid(txid_hex)
        if txid is None:
            raise SpvError(f"{self.client.answered_by} is not trustworthy: it names a txid {str(txid_hex)[:80]!r}")
        data = self.client.get(f"/tx/{txid_hex}")
        try:
            tx = Transaction.deserialize(bytes.fromhex(data["hex"]))
            check_tx_bytes(txid, tx.serialize())
        except (KeyError, TypeError, ValueError, DecodeError, SpvError) as e:
            raise SpvError(f"{self.client.answered_by} is not trustworthy: its tx {txid_hex} is wrong ({e})") from e
        data["tx"] = tx
        return data

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

    def history(self) -> list[HistoryEntry]:
        """Every tx touching the wallet, newest first, each confirmed one checked against the headers."""
        self.sync_headers()
        ours = {pubkey_hash_from_address(a, self.params.address_version) for a, _ in self.addresses()}
        seen: dict[str, bool] = {}  # txid -> pending
        for address, _ in self.addresses():
            report = self._address_report(address)
            for row in report["pending"]:
                seen[row["txid"]] = True
            offset = 0
            while True:  # the node answers a page of at most HISTORY_LIMIT rows, newest first: read them all
                for row in report["history"]:
                    seen.setdefault(row["txid"], False)
                if len(report["history"]) < HISTORY_LIMIT:
                    break
                offset += HISTORY_LIMIT
                report = self._address_report(address, offset)
        entries = [self._history_entry(txid, pending, ours) for txid, pending in seen.items()]
        return sorted(entries, key=lambda e: (not e.pending, -(e.height or 0)))

    def _history_entry(self, txid: str, pending: bool, ours: set[bytes]) -> HistoryEntry:
        data = self.fetch_tx(txid)
        tx: Transaction = data["tx"]
        height = block_time = None
        confirmations = 0
        if not pending:
            height, block_time = self.verify_confirmed(txid)
            confirmations = self.chain.tip.height - height + 1
        received = sum(o.amount for o in tx.outputs if o.pubkey_hash in ours)
        spent = 0
        fee = None
        our_inputs = [i for i in tx.inputs if not tx.is_coinbase() and hash160(i.pubkey) in ours]
        if our_inputs:
            for txin in our_inputs:
                parent = self.fetch_tx(hash_hex(txin.prevout.txid))["tx"]
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
        return HistoryEntry(txid, direction, amount, counterparties, fee, confirmations, height, block_time, pending)

    # -- paying ---------------------------------------------------------------------------------------------

    def spendable(self, wallet: WalletFile) -> list[Spendable]:
        """Confirmed outputs of our keys that are mature and not already spent by a pending tx."""
        tip = int(self.client.get("/status")["height"])
        pending_spends: set[OutPoint] = set()
        coins = []
        for key in wallet.keys:
            report = self._address_report(key.address)
            for row in report["pending"]:
                tx = self.fetch_tx(row["txid"])["tx"]
                pending_spends.update(txin.prevout for txin in tx.inputs)
            for u in report["utxos"]:
                try:
                    if u["coinbase"] and tip + 1 - int(u["height"]) < self.params.coinbase_maturity:
                        continue
                    outpoint = OutPoint(_parse_txid(u["txid"]), int(u["index"]))
                    coins.append(Spendable(outpoint, int(u["amount"]), key))
                except (KeyError, TypeError, ValueError, SpvError) as e:
                    raise SpvError(
                        f"{self.client.answered_by} is not trustworthy: a malformed coin of {key.address}"
                    ) from e
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

    def make_payment(self, wallet: WalletFile, to_address: str, amount: int, fee_rate: int) -> Payment:
        """Pick coins (largest first), add change to our first address, sign every input here."""
        try:
            to_hash = pubkey_hash_from_address(to_address, self.params.address_version)
        except DecodeError as e:
            raise WalletError(f"{to_address!r} is not a {self.params.name} address: {e}") from e
        if amount <= 0:
            raise WalletError("the amount must be more than zero")
        if fee_rate < 0:
            raise WalletError("the fee rate must not be negative")
        coins = sorted(self.spendable(wallet), key=lambda c: c.amount, reverse=True)
        available = sum(c.amount for c in coins)
        chosen: list[Spendable] = []
        change_key = wallet.keys[0]
        for coin in coins:
            chosen.append(coin)
            total = sum(c.amount for c in chosen)
            fee = fee_rate * _estimated_size(len(chosen), 2)
            if total >= amount + fee:
                for coin_in in chosen:
                    self._check_coin(coin_in)
                change = total - amount - fee
                outputs = [TxOut(amount, to_hash)]
                if change > 0:
                    outputs.append(TxOut(change, change_key.key.pubkey_hash))
                tx = Transaction(1, tuple(TxIn(c.outpoint, c.key.key.pubkey, b"") for c in chosen), tuple(outputs))
                signed = tx
                for i, coin_in in enumerate(chosen):
                    signature = sign_input(tx, i, coin_in.key.key, self.params.genesis_hash)
                    inputs = list(signed.inputs)
                    inputs[i] = TxIn(coin_in.outpoint, coin_in.key.key.pubkey, signature)
                    signed = Transaction(1, tuple(inputs), tx.outputs)
                return Payment(signed, to_address, amount, fee, change, change_key.address, available - amount - fee)
        needed = amount + fee_rate * _estimated_size(max(len(coins), 1), 2)
        raise WalletError(
            f"not enough spendable coins: {format_coins(available)} spendable, {format_coins(needed)} needed with fee"
        )

    def send(self, payment: Payment) -> list[tuple[str, str]]:
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
