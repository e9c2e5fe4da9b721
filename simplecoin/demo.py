"""A classroom network in one command: a few regtest nodes on this machine that pay each other while you watch.

    python -m simplecoin.demo                       # 3 nodes, one of them mining; Ctrl-C stops everything
    python -m simplecoin.demo --nodes 5 --miners 2  # two miners: now and then a race, and a reorg
    python -m simplecoin.demo --data-dir classroom  # keep the chains, wallets and logs (default: removed)

Node k is a real node process (`miner.py`, or the installed `simplecoin-node`) listening on 127.0.0.k, a free
port, its own data directory `DATA/nodek/` (chain, `wallet.json` made from fresh recovery words, `node.log`),
with every other node as a peer. A light share of them mine, slowed to a block every few seconds. The demo
itself is only a light wallet and an observer: every `--interval` seconds a random node's wallet pays another
node's a small random amount (a real signed transaction, through `simplecoin.wallet` against that node's API),
and it polls each node's `/status` and `/block/...` to print one line per event:

    12:00:07  block 12 found by node1 (00a3f1c2…), 1 payment(s) in it
    12:00:08  payment sent: node1 -> node3, 0.4 coin (txid 5be1a2c0…, fee 0.00000209)
    12:00:11  payment confirmed: node1 -> node3, 0.4 coin in block 13 (merkle proof checked by node3's wallet; 1 so far)
    12:00:40  reorg on node2: 1 block(s) off its chain, tip now 25

Ctrl-C or SIGTERM stops every node (SIGTERM by pid, SIGKILL to its process group after STOP_SECONDS) and,
without --data-dir, removes the temporary directory. A node that dies stops the demo with exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from simplecoin.bounded import BoundedDict
from simplecoin.core.amounts import COIN, format_coins
from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import REGTEST
from simplecoin.core.spv import SpvError
from simplecoin.wallet import hd
from simplecoin.wallet.client import LightWallet, NodeClient, NodeError, WalletError
from simplecoin.wallet.keyfile import WalletFile, WalletFileError

PARAMS = REGTEST
MAX_NODES = 50  # one 127.0.0.k each; a classroom, not a load test
POLL_SECONDS = 0.5  # how often every node's /status is read
START_SECONDS = 90.0  # how long the nodes get to answer /status after they are started
STOP_SECONDS = 15.0  # how long the nodes get to stop after SIGTERM before their process groups are killed
MAX_WALK = 20  # blocks walked back from a tip to find what is new or how deep a reorg went
MAX_PENDING = 1_000  # payments sent and not yet seen confirmed; past it the oldest is forgotten
LOG_LINES = 5  # lines of a dead node's log shown
SEEN_BLOCKS = 10_000  # block hashes already announced; past it the oldest is forgotten
CENT = COIN // 100  # each payment: a random whole number of cents from 1 to 100 (0.01 to 1 coin)


class DemoError(Exception):
    """Raised when the demo cannot start its network (no node program, a node that exits or never answers)."""


def say(message: str) -> None:
    """One line of the demo's log, on stdout, as it happens."""
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


def coins(amount: int) -> str:
    """An amount in coins without trailing zeros ("0.42")."""
    return format_coins(amount).rstrip("0").rstrip(".")


def node_command() -> list[str]:
    """How a node process is started: `miner.py` beside the package in a checkout, else the installed
    `simplecoin-node` (the same `main`) beside this Python or on the PATH."""
    checkout = Path(__file__).resolve().parent.parent / "miner.py"
    if checkout.is_file():
        return [sys.executable, str(checkout)]
    beside = Path(sys.executable).parent / "simplecoin-node"
    found = str(beside) if beside.is_file() else shutil.which("simplecoin-node")
    if found is None:
        raise DemoError("found neither miner.py nor simplecoin-node to start a node with")
    return [found]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class DemoNode:
    """One node of the classroom: its process, its wallet file, and what the demo last saw of its chain."""

    name: str
    host: str
    port: int
    data_dir: Path
    mines: bool
    wallet: LightWallet
    receive_address: str
    process: subprocess.Popen | None = None
    tip: str = ""  # the tip hash /status last showed
    height: int = -1
    answering: bool = True  # whether the last /status was answered (a node that stops answering is said once)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def wallet_path(self) -> Path:
        return self.data_dir / "wallet.json"

    def start(self, command: list[str], peers: list[str], block_seconds: float, miners: int) -> None:
        args = ["--config", str(self.data_dir / "config.yaml"), "--data-dir", str(self.data_dir)]
        args += ["--network", PARAMS.name, "--host", self.host, "--port", str(self.port), "--log-level", "info"]
        if self.mines:
            # Regtest: every other hash is a block. A pause of a third of the block time after each block and
            # 2 hashes per block in the rest of it (among all miners) make one block about every block_seconds.
            args += ["--address", self.receive_address, "--workers", "1", "--mining-pause", f"{block_seconds / 3:.3f}"]
            args += ["--max-hashrate", f"{3 / (block_seconds * miners):.3f}"]
        else:
            args += ["--no-mine"]
        for peer in peers:
            args += ["--peer", peer]
        with (self.data_dir / "node.log").open("ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches the demo, which stops the nodes in order, and
            # the node's process group (its server and miners) can be killed as one if it does not stop.
            self.process = subprocess.Popen(
                [*command, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def death(self) -> str:
        """Why it stopped, in its log's last lines (a temporary data directory is gone once the demo ends)."""
        try:
            lines = (self.data_dir / "node.log").read_text(errors="replace").splitlines()[-LOG_LINES:]
        except OSError:
            lines = []
        return f"{self.name} stopped with exit code {self.exit_code()}; its log ends:\n" + "\n".join(lines)

    def status(self) -> dict:
        return self.wallet.client.get("/status")

    def block(self, block_hash: str) -> dict:
        return self.wallet.client.get(f"/block/{block_hash}")


def make_node(index: int, data_dir: Path, mines: bool) -> DemoNode:
    """Node `index` (1-based): its directory, config file and wallet (kept if --data-dir already has them)."""
    name, host = f"node{index}", f"127.0.0.{index}"
    node_dir = data_dir / name
    node_dir.mkdir(parents=True, exist_ok=True)
    config = node_dir / "config.yaml"
    if not config.exists():  # the node's settings come from its flags, not from a config.yaml of the checkout
        config.write_text("# made by simplecoin.demo: every setting is a flag\nnetwork: regtest\n")
    wallet_path = node_dir / "wallet.json"
    if wallet_path.exists():
        wallet = WalletFile.load(wallet_path, PARAMS)
    else:
        wallet = WalletFile.create_hd(wallet_path, PARAMS, hd.new_phrase())
    port = free_port(host)
    light = LightWallet(wallet_path, PARAMS, NodeClient([f"http://{host}:{port}"]))
    # The first address gets the node's mining rewards (--address) and every payment to this node.
    return DemoNode(name, host, port, node_dir, mines, light, wallet.keys[0].address)


@dataclass(frozen=True)
class Sent:
    """A payment the demo made and has not yet seen confirmed."""

    payer: DemoNode
    payee: DemoNode
    amount: int

    def __str__(self) -> str:
        return f"{self.payer.name} -> {self.payee.name}, {coins(self.amount)} coin"


@dataclass
class Classroom:
    """The running network: watches every node, makes the payments, prints what happens."""

    nodes: list[DemoNode]
    interval: float
    rng: random.Random = field(default_factory=random.Random)
    seen: BoundedDict[str, int] = field(default_factory=lambda: BoundedDict(SEEN_BLOCKS))  # hash: height
    pending: BoundedDict[str, Sent] = field(default_factory=lambda: BoundedDict(MAX_PENDING))
    confirmed: int = 0
    said_waiting: bool = False

    def __post_init__(self) -> None:
        # Not news: the genesis, and the tips the nodes had when they came up (a chain kept in --data-dir).
        self.seen[PARAMS.genesis_hash_hex] = 0
        for node in self.nodes:
            self.seen[node.tip] = node.height

    def run(self, stop: threading.Event, deadline: float | None) -> int:
        """Until `stop` is set or `deadline` (monotonic) passes: 0; 1 as soon as a node dies."""
        next_payment = time.monotonic() + self.interval
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            for node in self.nodes:
                if node.exit_code() is not None:
                    say(node.death())
                    return 1
            self.watch_tips()
            self.check_payments()
            if time.monotonic() >= next_payment:
                next_payment = time.monotonic() + self.interval
                self.pay_once()
            stop.wait(POLL_SECONDS)
        return 0

    # -- blocks and reorgs ----------------------------------------------------------------------------------

    def watch_tips(self) -> None:
        """Read every node's tip, print a reorg that took blocks off its chain, announce the best chain's blocks."""
        for node in self.nodes:
            try:
                status = node.status()
                tip, height = str(status["tip"]), int(status["height"])
                off = self.blocks_off(node, node.tip) if tip != node.tip else 0
            except (NodeError, SpvError, KeyError, TypeError, ValueError) as e:
                if node.answering:  # said once, not every poll
                    say(f"{node.name} does not answer as it should: {e}")
                node.answering = False
                continue
            if not node.answering:
                say(f"{node.name} answers again")
                node.answering = True
            if off:
                say(f"reorg on {node.name}: {off} block(s) off its chain, tip now {height}")
            node.tip, node.height = tip, height
        self.announce_blocks(max(self.nodes, key=lambda n: n.height))

    def blocks_off(self, node: DemoNode, old_tip: str) -> int:
        """How many blocks from `old_tip` back are no longer on `node`'s active chain (0: it only grew)."""
        off, block_hash = 0, old_tip
        while off < MAX_WALK:
            block = node.block(block_hash)
            if block["active"]:
                break
            off, block_hash = off + 1, block["prev_hash"]
        return off

    def announce_blocks(self, node: DemoNode) -> None:
        """Print the blocks of `node`'s chain not announced before, oldest first, with the node that found each."""
        new, block_hash = [], node.tip
        while block_hash not in self.seen and len(new) < MAX_WALK:
            try:
                block = node.block(block_hash)
                paid_to = block["txs"][0]["outputs"][0]["address"] if block["height"] else ""
            except (NodeError, SpvError, KeyError, IndexError, TypeError):
                break  # a reorg under our feet, or a node not answering: the next poll looks again
            if not paid_to:  # the genesis
                break
            new.append((block, paid_to))
            block_hash = block["prev_hash"]
        owners = {n.receive_address: n.name for n in self.nodes}
        for block, paid_to in reversed(new):
            self.seen[block["hash"]] = block["height"]
            finder = owners.get(paid_to, "a miner outside the demo")
            payments = len(block["txs"]) - 1
            say(f"block {block['height']} found by {finder} ({block['hash'][:8]}…), {payments} payment(s) in it")

    # -- payments -------------------------------------------------------------------------------------------

    def pay_once(self) -> None:
        """A random node with spendable coins pays another a random small amount."""
        for payer in self.rng.sample(self.nodes, len(self.nodes)):
            payee = self.rng.choice([n for n in self.nodes if n is not payer])
            amount = self.rng.randint(1, 100) * CENT
            try:
                wallet = WalletFile.load(payer.wallet_path, PARAMS)  # again: it holds the change keys sent since
                payment = payer.wallet.make_payment(wallet, payee.receive_address, amount)
                payer.wallet.send(payment)
            except WalletError:
                continue  # not enough spendable coins: the next one may have some
            except (NodeError, SpvError, WalletFileError) as e:
                say(f"{payer.name} could not pay {payee.name}: {e}")
                continue
            sent = Sent(payer, payee, amount)
            txid = hash_hex(payment.tx.txid)
            self.pending[txid] = sent
            say(f"payment sent: {sent} (txid {txid[:8]}…, fee {coins(payment.fee)})")
            return
        if not self.said_waiting:
            self.said_waiting = True
            say(f"no wallet can pay yet: a block's reward is spendable {PARAMS.coinbase_maturity} blocks later")

    def check_payments(self) -> None:
        """Each pending payment the payee's node has in a block, proven to the payee's own wallet."""
        for txid, sent in list(self.pending.items()):
            wallet = sent.payee.wallet
            try:
                if wallet.client.get(f"/tx/{txid}").get("confirmations", 0) < 1:
                    continue
                wallet.sync_headers()
                height, _ = wallet.verify_confirmed(txid)
            except NodeError:
                continue  # not on the payee's node yet, or it just left a block that a reorg took off
            except SpvError as e:
                say(f"payment {sent}: {sent.payee.name}'s wallet does not believe its node: {e}")
                del self.pending[txid]
                continue
            del self.pending[txid]
            self.confirmed += 1
            say(
                f"payment confirmed: {sent} in block {height} "
                f"(merkle proof checked by {sent.payee.name}'s wallet; {self.confirmed} so far)"
            )


# -- starting and stopping ----------------------------------------------------------------------------------------


def wait_until_up(nodes: list[DemoNode], stop: threading.Event) -> bool:
    """Whether every node answered /status before START_SECONDS; DemoError if one exited."""
    deadline = time.monotonic() + START_SECONDS
    waiting = list(nodes)
    while waiting and not stop.is_set():
        for node in list(waiting):
            if node.exit_code() is not None:
                raise DemoError(node.death())
            try:
                status = node.status()
                node.tip, node.height = str(status["tip"]), int(status["height"])
            except (NodeError, SpvError, KeyError, TypeError, ValueError):
                continue
            waiting.remove(node)
            role = "mining" if node.mines else "not mining"
            say(f"{node.name}  {node.url}/  pid {node.process.pid if node.process else '-'}  {role}")
        if waiting and time.monotonic() > deadline:
            raise DemoError(f"{', '.join(n.name for n in waiting)} did not answer within {START_SECONDS:.0f} s")
        stop.wait(POLL_SECONDS)
    return not waiting


def stop_nodes(nodes: list[DemoNode]) -> None:
    """SIGTERM every node by pid and wait until its process group is empty (the supervisor, its server and
    miners, multiprocessing's resource tracker); a group still there after STOP_SECONDS is killed."""
    running = [n.process for n in nodes if n.process is not None and n.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in [n.process for n in nodes if n.process is not None]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(process.pid):
            say(f"node with pid {process.pid} did not stop; killing its processes")
            # Its own session: the group's id is the node's pid, and the group is ours while a member lives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still there (signal 0 only asks)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="simplecoin-demo",
        description="A classroom network: regtest nodes on 127.0.0.x, each with a wallet, paying each other. "
        "Open the printed URLs to watch; Ctrl-C stops everything.",
    )
    p.add_argument("--nodes", type=int, default=3, help="how many nodes (default: 3)")
    p.add_argument("--miners", type=int, help="how many of them mine (default: one in three, at least one)")
    p.add_argument("--data-dir", type=Path, help="keep chains, wallets and logs here (default: a temporary directory)")
    p.add_argument("--interval", type=float, default=3.0, help="seconds between payments (default: 3)")
    p.add_argument("--block-time", type=float, default=3.0, help="about this many seconds a block (default: 3)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    args = p.parse_args(argv)
    if not 2 <= args.nodes <= MAX_NODES:
        p.error(f"--nodes must be between 2 and {MAX_NODES}")
    if args.miners is None:
        args.miners = max(1, args.nodes // 3)
    if not 1 <= args.miners <= args.nodes:
        p.error("--miners must be between 1 and --nodes")
    for name in ("interval", "block_time", "duration"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be more than 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    started = time.monotonic()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="simplecoin-demo-")) if temporary else args.data_dir
    nodes: list[DemoNode] = []
    try:
        command = node_command()
        nodes = [make_node(i + 1, data_dir, mines=i < args.miners) for i in range(args.nodes)]
        say(f"starting {len(nodes)} regtest nodes ({args.miners} mining) in {data_dir}; Ctrl-C stops them")
        for node in nodes:
            peers = [f"{other.host}:{other.port}" for other in nodes if other is not node]
            node.start(command, peers, args.block_time, args.miners)
        if not wait_until_up(nodes, stop):
            return 0
        say("open the URLs above to watch each node's explorer; payments start when a wallet has coins")
        deadline = None if args.duration is None else started + args.duration
        return Classroom(nodes, args.interval).run(stop, deadline)
    except (DemoError, WalletFileError) as e:
        print(f"simplecoin-demo: {e}", file=sys.stderr)
        return 1
    finally:
        say("stopping the nodes")
        stop_nodes(nodes)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
        say("stopped" + ("" if temporary else f"; chains, wallets and logs are in {data_dir}"))


if __name__ == "__main__":
    sys.exit(main())
