"""Run a SimpleCoin node from a checkout: `python miner.py --help`. The code is in simplecoin/cli/node.py.

    python miner.py                         # main network, settings from config.yaml
    python miner.py --network regtest       # trivial proof of work, for experiments
    python miner.py --peer host:5000        # join another node
    python miner.py --no-mine               # validate and relay only

Installed with pip, the same command is `simplecoin-node`.
"""

import sys
from pathlib import Path

from simplecoin.cli.node import main

if __name__ == "__main__":
    sys.exit(main(default_config=Path(__file__).resolve().parent / "config.yaml"))
