"""The dashboard's link key (``x``) on a real lab this test builds with the runtime.

Lab: ``a`` and ``b`` on one network (``eth0``, a bridge port on the host) and a
point-to-point cable ``a:p2p0 ⇄ b:p2p0``. The app runs on the live host with the
runtime's link verbs (``netlens.commands.link_control.RuntimeLinks``), as
``netlens`` runs it. Every pull is checked in the kernel (both ends
administratively down, read with iproute2 inside each namespace) and in the
view (the Interfaces tab's State column follows the new snapshot), then plugged
back and checked the same way:

- the p2p cable from a's Interfaces tab (``x`` then ``x`` confirms);
- the same cable as the wire on the topology (``x`` then ``y``);
- a's ``eth0`` from its host end (the bridge port's interface detail);
- ``x`` then ``n`` leaves the cable in;
- ``lo`` and the host's uplink are refused with a notification, and stay up.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG
from runtime_host import free_octet
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from netlens.commands.link_control import RuntimeLinks
from netlens.tui.app import NetlensApp
from netlens.tui.link_toggle import ConfirmLink
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import LiveSource
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import NlTable
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE

pytestmark = [pytest.mark.integration, pytest.mark.tui]


LAB = """
name: lkey
networks:
  lan: {{subnet: 10.{o}.70.0/24}}
nodes:
  a:
    network: lan
    ip: 10.{o}.70.10
    links:
      - {{peer: b, ifname: p2p0, addr: 10.{o}.71.1/30, peer_addr: 10.{o}.71.2/30}}
  b:
    network: lan
    ip: 10.{o}.70.11
"""


def _admin_up(pid: int | None, dev: str) -> bool:
    """The interface's administrative state, as iproute2 reads it in its namespace."""
    argv = ["ip", "-j", "link", "show", "dev", dev]
    if pid is not None:
        argv = ["nsenter", f"--net=/proc/{pid}/ns/net", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    (link,) = json.loads(out)
    return "UP" in link["flags"]


class Driver:
    """The app, the pilot and what the app said in notifications."""

    def __init__(self, app: NetlensApp, pilot: Pilot[None]) -> None:
        self.app = app
        self.pilot = pilot
        self.said: list[str] = []
        notify = app.notify

        def record(message: str, *args: Any, **kwargs: Any) -> None:
            self.said.append(str(message))
            notify(message, *args, **kwargs)

        app.notify = record  # type: ignore[method-assign]

    async def until(self, what: str, check: Any, tries: int = 600) -> None:
        for _ in range(tries):
            if check():
                return
            await self.pilot.pause(0.1)
        raise AssertionError(f"never: {what}; the app said {self.said}")

    async def ns_of(self, container: str) -> str:
        def found() -> bool:
            idx = self.app.ctx.index
            return idx is not None and any(c.name == container for c in idx.snapshot.containers)

        await self.until(f"{container} discovered", found, tries=900)
        idx = self.app.ctx.index
        assert idx is not None
        c = next(c for c in idx.snapshot.containers if c.name == container)
        assert c.netns is not None
        return c.netns

    async def open_vrf(self, ns_id: str) -> DetailScreen:
        app, pilot = self.app, self.pilot
        app.action_show_view("vrfs")
        await pilot.pause()
        vrfs = app.query_one("#vrf-table", FastTable)
        vrfs.focus()
        vrfs.restore_cursor(ns_id, 0)
        await pilot.pause()
        assert vrfs.cursor_key() == ns_id
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.ns is not None
        screen.query_one("#detail-tabs", TabbedContent).active = "tab-ifaces"
        await pilot.pause()
        return screen

    async def row(self, screen: DetailScreen, ifname: str) -> None:
        assert screen.ns is not None
        n = [i.name for i in screen.ns.interfaces].index(ifname)
        table = screen.query_one("#ifaces-table", NlTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(str(n)), animate=False)
        await self.pilot.pause()
        assert table.cursor_key() == str(n)

    @staticmethod
    def state_cell(screen: DetailScreen, ifname: str) -> str:
        assert screen.ns is not None
        n = [i.name for i in screen.ns.interfaces].index(ifname)
        table = screen.query_one("#ifaces-table", NlTable)
        return str(table.get_cell(str(n), "state"))


async def drive(names: dict[str, str], pids: dict[str, int], host_end: str) -> list[str]:
    src = LiveSource(interval=1.0)
    src.open_timeout = 60.0
    app = NetlensApp(src, link_control=RuntimeLinks())
    a, b = pids["a"], pids["b"]

    def p2p(up: bool) -> bool:
        return _admin_up(a, "p2p0") is up and _admin_up(b, "p2p0") is up

    async with app.run_test(size=SIZE) as pilot:
        d = Driver(app, pilot)
        ns_a = await d.ns_of(names["a"])

        # 1. the p2p cable from a's Interfaces tab; the link key again confirms
        screen = await d.open_vrf(ns_a)
        await d.row(screen, "p2p0")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmLink), d.said
        assert p2p(up=True)  # nothing before the answer
        await pilot.press("x")
        await d.until("both p2p0 ends down", lambda: p2p(up=False))
        await d.until("the state column says down", lambda: d.state_cell(screen, "p2p0") == "down")
        await d.until("the runtime's line", lambda: any(": down" in s for s in d.said))
        line = next(s for s in d.said if ": down" in s)
        assert line == f"lkey{RUN_TAG}:a:p2p0 and lkey{RUN_TAG}:b:p2p0: down", line
        await pilot.press("x")  # down: plugged back without a question
        assert not isinstance(app.screen, ConfirmLink)
        await d.until("both p2p0 ends up", lambda: p2p(up=True))
        await d.until("the state column says up", lambda: d.state_cell(screen, "p2p0") == "up")

        # 2. x then n: the cable stays in
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmLink)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmLink)
        await pilot.pause(0.5)
        assert p2p(up=True)

        # 3. lo is no cable: refused, and it stays up
        await d.row(screen, "lo")
        await pilot.press("x")
        assert not isinstance(app.screen, ConfirmLink)
        await d.until("lo refused", lambda: any("not a cable" in s for s in d.said))
        assert _admin_up(a, "lo")
        await pilot.press("escape")

        # 4. the same cable as the topology's wire; y confirms
        app.action_show_view("topology")
        await pilot.pause()
        topo = app.query_one(TopologyView)
        idx = app.ctx.index
        assert idx is not None
        wire = next(w for w in idx.p2p if ns_a in (w.a.split("/")[0], w.b.split("/")[0]))
        topo.focus()
        topo.selected = min(wire.a, wire.b)  # the wire's region (either end names it)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmLink), d.said
        await pilot.press("y")
        await d.until("both p2p0 ends down (wire)", lambda: p2p(up=False))
        await d.until("the rescan shows it", lambda: not app.ctx.index.ifaces[wire.a].admin_up)
        # a snapshot taken while another helper churns namespaces can miss the pair
        # for a moment, and the topology then moves its selection to the server:
        # select the wire again (what the key does is under test, not that)
        key = min(wire.a, wire.b)
        await d.until("the wire drawn", lambda: any(r.node == key for r in topo._layout.regions))
        topo.selected = key
        await pilot.press("x")
        await d.until("both p2p0 ends up (wire)", lambda: p2p(up=True))

        # 5. the host's uplink is refused and stays up
        idx = app.ctx.index
        assert idx is not None
        if idx.uplinks:
            up = idx.uplinks[0]
            was = _admin_up(None, up.name)
            topo.selected = up.ref.key
            await pilot.press("x")
            assert not isinstance(app.screen, ConfirmLink)
            await d.until("uplink refused", lambda: any("uplink" in s for s in d.said))
            assert _admin_up(None, up.name) is was

        # 6. a's eth0 from the host end (its bridge port's interface detail)
        await d.until(
            "host end discovered",
            lambda: any(i.name == host_end for i in app.ctx.index.ifaces.values()),
        )
        idx = app.ctx.index
        assert idx is not None
        key = next(k for k, i in idx.ifaces.items() if i.name == host_end)
        await app.push_screen(DetailScreen(app.ctx, key, "iface"))
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmLink), d.said
        await pilot.press("y")
        await d.until(
            "eth0 and its host end down",
            lambda: not _admin_up(a, "eth0") and not _admin_up(None, host_end),
        )
        await pilot.press("x")
        await d.until(
            "eth0 and its host end up", lambda: _admin_up(a, "eth0") and _admin_up(None, host_end)
        )
    return d.said


def test_link_key_pulls_and_plugs_back_lab_cables(labstate: Path, tmp_path: Path) -> None:
    from netlens_runtime import api, lab_ops, lab_record
    from netlens_runtime.lab_spec import load_lab

    LiveSource.check_available()
    path = tmp_path / "lkey.yaml"
    path.write_text(LAB.format(o=free_octet(100 + (int(RUN_TAG, 16) + 53) % 100)))
    spec = load_lab(str(path), name=f"lkey{RUN_TAG}")
    lab_ops.lab_up(spec)
    names = {n: lab_record.node_name(spec.name, n) for n in ("a", "b")}
    pids = {n: int(api.get_container(c)["pid"]) for n, c in names.items()}
    host_end = str(api.get_container(names["a"])["host_veth"])
    said = asyncio.run(drive(names, pids, host_end))
    assert not any("failed" in s or "Traceback" in s for s in said), said
    for dev in ("p2p0", "eth0"):  # everything plugged back in
        assert _admin_up(pids["a"], dev) and _admin_up(pids["b"], dev)
    assert _admin_up(None, host_end)
