"""Amounts: integers of base units everywhere; coins with decimals only where a person types or reads them."""

from __future__ import annotations

import re

COIN = 100_000_000  # base units in one coin (Bitcoin: COIN)


COIN_DECIMALS = 8
_AMOUNT = re.compile(r"([0-9]{1,9})(?:\.([0-9]*))?|\.([0-9]+)")


def parse_coins(text: str) -> int:
    """Base units from an amount a person typed in coins ("1.25"), exactly: no floats are involved.

    Raises ValueError naming the problem: not a number, negative, too many decimals.
    """
    cleaned = text.strip()
    if cleaned.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    match = _AMOUNT.fullmatch(cleaned)
    if not match:
        raise ValueError(f"{text!r} is not an amount in coins (like 1.25)")
    whole, frac = match.group(1) or "0", match.group(2) if match.group(1) else match.group(3)
    frac = frac or ""
    if len(frac) > COIN_DECIMALS:
        raise ValueError(f"{text!r} has more than {COIN_DECIMALS} decimals")
    return int(whole) * COIN + int(frac.ljust(COIN_DECIMALS, "0"))


def format_coins(base_units: int) -> str:
    """An amount in coins with all eight decimals, computed in integers ("-1.50000000")."""
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), COIN)
    return f"{sign}{whole}.{frac:08d}"
