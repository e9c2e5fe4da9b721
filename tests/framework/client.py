"""What a test (or a benchmark) does with a running node through its HTTP API, as a wallet would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.keys import PrivateKey
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint, Transaction, TxIn, TxOut
from simplecoin.wallet.keyfile import WalletFile
from tests.framework.builder import BOB, sign_all
from tests.framework.nodes import NodeProcess

FEE = 10_000
MATURITY = REGTEST.coinbase_maturity


def reward_key(node: NodeProcess) -> tuple[PrivateKey, str]:
    """The key and address the node's miner pays to: the first key of DATA_DIR/wallet.json."""
    wallet = WalletFile.load(node.data_dir / "wallet.json", REGTEST)
    return wallet.keys[0].key, wallet.keys[0].address


def get_json(node: NodeProcess, path: str) -> dict:
    response = node.get(path)
    response.raise_for_status()
    return response.json()


def mature_coinbases(node: NodeProcess, address: str) -> list[dict]:
    """The address' coinbase UTXOs on `node` that a transaction in the next block may spend, oldest first (of its
    first page: the node lists the largest 1,000 coins, ties by txid)."""
    data = get_json(node, f"/address/{address}")
    tip = data["tip_height"]
    mature = [u for u in data["utxos"] if u["coinbase"] and tip + 1 - u["height"] >= MATURITY]
    return sorted(mature, key=lambda u: u["height"])


def spend(utxo: dict, key: PrivateKey, to: bytes = BOB.pubkey_hash) -> Transaction:
    """A signed transaction paying `utxo` (as /address lists it) minus FEE to `to`."""
    outpoint = OutPoint(hash_from_hex(utxo["txid"]), utxo["index"])
    tx = Transaction(1, (TxIn(outpoint, key.pubkey, b""),), (TxOut(utxo["amount"] - FEE, to),))
    return sign_all(tx, key, REGTEST, REGTEST.genesis_hash)


def submit(node: NodeProcess, tx: Transaction) -> str:
    response = node.post("/tx", json={"hex": tx.serialize().hex()})
    assert response.status_code == 200, response.text
    txid = response.json()["txid"]
    assert txid == hash_hex(tx.txid)
    return txid


def tx_info(node: NodeProcess, txid: str) -> dict | None:
    response = node.get(f"/tx/{txid}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def confirmed(node: NodeProcess, txid: str) -> dict | None:
    info = tx_info(node, txid)
    return info if info is not None and info["confirmations"] >= 1 else None


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus's text format, read by prometheus_client's own parser: (sample name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metrics(node: NodeProcess) -> dict[tuple[str, tuple], float]:
    """The node's GET /metrics (asked from this machine, which it serves), parsed."""
    response = node.get("/metrics")
    response.raise_for_status()
    return metric_samples(response.text)
