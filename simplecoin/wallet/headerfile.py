"""The wallet's verified headers on disk: 80 bytes each from the genesis, and a record of the verified tip.

    wallet.json.headers        the best chain's headers, height h at offset 80*h (Electrum: blockchain_headers)
    wallet.json.headers.meta   {"format": "simplecoin-headers", "network", "height", "tip", "chain_work", "crc32"}

The headers are appended as they are verified; a reorganisation truncates the file at the fork first. The
record names the tip and its cumulative work, so a load does not re-verify from the genesis: it checks that
the file is the one the record describes (size, and a CRC-32 over the headers and the record's tip, height and
work), and re-checks links and work only for the window of headers at the tip that the next header's checks
read. So a load checks no header's proof of work again; it does read the whole file and run the CRC over it.

The check is against damage (a disk's, a copy cut short), not against someone who may write the wallet's
directory: they could rewrite the record with any digest, and the window's re-check is what catches a changed
tip. CRC-32 is the tool for damage (zip, PNG and LevelDB use it) and runs at about 4.5 GB/s here, against
1.5 GB/s for SHA-256: 0.9 ms at 50,000 headers instead of 2.6 ms, most of what a history's load added to a
page over a longer chain (bench_wallet's history ratio). A record from before (its "sha256") is still read,
and the next save writes the CRC. A file that fails is not trusted: it is discarded and the headers are fetched
and verified again. A file from before the record existed (the old cache) is verified in full once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from pathlib import Path

from simplecoin.core.errors import DecodeError
from simplecoin.core.params import NetworkParams
from simplecoin.core.primitives import HEADER_SIZE
from simplecoin.core.spv import HeaderChain, SpvError

log = logging.getLogger(__name__)

FORMAT = "simplecoin-headers"


class HeaderFile:
    """Loads and saves one wallet's HeaderChain."""

    def __init__(self, path: Path, params: NetworkParams) -> None:
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".meta")
        self.params = params
        self.saved_height = -1  # best-chain height the file holds, as far as this process knows

    def load(self, now: int) -> HeaderChain:
        """The saved chain, or a fresh one (genesis only) if there is none or it fails its checks."""
        if not self.path.exists():
            return HeaderChain(self.params)
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            log.info("cannot read header cache %s (%s): starting from the genesis", self.path, e.strerror)
            return HeaderChain(self.params)
        if not self.meta_path.exists():
            return self._verify_old(raw, now)
        try:
            meta = json.loads(self.meta_path.read_text())
            ok = (
                isinstance(meta, dict)
                and meta.get("format") == FORMAT
                and meta.get("network") == self.params.name
                and isinstance(meta.get("height"), int)
                and len(raw) == (meta["height"] + 1) * HEADER_SIZE
                and _matches(raw, meta)
            )
            if not ok:
                raise SpvError("the header cache does not match its record")
            chain = HeaderChain.resume(self.params, raw, int(meta["chain_work"]))
            if chain.hash_at(chain.height).hex() != meta.get("tip") or str(chain.tip.chain_work) != meta["chain_work"]:
                raise SpvError("the header cache's tip or work is not the recorded one")
        except (OSError, ValueError, TypeError, KeyError, SpvError) as e:
            log.info("header cache %s is damaged (%s): verifying again from the genesis", self.path, e)
            return HeaderChain(self.params)
        self.saved_height = chain.height
        chain.first_changed = chain.height + 1
        return chain

    def _verify_old(self, raw: bytes, now: int) -> HeaderChain:
        """A cache without a record: check every header, as the first sync would."""
        chain = HeaderChain(self.params)
        try:
            chain.add_raw(raw[: len(raw) // HEADER_SIZE * HEADER_SIZE], now)
        except (SpvError, DecodeError) as e:
            log.info("old header cache %s fails verification (%s): starting from the genesis", self.path, e)
            return HeaderChain(self.params)
        chain.first_changed = 1
        return chain

    def save(self, chain: HeaderChain) -> None:
        """Append what is new (truncating at a fork first), then record the tip. The caller holds the lock."""
        start = chain.first_changed if self.saved_height >= 0 else 0
        start = min(start, self.saved_height + 1)
        if start > chain.height:
            return
        try:
            mode = "r+b" if self.path.exists() and start > 0 else "wb"
            with open(self.path, mode) as f:
                f.seek(start * HEADER_SIZE)
                f.truncate()
                f.write(chain.raw_from(start))
                f.flush()
                os.fsync(f.fileno())
            meta = {
                "format": FORMAT,
                "network": self.params.name,
                "height": chain.height,
                "tip": chain.hash_at(chain.height).hex(),
                "chain_work": str(chain.tip.chain_work),
            }
            meta["crc32"] = _crc32(self.path.read_bytes(), meta)
            temp = self.meta_path.with_name(self.meta_path.name + ".new")
            temp.write_text(json.dumps(meta) + "\n")
            os.replace(temp, self.meta_path)
        except OSError as e:
            log.info("cannot save header cache %s (%s): it will be fetched again", self.path, e.strerror)
            return
        self.saved_height = chain.height
        chain.first_changed = chain.height + 1


def _matches(raw: bytes, meta: dict) -> bool:
    """Whether the headers and the record are the ones the record's digest was made of (its CRC-32, or the
    SHA-256 a record from before the CRC holds)."""
    if "crc32" in meta:
        return _crc32(raw, meta) == meta["crc32"]
    return "sha256" in meta and _sha256(raw, meta) == meta["sha256"]


def _record(meta: dict) -> bytes:
    """The record's tip, height and work, which the digest covers with the headers: a change to either is seen."""
    return f"{meta.get('network')}|{meta.get('height')}|{meta.get('tip')}|{meta.get('chain_work')}|".encode()


def _crc32(raw: bytes, meta: dict) -> int:
    return zlib.crc32(raw, zlib.crc32(_record(meta)))  # not record + raw: that would copy the whole file


def _sha256(raw: bytes, meta: dict) -> str:
    digest = hashlib.sha256(_record(meta))
    digest.update(raw)
    return digest.hexdigest()
