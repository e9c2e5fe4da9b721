"""Coin selection and signing: which coins pay, what change comes back, and every input signed here.

Private keys never leave this process: the transaction is signed here and only its bytes are sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simplecoin.core.amounts import format_coins
from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.keys import sign_input
from simplecoin.core.mempool import OUTPUT_BYTES, SPENDING_INPUT_BYTES, MempoolPolicy
from simplecoin.core.params import NetworkParams
from simplecoin.core.primitives import OutPoint, Transaction, TxIn, TxOut
from simplecoin.wallet.keyfile import WalletFile, WalletKey

DEFAULT_FEE_RATE = 2  # base units per byte, when the node gives no estimate: twice the minimum relay fee
RELAY_MIN_FEE_RATE = MempoolPolicy().min_fee_rate  # base units per byte: the nodes' default minimum relay fee
# A fee rate the user did not choose (--fee) above this many times the relay minimum is shown and asked about
# again, even with --yes (issue 21: a 10,000-per-byte estimate once paid 0.0209 coin for 1 coin, silently). The
# relay minimum is ours, not the node's: a node claiming a high minimum must not lift the bar.
HIGH_FEE_FACTOR = 10
FEE_SOURCE_FLAG = "--fee"  # Payment.fee_source when the user chose the rate


class WalletError(SimpleCoinError):
    """Raised for a payment the wallet will not make (amount, balance, address)."""


@dataclass(frozen=True)
class Spendable:
    """A confirmed, mature output of one of the wallet's keys."""

    outpoint: OutPoint
    amount: int
    key: WalletKey


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
    fee_source: str = ""  # "node estimate", FEE_SOURCE_FLAG, or "default: ..."
    wallet: WalletFile | None = field(default=None, repr=False, compare=False)
    change_key: WalletKey | None = field(default=None, repr=False)  # saved in the wallet file by send()

    @property
    def fee_is_high(self) -> bool:
        """Whether the fee rate, not chosen with --fee, is over HIGH_FEE_FACTOR x the relay minimum: ask again."""
        return self.fee_source != FEE_SOURCE_FLAG and self.fee_rate > HIGH_FEE_FACTOR * RELAY_MIN_FEE_RATE


def pay(
    coins: Iterable[Spendable],
    to_hash: bytes,
    amount: int,
    fee_rate: int,
    wallet: WalletFile,
    params: NetworkParams,
    check_coin: Callable[[Spendable], None],
    available: Callable[[], int] | None = None,
) -> tuple[Transaction, int, int, WalletKey | None]:
    """(signed tx, fee, change, change key) paying `amount` to `to_hash` from `coins`, largest first.

    `coins` may be fetched lazily (page by page): only as many are read as pay, so an address of 200,000 coins
    costs a page. `available()` is the spendable total for a message when they do not cover amount and fee
    (default: the sum of `coins`). `check_coin` is asked about each chosen coin before anything is signed. The
    change key, when there is change, is fresh (privacy: never an address used before) and not saved here;
    WalletError if the coins do not cover amount and fee, or would need more inputs than a transaction holds.
    """
    max_inputs = max_payment_inputs(params)
    chosen: list[Spendable] = []
    total = 0
    for coin in coins:
        if len(chosen) == max_inputs:
            have = available() if available is not None else None
            if have is not None and have < amount + fee_rate * _estimated_size(max_inputs, 2):
                _not_enough(have, amount + fee_rate * _estimated_size(max_inputs, 2))
            raise WalletError(
                f"paying {format_coins(amount)} needs more than {max_inputs} coins, the most one transaction of "
                f"{params.max_tx_size} bytes can spend (the largest {max_inputs} hold {format_coins(total)}); "
                "send less, or several payments"
            )
        chosen.append(coin)
        total += coin.amount
        fee = fee_rate * _estimated_size(len(chosen), 2)
        if total >= amount + fee:
            for coin_in in chosen:
                check_coin(coin_in)
            change = total - amount - fee
            outputs = [TxOut(amount, to_hash)]
            change_key = None
            if change > 0:
                change_key = wallet.next_change_key()
                outputs.append(TxOut(change, change_key.key.pubkey_hash))
            return _signed(chosen, tuple(outputs), params), fee, change, change_key
    _not_enough(total, amount + fee_rate * _estimated_size(max(len(chosen), 1), 2))
    raise AssertionError("unreachable")


def _not_enough(available: int, needed: int) -> None:
    raise WalletError(
        f"not enough spendable coins: {format_coins(available)} spendable, {format_coins(needed)} needed with fee"
    )


def sweep_amount(coins: list[Spendable], fee_rate: int) -> int:
    """What `pay` sends when every coin goes and no change comes back: their sum less the fee."""
    return sum(c.amount for c in coins) - fee_rate * _estimated_size(len(coins), 2)


def max_payment_inputs(params: NetworkParams) -> int:
    """The most coins one payment (two outputs) spends and stays within the consensus size of a transaction."""
    return (params.max_tx_size - _estimated_size(0, 2)) // SPENDING_INPUT_BYTES


def _signed(chosen: list[Spendable], outputs: tuple[TxOut, ...], params: NetworkParams) -> Transaction:
    """The tx spending `chosen` to `outputs`, each input signed with its coin's key."""
    tx = Transaction(1, tuple(TxIn(c.outpoint, c.key.key.pubkey, b"") for c in chosen), outputs)
    signed = tx
    for i, coin in enumerate(chosen):
        signature = sign_input(tx, i, coin.key.key, params.genesis_hash)
        inputs = list(signed.inputs)
        inputs[i] = TxIn(coin.outpoint, coin.key.key.pubkey, signature)
        signed = Transaction(1, tuple(inputs), tx.outputs)
    return signed


def _estimated_size(inputs: int, outputs: int) -> int:
    """Bytes of a payment: 4 version + 1 + inputs x (36 outpoint + 34 key + 73 signature) + 1 + outputs x 28 + 4."""
    return 10 + inputs * SPENDING_INPUT_BYTES + outputs * OUTPUT_BYTES
