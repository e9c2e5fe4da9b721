"""Real `miner.py` processes for functional tests: loopback (127.0.0.1 unless a test picks another 127.x address, so
IP identity and network groups are exercised for real), free ports, temporary data directories.

    with running_node(tmp_path / "a", mine=True) as a:
        wait_until(lambda: a.status()["height"] >= 3)

Every node is stopped by the test that started it (SIGTERM, then SIGKILL by PID, never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parent.parent.parent
REQUEST_TIMEOUT = 5.0


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1") -> Iterator[str]:
    """A WSGI app (a node's API, or a fake peer) on a loopback thread; its URL while the block runs."""
    server = make_server(host, free_port(host), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll `predicate` until it returns something true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (requests.RequestException, KeyError, ValueError) as e:  # a node still starting up
            last_error = e
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or predicate}"
        + (f" (last error: {last_error})" if last_error else "")
    )


@dataclass
class NodeProcess:
    """One running `miner.py` (or another command that runs its `main`)."""

    data_dir: Path
    port: int
    args: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)
    new_session: bool = False  # own session and process group, like a node started from its own terminal
    log_offset: int = 0  # where this run's output starts in the log (a restarted node appends)
    host: str = "127.0.0.1"  # any 127.x.y.z: all of 127.0.0.0/8 is loopback
    command: tuple[str, ...] = (sys.executable, "miner.py")  # or an installed `simplecoin-node` (test_packaging)
    cwd: Path = REPO

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> NodeProcess:
        log = self.log_path.open("ab")
        self.log_offset = log.tell()
        self.process = subprocess.Popen(
            [*self.command, *self.args],
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=self.new_session,
        )
        log.close()
        wait_until(self.is_up, timeout=30, what=f"node on port {self.port} to answer")
        return self

    def is_up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"node exited with {self.process.returncode}:\n{self.log()}")
        # Only our node's answer counts: another test's node may have taken the port before ours could.
        if f":{self.port} (network " not in self.run_log():  # the server's "serving the API on ..." line
            return False
        try:
            return self.session.get(self.url + "/status", timeout=REQUEST_TIMEOUT).status_code == 200
        except requests.RequestException:
            return False

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url + path, timeout=REQUEST_TIMEOUT, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(self.url + path, timeout=REQUEST_TIMEOUT, **kwargs)

    def status(self) -> dict:
        response = self.get("/status")
        response.raise_for_status()
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run_log(self) -> str:
        """The log of the current run only."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
        return self.process.returncode

    def kill9(self) -> None:
        """SIGKILL the supervisor and its children, by PID."""
        if self.process is not None and self.process.poll() is None:
            self.kill_group()

    def kill_group(self) -> None:
        assert self.process is not None
        for pid in [*child_pids(self.process.pid), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def child_pids(pid: int) -> list[int]:
    """Direct and indirect children of `pid`, from /proc."""
    children = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            direct = [int(c) for c in f.read().split()]
    except OSError:
        return []
    for child in direct:
        children.extend([*child_pids(child), child])
    return children


def node_args(
    data_dir: Path,
    port: int,
    *,
    mine: bool,
    peers: tuple[str, ...] = (),
    workers: int = 1,
    pause: float = 0.2,
    extra: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> list[str]:
    args = [
        "--network",
        "regtest",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "info",
    ]
    if mine:
        args += ["--workers", str(workers), "--mining-pause", str(pause)]
    else:
        args += ["--no-mine"]
    for peer in peers:
        args += ["--peer", peer]
    return args + list(extra)


@contextlib.contextmanager
def running_node(
    data_dir: Path,
    *,
    mine: bool = False,
    peers: tuple[str, ...] = (),
    workers: int = 1,
    pause: float = 0.2,
    port: int | None = None,
    extra: tuple[str, ...] = (),
    new_session: bool = False,
    host: str = "127.0.0.1",
) -> Iterator[NodeProcess]:
    """A started node that is stopped (and its processes reaped) when the block ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    node = NodeProcess(
        data_dir,
        port,
        node_args(data_dir, port, mine=mine, peers=peers, workers=workers, pause=pause, extra=extra, host=host),
        data_dir / "node.log",
        new_session=new_session,
        host=host,
    )
    try:
        yield node.start()
    finally:
        node.stop()


@contextlib.contextmanager
def forked_pair(tmp: Path, timeout: float = 90.0) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two mining nodes whose chains forked: `a` mines alone, `b` mines a shorter chain of its own, then `b`
    connects to `a` and follows its chain, which has more work. `b`'s own blocks stay in its index as a side
    branch (the explorer's forks page); `a` is `b`'s peer (its peers page). Yields (a, b), both still mining.

        genesis - a1 - a2 - ... - a8 - ...    a's chain: b's active chain after the reorg
               \\
                b1 - b2                       b's own blocks: a side branch on b
    """
    with running_node(tmp / "a", mine=True, pause=0.1) as a:
        wait_until(lambda: a.status()["height"] >= 8, timeout=timeout, what="a's chain")
        with running_node(tmp / "b", mine=True, pause=1.0) as b:
            wait_until(lambda: b.status()["height"] >= 2, timeout=timeout, what="b's own blocks")
            r = b.post("/peers", json={"address": a.address})
            assert r.status_code == 200, r.text
            wait_until(lambda: 'data-tip="' in b.get("/explorer/forks").text, timeout=timeout, what="b's reorg")
            yield a, b
