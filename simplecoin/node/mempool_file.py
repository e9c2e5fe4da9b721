"""The mempool on disk across a restart (Bitcoin: mempool.dat, DumpMempool / LoadMempool), and next to it the
fee estimator's statistics (Bitcoin: fee_estimates.dat; its format is `FeeEstimator.serialize_stats`).

Format, integers little-endian:

    magic b"SCMEMPL\\x00" (8) | version u32 | genesis hash (32) | count u32 |
    count x (length u32 | serialized transaction) | sha256d of everything before (32)

Written atomically: a temporary file, fsync, rename over the old one, fsync of the directory, so a crash leaves
the old file or the new one. Read strictly: a wrong magic, version, network or checksum, a truncated or oversized
file, or a transaction that does not decode is one warning and an empty pool, never a failed start. What is
read goes back through normal acceptance (the caller's `submit`), so nothing on disk is trusted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from simplecoin.core.encoding import Reader, Writer
from simplecoin.core.errors import ValidationError
from simplecoin.core.hashing import hash_hex, sha256d
from simplecoin.core.params import NetworkParams
from simplecoin.core.primitives import Transaction

log = logging.getLogger(__name__)

FILE_NAME = "mempool.dat"
FEE_FILE_NAME = "fee_estimates.dat"  # in the same directory
MAX_FEE_FILE_BYTES = 1_000_000  # the statistics take about 21 KB
MAGIC = b"SCMEMPL\x00"
VERSION = 1
CHECKSUM_SIZE = 32
# Bound on what is read back: the pool's default cap is 50 MB of memory, and serialized transactions take far
# less than their memory, so a genuine file is well under this. Anything larger is refused unread.
MAX_FILE_BYTES = 200_000_000


class MempoolFileError(Exception):
    """Raised when a mempool file is corrupt, truncated, too large, or of another version or network."""


def encode(txs: Iterable[Transaction], params: NetworkParams) -> bytes:
    """The file's bytes for `txs` (which must come parents first)."""
    txs = list(txs)
    w = Writer().raw(MAGIC).u32(VERSION).raw(params.genesis_hash).u32(len(txs))
    for tx in txs:
        raw = tx.serialize()
        w.u32(len(raw)).raw(raw)
    body = w.getvalue()
    return body + sha256d(body)


def decode(data: bytes, params: NetworkParams) -> list[Transaction]:
    """The transactions in a mempool file's bytes, or MempoolFileError saying what is wrong."""
    if len(data) > MAX_FILE_BYTES:
        raise MempoolFileError(f"{len(data)} bytes > {MAX_FILE_BYTES}")
    if len(data) < len(MAGIC) + 4 + 32 + 4 + CHECKSUM_SIZE:
        raise MempoolFileError(f"truncated: {len(data)} bytes")
    body, checksum = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
    if body[: len(MAGIC)] != MAGIC:
        raise MempoolFileError("not a mempool file (bad magic)")
    if sha256d(body) != checksum:
        raise MempoolFileError("bad checksum (truncated or corrupt)")
    try:
        r = Reader(body)
        r.raw(len(MAGIC))
        version = r.u32()
        if version != VERSION:
            raise MempoolFileError(f"version {version}, expected {VERSION}")
        genesis = r.raw(32)
        if genesis != params.genesis_hash:
            raise MempoolFileError(f"for the network with genesis {hash_hex(genesis)}, not {params.name}")
        txs = []
        for _ in range(r.u32()):
            raw = r.raw(r.u32())
            txs.append(Transaction.deserialize(raw))
        r.end()
    except ValueError as e:  # DecodeError, or a field out of range
        raise MempoolFileError(f"does not decode: {e}") from e
    return txs


def save(path: Path, txs: Iterable[Transaction], params: NetworkParams) -> None:
    """Write the pool atomically (temp file + fsync + rename + directory fsync). Raises OSError."""
    write_atomically(path, encode(txs, params))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old file or the new one. Raises OSError."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def dump(path: Path, txs: list[Transaction], params: NetworkParams) -> None:
    """Save the pool's `txs` (parents first) at shutdown; a failure is a warning, never a reason to skip closing."""
    try:
        save(path, txs, params)
    except OSError as e:
        log.warning("could not save the mempool to %s: %s", path, e)
        return
    log.info("saved %d mempool transactions to %s", len(txs), path)


def read(path: Path, params: NetworkParams) -> list[Transaction]:
    """The saved transactions, or [] with one warning if the file is unusable; [] silently if there is none."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        return decode(data, params)
    except FileNotFoundError:
        return []
    except (OSError, MempoolFileError) as e:
        log.warning("ignoring the saved mempool %s: %s", path, e)
        return []


def load(
    path: Path,
    params: NetworkParams,
    submit: Callable[[Transaction], object],
    stopping: threading.Event | None = None,
) -> int | None:
    """Re-submit the saved transactions through `submit` (normal acceptance); return how many it took.

    Bitcoin: LoadMempool. Those now invalid (mined meanwhile, conflicting, below the pool's fee floor) are
    dropped with a debug line. Returns None if `stopping` was set before the end.
    """
    txs = read(path, params)
    accepted = 0
    for tx in txs:
        if stopping is not None and stopping.is_set():
            log.info("stopped restoring the saved mempool after %d transactions", accepted)
            return None
        try:
            submit(tx)
            accepted += 1
        except ValidationError as e:
            log.debug("dropped saved tx %s: %s", hash_hex(tx.txid), e)
    if txs:
        log.info("restored %d of %d saved mempool transactions", accepted, len(txs))
    return accepted


def read_fee_stats(path: Path, restore: Callable[[bytes], None]) -> None:
    """Hand the saved fee statistics to `restore`; one warning if unusable, nothing if there are none."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FEE_FILE_BYTES + 1)
        restore(data)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:  # DecodeError
        log.warning("ignoring the saved fee statistics %s: %s", path, e)


def dump_fee_stats(path: Path, data: bytes) -> None:
    """Save the fee statistics at shutdown; a failure is a warning."""
    try:
        write_atomically(path, data)
    except OSError as e:
        log.warning("could not save the fee statistics to %s: %s", path, e)


class _Pool(Protocol):
    """What the loader needs of the `NodeService`: normal acceptance without relay, the pool parents first, and
    the fee estimator's statistics out and in."""

    def restore_tx(self, tx: Transaction) -> object: ...

    def pending_txs(self) -> list[Transaction]: ...

    def fee_stats(self) -> bytes: ...

    def restore_fee_stats(self, data: bytes) -> None: ...


class MempoolLoader(threading.Thread):
    """Re-submits the saved mempool in the background, then saves it again at shutdown.

    Bitcoin: LoadMempool runs in a thread after start-up, and DumpMempool is skipped if the load never finished
    (m_load_tried). Here too: checking a full pool's signatures takes many seconds, during which the API should
    answer; and a shutdown before the load finished must not overwrite the file with the part loaded so far.
    Each transaction goes through the service's `restore_tx`, one at a time: the checks of any submitted tx
    (signatures outside the node lock), without relay events, so peers are not flooded with what they most
    likely have already.
    """

    def __init__(self, path: Path, params: NetworkParams, service: _Pool) -> None:
        super().__init__(name="mempool-load", daemon=True)
        self.path, self.params, self.service = path, params, service
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.fee_path = path.with_name(FEE_FILE_NAME)
        self.fee_stats_read = threading.Event()  # read before the pool: saved at shutdown only once read

    def run(self) -> None:
        read_fee_stats(self.fee_path, self.service.restore_fee_stats)
        self.fee_stats_read.set()
        if load(self.path, self.params, self.service.restore_tx, self.stopping) is not None:
            self.finished.set()

    def stop_and_save(self, timeout: float = 10.0) -> None:
        """Stop loading, and save the pool if the saved one was fully loaded (call before the store closes)."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        if self.fee_stats_read.is_set():
            dump_fee_stats(self.fee_path, self.service.fee_stats())
        if not self.finished.is_set():
            log.warning("the saved mempool was not fully loaded; keeping %s as it is", self.path)
            return
        dump(self.path, self.service.pending_txs(), self.params)
