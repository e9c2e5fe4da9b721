"""SimpleCoin wallet: create addresses, send coins, see balance and history -- checked, not trusted.

    python wallet.py                                  # the interactive console
    python wallet.py new                              # a new address (a new wallet shows its 12 recovery words)
    python wallet.py restore                          # a wallet rebuilt from its 12 recovery words
    python wallet.py address                          # list addresses
    python wallet.py balance                          # spendable, immature and pending, per address and in total
    python wallet.py send ADDRESS AMOUNT              # AMOUNT in coins, like 1.25; fee rate from the node
    python wallet.py history [--limit N | --all]      # the newest transactions, with SPV checks
    python wallet.py export ADDRESS                   # print one private key (only when asked)
    python wallet.py encrypt                          # protect an existing wallet file with a passphrase
    python wallet.py sweep NEW.json                   # move every spendable coin to a recovery-words wallet

SIMPLECOIN_PASSPHRASE, when set, is the passphrase of an encrypted wallet file for every command (also for
creating one with --encrypt); otherwise the wallet asks.

Exit codes: 0 done, 1 the node refused, 2 bad input, 3 no node reachable, 4 a node lied (failed verification,
malformed answer), 5 wallet file problem (also: busy, another process is changing it), 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from simplecoin.core.amounts import format_coins, parse_coins
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.core.params import NETWORKS, NetworkParams
from simplecoin.core.spv import SpvError
from simplecoin.wallet import hd
from simplecoin.wallet.client import LightWallet, NodeClient, NodeError, Payment, WalletError
from simplecoin.wallet.keyfile import HD_VERSION, PassphraseNeeded, WalletFile, WalletFileError, WrongPassphrase
from simplecoin.wallet.payment import HIGH_FEE_FACTOR, sweep_amount

EXIT_REFUSED, EXIT_INPUT, EXIT_UNREACHABLE, EXIT_LIED, EXIT_WALLET = 1, 2, 3, 4, 5
EXIT_CANCELLED = 130  # the shell's code for a program ended by Ctrl-C (128 + SIGINT)
DEFAULT_NODE = "http://127.0.0.1:5000"
DEFAULT_HISTORY = 20  # entries `history` shows without --limit/--all
FEE_REFUSALS = ("mempool-min-fee-not-met", "min-relay-fee-not-met", "mempool-full")


class Failure(Exception):
    """Raised to end a command with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class Hints:
    """How the output names the options it mentions: flags on the command line, questions in the console."""

    fee: str = "--fee RATE to choose"
    chosen_fee: str = "--fee"
    more_history: str = "--all for every one, --limit N"
    no_file: str = "create one with 'wallet.py new' (or 'wallet.py restore' from recovery words)"
    higher_fee: str = "a higher --fee RATE"
    new_again: str = "run 'wallet.py new' again"
    balance: str = "'wallet.py balance'"


CONSOLE_HINTS = Hints(
    fee="the console asks for it before each payment",
    chosen_fee="your choice",
    more_history="menu 4 again: 'all' for every one, or a number",
    no_file="create one with 7 (a new wallet file) or 8 (restore from recovery words)",
    higher_fee="a higher fee rate",
    new_again="choose it again",
    balance="2",
)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"wallet: {message}\n")


ALL_OPTIONS = frozenset({"--fee", "--yes", "--encrypt", "--limit", "--all"})


def add_common_options(p: argparse.ArgumentParser, top: bool, shown: frozenset[str] = ALL_OPTIONS) -> None:
    """The flags every command takes, before or after its name (`send ADDRESS AMOUNT --yes`).

    After the name they have no defaults (argparse.SUPPRESS), so they only override what was given before it.
    A command's --help lists --network, --wallet, --node, --json and, of the others, those in `shown` (the
    ones it uses); it still accepts the rest, as it always did.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    def about(flag: str, text: str) -> str:
        return text if flag in shown else argparse.SUPPRESS

    p.add_argument("--network", choices=sorted(NETWORKS), default=default("main"), help="the chain (default: main)")
    p.add_argument(
        "--wallet",
        type=Path,
        default=default(None),
        help="the wallet file (default: ~/.simplecoin/NETWORK/wallet.json)",
    )
    p.add_argument(
        "--node",
        action="append",
        dest="nodes" if top else "nodes_after_command",
        default=default(None),
        metavar="URL",
        help=f"a node to use (repeatable; the first reachable answers; default {DEFAULT_NODE})",
    )
    p.add_argument(
        "--fee",
        type=int,
        default=default(None),
        metavar="RATE",
        help=about("--fee", "fee rate in base units per byte (default: the node's estimate, shown before sending)"),
    )
    p.add_argument(
        "--yes",
        action="store_true",
        default=default(False),
        help=about("--yes", "do not ask: send without confirming; a new wallet without confirming the words"),
    )
    p.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    p.add_argument(
        "--encrypt",
        action="store_true",
        default=default(False),
        help=about("--encrypt", "with 'new', 'restore' or 'sweep' making a new file: protect it with a passphrase"),
    )
    p.add_argument(
        "--limit",
        type=int,
        default=default(DEFAULT_HISTORY),
        metavar="N",
        help=about("--limit", f"history: the newest N entries (default {DEFAULT_HISTORY})"),
    )
    p.add_argument("--all", action="store_true", default=default(False), help=about("--all", "history: every entry"))


# name -> (what it does, in a line; what its --help says; the options it uses; its arguments)
COMMANDS: dict[str, tuple[str, str, frozenset[str], tuple[tuple[str, str], ...]]] = {
    "new": (
        "add a receiving address; with no wallet file, create one (12 recovery words)",
        "Print a new receiving address of the wallet. Without a wallet file, create one first: its 12 recovery "
        "words are shown once and must be confirmed before the file exists (--yes skips the question).",
        frozenset({"--encrypt", "--yes"}),
        (),
    ),
    "restore": (
        "rebuild a wallet from its 12 recovery words",
        "Make a new wallet file from 12 recovery words (a mistyped word is asked again) and find every address "
        "of it that was used, receiving and change, until 20 in a row are unused.",
        frozenset({"--encrypt"}),
        (),
    ),
    "address": ("list the wallet's addresses", "List the wallet's addresses and their labels.", frozenset(), ()),
    "balance": (
        "spendable, immature and pending coins, per address and in total",
        "Per address and in total: spendable (confirmed, mature), immature (mining rewards not yet spendable) "
        "and pending (what unconfirmed payments add or take). With --json, 'confirmed' is spendable + immature.",
        frozenset(),
        (),
    ),
    "send": (
        "send coins",
        "Send AMOUNT coins to ADDRESS: shows recipient, amount, fee and change, and asks before sending.",
        frozenset({"--fee", "--yes"}),
        (("address", "the recipient's address"), ("amount", "in coins, e.g. 1.25")),
    ),
    "history": (
        "transactions, verified against block headers",
        f"The newest {DEFAULT_HISTORY} transactions (--limit N, --all), each checked against the block headers.",
        frozenset({"--limit", "--all"}),
        (),
    ),
    "export": (
        "print the private key of one address",
        "Print the private key of ADDRESS: anyone who sees it can spend that address's coins.",
        frozenset(),
        (("address", "an address of this wallet"),),
    ),
    "encrypt": (
        "protect an existing wallet file with a passphrase",
        "Encrypt the wallet file in place (scrypt + AES-GCM): from then on every command that needs its keys "
        "asks for the passphrase (or reads SIMPLECOIN_PASSPHRASE).",
        frozenset(),
        (),
    ),
    "sweep": (
        "move every spendable coin to a recovery-words wallet (e.g. from the miner's older wallet file)",
        "Send every spendable coin of this wallet to the first address of NEW_WALLET, a wallet made from recovery "
        "words; NEW_WALLET is created (its words shown) if it does not exist. Immature rewards stay: sweep again "
        "when they are spendable.",
        frozenset({"--fee", "--yes", "--encrypt"}),
        (("new_wallet", "the recovery-words wallet file that gets the coins"),),
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(description="SimpleCoin wallet. Without a command: the interactive console.")
    add_common_options(p, top=True)
    sub = p.add_subparsers(dest="command")
    for name, (summary, description, shown, arguments) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=description)
        for argument, text in arguments:
            command.add_argument(argument, help=text)
        add_common_options(command, top=False, shown=shown)
    args = p.parse_args(argv)
    after = vars(args).pop("nodes_after_command", None)
    if after:
        args.nodes = (args.nodes or []) + after
    return args


class App:
    """The wallet's commands, shared by the subcommands and the console."""

    def __init__(self, args: argparse.Namespace, ask: Callable[[str], str], out: Callable[[str], None]) -> None:
        self.params: NetworkParams = NETWORKS[args.network]
        # A relative --wallet is relative to where the command runs, like any path a user types; made absolute
        # here so the header cache and lock go next to it.
        chosen = args.wallet.expanduser() if args.wallet else None
        self.path: Path = (chosen or Path.home() / ".simplecoin" / self.params.name / "wallet.json").absolute()
        self.nodes: list[str] = args.nodes or [DEFAULT_NODE]
        self.fee_rate: int | None = args.fee
        self.json: bool = args.json
        self.encrypt: bool = args.encrypt
        self.yes: bool = args.yes
        self.interactive: bool = sys.stdin.isatty()  # someone to ask again about a high fee, even with --yes
        self.limit: int | None = None if args.all else args.limit
        self.ask = ask
        self.out = out
        self.hints = Hints()
        self._passphrase: str | None = os.environ.get("SIMPLECOIN_PASSPHRASE")
        self._passphrase_typed = False  # True when the user typed it (a wrong one is asked again next time)
        if self.fee_rate is not None and self.fee_rate < 0:
            raise Failure("--fee must not be negative", EXIT_INPUT)
        if self.limit is not None and self.limit < 1:
            raise Failure("--limit must be at least 1", EXIT_INPUT)

    def light(self) -> LightWallet:
        self._require_file()
        return LightWallet(self.path, self.params, NodeClient(self.nodes))

    def _require_file(self) -> None:
        if not self.path.exists():
            raise Failure(f"no wallet file at {self.path}: {self.hints.no_file}", EXIT_WALLET)

    def open_keys(self) -> WalletFile:
        self._require_file()
        try:
            return WalletFile.load(self.path, self.params, self._passphrase)
        except PassphraseNeeded:
            self._passphrase = self.ask_secret(f"passphrase for {self.path}: ")
            self._passphrase_typed = True
        try:
            return WalletFile.load(self.path, self.params, self._passphrase)
        except WrongPassphrase:
            self.forget_passphrase()
            raise

    def forget_passphrase(self) -> None:
        """Drop a typed passphrase (a wrong one, or one for another file): the next command asks again."""
        if self._passphrase_typed:
            self._passphrase, self._passphrase_typed = None, False

    def ask_secret(self, prompt: str) -> str:
        if sys.stdin.isatty():
            return getpass.getpass(prompt)
        return self.ask(prompt)

    def emit(self, data: object, text: str) -> None:
        self.out(json.dumps(data, indent=2) if self.json else text)

    # -- commands -------------------------------------------------------------------------------------------

    def new_passphrase(self) -> str | None:
        """The passphrase for a new file: SIMPLECOIN_PASSPHRASE if set, else asked twice; None without --encrypt."""
        if not self.encrypt:
            return None
        if self._passphrase is not None and not self._passphrase_typed:  # SIMPLECOIN_PASSPHRASE
            if not self._passphrase:
                raise Failure("SIMPLECOIN_PASSPHRASE is empty; the passphrase must not be empty", EXIT_INPUT)
            return self._passphrase
        passphrase = self.ask_secret("new passphrase: ")
        if not passphrase:
            raise Failure("the passphrase must not be empty", EXIT_INPUT)
        if self.ask_secret("repeat it: ") != passphrase:
            raise Failure("the passphrases differ", EXIT_INPUT)
        return passphrase

    def new(self) -> None:
        if self.path.exists():
            if self.encrypt:
                raise Failure(
                    f"--encrypt only applies when creating a wallet file; {self.path} exists "
                    "(to protect it with a passphrase: 'wallet.py encrypt')",
                    EXIT_INPUT,
                )
            wallet = self.open_keys().add_key()
            address = wallet.keys[-1].address
            self.emit({"address": address, "wallet": str(self.path), "created": False}, address)
            return
        self.emit(*self.create(self.path))

    def create(self, path: Path) -> tuple[dict, str]:
        """A new recovery-words wallet at `path` (words shown once and confirmed first); what `new` reports."""
        passphrase = self.new_passphrase()
        phrase = hd.new_phrase()
        # Shown once, before anything is saved: a user who cannot confirm the backup gets no wallet to lose.
        # With --json the words are in the answer, for the script that asked, and nothing is asked.
        if not self.json:
            self.out(hd.recovery_notice(phrase))
            if not self.yes and not ask_yes_no(self.ask, "have you written the 12 words down? [y/n] "):
                raise Failure(f"no wallet created: {self.hints.new_again} when you can write them down", EXIT_INPUT)
        wallet = WalletFile.create_hd(path, self.params, phrase, passphrase)
        address = wallet.keys[-1].address
        return (
            {"address": address, "wallet": str(path), "created": True, "recovery_words": phrase},
            f"{address} (new wallet file {path}, mode 0600)",
        )

    def restore(self) -> None:
        """A wallet file from recovery words: receiving and change keys in use found with a gap limit of 20."""
        if self.path.exists():
            raise Failure(f"{self.path} already exists; restore into a new file (--wallet PATH)", EXIT_WALLET)
        phrase = self.ask_phrase()
        seed = hd.seed_from_phrase(phrase)
        passphrase = self.new_passphrase()
        light = LightWallet(self.path, self.params, NodeClient(self.nodes))
        version = self.params.address_version
        counts = hd.keys_in_use(  # BIP44's account discovery, gap limit hd.GAP_LIMIT
            hd.account_key(seed), lambda key: light.is_used(address_from_pubkey_hash(key.pubkey_hash, version))
        )
        wallet = WalletFile.create_hd(self.path, self.params, phrase, passphrase, max(counts[0], 1), counts[1])
        self.emit(
            {"wallet": str(self.path), "receiving": max(counts[0], 1), "change": counts[1], "keys": len(wallet.keys)},
            f"restored {self.path}: {max(counts[0], 1)} receiving and {counts[1]} change addresses in use "
            f"(scanned until {hd.GAP_LIMIT} unused in a row)",
        )

    def ask_phrase(self) -> str:
        """Recovery words as typed, a mistyped word asked again alone (the others are kept)."""
        words = self.ask_secret("the 12 recovery words, separated by spaces: ").lower().split()
        while True:
            unknown = hd.unknown_words(" ".join(words))
            if unknown:
                position, word = unknown[0]
                near = hd.close_words(word)
                maybe = f" (did you mean {' or '.join(near)}?)" if near else ""
                self.out(f"word {position}, {word!r}, is not a word of the BIP39 English list{maybe}")
                retyped = self.ask_secret(f"word {position}: ").lower().split()
                words[position - 1 : position] = retyped[:1] or [word]
                continue
            try:
                hd.seed_from_phrase(" ".join(words))
                return " ".join(words)
            except hd.PhraseError as e:
                self.out(f"not a valid recovery phrase: {e}; type all the words again")
            words = self.ask_secret("the 12 recovery words, separated by spaces: ").lower().split()

    def encrypt_file(self) -> None:
        """Protect the existing wallet file with a passphrase, in place."""
        self._require_file()
        if WalletFile.is_encrypted(self.path, self.params):
            raise Failure(f"wallet file {self.path} is already encrypted", EXIT_INPUT)
        keys = self.open_keys()
        self.encrypt = True
        passphrase = self.new_passphrase()
        keys.encrypted(passphrase)
        self._passphrase, self._passphrase_typed = passphrase, "SIMPLECOIN_PASSPHRASE" not in os.environ
        self.emit(
            {"wallet": str(self.path), "encrypted": True},
            f"{self.path} is encrypted: commands that need its keys ask for the passphrase (or read "
            "SIMPLECOIN_PASSPHRASE); without it, and without the recovery words, the coins are lost",
        )

    def sweep(self, target: Path) -> None:
        """Every spendable coin of this wallet to the first address of `target`, a recovery-words wallet."""
        target = target.expanduser().absolute()
        if target == self.path:
            raise Failure("sweep moves coins to another wallet file, not to the same one", EXIT_INPUT)
        if target.exists() and WalletFile.read_json(target, self.params)["version"] != HD_VERSION:
            raise Failure(f"{target} has no recovery words: sweep into a new file", EXIT_INPUT)
        if self.json and not target.exists():  # one JSON answer, and words never made without being shown
            raise Failure(
                f"with --json, make {target} first ('wallet.py --wallet {target} --json new' answers its words)",
                EXIT_INPUT,
            )
        light = self.light()
        keys = self.open_keys()
        coins = light.spendable(keys)
        rate = self.fee_rate if self.fee_rate is not None else light.fee_estimate().rate
        if not coins or sweep_amount(coins, rate) <= 0:
            raise Failure(f"nothing to move: {self.path} has no spendable coins (see {self.hints.balance})", EXIT_INPUT)
        if target.exists():
            to_address = WalletFile.addresses(target, self.params)[0][0]
        else:
            created, text = self.create(target)
            self.out(text)
            to_address = created["address"]
        payment = light.make_payment(keys, to_address, sweep_amount(coins, rate), rate)
        source = self.hints.chosen_fee if self.fee_rate is not None else "node estimate"
        self.send_payment(light, dataclasses.replace(payment, fee_source=source), self.yes)
        if not self.json:
            self.out(
                f"the coins go to {target}; a node that mines to {self.path} goes on doing so until restarted "
                f"with --wallet {target}; sweep again for rewards that were immature"
            )

    def address(self) -> None:
        self._require_file()
        rows = WalletFile.addresses(self.path, self.params)
        self.emit(
            [{"address": a, "label": label} for a, label in rows],
            "\n".join(f"{a}  {label}".rstrip() for a, label in rows),
        )

    def balance(self) -> None:
        rows = self.light().balances()
        spendable = sum(r.spendable for r in rows)
        immature = sum(r.immature for r in rows)
        pending = sum(r.pending for r in rows)
        data = {
            "addresses": [
                {
                    "address": r.address,
                    "label": r.label,
                    "confirmed": r.confirmed,
                    "spendable": r.spendable,
                    "immature": r.immature,
                    "pending": r.pending,
                }
                for r in rows
            ],
            "confirmed": spendable + immature,
            "spendable": spendable,
            "immature": immature,
            "pending": pending,
        }
        lines = [f"{'address':36} {'spendable':>18} {'immature':>18} {'pending':>18}"]
        lines += [
            " ".join([f"{r.address:36}", *(f"{format_coins(v):>18}" for v in (r.spendable, r.immature, r.pending))])
            for r in rows
        ]
        lines.append(
            f"{'total':36} {format_coins(spendable):>18} {format_coins(immature):>18} {format_coins(pending):>18}"
        )
        if immature:
            lines.append(
                f"immature: mining rewards spendable {self.params.coinbase_maturity} blocks after the block that "
                "paid them; pending: what unconfirmed payments add or take"
            )
        self.emit(data, "\n".join(lines))

    def prepare(self, address: str, amount_text: str) -> tuple[LightWallet, WalletFile, Payment]:
        try:
            amount = parse_coins(amount_text)
        except ValueError as e:
            raise Failure(f"amount {e}", EXIT_INPUT) from e
        if amount == 0:
            raise Failure("amount must be more than zero", EXIT_INPUT)
        light = self.light()
        keys = self.open_keys()
        payment = light.make_payment(keys, address, amount, self.fee_rate)
        if self.fee_rate is not None:
            payment = dataclasses.replace(payment, fee_source=self.hints.chosen_fee)
        return light, keys, payment

    def confirm_text(self, p: Payment) -> str:
        change = (
            f"  change  {format_coins(p.change)} to a new address of yours, {p.change_address}\n" if p.change else ""
        )
        return (
            f"send {format_coins(p.amount)} to {p.to_address}\n"
            f"  fee     {format_coins(p.fee)} ({share(p.fee, p.amount)} of the amount; {p.fee_rate} per byte, "
            f"{p.fee_source}; {self.hints.fee})\n"
            f"{change}"
            f"  spendable balance after: {format_coins(p.balance_after)}"
        )

    def send(self, address: str, amount_text: str, yes: bool) -> None:
        light, _, payment = self.prepare(address, amount_text)
        self.send_payment(light, payment, yes)

    def send_payment(self, light: LightWallet, payment: Payment, yes: bool) -> None:
        # A rate the user typed (--fee, or at the console's prompt) is not asked about again.
        high = payment.fee_is_high and self.fee_rate is None
        if high and yes and not self.interactive:
            raise Failure(
                f"not sent: the fee would be {format_coins(payment.fee)} ({share(payment.fee, payment.amount)} of the "
                f"amount, {payment.fee_rate} per byte, over {HIGH_FEE_FACTOR}x the relay minimum); pass --fee RATE "
                "to pay a rate you chose",
                EXIT_INPUT,
            )
        if not yes or high:
            self.out(self.confirm_text(payment))
        if not yes and not ask_yes_no(self.ask, "send it? [y/n] "):
            self.emit({"sent": False}, "not sent")
            return
        if high and not ask_yes_no(
            self.ask,
            f"the fee rate is over {HIGH_FEE_FACTOR}x the relay minimum: pay {format_coins(payment.fee)}? [y/n] ",
        ):
            self.emit({"sent": False}, "not sent")
            return
        try:
            results = light.send(payment)
        except NodeError as e:
            if e.reason in FEE_REFUSALS:
                raise Failure(self.fee_refusal(light, payment, e), EXIT_REFUSED) from e
            raise
        txid = hash_hex(payment.tx.txid)
        self.emit(
            {
                "sent": True,
                "txid": txid,
                "amount": payment.amount,
                "fee": payment.fee,
                "fee_rate": payment.fee_rate,
                "change": payment.change,
                "change_address": payment.change_address or None,
                "nodes": [{"node": url, "error": error or None} for url, error in results],
            },
            f"sent {txid}" + "".join(f"\n  {url}: {error}" for url, error in results if error),
        )

    def fee_refusal(self, light: LightWallet, payment: Payment, error: NodeError) -> str:
        """Why a node would not keep a payment for its fee, and what to do (not a silent drop)."""
        try:
            floor = light.fee_estimate()
            now = f"it now asks at least {max(floor.mempool_min, 1)} per byte (estimate {floor.rate})"
        except (NodeError, SpvError):
            now = "ask it with GET /fee-estimate"
        if error.reason == "min-relay-fee-not-met":  # the fixed floor of every node, not a full pool
            why = "less than the minimum relay fee every node asks"
        else:
            why = "and the node's mempool is full or its minimum fee has risen"
        return (
            f"the node will not keep this payment: it pays {payment.fee_rate} per byte, {why} "
            f"({error.reason}: {refusal_detail(error)}); {now}. Nothing was sent: try again with "
            f"{self.hints.higher_fee}, or later"
        )

    def history(self) -> None:
        page = self.light().history_page(self.limit)
        entries = page.entries
        received = sum(e.amount for e in entries if e.direction == "received")
        sent = sum(e.amount for e in entries if e.direction == "sent")
        fees = sum(e.fee or 0 for e in entries if e.direction != "received")
        data = {
            "transactions": [e.__dict__ for e in entries],
            "more": page.more,
            "received": received,
            "sent": sent,
            "fees": fees,
        }
        lines = []
        for e in entries:
            sign = "+" if e.direction == "received" else "-" if e.direction == "sent" else " "
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.time)) if e.time is not None else "pending         "
            where = "pending" if e.pending else f"height {e.height}, {e.confirmations} conf."
            who = ", ".join(e.counterparties) or "-"
            fee = f", fee {format_coins(e.fee)}" if e.fee is not None else ""
            lines.append(
                f"{when}  {e.txid[:16]}…  {sign}{format_coins(e.amount)}  {e.direction:8} {who}  ({where}{fee})"
            )
        if entries:
            shown = f"the newest {len(entries)} ({self.hints.more_history})" if page.more else f"all {len(entries)}"
            lines.append(
                f"total of {shown}: received {format_coins(received)}, sent {format_coins(sent)}, "
                f"fees {format_coins(fees)} (times UTC, from verified headers)"
            )
        self.emit(data, "\n".join(lines) or "no transactions yet")

    def export(self, address: str) -> None:
        keys = self.open_keys()
        for key in keys.keys:
            if key.address == address:
                self.emit(
                    {"address": address, "secret": key.key.secret.hex()},
                    f"private key of {address} (anyone who sees it can spend its coins):\n{key.key.secret.hex()}",
                )
                return
        raise Failure(f"{address} is not an address of this wallet", EXIT_INPUT)


def share(part: int, whole: int) -> str:
    """`part` as a percentage of `whole`, two decimals, rounded down ("2.09 %"; "< 0.01 %" for less)."""
    hundredths = part * 10_000 // whole
    if hundredths == 0 and part > 0:
        return "< 0.01 %"
    return f"{hundredths // 100}.{hundredths % 100:02d} %"


def ask_yes_no(ask: Callable[[str], str], prompt: str) -> bool:
    while True:
        answer = ask(prompt).strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False


def run_command(app: App, args: argparse.Namespace) -> None:
    if args.command == "new":
        app.new()
    elif args.command == "restore":
        app.restore()
    elif args.command == "address":
        app.address()
    elif args.command == "balance":
        app.balance()
    elif args.command == "send":
        app.send(args.address, args.amount, args.yes)
    elif args.command == "history":
        app.history()
    elif args.command == "export":
        app.export(args.address)
    elif args.command == "encrypt":
        app.encrypt_file()
    elif args.command == "sweep":
        app.sweep(Path(args.new_wallet))


MENU = """
  1) new address         2) addresses and balances     3) send coins          4) history
  5) choose node(s)      6) export a private key       7) new wallet file     8) restore from recovery words
  9) encrypt this wallet file    10) move all coins to a new recovery-words wallet (sweep)          q) quit"""


def console(app: App) -> None:
    """The interactive menu; returns on 'q' or end of input. Ctrl-C cancels what a choice was doing and comes
    back to the menu; at the menu itself it ends the console (KeyboardInterrupt goes up)."""
    app.hints = CONSOLE_HINTS
    app.out(f"SimpleCoin wallet ({app.params.name}) - {app.path} - node(s) {', '.join(app.nodes)}")
    if not app.path.exists():
        app.out(f"no wallet file at {app.path} yet: {app.hints.no_file}")
    choices: dict[str, Callable[[App], None]] = {
        "1": App.new,
        "2": App.balance,
        "3": console_send,
        "4": console_history,
        "5": console_nodes,
        "6": lambda a: a.export(a.ask("address: ").strip()),
        "7": lambda a: console_into_new_file(a, "a new wallet", a.new),
        "8": lambda a: console_into_new_file(a, "the restored wallet", a.restore),
        "9": App.encrypt_file,
        "10": console_sweep,
    }
    while True:
        app.out(MENU)
        choice = app.ask("> ").strip().lower()
        if choice in ("q", "quit"):
            return
        if choice not in choices:
            app.out(f"{choice!r} is not on the menu")
            continue
        try:
            choices[choice](app)
        except KeyboardInterrupt:
            app.out("\ncancelled")
        except Failure as e:
            app.out(f"error: {e}")
        except (NodeError, WalletError, WalletFileError, SpvError) as e:
            app.out(describe(e)[0])


def console_send(app: App) -> None:
    while True:
        address = app.ask("recipient address: ").strip()
        try:
            pubkey_hash_from_address(address, app.params.address_version)
            break
        except DecodeError as e:
            app.out(f"not a {app.params.name} address: {e}; try again")
    while True:
        text = app.ask("amount in coins: ")
        try:
            if parse_coins(text) > 0:
                break
            app.out("the amount must be more than zero; try again")
        except ValueError as e:
            app.out(f"amount {e}; try again")
    chosen = app.fee_rate
    app.fee_rate = ask_number(app, "fee rate in base units per byte (Enter: the node's estimate): ", 0)
    try:
        app.send(address, text, yes=False)
    finally:
        app.fee_rate = chosen


def console_history(app: App) -> None:
    answer = app.ask(f"how many of the newest? (Enter: {DEFAULT_HISTORY}, 'all': every one) ").strip().lower()
    while answer not in ("", "all") and not (answer.isdigit() and int(answer) >= 1):
        answer = app.ask("a number of 1 or more, 'all', or Enter: ").strip().lower()
    app.limit = None if answer == "all" else int(answer or DEFAULT_HISTORY)
    app.history()


def ask_number(app: App, prompt: str, least: int) -> int | None:
    """A whole number typed in the console, at least `least`; None for Enter."""
    while True:
        answer = app.ask(prompt).strip()
        if not answer:
            return None
        if answer.isdigit() and int(answer) >= least:
            return int(answer)
        app.out(f"{answer!r} is not a whole number of {least} or more; try again")


def console_nodes(app: App) -> None:
    urls = app.ask("node URLs, separated by spaces: ").split()
    if urls and all(u.startswith(("http://", "https://")) for u in urls):
        app.nodes = urls
        app.out(f"node(s) now: {', '.join(urls)}")
    else:
        app.out(f"node URLs start with http:// or https://; unchanged: {', '.join(app.nodes)}")


def console_into_new_file(app: App, what: str, make: Callable[[], None]) -> None:
    """`make` (new or restore) a wallet file that does not exist yet: the console's current one if it does not,
    else one the user names, which the console then uses; asking first whether to protect it with a passphrase."""
    if app.path.exists():
        path = ask_path(app, f"{what} goes into a new file; its path (e.g. ~/savings.json): ")
        if path.exists():
            raise Failure(f"{path} already exists; choose a new file", EXIT_INPUT)
        app.path = path
        app.forget_passphrase()
        app.out(f"using wallet file {path} from now on")
    with_passphrase_asked(app, make)


def console_sweep(app: App) -> None:
    target = ask_path(app, "the recovery-words wallet file for the coins (a new one is made, its words shown): ")
    if target.exists():
        app.sweep(target)
    else:
        with_passphrase_asked(app, lambda: app.sweep(target))


def ask_path(app: App, prompt: str) -> Path:
    typed = app.ask(prompt).strip()
    if not typed:
        raise Failure("no file given; nothing was done", EXIT_INPUT)
    return Path(typed).expanduser().absolute()


def with_passphrase_asked(app: App, make: Callable[[], None]) -> None:
    """`make` a new wallet file, encrypted if the user says so (the console's --encrypt)."""
    app.encrypt = ask_yes_no(app.ask, "protect the new file with a passphrase? [y/n] ")
    try:
        make()
    finally:
        app.encrypt = False


def refusal_detail(error: NodeError) -> str:
    """The node's own words for a refusal, without the reason that NodeError's layers repeat in front of it."""
    detail = str(error).removeprefix("the node refused the payment: ")
    while error.reason and detail.startswith(f"{error.reason}: "):
        detail = detail[len(error.reason) + 2 :]
    return detail


def describe(error: Exception) -> tuple[str, int]:
    """The one line and the exit code for an error."""
    if isinstance(error, Failure):
        return str(error), error.code
    if isinstance(error, SpvError):
        return f"untrustworthy node: {error}", EXIT_LIED
    if isinstance(error, NodeError):
        if error.reason == "unreachable":
            return str(error), EXIT_UNREACHABLE
        if error.reason:
            return f"node refused: {error.reason}: {refusal_detail(error)}", EXIT_REFUSED
        return f"node error: {error}", EXIT_REFUSED
    if isinstance(error, WalletError):
        return str(error), EXIT_INPUT
    if isinstance(error, WalletFileError):
        return str(error), EXIT_WALLET
    raise error


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def ask(prompt: str) -> str:
        return input(prompt)

    try:
        app = App(args, ask, print)
        if args.command is None:
            console(app)
        else:
            run_command(app, args)
    except KeyboardInterrupt:
        print()
        print("wallet: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except EOFError:
        print()
        if args.command is not None:  # a script ran out of answers
            print("wallet: input ended before an answer was given; nothing was done", file=sys.stderr)
            return EXIT_INPUT
        return 0
    except (Failure, NodeError, WalletError, WalletFileError, SpvError) as e:
        message, code = describe(e)
        print(f"wallet: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
