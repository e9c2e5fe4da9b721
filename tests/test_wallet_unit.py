"""Wallet units: amounts people type, and payments: coin selection, change, fee, signatures, refusals.

Payments are made against a real regtest node in-process (its API answered through Flask's test client)
and then submitted to that node, so "valid" means what the node's own rules say.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from simplecoin.core.amounts import COIN, format_coins, parse_coins
from simplecoin.core.errors import TxValidationError
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.primitives import HEADER_SIZE, OutPoint
from simplecoin.core.spv import SpvError
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.wallet import client as wallet_client
from simplecoin.wallet import nodeclient
from simplecoin.wallet.client import FeeRate, LightWallet, NodeClient, NodeError, WalletError
from simplecoin.wallet.keyfile import WalletFile
from simplecoin.wallet.payment import HIGH_FEE_FACTOR, RELAY_MIN_FEE_RATE, _estimated_size
from simplecoin.web import api as api_module
from simplecoin.web.app import create_app
from tests.framework.builder import BOB, ChainBuilder

# -- amounts ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base_units"),
    [
        ("1", COIN),
        ("1.25", 125_000_000),
        ("0.00000001", 1),
        (".5", 50_000_000),
        ("21000000", 21_000_000 * COIN),
        ("0", 0),
        ("1.", COIN),
        (" 2.5 ", 250_000_000),
        ("0.10000000", 10_000_000),
        ("123456789.12345678", 123456789 * COIN + 12345678),
    ],
)
def test_parse_coins_valid(text, base_units):
    assert parse_coins(text) == base_units


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "'-1' is negative"),
        ("-0.5", "is negative"),
        ("1.000000001", "'1.000000001' has more than 8 decimals"),
        ("abc", "'abc' is not an amount in coins (like 1.25)"),
        ("1e3", "'1e3' is not an amount in coins (like 1.25)"),
        ("1,5", "'1,5' is not an amount in coins (like 1.25)"),
        ("", "'' is not an amount in coins (like 1.25)"),
        (" ", "' ' is not an amount in coins (like 1.25)"),
        ("１", "'１' is not an amount in coins (like 1.25)"),  # full-width digit one: int() would take it
        ("٣", "is not an amount in coins"),  # Arabic-Indic three
        ("1.2.3", "'1.2.3' is not an amount in coins (like 1.25)"),
        ("+1", "is not an amount in coins"),
        (".", "is not an amount in coins"),
        ("1 000", "is not an amount in coins"),
        ("1_000", "is not an amount in coins"),
        ("0x10", "is not an amount in coins"),
        ("nan", "is not an amount in coins"),
        ("1000000000", "is not an amount in coins"),  # more than 9 digits of whole coins
    ],
)
def test_parse_coins_invalid(text, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_coins(text)
    if message.startswith("'"):
        assert str(caught.value) == message


@pytest.mark.parametrize(
    ("base_units", "text"),
    [
        (0, "0.00000000"),
        (1, "0.00000001"),
        (COIN, "1.00000000"),
        (125_000_000, "1.25000000"),
        (-150_000_000, "-1.50000000"),
        (21_000_000 * COIN, "21000000.00000000"),
    ],
)
def test_format_coins(base_units, text):
    assert format_coins(base_units) == text


@pytest.mark.parametrize(
    "base_units", [0, 1, 9, 10, 99_999_999, COIN, COIN + 1, 123_456_789_012_345, 21_000_000 * COIN]
)
def test_format_coins_round_trips_through_parse_coins(base_units):
    assert parse_coins(format_coins(base_units)) == base_units


# -- payments -----------------------------------------------------------------------------------------------------

NOW = REGTEST.genesis_time + 86_400


class InProcessClient(NodeClient):
    """A NodeClient answered by a node's API in this process (no sockets)."""

    def __init__(self, service: NodeService) -> None:
        super().__init__(["http://in-process"])
        self.client = create_app(service).test_client()
        self.requests: list[str] = []

    def fetch(self, path: str, params: dict | None = None, binary: bool = False) -> dict | bytes:
        self.requests.append(path)
        answer = self.client.get(path, query_string=params or {})
        self.answered_by = self.urls[0]
        if binary and answer.status_code == 200 and answer.mimetype == "application/octet-stream":
            return answer.data
        data = answer.get_json()
        if answer.status_code >= 400:
            raise NodeError(str(data.get("error")), str(data.get("reason", "")))
        return data


class Setup:
    """
    genesis - m1 ... m13 - p14 - k15 - n16
    p14 pays key0 3 and 1 coins, key1 5 coins (from the miner's m1 and m2 coinbases)
    k15's coinbase pays key0 (immature until the tip is at 24)
    """

    def __init__(self, tmp_path: Path) -> None:
        self.wallet = WalletFile.create(tmp_path / "wallet.json", REGTEST).add_key("second")
        self.key0, self.key1 = (k.key for k in self.wallet.keys)
        self.node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
        self.service = NodeService(self.node)
        self.builder = b = ChainBuilder(REGTEST)
        b.chain([f"m{i}" for i in range(1, 14)])
        subsidy = REGTEST.subsidy(1)
        self.to_key0 = b.spend(
            "m1", [(3 * COIN, self.key0.pubkey_hash), (subsidy - 3 * COIN - 10_000, BOB.pubkey_hash)]
        )
        self.to_both = b.spend(
            "m2",
            [
                (5 * COIN, self.key1.pubkey_hash),
                (1 * COIN, self.key0.pubkey_hash),
                (subsidy - 6 * COIN - 1000, BOB.pubkey_hash),
            ],
        )
        b.block("p14", txs=[self.to_key0, self.to_both])
        b.block("k15", pay_to=self.key0.pubkey_hash)
        b.block("n16")
        for name in [*(f"m{i}" for i in range(1, 14)), "p14", "k15", "n16"]:
            self.mine(name)
        self.client = InProcessClient(self.service)
        self.light = LightWallet(tmp_path / "wallet.json", REGTEST, self.client, clock=lambda: NOW)
        self.coin5 = OutPoint(self.to_both.txid, 0)
        self.coin3 = OutPoint(self.to_key0.txid, 0)
        self.coin1 = OutPoint(self.to_both.txid, 1)
        self.coinbase = OutPoint(b["k15"].txs[0].txid, 0)

    def mine(self, name: str) -> None:
        assert self.node.submit_block(self.builder[name]).status == "accepted"

    def extend(self, count: int) -> None:
        tip = self.builder.name_of(self.node.tip.hash)
        for _ in range(count):
            name = f"e{self.node.height + 1}"
            self.builder.block(name, parent=tip)
            self.mine(name)
            tip = name


@pytest.fixture
def setup(tmp_path: Path):
    s = Setup(tmp_path)
    yield s
    s.node.close()


BOB_ADDRESS = address_from_pubkey_hash(BOB.pubkey_hash, REGTEST.address_version)


def test_spendable_lists_mature_confirmed_coins_of_every_key(setup: Setup):
    coins = {c.outpoint: c for c in setup.light.spendable(setup.wallet)}
    assert set(coins) == {setup.coin5, setup.coin3, setup.coin1}
    assert coins[setup.coin5].amount == 5 * COIN
    assert coins[setup.coin5].key.key == setup.key1
    assert coins[setup.coin3].key.key == setup.key0


def test_largest_coin_first_and_change_to_a_fresh_key_saved_when_sent(setup: Setup, monkeypatch):
    before = setup.wallet.path.read_bytes()
    payment = setup.light.make_payment(setup.wallet, BOB_ADDRESS, 4 * COIN, fee_rate=2)
    tx = payment.tx
    assert [i.prevout for i in tx.inputs] == [setup.coin5]  # 5 before 3 before 1, and 5 is enough
    fee = 2 * _estimated_size(1, 2)
    assert payment.fee == fee
    assert payment.change == 5 * COIN - 4 * COIN - fee
    change_key = payment.change_key
    assert change_key is not None
    assert change_key.label == "change"
    assert payment.change_address == change_key.address
    assert change_key.address not in {k.address for k in setup.wallet.keys}  # not the first key, not any key
    assert [(o.amount, o.pubkey_hash) for o in tx.outputs] == [
        (4 * COIN, BOB.pubkey_hash),
        (payment.change, change_key.key.pubkey_hash),
    ]
    assert setup.wallet.path.read_bytes() == before  # not sent yet: the file is as it was
    monkeypatch.setattr(setup.client, "send_tx", lambda raw: [("http://in-process", "")])
    setup.light.send(payment)
    saved = WalletFile.load(setup.wallet.path, REGTEST)
    assert [k.address for k in saved.keys] == [*(k.address for k in setup.wallet.keys), change_key.address]
    second = setup.light.make_payment(saved, BOB_ADDRESS, 4 * COIN, fee_rate=2)
    assert second.change_address not in {k.address for k in saved.keys}
    assert payment.balance_after == 9 * COIN - 4 * COIN - fee
    entry = setup.node.submit_tx(tx)
    assert entry.fee == fee
    assert fee >= 2 * tx.size


def test_several_inputs_of_several_keys_are_all_signed(setup: Setup):
    payment = setup.light.make_payment(setup.wallet, BOB_ADDRESS, 7 * COIN, fee_rate=2)
    assert [i.prevout for i in payment.tx.inputs] == [setup.coin5, setup.coin3]
    assert [i.pubkey for i in payment.tx.inputs] == [setup.key1.pubkey, setup.key0.pubkey]
    assert payment.fee == 2 * _estimated_size(2, 2)
    assert setup.node.submit_tx(payment.tx).fee == payment.fee
    assert sum(o.amount for o in payment.tx.outputs) + payment.fee == 8 * COIN


def test_all_three_coins_when_needed(setup: Setup):
    fee = 2 * _estimated_size(3, 2)
    payment = setup.light.make_payment(setup.wallet, BOB_ADDRESS, 9 * COIN - fee, fee_rate=2)
    assert [i.prevout for i in payment.tx.inputs] == [setup.coin5, setup.coin3, setup.coin1]
    assert payment.change == 0
    assert len(payment.tx.outputs) == 1  # no change output of zero
    assert payment.balance_after == 0
    setup.node.submit_tx(payment.tx)


def test_the_estimated_size_meets_the_minimum_relay_fee(setup: Setup):
    """At 1 unit per byte (the node's minimum) the estimate must not fall short of the real size."""
    for amount in (1 * COIN, 6 * COIN, 8 * COIN):
        payment = setup.light.make_payment(setup.wallet, BOB_ADDRESS, amount, fee_rate=1)
        assert payment.fee >= payment.tx.size
        assert payment.fee == _estimated_size(len(payment.tx.inputs), 2)
    setup.node.submit_tx(payment.tx)


def test_fee_rate_zero_makes_a_tx_the_node_refuses_for_its_fee(setup: Setup):
    payment = setup.light.make_payment(setup.wallet, BOB_ADDRESS, COIN, fee_rate=0)
    assert payment.fee == 0
    with pytest.raises(TxValidationError, match="min-relay-fee-not-met"):
        setup.node.submit_tx(payment.tx)


def test_an_immature_coinbase_is_not_spendable(setup: Setup):
    assert setup.coinbase not in {c.outpoint for c in setup.light.spendable(setup.wallet)}
    report = setup.client.get(f"/address/{setup.wallet.keys[0].address}")
    assert report["balance"] == 4 * COIN + REGTEST.subsidy(15)  # the node counts it; it is just not spendable
    with pytest.raises(WalletError, match=r"not enough spendable coins: 9\.00000000 spendable"):
        setup.light.make_payment(setup.wallet, BOB_ADDRESS, 20 * COIN, fee_rate=2)


def test_a_coinbase_becomes_spendable_exactly_when_the_node_takes_its_spend(setup: Setup):
    maturity_tip = 15 + REGTEST.coinbase_maturity - 1  # the next block, at 25, may spend it
    setup.extend(maturity_tip - 1 - setup.node.height)
    assert setup.coinbase not in {c.outpoint for c in setup.light.spendable(setup.wallet)}
    setup.extend(1)
    assert setup.node.height == maturity_tip
    assert setup.coinbase in {c.outpoint for c in setup.light.spendable(setup.wallet)}
    payment = setup.light.make_payment(setup.wallet, BOB_ADDRESS, 20 * COIN, fee_rate=2)
    assert [i.prevout for i in payment.tx.inputs] == [setup.coinbase]
    setup.node.submit_tx(payment.tx)


def test_coins_spent_by_a_pending_tx_are_not_reused(setup: Setup):
    first = setup.light.make_payment(setup.wallet, BOB_ADDRESS, 4 * COIN, fee_rate=2)
    setup.node.submit_tx(first.tx)
    assert setup.coin5 not in {c.outpoint for c in setup.light.spendable(setup.wallet)}
    second = setup.light.make_payment(setup.wallet, BOB_ADDRESS, 2 * COIN, fee_rate=2)
    assert [i.prevout for i in second.tx.inputs] == [setup.coin3]
    setup.node.submit_tx(second.tx)  # no conflict with the first
    third = setup.light.make_payment(setup.wallet, BOB_ADDRESS, COIN // 2, fee_rate=2)
    assert [i.prevout for i in third.tx.inputs] == [setup.coin1]
    setup.node.submit_tx(third.tx)
    with pytest.raises(WalletError, match=r"not enough spendable coins: 0\.00000000 spendable"):
        setup.light.make_payment(setup.wallet, BOB_ADDRESS, 1, fee_rate=2)


@pytest.mark.parametrize("amount", [0, -1, -COIN])
def test_zero_and_negative_amounts_are_refused(setup: Setup, amount):
    with pytest.raises(WalletError, match="the amount must be more than zero"):
        setup.light.make_payment(setup.wallet, BOB_ADDRESS, amount, fee_rate=2)


def test_more_than_the_balance_is_refused(setup: Setup):
    fee = 2 * _estimated_size(3, 2)
    with pytest.raises(WalletError, match=r"not enough spendable coins: 9\.00000000 spendable, 9\.00000001 needed"):
        setup.light.make_payment(setup.wallet, BOB_ADDRESS, 9 * COIN - fee + 1, fee_rate=2)
    with pytest.raises(WalletError, match="not enough spendable coins"):
        setup.light.make_payment(setup.wallet, BOB_ADDRESS, 100 * COIN, fee_rate=2)
    assert setup.light.make_payment(setup.wallet, BOB_ADDRESS, 9 * COIN - fee, fee_rate=2).balance_after == 0


def test_a_negative_fee_rate_is_refused(setup: Setup):
    with pytest.raises(WalletError, match="fee rate must not be negative"):
        setup.light.make_payment(setup.wallet, BOB_ADDRESS, COIN, fee_rate=-1)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "not-an-address",
        BOB_ADDRESS[:-1] + ("1" if BOB_ADDRESS[-1] != "1" else "2"),  # checksum broken
        address_from_pubkey_hash(BOB.pubkey_hash, MAIN.address_version),  # another network's
        BOB_ADDRESS + "1",
    ],
    ids=["empty", "junk", "checksum", "main-network", "too-long"],
)
def test_a_bad_address_is_refused(setup: Setup, address):
    setup.client.requests.clear()
    with pytest.raises(WalletError, match="is not a regtest address"):
        setup.light.make_payment(setup.wallet, address, COIN, fee_rate=2)
    assert setup.client.requests == []  # refused before asking the node anything


# -- a high fee is asked about again (issue 21) -------------------------------------------------------------------


class Prompter:
    """Answers the wallet's questions from a list, and remembers what it was asked and shown."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []
        self.shown: list[str] = []

    def ask(self, prompt: str) -> str:
        self.asked.append(prompt)
        return self.answers.pop(0)


def app_sending(setup: Setup, monkeypatch, prompter: Prompter, *flags: str, rate: int, interactive: bool):
    """wallet.py's App for `send BOB 1 <flags>`, on the in-process node, the node's estimate being `rate`."""
    from simplecoin.cli import wallet

    args = wallet.parse_args(
        ["--network", "regtest", "--wallet", str(setup.wallet.path), *flags, "send", BOB_ADDRESS, "1"]
    )
    app = wallet.App(args, prompter.ask, prompter.shown.append)
    app.interactive = interactive
    monkeypatch.setattr(app, "light", lambda: setup.light)
    monkeypatch.setattr(setup.light, "fee_estimate", lambda: FeeRate(rate, 0))
    sent: list[bytes] = []
    monkeypatch.setattr(setup.client, "send_tx", lambda raw: sent.append(raw) or [("http://in-process", "")])
    return app, sent


def test_a_fee_rate_over_10x_the_relay_minimum_is_asked_about_again_even_with_yes(setup: Setup, monkeypatch):
    prompter = Prompter("n")
    app, sent = app_sending(setup, monkeypatch, prompter, "--yes", rate=11 * RELAY_MIN_FEE_RATE, interactive=True)
    app.send(BOB_ADDRESS, "1", yes=True)
    assert sent == []
    assert prompter.asked == [f"the fee rate is over {HIGH_FEE_FACTOR}x the relay minimum: pay 0.00002299? [y/n] "]
    assert (
        "  fee     0.00002299 (< 0.01 % of the amount; 11 per byte, node estimate; --fee RATE to choose)"
        in (prompter.shown[0])
    )
    prompter.answers.append("y")
    app.send(BOB_ADDRESS, "1", yes=True)
    assert len(sent) == 1


def test_without_a_terminal_a_high_fee_with_yes_is_refused_in_one_line(setup: Setup, monkeypatch):
    from simplecoin.cli import wallet

    # The case: 1 coin at a 10,000-per-byte estimate (one input, two outputs: 209 bytes) paid 0.0209 coin.
    app, sent = app_sending(setup, monkeypatch, Prompter(), "--yes", rate=10_000, interactive=False)
    with pytest.raises(wallet.Failure, match=r"not sent: the fee would be 0\.02090000 \(2\.09 % of") as refused:
        app.send(BOB_ADDRESS, "1", yes=True)
    assert "pass --fee RATE" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert refused.value.code == wallet.EXIT_INPUT
    assert sent == []


def test_a_rate_given_with_fee_is_not_asked_about(setup: Setup, monkeypatch):
    prompter = Prompter()  # any question would fail: there are no answers
    app, sent = app_sending(setup, monkeypatch, prompter, "--yes", "--fee", "10000", rate=1, interactive=False)
    app.send(BOB_ADDRESS, "1", yes=True)
    assert (prompter.asked, len(sent)) == ([], 1)


def test_the_relay_minimum_times_10_is_not_asked_about(setup: Setup, monkeypatch):
    prompter = Prompter()
    app, sent = app_sending(
        setup, monkeypatch, prompter, "--yes", rate=HIGH_FEE_FACTOR * RELAY_MIN_FEE_RATE, interactive=False
    )
    app.send(BOB_ADDRESS, "1", yes=True)
    assert (prompter.asked, len(sent)) == ([], 1)


# -- headers in bulk ------------------------------------------------------------------------------------------------


def test_the_first_run_fetches_headers_in_binary_answers_and_stops_at_a_short_one(setup, monkeypatch):
    """With the caps made small (binary 5, JSON 2): the 16 headers come in answers of 5, 5, 5 and 1; the last,
    shorter than even a JSON answer, ends the sync."""
    monkeypatch.setattr(api_module, "MAX_HEADERS_BINARY_RESULTS", 5)
    monkeypatch.setattr(nodeclient, "MAX_HEADERS_BINARY_RESULTS", 5)
    monkeypatch.setattr(wallet_client, "MAX_HEADERS_RESULTS", 2)
    answered_in_bytes = []
    fetch = setup.client.fetch

    def recording(path: str, params: dict | None = None, binary: bool = False) -> dict | bytes:
        answer = fetch(path, params, binary)
        answered_in_bytes.append(isinstance(answer, bytes))
        return answer

    monkeypatch.setattr(setup.client, "fetch", recording)
    assert setup.light.sync_headers() == 16
    assert setup.light.chain.tip.hash == setup.node.tip.hash
    assert setup.client.requests == ["/headers"] * 4
    assert all(answered_in_bytes)
    assert setup.light.sync_headers() == 0  # known: one request, an empty answer
    assert setup.client.requests == ["/headers"] * 5


def test_the_next_answer_is_asked_for_while_one_is_checked(setup, monkeypatch):
    """Pipelined: the request after a full answer goes out before that answer is checked, its locator the
    answer's last (unchecked) header then the verified chain's; the sync ends the same."""
    monkeypatch.setattr(api_module, "MAX_HEADERS_BINARY_RESULTS", 5)
    monkeypatch.setattr(nodeclient, "MAX_HEADERS_BINARY_RESULTS", 5)
    monkeypatch.setattr(wallet_client, "MAX_HEADERS_RESULTS", 2)
    locators: list[list[bytes]] = []
    asked = [threading.Event() for _ in range(6)]
    headers = setup.client.headers

    def recording(locator: list[bytes]) -> bytes:
        locators.append(locator)
        asked[len(locators) - 1].set()
        return headers(locator)

    chain = setup.light.chain
    add_raw, overlapped = chain.add_raw, []

    def checking(raw: bytes, now: int) -> int:
        if len(raw) == 5 * HEADER_SIZE:  # a full answer: the next request is made meanwhile
            overlapped.append(asked[len(overlapped) + 1].wait(timeout=10))
        return add_raw(raw, now)

    monkeypatch.setattr(setup.client, "headers", recording)
    monkeypatch.setattr(chain, "add_raw", checking)
    assert setup.light.sync_headers() == 16
    assert overlapped == [True, True, True]
    assert chain.tip.hash == setup.node.tip.hash
    assert locators[0] == [REGTEST.genesis_hash]
    assert locators[1] == [setup.node.active[5], REGTEST.genesis_hash]
    assert locators[3][0] == setup.node.active[15]
    assert len(locators) == 4


def test_a_lie_in_a_full_answer_keeps_what_came_before_it_and_waits_for_the_request_in_flight(setup, monkeypatch):
    """The third header of the first (full) answer does not link: SpvError naming the node, the two before it are
    kept, and the request already made for the next answer is over when sync_headers raises (the caller may use
    the client at once: the demo goes on with the other payments)."""
    monkeypatch.setattr(api_module, "MAX_HEADERS_BINARY_RESULTS", 5)
    monkeypatch.setattr(nodeclient, "MAX_HEADERS_BINARY_RESULTS", 5)
    monkeypatch.setattr(wallet_client, "MAX_HEADERS_RESULTS", 2)
    headers, answered = setup.client.headers, []

    def lying(locator: list[bytes]) -> bytes:
        raw = bytearray(headers(locator))
        if not answered:
            raw[2 * HEADER_SIZE + 4] ^= 1  # the third header's link to its parent
        else:
            time.sleep(0.3)  # a slow node: the lie is found while this answer is on its way
        answered.append(len(raw))
        return bytes(raw)

    monkeypatch.setattr(setup.client, "headers", lying)
    with pytest.raises(SpvError, match="is not trustworthy") as lie:
        setup.light.sync_headers()
    assert answered == [5 * HEADER_SIZE, 5 * HEADER_SIZE]  # the second was asked for before the first was checked
    assert setup.light.chain.height == 2
    assert not [t for t in threading.enumerate() if t.name == "wallet-headers"]
    assert "\n" not in str(lie.value)
