"""Dashboard test helpers: an isolated config dir and an app on the fixture source."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from netlens.tui.app import NetlensApp
from netlens.tui.sources import FixtureSource

from .fixture import fixture_source

REPO = Path(__file__).resolve().parents[2]
SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Never read the developer's own themes or keymap: screenshots must not vary."""
    cfg = tmp_path / "config"
    cfg.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    yield cfg


def make_app(source: FixtureSource | None = None, theme: str | None = None) -> NetlensApp:
    return NetlensApp(source or fixture_source(), theme=theme)


async def loaded(pilot: Pilot[None]) -> None:
    """Wait until the source worker has delivered the first snapshot, the doctor's
    worker its findings on it (badges and the findings view depend on them), and both
    are drawn."""
    app = pilot.app
    assert isinstance(app, NetlensApp)
    for _ in range(250):
        fi = app.ctx.findings
        if app.ctx.index is not None and fi is not None and fi.index is app.ctx.index:
            break
        await pilot.pause(0.02)
    await pilot.pause()


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body with asyncio (no async pytest plugin is installed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


async def select_live_vrf(pilot: Pilot[Any], name: str) -> str:
    """On a live dashboard: wait until discovery shows the namespace called ``name``
    (a busy host can take a while), open the VRFs view and put the cursor on it.
    Returns its id."""
    from netlens.tui.widgets.fast_table import FastTable

    app = pilot.app
    assert isinstance(app, NetlensApp)
    ns_id = None
    for _ in range(750):
        idx = app.ctx.index
        if idx is not None:
            ns_id = next((n.id for n in idx.snapshot.namespaces if name in n.names), None)
            if ns_id is not None:
                break
        await pilot.pause(0.1)
    assert ns_id is not None, "the test's namespace never appeared"
    await pilot.press("2")
    vrfs = app.query_one("#vrf-table", FastTable)
    vrfs.focus()
    vrfs.restore_cursor(ns_id, 0)
    await pilot.pause()
    assert vrfs.cursor_key() == ns_id
    return ns_id
