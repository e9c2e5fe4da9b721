"""Configuration errors: `miner.py` says what is wrong in one line on stderr and exits 2 before starting anything.

Each case runs the real `python miner.py` with its own config file (so the repository's config.yaml does not
matter) and checks: exit code 2, exactly one stderr line naming the key or flag, nothing on the port, and
no wallet or chain created in the data directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAIN
from tests.framework.builder import MINER_KEY
from tests.framework.nodes import REPO, free_port

MAIN_ADDRESS = address_from_pubkey_hash(MINER_KEY.pubkey_hash, MAIN.address_version)


def run_miner(
    tmp_path: Path, config_text: str = "", *args: str, port: int | None = None, port_flag: bool = True
) -> tuple[str, int, Path]:
    """Run miner.py with a config file and regtest flags; return (the one stderr line, port, data dir).

    Without `port_flag` no --port is given, so the config file's port (or the default) is the one used.
    """
    config = tmp_path / "node.yaml"
    config.write_text(config_text)
    data_dir = tmp_path / "data"
    port = port or free_port()
    base = ["--config", str(config), "--network", "regtest", "--log-level", "info"]
    if "--data-dir" not in args:
        base += ["--data-dir", str(data_dir)]
    if port_flag:
        base += ["--port", str(port)]
    result = subprocess.run(
        [sys.executable, "miner.py", *base, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, f"exit code {result.returncode}; stderr:\n{result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert result.stdout == ""
    assert not (data_dir / "wallet.json").exists(), "a wallet was created before the configuration was checked"
    assert not (data_dir / "chain.db").exists(), "a store was opened before the configuration was checked"
    return lines[0], port, data_dir


def nothing_listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_unknown_key_in_the_config_file(tmp_path: Path) -> None:
    line, port, _ = run_miner(tmp_path, "network: regtest\nmining_speed: 3\n")
    assert "mining_speed" in line
    assert "unknown key" in line
    assert nothing_listens(port)


@pytest.mark.parametrize(
    ("text", "key"),
    [('port: "abc"\n', "port"), ("workers: two\n", "workers"), ("mine: sometimes\n", "mine"), ("peers: 5\n", "peers")],
)
def test_wrong_type_in_the_config_file(tmp_path: Path, text: str, key: str) -> None:
    line, port, _ = run_miner(tmp_path, text, port_flag=key != "port")
    assert key in line
    assert "must be" in line
    if key != "port":
        assert nothing_listens(port)


def test_garbage_address_flag(tmp_path: Path) -> None:
    line, port, _ = run_miner(tmp_path, "", "--address", "garbage")
    assert "address" in line
    assert "garbage" in line
    assert nothing_listens(port)


def test_main_network_address_on_regtest(tmp_path: Path) -> None:
    line, port, _ = run_miner(tmp_path, "", "--address", MAIN_ADDRESS)
    assert "address" in line
    assert MAIN_ADDRESS in line
    assert "regtest" in line
    assert nothing_listens(port)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line, _, _ = run_miner(tmp_path, "", port=port)
        busy.settimeout(0.5)
        with pytest.raises(TimeoutError):
            busy.accept()  # the node never connected to itself through our socket, nor did anyone else
    assert "port" in line
    assert str(port) in line
    assert "in use" in line
    assert "choose another --port" in line  # the way out, as the data directory's message gives its own


def test_data_dir_under_a_regular_file(tmp_path: Path) -> None:
    regular = tmp_path / "not-a-directory"
    regular.write_text("just a file\n")
    line, port, _ = run_miner(tmp_path, "", "--data-dir", str(regular / "data"))
    assert "data_dir" in line
    assert str(regular / "data") in line
    assert nothing_listens(port)
    assert regular.read_text() == "just a file\n"


def test_data_dir_that_is_a_regular_file(tmp_path: Path) -> None:
    regular = tmp_path / "chain-file"
    regular.write_text("not a directory\n")
    line, port, _ = run_miner(tmp_path, "", "--data-dir", str(regular))
    assert "data_dir" in line
    assert nothing_listens(port)
    assert regular.read_text() == "not a directory\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read and write any directory")
def test_unreadable_data_dir(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        line, port, _ = run_miner(tmp_path, "", "--data-dir", str(locked))
    finally:
        locked.chmod(0o700)
    assert "data_dir" in line
    assert nothing_listens(port)


def test_wrong_type_flag(tmp_path: Path) -> None:
    line, port, _ = run_miner(tmp_path, "", "--workers", "two")
    assert "--workers" in line
    assert nothing_listens(port)
