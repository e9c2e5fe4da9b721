"""The explorer's pictures through Flask's test client: the dashboard's charts, the forks page, the peers page.

Charts are SVG drawn on the server (pygal), inline in the page: one mark per block shown, no script, no style
the Content-Security-Policy would refuse, no other origin. The forks page shows side branches built here with
the chain builder, each with where it forks, its length and work, and why the active chain won.
"""

from __future__ import annotations

import re
import time

import pytest

from simplecoin.core.params import REGTEST
from simplecoin.node.node import Node
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.poolhistory import PoolSample
from simplecoin.node.service import NodeService
from simplecoin.web import charts
from simplecoin.web.app import create_app
from tests.framework.builder import ChainBuilder


def page(app, path: str) -> str:
    r = app.test_client().get(path)
    assert r.status_code == 200, (path, r.status_code)
    assert r.mimetype == "text/html"
    return r.get_data(as_text=True)


def figure(html: str, name: str) -> str:
    """The markup of the chart `name` (its <figure>)."""
    found = re.search(rf'<figure class="chart" id="chart-{name}".*?</figure>', html, re.S)
    assert found, name
    return found.group(0)


def marks(svg: str) -> int:
    """Marks pygal drew: a dot per point of a line, a bar per point of a bar chart."""
    return svg.count('class="dot reactive') + svg.count('class="rect reactive')


# -- the dashboard's charts ---------------------------------------------------------------------------------------


def test_dashboard_charts_have_one_mark_per_block(funded):
    node, _ = funded
    service = NodeService(node)
    html = page(create_app(service, None), "/")
    shown = node.height - 1  # blocks 2..13: genesis's time is a constant, so neither it nor block 1 is drawn
    for name in ("difficulty", "interval", "hashrate"):
        chart = figure(html, name)
        assert f'data-marks="{shown}"' in chart
        assert chart.count("<svg") == 1
        assert marks(chart) == shown, name
    titles = re.findall(r"<title>([^<]*)</title>", figure(html, "interval"))
    spacing = REGTEST.target_spacing  # what the builder puts between blocks
    assert titles[0] == f"2: {spacing} s"
    assert titles[-1] == f"{node.height}: {spacing} s"
    assert figure(html, "difficulty").count("<title>") == shown
    # Nothing the page's Content-Security-Policy refuses, nothing from another origin.
    assert "<script" not in html.replace('<script src="/explorer/static/explorer.js"></script>', "")
    assert "<style" not in html
    assert " style=" not in html
    assert re.findall(r"https?://", html) == []
    assert '<link rel="stylesheet" href="/explorer/charts.css">' in html


def test_the_mempool_chart_has_a_mark_per_sample(funded):
    node, builder = funded
    clock = [1_000_000.0]
    node.clock = lambda: clock[0]
    service = NodeService(node)
    for source in ("m1", "m2", "m3"):
        clock[0] += 5
        service.submit_tx(builder.spend(source))
    samples = service.pool_history()
    assert [s.count for s in samples] == [0, 1, 2, 3]
    chart = figure(page(create_app(service, None), "/"), "mempool")
    assert marks(chart) == 2 * len(samples)  # transactions and kB, one mark each per sample
    assert f"<title>{time.strftime('%H:%M:%S', time.gmtime(samples[-1].time))}: 3</title>" in chart


def test_charts_show_the_last_chart_blocks_only():
    points = tuple(charts.BlockPoint(h, 1_000 + 30 * h, 0x207FFFFF, 2 * (h + 1)) for h in range(300))
    drawn = charts.block_charts(points, REGTEST.pow_limit)
    assert drawn.shown == charts.CHART_BLOCKS
    assert marks(drawn.difficulty) == marks(drawn.interval) == marks(drawn.hashrate) == charts.CHART_BLOCKS
    assert "<title>299: 30 s</title>" in drawn.interval
    # Work 2 per block, 30 s apart: the hashrate estimate of every block is 2/30 H/s.
    assert drawn.hashrate.count("<title>") == charts.CHART_BLOCKS
    assert "0.067 H/s" in drawn.hashrate


def test_charts_stylesheet_is_served_from_the_node(funded):
    node, _ = funded
    r = create_app(NodeService(node), None).test_client().get("/explorer/charts.css")
    assert r.status_code == 200
    assert r.mimetype == "text/css"
    css = r.get_data(as_text=True)
    assert ".pygal-chart" in css
    assert "#chart-" not in css
    assert "//" not in css


def test_pool_samples_are_taken_without_the_lock_held_by_the_reader(funded):
    node, _ = funded
    service = NodeService(node)
    with service.lock:  # a reader never waits for the node: the ring is read as it is
        assert service.pool_history() == (PoolSample(int(node.clock()), 0, 0),)


# -- the forks page -----------------------------------------------------------------------------------------------


@pytest.fixture
def forked(funded) -> tuple[Node, ChainBuilder]:
    #   m10 - m11 - m12 - m13          active (funded)
    #           \     \
    #            \     s13             same work as m13, seen after it
    #             t12! - t13 - t14     t12 pays its coinbase too much: the branch is invalid from 12
    #           l12                    (on m11) less work
    node, builder = funded
    node.submit_block(builder.block("s13", parent="m12"))
    node.submit_block(builder.block("t12", parent="m11", coinbase_extra=1))  # less work: stored, not connected
    node.submit_block(builder.block("t13"))
    outcome = node.submit_block(builder.block("t14"))  # more work: connecting the branch finds t12 invalid
    assert [e.reason for _, e in outcome.reorg.invalid] == ["bad-cb-amount"]
    node.submit_block(builder.block("l12", parent="m11"))
    assert node.tip.hash == builder["m13"].hash
    return node, builder


def test_forks_page_shows_each_branch_and_why_it_lost(forked):
    node, builder = forked
    html = page(create_app(NodeService(node), None), "/explorer/forks")
    rows = re.findall(r'<tr data-tip="([0-9a-f]{64})">(.*?)</tr>', html, re.S)
    by_name = {builder.name_of(bytes.fromhex(h)[::-1]): re.sub(r"<[^>]+>|\s+", " ", row) for h, row in rows}
    assert list(by_name) == ["l12", "t14", "s13"]  # newest first; the active tip m13 is no side branch
    cells = {name: row.split() for name, row in by_name.items()}
    assert cells["s13"][1:5] == ["13", "12", "1", "2"]  # height, forks at, length, its work (regtest: 2 a block)
    assert "same work, seen after the active tip" in by_name["s13"]
    assert cells["t14"][1:4] == ["14", "11", "3"]
    assert "invalid from height 12" in by_name["t14"]
    assert cells["l12"][1:6] == ["12", "11", "1", "2", "4"]  # its work 2 against the active chain's 4
    assert "less work" in by_name["l12"]


def test_forks_page_without_forks(funded):
    node, _ = funded
    html = page(create_app(NodeService(node), None), "/explorer/forks")
    assert 'id="no-forks"' in html


def test_forks_are_bounded_to_the_most_recent(forked):
    node, builder = forked
    branches = NodeService(node).side_branches(2)
    assert [builder.name_of(b.tip.hash) for b in branches] == ["l12", "t14"]


# -- the peers page -----------------------------------------------------------------------------------------------


def test_peers_page_shows_direction_since_and_what_each_sent(funded):
    node, _ = funded
    service = NodeService(node)
    peers = PeerManager(service, "http://127.0.0.1:1", ("127.0.0.1:2",), progress=False, wall_clock=lambda: 1.7e9)
    peers.table.sent_us("127.0.0.1:2", "block")
    peers.table.sent_us("127.0.0.1:2", "tx")
    peers.table.sent_us("127.0.0.1:2", "tx")
    peers.table.sent_us("127.0.0.1:3", "tx")  # no such peer: nobody is credited
    html = page(create_app(service, peers), "/explorer/peers")
    row = re.search(r'<tr data-address="127.0.0.1:2">(.*?)</tr>', html, re.S)
    assert row
    text = re.sub(r"<[^>]+>|\s+", " ", row.group(1)).split()
    assert text == ["127.0.0.1:2", "manual", "no", "2023-11-14", "22:13:20", "UTC", "?", "1", "2", "0", "0", "—"]


def test_peers_page_without_a_peer_layer(funded):
    node, _ = funded
    assert 'id="no-peers"' in page(create_app(NodeService(node), None), "/explorer/peers")


def test_a_new_chain_has_no_marks_yet(node):
    html = page(create_app(NodeService(node), None), "/")  # genesis only
    for name in ("difficulty", "interval", "hashrate"):
        chart = figure(html, name)
        assert 'data-marks="0"' in chart
        assert marks(chart) == 0
        assert "No blocks yet" in chart
    assert marks(charts.mempool_chart(())) == 0  # no sample at all: an empty chart, not an error
