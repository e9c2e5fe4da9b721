"""Part 4 of bench_node.py (`--only 4`): POST /tx on both signature backends beside the ceiling.

`POST /tx` acceptance. A regtest store where MINER_KEY owns N confirmed outputs (fan-out transactions of
500 outputs, mined and buried), and N signed 1-input 2-output payments spending them, made in advance.
For each signature backend, a fresh copy of that store is served by a server process like a node's
(`NodeService` + `create_app` + the guarded waitress server with the node's settings, spawned, with
`keys.use_verifier(backend)`; no peers, no mining), and 4 client processes POST the payments (each its
own quarter, one keep-alive connection each) as fast as the answers come. Rate = payments accepted /
(start signal -> last answer); the server process' CPU per payment is printed too.
The clients use `http.client`, not `requests`: on 2 cores they share the machine with the server, and
`requests` cost them ~2 ms of CPU per POST, which capped even a server that does nothing at ~770/s.
The same-run ceiling: the same waitress server and clients with an app that reads the body and answers
a fixed JSON (no Flask, no node), and the same with a Flask app whose `/tx` only decodes the JSON and
the hex: what any `POST /tx` costs on this stack before the node does anything.
Goal: libsecp256k1 >= 5x the ecdsa fallback's rate, both from this run.
"""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from common import (
    cpu_seconds,
    load_average,
    open_node,
    open_service,
    show_load,
    stop_processes,
)  # first: it puts the repository on sys.path
from node_sync import SYNC_FEE, FastBuilder

from simplecoin.core import keys
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.server import (
    CLEANUP_SECONDS,
    IDLE_SECONDS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_HEADER_BYTES,
    REQUEST_SECONDS,
    SERVER_THREADS,
    SWITCH_INTERVAL_SECONDS,
)
from simplecoin.web.app import MAX_BODY_BYTES, create_app
from simplecoin.web.limits import ConnectionRules, create_guarded_server
from tests.framework.builder import MINER_KEY
from tests.framework.nodes import free_port, wait_until

if TYPE_CHECKING:
    from bench_node import Settings

GOAL_POST_TX_SPEEDUP = 5.0  # POST /tx acceptance, libsecp256k1 vs the ecdsa fallback
POST_CLIENTS = 4
FANOUT = 500  # outputs per fan-out transaction in part 4


def prepare_payments(path: Path, count: int) -> list[bytes]:
    """A regtest store at `path` where MINER_KEY owns `count` confirmed outputs; `count` signed 1-in-2-out
    payments spending them, serialized."""
    b = FastBuilder(REGTEST)
    pkh = MINER_KEY.pubkey_hash
    fanouts_needed = -(-count // FANOUT)
    blocks = [b.block(f"p{h}") for h in range(1, fanouts_needed + REGTEST.coinbase_maturity + 1)]
    fanouts = []
    for k in range(fanouts_needed):
        coinbase = blocks[k].txs[0]
        outputs = min(FANOUT, count - k * FANOUT)
        each = (coinbase.outputs[0].amount - SYNC_FEE) // outputs
        fanouts.append(b.spend(OutPoint(coinbase.txid, 0), [(each, pkh)] * outputs))
    blocks.append(b.block("fan-out", txs=fanouts))
    blocks += [b.block(f"q{h}") for h in range(3)]  # buried a little, as a wallet's coins usually are
    payments = []
    for fanout in fanouts:
        for i, out in enumerate(fanout.outputs):
            half = out.amount // 2
            payments.append(b.spend(OutPoint(fanout.txid, i), [(half, pkh), (out.amount - half - SYNC_FEE, pkh)]))
    node = open_node(path, REGTEST)
    try:
        for block in blocks:
            outcome = node.submit_block(block)
            if outcome.status != "accepted":
                raise RuntimeError(f"block {block.header.hash_hex()} was not accepted: {outcome}")
    finally:
        node.close()
    return [tx.serialize() for tx in payments]


def serve_like_a_node(app, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port` as a node's server process does (the guarded waitress server with the
    node's settings, the 1 ms switch interval) until SIGTERM."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    server = create_guarded_server(
        app,
        rules=ConnectionRules(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, REQUEST_SECONDS),
        host="127.0.0.1",
        port=port,
        threads=SERVER_THREADS,
        channel_timeout=IDLE_SECONDS,
        cleanup_interval=CLEANUP_SECONDS,
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=MAX_BODY_BYTES + 1,
    )

    def stop(signum, frame):
        raise SystemExit(0)  # waitress' run() catches it and shuts its threads down

    signal.signal(signal.SIGTERM, stop)
    server.run()


def tx_server(path: str, port: int, backend: str) -> None:
    """A server process like a node's (NodeService, the API, the guarded waitress server) on backend `backend`."""
    keys.use_verifier(backend)
    service = open_service(path, REGTEST)
    try:
        serve_like_a_node(create_app(service), port)
    finally:
        service.close()


def null_app(environ, start_response):
    """The ceiling's app: reads the body (as any would) and answers a fixed JSON, with no Flask and no node."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    body = b'{"fee":1000,"txid":"00"}\n'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def flask_floor_app():
    """The ceiling with Flask: `/tx` decodes the JSON body and the hex, and answers; no node."""
    from flask import Flask, jsonify, request

    app = Flask("bench-floor")

    @app.post("/tx")
    def tx():
        bytes.fromhex(request.get_json()["hex"])
        return jsonify(txid="00", fee=1000)

    @app.get("/status")
    def status():
        return jsonify(ok=True)

    return app


def floor_server(port: int, kind: str) -> None:
    """The ceiling's server: `kind` "wsgi" (null_app) or "flask" (flask_floor_app), served like a node's API."""
    serve_like_a_node(null_app if kind == "wsgi" else flask_floor_app(), port)


def post_client(url: str, bodies: list[str], go, results) -> None:
    """POST each body to /tx on one keep-alive connection; report (accepted, refused, first refusal, end)."""
    accepted, refused, first = 0, 0, ""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", "/status")  # connected before the start signal
        conn.getresponse().read()
        go.wait()
        headers = {"Content-Type": "application/json"}
        for body in bodies:
            conn.request("POST", "/tx", body=body, headers=headers)
            answer = conn.getresponse()
            text = answer.read()
            if answer.status == 200:
                accepted += 1
            else:
                refused += 1
                first = first or text[:200].decode(errors="replace")
    finally:
        conn.close()
    results.put((accepted, refused, first, time.monotonic()))


@dataclass(frozen=True)
class PostResult:
    backend: str
    accepted: int
    refused: int
    first_refusal: str
    seconds: float
    server_cpu: float | None  # seconds, the server process during the window
    load: str

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


def post_on(backend: str, base: Path | None, workdir: Path, payments: list[bytes]) -> PostResult:
    """Serve a fresh copy of `base` on `backend` and POST every payment from POST_CLIENTS processes.

    `backend` "wsgi" or "flask" (and no `base`): the ceiling's server instead of a node's.
    """
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if base is None:
        server = ctx.Process(target=floor_server, args=(port, backend), name=f"bench-floor-server-{backend}")
    else:
        path = workdir / f"post-{backend}.db"
        shutil.copyfile(base, path)
        server = ctx.Process(target=tx_server, args=(str(path), port, backend), name=f"bench-tx-server-{backend}")
    server.start()
    clients = []
    try:
        wait_until(lambda: requests.get(f"{url}/status", timeout=1).ok, timeout=60, what="the tx server")
        bodies = [json.dumps({"hex": raw.hex()}) for raw in payments]
        go, results = ctx.Event(), ctx.Queue()
        clients = [
            ctx.Process(target=post_client, args=(url, bodies[i::POST_CLIENTS], go, results), name=f"bench-post-{i}")
            for i in range(POST_CLIENTS)
        ]
        for client in clients:
            client.start()
        time.sleep(2.0)  # the clients import requests and connect before the start signal
        load = load_average()
        cpu_before = cpu_seconds(server.pid)
        started = time.monotonic()
        go.set()
        reports = [results.get(timeout=600) for _ in clients]
        cpu_after = cpu_seconds(server.pid)
    finally:
        stop_processes(clients)
        server.terminate()
        server.join(timeout=10)
        if server.is_alive():
            server.kill()
            server.join()
    seconds = max(end for *_, end in reports) - started
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    first = next((f for _, _, f, _ in reports if f), "")
    return PostResult(backend, sum(r[0] for r in reports), sum(r[1] for r in reports), first, seconds, server_cpu, load)


def bench_post_tx(settings: Settings) -> tuple[PostResult, PostResult, list[PostResult]]:
    with tempfile.TemporaryDirectory(prefix="bench_node_post_") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        payments = prepare_payments(workdir / "base.db", settings.payments)
        print(
            f"   prepared {len(payments):,} signed 1-in-2-out payments and a store with their inputs in "
            f"{time.perf_counter() - started:.1f} s"
        )
        results = []
        for backend in ("libsecp256k1", "ecdsa"):
            show_load(f"POST /tx on {backend}")
            r = post_on(backend, workdir / "base.db", workdir, payments)
            cpu = "not measurable" if r.server_cpu is None else f"{r.server_cpu / max(r.accepted, 1) * 1e3:.2f} ms"
            print(
                f"   POST /tx on {backend}: {r.accepted:,} accepted, {r.refused} refused in {r.seconds:.2f} s = "
                f"{r.rate:,.0f} tx/s; server CPU per accepted tx {cpu} (load {r.load})"
            )
            if r.refused:
                print(f"   first refusal: {r.first_refusal}")
            results.append(r)
        ceilings = []
        for kind, what in (("wsgi", "a WSGI app that answers a fixed JSON"), ("flask", "a Flask /tx that decodes")):
            show_load(f"the ceiling: {what}")
            r = post_on(kind, None, workdir, payments)
            cpu = "not measurable" if r.server_cpu is None else f"{r.server_cpu / max(r.accepted, 1) * 1e3:.2f} ms"
            print(
                f"   ceiling, the same server and clients with {what} (no node): {r.accepted:,} answered in"
                f" {r.seconds:.2f} s = {r.rate:,.0f} req/s; server CPU per request {cpu} (load {r.load})"
            )
            ceilings.append(r)
    return results[0], results[1], ceilings
