"""Run a SimpleCoin node: a server process (HTTP API, peers, the chain) and mining processes.

Every node runs from here, mining or not: with --no-mine it starts no mining process and is a full node
that validates, serves and relays.

    python miner.py                         # main network, settings from config.yaml
    python miner.py --network regtest       # trivial proof of work, for experiments
    python miner.py --peer host:5000        # join another node
    python miner.py --no-mine               # validate and relay only

The processes talk only through multiprocessing Pipes: the server sends block templates to the miners,
the miners send back solved headers. Ctrl-C or SIGTERM stops them all; if one dies, the others are stopped
and the exit code is non-zero.

`miner.py` in a checkout and the installed `simplecoin-node` (also `python -m simplecoin.cli.node`) run this
`main`; only `miner.py` reads the config.yaml beside it by default. Installed, the node reads a settings file
only when given `--config`, and without one has the same settings as the repository's config.yaml.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path
from typing import NoReturn

from simplecoin.core.params import NETWORKS
from simplecoin.node import worker
from simplecoin.node.config import (
    Config,
    ConfigError,
    DataDirLock,
    build_config,
    check_data_dir,
    check_port,
    read_config_file,
)
from simplecoin.server import FATAL_EXIT_CODE, REFUSED_EXIT_CODE, serve
from simplecoin.wallet import hd
from simplecoin.wallet.keyfile import WalletFile, WalletFileError

log = logging.getLogger("miner")  # not __name__: the log lines read "miner: ..." as they did before the move
STOP_SECONDS = 15  # how long the processes get to stop before they are killed


class OneLineParser(argparse.ArgumentParser):
    """Flag errors in one line, like every other configuration error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"miner: {message}\n")


def parse_args(argv: list[str] | None, default_config: Path | None = None) -> argparse.Namespace:
    p = OneLineParser(
        description="Run a SimpleCoin node: it mines, or with --no-mine only validates, serves and relays. "
        "Flags override config.yaml.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        help=f"the YAML settings file (default: {default_config.name} beside miner.py)"
        if default_config is not None
        else "the YAML settings file (default: none; the built-in settings are the ones config.yaml lists)",
    )
    p.add_argument("--network", choices=sorted(NETWORKS), help="the chain to join (default: main)")
    p.add_argument("--data-dir", help="where the chain and the wallet live (default: ~/.simplecoin/NETWORK)")
    p.add_argument("--host", help="address the HTTP API listens on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port of the HTTP API (default: 5000)")
    p.add_argument("--public-url", help="URL other nodes use to reach this one (default: http://HOST:PORT)")
    p.add_argument(
        "--peer", action="append", dest="peers", metavar="HOST:PORT", help="another node to connect to (repeatable)"
    )
    p.add_argument("--address", help="pay mining rewards to this address (default: the wallet file's first address)")
    p.add_argument("--wallet", help="wallet file for rewards when no --address (default: DATA_DIR/wallet.json)")
    p.add_argument("--no-mine", action="store_false", dest="mine", default=None, help="validate and relay, do not mine")
    p.add_argument("--workers", type=int, help="mining processes (default: one per CPU core)")
    p.add_argument("--mining-pause", type=float, help="seconds to wait after each mined block (default: 0; regtest 1)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="how much to log (default: info)")
    p.add_argument(
        "--max-hashrate",
        type=float,
        metavar="H",
        help="for tests and experiments: hold each mining process to H hashes per second, as a slower machine would",
    )
    p.add_argument(
        "--regtest-asert",
        type=int,
        metavar="SECONDS",
        help="regtest only: MAIN's per-block difficulty rule at SECONDS a block instead of regtest's fixed easy "
        "target, to watch difficulty follow hashrate (every node of such a network needs the same value)",
    )
    p.add_argument(
        "--clock-offset",
        type=float,
        metavar="SECONDS",
        help="for tests and experiments: run the node's clock this many seconds ahead of the machine's "
        "(negative: behind), as a node with a wrong clock would (Bitcoin: -mocktime)",
    )
    return p.parse_args(argv)


def load_config(args: argparse.Namespace, default_config: Path | None = None) -> Config:
    """The settings: flags over the file (`--config`, else `default_config` if it exists) over the defaults."""
    path = args.config or default_config
    file_values = read_config_file(path) if args.config or (path is not None and path.exists()) else {}
    flags = {
        "network": args.network,
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "public_url": args.public_url,
        "peers": args.peers,
        "address": args.address,
        "wallet": args.wallet,
        "mine": args.mine,
        "workers": args.workers,
        "mining_pause": args.mining_pause,
        "log_level": args.log_level,
        "clock_offset": args.clock_offset,
        "max_hashrate": args.max_hashrate,
        "regtest_asert": args.regtest_asert,
    }
    source = path.name if path is not None else "config"
    config = build_config(file_values, {k: v for k, v in flags.items() if v is not None}, source=source)
    check_data_dir(config.data_dir)  # creates nothing: a refused start leaves nothing behind
    return config


def reward_address(config: Config, ask: Callable[[str], str] | None = None) -> str:
    """The configured address, or the first of the wallet file's (a new recovery-words wallet if there is none).

    The words of a new wallet are printed once, on stderr and not through the log; on a terminal (`ask`) the
    node waits until the user says they wrote them down, and creates nothing on Ctrl-C, as `wallet.py new`.
    """
    if config.address:
        return config.address
    if config.wallet.exists():
        rows = WalletFile.addresses(config.wallet, config.params)  # no passphrase needed: it may be encrypted
        if not rows:
            rows = [(WalletFile.load(config.wallet, config.params).add_key("mining rewards").keys[0].address, "")]
        log.info("mining rewards go to %s (wallet file %s)", rows[0][0], config.wallet)
        return rows[0][0]
    phrase = hd.new_phrase()
    print(hd.recovery_notice(phrase), file=sys.stderr, flush=True)
    if ask is not None:
        try:
            ask("write them down, then press Enter (Ctrl-C: stop, nothing is created) ")
        except (EOFError, KeyboardInterrupt) as e:
            raise WalletFileError(
                f"no wallet created at {config.wallet}: start the node again when you can write the words down"
            ) from e
    wallet = WalletFile.create_hd(config.wallet, config.params, phrase, label="mining rewards")
    log.info("created wallet file %s; mining rewards go to %s", config.wallet, wallet.keys[0].address)
    return wallet.keys[0].address


def main(argv: list[str] | None = None, default_config: Path | None = None) -> int:
    """Run a node until Ctrl-C or SIGTERM; `default_config` is the settings file read without --config."""
    args = parse_args(argv, default_config)
    try:
        config = load_config(args, default_config)
        logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        lock = DataDirLock.acquire(config.data_dir)  # before the port: "in use by pid N" says more than "port busy"
    except ConfigError as e:
        print(f"miner: {e}", file=sys.stderr)
        return 2
    try:
        check_port(config)
        ask = input if sys.stdin.isatty() else None
        address = reward_address(config, ask) if config.mine else None
    except (ConfigError, WalletFileError) as e:
        lock.abandon()
        print(f"miner: {e}", file=sys.stderr)
        return 2
    return supervise(config, address, lock)


def supervise(config: Config, address: str | None, lock: DataDirLock) -> int:
    """Start the processes, wait for a signal or a death, stop everyone.

    We hold the data directory's lock for our whole life and hand it to the server process too (see
    DataDirLock); the mining processes never touch the disk and do not get it.
    """
    ctx = multiprocessing.get_context("spawn")
    pipes = [ctx.Pipe() for _ in range(config.workers)] if address else []
    server = ctx.Process(target=serve, args=(config, [ours for ours, _ in pipes], address, lock), name="server")
    miners = [
        ctx.Process(target=worker.run, args=(theirs,), kwargs={"max_hashrate": config.max_hashrate}, name=f"miner-{i}")
        for i, (_, theirs) in enumerate(pipes)
    ]
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    processes = [server, *miners]
    for process in processes:
        process.start()
    for ours, theirs in pipes:  # each end now belongs to exactly one child
        ours.close()
        theirs.close()
    log.info("node started: server pid %d, %d mining process(es)", server.pid, len(miners))
    exit_code = 0
    while not stopping:
        wait([p.sentinel for p in processes], timeout=0.2)
        dead = [p for p in processes if p.exitcode is not None]
        if dead and not stopping:
            for p in dead:
                why = (
                    {
                        FATAL_EXIT_CODE: " (one of its threads failed beyond restarting; see above)",
                        REFUSED_EXIT_CODE: " (it refused to start on this data directory; see above)",
                    }.get(p.exitcode, "")
                    if p is server
                    else ""
                )
                log.error(
                    "%s process (pid %d) died with exit code %s%s; stopping the node", p.name, p.pid, p.exitcode, why
                )
            exit_code = 1
            break
    log.info("stopping")
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    for process in processes:
        process.join(timeout=STOP_SECONDS)
        if process.exitcode is None:
            log.error("%s process (pid %d) did not stop; killing it", process.name, process.pid)
            process.kill()
            process.join()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
