"""Issue 22, a newcomer's first hour: the miner's wallet has recovery words, an older one can be swept into one,
the console does every command's job, and mistakes (a wrong passphrase, a mistyped word, Ctrl-C, --fee 0) are
recoverable and said once.

A regtest node serves its API from this process (Flask on a loopback thread); `wallet.py` runs as a process
(stdin, or a pseudo-terminal through pexpect), or its `App` is driven with scripted answers.

    genesis - w1 - w2 - w3 - m4 ... m16        w1..w3 pay the loose-key wallet (mature from the tip at 12)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pexpect
import pytest

from simplecoin.cli import node as miner
from simplecoin.cli import wallet as wallet_cli
from simplecoin.core.amounts import COIN
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import REGTEST
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.wallet import hd
from simplecoin.wallet.keyfile import HD_VERSION, VERSION, WalletFile
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import BOB, ChainBuilder
from tests.framework.nodes import REPO, serving
from tests.framework.terminal import spawn_interactive

BOB_ADDRESS = address_from_pubkey_hash(BOB.pubkey_hash, REGTEST.address_version)
PASSPHRASE = "correct horse battery staple"
REWARDS = 3  # coinbases paid to the loose-key wallet


@pytest.fixture
def node(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A served regtest node whose chain pays REWARDS mature coinbases to a loose-key (version 1) wallet file."""
    loose = WalletFile.create(tmp_path / "old.json", REGTEST, label="mining rewards")
    b = ChainBuilder(REGTEST)
    for i in range(1, REWARDS + 1):
        b.block(f"w{i}", pay_to=loose.keys[0].key.pubkey_hash)
    b.chain([f"m{i}" for i in range(REWARDS + 1, 17)])
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    try:
        for name in [*(f"w{i}" for i in range(1, REWARDS + 1)), *(f"m{i}" for i in range(REWARDS + 1, 17))]:
            assert service.submit_block(b[name]).status == "accepted"
        with serving(create_app(service)) as url:
            yield SimpleNamespace(url=url, service=service, loose=loose.path, root=tmp_path)
    finally:
        service.close()


def run(node: SimpleNamespace, wallet: Path, *args: str, stdin: str = "", passphrase: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"}
    if passphrase is not None:
        env["SIMPLECOIN_PASSPHRASE"] = passphrase
    command = [sys.executable, "wallet.py", "--network", "regtest", "--wallet", str(wallet), "--node", node.url]
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=90, input=stdin, env=env)


def terminal(node: SimpleNamespace, wallet: Path, *args: str) -> pexpect.spawn:
    command = ["wallet.py", "--network", "regtest", "--wallet", str(wallet), "--node", node.url, *args]
    env = {k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"}
    return spawn_interactive([sys.executable, *command], cwd=str(REPO), env=env, encoding="utf-8", timeout=60)


class Script:
    """The console's `ask` and `out`, answered from a list; what it showed, in one string."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.shown: list[str] = []

    def ask(self, prompt: str) -> str:
        self.shown.append(prompt)
        if not self.answers:
            raise EOFError
        answer = self.answers.pop(0)
        if answer == "^C":
            raise KeyboardInterrupt
        return answer

    def out(self, text: str) -> None:
        self.shown.append(text + "\n")

    @property
    def text(self) -> str:
        return "".join(self.shown)


def console_app(node: SimpleNamespace, wallet: Path, answers: list[str], monkeypatch) -> Script:
    monkeypatch.delenv("SIMPLECOIN_PASSPHRASE", raising=False)
    script = Script(answers)
    args = argparse.Namespace(
        network="regtest", wallet=wallet, nodes=[node.url], fee=None, json=False, encrypt=False, yes=False,
        limit=wallet_cli.DEFAULT_HISTORY, all=False,
    )  # fmt: skip
    app = wallet_cli.App(args, script.ask, script.out)
    app.ask_secret = script.ask  # type: ignore[method-assign]  # no terminal here
    wallet_cli.console(app)
    return script


# -- 1. the miner's wallet: recovery words; an older one is swept into one -------------------------------------------


def test_the_miner_creates_a_recovery_words_wallet_and_shows_the_words_once(tmp_path: Path, capsys, caplog):
    config = SimpleNamespace(address=None, wallet=tmp_path / "wallet.json", params=REGTEST)
    asked = []
    address = miner.reward_address(config, asked.append)
    data = json.loads(config.wallet.read_text())
    assert data["version"] == HD_VERSION
    assert data["keys"][0]["label"] == "mining rewards"
    printed = capsys.readouterr().err
    words = printed.split("\n\n    ")[1].split("\n")[0]
    assert len(words.split()) == 12
    assert "shown only this once" in printed
    assert asked == ["write them down, then press Enter (Ctrl-C: stop, nothing is created) "]
    assert words not in caplog.text  # on the terminal, not in the log
    seed = hd.seed_from_phrase(words)
    first = hd.derive_key(hd.account_key(seed), hd.RECEIVE, 0)
    assert address == address_from_pubkey_hash(first.pubkey_hash, REGTEST.address_version)
    assert miner.reward_address(config) == address  # the next start: the same address, no words
    assert "recovery words" not in capsys.readouterr().err


def test_the_miner_creates_nothing_when_the_words_are_not_confirmed(tmp_path: Path):
    config = SimpleNamespace(address=None, wallet=tmp_path / "wallet.json", params=REGTEST)

    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(miner.WalletFileError, match="no wallet created"):
        miner.reward_address(config, interrupted)
    assert not config.wallet.exists()


def test_the_miner_mines_to_an_encrypted_wallet_without_its_passphrase(tmp_path: Path):
    encrypted = WalletFile.create_hd(tmp_path / "w.json", REGTEST, hd.new_phrase(), PASSPHRASE)
    config = SimpleNamespace(address=None, wallet=encrypted.path, params=REGTEST)
    assert miner.reward_address(config) == encrypted.keys[0].address


def test_sweep_moves_a_loose_key_wallet_to_a_new_recovery_words_wallet(node: SimpleNamespace):
    new = node.root / "new.json"
    done = run(node, node.loose, "sweep", str(new), stdin="y\ny\n")
    assert done.returncode == 0, done.stderr
    assert "Your recovery words" in done.stdout
    data = json.loads(new.read_text())
    assert data["version"] == HD_VERSION
    [txid] = re.findall(r"\bsent ([0-9a-f]{64})\n", done.stdout)
    tx = node.service.node.mempool.entries[bytes.fromhex(txid)[::-1]].tx
    assert [o.pubkey_hash for o in tx.outputs] == [WalletFile.load(new, REGTEST).keys[0].key.pubkey_hash]
    fee = REWARDS * REGTEST.subsidy(1) - tx.outputs[0].amount
    assert 0 < fee < COIN // 1000
    assert f"--wallet {new}" in done.stdout  # how to point the miner at it
    assert json.loads(node.loose.read_text())["version"] == VERSION  # the old file is left as it was

    again = run(node, node.loose, "sweep", str(node.root / "other.json"), stdin="y\n")
    assert again.returncode == wallet_cli.EXIT_INPUT
    assert "no spendable coins" in again.stderr
    assert not (node.root / "other.json").exists()


def test_sweep_with_json_into_an_existing_recovery_words_wallet(node: SimpleNamespace):
    missing = node.root / "missing.json"
    refused = run(node, node.loose, "--json", "--yes", "sweep", str(missing))
    assert refused.returncode == wallet_cli.EXIT_INPUT
    assert "with --json, make" in refused.stderr  # never words made and not shown
    assert not missing.exists()
    target = WalletFile.create_hd(node.root / "hd.json", REGTEST, hd.new_phrase())
    done = run(node, node.loose, "--json", "--yes", "sweep", str(target.path))
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert sent["sent"] is True
    assert sent["change"] == 0
    assert sent["amount"] + sent["fee"] == REWARDS * REGTEST.subsidy(1)


def test_an_existing_wallet_file_can_be_encrypted(node: SimpleNamespace):
    before = WalletFile.load(node.loose, REGTEST)
    done = run(node, node.loose, "encrypt", passphrase=PASSPHRASE)
    assert done.returncode == 0, done.stderr
    assert WalletFile.is_encrypted(node.loose, REGTEST)
    after = WalletFile.load(node.loose, REGTEST, PASSPHRASE)
    assert [(k.address, k.key.secret) for k in after.keys] == [(k.address, k.key.secret) for k in before.keys]
    assert PASSPHRASE not in node.loose.read_text()
    again = run(node, node.loose, "encrypt", passphrase=PASSPHRASE)
    assert again.returncode == wallet_cli.EXIT_INPUT
    assert "already encrypted" in again.stderr
    refused = run(node, node.loose, "--encrypt", "new", passphrase=PASSPHRASE)
    assert "'wallet.py encrypt'" in refused.stderr


# -- 2. the console does what the commands do ------------------------------------------------------------------------


def test_the_console_restores_encrypts_and_creates_files(node: SimpleNamespace, monkeypatch):
    phrase = hd.new_phrase()
    made = node.root / "made.json"
    restored = node.root / "restored.json"
    script = console_app(
        node,
        node.loose,
        ["8", str(restored), "n", phrase, "7", str(made), "y", PASSPHRASE, PASSPHRASE, "y", "9", "q"],
        monkeypatch,
    )
    seed = hd.seed_from_phrase(phrase)
    first = hd.derive_key(hd.account_key(seed), hd.RECEIVE, 0)
    assert WalletFile.addresses(restored, REGTEST)[0][0] == address_from_pubkey_hash(
        first.pubkey_hash, REGTEST.address_version
    )
    assert f"using wallet file {restored} from now on" in script.text
    assert WalletFile.is_encrypted(made, REGTEST)
    WalletFile.load(made, REGTEST, PASSPHRASE)
    assert "restored " in script.text
    # 9 on the encrypted new file: already encrypted, said, and back at the menu
    assert f"error: wallet file {made} is already encrypted" in script.text


def test_the_console_sweeps_into_a_new_encrypted_wallet(node: SimpleNamespace, monkeypatch):
    target = node.root / "swept.json"
    answers = ["10", str(target), "y", PASSPHRASE, PASSPHRASE, "y", "y", "q"]
    script = console_app(node, node.loose, answers, monkeypatch)
    assert "Your recovery words" in script.text
    assert WalletFile.is_encrypted(target, REGTEST)
    [entry] = node.service.node.mempool.entries.values()
    assert [o.pubkey_hash for o in entry.tx.outputs] == [
        WalletFile.load(target, REGTEST, PASSPHRASE).keys[0].key.pubkey_hash
    ]


def test_the_console_takes_the_options_it_hints_at(node: SimpleNamespace, monkeypatch):
    other = f"http://127.0.0.1:{node.url.rsplit(':', 1)[1]}"
    script = console_app(
        node, node.loose, ["3", BOB_ADDRESS, "1", "x", "3", "n", "4", "2", "5", other, "q"], monkeypatch
    )
    text = script.text
    for flag in ("--fee", "--all", "--limit", "wallet.py"):
        assert flag not in text
    assert "'x' is not a whole number of 0 or more; try again" in text
    assert "of the amount; 3 per byte, your choice; the console asks for it before each payment)" in text
    assert "not sent" in text
    assert "how many of the newest? (Enter: 20, 'all': every one) " in text
    assert text.count("+50.00000000") == 2  # history: the newest two of the three rewards
    assert "menu 4 again" in text
    assert f"node(s) now: {other}" in text


def test_the_console_without_a_wallet_file_points_to_its_own_menu(node: SimpleNamespace, monkeypatch):
    script = console_app(node, node.root / "none.json", ["2", "1", "n", "q"], monkeypatch)
    assert "wallet.py" not in script.text  # no command to type elsewhere: the console's own choices
    assert "7 (a new wallet file) or 8 (restore from recovery words)" in script.text
    assert "no wallet created: choose it again when you can write them down" in script.text
    assert not (node.root / "none.json").exists()


# -- 3. a wrong passphrase is asked again ----------------------------------------------------------------------------


def test_a_wrong_passphrase_is_asked_again_at_the_next_choice(node: SimpleNamespace, monkeypatch):
    wallet = WalletFile.create(node.root / "enc.json", REGTEST, passphrase=PASSPHRASE)
    address = wallet.keys[0].address
    script = console_app(node, wallet.path, ["6", address, "wrong", "6", address, PASSPHRASE, "q"], monkeypatch)
    assert script.text.count(f"passphrase for {wallet.path}: ") == 2
    assert script.text.count("wrong passphrase") == 1
    assert wallet.keys[0].key.secret.hex() in script.text


# -- 4. Ctrl-C cancels what it interrupts ----------------------------------------------------------------------------


def test_ctrl_c_in_the_console_cancels_the_choice_and_at_the_menu_quits(node: SimpleNamespace):
    child = terminal(node, node.loose)
    child.expect_exact("> ")
    child.sendline("3")
    child.expect_exact("recipient address: ")
    child.sendcontrol("c")
    child.expect_exact("cancelled")
    child.expect_exact("> ")  # back at the menu
    child.sendline("2")
    child.expect(r"total +\d+\.\d{8}")
    child.expect_exact("> ")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == wallet_cli.EXIT_CANCELLED


def test_ctrl_c_at_send_it_says_cancelled(node: SimpleNamespace):
    child = terminal(node, node.loose, "send", BOB_ADDRESS, "1")
    child.expect_exact("send it? [y/n] ")
    child.sendcontrol("c")
    child.expect_exact("wallet: cancelled")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == wallet_cli.EXIT_CANCELLED
    assert len(node.service.node.mempool) == 0


# -- 5. a mistyped recovery word is asked again alone ----------------------------------------------------------------


def test_a_mistyped_word_is_asked_again_alone(node: SimpleNamespace):
    phrase = hd.new_phrase()
    words = phrase.split()
    typo = words[4][:-1] + ("x" if words[4][-1] != "x" else "z")
    typed = " ".join([*words[:4], typo, *words[5:]])
    target = node.root / "r.json"
    done = run(node, target, "restore", stdin=f"{typed}\n{words[4]}\n")
    assert done.returncode == 0, done.stderr
    assert f"word 5, {typo!r}, is not a word of the BIP39 English list" in done.stdout
    assert "word 5: " in done.stdout
    assert WalletFile.load(target, REGTEST).seed == hd.seed_from_phrase(phrase)


# -- 6. a fee below the relay minimum is said once, as what it is ----------------------------------------------------


def test_fee_zero_is_explained_once(node: SimpleNamespace):
    done = run(node, node.loose, "--fee", "0", "--yes", "send", BOB_ADDRESS, "1")
    assert done.returncode == wallet_cli.EXIT_REFUSED
    [line] = done.stderr.splitlines()
    assert line.count("min-relay-fee-not-met") == 1, line
    assert "mempool is full" not in line
    assert "minimum relay fee" in line
    assert len(node.service.node.mempool) == 0


# -- 11. help says what each command does ------------------------------------------------------------------------------


def test_help_says_what_each_command_does():
    def helped(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "wallet.py", *args, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0
        return " ".join(done.stdout.split())

    top = helped()
    assert "create a new address" not in top
    assert "confirmed and pending balance" not in top
    assert "sweep" in top
    assert "encrypt" in top
    assert "'confirmed' is spendable + immature" in helped("balance")
    send = helped("send")
    assert "--fee RATE" in send
    assert "--limit" not in send
    history = helped("history")
    assert "--limit N" in history
    assert "--fee" not in history
    assert "12 recovery words" in helped("new")
