"""The consensus core: pure functions and immutable values. No clock, disk or network (tests/test_purity.py)."""
