"""How the difficulty rule answers a small network's hashrate swings: a simulation on MAIN's real parameters.

Run from the repository root:

    python bench/bench_difficulty.py                   # MAIN as it is, 25 seeded runs, the old rule beside it
    python bench/bench_difficulty.py --quick           # a smoke run (3 runs)
    python bench/bench_difficulty.py --sweep           # the same figures for other half-lives (how MAIN's was chosen)
    python bench/bench_difficulty.py --activations     # a new chain's first hour for other activation heights
    python bench/bench_difficulty.py --half-life 900 --future-limit 240   # try one pair

Every block goes through `BlockIndex.next_bits` (and `median_time_past`) of a real `BlockIndex` on MAIN's
parameters: the new rule is MAIN itself (aserti3-2d from `asert_activation_height`), the old rule is MAIN with
no activation height (Bitcoin's retarget every 120 blocks, at most 4x a step), run in the same process on the
same seeds. Nothing is mined: a block's solve time is drawn from the exponential distribution of mean
(expected hashes of its bits, `block_work`) / hashrate, and it is stamped honestly, max(true time, median time
past + 1). Each figure is the median over the runs.

Every run first settles a chain from the genesis at a hashrate that keeps the difficulty near 1,000x the pow
limit (so a 100x drop stays above the limit), for 1,200 blocks plus a part of a retarget period: run i of n
adds i/n of it, so that the old rule's events fall at evenly spread phases of its period (where in its period
a drop falls decides most of what the old rule makes of it). Then, on that chain:

- drop100: the hashrate falls 100x. Hours from the drop until the trailing mean of 10 block intervals, all
  found at the new hashrate, is <= 2x the spacing. Goal <= 1.5 h.
- rise100: the hashrate rises 100x. Blocks found in the first hour beyond the 120 scheduled. Goal <= 200.
- steady: the same hashrate for 3,000 blocks: mean interval / spacing (goal 0.97-1.03) and the 99th
  percentile of the trailing 10-block mean interval, in spacings (goal <= 2.5).
- leverage: at each of 240 consecutive heights, the block stamped at the latest time the rules allow (true
  time + the future limit at its height) instead of honestly: how much easier (target ratio) the next block
  gets. The worst of the 240. Goal <= 1.25x.
- start (information, for the activation height): a new chain from the genesis with one pure-Python miner
  (0.6 s a block at the pow limit): blocks in its first hour (scheduled: 120). --activations shows it for
  other activation heights, for a chain begun at the genesis time and one begun 27 days later (MAIN's chains
  begin when a group starts mining, not at the genesis' fixed time).
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import common  # first: it puts the repository on sys.path

from simplecoin.core.chain import BlockIndex, BlockStatus, IndexEntry
from simplecoin.core.params import MAIN, NetworkParams
from simplecoin.core.pow import bits_to_target, block_work
from simplecoin.core.primitives import BlockHeader

SETTLED_DIFFICULTY = 1_000  # times the pow limit's work
SETTLE_BLOCKS = 1_200
DROP_WINDOW = 10  # blocks in the trailing mean
STEADY_BLOCKS = 3_000
LEVERAGE_HEIGHTS = 240
LATE_START = 27 * 24 * 60 * 60  # seconds after the genesis time: a chain begun on 2026-12-06
PYTHON_MINER_SECONDS = 0.6  # a pure-Python miner's time for a block at the pow limit
GOALS = {"drop100": 1.5, "rise100": 200, "steady_mean": (0.97, 1.03), "steady_p99": 2.5, "leverage": 1.25}


@dataclass(frozen=True)
class Run:
    """Run `seed` of `runs`: the seed of its random numbers, and where in a retarget period its events fall."""

    seed: int
    runs: int


class Sim:
    """One chain on a real BlockIndex, with simulated time and hashrate."""

    def __init__(self, params: NetworkParams, rng: random.Random) -> None:
        self.params = params
        self.rng = rng
        self.index = BlockIndex(params)
        genesis = params.genesis_block.header
        self.tip = self.index.make_entry(genesis, BlockStatus.VALID)
        self.index.add(self.tip)
        self.now = float(genesis.time)  # the true time
        self.found: list[float] = [self.now]  # true time each block was found, by height

    def header(self, prev: IndexEntry, time: int, tag: int = 0) -> BlockHeader:
        merkle = (prev.height + 1).to_bytes(8, "little") + tag.to_bytes(4, "little") + bytes(20)
        return BlockHeader(1, prev.hash, merkle, time, self.index.next_bits(prev), 0)

    def mine(self, hashrate: float) -> IndexEntry:
        """The next block at `hashrate` (hashes per second), stamped honestly."""
        bits = self.index.next_bits(self.tip)
        self.now += self.rng.expovariate(hashrate / block_work(bits))
        time = max(int(self.now), self.index.median_time_past(self.tip) + 1)
        entry = self.index.make_entry(self.header(self.tip, time), BlockStatus.VALID)
        self.index.add(entry)
        self.tip = entry
        self.found.append(self.now)
        return entry

    def leverage_at(self, entry: IndexEntry) -> float:
        """How much easier the block after `entry` gets if `entry` is stamped as late as allowed instead."""
        prev = self.index[entry.prev_hash]
        latest = int(self.found[entry.height]) + self.params.future_block_time_limit(entry.height)
        late = self.index.make_entry(self.header(prev, max(latest, entry.header.time), tag=1), BlockStatus.VALID)
        self.index.add(late)
        return bits_to_target(self.index.next_bits(late)) / bits_to_target(self.index.next_bits(entry))


def settled(params: NetworkParams, run: Run) -> tuple[Sim, float]:
    sim = Sim(params, random.Random(run.seed))
    hashrate = SETTLED_DIFFICULTY * block_work(params.pow_limit_bits) / params.target_spacing
    for _ in range(SETTLE_BLOCKS + run.seed * params.retarget_interval // run.runs):
        sim.mine(hashrate)
    return sim, hashrate


def drop100(params: NetworkParams, run: Run) -> float:
    sim, hashrate = settled(params, run)
    dropped_at, first = sim.now, sim.tip.height + 1
    window = DROP_WINDOW * params.target_spacing * 2
    while True:
        entry = sim.mine(hashrate / 100)
        height = entry.height
        if height - first + 1 >= DROP_WINDOW and sim.found[height] - sim.found[height - DROP_WINDOW] <= window:
            return (sim.now - dropped_at) / 3600


def rise100(params: NetworkParams, run: Run) -> float:
    sim, hashrate = settled(params, run)
    end, blocks = sim.now + 3600, 0
    while sim.mine(hashrate * 100) and sim.now <= end:
        blocks += 1
    return blocks - 3600 // params.target_spacing


def steady(params: NetworkParams, run: Run) -> tuple[float, float, float]:
    """(mean interval / spacing, p99 of the trailing 10-block mean / spacing, worst leverage)."""
    sim, hashrate = settled(params, run)
    start = sim.tip.height
    for _ in range(STEADY_BLOCKS):
        sim.mine(hashrate)
    spacing = params.target_spacing
    found = sim.found
    mean = (found[-1] - found[start]) / STEADY_BLOCKS / spacing
    means = sorted(
        (found[h] - found[h - DROP_WINDOW]) / DROP_WINDOW / spacing
        for h in range(start + DROP_WINDOW, start + STEADY_BLOCKS + 1)
    )
    p99 = means[int(0.99 * (len(means) - 1))]
    tip = sim.tip
    entries = []
    while len(entries) < LEVERAGE_HEIGHTS:
        entries.append(tip)
        tip = sim.index[tip.prev_hash]
    return mean, p99, max(sim.leverage_at(e) for e in entries)


def start(params: NetworkParams, run: Run, late: int = 0) -> float:
    """Blocks in the first hour of a chain whose first block is mined `late` seconds after the genesis time."""
    sim = Sim(params, random.Random(run.seed))
    sim.now += late
    hashrate = block_work(params.pow_limit_bits) / PYTHON_MINER_SECONDS
    end, blocks = sim.now + 3600, 0
    while sim.mine(hashrate) and sim.now <= end:
        blocks += 1
    return blocks


@dataclass(frozen=True)
class Figures:
    drop100: float
    rise100: float
    steady_mean: float
    steady_p99: float
    leverage: float
    start: float


def figures(params: NetworkParams, runs: int) -> Figures:
    each = [Run(seed, runs) for seed in range(runs)]

    def median(f: Callable[[NetworkParams, Run], float]) -> float:
        return statistics.median(f(params, run) for run in each)

    steadies = [steady(params, run) for run in each]
    return Figures(
        drop100=median(drop100),
        rise100=median(rise100),
        steady_mean=statistics.median(s[0] for s in steadies),
        steady_p99=statistics.median(s[1] for s in steadies),
        leverage=statistics.median(s[2] for s in steadies),
        start=median(start),
    )


def met(f: Figures) -> dict[str, bool]:
    low, high = GOALS["steady_mean"]
    return {
        "drop100": f.drop100 <= GOALS["drop100"],
        "rise100": f.rise100 <= GOALS["rise100"],
        "steady_mean": low <= f.steady_mean <= high,
        "steady_p99": f.steady_p99 <= GOALS["steady_p99"],
        "leverage": f.leverage <= GOALS["leverage"],
    }


def report(new: Figures, old: Figures, params: NetworkParams, bench: common.Run) -> bool:
    rows = [
        ("drop100: hours until the 10-block mean <= 2x spacing", "<= 1.5 h", "drop100", "{:.2f} h"),
        ("rise100: blocks in the first hour beyond 120", "<= 200", "rise100", "{:.0f}"),
        ("steady: mean interval / spacing (3,000 blocks)", "0.97-1.03", "steady_mean", "{:.3f}"),
        ("steady: p99 of the 10-block mean / spacing", "<= 2.5", "steady_p99", "{:.2f}"),
        ("leverage: worst next-block easing, 240 heights", "<= 1.25x", "leverage", "{:.2f}x"),
        ("start: blocks in a new chain's first hour (info)", "(120)", "start", "{:.0f}"),
    ]
    ok = met(new)
    print(
        f"new rule: aserti3-2d from height {params.asert_activation_height}, half-life {params.asert_half_life} s, "
        f"future limit {params.asert_max_future_block_time} s; old rule: retarget every {params.retarget_interval}"
        f" blocks, future limit {params.max_future_block_time} s"
    )
    print(f"{'figure':<54} {'goal':>10} {'new rule':>10} {'old rule':>10}  verdict")
    for label, goal, name, fmt in rows:
        # Seeded simulation, not a timing: a miss is a miss however busy the machine (timed=False).
        verdict_text = bench.judge(name, ok[name], timed=False) if name in ok else "info"
        new_text, old_text = fmt.format(getattr(new, name)), fmt.format(getattr(old, name))
        print(f"{label:<54} {goal:>10} {new_text:>10} {old_text:>10}  {verdict_text}")
    return all(ok.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=25, help="seeded runs per figure (median taken)")
    parser.add_argument("--quick", action="store_true", help="3 runs: a smoke run, not a measurement")
    parser.add_argument("--half-life", type=int, help="try another half-life (s) on MAIN")
    parser.add_argument("--future-limit", type=int, help="try another future-time limit (s) on MAIN")
    parser.add_argument("--sweep", action="store_true", help="the new rule's figures for several half-lives")
    parser.add_argument("--activations", action="store_true", help="a new chain's first hour by activation height")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    params = MAIN
    if args.half_life:
        params = params.replace(asert_half_life=args.half_life)
    if args.future_limit:
        params = params.replace(asert_max_future_block_time=args.future_limit)
    old = MAIN.replace(asert_activation_height=None)
    print(f"bench_difficulty: MAIN's parameters, {runs} seeded runs, medians")
    if args.activations:
        each = [Run(seed, runs) for seed in range(runs)]
        print("blocks in a new chain's first hour (scheduled: 120), one pure-Python miner, by activation height")
        print(f"{'activation':>10} {'begun at the genesis time':>26} {'begun 27 days later':>20}")
        for height in (2, 3, 11, 121, 361, None):
            tried = params.replace(asert_activation_height=height)
            now = statistics.median(start(tried, run) for run in each)
            late = statistics.median(start(tried, run, LATE_START) for run in each)
            print(f"{height or 'none':>10} {now:>26.0f} {late:>20.0f}")
        return 0
    if args.sweep:
        print("the future limit is 0.3 half-lives throughout, as MAIN's (2^0.3 = 1.23x of leverage)")
        heading = ("half-life", "future", "drop100", "rise100", "mean", "p99", "lever", "start")
        print("{:>9} {:>6} {:>8} {:>8} {:>6} {:>5} {:>6} {:>6}".format(*heading))
        for half_life in (300, 450, 600, 900, 1200, 1800, 3600):
            limit = half_life * 3 // 10
            f = figures(params.replace(asert_half_life=half_life, asert_max_future_block_time=limit), runs)
            missed = [name for name, ok in met(f).items() if not ok]
            verdicts = "misses " + ", ".join(missed) if missed else "all goals met"
            print(
                f"{half_life:>9} {limit:>6} {f.drop100:>7.2f}h {f.rise100:>8.0f} {f.steady_mean:>6.3f} "
                f"{f.steady_p99:>5.2f} {f.leverage:>5.2f}x {f.start:>6.0f}  {verdicts}"
            )
        return 0
    bench = common.Run()
    ok = report(figures(params, runs), figures(old, runs), params, bench)
    print(f"SUMMARY: every goal of the new rule {'holds' if ok else 'does NOT hold'}")
    return bench.finish()


if __name__ == "__main__":
    common.stop_on_sigterm()
    raise SystemExit(main())
