"""The main screen: the tabs, the views, the filter, the status lines and the key bar.

The screen owns what the user sees and switches between; the app owns where the data
comes from (the worker, ticks, pause) and tells the screen when the structure or the
frame changed (:meth:`MainScreen.refresh_views`). Views, tabs, bindings and the key bar
are all built from :mod:`netlens.tui.registry`, with the keys bound now.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Horizontal
from textual.events import Click
from textual.message import Message
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static

from netlens.tui import fmt
from netlens.tui.context import Context
from netlens.tui.registry import VIEWS, bindings, first_key, key_bar, view_key
from netlens.tui.views.base import View
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.topology_view import TopologyView

PRESYNC_DELAY = 0.05
"""Seconds between syncing hidden views after a structure change (spreads the work)."""


class ViewTab(Static):
    """One view name in the one-line header; clicking it shows that view."""

    class Picked(Message):
        def __init__(self, view: str) -> None:
            super().__init__()
            self.view = view

    def __init__(self, label: str, view: str, active: bool) -> None:
        super().__init__(f" {label} ", classes="-active" if active else "", markup=False)
        self.view = view

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(self.Picked(self.view))


class MainScreen(Screen[None]):
    """The screen holding the views. Textual repaints a whole screen whenever the
    focus moves; here only the two widgets involved repaint (focus styles are
    re-applied to them, and the tables redraw their cursor row), so moving the focus
    with a view switch no longer paints the screen a second time."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("main")

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    def __init__(self, ctx: Context, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ctx = ctx
        self.active_view = VIEWS[0].id  # id (without "view-") of the view on show
        self._synced: dict[str | None, tuple[object, ...]] = {}  # view id -> data token
        self._presync_pending = False
        self._presynced_gen = -1
        self._views: dict[str, View] = {}  # view id -> view
        self._tabs: dict[str, ViewTab] = {}  # view id -> its tab in the header
        self._mounted = False  # the app mounts before its default screen

    # -- composition ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield Static("", id="status")
        with Horizontal(id="view-tabs"):
            for spec in VIEWS:
                tab = ViewTab(f"{view_key(self.app, spec)} {spec.title}", spec.id, active=False)
                tab.set_class(spec.id == self.active_view, "-active")
                self._tabs[spec.id] = tab
                yield tab
        # Every view stays laid out at full size on its own layer; inactive ones are only
        # invisible. TabbedContent hid them with `display: none`, so a view that came back
        # was laid out from size 0 and the screen was arranged 2-3 times per switch.
        with Container(id="views"):
            for spec in VIEWS:
                view = spec.make(self.ctx, f"view-{spec.id}")
                if spec.id != self.active_view:
                    view.styles.visibility = "hidden"
                self._views[spec.id] = view
                yield view
        yield Input(
            placeholder="filter: name, IP, engine, image, interface (Enter to keep)", id="filter"
        )
        # A static key bar, not Footer: Footer recomposes ~40 widgets on every focus
        # change, which made switching views with 1000 rows cost half a second.
        yield Static(key_bar(self.app), id="keybar")

    def on_resize(self) -> None:
        """The key bar fits the terminal: what does not fit is left out, not cut."""
        bar = self.query_one("#keybar", Static)
        bar.update(key_bar(self.app, max(0, self.size.width - 2)))
        self.update_status()

    def on_mount(self) -> None:
        self._mounted = True
        self.query_one("#banner", Static).display = False
        self.query_one("#filter", Input).display = False
        self.structure_changed()

    def structure_changed(self) -> None:
        """A new snapshot (the first may come before this screen is mounted)."""
        self.update_banner()
        self.update_status()
        self.refresh_views(full=True)
        if self.ctx.index is not None:
            self.focus_view()

    @property
    def live(self) -> bool:
        """False while the app shuts down: widgets are removed leaves first, so a late
        tick could find a view whose table is already gone."""
        return self._mounted and self.app.is_running and self.is_attached

    def view(self, view_id: str | None = None) -> View | None:
        """A view by id, the one on show by default."""
        return self._views.get(view_id or self.active_view) if self.live else None

    def focus_view(self) -> None:
        view = self.view()
        if view is not None and self.app.screen is self:
            view.focus_main()

    # -- data -----------------------------------------------------------------------------
    def _token(self) -> tuple[object, ...]:
        return (
            self.ctx.generation,
            self.ctx.needle,
            self.app.theme,
            tuple(self.ctx.ghosts),
            self.ctx.findings_seq,
        )

    def refresh_views(self, full: bool) -> None:
        """The structure (``full``) or only the frame changed: repaint the view on show,
        and after a structure change sync the hidden ones soon."""
        if self.ctx.index is None:
            return
        view = self.view()
        if view is None:
            return
        token = self._token()
        if full and self._synced.get(view.id) != token:
            # only when something the view shows changed: re-syncing 1000 rows on every
            # tab switch would make switching views sluggish
            self._synced[view.id] = token
            view.refresh_index()
        else:
            view.refresh_frame()
        if full and self.ctx.generation != self._presynced_gen:
            # structure changes only: a filter being typed re-syncs just the visible view
            self._presynced_gen = self.ctx.generation
            self._presync_hidden()

    def _presync_hidden(self) -> None:
        """Sync the hidden views soon, one per timer tick, so that the first visit
        of a view after a structure change only paints (syncing 1000 rows into a table
        costs 30-60 ms, which used to land on the key press that showed the view)."""
        if self._presync_pending:
            return
        self._presync_pending = True
        self.set_timer(PRESYNC_DELAY, self._presync_next)

    def _presync_next(self) -> None:
        active = self.view()
        token = self._token()
        if active is not None and self.ctx.index is not None:
            for view in self._views.values():
                if view is not active and self._synced.get(view.id) != token:
                    self._synced[view.id] = token
                    view.refresh_index()
                    self.set_timer(PRESYNC_DELAY, self._presync_next)  # the next one later
                    return
        self._presync_pending = False

    def findings_changed(self) -> None:
        """The doctor's worker reported on the current snapshot: badges repaint on the
        topology (no re-layout), and the view on show re-syncs if it lists them."""
        if not self.live:
            return
        fi = self.ctx.findings
        self.query_one(TopologyView).set_badges(dict(fi.badges) if fi is not None else {})
        self.refresh_views(full=True)  # hidden views re-sync when shown (token changed)

    def theme_changed(self) -> None:
        for topo in self.query(TopologyView):
            topo.theme_changed()
        for ft in self.query(FastTable):
            ft.theme_changed()
        self.refresh_views(full=True)

    def units_changed(self) -> None:
        self.query_one(TopologyView).set_bits(self.ctx.bits)
        self.refresh_views(full=False)  # live cells read ctx.bits when painted

    # -- view switching -------------------------------------------------------------------
    def on_view_tab_picked(self, msg: ViewTab.Picked) -> None:
        self.show_view(msg.view)

    def action_show_view(self, name: str) -> None:
        self.show_view(name)

    def show_view(self, name: str) -> None:
        if not self.live or self.active_view == name or name not in self._views:
            return
        # Switch, sync and focus in one go, so the screen is composed once per switch.
        with self.app.batch_update():
            # Inline visibility rather than a class: a class change re-applies the
            # stylesheet to every widget of the view (~10 ms per switch).
            old = self.view()
            if old is not None:
                old.styles.visibility = "hidden"
            old_name, self.active_view = self.active_view, name
            for tab in (self._tabs.get(old_name), self._tabs.get(name)):
                if tab is not None:  # only the two that change get restyled
                    tab.set_class(tab.view == name, "-active")
            view = self.view()
            if view is not None:
                view.styles.visibility = "visible"
            if view is not None and self._synced.get(view.id) == self._token():
                # pre-synced: hidden views got no ticks, so only live cells repaint
                view.refresh_frame()
            else:
                self.refresh_views(full=True)
            self.focus_view()

    # -- filter ---------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.ctx.needle = event.value.strip()
        self.refresh_views(full=True)
        self.update_status()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.input.display = bool(event.value.strip())
        self.focus_view()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus and box.value:
            box.value = ""
        box.display = False
        topo = self.query_one(TopologyView)
        if topo.state.focus is not None:
            topo.action_focus_node()
        if self.ctx.needle:
            self.ctx.needle = ""
            box.value = ""
            self.refresh_views(full=True)
        self.update_status()
        self.focus_view()

    # -- status ---------------------------------------------------------------------------
    def update_banner(self) -> None:
        if not self.live:
            return
        banner = self.query_one("#banner", Static)
        idx = self.ctx.index
        src = self.ctx.source
        parts = []
        if idx is not None and not idx.snapshot.root:
            parts.append(
                "Not root: showing only what this user can read (no other users' "
                "namespaces, routes or NAT). Run with sudo to see the whole host."
            )
        if src is not None and not src.live and src.label.startswith("file"):
            when = (
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(idx.snapshot.taken_at))
                if idx
                else "?"
            )
            parts.append(f"Saved dump ({src.label[5:]}, taken {when}): read-only, no live rates.")
        if idx is not None and idx.snapshot.warnings:
            parts.append(
                f"{len(idx.snapshot.warnings)} discovery warning(s): " + idx.snapshot.warnings[0]
            )
        banner.update(fmt.plain(" ".join(parts)))  # warnings and paths: never markup
        banner.display = bool(parts)

    def update_status(self) -> None:
        if not self.live:
            return
        idx = self.ctx.index
        src = self.ctx.source
        bits = "bit/s" if self.ctx.bits else "B/s"
        parts = []
        if src is not None:
            parts.append(f" {src.label}")
            if src.live:
                parts.append(f"every {src.interval:g}s")
        # on a narrow terminal the theme's name, then the units, make room for the rest
        optional = [len(parts) + 1, len(parts)]  # their indices, the first to go first
        parts += [bits, self.app.theme]
        if idx is not None:
            c = idx.counts
            parts.append(
                f"server {idx.snapshot.server.hostname}: {c['containers']} containers, "
                f"{c['namespaces']} VRFs, {c['bridges']} bridges"
            )
        if self.ctx.needle:
            parts.append(f"filter '{self.ctx.needle}'")
        if self.ctx.capturing:
            parts.append(self.ctx.capturing)
        if self.ctx.paused:
            parts.append(f"⏸ PAUSED ({first_key(self.app, 'pause', 'space')} resumes)")
        for i in optional:  # the later index first: the earlier one stays valid
            if len(" · ".join(parts)) <= self.size.width:
                break
            del parts[i]
        # one line of fixed size: a content change needs no layout of the screen
        # hostname, file name and filter text are data: never markup
        self.query_one("#status", Static).update(fmt.plain(" · ".join(parts)), layout=False)
