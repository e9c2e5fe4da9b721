"""The exceptions SimpleCoin raises; every rejection carries a stable reason."""

from __future__ import annotations


class SimpleCoinError(Exception):
    """Raised for any SimpleCoin failure; the root of the hierarchy."""


class DecodeError(SimpleCoinError, ValueError):
    """Raised when bytes or text do not decode strictly (short, trailing, out of range)."""

    reason = "bad-encoding"


class ValidationError(SimpleCoinError):
    """Raised when a transaction or block breaks a consensus or policy rule.

    `reason` is short and stable (Bitcoin Core style, e.g. `bad-cb-amount`); `detail` is for people.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TxValidationError(ValidationError):
    """Raised when a transaction is invalid (or, in the mempool, not acceptable)."""


class BlockValidationError(ValidationError):
    """Raised when a block or block header is invalid."""
