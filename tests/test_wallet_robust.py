"""The wallet against broken answers, a second wallet process, damaged caches, and a full mempool.

- A fake node on a raw loopback socket answers truncated, stalled, reset or garbage HTTP: the wallet says
  "no node could be reached" (exit 3) or "untrustworthy node" (exit 4) in one line, never a traceback.
- Two `wallet.py new` processes at once on one (encrypted) wallet file: every address either printed is in it.
- A header cache changed on disk is detected and verified again, never trusted.
- The fee estimate follows what the node saw confirm; a payment under the mempool's rolling minimum is explained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.mempool import MempoolPolicy
from simplecoin.core.params import REGTEST
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.wallet import keyfile
from simplecoin.wallet import nodeclient as client
from simplecoin.wallet.client import LightWallet, NodeClient, NodeError
from simplecoin.wallet.keyfile import WalletFile
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import BOB, ChainBuilder
from tests.framework.nodes import REPO, serving, wait_until

BOB_ADDRESS = address_from_pubkey_hash(BOB.pubkey_hash, REGTEST.address_version)
PASSPHRASE = "correct horse battery staple"


def wallet_cli(*args: str, cwd: Path = REPO, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "wallet.py"), "--network", "regtest", *args]
    full_env = {k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"} | (env or {})
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=90, input=stdin, env=full_env)


# -- a fake node on a raw socket ------------------------------------------------------------------------------------


@contextlib.contextmanager
def raw_node(mode: str) -> Iterator[str]:
    """An HTTP "node" on 127.0.0.1 that answers every request the broken way `mode` names."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                if mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if mode == "truncated":  # promises 5,000 bytes, sends 20, hangs up
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n")
                    conn.sendall(b'{"headers": ["00000')
                elif mode == "garbage":
                    body = b"<html>not json</html>"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                elif mode == "huge":  # a JSON object of 20,000 bytes
                    body = b'{"pad": "' + b"x" * 19_989 + b'"}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                elif mode == "stall":  # a byte every 0.3 s: each read is quick, the answer never ends
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99999\r\n\r\n")
                    while not stop.is_set():
                        conn.sendall(b" ")
                        time.sleep(0.3)
            except OSError:
                return

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.fixture
def wallet_file(tmp_path: Path) -> Path:
    return WalletFile.create(tmp_path / "w" / "wallet.json", REGTEST).path


@pytest.mark.parametrize(
    ("mode", "code", "start"),
    [
        ("truncated", 3, "wallet: no node could be reached"),
        ("reset", 3, "wallet: no node could be reached"),
        ("garbage", 4, "wallet: untrustworthy node: "),
    ],
)
@pytest.mark.parametrize("command", ["history", "balance"])
def test_a_broken_answer_is_one_line_and_an_exit_code(wallet_file: Path, mode: str, code: int, start: str, command):
    with raw_node(mode) as url:
        result = wallet_cli("--wallet", str(wallet_file), "--node", url, command)
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start)
    assert "Traceback" not in result.stderr


def test_an_answer_over_the_cap_names_its_size_not_a_lie(monkeypatch):
    """A whole busy address from a node without paging was 14.4 MB: "untrustworthy node" blamed an honest node."""
    monkeypatch.setattr(client, "MAX_RESPONSE_BYTES", 10_000)
    with raw_node("huge") as url, pytest.raises(NodeError, match=r"answered more than 10,000 bytes") as caught:
        NodeClient([url]).get("/address/x")
    assert caught.value.reason == "too-large"
    assert "trustworthy" not in str(caught.value)


def test_a_stalled_answer_ends_within_the_answer_deadline(wallet_file: Path, monkeypatch):
    monkeypatch.setattr(client, "ANSWER_SECONDS", 2.0)
    with raw_node("stall") as url:
        light = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        started = time.monotonic()
        with pytest.raises(NodeError, match=r"no node could be reached .*answer took more than 2 s") as caught:
            light.balances()
        assert caught.value.reason == "unreachable"
        assert time.monotonic() - started < 6


def test_a_broken_node_is_skipped_for_the_next(wallet_file: Path, tmp_path: Path):
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    try:
        with raw_node("truncated") as broken, serving(create_app(service)) as honest:
            result = wallet_cli("--wallet", str(wallet_file), "--node", broken, "--node", honest, "--json", "balance")
    finally:
        service.close()
    assert result.returncode == 0, result.stderr


# -- two processes changing one wallet file -------------------------------------------------------------------------


def test_two_concurrent_new_keep_every_printed_key(tmp_path: Path):
    """Before the lock: read-modify-replace by two processes lost the other's keys (5 of 10 in the issue)."""
    env = {"SIMPLECOIN_PASSPHRASE": PASSPHRASE}
    path = tmp_path / "shared.json"
    first = wallet_cli("--wallet", str(path), "--encrypt", "--yes", "--json", "new", env=env)
    assert first.returncode == 0, first.stderr
    script = (
        "import subprocess, sys\n"
        "for _ in range(5):\n"
        f"    r = subprocess.run([sys.executable, {str(REPO / 'wallet.py')!r}, '--network', 'regtest', '--wallet',"
        f" {str(path)!r}, 'new'], capture_output=True, text=True, timeout=60)\n"
        "    print(r.stdout.strip() if r.returncode == 0 else 'FAILED ' + r.stderr.strip(), flush=True)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ, **env}, cwd=REPO
        )
        for _ in range(2)
    ]
    printed = []
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        printed += out.split()
    assert not [p for p in printed if p.startswith("FAILED")], printed
    assert len(printed) == 10
    on_disk = {a for a, _ in WalletFile.addresses(path, REGTEST)}
    assert set(printed) <= on_disk
    assert len(on_disk) == 11  # the first key and ten more, all different
    keys = WalletFile.load(path, REGTEST, PASSPHRASE).keys
    assert [k.path.rsplit("/", 1)[1] for k in keys] == [str(i) for i in range(11)]


# -- SIMPLECOIN_PASSPHRASE, relative paths, .gitignore ------------------------------------------------------------


def test_passphrase_from_the_environment_creates_an_encrypted_wallet_without_a_terminal(tmp_path: Path):
    """Before: 'wallet: input ended before an answer was given' although the README says it is read."""
    path = tmp_path / "enc.json"
    result = wallet_cli("--wallet", str(path), "--encrypt", "--yes", "new", env={"SIMPLECOIN_PASSPHRASE": PASSPHRASE})
    assert result.returncode == 0, result.stderr
    assert WalletFile.is_encrypted(path, REGTEST)
    assert PASSPHRASE not in path.read_text()
    loaded = WalletFile.load(path, REGTEST, PASSPHRASE)
    assert loaded.is_hd
    assert loaded.seed.hex() not in path.read_text()  # the file protects the seed too
    words = result.stdout.split("\n\n")[1].split()
    assert len(words) == 12


def test_a_relative_wallet_path_is_where_the_user_said(tmp_path: Path):
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    result = wallet_cli("--wallet", "friend.json", "--yes", "new", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "friend.json").exists()
    assert str(elsewhere / "friend.json") in result.stdout  # the full path is shown


def test_no_new_wallet_without_confirming_the_words(tmp_path: Path):
    path = tmp_path / "w.json"
    result = wallet_cli("--wallet", str(path), "new", stdin="n\n")
    assert result.returncode == 2
    assert not path.exists()
    assert "no wallet created" in result.stderr


def test_wallet_files_made_in_the_checkout_are_git_ignored():
    names = ["friend.json", "wallet.json", "friend.json.headers", "friend.json.headers.meta", "friend.json.lock"]
    names += ["sub/dir/wallet.json", "x/friend.json.headers"]
    kept = ["docs/example.json", "tests/vectors/bip39.json", "simplecoin/web/static/x.json", "package.json.example"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *names, *kept], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    ignored = set(result.stdout.split())
    assert set(names) - {"sub/dir/wallet.json"} <= ignored
    assert not ignored & set(kept)


# -- the header cache -----------------------------------------------------------------------------------------------


@pytest.fixture
def chain_service(tmp_path: Path) -> Iterator[tuple[NodeService, ChainBuilder]]:
    b = ChainBuilder(REGTEST)
    b.chain([f"m{i}" for i in range(1, 31)])
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    for i in range(1, 31):
        assert service.submit_block(b[f"m{i}"]).status == "accepted"
    yield service, b
    service.close()


@pytest.mark.parametrize("damage", ["flip-byte", "cut", "meta-tip", "meta-work", "resealed", "meta-missing"])
def test_a_damaged_header_cache_is_verified_again_not_trusted(chain_service, wallet_file: Path, damage: str, caplog):
    service, b = chain_service
    with serving(create_app(service)) as url:
        light = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        light.sync_headers()
        assert light.chain.height == 30
        headers, meta = light.headers_path, light.header_file.meta_path
        assert headers.stat().st_size == 31 * 80
        again = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        assert again.chain.height == 30  # resumed from the record, not fetched
        raw = bytearray(headers.read_bytes())
        if damage == "flip-byte":
            raw[20 * 80 + 70] ^= 1  # a nonce: the file no longer matches its record
            headers.write_bytes(bytes(raw))
        elif damage == "cut":
            headers.write_bytes(bytes(raw[: 25 * 80]))
        elif damage == "meta-tip":
            meta.write_text(meta.read_text().replace(b["m30"].hash.hex(), "00" * 32))
        elif damage == "meta-work":
            record = json.loads(meta.read_text())
            meta.write_text(json.dumps({**record, "chain_work": str(int(record["chain_work"]) * 1000)}))
        elif damage == "resealed":  # the tip header changed and a plain CRC-32 of the file put in the record
            raw[30 * 80 + 70] ^= 1
            headers.write_bytes(bytes(raw))
            record = json.loads(meta.read_text())
            meta.write_text(json.dumps({**record, "crc32": zlib.crc32(bytes(raw))}))
        else:
            meta.unlink()
            raw[20 * 80 + 70] ^= 1
            headers.write_bytes(bytes(raw))
        damaged = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        assert damaged.chain.height == 0 if damage != "meta-missing" else damaged.chain.height < 20
        damaged.sync_headers()
        assert damaged.chain.best[-1] == b["m30"].hash
        fixed = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        assert fixed.chain.height == 30
        assert fixed.chain.best[-1] == b["m30"].hash


def old_record(meta: Path, headers: Path) -> None:
    """The record as the wallet wrote it before the CRC: a SHA-256 over the record's fields and the headers."""
    record = json.loads(meta.read_text())
    del record["crc32"]
    fields = f"{record['network']}|{record['height']}|{record['tip']}|{record['chain_work']}|".encode()
    meta.write_text(json.dumps({**record, "sha256": hashlib.sha256(fields + headers.read_bytes()).hexdigest()}))


def test_a_header_cache_recorded_with_the_old_sha256_is_resumed_and_then_recorded_with_a_crc(
    chain_service, wallet_file: Path
):
    service, b = chain_service
    with serving(create_app(service)) as url:
        light = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        light.sync_headers()
        headers, meta = light.headers_path, light.header_file.meta_path
        assert isinstance(json.loads(meta.read_text())["crc32"], int)
        old_record(meta, headers)
        resumed = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        assert resumed.chain.height == 30  # from the old record, not fetched again
        b.block("m31", parent="m30")
        assert service.submit_block(b["m31"]).status == "accepted"
        resumed.sync_headers()
        record = json.loads(meta.read_text())
        assert "sha256" not in record
        assert record["crc32"] == zlib.crc32(
            headers.read_bytes(),
            zlib.crc32(f"{record['network']}|31|{b['m31'].hash.hex()}|{record['chain_work']}|".encode()),
        )
        assert LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW).chain.height == 31
        # An old record that no longer matches its file is not trusted either.
        old_record(meta, headers)
        raw = bytearray(headers.read_bytes())
        raw[20 * 80 + 70] ^= 1
        headers.write_bytes(bytes(raw))
        assert LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW).chain.height == 0


def test_a_reorg_rewrites_the_cache_from_the_fork(chain_service, wallet_file: Path):
    """
    m1 ... m27 - m28 - m29 - m30
                \\
                 f28 - f29 - f30 - f31*     the node switches; the wallet's file follows
    """
    service, b = chain_service
    with serving(create_app(service)) as url:
        light = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        light.sync_headers()
        b.chain(["f28", "f29", "f30", "f31"], parent="m27")
        for name in ["f28", "f29", "f30", "f31"]:
            service.submit_block(b[name], requested=True)
        assert service.tip().hash == b["f31"].hash
        resumed = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        resumed.sync_headers()
        assert resumed.chain.best[-1] == b["f31"].hash
        assert resumed.chain.on_best_chain(b["m29"].hash) is None
        assert resumed.chain.on_best_chain(b["f29"].hash).height == 29
        final = LightWallet(wallet_file, REGTEST, NodeClient([url]), clock=lambda: NOW)
        assert final.chain.height == 31
        assert final.headers_path.read_bytes()[28 * 80 : 29 * 80] == b["f28"].header.serialize()


# -- fees -----------------------------------------------------------------------------------------------------------


def test_the_fee_estimate_follows_what_confirmed(tmp_path: Path):
    b = ChainBuilder(REGTEST)
    b.chain([f"m{i}" for i in range(1, 25)])
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    try:
        for i in range(1, 25):
            service.submit_block(b[f"m{i}"])
        with serving(create_app(service)) as url:
            light = LightWallet(tmp_path / "w.json", REGTEST, NodeClient([url]), clock=lambda: NOW)
            before = light.fee_estimate().rate
            assert before == 1  # empty mempool, blocks without fees: the relay minimum
            paying = [b.spend(f"m{i}", fee=50_000) for i in range(1, 11)]  # ~190 bytes: about 260 per byte
            for tx in paying:
                service.submit_tx(tx)
            # Pending, less than a block: the relay minimum gets into the next block. The old rule took the pool's
            # median here, so one overpaying payment raised what the next one was told to pay (issue 21).
            assert light.fee_estimate().rate == before
            service.submit_block(b.block("fees", txs=paying))
            assert light.fee_estimate().rate > 100 * before  # seen waiting, then mined: what confirmed is known
            service.submit_block(b.block("unseen", txs=[b.spend(f"m{i}", fee=190) for i in range(11, 16)]))
            assert light.fee_estimate().rate > 100 * before  # txs never seen pending say nothing either way
    finally:
        service.close()


def test_a_payment_under_the_rolling_minimum_is_explained(tmp_path: Path):
    """A small mempool fills with high-fee txs and evicts: its minimum fee rises above what we offer."""
    wallet = WalletFile.create(tmp_path / "w.json", REGTEST)
    b = ChainBuilder(REGTEST)
    b.block("w1", pay_to=wallet.keys[0].key.pubkey_hash)
    b.chain([f"m{i}" for i in range(2, 60)])
    policy = MempoolPolicy(max_usage=8_000)
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW, policy=policy))
    try:
        for name in ["w1", *(f"m{i}" for i in range(2, 60))]:
            service.submit_block(b[name], requested=True)
        for i in range(2, 40):
            with contextlib.suppress(Exception):
                service.submit_tx(b.spend(f"m{i}", fee=2_000 + 100 * i))
        assert service.node.mempool.min_fee_per_kb(NOW) > 1000  # evictions raised the floor above 1 per byte
        with serving(create_app(service)) as url:
            result = wallet_cli(
                "--wallet", str(wallet.path), "--node", url, "--fee", "1", "--yes", "send", BOB_ADDRESS, "1"
            )
            assert result.returncode == 1, (result.stdout, result.stderr)
            assert len(result.stderr.splitlines()) == 1
            assert "the node will not keep this payment" in result.stderr
            assert "higher --fee" in result.stderr
            unasked = wallet_cli(
                "--wallet", str(wallet.path), "--node", url, "--yes", "--json", "send", BOB_ADDRESS, "1"
            )
            assert unasked.returncode == 2, (unasked.stdout, unasked.stderr)  # over 10x the relay minimum: asked
            assert "pass --fee RATE" in unasked.stderr  # again, and without a terminal, refused
            default = wallet_cli(
                "--wallet", str(wallet.path), "--node", url, "--json", "send", BOB_ADDRESS, "1", stdin="y\ny\n"
            )
            assert default.returncode == 0, default.stderr  # the default, the node's estimate, gets in
            wait_until(lambda: len(service.node.mempool) > 0, timeout=5)
    finally:
        service.close()


# -- the node's new answers refuse bad input with a 4xx and a reason ---------------------------------------------


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("/address/notanaddress/txs", "bad-address"),
        (f"/address/{BOB_ADDRESS}/txs?limit=101", "bad-param"),
        (f"/address/{BOB_ADDRESS}/txs?limit=0", "bad-param"),
        (f"/address/{BOB_ADDRESS}/txs?offset=-1", "bad-param"),
        (f"/address/{BOB_ADDRESS}/txs?offset=²", "bad-param"),
    ],
)
def test_the_batch_history_refuses_bad_input(chain_service, query: str, reason: str):
    service, _ = chain_service
    answer = create_app(service).test_client().get(query)
    assert answer.status_code == 400
    assert answer.get_json()["reason"] == reason


def test_the_batch_history_pages_newest_first_with_proofs(chain_service):
    """30 coinbases of the builder's key: pages of 7 cover them once each, newest first, and say when to stop."""
    service, b = chain_service
    miner = address_from_pubkey_hash(b.key.pubkey_hash, REGTEST.address_version)
    client_ = create_app(service).test_client()
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = client_.get(f"/address/{miner}/txs?offset={offset}&limit=7").get_json()
        pages += 1
        seen += [(row["height"], row["txid"]) for row in page["txs"]]
        assert all(row["branch"] == [] and row["position"] == 0 for row in page["txs"])  # coinbase-only blocks
        offset = page["next_offset"]
    assert pages == 5
    assert [h for h, _ in seen] == list(range(30, 0, -1))
    assert page["tip_height"] == 30
    estimate = client_.get("/fee-estimate").get_json()
    assert estimate["fee_rate"] == estimate["min_relay_fee_rate"] == 1


def test_a_wallet_file_held_by_another_process_is_busy_not_overwritten(tmp_path: Path, monkeypatch):
    wallet = WalletFile.create(tmp_path / "w.json", REGTEST)
    before = wallet.path.read_bytes()
    monkeypatch.setattr(keyfile, "LOCK_WAIT_SECONDS", 0.3)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(wallet.path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(keyfile.WalletBusy, match="is busy: another process is changing it"):
            wallet.add_key()
        assert time.monotonic() - started < 3
        assert wallet.path.read_bytes() == before
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert len(wallet.add_key().keys) == 2  # free again once the holder is gone


HOLD_LOCK = """
import sys, time
from simplecoin.wallet.keyfile import locked
with locked(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""
