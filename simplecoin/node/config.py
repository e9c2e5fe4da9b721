"""Node configuration: config.yaml, overridden by command-line flags, checked before anything starts.

Every problem is a `ConfigError` whose message is one line naming the key (or flag) and what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from multiprocessing import reduction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from simplecoin.core.errors import DecodeError, SimpleCoinError
from simplecoin.core.keys import pubkey_hash_from_address
from simplecoin.core.params import NETWORKS, NetworkParams, regtest_with_asert
from simplecoin.node.addrman import BadAddress, parse_address

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(SimpleCoinError):
    """Raised when the configuration or a flag is unusable; the message is one line."""


@dataclass(frozen=True)
class Config:
    """Everything a node needs to start, already checked."""

    params: NetworkParams
    data_dir: Path
    host: str
    port: int
    peers: tuple[str, ...]
    public_url: str
    mine: bool
    address: str | None
    wallet: Path
    workers: int
    mining_pause: float
    log_level: str
    clock_offset: float = 0.0  # seconds added to this machine's clock wherever the node reads it (tests, experiments)
    max_hashrate: float | None = None  # hashes per second each mining process is held to (tests, experiments)
    metrics_public: bool = False  # GET /metrics answers other machines too (default: only this one)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


# key: (type check, description) -- the description is what an error says the key should be.
KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "network": (str, f"one of {', '.join(sorted(NETWORKS))}"),
    "data_dir": (str, "a directory path"),
    "host": (str, "a host name or IP address"),
    "port": (int, "a port number 1-65535"),
    "peers": (list, "a list of host:port addresses (http://host:port is accepted too)"),
    "public_url": (str, "an http:// URL"),
    "mine": (bool, "true or false"),
    "address": (str, "an address"),
    "wallet": (str, "a file path"),
    "workers": (int, "a number of processes, 1 or more"),
    "mining_pause": ((int, float), "a number of seconds, 0 or more"),
    "log_level": (str, f"one of {', '.join(LOG_LEVELS)}"),
    "clock_offset": ((int, float), "a number of seconds (negative: behind)"),
    "max_hashrate": ((int, float), "a number of hashes per second, more than 0"),
    "regtest_asert": (int, "a whole number of seconds a block, 1 to 600 (regtest only)"),
    "metrics_public": (bool, "true or false"),
}
MAX_CLOCK_OFFSET = 7 * 24 * 3600  # a week either way: enough to try any clock rule, and no typo of years


def read_config_file(path: Path) -> dict[str, Any]:
    """The key/values of a YAML config file (empty values dropped); ConfigError on anything odd."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from e
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected key: value lines")
    values = {}
    for key, value in raw.items():
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if value is not None:
            values[key] = value
    return values


def build_config(file_values: dict[str, Any], flags: dict[str, Any], source: str = "config") -> Config:
    """Merge file values with flags (flags win), check every value, and fill in the defaults."""
    flags = {k: v for k, v in flags.items() if v is not None}
    values = {**file_values, **flags}

    def fail(key: str, problem: str) -> ConfigError:
        """An error naming where the value came from: the flag, or the key in the file."""
        where = "--" + key.replace("_", "-") if key in flags else f"{source}: {key}"
        return ConfigError(f"{where} {problem}")

    for key, value in values.items():
        expected, description = KEYS[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            raise fail(key, f"must be {description}, not {value!r}")

    network = values.get("network", "main")
    if network not in NETWORKS:
        raise fail("network", f"must be {KEYS['network'][1]}, not {network!r}")
    params = NETWORKS[network]
    if "regtest_asert" in values:
        if network != "regtest" or not 1 <= values["regtest_asert"] <= 600:
            raise fail("regtest_asert", f"must be {KEYS['regtest_asert'][1]}, not {values['regtest_asert']!r}")
        params = regtest_with_asert(values["regtest_asert"])
    port = values.get("port", 5000)
    if not 1 <= port <= 65535:
        raise fail("port", f"must be {KEYS['port'][1]}, not {port}")
    host = values.get("host", "127.0.0.1")
    peers = tuple(values.get("peers", ()))
    for peer in peers:
        try:
            parse_address(peer, allow_names=True)  # a network address only: no path, query or user info
        except BadAddress as e:
            raise fail("peers", f"must be {KEYS['peers'][1]}; {peer!r} is not one ({e})") from e
    # Listening on every interface says nothing about how peers reach us: offer the machine's name.
    reachable_host = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    public_url = values.get("public_url", f"http://{reachable_host}:{port}")
    if not _is_http_url(public_url):
        raise fail("public_url", f"must be an http:// URL, not {public_url!r}")
    address = values.get("address")
    if address is not None:
        try:
            pubkey_hash_from_address(address, params.address_version)
        except DecodeError as e:
            raise fail("address", f"{address!r} is not a {network} address: {e}") from e
    workers = values.get("workers", os.cpu_count() or 1)
    if workers < 1:
        raise fail("workers", f"must be {KEYS['workers'][1]}, not {workers}")
    # Regtest's fixed target makes every other hash a block: without a pause the chain would race ahead.
    pause = values.get("mining_pause", 1.0 if params.no_retargeting else 0.0)
    if pause < 0:
        raise fail("mining_pause", f"must be {KEYS['mining_pause'][1]}, not {pause}")
    log_level = values.get("log_level", "info")
    if log_level not in LOG_LEVELS:
        raise fail("log_level", f"must be {KEYS['log_level'][1]}, not {log_level!r}")
    max_hashrate = values.get("max_hashrate")
    if max_hashrate is not None and max_hashrate <= 0:
        raise fail("max_hashrate", f"must be {KEYS['max_hashrate'][1]}, not {max_hashrate}")
    clock_offset = values.get("clock_offset", 0)
    if not -MAX_CLOCK_OFFSET <= clock_offset <= MAX_CLOCK_OFFSET:
        raise fail("clock_offset", f"must be at most {MAX_CLOCK_OFFSET} seconds either way, not {clock_offset}")
    data_dir = Path(values.get("data_dir") or Path.home() / ".simplecoin" / network).expanduser()
    wallet = Path(values["wallet"]).expanduser() if "wallet" in values else data_dir / "wallet.json"
    return Config(
        params=params,
        data_dir=data_dir,
        host=host,
        port=port,
        peers=peers,
        public_url=public_url.rstrip("/"),
        mine=values.get("mine", True),
        address=address,
        wallet=wallet,
        workers=workers,
        mining_pause=float(pause),
        log_level=log_level,
        clock_offset=float(clock_offset),
        max_hashrate=None if max_hashrate is None else float(max_hashrate),
        metrics_public=values.get("metrics_public", False),
    )


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_environment(config: Config) -> None:
    """What can only be checked on this machine, creating nothing: the data directory is usable, the port free."""
    check_data_dir(config.data_dir)
    check_port(config)


def check_data_dir(data_dir: Path) -> None:
    """The data directory exists and is usable, or could be created; nothing is created here."""
    if data_dir.exists():
        if not data_dir.is_dir():
            raise ConfigError(f"data_dir {data_dir}: not a directory")
        if not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(f"data_dir {data_dir}: not readable and writable by this user")
        return
    ancestor = data_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"data_dir {data_dir}: cannot create it: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"data_dir {data_dir}: cannot create it: {ancestor} is not writable by this user")


def check_port(config: Config) -> None:
    """Nothing listens on the API's address yet (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((config.host, config.port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {config.port} on {config.host} is already in use (another node?): stop what uses it or "
                    "choose another --port"
                ) from e
            raise ConfigError(f"host {config.host}: cannot listen there: {e.strerror}") from e


class DataDirLock:
    """An exclusive lock on a data directory, held for the life of the node's processes.

    Bitcoin Core: `LockDirectory` on `<datadir>/.lock`. Two nodes on one chain database write the same rows: the
    second one's blocks broke the first one's mining pump on a UNIQUE constraint, and both went on serving. The
    lock is `flock` on `<data dir>/LOCK`, which holds the pid of the supervisor process (miner.py). The kernel
    releases it when the last descriptor of that open file closes, so a kill -9 releases it too. The
    supervisor passes the descriptor to the server process (the one that writes the database): both hold the
    same lock, so an orphaned server still keeps a second node out until it has stopped.
    """

    NAME = "LOCK"

    def __init__(self, fd: int, data_dir: Path, created: tuple[Path, ...] = ()) -> None:
        self.fd = fd
        self.data_dir = data_dir
        self.created = created  # directories this start made, outermost first: removed again by abandon()

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Create the data directory if needed and lock it; ConfigError naming the holder's pid if it is taken."""
        created = []
        missing = data_dir
        while not missing.exists() and missing != missing.parent:
            created.append(missing)
            missing = missing.parent
        created.reverse()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(data_dir / cls.NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            _remove_dirs(created)
            raise ConfigError(f"data_dir {data_dir}: cannot create it: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"data_dir {data_dir}: cannot lock it: {e.strerror}") from e
            raise ConfigError(
                f"data_dir {data_dir} is in use by another node (pid {holder}); "
                "one node per data directory: stop that node or choose another --data-dir"
            ) from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, data_dir, tuple(created))

    def abandon(self) -> None:
        """Give the lock up after a refused start, removing the directories this start created."""
        os.close(self.fd)
        if self.created:
            with contextlib.suppress(OSError):
                (self.data_dir / self.NAME).unlink()
            _remove_dirs(self.created)

    def __reduce__(self):
        # Pickled only to start the server process (spawn): the descriptor itself goes along, so the child
        # holds the same open file, hence the same lock. Never a copy of the path: a fresh open() and
        # flock() in the child would conflict with our own lock.
        return (_rebuild_lock, (reduction.DupFd(self.fd), self.data_dir))


def _rebuild_lock(dup: Any, data_dir: Path) -> DataDirLock:
    return DataDirLock(dup.detach(), data_dir)


def _remove_dirs(created: list[Path] | tuple[Path, ...]) -> None:
    """Remove directories made by a refused start, innermost first, if they are still empty."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            return
