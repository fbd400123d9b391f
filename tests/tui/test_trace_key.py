"""The dashboard's ``t`` (trace from the selected node) and ``p`` (probe it).

The screens are driven with a fake trace put in place of the live one
(:data:`netlens.tui.trace_worker.RUNNER`), so no root or namespaces are needed:
what is checked is what the dashboard does with a request and an answer (the
request built from the node and the picker, the hop table, the verdict, the
probe column, the path on the topology, one line for every refusal). The live
path is checked by ``test_trace_key_live.py``.
"""

from __future__ import annotations

import dataclasses
import html
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from netlens.analysis.trace_run import TraceOutcome, TraceRequest
from netlens.analysis.tracetypes import Hop, Iface, L2Step, Packet, TraceResult, Verdict
from netlens.errors import UsageError
from netlens.tui import trace_worker
from netlens.tui.app import NetlensApp
from netlens.tui.screens.help import HelpScreen
from netlens.tui.screens.trace import TracePicker, TraceScreen
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import fixture_source, make_snapshot

pytestmark = pytest.mark.tui

HOST, WEB, API = "netns:4026531840", "netns:4026532200", "netns:4026532201"


def answer(req: TraceRequest) -> TraceOutcome:
    """web-1 -> br0 on the host -> api-2, delivered; the probe says it died at hop 2."""
    br = Iface(HOST, "host", 10, "br0")
    port = Iface(HOST, "host", 21, "veth-api")
    web_eth = Iface(WEB, "web-1", 2, "eth0", 1500)
    api_eth = Iface(API, "api-2", 2, "eth0", 1400)
    pkt = Packet("10.10.0.2", "10.10.0.3", req.protocol, None, req.dport)
    hops = (
        Hop(
            1, WEB, "web-1", "source", pkt, oif=web_eth,
            route={"type": "unicast", "table": 254},
            neighbour={"ip": "10.10.0.3", "mac": "02:00:00:00:00:03", "state": "reachable"},
            l2=L2Step("bridge", bridge=br, fdb="learned", port=port, ingress=api_eth),
        ),
        Hop(
            2, API, "api-2", "destination", pkt, iif=api_eth, route={"type": "local"},
            filter={"hook": "input", "verdict": "accept", "rule": "tcp dport 80 accept"},
            nat=("dnat to 10.10.0.3:8080",),
        ),
    )  # fmt: skip
    res = TraceResult(
        {"src": req.src, "dst": req.dst, "proto": req.protocol, "dport": req.dport},
        hops,
        Verdict("delivered", 2, "api-2 owns 10.10.0.3"),
        min_mtu=1400,
        min_mtu_at="api-2:eth0",
    )
    probe: dict[str, Any] | None = None
    if req.probe:
        probe = {
            "proto": req.protocol, "sent": 3, "answer": None, "result": "dropped",
            "died_at": 2, "reason": "no answer", "evidence": [], "seen_in": ["web-1"],
            "counters": [{"interface": "web-1:eth0", "rx_packets": 0, "tx_packets": 3,
                          "rx_dropped": 0, "tx_dropped": 0}],
            "drops": [{"reason": "NETFILTER_DROP", "location": "nf_hook_slow"}],
            "other_drops": 0, "nft": [], "agrees": False,
            "disagreement": "the static answer is delivered, the probe died at hop 2",
            "notes": [],
        }  # fmt: skip
    return TraceOutcome(req, res, probe)


class Fake:
    def __init__(self, fail: str | None = None) -> None:
        self.seen: list[TraceRequest] = []
        self.fail = fail

    def __call__(self, req: TraceRequest) -> TraceOutcome:
        self.seen.append(req)
        if self.fail:
            raise UsageError(self.fail)
        return answer(req)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    f = Fake()
    monkeypatch.setattr(trace_worker, "RUNNER", f)
    return f


async def until(pilot: Any, cond: Any) -> None:
    for _ in range(200):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError("the trace screen never got its answer")


async def traced(pilot: Any, src: str, dst: str) -> TraceScreen:
    """Once the fixture is loaded: ``t`` from the topology node ``src`` to ``dst``,
    until the trace screen has its answer."""
    await loaded(pilot)
    topo = pilot.app.query_one(TopologyView)
    topo.selected = src
    topo.focus()
    await pilot.press("t", *dst, "enter")
    screen = pilot.app.screen
    assert isinstance(screen, TraceScreen)
    await until(pilot, lambda: screen.outcome is not None)
    return screen


def help_rows(screen: HelpScreen) -> list[str]:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(screen._table())
    return [" ".join(r.split()) for r in console.export_text().splitlines()]


def cells(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


# -- pure parts --------------------------------------------------------------------------------
def test_parse_request_takes_the_cli_forms_and_refuses_bad_text() -> None:
    r = trace_worker.parse_request("netns:1", " web-1:eth0 ", "")
    assert (r.dst, r.protocol, r.dport) == ("web-1:eth0", "icmp", None)
    r = trace_worker.parse_request("netns:1", "10.0.0.1", "udp/53")
    assert (r.protocol, r.dport) == ("udp", 53)
    assert trace_worker.parse_request("x", "y", "80").protocol == "tcp"
    assert trace_worker.parse_request("x", "y", "TCP 443").dport == 443
    for dst, extra, msg in (
        ("", "", "type a destination"),
        ("y", "tcp 70000", "out of range"),
        ("y", "icmp 80", "need --proto tcp or udp"),
        ("y", "sctp", "not a protocol or port"),
    ):
        with pytest.raises(UsageError, match=msg):
            trace_worker.parse_request("x", dst, extra)


def test_source_spec_of_each_node_kind() -> None:
    snap = make_snapshot((6, 4))
    assert trace_worker.source_spec(snap, WEB) == (WEB, "web-1")
    c = snap.containers[0]
    assert trace_worker.source_spec(snap, c.id) == (c.id, c.name)
    assert trace_worker.source_spec(snap, f"{WEB}/2") == (f"{WEB}:eth0", "web-1:eth0")
    for bad in ("server", f"{WEB}/99", "nonsense/x"):
        with pytest.raises(UsageError):
            trace_worker.source_spec(snap, bad)


def test_path_nodes_name_vrfs_interfaces_and_the_bridge() -> None:
    snap = make_snapshot((6, 4))
    res = answer(TraceRequest(WEB, "api-2")).result
    nodes = trace_worker.path_nodes(snap, res)
    assert {WEB, API, f"{HOST}/10", f"{HOST}/21", f"{WEB}/2", f"{API}/2"} <= nodes
    assert HOST not in nodes and "server" not in nodes  # the host is crossed at L2 only


# -- the screens -------------------------------------------------------------------------------
@run_async
async def test_t_traces_from_the_selected_vrf_and_p_probes_it(fake: Fake) -> None:
    app = make_app(fixture_source(live=True, interval=5.0))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        topo = app.query_one(TopologyView)
        topo.selected = WEB
        topo.focus()
        await pilot.press("t")
        assert isinstance(app.screen, TracePicker)
        await pilot.press(*"api-2")
        await pilot.press("tab", *"tcp 80", "enter")
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        await until(pilot, lambda: screen.outcome is not None)
        assert fake.seen == [TraceRequest(WEB, "api-2", "tcp", 80)]
        table = screen.query_one("#trace-hops", DataTable)
        rows = cells(table)
        assert [r[:4] for r in rows] == [["1", "web-1", "-", "eth0"], ["2", "api-2", "eth0", "-"]]
        assert rows[0][5] == "02:00:00:00:00:03 REACHABLE · br0 fdb learned veth-api"
        assert rows[1][6] == "dnat to 10.10.0.3:8080" and rows[1][7] == "input accept"
        assert rows[0][8] == "1500"
        verdict = str(screen.query_one("#trace-verdict", Static).render())
        assert verdict.startswith("verdict: DELIVERED: api-2 owns 10.10.0.3")
        assert "smallest MTU 1400" in verdict
        assert {WEB, API, f"{HOST}/10"} <= topo.path  # highlighted behind the screen

        await pilot.press("p")
        await until(pilot, lambda: screen.outcome is not None and screen.outcome.probe is not None)
        assert fake.seen[-1] == TraceRequest(WEB, "api-2", "tcp", 80, probe=True)
        rows = cells(screen.query_one("#trace-hops", DataTable))
        assert [r[-1] for r in rows] == ["seen eth0 rx+0 tx+3", "✖ died"]
        probe = str(screen.query_one("#trace-probe", Static).render())
        assert "probe verdict: DROPPED at hop 2" in probe
        assert "kernel drop: NETFILTER_DROP" in probe
        assert "DISAGREEMENT: the static answer is delivered" in probe

        await pilot.press("escape")
        assert not isinstance(app.screen, TraceScreen)
        assert {WEB, API} <= topo.path  # the path stays until the next trace


@run_async
async def test_bad_input_stays_in_the_picker_and_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = Fake(fail="DST: no container, VRF or address matches 'nope'")
    monkeypatch.setattr(trace_worker, "RUNNER", fake)
    app = make_app(fixture_source(live=True, interval=5.0))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        topo = app.query_one(TopologyView)
        topo.selected = f"{WEB}/2"  # an interface node
        topo.focus()
        await pilot.press("t", "enter")  # no destination
        assert isinstance(app.screen, TracePicker)
        err = app.screen.query_one("#trace-error", Static)
        assert "type a destination" in str(err.render())
        app.screen.query_one("#trace-dst", Input).value = "nope"
        app.screen.query_one("#trace-proto", Input).value = "icmp 80"
        await pilot.press("enter")
        assert isinstance(app.screen, TracePicker) and "need --proto" in str(err.render())
        app.screen.query_one("#trace-proto", Input).value = ""
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        state = screen.query_one("#trace-state", Static)
        await until(pilot, lambda: "no container" in str(state.render()))
        assert fake.seen[0].src == f"{WEB}:eth0"
        assert str(state.render()) == "trace: DST: no container, VRF or address matches 'nope'"
        assert screen.query_one("#trace-hops", DataTable).row_count == 0
        assert app.query_one(TopologyView).path == frozenset()


@run_async
async def test_t_on_a_saved_snapshot_says_why_not(fake: Fake) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app, NetlensApp) and not isinstance(app.screen, TracePicker)
        assert any("live host" in str(n.message) for n in app._notifications)
        assert fake.seen == []


def test_the_last_row_says_where_the_frame_enters_next() -> None:
    """A path cut short after the cable (the walk stopped there) still names the far end."""
    res = answer(TraceRequest(WEB, "api-2")).result
    short = TraceResult(res.query, res.hops[:1], Verdict("unknown", 1, "stopped"))
    assert trace_worker.hop_rows(short)[0][5].endswith("· → api-2:eth0")


@run_async
async def test_names_from_the_host_are_never_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A namespace named like Rich markup shows as typed, in the table and the verdict."""

    def hostile(req: TraceRequest) -> TraceOutcome:
        out = answer(req)
        hop = dataclasses.replace(out.result.hops[1], netns_name="[red]evil[/]")
        verdict = Verdict("delivered", 2, "to [b]evil[/b]")
        res = dataclasses.replace(out.result, hops=(out.result.hops[0], hop), verdict=verdict)
        return TraceOutcome(req, res, None)

    monkeypatch.setattr(trace_worker, "RUNNER", hostile)
    app = make_app(fixture_source(live=True, interval=5.0))
    async with app.run_test(size=SIZE) as pilot:
        await traced(pilot, WEB, "api-2")
        await pilot.pause()
        shown = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "[red]evil[/]" in shown and "to [b]evil[/b]" in shown


@run_async
async def test_t_from_a_detail_screen_and_from_the_server_box(fake: Fake) -> None:
    app = make_app(fixture_source(live=True, interval=5.0))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        topo = app.query_one(TopologyView)
        topo.selected = API
        topo.focus()
        await pilot.press("enter")  # the VRF's detail
        assert type(app.screen).__name__ == "DetailScreen"
        await pilot.press("t", *"web-1", "enter")
        assert isinstance(app.screen, TraceScreen)
        await pilot.press("escape", "escape")  # back to the detail, back to the main screen
        topo.selected = "server"
        topo.focus()
        await pilot.press("t", *"10.10.0.2", "enter")
        await until(pilot, lambda: len(fake.seen) == 2)
        assert [r.src for r in fake.seen] == [API, HOST]


@run_async
async def test_help_lists_every_trace_key_and_a_remapped_probe_key_works(
    fake: Fake, _isolated_config: Path
) -> None:
    """``?`` from the trace screen lists the picker's, the trace screen's and the hop
    table's keys with their ids; a probe key remapped in keymap.toml is what the help,
    the trace screen's key line and the key itself use."""
    kdir = _isolated_config / "netlens"
    kdir.mkdir()
    (kdir / "keymap.toml").write_text('[keymap]\ntrace.probe = "x"\n')
    app = make_app(fixture_source(live=True, interval=5.0))
    async with app.run_test(size=SIZE) as pilot:
        screen = await traced(pilot, WEB, "api-2")
        bar = str(screen.query_one("#keybar", Static).render())
        assert "x probe" in bar and "p probe" not in bar
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = help_rows(app.screen)
        assert "t Trace from here (p probes) trace" in rows  # the global key
        group = rows[rows.index("Trace (t)") :]
        declared = [
            b for cls in (TracePicker, TraceScreen) for b in cls.BINDINGS if isinstance(b, Binding)
        ]
        assert {b.id for b in declared} == {"trace.cancel", "trace.back", "trace.probe"}
        for b in declared:  # each on a row of its own, with its description and id
            assert any(r.endswith(f"{b.description} {b.id}") for r in group), b.id
        for want in (
            "x Probe: send real packets along the path trace.probe",  # the remapped key
            "esc ⌫ Back to the topology trace.back",
            "esc Cancel the trace (picker) trace.cancel",
            "⏎ Trace to the destination typed (picker)",
            "← Scroll the hop table left",
            "→ Scroll the hop table right",
            "↑ Previous hop",
            "↓ Next hop",
        ):
            assert want in group, (want, group)
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("x")
        await until(pilot, lambda: screen.outcome is not None and screen.outcome.probe is not None)
        assert fake.seen[-1].probe
