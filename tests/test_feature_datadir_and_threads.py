"""One node per data directory, and no thread that dies silently.

The attack, as a new user makes it: a second `python miner.py --port 5002` forgetting `--data-dir` started on
the first node's chain database and mined; the first node's mining pump died on a UNIQUE constraint and its
/status kept answering 200 at a frozen height. Here:

- a second node on a data directory that a node holds is refused (one line naming the holder's pid, exit 2)
  and the first keeps mining; a refused start leaves no data directory or wallet behind;
- a kill -9 releases the lock (Bitcoin Core: `LockDirectory`, released by the kernel with the process);
- a pump thread that raises is restarted and /status says so;
- a block of our own that is rejected is not resubmitted in a hot loop (in-process, fake service).

Functional tests run real `miner.py` nodes (tests/framework/nodes.py) on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing import Pipe
from pathlib import Path

import pytest

from simplecoin.core.errors import ValidationError
from simplecoin.core.mining import EXTRANONCE_SIZE, IDLE, Solution, Work, make_block
from simplecoin.core.params import REGTEST
from simplecoin.node.service import Event
from simplecoin.server import MiningPump
from tests.framework.builder import MINER_KEY
from tests.framework.nodes import REPO, child_pids, free_port, node_args, running_node, wait_until

# -- helpers ----------------------------------------------------------------------------------------------------------


def run_refused(args: list[str], timeout: float = 30.0) -> tuple[int, list[str]]:
    """Run a miner.py that should refuse to start: (exit code, stderr lines). One that starts fails the test."""
    process = subprocess.Popen(
        [sys.executable, "miner.py", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [*child_pids(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"the second node started instead of refusing; its stderr:\n{err[-3000:]}") from None
    return process.returncode, err.strip().splitlines()


def threads_ok(status: dict) -> bool:
    threads = status["threads"]
    return bool(threads) and all(state == "ok" for state in threads.values())


# -- one node per data directory --------------------------------------------------------------------------------------


def test_second_node_on_the_same_data_dir_is_refused_and_the_first_keeps_mining(tmp_path: Path) -> None:
    # Today's code: the second node starts (run_refused times out and kills it) and node 1's pump dies.
    with running_node(tmp_path / "a", mine=True) as a:
        assert a.process is not None
        wait_until(lambda: a.status()["height"] >= 2, what="node 1 mining")
        code, lines = run_refused(node_args(a.data_dir, free_port(), mine=True, pause=0))
        assert code == 2, lines
        assert len(lines) == 1, lines
        assert str(a.process.pid) in lines[0], lines[0]
        assert str(a.data_dir) in lines[0], lines[0]
        height = a.status()["height"]
        wait_until(lambda: a.status()["height"] >= height + 3, what="node 1 still mining")
        status = a.status()
        assert threads_ok(status), status
        assert "mining-pump" in status["threads"]
        assert "Traceback" not in a.run_log()


def test_refused_start_with_a_busy_port_leaves_no_data_dir(tmp_path: Path) -> None:
    # Today's code: exit 2, but the data directory has been created (check_environment made it first).
    data_dir = tmp_path / "fresh" / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, lines = run_refused(node_args(data_dir, port, mine=True))
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert "in use" in lines[0], lines
    assert not (tmp_path / "fresh").exists(), "a refused start created the data directory"


def test_refused_start_with_the_lock_held_creates_no_wallet(tmp_path: Path) -> None:
    # Today's code: the second node creates its wallet file, then starts.
    wallet = tmp_path / "second-wallet.json"
    with running_node(tmp_path / "a", mine=False) as a:
        before = sorted(p.name for p in a.data_dir.iterdir())
        code, lines = run_refused(node_args(a.data_dir, free_port(), mine=True, extra=("--wallet", str(wallet))))
        assert code == 2, lines
        assert len(lines) == 1, lines
        assert not wallet.exists(), "a refused start created a wallet file"
        assert sorted(p.name for p in a.data_dir.iterdir()) == before
        assert a.status()["network"] == "regtest"


def test_kill9_releases_the_lock(tmp_path: Path) -> None:
    # Today's code: the restart works (there is no lock) but a third node on the directory is not refused.
    data_dir = tmp_path / "a"
    with running_node(data_dir, mine=True) as a:
        wait_until(lambda: a.status()["height"] >= 2)
        a.kill9()
    with running_node(data_dir, mine=True) as again:
        assert again.process is not None
        height = again.status()["height"]
        assert height >= 2
        wait_until(lambda: again.status()["height"] > height, what="the restarted node mining")
        code, lines = run_refused(node_args(data_dir, free_port(), mine=False))
        assert code == 2, lines
        assert str(again.process.pid) in lines[0], lines


def test_server_process_stops_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    # Today's code: the orphaned server process keeps serving (and holding the chain database) for ever.
    data_dir = tmp_path / "a"
    with running_node(data_dir, mine=True) as a:
        assert a.process is not None
        children = child_pids(a.process.pid)
        assert children
        try:
            os.kill(a.process.pid, signal.SIGKILL)
            a.process.wait(timeout=10)
            wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), timeout=20)
        finally:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    with running_node(data_dir, mine=False) as again:
        assert again.status()["height"] >= 0


# -- no thread dies silently ------------------------------------------------------------------------------------------

# Runs in every Python process of the node (sitecustomize, through PYTHONPATH): once the test creates the file
# FAULT_ARM, the pump's next two templates raise ERROR, as a bug would.
PUMP_FAULT = """
import os, sqlite3, sys
sys.path.insert(0, os.environ["FAULT_REPO"])
from simplecoin import server

_new_work = server.MiningPump._new_work
_fired = [0]

def _failing_new_work(self):
    if _fired[0] < 2 and os.path.exists(os.environ["FAULT_ARM"]):
        _fired[0] += 1
        raise ERROR
    _new_work(self)

server.MiningPump._new_work = _failing_new_work
"""


def inject_pump_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str) -> Path:
    """Nodes started from now on in this test have a faulty pump; it fails once the returned path exists."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(PUMP_FAULT.replace("ERROR", error))
    monkeypatch.setenv("PYTHONPATH", str(inject))
    monkeypatch.setenv("FAULT_REPO", str(REPO))
    monkeypatch.setenv("FAULT_ARM", str(tmp_path / "arm"))
    return tmp_path / "arm"


def test_crashing_pump_is_restarted_and_status_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Today's code: the pump thread dies, /status has no "threads" and the height stops growing.
    arm = inject_pump_fault(tmp_path, monkeypatch, 'RuntimeError("injected pump fault")')
    with running_node(tmp_path / "a", mine=True, pause=0.1) as a:
        assert a.status()["threads"]["mining-pump"] == "ok"
        arm.touch()
        state = wait_until(
            lambda: "restart" in (s := a.status()["threads"]["mining-pump"]) and s, what="a pump restart reported"
        )
        assert "injected pump fault" in str(state)
        height = a.status()["height"]
        wait_until(lambda: a.status()["height"] >= height + 3, what="mining after the restart")
        log_text = a.run_log()
        assert "Traceback" in log_text
        assert "RuntimeError: injected pump fault" in log_text


def test_store_error_in_the_pump_stops_the_node_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Today's code: the pump thread dies and the node serves on at a frozen height, exit code unset.
    arm = inject_pump_fault(tmp_path, monkeypatch, 'sqlite3.OperationalError("disk I/O error (injected)")')
    with running_node(tmp_path / "a", mine=True, pause=0.1) as a:
        assert a.process is not None
        wait_until(lambda: a.status()["height"] >= 1, what="mining")
        arm.touch()
        wait_until(lambda: a.process.poll() is not None, what="the node to stop on its own")
        assert a.process.returncode == 1
        log_text = a.run_log()
        assert "stopping the node: thread mining-pump: OperationalError: disk I/O error (injected)" in log_text
        assert "server process" in log_text
        assert "died with exit code 3" in log_text


# -- the pump's rejected-block backoff (in-process) -------------------------------------------------------------------


class RejectingService:
    """A NodeService stand-in whose every submitted block is rejected as time-too-new."""

    def __init__(self) -> None:
        self.hashrate = 0.0
        self.submits = 0
        self.listeners: list = []
        self.template = make_block(
            REGTEST.genesis_hash,
            1,
            REGTEST.pow_limit_bits,
            REGTEST.genesis_time + 1,
            MINER_KEY.pubkey_hash,
            REGTEST,
            extra=bytes(EXTRANONCE_SIZE),
        )

    def subscribe(self, listener) -> None:
        self.listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def block_template(self, pubkey_hash: bytes, extranonce: bytes):
        return self.template

    def submit_block(self, block, source: str = "", requested: bool = False):
        self.submits += 1
        raise ValidationError("time-too-new", "block timestamp too far in the future")

    def tip(self):
        raise AssertionError("not reached: every block is rejected")


def instant_worker(conn, stop: threading.Event) -> None:
    """A regtest mining process: answers every job at once with a 'solution'."""
    while not stop.is_set():
        if not conn.poll(0.01):
            continue
        message = conn.recv()
        if message is None:
            return
        if isinstance(message, Work):
            conn.send(Solution(message.job_id, message.worker_nonce + bytes(8), 0))
        elif message != IDLE:
            raise AssertionError(f"unexpected message {message!r}")


def test_rejected_own_block_is_not_retried_in_a_hot_loop(caplog: pytest.LogCaptureFixture) -> None:
    # Today's code: about a thousand submits and as many warnings in the second (measured: see the report).
    service = RejectingService()
    ours, theirs = Pipe()
    stop = threading.Event()
    worker = threading.Thread(target=instant_worker, args=(theirs, stop), daemon=True)
    pump = MiningPump(service, [ours], MINER_KEY.pubkey_hash, pause=0.0)  # type: ignore[arg-type]
    runner = threading.Thread(target=pump.run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="simplecoin.server"):
        worker.start()
        runner.start()
        try:
            wait_until(lambda: service.submits >= 1, timeout=10)
            time.sleep(1.0)  # the window in which retries are counted
            quiet = service.submits
            assert quiet <= 3, f"{quiet} submits of a rejected block in about a second"
            # A new tip is a cause that can have changed: the pump tries again promptly.
            service.emit(Event("block", bytes(32), b"", "peer", tip_changed=True))
            wait_until(lambda: service.submits > quiet, timeout=5, what="a retry after a new tip")
        finally:
            pump.stopping.set()
            runner.join(timeout=5)
            stop.set()
            worker.join(timeout=5)
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1, f"{len(rejected)} warnings for one repeated rejection"
    assert "time-too-new" in rejected[0].getMessage()


def test_rejected_own_block_waits_for_a_new_second_or_new_transactions() -> None:
    # Today's code: MiningPump takes no clock, and the rejected block is resubmitted at once in any case.
    service = RejectingService()
    ours, theirs = Pipe()
    stop = threading.Event()
    now = [1_000_000.25]
    worker = threading.Thread(target=instant_worker, args=(theirs, stop), daemon=True)
    pump = MiningPump(service, [ours], MINER_KEY.pubkey_hash, pause=0.0, clock=lambda: now[0])  # type: ignore[arg-type]
    runner = threading.Thread(target=pump.run, daemon=True)
    worker.start()
    runner.start()
    try:
        wait_until(lambda: service.submits == 1 and pump.rejection is not None, timeout=10)
        now[0] += 0.5  # the same second: a new template would carry the same time
        time.sleep(0.3)  # the pump polls every 10 ms: some thirty chances to resubmit
        assert service.submits == 1
        now[0] += 0.5  # the next second
        wait_until(lambda: service.submits == 2 and pump.rejection is not None, timeout=5, what="a retry next second")
        service.emit(Event("tx", bytes(32), b"", "peer"))  # new mempool contents
        wait_until(lambda: service.submits == 3, timeout=5, what="a retry after a new transaction")
    finally:
        pump.stopping.set()
        runner.join(timeout=5)
        stop.set()
        worker.join(timeout=5)
