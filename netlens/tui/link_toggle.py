"""The dashboard's link key (``x``): pull the selected lab cable out, or plug it back in.

Thin on purpose. Which cable is :mod:`netlens.tui.link_choice` (headless, read
from the snapshot); the kernel work is the runtime's ``netlens link down|up``,
which the dashboard cannot import (import-linter: the inspector reaches the
runtime only through the CLI). The CLI hands the app a :class:`LinkControl`
(``netlens.commands.link_control``) and the app hands it here; with none (a
saved dump, a fixture) the key says so and does nothing.

Flow: the key resolves the selection (a refusal is a warning notification);
pulling a cable asks first (:class:`ConfirmLink`, one key: ``y`` or the link key
again); the runtime call runs in a thread worker (it enters namespaces and takes
the runtime's state lock: never on the event loop) and comes back as
:class:`LinkToggled`; the app shows the runtime's line or its one-line error,
and asks the source for a fresh snapshot so every view shows the new state.
Until that snapshot shows it, the key remembers what it did to the cable: a
second press right after a pull plugs it back instead of asking to pull it again.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.events import Key
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from netlens.errors import NetlensError, UsageError
from netlens.kernel.inert import terminal
from netlens.model.types import Snapshot
from netlens.tui import capture as tui_capture
from netlens.tui.context import Context
from netlens.tui.link_choice import LinkChoice, choose
from netlens.tui.screens.detail import DetailScreen


class LinkControl(Protocol):
    """What the CLI gives the dashboard to change a cable (blocking; a worker calls it)."""

    def set_link(self, target: str, up: bool) -> str:
        """Bring both ends of ``target``'s cable (``CONTAINER:IF``) up or down; returns
        the line to show. Raises :class:`NetlensError` with one line when refused."""
        ...


class LinkToggled(Message):
    """The runtime answered: ``line`` on success, else ``error`` (one line)."""

    def __init__(self, choice: LinkChoice, line: str | None, error: str | None) -> None:
        super().__init__()
        self.choice = choice
        self.line = line
        self.error = error


class ConfirmLink(ModalScreen[bool]):
    """``Pull the cable X ⇄ Y?``: one key answers. ``y`` or the link key again pulls
    it; any other key leaves it (a stray key never leaves the question hanging)."""

    DEFAULT_CSS = """
    ConfirmLink { align: center middle; }
    #link-confirm { width: 72; height: auto; border: round $warning; padding: 0 1;
                    background: $surface; }
    """

    def __init__(self, choice: LinkChoice, again: list[str]) -> None:
        super().__init__()
        self.choice = choice
        self.again = {"y", *again}  # the link key's current keys: pressing it twice pulls

    def compose(self) -> ComposeResult:
        with Vertical(id="link-confirm"):
            yield Static(f"Pull the cable {self.choice.describe()}?", markup=False)
            yield Static(
                "Both ends go down, as with netlens link down (the routes through it are"
                " kept and come back when it is plugged in again).",
                markup=False,
            )
            yield Static("y: pull it    any other key: leave it", markup=False)

    def on_key(self, event: Key) -> None:
        event.stop()
        event.prevent_default()
        self.dismiss(event.key in self.again)


def selected_key(app: App[None], screen: Screen[object], snap: Snapshot) -> str | None:
    """The node the key acts on: a detail's interface (its own, or the Interfaces
    tab's cursor row), else whatever ``w`` and ``t`` would take."""
    if isinstance(screen, DetailScreen):
        itf = screen.selected_interface()
        if itf is not None:
            return itf.ref.key
    return tui_capture.selected_node(app, screen, snap)


class LinkToggler:
    """The app's link key: one runtime call at a time, answered by :class:`LinkToggled`."""

    def __init__(self, app: App[None], ctx: Context, control: LinkControl | None) -> None:
        self.app = app
        self.ctx = ctx
        self.control = control
        self.busy: LinkChoice | None = None
        # target -> (pulled now, ctx.generation when the runtime said so): what this
        # key did, until a snapshot shows it (the next sample, or at most two later)
        self._done: dict[str, tuple[bool, int]] = {}

    def _as_done(self, choice: LinkChoice) -> LinkChoice:
        """``choice`` corrected by what this key just did: a second press right after
        a pull must plug the cable back, not ask to pull it again, although the
        snapshot taken before the pull still shows it up."""
        known = self._done.get(choice.target)
        if known is None:
            return choice
        pulled, generation = known
        if choice.down != pulled or self.ctx.generation - generation >= 2:
            del self._done[choice.target]  # the snapshot caught up (or someone moved it)
            return choice
        return dataclasses.replace(choice, down=not pulled)

    def key_pressed(self, again: list[str]) -> None:
        """The link key: resolve the selection, ask before pulling, then run."""
        app = self.app
        idx = self.ctx.index
        source = self.ctx.source
        if idx is None or source is None or not source.live or self.control is None:
            app.notify("pulling a cable needs the live host, not a saved dump", severity="warning")
            return
        if self.busy is not None:
            app.notify(
                f"link {self.busy.verb} {self.busy.label} is still running",
                severity="warning",
                markup=False,
            )
            return
        try:
            choice = self._as_done(choose(idx, selected_key(app, app.screen, idx.snapshot)))
        except UsageError as err:
            app.notify(terminal(str(err)), title="Link", severity="warning", markup=False)
            return
        if not choice.down:
            self._run(choice)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(choice)

        app.push_screen(ConfirmLink(choice, again), answered)

    def _run(self, choice: LinkChoice) -> None:
        control = self.control
        assert control is not None
        self.busy = choice
        app = self.app

        def work() -> None:
            """Off the event loop; only posts :class:`LinkToggled`. The runtime's
            refusals are one line; anything else is said as a failure, never raised
            into the app (a traceback would take the dashboard down)."""
            line: str | None = None
            error: str | None = None
            try:
                line = control.set_link(choice.target, up=not choice.down)
            except NetlensError as err:
                error = str(err)
            except Exception as err:  # a bug or a kernel surprise: say so, do not crash
                error = f"link {choice.verb} {choice.label} failed: {err!r}"
            app.post_message(LinkToggled(choice, line, error))

        app.run_worker(work, thread=True, group="link", name=f"link {choice.verb}")

    def done(self, msg: LinkToggled) -> None:
        """Say what happened; ask the source for a fresh snapshot (the views follow)."""
        self.busy = None
        app = self.app
        if msg.error is not None:
            app.notify(terminal(msg.error), title="Link", severity="error", markup=False)
        else:
            self._done[msg.choice.target] = (msg.choice.down, self.ctx.generation)
            app.notify(terminal(msg.line or ""), title="Link", markup=False)
        rescan = getattr(self.ctx.source, "rescan", None)
        if callable(rescan):
            rescan()
