"""Run a SimpleCoin mining node.

This first version mines in a single process on a local chain; the process split (a Flask server process
and mining processes sharing state over a Pipe), the HTTP API and peers come with issue #3.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from simplecoin.errors import DecodeError, SimpleCoinError
from simplecoin.keys import PrivateKey, address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.mining import solve
from simplecoin.node import Node
from simplecoin.params import NETWORKS, NetworkParams, format_coins
from simplecoin.store import Store

log = logging.getLogger("miner")
TRIES_PER_TEMPLATE = 200_000  # then a fresh template: new time, new mempool transactions


def reward_address(args: argparse.Namespace, params: NetworkParams, data_dir: Path) -> bytes:
    """The public-key hash rewards go to: --address, or a key kept in the data directory."""
    if args.address:
        try:
            return pubkey_hash_from_address(args.address, params.address_version)
        except DecodeError as e:
            raise DecodeError(f"--address {args.address!r}: {e}") from e
    key_file = data_dir / "miner-key.json"
    if key_file.exists():
        key = PrivateKey(bytes.fromhex(json.loads(key_file.read_text())["secret"]))
    else:
        key = PrivateKey.generate()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"network": params.name, "secret": key.secret.hex()}, f)
        log.info("created a reward key in %s (keep it private)", key_file)
    return key.pubkey_hash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=sorted(NETWORKS), default="main", help="which chain (default: main)")
    parser.add_argument("--data-dir", type=Path, help="where the chain is stored (default: data/NETWORK)")
    parser.add_argument("--address", help="pay mining rewards to this address (default: a key in the data dir)")
    parser.add_argument("--blocks", type=int, default=0, help="stop after mining this many blocks (0: run forever)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    params = NETWORKS[args.network]
    data_dir = args.data_dir or Path("data") / params.name
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        pubkey_hash = reward_address(args, params, data_dir)
        node = Node(Store(data_dir / "chain.db", params), params)
    except (OSError, DecodeError, SimpleCoinError) as e:
        print(f"miner: {e}", file=sys.stderr)
        return 2
    log.info(
        "mining on %s to %s from height %d",
        params.name,
        address_from_pubkey_hash(pubkey_hash, params.address_version),
        node.height,
    )
    mined = 0
    extra = 0
    try:
        while not args.blocks or mined < args.blocks:
            extra += 1
            block = solve(node.block_template(pubkey_hash, extra.to_bytes(8, "little")), TRIES_PER_TEMPLATE)
            if block is None:
                continue
            node.submit_block(block)
            mined += 1
            log.info(
                "mined block %d %s (reward %s coins)",
                node.height,
                block.header.hash_hex(),
                format_coins(block.txs[0].outputs[0].amount),
            )
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
