"""The explorer's charts: SVG drawn on the server by pygal and put inline in the page.

No script and no other origin (a node may be offline, and the explorer's Content-Security-Policy allows neither):
pygal's own script, its inline `<style>` and its comments (links to its site) are taken out of each chart; its
stylesheet is served once from this node (`stylesheet`, at /explorer/charts.css), and each point's value becomes
an SVG `<title>`, which the browser shows on hover without any script.

The figures: difficulty and the interval before each block, over the last CHART_BLOCKS blocks of the active
chain, one mark per block; the network's hashrate estimated from chain work (the work of the last
HASHRATE_WINDOW blocks over the time they took); the mempool's count and bytes over time (`node/poolhistory.py`).
The caller reads the blocks by height from the active chain, so a chart costs the same at any height; a chart
is drawn once per tip (or pool change) and remembered.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pygal
from markupsafe import Markup
from pygal.style import Style

from simplecoin.core.chain import IndexEntry
from simplecoin.core.pow import bits_to_target
from simplecoin.node.poolhistory import PoolSample

CHART_BLOCKS = 120  # blocks drawn (one mark each); the dashboard reads CHART_BLOCKS + HASHRATE_WINDOW entries
HASHRATE_WINDOW = 10  # blocks whose work over their time span is one hashrate estimate
FIRST_SHOWN = 2  # the lowest height drawn: block 1's interval is from genesis's fixed time
CACHED_CHARTS = 8  # tips / pool histories whose charts are remembered (the newest few)

STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1d2330",
    foreground_strong="#1d2330",
    foreground_subtle="#dde1e7",
    opacity=".85",
    opacity_hover="1",
    colors=("#2456c7", "#c7563a", "#2e8b57"),
    font_family='system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
    label_font_size=12,
    major_label_font_size=12,
    value_font_size=12,
    no_data_font_size=16,
)
CONFIG = {
    "style": STYLE,
    "js": [],
    "disable_xml_declaration": True,
    "show_legend": False,
    "width": 560,
    "height": 250,
    "margin": 8,
    "show_minor_x_labels": False,
    "truncate_label": -1,
    "print_values": False,
    "no_data_text": "No blocks yet",
}


@dataclass(frozen=True, slots=True)
class BlockPoint:
    """What the charts need of one block."""

    height: int
    time: int
    bits: int
    chain_work: int


@dataclass(frozen=True)
class BlockCharts:
    """The dashboard's block charts, each an inline `<svg>`, and how many blocks each shows (one mark each)."""

    difficulty: Markup
    interval: Markup
    hashrate: Markup
    shown: int


def block_points(entries: Sequence[IndexEntry]) -> tuple[BlockPoint, ...]:
    """Active-chain entries (any order) as points, oldest first."""
    points = (BlockPoint(e.height, e.header.time, e.header.bits, e.chain_work) for e in entries)
    return tuple(sorted(points, key=lambda p: p.height))


@functools.lru_cache(maxsize=CACHED_CHARTS)
def block_charts(points: tuple[BlockPoint, ...], pow_limit: int) -> BlockCharts:
    """Difficulty, block interval and estimated hashrate for the last CHART_BLOCKS of `points` (consecutive
    heights, oldest first, up to HASHRATE_WINDOW more below them for the estimate). Genesis's time is a constant
    of the network, not when anyone mined it, so neither it nor the block after it (whose interval would be the
    network's age) is shown, and no estimate reaches back to it."""
    by_height = {p.height: p for p in points}
    shown = [p for p in points[-CHART_BLOCKS:] if p.height >= FIRST_SHOWN and p.height - 1 in by_height]
    labels = [str(p.height) for p in shown]
    difficulty = [pow_limit / max(bits_to_target(p.bits), 1) for p in shown]
    interval = [p.time - by_height[p.height - 1].time for p in shown]
    hashrate = []
    for p in shown:
        first = by_height.get(max(p.height - HASHRATE_WINDOW, FIRST_SHOWN - 1)) or points[0]
        hashrate.append((p.chain_work - first.chain_work) / max(p.time - first.time, 1))

    def line(name: str, values: list[float], unit: str) -> Markup:
        chart = pygal.Line(**CONFIG, x_labels_major_count=6, dots_size=2.5, value_formatter=_formatter(unit))
        chart.x_labels = labels
        chart.add(name, values)
        return _inline(chart, name)

    bars = pygal.Bar(**CONFIG, x_labels_major_count=6, value_formatter=_formatter("s"))
    bars.x_labels = labels
    bars.add("interval", interval)
    return BlockCharts(
        difficulty=line("difficulty", difficulty, ""),
        interval=_inline(bars, "interval"),
        hashrate=line("hashrate", hashrate, "H/s"),
        shown=len(shown),
    )


@functools.lru_cache(maxsize=CACHED_CHARTS)
def mempool_chart(samples: tuple[PoolSample, ...]) -> Markup:
    """The pool's transactions (left axis) and kilobytes (right axis) at each sample, one mark per sample."""
    chart = pygal.XY(
        **{**CONFIG, "no_data_text": "No samples yet"},
        x_value_formatter=lambda t: _clock(t),
        x_labels_major_count=5,
        dots_size=2.5,
        value_formatter=_formatter(""),
    )
    if samples:  # (pygal's secondary axis fails on an empty series)
        chart.add("transactions", [(s.time, s.count) for s in samples])
        chart.add("kB", [(s.time, round(s.bytes / 1000, 1)) for s in samples], secondary=True)
    return _inline(chart, "mempool")


@functools.cache
def stylesheet() -> str:
    """pygal's stylesheet for our STYLE, once, for every chart on the page (`.pygal-chart` instead of one id)."""
    chart = pygal.Line(**CONFIG)
    chart.add("x", [1, 2])
    css = next(e.text or "" for e in chart.render_tree().iter("style"))
    return re.sub(r"#chart-[0-9a-f-]+", ".pygal-chart", css) + "\n.pygal-chart{width:100%;height:auto}\n"


def _inline(chart: pygal.graph.graph.Graph, name: str) -> Markup:
    """`chart` as `<svg>` markup fit to be inline under our CSP: no script, style, comment or style attribute;
    each point's label and value a `<title>` ("12: 3.5 s"), which browsers show on hover."""
    root = chart.render_tree()
    root.attrib.pop("id", None)
    root.attrib.pop("xmlns", None)  # inline in HTML, an <svg> is SVG without it
    root.set("role", "img")
    root.set("aria-label", name)
    for parent in list(root.iter()):
        descs = {d.get("class"): d.text or "" for d in parent.findall("desc")}
        for child in list(parent):
            if child.tag in ("script", "style", "title", "desc") or not isinstance(child.tag, str):  # comments too
                parent.remove(child)
            elif child.tag == "g" and child.get("class") == "tooltip":  # pygal's script's tooltip
                parent.remove(child)
            else:
                child.attrib.pop("style", None)
        if "value" in descs:
            title = ET.Element("title")
            title.text = f"{descs['x_label']}: {descs['value']}" if "x_label" in descs else descs["value"]
            parent.insert(0, title)
    return Markup(ET.tostring(root, encoding="unicode"))  # ElementTree escapes every text and attribute


def _formatter(unit: str):
    def value(v: float | None) -> str:
        if v is None:
            return ""
        text = f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
        return f"{text} {unit}".strip()

    return value


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")
