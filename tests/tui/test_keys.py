"""The view registry: tabs, key bar, help and bindings follow a remapped key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static

from netlens.tui.registry import KEYS, VIEWS
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.screens.help import HelpScreen
from netlens.tui.screens.main import ViewTab
from netlens.tui.views.base import View

from .conftest import SIZE, loaded, make_app, run_async

pytestmark = pytest.mark.tui

DEFAULT_BAR = (
    "1-5 views  Enter open  / filter  s sort  space pause  +/- interval  b bits/bytes  "
    "? keys  q quit  ^p palette"
)


def bar_text(app: object) -> str:
    bar = app.screen_stack[0].query_one("#keybar", Static)  # type: ignore[attr-defined]
    return str(bar.render())


def shown(app: object) -> list[str | None]:
    return [v.id for v in app.screen_stack[0].query(View) if v.visible]  # type: ignore[attr-defined]


@run_async
async def test_default_key_bar_tabs_and_bindings_come_from_the_registry() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert bar_text(app) == DEFAULT_BAR
        tabs = [str(t.render()).strip() for t in app.query(ViewTab)]
        assert tabs == [f"{v.key} {v.title}" for v in VIEWS]
        ids = {b.id for b in app.screen.BINDINGS if not isinstance(b, tuple)}
        assert {f"view.{v.id}" for v in VIEWS} | {"filter", "clear"} == ids
        assert len({k.id for k in KEYS}) == len(KEYS)  # one declaration per key


@run_async
async def test_a_remapped_view_key_shows_in_bar_tabs_and_help_and_works(
    _isolated_config: Path,
) -> None:
    kdir = _isolated_config / "netlens"
    kdir.mkdir()
    (kdir / "keymap.toml").write_text('[keymap]\nview.vrfs = "v"\nfilter = "ctrl+f"\nunits = "u"\n')
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        bar = bar_text(app)
        assert bar.startswith("1/v/3/4/5 views  Enter open  ^f filter  ")
        assert " u bits/bytes " in bar and " / filter" not in bar
        tabs = {t.view: str(t.render()).strip() for t in app.query(ViewTab)}
        assert tabs["vrfs"] == "v VRFs" and tabs["containers"] == "3 Containers"

        await pilot.press("2")  # no longer a view key
        assert app.main is not None and app.main.active_view == "topology"
        await pilot.press("v")
        assert app.main.active_view == "vrfs" and shown(app) == ["view-vrfs"]
        await pilot.press("ctrl+f")
        assert app.screen.query_one("#filter").has_focus
        await pilot.press("escape", "1")
        assert app.main.active_view == "topology"

        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        console = Console(width=200, file=io.StringIO(), record=True)
        console.print(help_screen._table())
        rows = console.export_text().splitlines()
        vrfs_row = next(r for r in rows if r.rstrip().endswith(" view.vrfs"))
        assert vrfs_row.split()[0] == "v"
        filter_row = next(r for r in rows if r.rstrip().endswith(" filter"))
        assert filter_row.split()[0] == "^f"
        # the remapped view key also works over the help and over a detail
        await pilot.press("v")
        assert app.screen is app.main and app.main.active_view == "vrfs"
        await pilot.press("3", "enter")
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("v")
        assert app.screen is app.main and app.main.active_view == "vrfs"
