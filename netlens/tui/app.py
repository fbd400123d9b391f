"""The netlens dashboard app: where the data comes from and where messages go.

The app owns the :class:`Context` and the data: a thread worker owns the
:class:`DataSource` and posts :class:`StatsTick` messages (coalesced) that the app
applies (pause, holding a tick behind a key press) and hands to the
:class:`MainScreen`, which owns the views, the filter and the view keys. The app also
owns what is the same on every screen: the theme, the keymap, quit, help and units.
Widgets are touched from the event loop alone.

Findings: after every new snapshot a second thread worker runs the doctor on it
(:func:`netlens.analysis.doctor.report_for`: live checks on the live host, the
recorded findings of a saved dump) and maps them onto the topology's nodes; it posts
:class:`FindingsReady`, and the app hands the result to the screen unless a newer
snapshot came meanwhile. The doctor can take a second on a large host: the views
never wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.events import Event, Key
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.worker import get_current_worker

from netlens.analysis.capture_session import BackgroundCapture
from netlens.errors import NetlensError, UsageError
from netlens.kernel.inert import terminal
from netlens.tui import capture as tui_capture
from netlens.tui import fmt
from netlens.tui.context import Context
from netlens.tui.findings_index import FindingsIndex
from netlens.tui.gcpolicy import GcPolicy
from netlens.tui.index import ViewIndex
from netlens.tui.keymap import keymap_path, load_keymap
from netlens.tui.link_toggle import LinkControl, LinkToggled, LinkToggler
from netlens.tui.messages import FindingsReady, SourceFailed, SourceOpened, StatsTick
from netlens.tui.registry import VIEWS, active_keys, bindings, help_groups
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.screens.help import HelpScreen
from netlens.tui.screens.main import MainScreen
from netlens.tui.sources import MAX_INTERVAL, MIN_INTERVAL, DataSource
from netlens.tui.themes import DEFAULT_ROLES, DEFAULT_THEME, ThemeError, load_themes, parse_theme
from netlens.tui.views.base import View
from netlens.tui.widgets.topology_view import TopologyView

INTERVALS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
KEY_QUIET = 0.15
"""Seconds after a key press during which a stats tick waits: the key's repaint goes
out first instead of sharing its frame with a repaint of every live cell."""
MAX_TICK_DELAY = 0.5
"""A tick is never held longer than this, so holding a key down cannot freeze rates."""


class NetlensApp(App[None]):
    """``NetlensApp(source, theme=..., keymap_file=...)``; ``run()`` it."""

    TITLE = "netlens"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = bindings("app")

    def __init__(
        self,
        source: DataSource,
        *,
        theme: str | None = None,
        keymap_file: Path | None = None,
        theme_dirs: list[Path] | None = None,
        link_control: LinkControl | None = None,
    ) -> None:
        super().__init__()
        # a dashboard repaints often; tab underline and scroll animations only add work
        self.animation_level = "none"
        self.source = source
        self.ctx = Context(source=source)
        self.fatal: NetlensError | None = None
        self._pending: StatsTick | None = None  # ticks that came while paused
        self._deferred: StatsTick | None = None  # a tick waiting for a key repaint
        self._deferred_since = 0.0
        self._last_key = -1.0
        self._main_screen: MainScreen | None = None
        self._doctor_busy = False  # a doctor run is in progress (one at a time)
        self._doctor_next: ViewIndex | None = None  # the snapshot to check after it
        self._notes: list[tuple[str, str]] = []  # (title, text) shown once mounted
        self._keymap_file = keymap_file or keymap_path()
        self.gc_policy = GcPolicy()
        self._capture: BackgroundCapture | None = None  # the `w` capture, while it runs
        self._capture_timer: Timer | None = None
        # the link key (x): the CLI passes the runtime's link verbs in; None: no cables
        self.links = LinkToggler(self, self.ctx, link_control)
        themes = load_themes(theme_dirs)
        for t in themes.themes:
            self.register_theme(t)
        self._notes += [("Theme file ignored", e) for e in themes.errors]
        self.theme = self._pick_theme(theme)
        keymap, problems = load_keymap(self._keymap_file)
        self._notes += [("Keymap", p) for p in problems]
        if keymap:
            self.set_keymap(keymap)

    @property
    def paused(self) -> bool:
        return self.ctx.paused

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
        main = self.main
        if main is not None:
            main.theme_changed()
            main.update_status()

    # -- composition ----------------------------------------------------------------------
    def get_default_screen(self) -> Screen[None]:
        self._main_screen = MainScreen(self.ctx, id="_default")
        return self._main_screen

    @property
    def main(self) -> MainScreen | None:
        """The screen holding the views, while it is there to be drawn on."""
        main = self._main_screen
        return main if main is not None and main.live else None

    def on_mount(self) -> None:
        self.ctx.roles = {k: v for k, v in self.theme_variables.items() if k.startswith("nl-")}
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        for title, text in self._notes:
            # theme and keymap notes quote file contents and paths: never markup
            self.notify(
                terminal(text), title=terminal(title), severity="warning", timeout=8, markup=False
            )
        self._run_source()

    def on_unmount(self) -> None:
        if self._capture is not None:
            self._capture.stop()  # the file is completed even when the app quits
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
        self.post_message(SourceOpened(ViewIndex.build(snap), first))
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
            self.post_message(StatsTick(frame, ViewIndex.build(new) if new else None))

    def _want_doctor(self, index: ViewIndex) -> None:
        """Run the doctor on ``index``, or right after the run in progress: one run at
        a time, and only on the newest snapshot (a host whose structure changes every
        second would otherwise stack a thread per change, each entering namespaces)."""
        if self._doctor_busy:
            self._doctor_next = index
            return
        self._doctor_busy = True
        self._run_doctor(index)

    @work(thread=True, group="doctor", name="doctor")
    def _run_doctor(self, index: ViewIndex) -> None:
        """The doctor on ``index``'s snapshot, off the event loop; only posts a message.
        A failure becomes a report with no findings that says why (the findings view
        shows it) rather than a silent empty view."""
        from netlens.analysis.doctor import report_for
        from netlens.analysis.findings import Report
        from netlens.model.findings import Skipped

        src = self.source
        source = src.label[5:] if src.label.startswith("file ") else src.label
        try:
            report = report_for(index.snapshot, getattr(src, "reads_host", False), source)
            found = FindingsIndex.build(index, report)
        except Exception as err:  # a bug or a kernel surprise: say so, do not crash
            report = Report((), (Skipped("doctor", f"failed: {err!r}"),), source)
            found = FindingsIndex.build(index, report)
        if not get_current_worker().is_cancelled:
            self.post_message(FindingsReady(found))

    def on_findings_ready(self, msg: FindingsReady) -> None:
        self._doctor_busy = False
        nxt, self._doctor_next = self._doctor_next, None
        if nxt is not None and self.screen_stack:
            self._want_doctor(nxt)
        if not self.screen_stack or msg.findings.index is not self.ctx.index:
            return  # shutting down, or stale: the newer snapshot's doctor is queued
        self.ctx.findings = msg.findings
        self.ctx.findings_seq += 1
        main = self.main
        if main is not None:
            main.findings_changed()

    def on_source_opened(self, msg: SourceOpened) -> None:
        if not self.screen_stack:
            return
        self.ctx.set_index(msg.index)
        self._want_doctor(msg.index)
        self.ctx.frame = msg.frame
        main = self.main
        if main is not None:
            main.structure_changed()
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
        if self.ctx.paused:
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
        if self.ctx.paused:
            self._pending = self._merge(self._pending, pending)
            return
        self._apply(pending)

    def _apply(self, msg: StatsTick) -> None:
        full = False
        if msg.index is not None:
            self.ctx.set_index(msg.index)
            self._want_doctor(msg.index)
            full = True
            self._update_status()
        self.ctx.frame = msg.frame
        if self.ctx.age_ghosts():
            full = True
        self._refresh_view(full=full)
        if msg.index is not None:  # a detail under a modal or another detail too
            for stacked in self.screen_stack:
                if isinstance(stacked, DetailScreen):
                    stacked.structure_changed()
        screen = self.screen
        if isinstance(screen, DetailScreen):
            screen.refresh_frame()
        gcp = self.gc_policy
        self.call_after_refresh(gcp.structure_changed if msg.index is not None else gcp.settle)

    def _refresh_view(self, full: bool) -> None:
        main = self.main
        if main is not None:
            main.refresh_views(full)

    def _update_status(self) -> None:
        main = self.main
        if main is not None:
            main.update_status()

    def on_view_open(self, msg: View.Open) -> None:
        if self.ctx.index is None:
            return
        self.push_screen(DetailScreen(self.ctx, msg.node, msg.kind))

    # -- actions --------------------------------------------------------------------------
    def action_show_view(self, name: str) -> None:
        """Show a view from any screen (palette, a view key on a detail or the help):
        the screens stacked over the main one close first."""
        main = self.main
        if main is None:
            return
        while self.screen is not main and len(self.screen_stack) > 1:
            self.pop_screen()
        main.show_view(name)

    def action_capture(self) -> None:
        """``w``: capture the selected node (an interface, or every interface of a
        container or VRF) to a file in a background thread; ``w`` again stops it."""
        cap = self._capture
        if cap is not None:
            cap.request_stop()  # the tick below reports once the file is complete
            return
        idx = self.ctx.index
        if idx is None or self.ctx.source is None or not self.ctx.source.live:
            self.notify("capture needs the live host, not a saved dump", severity="warning")
            return
        key = tui_capture.selected_node(self, self.screen, idx.snapshot)
        if key is None:
            self.notify("select an interface, a container or a VRF first", severity="warning")
            return
        try:
            self._capture = tui_capture.start(idx.snapshot, key)
        except UsageError as err:
            self.notify(terminal(str(err)), severity="warning", markup=False)
            return
        self._capture_timer = self.set_interval(0.5, self._capture_tick, name="capture")
        self._capture_tick()

    def action_trace(self) -> None:
        """``t``: trace from the selected node (netlens.tui.screens.trace); the path
        is highlighted on the topology."""
        from netlens.tui.screens.trace import start_trace

        start_trace(self, self.ctx, self._trace_path)

    def action_link_toggle(self) -> None:
        """``x``: pull the selected lab cable out (asks first) or plug it back in
        (netlens.tui.link_toggle); the runtime call runs in a thread worker."""
        self.links.key_pressed(active_keys(self, "link.toggle", "x"))

    def on_link_toggled(self, msg: LinkToggled) -> None:
        self.links.done(msg)

    def _trace_path(self, nodes: frozenset[str]) -> None:
        main = self.main
        if main is not None:
            main.query_one(TopologyView).set_path(nodes)

    def _capture_tick(self) -> None:
        """Show the live count; once the capture thread has ended, say where it went."""
        cap = self._capture
        if cap is None:
            return
        if cap.running:
            self.ctx.capturing = tui_capture.status(cap)
        else:
            self._capture = None
            self.ctx.capturing = ""
            if self._capture_timer is not None:
                self._capture_timer.stop()
                self._capture_timer = None
            failed = cap.error is not None and cap.result is None
            self.notify(
                tui_capture.summary(cap),
                title="Capture",
                severity="error" if failed else "information",
                timeout=10,
                markup=False,
            )
        self._update_status()

    def action_pause(self) -> None:
        self.ctx.paused = not self.ctx.paused
        if not self.ctx.paused and self._pending is not None:
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
        main = self.main
        if main is not None:
            main.units_changed()
        if isinstance(self.screen, DetailScreen):
            self.screen.refresh_frame()
        self._update_status()

    def action_help(self) -> None:
        from netlens.tui.screens.trace import help_bindings

        groups = help_groups(DetailScreen.OWN_BINDINGS, help_bindings())
        self.push_screen(HelpScreen(groups, str(self._keymap_file)))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for spec in VIEWS:
            yield SystemCommand(
                f"View: {spec.title}",
                f"Show the {spec.title} view",
                lambda v=spec.id: self.action_show_view(v),
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
