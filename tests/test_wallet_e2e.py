"""End to end: a real regtest mining node (`miner.py`) and `python wallet.py ...` processes, nothing mocked.

Wallet A is the miner's own reward wallet (DATA_DIR/wallet.json); the other wallets are made with
`wallet.py new`. Every wallet command is a separate process (cwd the repo root, always with a timeout), fed
through stdin or, for the terminal tests, a pseudo-terminal (pexpect). Amounts are checked exactly, in base
units, against what the node says (its /tx, /block and /address answers), never against the wallet alone.

The node keeps mining (a block about every 0.2 s) through the module; where an exact balance must hold
against a history, mining is stopped first (the node is restarted on the same data directory with
--no-mine), so both answers describe the same chain.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

from simplecoin.core.amounts import COIN, format_coins
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.wallet.keyfile import WalletFile
from tests.framework.nodes import REPO, NodeProcess, free_port, running_node, wait_until
from tests.framework.terminal import spawn_interactive

PAUSE = 0.2  # seconds between mined blocks
MATURITY = REGTEST.coinbase_maturity
WALLET_TIMEOUT = 60  # seconds one wallet.py process may take
WAIT = 60  # seconds a wait_until may take
STRANGER = address_from_pubkey_hash(bytes(range(20)), REGTEST.address_version)  # a valid address of nobody's
MAIN_ADDRESS = address_from_pubkey_hash(bytes(20), MAIN.address_version)  # valid, but for the other network
PASSPHRASE = "correct horse battery staple"


# -- running wallet.py ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished `wallet.py` process."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str


class Net:
    """The mining node of this module, the wallet files made in it, and everything the wallet ever printed."""

    def __init__(self, root: Path, stack: contextlib.ExitStack) -> None:
        self.root = root
        self.data_dir = root / "node"
        self.stack = stack
        self.node: NodeProcess | None = None
        self.runs: list[Run] = []
        self.transcripts: list[str] = []  # what the pseudo-terminal sessions showed
        self.passphrases: dict[Path, str] = {}  # encrypted wallet files -> their passphrase
        self._opened: dict[tuple[Path, bytes], dict[str, str]] = {}

    @property
    def a(self) -> Path:
        """Wallet A: the miner's reward wallet."""
        return self.data_dir / "wallet.json"

    @property
    def a_address(self) -> str:
        return WalletFile.addresses(self.a, REGTEST)[0][0]

    def start_mining(self) -> None:
        self.node = self.stack.enter_context(running_node(self.data_dir, mine=True, pause=PAUSE))

    @contextlib.contextmanager
    def mining_stopped(self) -> Iterator[NodeProcess]:
        """The same chain served by a node that does not mine: answers taken one after another agree."""
        assert self.node is not None
        self.node.stop()
        try:
            with running_node(self.data_dir, mine=False) as quiet:
                self.node = quiet
                yield quiet
        finally:
            self.start_mining()

    # -- the node, asked directly -----------------------------------------------------------------------------

    def get(self, path: str) -> dict:
        assert self.node is not None
        response = self.node.get(path)
        response.raise_for_status()
        return response.json()

    def mempool(self) -> int:
        return self.get("/status")["mempool"]

    def wait_mempool_empty(self) -> None:
        wait_until(lambda: self.mempool() == 0, timeout=WAIT, what="the mempool to be mined empty")

    def wait_confirmed(self, txid: str) -> None:
        wait_until(lambda: (self.get(f"/tx/{txid}")["confirmations"] or 0) >= 1, timeout=WAIT, what=f"{txid} mined")

    def fee_of(self, txid: str) -> int:
        """Inputs minus outputs of a tx, each input's amount read from its parent tx on the node."""
        tx = self.get(f"/tx/{txid}")
        inputs = sum(self.get(f"/tx/{i['txid']}")["outputs"][i["index"]]["amount"] for i in tx["inputs"])
        return inputs - sum(o["amount"] for o in tx["outputs"])

    def spendable_bound(self, wallet: Path, *, upper: bool) -> int:
        """Mature confirmed coins of every address of `wallet`, read so that the wallet's own count lies between
        the bounds (its change addresses hold coins too).

        Lower bound: the tip is read before the coins (a coin is counted only if mature at the older tip).
        Upper bound: the coins are read before the tip. Nothing spends the addresses' coins meanwhile.
        """
        addresses = [a for a, _ in WalletFile.addresses(wallet, REGTEST)]
        utxos = []
        if not upper:
            tip = self.get("/status")["height"]
        for address in addresses:
            utxos += self.get(f"/address/{address}?limit=1")["utxos"]
        if upper:
            tip = self.get("/status")["height"]
        return sum(u["amount"] for u in utxos if not u["coinbase"] or tip + 1 - u["height"] >= MATURITY)

    def replayed_balance(self, *addresses: str) -> int:
        """The confirmed balance of `addresses`, replayed block by block from the node's /block answers."""
        coins: dict[tuple[str, int], int] = {}
        for height in range(1, self.get("/status")["height"] + 1):
            for tx in self.get(f"/block/{height}")["txs"]:
                for txin in tx["inputs"]:
                    coins.pop((txin["txid"], txin["index"]), None)
                for index, out in enumerate(tx["outputs"]):
                    if out["address"] in addresses:
                        coins[(tx["txid"], index)] = out["amount"]
        return sum(coins.values())

    # -- the wallet, as a process ---------------------------------------------------------------------------------

    def env(self, passphrase: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"}
        if passphrase is not None:
            env["SIMPLECOIN_PASSPHRASE"] = passphrase
        return env

    def command(self, wallet: Path, nodes: list[str] | None = None) -> list[str]:
        assert self.node is not None
        cmd = [sys.executable, "wallet.py", "--network", "regtest", "--wallet", str(wallet)]
        for url in nodes if nodes is not None else [self.node.url]:
            cmd += ["--node", url]
        return cmd

    def wallet(
        self,
        wallet: Path,
        *args: str,
        stdin: str = "",
        nodes: list[str] | None = None,
        passphrase: str | None = None,
    ) -> Run:
        done = subprocess.run(
            [*self.command(wallet, nodes), *args],
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=WALLET_TIMEOUT,
            env=self.env(passphrase),
        )
        run = Run(tuple(args), done.returncode, done.stdout, done.stderr)
        self.runs.append(run)
        return run

    def run_json(self, wallet: Path, *args: str, **kwargs: Any) -> Any:
        """A command that must succeed, with --json (before the command's name, as the README writes it)."""
        run = self.wallet(wallet, "--json", *args, **kwargs)
        assert run.code == 0, run
        assert run.err == "", run
        return json.loads(run.out)

    def new_wallet(self, name: str) -> tuple[Path, str]:
        path = self.root / f"{name}.json"
        data = self.run_json(path, "new")
        assert data["created"] is True
        return path, data["address"]

    def balance(self, wallet: Path) -> dict:
        return self.run_json(wallet, "balance")

    def history(self, wallet: Path, **kwargs: Any) -> list[dict]:
        """Every entry (--all); `history --json` answers {"transactions": [...], "more", "received", ...}."""
        data = self.run_json(wallet, "--all", "history", **kwargs)
        assert data["more"] is False
        return data["transactions"]

    def terminal(self, wallet: Path, *args: str, passphrase: str | None = None) -> tuple[pexpect.spawn, io.StringIO]:
        """`wallet.py` on a pseudo-terminal: its stdin is a real tty, Ctrl-C is the terminal's interrupt."""
        cmd = [*self.command(wallet), *args]
        child = spawn_interactive(
            cmd, cwd=str(REPO), env=self.env(passphrase), encoding="utf-8", timeout=WALLET_TIMEOUT
        )
        child.logfile_read = transcript = io.StringIO()
        return child, transcript

    def finish_terminal(self, child: pexpect.spawn, transcript: io.StringIO) -> str:
        child.expect(pexpect.EOF)
        child.close()
        self.transcripts.append(transcript.getvalue())
        return transcript.getvalue()

    # -- private keys -------------------------------------------------------------------------------------------

    def secrets(self) -> dict[str, str]:
        """hex secret -> address, of every wallet file this module made (encrypted ones opened)."""
        found = {}
        for path in [self.a, *sorted(self.root.glob("*.json"))]:
            if path.exists():
                content = path.read_bytes()
                if (path, content) not in self._opened:  # scrypt is slow on purpose: open each version once
                    keys = WalletFile.load(path, REGTEST, self.passphrases.get(path)).keys
                    self._opened[(path, content)] = {k.key.secret.hex(): k.address for k in keys}
                found.update(self._opened[(path, content)])
        return found

    def assert_no_secret_printed(self) -> None:
        """No output of any command but `export` holds a private key."""
        secrets = self.secrets()
        assert len(secrets) >= 2
        shown = [f"{r.args}\n{r.out}\n{r.err}" for r in self.runs if "export" not in r.args]
        shown += self.transcripts
        for text in shown:
            for secret, address in secrets.items():
                assert secret not in text.lower(), f"the private key of {address} was printed by: {text[:200]}"


def assert_refused(run: Run, code: int, fragment: str, *, prompts: bool = False) -> None:
    """The command failed with `code` and exactly one line on stderr, 'wallet: ...', naming the problem."""
    assert run.code == code, run
    lines = run.err.splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith("wallet: "), run
    assert fragment in lines[0], run
    assert "Traceback" not in run.out + run.err, run
    if not prompts:
        assert run.out == "", run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the node and wallet A --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """A mining node whose reward wallet (A) holds at least six mature coinbase coins."""
    with contextlib.ExitStack() as stack:
        net = Net(tmp_path_factory.mktemp("wallet_e2e"), stack)
        net.start_mining()
        enough = (MATURITY + 6) * 50 * COIN  # that many blocks: the oldest six coinbases are mature
        wait_until(lambda: net.balance(net.a)["confirmed"] >= enough, timeout=WAIT, what="A to have mature coins")
        yield net


@pytest.fixture(autouse=True)
def no_secret_printed(net: Net) -> Iterator[None]:
    yield
    net.assert_no_secret_printed()


# -- 1. paying: the console (stdin and a terminal) and the subcommand ------------------------------------------------


def test_pay_through_the_console_and_the_subcommand(net: Net):
    b, b_address = net.new_wallet("b")
    a_address = net.a_address
    assert net.balance(b) == {
        "addresses": [{"address": b_address, "label": "", "confirmed": 0, "spendable": 0, "immature": 0, "pending": 0}],
        "confirmed": 0,
        "spendable": 0,
        "immature": 0,
        "pending": 0,
    }

    # The console, driven through stdin: a wrong address and three bad amounts are each asked again; Enter
    # at the fee rate takes the node's estimate.
    script = ["3", MAIN_ADDRESS, b_address, "abc", "0", "1.000000001", "1.5", "", "y", "q"]
    console = net.wallet(net.a, stdin="\n".join(script) + "\n")
    assert console.code == 0, console
    assert console.err == "", console
    out = console.out
    assert out.count("recipient address: ") == 2
    assert out.count("amount in coins: ") == 4
    told = [
        "not a regtest address: ",
        "amount 'abc' is not an amount in coins (like 1.25); try again",
        "the amount must be more than zero; try again",
        "amount '1.000000001' has more than 8 decimals; try again",
        f"send 1.50000000 to {b_address}",
        "send it? [y/n] sent ",
    ]
    positions = [out.index(message) for message in told]
    assert positions == sorted(positions), out
    console_txid = re.search(r"send it\? \[y/n\] sent ([0-9a-f]{64})\n", out).group(1)
    fee_line = (
        r"^  fee     (\d+)\.(\d{8}) \([<\d. ]+ % of the amount; (\d+) per byte, node estimate; the console asks for it "
        r"before each payment\)$"
    )
    console_fee = int(re.search(fee_line, out, re.MULTILINE).expand(r"\1\2"))  # the default: the node's estimate
    assert out.endswith("> ")  # back at the menu, then 'q'

    # The subcommand, with its flags after the command's name.
    run = net.wallet(net.a, "send", b_address, "2.25", "--yes", "--json")
    assert run.code == 0, run
    sent = json.loads(run.out)
    assert sent["sent"] is True
    assert sent["amount"] == 225_000_000
    assert sent["nodes"] == [{"node": net.node.url, "error": None}]
    command_txid = sent["txid"]
    amounts = {console_txid: 150_000_000, command_txid: 225_000_000}

    def both_confirmed_at_b() -> bool:
        history = net.history(b)
        return {e["txid"] for e in history if not e["pending"] and e["confirmations"] >= 1} == set(amounts)

    wait_until(both_confirmed_at_b, timeout=WAIT, what="both payments confirmed in B's history")
    # A's history is then longer than one page of the node's /address answer (100 rows): all of it must count.
    wait_until(lambda: net.get("/status")["height"] > 100, timeout=WAIT, what="more than 100 blocks")

    with net.mining_stopped():
        # The fee of each payment, from the node's data alone: inputs (read from the parents) minus outputs.
        fees = {txid: net.fee_of(txid) for txid in amounts}
        change_addresses: set[str] = set()
        assert fees[console_txid] == console_fee
        assert fees[command_txid] == sent["fee"]
        for txid, amount in amounts.items():
            tx = net.get(f"/tx/{txid}")
            assert fees[txid] > 0
            assert tx["confirmations"] >= 1
            assert tx["outputs"][0] == {"amount": amount, "address": b_address}
            change_to = [o["address"] for o in tx["outputs"][1:]]
            assert len(change_to) == 1
            assert change_to[0] in {a for a, _ in WalletFile.addresses(net.a, REGTEST)}  # a key of A's file
            assert change_to[0] != a_address  # a fresh change address, not the first key
            change_addresses.add(change_to[0])
        assert len(change_addresses) == 2  # one new address per payment

        # B: both received, confirmed, the exact amounts; the balance is their sum.
        history_b = net.history(b)
        assert {e["txid"]: e["amount"] for e in history_b} == amounts
        for entry in history_b:
            assert entry["direction"] == "received"
            assert entry["confirmations"] >= 1
            assert entry["pending"] is False
            assert entry["height"] >= 1
            assert entry["counterparties"] == [a_address]
            assert entry["fee"] is None
        balance_b = net.run_json(b, "balance", "--json")  # --json after the command's name works too
        assert balance_b["confirmed"] == 150_000_000 + 225_000_000
        assert balance_b["pending"] == 0

        # A: both sent, with the fee; every block's coinbase is A's; the history adds up to the balance.
        history_a = net.history(net.a)
        by_txid = {e["txid"]: e for e in history_a}
        for txid, amount in amounts.items():
            entry = by_txid[txid]
            assert (entry["direction"], entry["amount"], entry["fee"]) == ("sent", amount, fees[txid])
            assert entry["counterparties"] == [b_address]
            assert entry["confirmations"] >= 1
        height = net.get("/status")["height"]
        coinbases = [e for e in history_a if e["counterparties"] == ["coinbase"]]
        assert sorted(e["height"] for e in coinbases) == list(range(1, height + 1))
        assert not any(e["pending"] for e in history_a)

        def net_amount(entry: dict) -> int:
            if entry["direction"] == "received":
                return entry["amount"]
            return -(entry["amount"] + entry["fee"])  # "sent" or "self": the fee is known, all inputs are A's

        balance_a = net.run_json(net.a, "balance")
        assert balance_a["pending"] == 0
        assert sum(net_amount(e) for e in history_a) == balance_a["confirmed"]
        a_addresses = [a for a, _ in WalletFile.addresses(net.a, REGTEST)]  # the first, and two of change
        assert len(a_addresses) == 3
        assert net.replayed_balance(*a_addresses) == balance_a["confirmed"]


def wait_reading_its_terminal(child: pexpect.spawn) -> None:
    """Until the wallet sleeps in its read of the terminal (/proc: state S; nothing else runs after a prompt).

    input() writes its prompt, then reads: a Ctrl-C sent between the two could be taken before the read starts.
    A person cannot type that fast; a test can. (The two 60 s waits for "cancelled" seen here had another cause:
    SIGINT ignored, see tests/framework/terminal.py.)"""

    def sleeping() -> bool:
        stat_line = Path(f"/proc/{child.pid}/stat").read_text()
        return stat_line.rsplit(")", 1)[1].split()[0] == "S"

    wait_until(sleeping, timeout=10, interval=0.01, what="the wallet to wait for a line")


def test_console_on_a_terminal_and_ctrl_c(net: Net):
    net.wait_mempool_empty()
    child, transcript = net.terminal(net.a)
    child.expect_exact("> ")
    child.sendline("2")
    child.expect(r"total +\d+\.\d{8} +\d+\.\d{8}")
    child.expect_exact("> ")
    child.sendline("3")
    child.expect_exact("recipient address: ")
    child.sendline(STRANGER)
    child.expect_exact("amount in coins: ")
    child.sendline("1,5")
    child.expect_exact("amount '1,5' is not an amount in coins (like 1.25); try again")
    child.expect_exact("amount in coins: ")
    wait_reading_its_terminal(child)
    child.send("\x03")  # Ctrl-C, in the middle of a payment: that payment is cancelled, the console goes on
    child.expect_exact("cancelled")
    child.expect_exact("> ")
    child.sendline("q")
    shown = net.finish_terminal(child, transcript)
    assert (child.exitstatus, child.signalstatus) == (0, None), shown
    assert "Traceback" not in shown
    assert "KeyboardInterrupt" not in shown
    assert net.mempool() == 0

    child, transcript = net.terminal(net.a)  # Ctrl-C at the menu: the console ends, as interrupted
    child.expect_exact("> ")
    child.sendcontrol("c")
    shown = net.finish_terminal(child, transcript)
    assert (child.exitstatus, child.signalstatus) == (130, None), shown
    assert "Traceback" not in shown


# -- 2. the confirmation ----------------------------------------------------------------------------------------------

CONFIRMATION = re.compile(
    r"send (?P<amount>\d+\.\d{8}) to (?P<to>\S+)\n"
    r"  fee     (?P<fee>\d+\.\d{8}) \((?P<share>[<\d. ]+) % of the amount; (?P<rate>\d+) per byte, (?P<source>[^;]+); "
    r"--fee RATE to choose\)\n"
    r"  change  (?P<change>\d+\.\d{8}) to a new address of yours, (?P<change_to>\S+)\n"
    r"  spendable balance after: (?P<after>\d+\.\d{8})\n"
)


def base_units(coins: str) -> int:
    whole, frac = coins.split(".")
    return int(whole) * COIN + int(frac)


def test_the_confirmation_shows_everything_and_no_sends_nothing(net: Net):
    c, c_address = net.new_wallet("c")
    a_address = net.a_address
    net.wait_mempool_empty()
    wallet_a = net.a.read_bytes()

    fees = {}
    for rate in (2, 4):
        lower = net.spendable_bound(net.a, upper=False)
        run = net.wallet(net.a, "--fee", str(rate), "send", c_address, "1.25", stdin="maybe\nn\n")
        upper = net.spendable_bound(net.a, upper=True)
        assert run.code == 0, run
        assert run.err == ""
        shown = CONFIRMATION.search(run.out)
        assert shown, run.out
        assert shown["to"] == c_address
        assert shown["amount"] == "1.25000000"
        assert int(shown["rate"]) == rate
        assert shown["source"] == "--fee"
        assert shown["change_to"] not in {a for a, _ in WalletFile.addresses(net.a, REGTEST)}  # new, not yet saved
        amount, fee, change, after = (base_units(shown[k]) for k in ("amount", "fee", "change", "after"))
        assert fee > 0
        fees[rate] = fee
        # One coin of A pays it all: amount, fee and change add up to that coin exactly.
        coins = {u["amount"] for u in net.get(f"/address/{a_address}?limit=1")["utxos"]}
        assert amount + fee + change in coins
        # The balance after is what A could spend, less amount and fee.
        assert lower <= after + amount + fee <= upper
        assert run.out.count("send it? [y/n] ") == 2  # 'maybe' is asked again
        assert run.out.rstrip().endswith("not sent")
        assert net.mempool() == 0
        assert net.balance(net.a)["pending"] == 0
        assert net.balance(c) == {
            "addresses": [
                {"address": c_address, "label": "", "confirmed": 0, "spendable": 0, "immature": 0, "pending": 0}
            ],
            "confirmed": 0,
            "spendable": 0,
            "immature": 0,
            "pending": 0,
        }
    assert fees[4] == 2 * fees[2]
    assert net.a.read_bytes() == wallet_a


# -- 3. bad input -----------------------------------------------------------------------------------------------------

BAD_INPUT = {
    "zero": (("send", STRANGER, "0"), "amount must be more than zero"),
    "zero with decimals": (("send", STRANGER, "0.00000000"), "amount must be more than zero"),
    "negative": (("send", STRANGER, "-1"), "'-1' is negative"),
    "too many decimals": (("send", STRANGER, "1.000000001"), "'1.000000001' has more than 8 decimals"),
    "comma": (("send", STRANGER, "1,5"), "'1,5' is not an amount in coins"),
    "words": (("send", STRANGER, "abc"), "'abc' is not an amount in coins"),
    "exponent": (("send", STRANGER, "1e3"), "'1e3' is not an amount in coins"),
    "empty": (("send", STRANGER, ""), "'' is not an amount in coins"),
    "more than spendable": (("send", STRANGER, "999999999"), "not enough spendable coins"),
    "bad address": (("send", "not-an-address", "1"), "'not-an-address' is not a regtest address"),
    "bad checksum": (("send", STRANGER[:-1] + ("1" if STRANGER[-1] != "1" else "2"), "1"), "is not a regtest address"),
    "another network's address": (("send", MAIN_ADDRESS, "1"), f"'{MAIN_ADDRESS}' is not a regtest address"),
    "negative fee": (("--fee", "-1", "send", STRANGER, "1"), "--fee must not be negative"),
    "missing amount": (("send", STRANGER), "required: amount"),
    "unknown subcommand": (("pay", STRANGER, "1"), "invalid choice: 'pay'"),
    "export of an address not in the wallet": (("export", STRANGER), f"{STRANGER} is not an address of this wallet"),
}


@pytest.mark.parametrize(("args", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_refused_and_changes_nothing(net: Net, args: tuple[str, ...], message: str):
    net.wait_mempool_empty()
    wallet_a = net.a.read_bytes()
    run = net.wallet(net.a, *args, "--yes")
    assert_refused(run, 2, message)
    assert net.mempool() == 0
    assert net.a.read_bytes() == wallet_a


# -- 4. the key file --------------------------------------------------------------------------------------------------


def test_a_new_wallet_file_is_private_and_new_never_overwrites(net: Net):
    d, first = net.new_wallet("d")
    assert mode(d) == 0o600
    before = json.loads(d.read_text())
    added = net.run_json(d, "new")
    assert added["created"] is False
    assert added["address"] != first
    assert mode(d) == 0o600
    after = json.loads(d.read_text())
    assert after["keys"][0] == before["keys"][0]  # the first key, byte for byte
    assert [k["address"] for k in after["keys"]] == [first, added["address"]]
    assert [row["address"] for row in net.run_json(d, "address")] == [first, added["address"]]
    assert not d.with_name(d.name + ".new").exists()


def test_an_encrypted_wallet_needs_its_passphrase(net: Net):
    e = net.root / "e.json"
    run = net.wallet(e, "--encrypt", "new", stdin="one\nanother\n")
    assert_refused(run, 2, "the passphrases differ", prompts=True)
    assert not e.exists()

    net.passphrases[e] = PASSPHRASE
    run = net.wallet(e, "--encrypt", "new", stdin=f"{PASSPHRASE}\n{PASSPHRASE}\ny\n")
    assert run.code == 0, run
    assert mode(e) == 0o600
    data = json.loads(e.read_text())
    assert "encryption" in data
    assert all("secret" not in k and "sealed_secret" in k for k in data["keys"])
    assert "seed" not in data["hd"]  # the recovery seed is sealed like the keys
    assert "sealed_seed" in data["hd"]
    e_address = data["keys"][0]["address"]
    assert e_address in run.out
    assert PASSPHRASE not in run.out + run.err

    # A wrong passphrase, from the prompt or from the environment: one line, exit code 5, nothing changed.
    sealed = e.read_bytes()
    net.wait_mempool_empty()
    for args in (("new",), ("send", STRANGER, "1", "--yes"), ("export", e_address)):
        run = net.wallet(e, *args, stdin="not the passphrase\n")
        assert_refused(run, 5, f"wrong passphrase for wallet file {e}", prompts=True)
        run = net.wallet(e, *args, passphrase="not the passphrase")
        assert_refused(run, 5, f"wrong passphrase for wallet file {e}")
    assert e.read_bytes() == sealed
    assert net.mempool() == 0

    # The addresses stay readable without it.
    assert net.balance(e)["addresses"][0]["address"] == e_address

    # Funded by A, it pays with the right passphrase (asked for on stdin, then from the environment).
    funding = json.loads(net.wallet(net.a, "--json", "--yes", "send", e_address, "3").out)
    net.wait_confirmed(funding["txid"])
    run = net.wallet(e, "--json", "send", STRANGER, "1", "--yes", stdin=f"{PASSPHRASE}\n")
    assert run.code == 0, run
    paid = json.loads(run.out[run.out.index("{") :])  # after the passphrase prompt
    assert paid["sent"] is True
    net.wait_confirmed(paid["txid"])
    assert net.get(f"/tx/{paid['txid']}")["outputs"][0] == {"amount": COIN, "address": STRANGER}
    run = net.wallet(e, "send", STRANGER, "0.5", "--yes", passphrase=PASSPHRASE)
    assert run.code == 0, run
    assert run.out.startswith("sent ")

    # `new` with the passphrase keeps the file encrypted and private.
    assert net.run_json(e, "new", passphrase=PASSPHRASE)["created"] is False
    data = json.loads(e.read_text())
    assert len(data["keys"]) == 4  # the first, one change key per payment, and the new one
    assert [k["path"].split("/")[-2:] for k in data["keys"]] == [["0", "0"], ["1", "0"], ["1", "1"], ["0", "1"]]
    assert all("secret" not in k for k in data["keys"])
    assert mode(e) == 0o600


def test_a_passphrase_typed_on_a_terminal_is_not_echoed(net: Net):
    f = net.root / "f.json"
    net.passphrases[f] = PASSPHRASE
    child, transcript = net.terminal(f, "--encrypt", "new")
    child.expect_exact("new passphrase: ")
    child.sendline(PASSPHRASE)
    child.expect_exact("repeat it: ")
    child.sendline(PASSPHRASE)
    child.expect_exact("have you written the 12 words down? [y/n] ")
    child.sendline("y")
    shown = net.finish_terminal(child, transcript)
    assert child.exitstatus == 0, shown
    assert PASSPHRASE not in shown
    address = WalletFile.load(f, REGTEST, PASSPHRASE).keys[0].address
    assert address in shown
    assert mode(f) == 0o600


# -- 5. private keys --------------------------------------------------------------------------------------------------


def test_a_private_key_is_printed_by_export_only(net: Net):
    g, first = net.new_wallet("g")
    second = net.run_json(g, "new")["address"]
    for args in (("address",), ("balance",), ("history",), ("send", STRANGER, "1", "--yes")):
        net.wallet(g, *args)
    net.wallet(g, stdin="1\n2\n4\n\n6\nnot-mine\nq\n")  # the console, its export of an unknown address included
    secrets = {address: secret for secret, address in net.secrets().items()}

    run = net.wallet(g, "export", second)
    assert run.code == 0, run
    assert run.out.splitlines()[-1] == secrets[second]
    assert secrets[first] not in run.out
    assert net.run_json(g, "export", first) == {"address": first, "secret": secrets[first]}
    net.assert_no_secret_printed()  # every command of this module but export


# -- 6. nodes ---------------------------------------------------------------------------------------------------------


def test_an_unreachable_node_is_one_line_and_exit_code_3(net: Net):
    dead = f"http://127.0.0.1:{free_port()}"
    wallet_a = net.a.read_bytes()
    for args in (("balance",), ("history",), ("send", STRANGER, "1", "--yes")):
        run = net.wallet(net.a, *args, nodes=[dead])
        assert_refused(run, 3, "no node could be reached")
        assert dead in run.err
    assert net.a.read_bytes() == wallet_a


def test_the_first_reachable_node_answers(net: Net):
    dead = f"http://127.0.0.1:{free_port()}"
    alive = net.node.url
    h, h_address = net.new_wallet("h")

    balance = net.run_json(net.a, "balance", nodes=[dead, alive])
    assert balance["addresses"][0]["address"] == net.a_address
    assert balance["confirmed"] > 0
    # --node after the command's name adds to the ones before it.
    assert net.run_json(h, "balance", "--node", alive, nodes=[dead])["confirmed"] == 0

    run = net.wallet(net.a, "send", h_address, "0.75", "--yes", "--json", nodes=[dead, alive])
    assert run.code == 0, run
    sent = json.loads(run.out)
    assert sent["sent"] is True
    assert sent["nodes"][0]["node"] == dead
    assert sent["nodes"][0]["error"].startswith("unreachable")
    assert sent["nodes"][1] == {"node": alive, "error": None}

    def confirmed_at_h() -> list[dict]:
        history = net.history(h, nodes=[dead, alive])
        return [e for e in history if not e["pending"]]

    [entry] = wait_until(confirmed_at_h, timeout=WAIT, what="the payment to H confirmed")
    assert (entry["txid"], entry["amount"], entry["direction"]) == (sent["txid"], 75_000_000, "received")
    assert entry["confirmations"] >= 1
    assert net.run_json(h, "balance", nodes=[dead, alive])["confirmed"] == 75_000_000
    assert format_coins(75_000_000) in net.wallet(h, "history", nodes=[dead, alive]).out


def test_encrypt_and_passphrase_mistakes_are_input_errors(net: Net):
    d, _ = net.new_wallet("d2")
    before = d.read_bytes()
    assert_refused(net.wallet(d, "--encrypt", "new"), 2, "--encrypt only applies when creating")
    assert d.read_bytes() == before
    empty = net.root / "empty-pass.json"
    assert_refused(net.wallet(empty, "--encrypt", "new", stdin="\n"), 2, "must not be empty", prompts=True)
    assert not empty.exists()


def test_a_script_that_runs_out_of_answers_does_nothing_and_says_so(net: Net):
    _, b_address = net.new_wallet("b-eof")
    a_before = net.a.read_bytes()
    run = net.wallet(net.a, "send", b_address, "0.5", stdin="")  # the confirmation question finds no answer
    assert_refused(run, 2, "input ended", prompts=True)
    assert net.mempool() == 0
    assert net.balance(net.root / "b-eof.json")["confirmed"] == 0
    assert net.a.read_bytes() == a_before


# -- 7. one backup forever: the recovery words ------------------------------------------------------------------------


def test_recovery_words_restore_the_same_addresses_balance_and_history(net: Net):
    """new (words shown) -> paid -> pays on (change to a new address) -> file deleted -> restore -> the same."""
    r = net.root / "r.json"
    created = net.run_json(r, "new")
    words, r_address = created["recovery_words"], created["address"]
    assert len(words.split()) == 12
    net.wait_mempool_empty()
    funding = net.run_json(net.a, "--fee", "2", "--yes", "send", r_address, "2")
    net.wait_confirmed(funding["txid"])
    paid = net.run_json(r, "--yes", "send", STRANGER, "0.5")  # the node's estimate; change to a new address
    assert paid["fee_rate"] >= 1
    net.wait_confirmed(paid["txid"])
    change = paid["change_address"]
    addresses = [a for a, _ in WalletFile.addresses(r, REGTEST)]
    assert addresses == [r_address, change]
    balance = net.balance(r)
    history = net.history(r)
    assert balance["confirmed"] == 200_000_000 - 50_000_000 - net.fee_of(paid["txid"])
    assert {e["txid"] for e in history} == {funding["txid"], paid["txid"]}

    for leftover in r.parent.glob(r.name + "*"):  # the file, its header cache and lock: a new machine
        leftover.unlink()
    restored = net.wallet(r, "restore", stdin=words.upper() + "\n")  # case and spacing do not matter
    assert restored.code == 0, restored
    assert "1 receiving and 1 change addresses" in restored.out
    assert [a for a, _ in WalletFile.addresses(r, REGTEST)] == addresses
    assert net.balance(r) == balance
    assert [(e["txid"], e["amount"], e["direction"]) for e in net.history(r)] == [
        (e["txid"], e["amount"], e["direction"]) for e in history
    ]
    again = net.wallet(r, "restore", stdin=words + "\n")
    assert_refused(again, 5, "already exists", prompts=True)
    # A word not on the list is asked again alone; a script that has no other answer ends with nothing made.
    wrong = net.wallet(net.root / "r2.json", "restore", stdin=" ".join([*words.split()[:11], "bitcoinz"]) + "\n")
    assert_refused(wrong, 2, "input ended", prompts=True)
    assert "word 12, 'bitcoinz', is not a word of the BIP39 English list" in wrong.out
    assert not (net.root / "r2.json").exists()
