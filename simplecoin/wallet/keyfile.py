"""The wallet file: the private keys of a wallet, as JSON, readable only by its owner.

    {"format": "simplecoin-wallet", "version": 1, "network": "main",
     "keys": [{"address": "S...", "label": "mining rewards", "secret": "<64 hex>"}]}

With a passphrase, the file also says how the key was derived and each secret is sealed instead:

    "encryption": {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<hex>", "cipher": "aes-256-gcm"},
    "keys": [{"address": "S...", "label": "", "sealed_secret": "<hex: 12-byte nonce, ciphertext, tag>"}]

scrypt is memory-hard, so guessing passphrases is slow even on special hardware; AES-GCM is authenticated,
so a wrong passphrase (or a changed file) is detected, never turned into a wrong key. Addresses stay
readable, so balances can be shown without the passphrase.

The file is created with mode 0600 and never overwritten in place: changes go to a new file that replaces
the old one atomically. `miner.py` creates one for its rewards; `wallet.py` reads and extends the same file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.keys import PrivateKey, address_from_pubkey_hash
from simplecoin.core.params import NetworkParams

FORMAT = "simplecoin-wallet"
VERSION = 1
SCRYPT = {"n": 2**15, "r": 8, "p": 1}  # 32 MiB and about 0.1 s per try on a laptop
NONCE_SIZE = 12


class WalletFileError(SimpleCoinError):
    """Raised when a wallet file cannot be created, read, decrypted or understood."""


class PassphraseNeeded(WalletFileError):
    """Raised when an encrypted wallet file is opened without a passphrase."""


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
    kdf: dict | None = None  # scrypt settings and salt, when encrypted
    cipher_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def create(cls, path: Path, params: NetworkParams, label: str = "", passphrase: str | None = None) -> WalletFile:
        """A new wallet file holding one new key; refuses to touch an existing file."""
        kdf = cipher_key = None
        if passphrase is not None:
            if not passphrase:
                raise WalletFileError("the passphrase must not be empty")
            kdf = {"kdf": "scrypt", **SCRYPT, "salt": os.urandom(16).hex(), "cipher": "aes-256-gcm"}
            cipher_key = _derive(passphrase, kdf)
        wallet = cls(Path(path), params, (), kdf, cipher_key)._with_new_key(label)
        wallet._write(exclusive=True)
        return wallet

    @staticmethod
    def read_json(path: Path, params: NetworkParams) -> dict:
        """The file's JSON, checked for format and network (no secrets are decoded)."""
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
        if not isinstance(data.get("keys"), list) or not all(isinstance(k, dict) for k in data["keys"]):
            raise WalletFileError(f"wallet file {path} has a malformed key list")
        return data

    @classmethod
    def addresses(cls, path: Path, params: NetworkParams) -> list[tuple[str, str]]:
        """(address, label) of every key, without the passphrase."""
        data = cls.read_json(path, params)
        try:
            return [(str(k["address"]), str(k.get("label", ""))) for k in data["keys"]]
        except KeyError as e:
            raise WalletFileError(f"wallet file {path} has a key without an address") from e

    @classmethod
    def is_encrypted(cls, path: Path, params: NetworkParams) -> bool:
        return "encryption" in cls.read_json(path, params)

    @classmethod
    def load(cls, path: Path, params: NetworkParams, passphrase: str | None = None) -> WalletFile:
        path = Path(path)
        data = cls.read_json(path, params)
        kdf = data.get("encryption")
        cipher_key = None
        if kdf is not None:
            if passphrase is None:
                raise PassphraseNeeded(f"wallet file {path} is encrypted: its passphrase is needed")
            try:
                cipher_key = _derive(passphrase, kdf)
            except (KeyError, TypeError, ValueError) as e:
                raise WalletFileError(f"wallet file {path} has malformed encryption settings") from e
        keys = []
        for entry in data["keys"]:
            try:
                if cipher_key is not None:
                    secret = _open(cipher_key, bytes.fromhex(entry["sealed_secret"]), entry["address"])
                else:
                    secret = bytes.fromhex(entry["secret"])
                keys.append(cls._key(params, PrivateKey(secret), str(entry.get("label", ""))))
            except InvalidTag as e:
                raise WalletFileError(f"wrong passphrase for wallet file {path} (or the file was altered)") from e
            except (KeyError, TypeError, ValueError) as e:
                raise WalletFileError(f"wallet file {path} has a malformed key entry") from e
            if keys[-1].address != entry["address"]:
                raise WalletFileError(f"wallet file {path}: a key does not match its address {entry['address']}")
        return cls(path, params, tuple(keys), kdf, cipher_key)

    def add_key(self, label: str = "") -> WalletFile:
        """The wallet with one more key, saved."""
        wallet = self._with_new_key(label)
        wallet._write(exclusive=False)
        return wallet

    def _with_new_key(self, label: str) -> WalletFile:
        key = self._key(self.params, PrivateKey.generate(), label)
        return WalletFile(self.path, self.params, (*self.keys, key), self.kdf, self.cipher_key)

    @staticmethod
    def _key(params: NetworkParams, key: PrivateKey, label: str) -> WalletKey:
        return WalletKey(key, label, address_from_pubkey_hash(key.pubkey_hash, params.address_version))

    def _entry(self, k: WalletKey) -> dict:
        if self.cipher_key is None:
            return {"address": k.address, "label": k.label, "secret": k.key.secret.hex()}
        return {
            "address": k.address,
            "label": k.label,
            "sealed_secret": _seal(self.cipher_key, k.key.secret, k.address),
        }

    def _write(self, exclusive: bool) -> None:
        data = {"format": FORMAT, "version": VERSION, "network": self.params.name}
        if self.kdf is not None:
            data["encryption"] = self.kdf
        data["keys"] = [self._entry(k) for k in self.keys]
        text = json.dumps(data, indent=2) + "\n"
        target = self.path if exclusive else self.path.with_name(self.path.name + ".new")
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
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


def _derive(passphrase: str, kdf: dict) -> bytes:
    n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    salt = bytes.fromhex(kdf["salt"])
    return hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def _seal(cipher_key: bytes, secret: bytes, address: str) -> str:
    nonce = os.urandom(NONCE_SIZE)
    # The address is authenticated too: a sealed secret moved to another entry does not open.
    return (nonce + AESGCM(cipher_key).encrypt(nonce, secret, address.encode())).hex()


def _open(cipher_key: bytes, sealed: bytes, address: str) -> bytes:
    return AESGCM(cipher_key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], address.encode())
