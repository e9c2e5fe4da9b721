"""The server process: owns the node, serves the HTTP API, talks to peers, and feeds the mining processes.

The mining pump is the single owner of this process' ends of the mining Pipes: it sends work and reads
solutions and hash reports. Other threads only raise a flag when the tip changes; the pump sees it within
POLL_SECONDS and sends every worker fresh work.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from waitress.server import create_server

from simplecoin.core.errors import ValidationError
from simplecoin.core.keys import pubkey_hash_from_address
from simplecoin.core.mining import EXTRANONCE_SIZE, IDLE, HashReport, Solution, block_from_solution, make_work
from simplecoin.core.primitives import Block
from simplecoin.node import mempool_file
from simplecoin.node.config import Config
from simplecoin.node.node import Node
from simplecoin.node.peers import PeerManager
from simplecoin.node.service import Event, NodeService
from simplecoin.node.store import Store
from simplecoin.web.app import create_app

log = logging.getLogger(__name__)

POLL_SECONDS = 0.01
TEMPLATE_SECONDS = 10.0  # refresh work this often anyway: new mempool transactions, a newer time
HASHRATE_LOG_SECONDS = 60.0
SERVER_THREADS = 8


class MiningPump(threading.Thread):
    """Sends work down the mining Pipes and submits what comes back."""

    def __init__(self, service: NodeService, conns: list[Connection], pubkey_hash: bytes, pause: float) -> None:
        super().__init__(name="mining-pump", daemon=True)
        self.service = service
        self.conns = conns
        self.pubkey_hash = pubkey_hash
        self.pause = pause
        self.stopping = threading.Event()
        self.tip_changed = threading.Event()
        self.templates: dict[int, Block] = {}
        self.job_id = 0
        self.issued_at = 0.0
        self.rates: dict[Connection, float] = {}  # hashes per second, per mining process
        self.logged_at = time.monotonic()
        service.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.tip_changed:
            self.tip_changed.set()

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
            if resume_at or self.tip_changed.is_set() or time.monotonic() - self.issued_at > TEMPLATE_SECONDS:
                resume_at = 0.0
                self._new_work()
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass

    def _submit(self, solution: Solution) -> bool:
        """Submit a solved block; always follow with fresh work (the worker waits for it)."""
        template = self.templates.get(solution.job_id)
        accepted = False
        if template is not None:
            block = block_from_solution(template, solution)
            try:
                outcome = self.service.submit_block(block, source="")
                accepted = outcome.status == "accepted" and self.service.tip().hash == block.hash
                if accepted:
                    log.info("mined block %d %s", self.service.tip().height, block.header.hash_hex())
            except ValidationError as e:
                log.warning("our own block %s was rejected: %s", block.header.hash_hex(), e)
        if not accepted and not self.pause:
            self.tip_changed.set()
        return accepted

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
        template = self.service.block_template(self.pubkey_hash, bytes(EXTRANONCE_SIZE))
        self.job_id += 1
        self.templates = {self.job_id: template, **{k: v for k, v in self.templates.items() if k > self.job_id - 4}}
        self._send_all(lambda worker: make_work(template, self.job_id, worker))
        self.issued_at = time.monotonic()


def serve(config: Config, conns: list[Connection], reward_address: str | None) -> None:
    """The server process' main function (the target the supervisor starts)."""
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
    # Under load waitress warns about its queue depth for a good share of requests, which drowns the log.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    params = config.params
    node = Node(Store(config.data_dir / "chain.db", params), params)
    service = NodeService(node)
    mempool_loader = mempool_file.MempoolLoader(config.data_dir / mempool_file.FILE_NAME, params, node, service.lock)
    peers = PeerManager(service, config.public_url, config.peers)
    app = create_app(service, peers)
    server = create_server(app, host=config.host, port=config.port, threads=SERVER_THREADS, ident="simplecoin")
    pump = None
    if reward_address is not None and conns:
        pump = MiningPump(
            service, conns, pubkey_hash_from_address(reward_address, params.address_version), config.mining_pause
        )

    def stop(signum, frame):
        raise SystemExit(0)  # waitress' run() catches it and shuts its threads down

    signal.signal(signal.SIGTERM, stop)
    log.info("serving the API on %s (network %s, height %d)", config.url, params.name, node.height)
    mempool_loader.start()
    peers.start()
    if pump is not None:
        pump.start()
    try:
        server.run()
    finally:
        log.info("stopping the server")
        if pump is not None:
            pump.stopping.set()
            pump.join(timeout=5)
        peers.stop()
        mempool_loader.stop_and_save()  # Bitcoin: DumpMempool, before the store closes
        service.close()  # under the node lock: the store closes between blocks
        log.info("server stopped at height %d", node.height)
