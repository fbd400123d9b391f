"""Pilot tests: navigation, filter, sort, theme switch, pause, units and live updates."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Input

from netlens.model.types import Snapshot
from netlens.stats.types import StatsFrame
from netlens.tui.app import MAX_TICK_DELAY, NetlensApp
from netlens.tui.index import ViewIndex
from netlens.tui.messages import StatsTick
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.screens.help import HelpScreen
from netlens.tui.screens.main import ViewTab
from netlens.tui.sources import FixtureSource
from netlens.tui.views.base import View
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import container_ip, fixture_source, make_snapshot

pytestmark = pytest.mark.tui


def table(app: NetlensApp, tid: str = "#containers-table") -> FastTable:
    return app.query_one(tid, FastTable)


def names(t: FastTable) -> list[str]:
    return [str(t.get_row(rk)[0]) for rk in t.rows] if t.row_count else []


def ordered_names(t: FastTable) -> list[str]:
    return [str(t.get_row_at(i)[0]) for i in range(t.row_count)]


async def wait_for(pilot: Pilot[None], cond: object, tries: int = 100) -> None:
    for _ in range(tries):
        if callable(cond) and cond():
            return
        await pilot.pause(0.03)
    raise AssertionError("condition never became true")


@run_async
async def test_clicking_a_view_name_in_the_header_shows_that_view() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for view in ("containers", "vrfs", "topology"):
            tab = next(t for t in app.query(ViewTab) if t.view == view)
            await pilot.click(tab)
            await pilot.pause()
            assert app.main.active_view == view
            assert [t.view for t in app.query(ViewTab) if t.has_class("-active")] == [view]
            assert [v.id for v in app.query(View) if v.visible] == [f"view-{view}"]


@run_async
async def test_number_keys_switch_views_and_enter_opens_detail() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for key, view in (("2", "vrfs"), ("3", "containers"), ("4", "density"), ("1", "topology")):
            await pilot.press(key)
            assert app.main.active_view == view
            shown = [v.id for v in app.query(View) if v.visible]
            assert shown == [f"view-{view}"]
        topo = app.query_one(TopologyView)
        assert topo.selected == "server"
        await pilot.press("right")
        first_uplink = topo.selected
        assert first_uplink and first_uplink.endswith("/2")  # eth0 of the host
        await pilot.press("down", "down")
        assert topo.selected != first_uplink
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)
        await pilot.press("3", "j")
        second = ordered_names(table(app))[1]  # busiest first: the order is the rates'
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.ns is not None and app.screen.ns.name == second


@run_async
async def test_filter_limits_rows_and_escape_clears() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        t = table(app)
        total = t.row_count
        assert total == 12  # 11 containers + the router namespace
        await pilot.press("slash", *"web")
        assert app.query_one("#filter", Input).has_focus
        assert names(t) == ["web-1"]
        await pilot.press("enter")
        assert t.has_focus
        await pilot.press("escape")
        assert t.row_count == total
        # the filter also narrows the topology
        await pilot.press("1", "slash", *container_ip(1, 2), "enter")  # proxy-9's address
        topo = app.query_one(TopologyView)
        drawn = {r.node for r in topo._layout.regions if r.kind == "vrf"}
        assert drawn == {app.ctx.index.rows[8].netns} if app.ctx.index else False


@run_async
async def test_sort_by_columns_keeps_cursor_row() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3", "j", "j")
        t = table(app)
        before = t.cursor_key()
        # busiest first by default, as `netlens stats` lists them
        assert (t.sort_col, t.sort_reverse) == ("trend", True)
        trend = [t.get_row_at(i)[8].sort for i in range(t.row_count)]
        assert trend == sorted(trend, reverse=True) and trend[0] > trend[-1]
        await pilot.press("s", "s", "s")  # drops, errors, published ports
        assert t.sort_col == "ports"
        await pilot.press("s")  # then round to the name
        assert t.sort_col == "name"
        got = ordered_names(t)
        assert got == sorted(got, key=str.lower)
        assert t.cursor_key() == before
        await pilot.press("s", "s", "s", "s")  # engine, ip, bridge, rx
        assert t.sort_col == "rx"
        await pilot.press("r")
        rx = [t.get_row_at(i)[4].sort for i in range(t.row_count)]
        assert rx == sorted(rx, reverse=True) and rx[0] > rx[-1]
        assert t.cursor_key() == before


@run_async
async def test_theme_switch_restyles_roles(tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        dark = app.ctx.roles["nl-bridge"]
        app.theme = "netlens-light"
        await pilot.pause()
        assert app.ctx.roles["nl-bridge"] != dark
        assert app.ctx.roles["nl-bridge"] == app.get_css_variables()["nl-bridge"]


@run_async
async def test_bad_theme_file_notifies_and_falls_back(_isolated_config: Path) -> None:
    tdir = _isolated_config / "netlens" / "themes"
    tdir.mkdir(parents=True)
    (tdir / "broken.toml").write_text('[theme]\nname = "broken"\nprimary = "not-a-colour"\n')
    (tdir / "mine.toml").write_text(
        '[theme]\nname = "mine"\nprimary = "#123456"\n[roles]\nbridge = "#abcdef"\n'
    )
    app = make_app(theme="broken")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.theme == "netlens-dark"
        texts = " ".join(n.message for n in app._notifications)
        assert "not a colour" in texts and "broken" in texts
        app.theme = "mine"  # a valid user theme is offered
        await pilot.pause()
        assert app.ctx.roles["nl-bridge"] == "#abcdef"


@run_async
async def test_units_interval_and_pause() -> None:
    app = make_app(fixture_source(live=True, interval=0.05))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        t = table(app)
        await pilot.press("b")
        assert "B/s" in str(t.get_row_at(0)[4])
        await pilot.press("b")
        assert "b/s" in str(t.get_row_at(0)[4])
        await pilot.press("space")
        assert app.paused
        frozen = app.ctx.frame
        await pilot.pause(0.3)
        assert app.ctx.frame is frozen
        await pilot.press("space")
        assert app.ctx.frame is not frozen
        await pilot.press("plus")
        assert app.source.interval == 0.25
        await pilot.press("plus", "plus")
        assert app.source.interval == 1.0
        await pilot.press("minus")
        assert app.source.interval == 0.5
        assert "every 0.5s" in str(app.query_one("#status").render())


@run_async
async def test_live_updates_and_vanishing_rows_keep_cursor() -> None:
    src = fixture_source(live=True, interval=0.05)
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        t = table(app)
        first = app.ctx.frame
        await wait_for(pilot, lambda: app.ctx.frame is not first)
        t.sort_by("ip")  # web-1, api-2, db-3, cache-4... (not re-sorted by each tick)
        await pilot.press("g", "j", "j", "j")  # cursor on cache-4
        key = t.cursor_key()
        assert key is not None and "0004" in key
        # web-1, api-2 (above the cursor) vanish, and a new bridge with 2 containers appears
        src.push_snapshot(make_snapshot((6, 4, 2), drop=("web-1", "api-2")))
        await wait_for(pilot, lambda: len(app.ctx.ghosts) == 2)
        assert t.cursor_key() == key
        gone = [str(t.get_row(k)[0]) for k in app.ctx.ghosts]
        assert all("(gone)" in g for g in gone)
        await wait_for(pilot, lambda: t.row_count == 12 and not app.ctx.ghosts)
        assert t.cursor_key() == key
        assert "api-12" in names(t)
        # the topology follows the structure and draws the new bridge
        await pilot.press("1")
        assert any(
            r.kind == "bridge" and app.ctx.index and app.ctx.index.ifaces[r.node].name == "br2"
            for r in app.query_one(TopologyView)._layout.regions
        )


@run_async
async def test_vanished_namespace_greys_out() -> None:
    snap = make_snapshot()
    ns = [
        dataclasses.replace(n, complete=False) if n.name == "db-3" else n for n in snap.namespaces
    ]
    src = fixture_source()
    src._snap = dataclasses.replace(snap, namespaces=tuple(ns))
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        t = table(app)
        row = t.get_row_at(t.row_count - 1)  # no rate: below the idle ones
        assert "db-3 (gone)" in str(row[0]) and "—" in str(row[4])


@run_async
async def test_help_lists_binding_ids_and_keymap_remaps(_isolated_config: Path) -> None:
    kdir = _isolated_config / "netlens"
    kdir.mkdir()
    (kdir / "keymap.toml").write_text('[keymap]\nquit = "x"\nunits = "u"\n')
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        console = Console(width=200, file=io.StringIO(), record=True)
        console.print(help_screen._table())
        rows = console.export_text().splitlines()
        ids = [
            b.id
            for group in help_screen.groups.values()
            for b in group
            if isinstance(b, Binding) and b.id
        ]
        assert {"quit", "help", "units", "view.topology", "clear"} <= set(ids)
        for binding_id in ids:  # every id is listed, on a row of its own
            assert any(row.rstrip().endswith(binding_id) for row in rows), binding_id
        quit_row = next(r for r in rows if r.rstrip().endswith(" quit"))
        assert quit_row.split()[0] == "x"  # the remapped key, not q
        units_row = next(r for r in rows if r.rstrip().endswith(" units"))
        assert units_row.split()[0] == "u"
        await pilot.press("escape")
        await pilot.press("3", "u")
        assert app.ctx.bits is False
        await pilot.press("x")
        await pilot.pause()
    assert app.return_code == 0


@run_async
async def test_mouse_click_selects_a_node() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        topo = app.query_one(TopologyView)
        target = next(r for r in topo._layout.regions if r.kind == "bridge")
        await pilot.click(TopologyView, offset=(target.x + 4, target.y))
        assert topo.selected == target.node


@run_async
async def test_saved_dump_opens_read_only(tmp_path: Path) -> None:
    import json

    from netlens.model.serialize import snapshot_to_dict
    from netlens.tui.sources import FileSource

    dump = tmp_path / "host.json"
    dump.write_text(json.dumps(snapshot_to_dict(make_snapshot())))
    app = make_app(FileSource(dump))  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        banner = str(app.query_one("#banner").render())
        assert "read-only" in banner and "host.json" in banner
        await pilot.press("3")
        t = table(app)
        assert t.row_count == 12 and "—" in str(t.get_row_at(0)[4])


def test_merged_ticks_keep_the_newest_frame_and_any_structure_change() -> None:
    snap = make_snapshot()
    src = fixture_source()
    f1, f2 = src.initial_frame(), src.initial_frame()
    assert f1 is not None and f2 is not None
    idx = ViewIndex.build(snap)
    with_index, plain = StatsTick(f1, idx), StatsTick(f2, None)
    merged = NetlensApp._merge(with_index, plain)
    assert merged.frame is f2 and merged.index is idx
    assert NetlensApp._merge(plain, with_index) is with_index
    assert NetlensApp._merge(None, plain) is plain


@run_async
async def test_ticks_wait_behind_key_presses_but_are_never_lost() -> None:
    """Ticks arriving while keys are pressed are held (the key repaints first), but
    never longer than MAX_TICK_DELAY, and a structure change among them lands."""
    src = fixture_source(live=True, interval=0.05)
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        t = table(app)
        gen = app.ctx.generation
        frame = app.ctx.frame
        src.push_snapshot(make_snapshot((6, 4), drop=("web-1",)))
        # keys pressed without a pause for longer than the longest hold: at least one
        # tick - the structural one first - must get through (a press can take under
        # 25 ms, so the presses are timed, not counted)
        start = time.monotonic()
        while time.monotonic() - start < MAX_TICK_DELAY * 2:
            await pilot.press("j", "k")
        assert app.ctx.frame is not frame
        await wait_for(pilot, lambda: app.ctx.generation > gen)
        await wait_for(pilot, lambda: any("(gone)" in n for n in names(t)) or t.row_count == 9)


@run_async
async def test_theme_given_as_a_toml_file_is_loaded_and_applied(tmp_path: Path) -> None:
    """``--theme FILE.toml``: a file outside every theme directory is read, registered
    and applied, its roles included; a .toml that is not there falls back with a note."""
    path = tmp_path / "ocean.toml"
    path.write_text('[theme]\nname = "ocean"\nprimary = "#0a7bbd"\n[roles]\nbridge = "#00cc99"\n')
    app = make_app(theme=str(path))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.theme == "ocean"
        assert app.ctx.roles["nl-bridge"] == "#00cc99"
        assert app.get_css_variables()["primary"].lower() == "#0a7bbd"
        assert not app._notifications
    missing = make_app(theme=str(tmp_path / "absent.toml"))
    async with missing.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert missing.theme == "netlens-dark"
        texts = " ".join(n.message for n in missing._notifications)
        assert "absent.toml" in texts


def test_view_command_hands_the_theme_file_to_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``netlens view DUMP --theme F.toml`` starts the app with F's theme (the app's
    run is replaced: no terminal here)."""
    import json
    import sys

    from netlens.cli import main
    from netlens.model.serialize import snapshot_to_dict
    from netlens.tui import app as app_module

    seen: list[str] = []

    def fake_run(self: NetlensApp, *args: object, **kwargs: object) -> None:
        seen.append(self.theme)

    monkeypatch.setattr(app_module.NetlensApp, "run", fake_run)
    theme = tmp_path / "ocean.toml"
    theme.write_text('[theme]\nname = "ocean"\nprimary = "#0a7bbd"\n')
    dump = tmp_path / "host.json"
    dump.write_text(json.dumps(snapshot_to_dict(make_snapshot())))
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert main(["view", str(dump), "--theme", str(theme)]) == 0
    assert seen == ["ocean"]


@run_async
async def test_density_cpu_reads_a_dash_when_nothing_measured_it() -> None:
    """CPU needs two samples of a cgroup: until then the gauge says "-", as `stats` does,
    never a 0 % that reads as "idle"; once measured it is a percentage."""
    from textual.widgets import Static

    from .fixture import fixture_source

    class Unmeasured(FixtureSource):
        """The fixture with every container's CPU not measured yet."""

        @staticmethod
        def _blank(frame: StatsFrame) -> StatsFrame:
            usage = {k: dataclasses.replace(u, cpu_percent=None) for k, u in frame.usage.items()}
            return dataclasses.replace(frame, usage=usage)

        def initial_frame(self) -> StatsFrame | None:
            fr = super().initial_frame()
            return self._blank(fr) if fr else None

        def tick(self) -> tuple[Snapshot | None, StatsFrame]:
            snap, fr = super().tick()
            return snap, self._blank(fr)

    base = fixture_source()
    for source, expect in ((Unmeasured(base.open()), "  - of "), (base, "% of ")):
        app = make_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("4")
            await pilot.pause()
            text = str(app.query_one("#density-gauges", Static).render())
            line = next(ln for ln in text.splitlines() if ln.startswith("containers CPU"))
            assert expect in line, line
