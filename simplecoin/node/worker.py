"""A mining process: scans nonces for the work the server sends and sends back what it finds.

It talks to the server only through its end of a Pipe: it receives `Work`, IDLE or None (stop) and sends
`Solution` and `HashReport`. Between chunks of nonces it looks at the pipe, so new work replaces old within
a few tens of milliseconds; of several messages waiting, only the newest counts.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import time
from multiprocessing.connection import Connection

from simplecoin.core.mining import COUNTER_NONCE_SIZE, HashReport, Solution, Work, work_header_prefix
from simplecoin.core.pow import bits_to_target

NONCE_SPACE = 1 << 32
CHUNK_SECONDS = 0.01  # how long one scan runs before the pipe is checked again
REPORT_SECONDS = 1.0
BURST_SECONDS = 0.1  # with max_hashrate: hashes that may be saved up while waiting, in seconds of the rate


def scan(prefix: bytes, target: int, start: int, count: int) -> int | None:
    """The first nonce in [start, start + count) whose header hash meets `target`, or None.

    The SHA-256 state after the header's first 76 bytes (one compressed 64-byte block and 12 buffered bytes)
    is computed once and copied per nonce, so only the 4 nonce bytes are hashed into it. A hash is first
    compared cheaply on its most significant byte (the digest's last: it is read little-endian); only one
    that passes (rare at any real difficulty) is converted to an integer.
    """
    midstate = hashlib.sha256(prefix[:76])
    top_byte = target >> 248  # a hash <= target has a most significant byte <= this
    pack = struct.Struct("<I").pack
    sha256 = hashlib.sha256
    for nonce in range(start, min(start + count, NONCE_SPACE)):
        h = midstate.copy()
        h.update(pack(nonce))
        digest = sha256(h.digest()).digest()
        if digest[31] <= top_byte and int.from_bytes(digest, "little") <= target:
            return nonce
    return None


def run(conn: Connection, nice: int = 10, max_hashrate: float | None = None) -> None:
    """The mining process' main loop: until told to stop (None) or the pipe closes.

    `max_hashrate` (tests and experiments: a slower machine) holds the scan to that many hashes per second: it
    waits on the pipe between chunks, so new work still replaces old at once.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when everyone stops
    os.nice(nice)  # keep the node's server responsive on a busy machine
    work: Work | None = None
    chunk = 10_000
    hashes, since = 0, time.monotonic()
    # max_hashrate is a token bucket: hashes are paid for as time passes, at most BURST_SECONDS' worth saved up,
    # whatever the jobs (a per-job budget let a fast chain, with a new job every few ms, hash unthrottled).
    tokens, paid_at = 0.0, since
    try:
        while True:
            if work is None or conn.poll():
                message = conn.recv()
                # Only the newest job counts. Solving each queued one in turn answered every stale job with a
                # solution, each of which made the server send new work to every worker: on an easy chain the
                # queues grew until both ends of the pipe blocked in send (the pump and a worker, deadlocked).
                while message is not None and conn.poll():
                    message = conn.recv()
                if message is None:
                    return
                if not isinstance(message, Work):  # IDLE: wait for the next job
                    work = None
                    continue
                work, counter, nonce = message, 0, 0
                target = bits_to_target(work.bits)
                prefix = work_header_prefix(work, work.worker_nonce + counter.to_bytes(COUNTER_NONCE_SIZE, "little"))
            if max_hashrate is not None:
                chunk = max(1, min(chunk, int(max_hashrate * CHUNK_SECONDS)))
                now = time.monotonic()
                # The bucket holds at least one chunk: below 10 H/s, BURST_SECONDS' worth is less than one hash,
                # and a bucket that can never hold a chunk's price never lets the worker hash at all.
                tokens = min(tokens + (now - paid_at) * max_hashrate, max(max_hashrate * BURST_SECONDS, chunk))
                paid_at = now
                if tokens < chunk:  # wait until the chunk is paid for; a message ends the wait at once
                    conn.poll((chunk - tokens) / max_hashrate)
                    continue
                tokens -= chunk
            started = time.monotonic()
            found = scan(prefix, target, nonce, chunk)
            tried = (found - nonce + 1) if found is not None else min(chunk, NONCE_SPACE - nonce)
            hashes += tried
            elapsed = time.monotonic() - started
            chunk = max(1_000, min(1_000_000, int(chunk * CHUNK_SECONDS / max(elapsed, 1e-6))))
            if found is not None:
                extranonce = work.worker_nonce + counter.to_bytes(COUNTER_NONCE_SIZE, "little")
                conn.send(Solution(work.job_id, extranonce, found))
                work = None  # the server answers every solution with fresh work
            else:
                nonce += tried
                if nonce >= NONCE_SPACE:  # nonce space exhausted: next extra nonce, new merkle root
                    counter, nonce = counter + 1, 0
                    extranonce = work.worker_nonce + counter.to_bytes(COUNTER_NONCE_SIZE, "little")
                    prefix = work_header_prefix(work, extranonce)
            now = time.monotonic()
            if now - since >= REPORT_SECONDS:
                conn.send(HashReport(hashes, now - since))
                hashes, since = 0, now
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
