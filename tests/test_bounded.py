"""The bounded dict every stranger-fillable cache uses: it never holds more than its limit, oldest out first."""

import pytest

from simplecoin.bounded import BoundedDict


def test_past_the_limit_the_oldest_write_goes():
    d = BoundedDict(3)
    for key in "abcde":
        d[key] = key.upper()
    assert list(d) == ["c", "d", "e"]


def test_rewriting_or_touching_a_key_makes_it_the_newest():
    d = BoundedDict(3)
    for key in "abc":
        d[key] = 0
    d["a"] = 1  # written again: now the newest
    d.touch("b")
    d["x"] = 0
    assert list(d) == ["a", "b", "x"]
    assert d["a"] == 1


def test_a_flood_of_keys_keeps_it_at_its_limit():
    d = BoundedDict(100)
    for i in range(10_000):
        d[i] = None
    assert len(d) == 100
    assert min(d) == 9_900


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        BoundedDict(0)
