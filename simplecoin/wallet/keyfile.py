"""The wallet file: the private keys of a wallet, as JSON, readable only by its owner.

    {"format": "simplecoin-wallet", "version": 1, "network": "main",
     "keys": [{"address": "S...", "label": "mining rewards", "secret": "<64 hex>"}]}

With a passphrase, the file also says how the key was derived and each secret is sealed instead:

    "encryption": {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<hex>", "cipher": "aes-256-gcm"},
    "keys": [{"address": "S...", "label": "", "sealed_secret": "<hex: 12-byte nonce, ciphertext, tag>"}]

scrypt is memory-hard, so guessing passphrases is slow even on special hardware; AES-GCM is authenticated,
so a wrong passphrase (or a changed file) is detected, never turned into a wrong key. Addresses stay
readable, so balances can be shown without the passphrase.

A wallet made from recovery words (version 2) also holds the BIP39 seed, sealed like the secrets when the
file is encrypted, and the BIP32 path of each key (simplecoin.wallet.hd):

    "version": 2, "hd": {"account": "m/44'/5456719'/0'", "seed": "<128 hex>"  (or "sealed_seed")},
    "keys": [{"address": "r...", "label": "", "path": "m/44'/5456719'/0'/0/0", "secret": "<64 hex>"}]

Version 1 files (loose random keys, as `miner.py` made before it made recovery words) still load, spend and
grow; `wallet.py sweep` moves their coins to a version 2 file.

The file is created with mode 0600 and never overwritten in place: changes go to a new file that replaces
the old one atomically, under an exclusive lock (`wallet.json.lock`, flock) held while the file is read again
and rewritten, so two processes adding keys at once both keep theirs: a key shown to the user is on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.keys import PrivateKey, address_from_pubkey_hash
from simplecoin.core.params import NetworkParams
from simplecoin.wallet import hd

FORMAT = "simplecoin-wallet"
VERSION = 1  # loose random keys
HD_VERSION = 2  # keys derived from recovery words
LOCK_WAIT_SECONDS = 10.0  # how long a change waits for another process's change before "busy"
SCRYPT = {"n": 2**15, "r": 8, "p": 1}  # 32 MiB and about 0.1 s per try on a laptop
NONCE_SIZE = 12


class WalletFileError(SimpleCoinError):
    """Raised when a wallet file cannot be created, read, decrypted or understood."""


class PassphraseNeeded(WalletFileError):
    """Raised when an encrypted wallet file is opened without a passphrase."""


class WrongPassphrase(WalletFileError):
    """Raised when a sealed secret does not open: the passphrase is wrong (or the file was altered)."""


class WalletBusy(WalletFileError):
    """Raised when another process holds the wallet file's lock for longer than LOCK_WAIT_SECONDS."""


@contextlib.contextmanager
def locked(path: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock of wallet file `path` (flock on `path.lock`; released when the process dies)."""
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise WalletFileError(f"cannot lock wallet file {path}: {e.strerror}") from e
    try:
        deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait is None else wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WalletBusy(f"wallet file {path} is busy: another process is changing it; try again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@dataclass(frozen=True)
class WalletKey:
    """One address of the wallet with its private key."""

    key: PrivateKey
    label: str
    address: str
    path: str = ""  # BIP32 path when derived from the recovery words; "" for a loose random key


@dataclass(frozen=True)
class WalletFile:
    """The keys of one wallet file."""

    path: Path
    params: NetworkParams
    keys: tuple[WalletKey, ...]
    kdf: dict | None = None  # scrypt settings and salt, when encrypted
    cipher_key: bytes | None = field(default=None, repr=False)
    seed: bytes | None = field(default=None, repr=False)  # BIP39 seed of a version 2 file

    @property
    def is_hd(self) -> bool:
        return self.seed is not None

    @classmethod
    def create(cls, path: Path, params: NetworkParams, label: str = "", passphrase: str | None = None) -> WalletFile:
        """A new wallet file holding one new loose key; refuses to touch an existing file."""
        kdf, cipher_key = _new_encryption(passphrase)
        wallet = cls(Path(path), params, (), kdf, cipher_key)
        wallet = WalletFile(wallet.path, params, (wallet._new_key(label, [], hd.RECEIVE),), kdf, cipher_key)
        with locked(wallet.path):
            wallet._write(wallet._data(), exclusive=True)
        return wallet

    @classmethod
    def create_hd(
        cls,
        path: Path,
        params: NetworkParams,
        phrase: str,
        passphrase: str | None = None,
        receive: int = 1,
        change: int = 0,
        label: str = "",
    ) -> WalletFile:
        """A new wallet file from recovery words, `receive` receiving keys (labelled `label`) and `change` change
        keys derived; refuses to touch an existing file. hd.PhraseError for words that are not a valid phrase."""
        seed = hd.seed_from_phrase(phrase)
        kdf, cipher_key = _new_encryption(passphrase)
        account = hd.account_key(seed)
        keys = tuple(
            cls._key(params, hd.derive_key(account, chain, i), "change" if chain else label, hd.key_path(chain, i))
            for chain, count in ((hd.RECEIVE, receive), (hd.CHANGE, change))
            for i in range(count)
        )
        wallet = cls(Path(path), params, keys, kdf, cipher_key, seed)
        with locked(wallet.path):
            wallet._write(wallet._data(), exclusive=True)
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
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("version") not in (VERSION, HD_VERSION)
        ):
            raise WalletFileError(f"{path} is not a SimpleCoin wallet file (version {VERSION} or {HD_VERSION})")
        if data.get("network") != params.name:
            raise WalletFileError(f"wallet file {path} is for network {data.get('network')!r}, not {params.name!r}")
        if not isinstance(data.get("keys"), list) or not all(isinstance(k, dict) for k in data["keys"]):
            raise WalletFileError(f"wallet file {path} has a malformed key list")
        if data["version"] == HD_VERSION and not isinstance(data.get("hd"), dict):
            raise WalletFileError(f"wallet file {path} (version {HD_VERSION}) has no recovery seed")
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
        return cls._from_data(path, params, data, kdf, cipher_key)

    @classmethod
    def _from_data(
        cls, path: Path, params: NetworkParams, data: dict, kdf: dict | None, cipher_key: bytes | None
    ) -> WalletFile:
        seed = None
        try:
            if "hd" in data:
                hd_data = data["hd"]
                if cipher_key is not None:
                    seed = _open(cipher_key, bytes.fromhex(hd_data["sealed_seed"]), "seed")
                else:
                    seed = bytes.fromhex(hd_data["seed"])
        except InvalidTag as e:
            raise WrongPassphrase(f"wrong passphrase for wallet file {path} (or the file was altered)") from e
        except (KeyError, TypeError, ValueError) as e:
            raise WalletFileError(f"wallet file {path} has a malformed recovery seed") from e
        keys = []
        for entry in data["keys"]:
            try:
                if cipher_key is not None:
                    secret = _open(cipher_key, bytes.fromhex(entry["sealed_secret"]), entry["address"])
                else:
                    secret = bytes.fromhex(entry["secret"])
                key_path = str(entry.get("path", ""))
                keys.append(cls._key(params, PrivateKey(secret), str(entry.get("label", "")), key_path))
            except InvalidTag as e:
                raise WrongPassphrase(f"wrong passphrase for wallet file {path} (or the file was altered)") from e
            except (KeyError, TypeError, ValueError) as e:
                raise WalletFileError(f"wallet file {path} has a malformed key entry") from e
            if keys[-1].address != entry["address"]:
                raise WalletFileError(f"wallet file {path}: a key does not match its address {entry['address']}")
        return cls(path, params, tuple(keys), kdf, cipher_key, seed)

    def add_key(self, label: str = "", chain: int = hd.RECEIVE) -> WalletFile:
        """The wallet with one more key (the next on `chain` for a recovery-words wallet), saved.

        Under the lock the file is read again, so a key another process added meanwhile is kept, and the next
        derivation index is the file's, not this process's stale copy.
        """
        with locked(self.path):
            fresh = self._reread()
            key = fresh._new_key(label, list(fresh.keys), chain)
            wallet = WalletFile(self.path, self.params, (*fresh.keys, key), self.kdf, self.cipher_key, fresh.seed)
            wallet._write(wallet._data(), exclusive=False)
        return wallet

    def encrypted(self, passphrase: str) -> WalletFile:
        """The same wallet protected by `passphrase` from now on, saved (refused if the file already is).

        The file is rewritten whole under the lock and renamed over the old one, so a crash leaves either the
        plain file or the encrypted one, never half of each.
        """
        with locked(self.path):
            if self.is_encrypted(self.path, self.params):  # read before opening: this copy may predate it
                raise WalletFileError(f"wallet file {self.path} is already encrypted")
            fresh = self._reread()
            kdf, cipher_key = _new_encryption(passphrase)
            wallet = WalletFile(self.path, self.params, fresh.keys, kdf, cipher_key, fresh.seed)
            wallet._write(wallet._data(), exclusive=False)
        return wallet

    def next_change_key(self) -> WalletKey:
        """A change key not yet in the file (the next on the change chain, or a new random one); not saved:
        `LightWallet.send` saves it before the tx paying it goes to a node, so a declined payment leaves the
        file as it was."""
        return self._new_key("change", list(self._reread().keys), hd.CHANGE)

    def save_key(self, key: WalletKey) -> WalletFile:
        """The wallet with `key` saved in the file (kept once if another process saved the same derived key)."""
        with locked(self.path):
            fresh = self._reread()
            keys = fresh.keys if key.address in {k.address for k in fresh.keys} else (*fresh.keys, key)
            wallet = WalletFile(self.path, self.params, keys, self.kdf, self.cipher_key, fresh.seed)
            wallet._write(wallet._data(), exclusive=False)
        return wallet

    def _reread(self) -> WalletFile:
        """The file as it is now, opened with this wallet's key (no second scrypt)."""
        return self._from_data(
            self.path, self.params, self.read_json(self.path, self.params), self.kdf, self.cipher_key
        )

    def _new_key(self, label: str, existing: list[WalletKey], chain: int) -> WalletKey:
        if self.seed is None:
            return self._key(self.params, PrivateKey.generate(), label)
        prefix = f"{hd.ACCOUNT_PATH}/{chain}/"
        used = [int(k.path[len(prefix) :]) for k in existing if k.path.startswith(prefix)]
        index = max(used, default=-1) + 1
        key = hd.derive_key(hd.account_key(self.seed), chain, index)
        return self._key(self.params, key, label, hd.key_path(chain, index))

    @staticmethod
    def _key(params: NetworkParams, key: PrivateKey, label: str, path: str = "") -> WalletKey:
        return WalletKey(key, label, address_from_pubkey_hash(key.pubkey_hash, params.address_version), path)

    def _entry(self, k: WalletKey) -> dict:
        entry: dict = {"address": k.address, "label": k.label}
        if k.path:
            entry["path"] = k.path
        if self.cipher_key is None:
            entry["secret"] = k.key.secret.hex()
        else:
            entry["sealed_secret"] = _seal(self.cipher_key, k.key.secret, k.address)
        return entry

    def _data(self) -> dict:
        data: dict = {"format": FORMAT, "version": HD_VERSION if self.seed else VERSION, "network": self.params.name}
        if self.kdf is not None:
            data["encryption"] = self.kdf
        if self.seed is not None:
            if self.cipher_key is None:
                data["hd"] = {"account": hd.ACCOUNT_PATH, "seed": self.seed.hex()}
            else:
                data["hd"] = {"account": hd.ACCOUNT_PATH, "sealed_seed": _seal(self.cipher_key, self.seed, "seed")}
        data["keys"] = [self._entry(k) for k in self.keys]
        return data

    def _write(self, data: dict, exclusive: bool) -> None:
        """Write the file (the caller holds the lock): a new file, or a complete copy renamed over the old."""
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


def _new_encryption(passphrase: str | None) -> tuple[dict | None, bytes | None]:
    if passphrase is None:
        return None, None
    if not passphrase:
        raise WalletFileError("the passphrase must not be empty")
    kdf = {"kdf": "scrypt", **SCRYPT, "salt": os.urandom(16).hex(), "cipher": "aes-256-gcm"}
    return kdf, _derive(passphrase, kdf)


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
