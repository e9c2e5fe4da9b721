"""A node process for the crash-safety tests to kill: it submits the blocks of a file, one line of output each.

    python -m tests.crash_worker DB BLOCKS [--pause-sql N | --pause-event N] [--in-block I] [--hold-before I]

BLOCKS holds one hex-serialized block per line, in submission order. The worker opens
`Node(Store(DB, REGTEST), REGTEST, clock=lambda: NOW)` and prints (flushing each line):

    open <height> <tip hex> <connects> <disconnects>   store.connect_block/disconnect_block calls made by Node()
    begin <i>                                          about to submit block i of the file
    connected <height> <hash hex>                      store.connect_block returned (committed)
    disconnected <height> <hash hex>                   store.disconnect_block returned (committed)
    stored <height> <hash hex>                         store.add_block returned (committed)
    done <i> <status>                                  submit_block returned
    end <height> <tip hex>                             every block submitted; exits 0 next

With --pause-sql N it stops inside the N-th write statement (INSERT/UPDATE/DELETE) of this run, after the statement
ran and before its transaction commits, and prints `paused sql <n> <first word> in_transaction=<bool>`. With
--pause-event N it stops right after the N-th connect or disconnect (add_block does not count) of this run returned,
printing `paused event <n>`. With --in-block I only what happens while block I of the file is submitted counts
(-1: while the node opens, finishing whatever a crash left undone). With --hold-before I it stops before it begins
block I of the file, printing `paused before <I>`, whatever else it was told.
A paused worker waits for its killer; if stdin closes instead it exits with status 3 without going on.
Nothing here changes the store's code: the hooks wrap the store object and its SQLite connection from outside.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW

WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE")


def say(*words: object) -> None:
    """One line in one write, so a kill never leaves half of one (stdout may be unbuffered: PYTHONUNBUFFERED)."""
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


def pause(*words: object) -> None:
    """Announce the stop, then wait to be killed. Never returns."""
    say("paused", *words)
    sys.stdin.readline()
    os._exit(3)


class PausingConnection:
    """A sqlite3 connection that stops the process inside its `pause_at`-th write statement."""

    def __init__(self, db: sqlite3.Connection, pause_at: int, counting: Callable[[], bool]) -> None:
        self._db = db
        self._pause_at = pause_at
        self._counting = counting
        self._writes = 0

    def __enter__(self) -> Any:
        return self._db.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._db.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self._db.execute(sql, *args)
        self._after(sql)
        return cursor

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self._db.executemany(sql, *args)
        self._after(sql)
        return cursor

    def _after(self, sql: str) -> None:
        verb = sql.split(None, 1)[0].upper()
        if verb in WRITE_STATEMENTS and self._counting():
            self._writes += 1
            if self._writes == self._pause_at:
                pause("sql", self._writes, verb, f"in_transaction={self._db.in_transaction}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("blocks")
    parser.add_argument("--pause-sql", type=int, default=0, metavar="N")
    parser.add_argument("--pause-event", type=int, default=0, metavar="N")
    parser.add_argument("--in-block", type=int, default=None, metavar="I")
    parser.add_argument("--hold-before", type=int, default=None, metavar="I")
    args = parser.parse_args(argv)
    submitting = -1  # the block of the file being submitted; -1 while the node opens

    def counting() -> bool:
        return args.in_block is None or args.in_block == submitting

    store = Store(args.db, REGTEST)
    if args.pause_sql:
        store._db = PausingConnection(store._db, args.pause_sql, counting)  # type: ignore[assignment]
    events = {"connected": 0, "disconnected": 0}
    counted_events = 0

    def observed(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(block: Block, height: int, *rest: Any) -> Any:
            nonlocal counted_events
            result = method(block, height, *rest)
            say(kind, height, hash_hex(block.hash))
            if kind in events:
                events[kind] += 1
                counted_events += counting()
                if counting() and counted_events == args.pause_event:
                    pause("event", args.pause_event)
            return result

        return wrapper

    # Instance attributes shadow the methods: the node calls these, the store's code is untouched.
    store.connect_block = observed("connected", store.connect_block)  # type: ignore[method-assign]
    store.disconnect_block = observed("disconnected", store.disconnect_block)  # type: ignore[method-assign]
    store.add_block = observed("stored", store.add_block)  # type: ignore[method-assign]

    node = Node(store, REGTEST, clock=lambda: NOW)
    say("open", node.height, hash_hex(node.tip.hash), events["connected"], events["disconnected"])
    with open(args.blocks) as f:
        lines = [line.strip() for line in f if line.strip()]
    for i, line in enumerate(lines):
        block = Block.deserialize(bytes.fromhex(line))
        if i == args.hold_before:
            pause("before", i)
        submitting = i
        say("begin", i)
        outcome = node.submit_block(block)
        say("done", i, outcome.status)
    say("end", node.height, hash_hex(node.tip.hash))
    node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
