"""The netlens dashboard app: wiring between a data source and four views.

The app owns the :class:`Context`; a thread worker owns the :class:`DataSource` and
posts :class:`StatsTick` messages (coalesced) that the app applies to the visible view
only. Widgets are touched from the event loop alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.events import Click, Event, Key
from textual.message import Message
from textual.reactive import Reactive
from textual.screen import Screen
from textual.theme import Theme
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from netlens.errors import NetlensError
from netlens.kernel.inert import terminal
from netlens.tui import fmt
from netlens.tui.context import Context
from netlens.tui.gcpolicy import GcPolicy
from netlens.tui.index import SnapshotIndex
from netlens.tui.keymap import keymap_path, load_keymap
from netlens.tui.messages import SourceFailed, SourceOpened, StatsTick
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.screens.help import HelpScreen
from netlens.tui.sources import MAX_INTERVAL, MIN_INTERVAL, DataSource
from netlens.tui.themes import DEFAULT_ROLES, DEFAULT_THEME, ThemeError, load_themes, parse_theme
from netlens.tui.views.base import View
from netlens.tui.views.containers import ContainersView
from netlens.tui.views.density import DensityView
from netlens.tui.views.topology import TopologyPane
from netlens.tui.views.vrfs import VrfsView
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.topology_view import TopologyView

VIEWS = (
    ("topology", "1 Topology"),
    ("vrfs", "2 VRFs"),
    ("containers", "3 Containers"),
    ("density", "4 Density"),
)
KEY_BAR = (
    "[b]1-4[/] views  [b]Enter[/] open  [b]/[/] filter  [b]s[/] sort  [b]space[/] pause  "
    "[b]+/-[/] interval  [b]b[/] bits/bytes  [b]?[/] keys  [b]q[/] quit  [b]^p[/] palette"
)
INTERVALS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
PRESYNC_DELAY = 0.05
"""Seconds between syncing hidden views after a structure change (spreads the work)."""
KEY_QUIET = 0.15
"""Seconds after a key press during which a stats tick waits: the key's repaint goes
out first instead of sharing its frame with a repaint of every live cell."""
MAX_TICK_DELAY = 0.5
"""A tick is never held longer than this, so holding a key down cannot freeze rates."""


class ViewTab(Static):
    """One view name in the one-line header; clicking it shows that view."""

    class Picked(Message):
        def __init__(self, view: str) -> None:
            super().__init__()
            self.view = view

    def __init__(self, label: str, view: str, active: bool) -> None:
        super().__init__(f" {label} ", classes="-active" if active else "")
        self.view = view

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(self.Picked(self.view))


class MainScreen(Screen[None]):
    """The screen holding the views. Textual repaints a whole screen whenever the
    focus moves; here only the two widgets involved repaint (focus styles are
    re-applied to them, and the tables redraw their cursor row), so moving the focus
    with a view switch no longer paints the screen a second time."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)


class NetlensApp(App[None]):
    """``NetlensApp(source, theme=..., keymap_file=...)``; ``run()`` it."""

    TITLE = "netlens"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("space", "pause", "Pause", id="pause"),
        Binding("plus,equals_sign", "interval(1)", "Slower", show=False, id="interval.up"),
        Binding("minus", "interval(-1)", "Faster", show=False, id="interval.down"),
        Binding("b", "units", "Bits/bytes", id="units"),
        Binding("1", "show_view('topology')", "Topology", show=False, id="view.topology"),
        Binding("2", "show_view('vrfs')", "VRFs", show=False, id="view.vrfs"),
        Binding("3", "show_view('containers')", "Containers", show=False, id="view.containers"),
        Binding("4", "show_view('density')", "Density", show=False, id="view.density"),
        Binding("escape", "clear", "Clear filter", show=False, id="clear"),
    ]

    def __init__(
        self,
        source: DataSource,
        *,
        theme: str | None = None,
        keymap_file: Path | None = None,
        theme_dirs: list[Path] | None = None,
    ) -> None:
        super().__init__()
        # a dashboard repaints often; tab underline and scroll animations only add work
        self.animation_level = "none"
        self.source = source
        self.ctx = Context(source=source)
        self.paused = False
        self.fatal: NetlensError | None = None
        self._pending: StatsTick | None = None  # ticks that came while paused
        self._deferred: StatsTick | None = None  # a tick waiting for a key repaint
        self._deferred_since = 0.0
        self._last_key = -1.0
        self._synced: dict[str | None, tuple[object, ...]] = {}  # view id -> data token
        self._presync_pending = False
        self._presynced_gen = -1
        self.active_view = "topology"  # id (without "view-") of the view on show
        self._views_box: Widget | None = None  # the container of the views, once found
        self._view_of: dict[str, View] = {}  # widget id -> view
        self._tabs: dict[str, ViewTab] = {}  # view id -> its tab in the header
        self._notes: list[tuple[str, str]] = []  # (title, text) shown once mounted
        self._keymap_file = keymap_file or keymap_path()
        self.gc_policy = GcPolicy()
        themes = load_themes(theme_dirs)
        for t in themes.themes:
            self.register_theme(t)
        self._notes += [("Theme file ignored", e) for e in themes.errors]
        self.theme = self._pick_theme(theme)
        keymap, problems = load_keymap(self._keymap_file)
        self._notes += [("Keymap", p) for p in problems]
        if keymap:
            self.set_keymap(keymap)

    # -- themes ---------------------------------------------------------------------------
    def _pick_theme(self, wanted: str | None) -> str:
        if not wanted:
            return DEFAULT_THEME
        if wanted in self.available_themes:
            return wanted
        path = Path(wanted).expanduser()
        if path.suffix == ".toml" or path.exists():
            try:
                t = parse_theme(path)
            except ThemeError as err:
                self._notes.append(("Theme file ignored", f"{err}; using {DEFAULT_THEME}"))
                return DEFAULT_THEME
            self.register_theme(t)
            return t.name
        self._notes.append(
            (
                "Unknown theme",
                f"{wanted!r}; using {DEFAULT_THEME}. Known: "
                + ", ".join(n for n in self.available_themes if "netlens" in n),
            )
        )
        return DEFAULT_THEME

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Role variables for Textual's own themes, so every theme can colour roles."""
        return {f"nl-{k}": v for k, v in DEFAULT_ROLES.items()}

    def _on_theme_changed(self, theme: Theme) -> None:
        self.ctx.roles = {k: v for k, v in self.theme_variables.items() if k.startswith("nl-")}
        main = self._main()
        for topo in main.query(TopologyView) if main is not None else ():
            topo.theme_changed()
        for ft in main.query(FastTable) if main is not None else ():
            ft.theme_changed()
        self._refresh_view(full=True)
        self._update_status()

    # -- composition ----------------------------------------------------------------------
    def get_default_screen(self) -> Screen[None]:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield Static("", id="status")
        with Horizontal(id="view-tabs"):
            for vid, label in VIEWS:
                yield ViewTab(label, vid, active=vid == "topology")
        # Every view stays laid out at full size on its own layer; inactive ones are only
        # invisible. TabbedContent hid them with `display: none`, so a view that came back
        # was laid out from size 0 and the screen was arranged 2-3 times per switch.
        with Container(id="views"):
            yield TopologyPane(self.ctx, id="view-topology")
            hidden: list[View] = [
                VrfsView(self.ctx, id="view-vrfs"),
                ContainersView(self.ctx, id="view-containers"),
                DensityView(self.ctx, id="view-density"),
            ]
            for view in hidden:
                view.styles.visibility = "hidden"
                yield view
        yield Input(
            placeholder="filter: name, IP, engine, image, interface (Enter to keep)", id="filter"
        )
        # A static key bar, not Footer: Footer recomposes ~40 widgets on every focus
        # change, which made switching views with 1000 rows cost half a second.
        yield Static(KEY_BAR, id="keybar")

    def on_mount(self) -> None:
        self.ctx.roles = {k: v for k, v in self.theme_variables.items() if k.startswith("nl-")}
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        for title, text in self._notes:
            # theme and keymap notes quote file contents and paths: never markup
            self.notify(
                terminal(text), title=terminal(title), severity="warning", timeout=8, markup=False
            )
        self.query_one("#banner", Static).display = False
        self.query_one("#filter", Input).display = False
        self._update_status()
        self._run_source()

    def on_unmount(self) -> None:
        self.source.close()
        self.gc_policy.release()

    # -- the worker -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="source", name="data source")
    def _run_source(self) -> None:
        """Open the source and tick it until cancelled; only posts messages."""
        worker = get_current_worker()
        src = self.source
        try:
            snap = src.open()
            first = src.initial_frame()
        except NetlensError as err:
            self.post_message(SourceFailed(err.title, str(err), fatal=True))
            self.fatal = err
            return
        except Exception as err:  # a bug or a kernel surprise: report, do not crash
            self.post_message(SourceFailed("Cannot read the host", repr(err), fatal=True))
            return
        self.post_message(SourceOpened(SnapshotIndex.build(snap), first))
        failures = 0
        while src.live and not worker.is_cancelled:
            try:
                new, frame = src.tick()
            except Exception as err:
                failures += 1
                self.post_message(SourceFailed("Sampling failed", str(err), fatal=False))
                time.sleep(min(5.0, src.interval * failures))
                continue
            failures = 0
            if worker.is_cancelled:
                break
            self.post_message(StatsTick(frame, SnapshotIndex.build(new) if new else None))

    def on_source_opened(self, msg: SourceOpened) -> None:
        if not self.screen_stack:
            return
        self.ctx.set_index(msg.index)
        self.ctx.frame = msg.frame
        self._update_banner()
        self._update_status()
        self._refresh_view(full=True)
        self._focus_view()
        self.call_after_refresh(self.gc_policy.structure_changed)

    def on_source_failed(self, msg: SourceFailed) -> None:
        # errors quote names from the host: inert text, never markup
        if msg.fatal:
            self.exit(message=fmt.plain(f"{msg.title}: {msg.text}"))
            return
        self.notify(
            terminal(msg.text), title=terminal(msg.title), severity="error", timeout=5, markup=False
        )

    async def on_event(self, event: Event) -> None:
        if isinstance(event, Key):
            self._last_key = time.monotonic()
        await super().on_event(event)

    @staticmethod
    def _merge(older: StatsTick | None, newer: StatsTick) -> StatsTick:
        """One tick standing for both: the newer frame, and a structure change if
        either carried one (a snapshot is never lost)."""
        if older is None or newer.index is not None or older.index is None:
            return newer
        return StatsTick(newer.frame, older.index)

    def on_stats_tick(self, msg: StatsTick) -> None:
        if not self.screen_stack:  # shutting down: late ticks have nowhere to go
            return
        if self.paused:
            self._pending = self._merge(self._pending, msg)
            return
        now = time.monotonic()
        if self._deferred is None:
            self._deferred_since = now
        quiet = self._last_key + KEY_QUIET - now
        if quiet > 0 and now - self._deferred_since < MAX_TICK_DELAY:
            # a key was just pressed: let its repaint go out alone, apply this after
            if self._deferred is None:
                self.set_timer(quiet, self._apply_deferred)
            self._deferred = self._merge(self._deferred, msg)
            return
        msg = self._merge(self._deferred, msg)
        self._deferred = None
        self._apply(msg)

    def _apply_deferred(self) -> None:
        pending, self._deferred = self._deferred, None
        if pending is None or not self.screen_stack:
            return
        now = time.monotonic()
        quiet = self._last_key + KEY_QUIET - now
        if quiet > 0 and now - self._deferred_since < MAX_TICK_DELAY:
            self._deferred = pending  # more keys came: wait again (bounded)
            self.set_timer(
                min(quiet, self._deferred_since + MAX_TICK_DELAY - now), self._apply_deferred
            )
            return
        if self.paused:
            self._pending = self._merge(self._pending, pending)
            return
        self._apply(pending)

    def _apply(self, msg: StatsTick) -> None:
        full = False
        if msg.index is not None:
            self.ctx.set_index(msg.index)
            full = True
            self._update_status()
        self.ctx.frame = msg.frame
        if self.ctx.age_ghosts():
            full = True
        self._refresh_view(full=full)
        screen = self.screen
        if isinstance(screen, DetailScreen):
            screen.refresh_frame()
        gcp = self.gc_policy
        self.call_after_refresh(gcp.structure_changed if msg.index is not None else gcp.settle)

    # -- views ----------------------------------------------------------------------------
    def _main(self) -> Screen[object] | None:
        """The screen holding the views (``app.query`` would search the top screen)."""
        if not self._running:
            # shutting down: widgets are removed leaves first, so a late tick could find
            # a view whose table is already gone
            return None
        box = self._views_box
        if box is not None and box.is_attached:
            # remembered: searching the DOM costs ~1 ms and a view switch asked 5 times
            return box.screen
        self._views_box = None
        for screen in self.screen_stack:
            found = screen.query("#views")
            if found:
                self._views_box = found.first()
                self._view_of = {v.id or "": v for v in screen.query(View)}
                self._tabs = {t.view: t for t in screen.query(ViewTab)}
                return screen
        return None

    def _active_view(self) -> View | None:
        if self._main() is None:
            return None
        return self._view_of.get(f"view-{self.active_view}")

    def _focus_view(self) -> None:
        view = self._active_view()
        if view is not None and self.screen is view.screen:
            view.focus_main()

    def _token(self) -> tuple[object, ...]:
        return (self.ctx.generation, self.ctx.needle, self.theme, tuple(self.ctx.ghosts))

    def _refresh_view(self, full: bool) -> None:
        if self.ctx.index is None:
            return
        view = self._active_view()
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
        main = self._main()
        active = self._active_view()
        token = self._token()
        if main is not None and self.ctx.index is not None:
            for view in main.query(View):
                if view is not active and self._synced.get(view.id) != token:
                    self._synced[view.id] = token
                    view.refresh_index()
                    self.set_timer(PRESYNC_DELAY, self._presync_next)  # the next one later
                    return
        self._presync_pending = False

    def on_view_tab_picked(self, msg: ViewTab.Picked) -> None:
        self.action_show_view(msg.view)

    def action_show_view(self, name: str) -> None:
        main = self._main()
        if main is not None:
            if self.screen is not main:
                self.pop_screen()
            if self.active_view == name:
                return
            # Switch, sync and focus in one go, so the screen is composed once per switch.
            with self.batch_update():
                # Inline visibility rather than a class: a class change re-applies the
                # stylesheet to every widget of the view (~10 ms per switch).
                old = self._active_view()
                if old is not None:
                    old.styles.visibility = "hidden"
                old_name, self.active_view = self.active_view, name
                for tab in (self._tabs.get(old_name), self._tabs.get(name)):
                    if tab is not None:  # only the two that change get restyled
                        tab.set_class(tab.view == name, "-active")
                view = self._active_view()
                if view is not None:
                    view.styles.visibility = "visible"
                if view is not None and self._synced.get(view.id) == self._token():
                    # pre-synced: hidden views got no ticks, so only live cells repaint
                    view.refresh_frame()
                else:
                    self._refresh_view(full=True)
                self._focus_view()

    def on_view_open(self, msg: View.Open) -> None:
        if self.ctx.index is None:
            return
        self.push_screen(DetailScreen(self.ctx, msg.node, msg.kind))

    # -- status ---------------------------------------------------------------------------
    def _update_banner(self) -> None:
        main = self._main()
        if main is None:
            return
        banner = main.query_one("#banner", Static)
        idx = self.ctx.index
        parts = []
        if idx is not None and not idx.snapshot.root:
            parts.append(
                "Not root: showing only what this user can read (no other users' "
                "namespaces, routes or NAT). Run with sudo to see the whole host."
            )
        if not self.source.live and self.source.label.startswith("file"):
            when = (
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(idx.snapshot.taken_at))
                if idx
                else "?"
            )
            parts.append(
                f"Saved dump ({self.source.label[5:]}, taken {when}): read-only, no live rates."
            )
        if idx is not None and idx.snapshot.warnings:
            parts.append(
                f"{len(idx.snapshot.warnings)} discovery warning(s): " + idx.snapshot.warnings[0]
            )
        banner.update(fmt.plain(" ".join(parts)))  # warnings and paths: never markup
        banner.display = bool(parts)

    def _update_status(self) -> None:
        idx = self.ctx.index
        src = self.source
        bits = "bit/s" if self.ctx.bits else "B/s"
        parts = [f" {src.label}"]
        if src.live:
            parts.append(f"every {src.interval:g}s")
        parts += [bits, self.theme]
        if idx is not None:
            c = idx.counts
            parts.append(
                f"{idx.snapshot.server.hostname}: {c['containers']} containers, "
                f"{c['namespaces']} VRFs, {c['bridges']} bridges"
            )
        if self.ctx.needle:
            parts.append(f"filter '{self.ctx.needle}'")
        if self.paused:
            parts.append("⏸ PAUSED (space resumes)")
        main = self._main()
        if main is not None:
            # one line of fixed size: a content change needs no layout of the screen
            # hostname, file name and filter text are data: never markup
            main.query_one("#status", Static).update(fmt.plain(" · ".join(parts)), layout=False)

    # -- actions --------------------------------------------------------------------------
    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._pending is not None:
            pending, self._pending = self._pending, None
            self._apply(pending)
        self._update_status()

    def action_interval(self, step: int) -> None:
        cur = self.source.interval
        if step > 0:
            nxt = next((i for i in INTERVALS if i > cur + 1e-9), INTERVALS[-1])
        else:
            nxt = next((i for i in reversed(INTERVALS) if i < cur - 1e-9), INTERVALS[0])
        self.source.set_interval(max(MIN_INTERVAL, min(MAX_INTERVAL, nxt)))
        self._update_status()

    def action_units(self) -> None:
        self.ctx.bits = not self.ctx.bits
        main = self._main()
        if main is not None:
            main.query_one(TopologyView).set_bits(self.ctx.bits)
        self._refresh_view(full=False)  # live cells read ctx.bits when painted
        if isinstance(self.screen, DetailScreen):
            self.screen.refresh_frame()
        self._update_status()

    def action_filter(self) -> None:
        main = self._main()
        if main is None or self.screen is not main:
            return
        box = main.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.ctx.needle = event.value.strip()
        self._refresh_view(full=True)
        self._update_status()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.input.display = bool(event.value.strip())
        self._focus_view()

    def action_clear(self) -> None:
        main = self._main()
        if main is None or self.screen is not main:
            return
        box = main.query_one("#filter", Input)
        if box.has_focus and box.value:
            box.value = ""
        box.display = False
        topo = main.query_one(TopologyView)
        if topo.state.focus is not None:
            topo.action_focus_node()
        if self.ctx.needle:
            self.ctx.needle = ""
            box.value = ""
            self._refresh_view(full=True)
        self._update_status()
        self._focus_view()

    def action_help(self) -> None:
        groups: dict[str, Iterable[BindingType]] = {
            "Global": self.BINDINGS,
            "Topology": TopologyView.BINDINGS,
            "Tables": FastTable.BINDINGS,
            "Detail": DetailScreen.BINDINGS,
        }
        self.push_screen(HelpScreen(groups, str(self._keymap_file)))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for vid, label in VIEWS:
            yield SystemCommand(
                f"View: {label[2:]}",
                f"Show the {label[2:]} view",
                lambda v=vid: self.action_show_view(v),
            )
        for name in self.available_themes:
            if name.startswith("netlens"):
                yield SystemCommand(
                    f"Theme: {name}",
                    "Switch the colour theme",
                    lambda n=name: setattr(self, "theme", n),
                )
        yield SystemCommand("Toggle bits/bytes", "Show rates in bit/s or B/s", self.action_units)
        yield SystemCommand("Pause / resume", "Freeze the display", self.action_pause)
        yield SystemCommand("Keys", "Show every key binding and its id", self.action_help)
