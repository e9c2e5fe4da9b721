"""The wallet library behind wallet.py: nodes to ask, coins to pick, payments to sign, history to check.

Private keys never leave this process: transactions are signed here and only their bytes are sent.
Nothing a node says is taken on trust where it can be checked: headers are verified from the genesis
(`spv.HeaderChain`), and every confirmed transaction shown needs a merkle proof to a verified header.
The pieces: `nodeclient.py` (asking nodes), `payment.py` (coin selection and signing), `history.py`
(verified history); `LightWallet` here checks what nodes answer and puts them together.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from simplecoin.core.amounts import format_coins
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash_from_hex, hash_hex, sha256d
from simplecoin.core.keys import pubkey_hash_from_address
from simplecoin.core.params import MAX_HEADERS_RESULTS, NetworkParams
from simplecoin.core.primitives import HEADER_SIZE, OutPoint, Transaction, TxOut
from simplecoin.core.spv import HeaderChain, SpvError, check_tx_bytes
from simplecoin.wallet.headerfile import HeaderFile
from simplecoin.wallet.history import HistoryEntry, HistoryPage, VerifiedHistory
from simplecoin.wallet.keyfile import WalletFile, WalletKey, locked
from simplecoin.wallet.nodeclient import NodeClient, NodeError, parse_txid
from simplecoin.wallet.payment import DEFAULT_FEE_RATE, FEE_SOURCE_FLAG, Payment, Spendable, WalletError, pay

# What wallet.py and tests take from here; each lives in the module named above.
__all__ = [
    "AddressBalance",
    "FeeRate",
    "HistoryEntry",
    "HistoryPage",
    "LightWallet",
    "NodeClient",
    "NodeError",
    "Payment",
    "Spendable",
    "WalletError",
]

MAX_ESTIMATE_RATE = 10_000  # base units per byte: a larger "estimate" is a node trying to burn our coins
# Coins the wallet asks for per /address page: the node's most, ~150 kB of JSON, far below the 10 MB it reads of
# one answer (nodeclient.MAX_RESPONSE_BYTES). A whole 112,001-coin address in one answer was 14.4 MB, and the
# wallet blamed the honest node for it.
UTXO_PAGE = 1_000
MAX_UTXOS = 200_000  # coins of one address the wallet lists page by page (a miner collects 2,880 a day)


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
class FeeRate:
    """The node's fee-rate estimate (base units per byte) and the mempool's current floor."""

    rate: int
    mempool_min: int


class LightWallet(VerifiedHistory):
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
        """Fetch and verify headers from the node until its chain is known; SpvError if it lies.

        Pipelined: while one answer is checked (the wallet's CPU), the next is asked for after that answer's last
        header (the node's), so the node's work and ours overlap (bench/bench_scale.py: the first run at a year of
        chain). The locator behind that unchecked hash is the verified chain's, so a node that does not know it
        still answers from where the verified headers end; nothing is kept before it is checked.
        """
        total = 0
        chain = self.chain
        pending: _Request | None = None
        try:
            pending = _Request(self.client, chain.locator())
            while True:
                raw, answered_by = pending.result()
                # Fewer than even an old node's JSON answer holds: the node has no more (a binary answer between
                # the two caps costs one more, empty, request).
                more = len(raw) >= MAX_HEADERS_RESULTS * HEADER_SIZE
                if more:
                    pending = _Request(self.client, [sha256d(raw[-HEADER_SIZE:]), *chain.locator()])
                try:
                    added = chain.add_raw(raw, int(self.clock()))
                except SpvError as e:
                    raise SpvError(f"{answered_by} is not trustworthy: {e}") from e
                total += added
                if not more or not added:
                    return total
        except (KeyboardInterrupt, SystemExit):
            pending = None  # the wallet is leaving: a request in flight is not waited for
            raise
        finally:
            if pending is not None:
                pending.join()  # one asked for before a lie was found: the client is free when we return
            with locked(self.headers_path):  # what was verified before a lie or a lost connection is kept
                self.header_file.save(chain)

    # -- keys and addresses ---------------------------------------------------------------------------------

    def addresses(self) -> list[tuple[str, str]]:
        return WalletFile.addresses(self.path, self.params)

    def _address_report(self, address: str, offset: int = 0, limit: int = 1, utxo_cursor: str | None = None) -> dict:
        """One /address page: totals, up to UTXO_PAGE coins after `utxo_cursor`, `limit` history rows."""
        query: dict = {"limit": limit, "offset": offset, "utxo_limit": UTXO_PAGE}
        if utxo_cursor is not None:
            query["utxo_cursor"] = utxo_cursor
        report = self.client.get(f"/address/{address}", query)
        shape = {
            "tip_height": int,
            "balance": int,
            "immature": int,
            "pending_received": int,
            "pending_sent": int,
            "utxos": list,
            "history": list,
            "pending": list,
        }
        if (
            not all(isinstance(report.get(key), kind) for key, kind in shape.items())
            or not all(
                isinstance(row, dict) and isinstance(row.get("txid"), str)
                for row in report["history"] + report["pending"]
            )
            or not 0 <= report["immature"] <= report["balance"]
            or not isinstance(report.get("next_utxo_cursor"), str | None)
        ):
            raise SpvError(f"{self.client.answered_by} is not trustworthy: a malformed report on {address}")
        if len(report["utxos"]) > UTXO_PAGE:
            raise SpvError(
                f"{self.client.answered_by} is not trustworthy: {len(report['utxos'])} coins of {address} in one "
                f"page, over the {UTXO_PAGE} asked for"
            )
        return report

    def _coins(self, report: dict, address: str) -> list[tuple[OutPoint, int, bool]]:
        """(outpoint, amount, mature) of each coin in an /address page (mature: spendable in the page's next
        block)."""
        tip = report["tip_height"]
        coins = []
        for u in report["utxos"]:
            try:
                outpoint = OutPoint(parse_txid(u["txid"]), int(u["index"]))
                amount = int(u["amount"])
                mature = not u["coinbase"] or tip + 1 - int(u["height"]) >= self.params.coinbase_maturity
            except (KeyError, TypeError, ValueError, SpvError) as e:
                raise SpvError(f"{self.client.answered_by} is not trustworthy: a malformed coin of {address}") from e
            coins.append((outpoint, amount, mature))
        return coins

    def balances(self) -> list[AddressBalance]:
        """Per address: spendable, immature and pending, as the node reports them (SPV cannot prove unspent).

        One request per address whatever it holds: the node sums the coins (`balance`, `immature`).
        """
        result = []
        for address, label in self.addresses():
            report = self._address_report(address)
            immature = report["immature"]
            pending = report["pending_received"] - report["pending_sent"]
            result.append(AddressBalance(address, label, report["balance"] - immature, immature, pending))
        return result

    def is_used(self, address: str) -> bool:
        """Whether any tx, confirmed or pending, touches `address` (for a restore's gap-limit scan)."""
        report = self._address_report(address)
        return bool(report["history"] or report["pending"] or report["utxos"])

    # -- verified transactions ------------------------------------------------------------------------------

    def fetch_tx(self, txid_hex: str) -> dict:
        """A tx as the node describes it, after checking its bytes hash to the txid."""
        txid = parse_txid(txid_hex)
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
        """Confirmed outputs of our keys that are mature and not already spent by a pending tx, largest first."""
        return list(self._spendable_coins(wallet)[0])

    def _spendable_coins(self, wallet: WalletFile) -> tuple[Iterator[Spendable], Callable[[], int]]:
        """Our spendable coins, largest first across keys, fetched a page at a time as they are read; and the
        spendable total (exact for a key whose pages were all read, else from the node's totals)."""
        pending_spends: set[OutPoint] = set()
        firsts = []
        for key in wallet.keys:
            report = self._address_report(key.address)
            for row in report["pending"]:
                tx = self.fetch_tx(row["txid"])["tx"]
                pending_spends.update(txin.prevout for txin in tx.inputs)
            firsts.append((key, report))
        walks = [_CoinWalk(self, key, report, pending_spends) for key, report in firsts]
        merged = heapq.merge(*(walk.coins() for walk in walks), key=lambda c: -c.amount)
        return merged, lambda: sum(walk.available() for walk in walks)

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

        `fee_rate` None: the node's estimate. The change key is not saved here: `send` saves it in the wallet
        file (under its lock) before the tx goes to any node, so a payment not sent leaves the file as it was
        and coins are never sent to a key the file does not hold.
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
            source = FEE_SOURCE_FLAG
        if fee_rate < 0:
            raise WalletError("the fee rate must not be negative")
        coins, available = self._spendable_coins(wallet)
        tx, fee, change, change_key = pay(
            coins, to_hash, amount, fee_rate, wallet, self.params, self._check_coin, available
        )
        return Payment(
            tx,
            to_address,
            amount,
            fee,
            change,
            change_key.address if change_key else "",
            available() - amount - fee,
            fee_rate,
            source,
            wallet,
            change_key,
        )

    def send(self, payment: Payment) -> list[tuple[str, str]]:
        """Save the change key, then send the tx to every node."""
        if payment.change_key is not None and payment.wallet is not None:
            payment.wallet.save_key(payment.change_key)
        return self.client.send_tx(payment.tx.serialize())


class _CoinWalk:
    """One key's spendable coins, page by page from its first /address page (largest first, as the node pages)."""

    def __init__(self, light: LightWallet, key: WalletKey, first: dict, pending_spends: set[OutPoint]) -> None:
        self.light, self.key, self.first, self.pending_spends = light, key, first, pending_spends
        self.seen = 0  # the amount of the spendable coins read
        self.done = False  # every page read

    def coins(self) -> Iterator[Spendable]:
        report, listed = self.first, set()
        while True:
            for outpoint, amount, mature in self.light._coins(report, self.key.address):
                if outpoint in listed:  # a cursor that went back: the same coin twice would be spent twice
                    raise SpvError(f"{self.light.client.answered_by} is not trustworthy: it lists {outpoint} twice")
                listed.add(outpoint)
                if mature and outpoint not in self.pending_spends:
                    self.seen += amount
                    yield Spendable(outpoint, amount, self.key)
            cursor = report["next_utxo_cursor"]
            if cursor is None:
                self.done = True
                return
            if not report["utxos"]:  # "more after nothing" would keep the wallet asking forever
                raise SpvError(f"{self.light.client.answered_by} is not trustworthy: an empty page with a next one")
            if len(listed) >= MAX_UTXOS:
                raise WalletError(
                    f"{self.key.address} holds more than {MAX_UTXOS} coins, more than the wallet lists; its balance "
                    "and payments from its largest coins still work"
                )
            report = self.light._address_report(self.key.address, utxo_cursor=cursor)

    def available(self) -> int:
        """Spendable total: what was read if every page was, else the node's totals less its pending spends."""
        if self.done:
            return self.seen
        report = self.first
        return max(report["balance"] - report["immature"] - report["pending_sent"], 0)


class _Request(threading.Thread):
    """One /headers request on a thread of its own, started at once; `result()` waits for it. A daemon: the
    wallet leaves on an error or a Ctrl-C at once, not after the request's timeout (an executor's thread is
    waited for at exit). The node client is used by one request at a time: the next starts after `result()`."""

    def __init__(self, client: NodeClient, locator: list[bytes]) -> None:
        super().__init__(name="wallet-headers", daemon=True)
        self._client, self._locator = client, locator
        self._answer: tuple[bytes, str] | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._answer = self._client.headers(self._locator), self._client.answered_by
        except BaseException as e:  # noqa: BLE001 - raised in the waiting thread, by result()
            self._error = e

    def result(self) -> tuple[bytes, str]:
        """The headers answered and who answered them; what the request raised, raised here."""
        self.join()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer
