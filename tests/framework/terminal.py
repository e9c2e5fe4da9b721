"""A program on a pseudo-terminal, started as a user's interactive shell starts it: in the foreground, with the
terminal's signals at their defaults.

A shell without job control (a script's `cmd &`, `(nohup cmd &)`) starts a background job with SIGINT and SIGQUIT
ignored, and its children inherit that. CPython installs its KeyboardInterrupt handler only when SIGINT is at its
default, so a wallet started from such a test run ignored Ctrl-C: the Ctrl-C tests waited 60 s for "cancelled"
(three of them in one run of the suite started that way). `timeout CMD` hid it: it catches SIGINT, and a caught
signal is back at its default in the program it starts.
"""

from __future__ import annotations

import signal
from typing import Any

import pexpect


def interactive_signals() -> None:
    """In the child, before it runs the program: SIGINT and SIGQUIT at their defaults, as a foreground job has them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def spawn_interactive(argv: list[str], **kwargs: Any) -> pexpect.spawn:
    """`argv` on a pseudo-terminal (pexpect), with the signals a user's terminal gives it."""
    return pexpect.spawn(argv[0], argv[1:], preexec_fn=interactive_signals, **kwargs)
