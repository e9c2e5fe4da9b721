"""The wallet file: the private keys of a wallet, as JSON, readable only by its owner.

    {"format": "simplecoin-wallet", "version": 1, "network": "main",
     "keys": [{"address": "S...", "secret": "<64 hex>", "label": "mining rewards"}]}

The file is created with mode 0600 and never overwritten in place: changes go to a new file that replaces
the old one atomically. `miner.py` creates one for its rewards; `wallet.py` reads and extends the same file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from simplecoin.errors import SimpleCoinError
from simplecoin.keys import PrivateKey, address_from_pubkey_hash
from simplecoin.params import NetworkParams

FORMAT = "simplecoin-wallet"
VERSION = 1


class WalletFileError(SimpleCoinError):
    """Raised when a wallet file cannot be created, read or understood."""


@dataclass(frozen=True)
class WalletKey:
    """One address of the wallet with its private key."""

    key: PrivateKey
    label: str
    address: str


@dataclass(frozen=True)
class WalletFile:
    """The keys of one wallet file."""

    path: Path
    params: NetworkParams
    keys: tuple[WalletKey, ...]

    @classmethod
    def create(cls, path: Path, params: NetworkParams, label: str = "") -> WalletFile:
        """A new wallet file holding one new key; refuses to touch an existing file."""
        wallet = cls(Path(path), params, ())
        wallet = wallet._with_new_key(label)
        wallet._write(exclusive=True)
        return wallet

    @classmethod
    def load(cls, path: Path, params: NetworkParams) -> WalletFile:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise WalletFileError(f"cannot read wallet file {path}: {e.strerror}") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise WalletFileError(f"wallet file {path} is not JSON") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise WalletFileError(f"{path} is not a SimpleCoin wallet file (version {VERSION})")
        if data.get("network") != params.name:
            raise WalletFileError(f"wallet file {path} is for network {data.get('network')!r}, not {params.name!r}")
        try:
            keys = tuple(
                cls._key(params, PrivateKey(bytes.fromhex(k["secret"])), k.get("label", "")) for k in data["keys"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise WalletFileError(f"wallet file {path} has a malformed key entry") from e
        return cls(path, params, keys)

    def add_key(self, label: str = "") -> WalletFile:
        """The wallet with one more key, saved."""
        wallet = self._with_new_key(label)
        wallet._write(exclusive=False)
        return wallet

    def _with_new_key(self, label: str) -> WalletFile:
        return WalletFile(self.path, self.params, (*self.keys, self._key(self.params, PrivateKey.generate(), label)))

    @staticmethod
    def _key(params: NetworkParams, key: PrivateKey, label: str) -> WalletKey:
        return WalletKey(key, label, address_from_pubkey_hash(key.pubkey_hash, params.address_version))

    def _write(self, exclusive: bool) -> None:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "network": self.params.name,
            "keys": [{"address": k.address, "secret": k.key.secret.hex(), "label": k.label} for k in self.keys],
        }
        text = json.dumps(data, indent=2) + "\n"
        target = self.path if exclusive else self.path.with_name(self.path.name + ".new")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            if not exclusive:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            fd = os.open(target, flags, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if not exclusive:
                os.replace(target, self.path)
        except FileExistsError as e:
            raise WalletFileError(f"wallet file {self.path} already exists; not overwriting it") from e
        except OSError as e:
            raise WalletFileError(f"cannot write wallet file {self.path}: {e.strerror}") from e
