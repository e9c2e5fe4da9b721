"""Faults of our own are visible and survivable (issue 21, rows 4-6).

- SIGTERM to the whole process group (systemd's default, `kill -- -PGID`) reaches the supervisor, the server
  and the mining processes, and the supervisor sends the server another: the second must not abort the
  shutdown (peers.json, mempool.dat, the WAL checkpoint and the "stopped" line are all still written).

Functional tests run real `miner.py` nodes (tests/framework/nodes.py) on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.framework.nodes import running_node, wait_until


def test_two_sigterms_to_the_process_group_still_shut_down_cleanly(tmp_path: Path) -> None:
    # Today's code: the second SIGTERM raises SystemExit inside the shutdown's `finally`: no peers.json, no
    # mempool.dat, the WAL is left behind and there is no "server stopped" line.
    with running_node(tmp_path / "a", mine=True, pause=0.1, new_session=True) as a:
        assert a.process is not None
        wait_until(lambda: a.status()["height"] >= 2, what="mining")
        group = os.getpgid(a.process.pid)
        assert group == a.process.pid  # its own group: the signal reaches nobody else
        os.killpg(group, signal.SIGTERM)
        os.killpg(group, signal.SIGTERM)
        a.process.wait(timeout=30)
        log_text = a.run_log()
        assert "server stopped at height" in log_text, log_text[-3000:]
        assert (a.data_dir / "peers.json").exists()
        assert (a.data_dir / "mempool.dat").exists()
        wal = a.data_dir / "chain.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed when the store closed
