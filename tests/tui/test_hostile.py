"""The dashboard draws hostile names as inert text: no MarkupError, no emoji, no escape
sequence reaching the terminal, in every view and in every tab of every detail.

The names come from tests/fixtures/model/hostile.py (a Mininet host ``mininet:0[/]``,
a bridge ``ESC[31m[red]br``, an alias with a newline and OSC 52, a MAC whose ``:ab:``
Rich drew as an emoji). What is checked is what the app really paints: its screenshot,
which carries the very segments a terminal would receive.
"""

from __future__ import annotations

import dataclasses
import html
import unicodedata

import pytest
from fixtures.model import hostile as H
from fixtures.model.sample import HOST, RT, WEB, sample_snapshot
from textual.pilot import Pilot
from textual.widgets import Input, Label, TabbedContent, TabPane

from netlens.kernel.inert import terminal
from netlens.tui.app import NetlensApp
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import FixtureSource
from netlens.tui.views.base import View

from .conftest import SIZE, loaded, make_app, run_async

pytestmark = pytest.mark.tui

EMOJI = ("\U0001f18e", "\U0001f604")  # what ":ab:" and ":smile:" become


def assert_inert(app: NetlensApp, where: str) -> str:
    """The painted screen holds no control or format character and no emoji; its
    text is returned."""
    svg = app.export_screenshot()
    bad = sorted(
        f"{ord(c):#x}"
        for c in set(svg)
        if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")
    )
    assert not bad, f"{where}: control characters {bad} painted"
    assert not any(e in svg for e in EMOJI), f"{where}: an emoji code was replaced"
    return html.unescape(svg).replace("\xa0", " ")


async def open_detail(pilot: Pilot[None], node: str, kind: str) -> DetailScreen:
    app = pilot.app
    app.post_message(View.Open(node, kind))
    for _ in range(50):
        await pilot.pause(0.02)
        if isinstance(app.screen, DetailScreen):
            break
    screen = app.screen
    assert isinstance(screen, DetailScreen), f"{node}: no detail opened"
    await pilot.pause()
    return screen


async def every_tab(pilot: Pilot[None], screen: DetailScreen, where: str) -> str:
    """Show each tab of a detail in turn; all painted text, joined."""
    app = pilot.app
    assert isinstance(app, NetlensApp)
    seen = [assert_inert(app, where)]
    tabs = screen.query_one(TabbedContent)
    for pane in screen.query(TabPane):
        tabs.active = pane.id or ""
        await pilot.pause()
        seen.append(assert_inert(app, f"{where} tab {pane.id}"))
    return "\n".join(seen)


def title(screen: DetailScreen) -> str:
    return str(screen.query_one("#detail-title", Label).render())


@run_async
async def test_every_view_draws_hostile_names_inert() -> None:
    app = make_app(FixtureSource(H.hostile_snapshot()))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for key in "1234":
            await pilot.press(key)
            await pilot.pause()
            text = assert_inert(app, f"view {key}")
            if key == "1":
                assert terminal(H.BRIDGE) in text and "mininet:0[/]" in text


DETAILS = [
    (WEB, "vrf", H.CONTAINER),  # the Mininet host's detail: a MarkupError before
    (H.LXC_ID, "container", H.LONG),
    (f"{HOST}/4", "bridge", H.BRIDGE),
    (f"{HOST}/10", "vrf", H.PORT),
    (f"{WEB}/2", "vrf", "eth0"),
    (RT, "vrf", H.VRF),
    (HOST, "vrf", "host"),
]


@pytest.mark.parametrize(("node", "kind", "name"), DETAILS, ids=range(len(DETAILS)))
@run_async
async def test_every_tab_of_a_detail_draws_hostile_names_inert(
    node: str, kind: str, name: str
) -> None:
    app = make_app(FixtureSource(H.hostile_snapshot()))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = await open_detail(pilot, node, kind)
        assert terminal(name)[:40] in title(screen), title(screen)
        shown = await every_tab(pilot, screen, f"detail of {node!r}")
        if node == f"{WEB}/2":
            assert H.MAC in shown  # as it is, not 9e🆎27
            assert terminal(H.ALIAS) in shown  # one line, its escapes visible
        if node == WEB:
            assert terminal(H.COMMAND)[:30] in shown
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, DetailScreen)


@run_async
async def test_filter_text_and_warnings_are_not_markup() -> None:
    """The status line quotes the filter, the banner a discovery warning: both data."""
    app = make_app(FixtureSource(H.hostile_snapshot()))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("slash")
        box = app.query_one("#filter", Input)
        box.value = "[/]:ab:"
        await pilot.pause()
        text = assert_inert(app, "filter [/]")
        assert "filter '[/]:ab:'" in text
        assert "\\x1b[31mevil\\x1b[0m" in text  # the warning in the banner, escaped
        assert app.is_running


@run_async
async def test_a_mac_is_never_drawn_as_an_emoji() -> None:
    """Only the MAC is unusual here: ``9e:ab:27`` once showed as ``9e🆎27``."""
    snap = sample_snapshot()
    web = next(ns for ns in snap.namespaces if ns.id == WEB)
    itfs = tuple(dataclasses.replace(i, mac=H.MAC) if i.ifindex == 2 else i for i in web.interfaces)
    web = dataclasses.replace(web, interfaces=itfs)
    snap = dataclasses.replace(
        snap, namespaces=tuple(web if ns.id == WEB else ns for ns in snap.namespaces)
    )
    app = make_app(FixtureSource(snap))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for node in (f"{WEB}/2", WEB):
            screen = await open_detail(pilot, node, "vrf")
            shown = await every_tab(pilot, screen, f"detail of {node}")
            assert H.MAC in shown
            await pilot.press("escape")
            await pilot.pause()
