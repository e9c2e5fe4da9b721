"""The SimpleCoin wallet from a checkout: `python wallet.py --help`. The code is in simplecoin/cli/wallet.py.

    python wallet.py                                  # the interactive console
    python wallet.py new                              # a new address (a new wallet shows its 12 recovery words)
    python wallet.py send ADDRESS AMOUNT              # AMOUNT in coins, like 1.25; fee rate from the node

Installed with pip, the same command is `simplecoin-wallet`.
"""

import sys

from simplecoin.cli.wallet import main

if __name__ == "__main__":
    sys.exit(main())
