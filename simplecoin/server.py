"""The server process: owns the node, serves the HTTP API, talks to peers, and feeds the mining processes.

The mining pump is the single owner of this process' ends of the mining Pipes: it sends work and reads
solutions and hash reports. Other threads only raise a flag when the tip changes; the pump sees it within
POLL_SECONDS and sends every worker fresh work.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from simplecoin.core import keys
from simplecoin.core.errors import ValidationError
from simplecoin.core.keys import pubkey_hash_from_address
from simplecoin.core.mining import EXTRANONCE_SIZE, IDLE, HashReport, Solution, block_from_solution, make_work
from simplecoin.core.primitives import Block
from simplecoin.node import addrman, mempool_file
from simplecoin.node.config import Config, DataDirLock
from simplecoin.node.node import Node
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.service import Event, NodeService
from simplecoin.node.store import Store, StoreFault
from simplecoin.node.threads import Supervisor
from simplecoin.web.app import MAX_BODY_BYTES, create_app
from simplecoin.web.limits import ConnectionRules, create_guarded_server

log = logging.getLogger(__name__)

POLL_SECONDS = 0.01
TEMPLATE_SECONDS = 10.0  # refresh work this often anyway: new mempool transactions, a newer time
HASHRATE_LOG_SECONDS = 60.0
SERVER_THREADS = 8
SWITCH_INTERVAL_SECONDS = 0.001  # how long a thread may hold the GIL while another waits (Python: 0.005)
STORE_RETRY_SECONDS = 1.0  # after a failed store write, how often the node tries again to reach the best chain
FATAL_EXIT_CODE = 3  # a thread failed beyond restarting; miner.py stops the node
REFUSED_EXIT_CODE = 4  # the node refused to start on what its data directory holds (the log says what to do)


@dataclass(frozen=True)
class Rejection:
    """Our last block was rejected: why, and the wall-clock second it happened in."""

    reason: str
    second: int


# The HTTP server's limits for clients (docs/api.md, "Limits"). See simplecoin/web/limits.py for the attack
# each one answers and why waitress stays.
MAX_CONNECTIONS = 125  # Bitcoin: DEFAULT_MAX_PEER_CONNECTIONS; when full, evict rather than stop accepting
MAX_CONNECTIONS_PER_IP = 32  # a NAT or a busy peer needs several; a bench runs 16 keep-alive connections
REQUEST_SECONDS = 30.0  # first byte to last of one request: a 2.2 MB block at >= 75 kB/s; trickling loses
IDLE_SECONDS = 30  # Bitcoin: DEFAULT_HTTP_SERVER_TIMEOUT (-rpcservertimeout), silence before we hang up
CLEANUP_SECONDS = 1  # how often those two deadlines are checked (a pass over at most MAX_CONNECTIONS)
MAX_HEADER_BYTES = 8192  # Bitcoin: MAX_HEADERS_SIZE in httpserver.cpp (waitress allows 256 KiB)


class MiningPump(threading.Thread):
    """Sends work down the mining Pipes and submits what comes back.

    The server runs `run` under a Supervisor (threads.py) rather than calling start(); start() stays for
    benchmarks that drive a pump on its own.
    """

    def __init__(
        self,
        service: NodeService,
        conns: list[Connection],
        pubkey_hash: bytes,
        pause: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name="mining-pump", daemon=True)
        self.service = service
        self.conns = conns
        self.pubkey_hash = pubkey_hash
        self.pause = pause
        self.clock = clock  # wall clock: a template's time (and so time-too-new) changes with its second
        self.stopping = threading.Event()
        self.tip_changed = threading.Event()
        self.mempool_changed = threading.Event()
        self.templates: dict[int, Block] = {}
        self.job_id = 0
        self.issued_at = 0.0
        self.rates: dict[Connection, float] = {}  # hashes per second, per mining process
        self.logged_at = time.monotonic()
        # A rejected block of our own holds mining back until something that went into it can have changed.
        # Retrying at once hot-looped: on regtest a worker solves a block instantly, so a persistent
        # rejection (time-too-new after 43,500 fast blocks) was resubmitted ~2,900 times a second.
        self.rejection: Rejection | None = None
        self.rejected_since_accept = 0  # logged when a block is accepted again
        self.last_reason: str | None = None  # of the last rejection, until a block is accepted: logged once
        service.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.tip_changed:
            self.tip_changed.set()
        if event.kind == "tx":
            self.mempool_changed.set()

    def run(self) -> None:
        self._new_work()
        resume_at = 0.0
        while not self.stopping.is_set():
            for conn in wait(self.conns, timeout=POLL_SECONDS):
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    self._drop(conn)
                    continue
                if isinstance(message, Solution):
                    if self._submit(message) and self.pause:
                        resume_at = time.monotonic() + self.pause
                        self._send_all(lambda worker: IDLE)  # no hashing on a stale job during the pause
                elif isinstance(message, HashReport):
                    self.rates[conn] = message.hashes / max(message.seconds, 1e-9)
                    self.service.hashrate = sum(self.rates.values())
                    if time.monotonic() - self.logged_at >= HASHRATE_LOG_SECONDS:
                        self.logged_at = time.monotonic()
                        log.info(
                            "hash rate %.0f H/s over %d mining process(es)", self.service.hashrate, len(self.conns)
                        )
            if time.monotonic() < resume_at:
                continue
            if self.rejection is not None:
                if not self._rejection_may_be_over(self.rejection):
                    continue
                self.rejection = None
                self._new_work()
                continue
            if resume_at or self.tip_changed.is_set() or time.monotonic() - self.issued_at > TEMPLATE_SECONDS:
                resume_at = 0.0
                self._new_work()
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass

    def _rejection_may_be_over(self, rejection: Rejection) -> bool:
        """A new tip, new mempool contents, or a new second of the clock (a template's time) since it."""
        return self.tip_changed.is_set() or self.mempool_changed.is_set() or int(self.clock()) != rejection.second

    def _submit(self, solution: Solution) -> bool:
        """Submit a solved block; follow with fresh work now, or after a rejection's cause can have changed."""
        template = self.templates.get(solution.job_id)
        accepted = False
        if template is not None:
            block = block_from_solution(template, solution)
            try:
                outcome = self.service.submit_block(block, requested=True)
                accepted = outcome.status == "accepted" and self.service.tip().hash == block.hash
                if accepted:
                    log.info("mined block %d %s", self.service.tip().height, block.header.hash_hex())
                    if self.rejected_since_accept:
                        log.info("mining resumed after %d rejected block(s)", self.rejected_since_accept)
                        self.rejected_since_accept = 0
                    self.last_reason = None
            except (ValidationError, StoreFault) as e:  # a store fault: held back like a rejection, retried later
                self._rejected(block, e)
                return False
        if not accepted and not self.pause:
            self.tip_changed.set()
        return accepted

    def _rejected(self, block: Block, error: ValidationError | StoreFault) -> None:
        """Log a rejection once per reason, idle the workers, and hold mining back (see `rejection`)."""
        self.rejected_since_accept += 1
        if error.reason != self.last_reason:
            log.warning(
                "our own block %s was rejected: %s; mining waits for a new tip, new transactions or the next second"
                " (repeats of this reason are logged at debug level)",
                block.header.hash_hex(),
                error,
            )
        else:
            log.debug("our own block %s was rejected again: %s", block.header.hash_hex(), error)
        self.last_reason = error.reason
        self.rejection = Rejection(error.reason, int(self.clock()))
        self._send_all(lambda worker: IDLE)

    def _drop(self, conn: Connection) -> None:
        """Forget a dead mining process' pipe; the supervisor notices the death and stops the node."""
        self.conns.remove(conn)
        self.rates.pop(conn, None)

    def _send_all(self, message_for: Callable[[int], object]) -> None:
        for worker, conn in enumerate(list(self.conns)):
            try:
                conn.send(message_for(worker))
            except OSError:
                self._drop(conn)

    def _new_work(self) -> None:
        self.tip_changed.clear()
        self.mempool_changed.clear()
        template = self.service.block_template(self.pubkey_hash, bytes(EXTRANONCE_SIZE))
        self.job_id += 1
        self.templates = {self.job_id: template, **{k: v for k, v in self.templates.items() if k > self.job_id - 4}}
        self._send_all(lambda worker: make_work(template, self.job_id, worker))
        self.issued_at = time.monotonic()


def serve(config: Config, conns: list[Connection], reward_address: str | None, lock: DataDirLock | None = None) -> None:
    """The server process' main function (the target the supervisor starts).

    `lock` is the data directory's lock, inherited from the supervisor: kept (unused) for this process' life.
    Exits with FATAL_EXIT_CODE when a thread fails in a way a restart cannot mend.
    """
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Threads that parse and check big transactions hold the GIL for up to the switch interval before a
    # waiting thread gets it; a request needs it several times. 1 ms instead of Python's 5 ms keeps a
    # /status answer quick while clients send expensive transactions (bench/bench_lock.py).
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
    # Under load waitress warns about its queue depth for a good share of requests, which drowns the log.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    params = config.params
    offset = config.clock_offset

    def wall_clock() -> float:
        """The node's idea of the time: the machine's, moved by --clock-offset (0 unless a test sets it)."""
        return time.time() + offset

    service = NodeService(Node(Store(config.data_dir / "chain.db", params), params, clock=wall_clock))
    off_rule = service.first_height_off_the_difficulty_rule()
    if off_rule is not None:  # a chain mined before the difficulty rule: never run on it, say what to do
        service.close()
        log.critical(
            "this %s chain breaks the difficulty rule from height %d (it was mined before aserti3-2d, "
            "docs/protocol.md section 5): move %s aside and start again to sync the chain that follows the rule",
            params.name,
            off_rule,
            config.data_dir / "chain.db",
        )
        raise SystemExit(REFUSED_EXIT_CODE)
    fatal: list[str] = []  # at most one entry per supervised thread: each fails fatally once, then ends

    def on_fatal(name: str, error: BaseException) -> None:
        fatal.append(f"thread {name}: {type(error).__name__}: {error}")
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread's handler ends server.run()

    # A store error leaves the node in memory and the database on disk possibly apart: restarting the thread
    # that met it could only build on that, so the node stops instead.
    threads = Supervisor(on_fatal, fatal=(sqlite3.Error,))
    service.threads = threads.health
    mempool_loader = mempool_file.MempoolLoader(config.data_dir / mempool_file.FILE_NAME, params, service)
    # Addresses and bans outlive a restart (Bitcoin: peers.dat, banlist.json); saved again when peers stop.
    peers = PeerManager(
        service, config.public_url, config.peers, path=config.data_dir / addrman.FILE_NAME, wall_clock=wall_clock
    )
    app = create_app(service, peers, metrics_public=config.metrics_public)
    server = create_guarded_server(
        app,
        rules=ConnectionRules(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, REQUEST_SECONDS),
        host=config.host,
        port=config.port,
        threads=SERVER_THREADS,
        ident="simplecoin",
        channel_timeout=IDLE_SECONDS,
        cleanup_interval=CLEANUP_SECONDS,
        max_request_header_size=MAX_HEADER_BYTES,
        # Refused from Content-Length (or while a chunked body arrives) before the body is spooled; waitress
        # refuses at >= its limit, the app's MAX_CONTENT_LENGTH above it, hence the + 1.
        max_request_body_size=MAX_BODY_BYTES + 1,
        asyncore_use_poll=True,  # select() fails past file descriptor 1024
    )
    pump = None
    if reward_address is not None and conns:
        pump = MiningPump(
            service,
            conns,
            pubkey_hash_from_address(reward_address, params.address_version),
            config.mining_pause,
            clock=wall_clock,
        )

    def stop(signum, frame):
        # Once: systemd (and `kill -- -PGID`) signals the whole group, and the supervisor then terminates us
        # too. A second SystemExit raised inside the shutdown below aborted it: no peers.json, no mempool.dat,
        # no WAL checkpoint. Later signals are ignored; the shutdown runs to its end.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(0)  # waitress' run() catches it and shuts its threads down

    signal.signal(signal.SIGTERM, stop)
    log.info("serving the API on %s (network %s, height %d)", config.url, params.name, service.tip().height)
    log.info("verifying signatures with %s", keys.VERIFIER)  # "ecdsa" means coincurve did not import
    if offset:
        log.warning("this node's clock runs %+.0f s from the machine's (--clock-offset)", offset)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threads.start("supervisor-watch", lambda: _watch_parent(parent, threads.stopping))
    threads.start("store-retry", lambda: _retry_store(service, threads.stopping))
    mempool_loader.start()
    peers.start(threads)
    if pump is not None:
        threads.start("mining-pump", pump.run)
    try:
        server.run()
    finally:
        log.info("stopping the server")
        threads.stop()
        if pump is not None:
            pump.stopping.set()
        peers.stop()
        threads.join(timeout=5)
        mempool_loader.stop_and_save()  # Bitcoin: DumpMempool, before the store closes
        service.close()  # under the node lock: the store closes between blocks
        log.info("server stopped at height %d", service.tip().height)
    if fatal:
        log.critical("stopping the node: %s", fatal[0])
        raise SystemExit(FATAL_EXIT_CODE)


def _retry_store(service: NodeService, stopping: threading.Event) -> None:
    """After a failed store write (a full disk), try again until the node is on its best chain (issue 21)."""
    while not stopping.wait(STORE_RETRY_SECONDS):
        service.resume()


def _watch_parent(parent: BaseProcess, stopping: threading.Event) -> None:
    """Stop this process when the supervisor process is gone (even by kill -9): an orphaned server would
    keep the chain database and the data directory's lock, with nobody to stop it."""
    while not stopping.is_set():
        if wait([parent.sentinel], timeout=1.0):
            log.error("the supervisor process (pid %s) is gone; stopping", parent.pid)
            os.kill(os.getpid(), signal.SIGTERM)
            stopping.wait()
