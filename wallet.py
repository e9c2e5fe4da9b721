"""SimpleCoin wallet: create addresses, send coins, see balance and history -- checked, not trusted.

    python wallet.py                                  # the interactive console
    python wallet.py new                              # a new address (a new wallet shows its 12 recovery words)
    python wallet.py restore                          # a wallet rebuilt from its 12 recovery words
    python wallet.py address                          # list addresses
    python wallet.py balance                          # spendable, immature and pending, per address and in total
    python wallet.py send ADDRESS AMOUNT              # AMOUNT in coins, like 1.25; fee rate from the node
    python wallet.py history [--limit N | --all]      # the newest transactions, with SPV checks
    python wallet.py export ADDRESS                   # print one private key (only when asked)

SIMPLECOIN_PASSPHRASE, when set, is the passphrase of an encrypted wallet file for every command (also for
creating one with --encrypt); otherwise the wallet asks.

Exit codes: 0 done, 1 the node refused, 2 bad input, 3 no node reachable, 4 a node lied (failed verification,
malformed answer), 5 wallet file problem (also: busy, another process is changing it).
"""

from __future__ import annotations

import argparse
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
from simplecoin.wallet.keyfile import PassphraseNeeded, WalletFile, WalletFileError
from simplecoin.wallet.payment import HIGH_FEE_FACTOR

EXIT_REFUSED, EXIT_INPUT, EXIT_UNREACHABLE, EXIT_LIED, EXIT_WALLET = 1, 2, 3, 4, 5
DEFAULT_NODE = "http://127.0.0.1:5000"
DEFAULT_HISTORY = 20  # entries `history` shows without --limit/--all
FEE_REFUSALS = ("mempool-min-fee-not-met", "min-relay-fee-not-met", "mempool-full")


class Failure(Exception):
    """Raised to end a command with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"wallet: {message}\n")


def add_common_options(p: argparse.ArgumentParser, top: bool) -> None:
    """The flags every command takes, before or after its name (`send ADDRESS AMOUNT --yes`).

    After the name they have no defaults (argparse.SUPPRESS), so they only override what was given before it.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

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
        help="fee rate in base units per byte (default: the node's estimate, shown before sending)",
    )
    p.add_argument("--yes", action="store_true", default=default(False), help="send without asking for confirmation")
    p.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    p.add_argument(
        "--encrypt",
        action="store_true",
        default=default(False),
        help="with 'new' or 'restore' on a new file: protect it with a passphrase",
    )
    p.add_argument(
        "--limit", type=int, default=default(DEFAULT_HISTORY), metavar="N", help="history: the newest N entries"
    )
    p.add_argument("--all", action="store_true", default=default(False), help="history: every entry")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(description="SimpleCoin wallet. Without a command: the interactive console.")
    add_common_options(p, top=True)
    sub = p.add_subparsers(dest="command")
    commands = [sub.add_parser("new", help="create a new address")]
    commands.append(sub.add_parser("restore", help="rebuild a wallet from its 12 recovery words"))
    commands.append(sub.add_parser("address", help="list the wallet's addresses"))
    commands.append(sub.add_parser("balance", help="confirmed and pending balance"))
    send = sub.add_parser("send", help="send coins")
    send.add_argument("address")
    send.add_argument("amount", help="in coins, e.g. 1.25")
    commands.append(send)
    commands.append(sub.add_parser("history", help="transactions, verified against block headers"))
    export = sub.add_parser("export", help="print the private key of one address")
    export.add_argument("address")
    commands.append(export)
    for command in commands:
        add_common_options(command, top=False)
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
        self._passphrase: str | None = os.environ.get("SIMPLECOIN_PASSPHRASE")
        if self.fee_rate is not None and self.fee_rate < 0:
            raise Failure("--fee must not be negative", EXIT_INPUT)
        if self.limit is not None and self.limit < 1:
            raise Failure("--limit must be at least 1", EXIT_INPUT)

    def light(self) -> LightWallet:
        self._require_file()
        return LightWallet(self.path, self.params, NodeClient(self.nodes))

    def _require_file(self) -> None:
        if not self.path.exists():
            raise Failure(f"no wallet file at {self.path}: create one with 'wallet.py new'", EXIT_WALLET)

    def open_keys(self) -> WalletFile:
        self._require_file()
        try:
            return WalletFile.load(self.path, self.params, self._passphrase)
        except PassphraseNeeded:
            self._passphrase = self.ask_secret(f"passphrase for {self.path}: ")
            return WalletFile.load(self.path, self.params, self._passphrase)

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
        if self._passphrase is not None:
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
                raise Failure(f"--encrypt only applies when creating a wallet file; {self.path} exists", EXIT_INPUT)
            wallet = self.open_keys().add_key()
            address = wallet.keys[-1].address
            self.emit({"address": address, "wallet": str(self.path), "created": False}, address)
            return
        passphrase = self.new_passphrase()
        phrase = hd.new_phrase()
        # Shown once, before anything is saved: a user who cannot confirm the backup gets no wallet to lose.
        # With --json the words are in the answer, for the script that asked, and nothing is asked.
        if not self.json:
            self.out(
                "Your recovery words (write them down, in order, and keep them offline; anyone who has them can "
                f"spend your coins; they are shown only this once):\n\n    {phrase}\n"
            )
            if not self.yes and not ask_yes_no(self.ask, "have you written the 12 words down? [y/n] "):
                raise Failure("no wallet created: run 'wallet.py new' again when you can write them down", EXIT_INPUT)
        wallet = WalletFile.create_hd(self.path, self.params, phrase, passphrase)
        address = wallet.keys[-1].address
        self.emit(
            {"address": address, "wallet": str(self.path), "created": True, "recovery_words": phrase},
            f"{address} (new wallet file {self.path}, mode 0600)",
        )

    def restore(self) -> None:
        """A wallet file from recovery words: receiving and change keys in use found with a gap limit of 20."""
        if self.path.exists():
            raise Failure(f"{self.path} already exists; restore into a new file (--wallet PATH)", EXIT_WALLET)
        phrase = self.ask_secret("the 12 recovery words, separated by spaces: ")
        try:
            seed = hd.seed_from_phrase(phrase)
        except hd.PhraseError as e:
            raise Failure(f"not a valid recovery phrase: {e}", EXIT_INPUT) from e
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
        return light, keys, payment

    def confirm_text(self, p: Payment) -> str:
        change = (
            f"  change  {format_coins(p.change)} to a new address of yours, {p.change_address}\n" if p.change else ""
        )
        return (
            f"send {format_coins(p.amount)} to {p.to_address}\n"
            f"  fee     {format_coins(p.fee)} ({share(p.fee, p.amount)} of the amount; {p.fee_rate} per byte, "
            f"{p.fee_source}; --fee RATE to choose)\n"
            f"{change}"
            f"  spendable balance after: {format_coins(p.balance_after)}"
        )

    def send(self, address: str, amount_text: str, yes: bool) -> None:
        light, _, payment = self.prepare(address, amount_text)
        high = payment.fee_is_high
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
        return (
            f"the node will not keep this payment: it pays {payment.fee_rate} per byte and the node's mempool is full "
            f"or its minimum fee has risen ({error.reason}: {error}); {now}. Nothing was sent: try again with a "
            "higher --fee RATE, or later"
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
            shown = (
                f"the newest {len(entries)} (--all for every one, --limit N)" if page.more else f"all {len(entries)}"
            )
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


MENU = """
  1) new address      2) addresses and balances      3) send coins
  4) history          5) choose node(s)              6) export a private key      q) quit"""


def console(app: App) -> None:
    """The interactive menu; returns on 'q', end of input or Ctrl-C."""
    app.out(f"SimpleCoin wallet ({app.params.name}) - {app.path} - node(s) {', '.join(app.nodes)}")
    while True:
        app.out(MENU)
        choice = app.ask("> ").strip().lower()
        try:
            if choice == "1":
                app.new()
            elif choice == "2":
                app.balance()
            elif choice == "3":
                console_send(app)
            elif choice == "4":
                app.history()
            elif choice == "5":
                urls = app.ask("node URLs, separated by spaces: ").split()
                if urls and all(u.startswith(("http://", "https://")) for u in urls):
                    app.nodes = urls
                else:
                    app.out("node URLs start with http:// or https://; unchanged")
            elif choice == "6":
                app.export(app.ask("address: ").strip())
            elif choice in ("q", "quit"):
                return
            else:
                app.out(f"{choice!r} is not on the menu")
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
    app.send(address, text, yes=False)


def describe(error: Exception) -> tuple[str, int]:
    """The one line and the exit code for an error."""
    if isinstance(error, Failure):
        return str(error), error.code
    if isinstance(error, SpvError):
        return f"untrustworthy node: {error}", EXIT_LIED
    if isinstance(error, NodeError):
        if error.reason == "unreachable":
            return str(error), EXIT_UNREACHABLE
        return f"node refused: {error.reason}: {error}" if error.reason else f"node error: {error}", EXIT_REFUSED
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
    except (EOFError, KeyboardInterrupt) as e:
        print()
        if args.command is not None and isinstance(e, EOFError):  # a script ran out of answers
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
