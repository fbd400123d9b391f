"""The link key's flow on the fixture host: the question, the worker, what is said.

The kernel side is tests/tui/test_link_key_live.py (a real lab); here the app runs
on the fixture with a :class:`LinkControl` that records its calls, so the flow
can be driven through every answer, refusal and failure: one key answers the
question, a refused selection never reaches the control, the control's errors
(a refusal, a bug) become one notification and the dashboard keeps running.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from netlens.errors import NetlensError
from netlens.tui.app import NetlensApp
from netlens.tui.link_choice import LinkChoice
from netlens.tui.link_toggle import ConfirmLink
from netlens.tui.sources import FixtureSource
from netlens.tui.widgets.fast_table import FastTable

from .conftest import SIZE, loaded, run_async
from .fixture import make_snapshot

pytestmark = pytest.mark.tui


class Recorder:
    """A LinkControl that records calls and answers with ``answer`` (or raises it)."""

    def __init__(self, answer: str | Exception = "done") -> None:
        self.calls: list[tuple[str, bool]] = []
        self.answer = answer

    def set_link(self, target: str, up: bool) -> str:
        self.calls.append((target, up))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _said(app: NetlensApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def _select(pilot: Pilot[None], engine: str) -> str:
    """Put the containers table's cursor on the first container of ``engine``."""
    app = pilot.app
    assert isinstance(app, NetlensApp)
    await pilot.press("3")
    idx = app.ctx.index
    assert idx is not None
    c = next(c for c in idx.snapshot.containers if c.engine == engine)
    table = app.query_one("#containers-table", FastTable)
    table.focus()
    table.restore_cursor(c.id, 0)
    await pilot.pause()
    assert table.cursor_key() == c.id
    return c.name


async def _wait_calls(pilot: Pilot[None], rec: Recorder, n: int) -> None:
    for _ in range(200):
        if len(rec.calls) >= n and not pilot.app.links.busy:  # type: ignore[attr-defined]
            return
        await pilot.pause(0.02)
    raise AssertionError(f"the control was called {rec.calls}")


@pytest.mark.parametrize(("key", "yes"), [("x", True), ("y", True), ("n", False), ("q", False)])
@run_async
async def test_one_key_answers_the_question(key: str, yes: bool) -> None:
    app = NetlensApp(FixtureSource(make_snapshot()))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        got: list[bool | None] = []
        app.push_screen(
            ConfirmLink(LinkChoice("c:eth0", "c:eth0", "host:v0", True), ["x"]), got.append
        )
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert got == [yes]
        assert not isinstance(app.screen, ConfirmLink)
        assert app.is_running  # q answered the question, it did not quit
        assert _said(app) == []  # the link key itself did not fire again


@run_async
async def test_a_saved_dump_has_no_cables() -> None:
    rec = Recorder()
    app = NetlensApp(FixtureSource(make_snapshot(), live=False), link_control=rec)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await _select(pilot, "netlens")
        await pilot.press("x")
        await pilot.pause()
        assert any("live host" in s for s in _said(app))
        assert rec.calls == [] and not isinstance(app.screen, ConfirmLink)


@run_async
async def test_pull_asks_then_runs_in_a_worker_and_says_the_result() -> None:
    rec = Recorder("lab:a:eth0 and host:v0: down")
    app = NetlensApp(FixtureSource(make_snapshot(), live=True), link_control=rec)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        name = await _select(pilot, "netlens")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmLink)
        assert rec.calls == []
        await pilot.press("x")
        await _wait_calls(pilot, rec, 1)
        assert rec.calls == [(f"{name}:eth0", False)]
        await pilot.pause()
        assert "lab:a:eth0 and host:v0: down" in _said(app)


@run_async
async def test_other_engines_never_reach_the_control() -> None:
    rec = Recorder()
    app = NetlensApp(FixtureSource(make_snapshot(), live=True), link_control=rec)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await _select(pilot, "docker")
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmLink)
        assert any("docker container" in s and "left alone" in s for s in _said(app))
        assert rec.calls == []


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (NetlensError("lab:a:eth0: container c is not running"), "is not running"),
        (RuntimeError("kernel surprise"), "failed: RuntimeError('kernel surprise')"),
    ],
)
@run_async
async def test_a_failure_is_one_notification_and_the_app_lives_on(
    error: Exception, said: str
) -> None:
    rec = Recorder(error)
    app = NetlensApp(FixtureSource(make_snapshot(), live=True), link_control=rec)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await _select(pilot, "netlens")
        await pilot.press("x", "y")
        await _wait_calls(pilot, rec, 1)
        await pilot.pause()
        assert any(said in s for s in _said(app)), _said(app)
        assert app.is_running and app.links.busy is None
        await pilot.press("x")  # and the key works again
        assert isinstance(app.screen, ConfirmLink)


@run_async
async def test_a_second_press_before_the_next_snapshot_plugs_back() -> None:
    """The fixture's snapshot never shows the pull (no new sample comes): the key
    must remember what it did rather than ask to pull the same cable again."""
    rec = Recorder("pulled")
    app = NetlensApp(FixtureSource(make_snapshot(), live=True), link_control=rec)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        name = await _select(pilot, "netlens")
        await pilot.press("x", "x")
        await _wait_calls(pilot, rec, 1)
        await pilot.press("x")  # no question: plugged back
        assert not isinstance(app.screen, ConfirmLink)
        await _wait_calls(pilot, rec, 2)
        await pilot.press("x")  # and the next press pulls again, asking first
        assert isinstance(app.screen, ConfirmLink)
        assert rec.calls == [(f"{name}:eth0", False), (f"{name}:eth0", True)]
