"""The commands: `node` (miner.py, simplecoin-node) and `wallet` (wallet.py, simplecoin-wallet), each a `main`."""
