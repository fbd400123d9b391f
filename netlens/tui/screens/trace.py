"""``t`` and ``p``: trace from the selected node, and probe the same path.

``t`` (:func:`start_trace`) turns the node under the cursor into SRC and opens
:class:`TracePicker`, where the user types DST in any form ``netlens trace``
takes (container, VRF, IP, CONTAINER:IFNAME) and optionally a protocol and port.
:class:`TraceScreen` then runs the trace in a thread worker (it enters
namespaces and can take a second on a large host: the event loop never waits)
and shows the hop table and the verdict; ``p`` runs it again with the probe,
which sends real packets, and adds each hop's probe result, the hop where it
died and any disagreement with the static answer. The nodes on the path are
highlighted on the topology until the next trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from netlens.analysis.trace_run import TraceOutcome, TraceRequest
from netlens.errors import NetlensError, UsageError
from netlens.kernel.inert import terminal
from netlens.tui import capture as tui_capture
from netlens.tui import trace_worker
from netlens.tui.context import Context
from netlens.tui.registry import first_key


def start_trace(app: App[None], ctx: Context, on_path: Callable[[frozenset[str]], None]) -> None:
    """``t`` on any screen: SRC is the selected node; says in one line why not when
    there is no live host or no node."""
    idx = ctx.index
    if idx is None or ctx.source is None or not ctx.source.live:
        app.notify("tracing needs the live host, not a saved dump", severity="warning")
        return
    key = tui_capture.selected_node(app, app.screen, idx.snapshot)
    try:
        if key is None:
            raise UsageError("select a VRF, a container or an interface to trace from")
        src, label = trace_worker.source_spec(idx.snapshot, key)
    except UsageError as err:
        app.notify(terminal(str(err)), severity="warning", markup=False)
        return

    def picked(req: TraceRequest | None) -> None:
        if req is not None:
            app.push_screen(TraceScreen(ctx, req, label, on_path))

    app.push_screen(TracePicker(src, label), picked)


# The hop table is Textual's DataTable: its keys, said for this screen.
_TABLE_WORDS = {
    "cursor_up": "Previous hop",
    "cursor_down": "Next hop",
    "cursor_left": "Scroll the hop table left",
    "cursor_right": "Scroll the hop table right",
    "page_up": "Page up (hop table)",
    "page_down": "Page down (hop table)",
}


def help_bindings() -> list[BindingType]:
    """Every key of the trace screens, for the ``?`` screen: the picker's, the
    trace screen's own and the hop table's (read from the classes that bind them,
    so the help follows a change there)."""
    out: list[BindingType] = [
        Binding("enter", "submit", "Trace to the destination typed (picker)"),
        *TracePicker.BINDINGS,
        *TraceScreen.BINDINGS,
    ]
    for b in DataTable.BINDINGS:
        if isinstance(b, Binding) and b.action in _TABLE_WORDS:
            out.append(Binding(b.key, b.action, _TABLE_WORDS[b.action], id=b.id))
    return out


def key_bar(app: App[object]) -> str:
    """The trace screen's key line, from the live keymap (a key remapped in
    keymap.toml is shown as the user set it)."""
    back = first_key(app, "trace.back", "escape")
    probe = first_key(app, "trace.probe", "p")
    return (
        f"{back} back (the path stays highlighted on the topology)  {probe} probe  "
        "←/→ scroll the table  ? all keys"
    )


class TracePicker(ModalScreen[TraceRequest | None]):
    """DST and an optional ``proto port``; Enter traces, Escape cancels. Bad input
    stays in the picker with one line saying what is wrong."""

    DEFAULT_CSS = """
    TracePicker { align: center middle; }
    #trace-picker { width: 70; height: auto; border: round $primary; padding: 0 1;
                    background: $surface; }
    #trace-error { color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel the trace (picker)", id="trace.cancel"),
    ]

    def __init__(self, src: str, label: str) -> None:
        super().__init__()
        self.src = src
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical(id="trace-picker"):
            yield Static(f"trace from {terminal(self.label)} to:", markup=False)
            yield Input(placeholder="container, VRF, IP or CONTAINER:IFNAME", id="trace-dst")
            yield Input(placeholder="optional: tcp 80, udp 53, icmp", id="trace-proto")
            yield Static("", id="trace-error", markup=False)

    @on(Input.Submitted)
    def _submit(self, _event: Input.Submitted) -> None:
        dst = self.query_one("#trace-dst", Input).value
        extra = self.query_one("#trace-proto", Input).value
        try:
            req = trace_worker.parse_request(self.src, dst, extra)
        except UsageError as err:
            self.query_one("#trace-error", Static).update(terminal(str(err)))
            return
        self.dismiss(req)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TraceDone(Message):
    """A trace (or its probe) finished: the outcome, or the one line saying why not."""

    def __init__(self, outcome: TraceOutcome | None, error: str | None, probe: bool) -> None:
        super().__init__()
        self.outcome = outcome
        self.error = error
        self.probe = probe


class TraceScreen(Screen[None]):
    """The hop table and the verdict of one trace; ``p`` probes the same path."""

    DEFAULT_CSS = """
    #trace-hops { height: auto; max-height: 60%; }
    #trace-verdict { text-style: bold; margin-top: 1; }
    #trace-probe { margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back to the topology", id="trace.back"),
        Binding("p", "probe", "Probe: send real packets along the path", id="trace.probe"),
    ]

    def __init__(
        self,
        ctx: Context,
        req: TraceRequest,
        label: str,
        on_path: Callable[[frozenset[str]], None],
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.req = req
        self.label = label
        self.on_path = on_path
        self.outcome: TraceOutcome | None = None
        self.busy = False

    def compose(self) -> ComposeResult:
        proto = self.req.protocol
        port = f" port {self.req.dport}" if self.req.dport is not None else ""
        title = f"trace {self.label} → {self.req.dst}  {proto}{port}"
        with VerticalScroll(id="trace-body"):
            yield Static(terminal(title), id="trace-title", markup=False)
            yield Static("", id="trace-state", markup=False)
            yield DataTable(id="trace-hops", cursor_type="row", zebra_stripes=True)
            yield Static("", id="trace-verdict", markup=False)
            yield Static("", id="trace-details", markup=False)
            yield Static("", id="trace-probe", markup=False)
        yield Static(key_bar(self.app), id="keybar", markup=False)

    def on_mount(self) -> None:
        self._start(self.req)

    def _start(self, req: TraceRequest) -> None:
        self.busy = True
        what = "probing (sending real packets)" if req.probe else "tracing"
        self.query_one("#trace-state", Static).update(f"{what}…")
        self._run(req)

    @work(thread=True, exclusive=True, group="trace", name="trace")
    def _run(self, req: TraceRequest) -> None:
        """The trace off the event loop; only posts :class:`TraceDone`. Errors become
        the one line the command would print (never a traceback on the screen)."""
        outcome: TraceOutcome | None = None
        error: str | None = None
        try:
            outcome = trace_worker.run(req)
        except NetlensError as err:
            error = str(err)
        except Exception as err:  # a bug or a kernel surprise: say so, do not crash
            error = f"trace failed: {err!r}"
        if not get_current_worker().is_cancelled:
            self.post_message(TraceDone(outcome, error, req.probe))

    def on_trace_done(self, msg: TraceDone) -> None:
        self.busy = False
        state = self.query_one("#trace-state", Static)
        if msg.outcome is None:
            state.update(f"{'probe' if msg.probe else 'trace'}: {terminal(msg.error or '?')}")
            return
        state.update("probe done" if msg.probe else "p sends real packets along this path")
        self.outcome = msg.outcome
        self._show(msg.outcome)
        idx = self.ctx.index
        if idx is not None:
            self.on_path(trace_worker.path_nodes(idx.snapshot, msg.outcome.result))

    def _show(self, out: TraceOutcome) -> None:
        res = out.result
        table = self.query_one("#trace-hops", DataTable)
        table.clear(columns=True)
        columns = list(trace_worker.HOP_COLUMNS)
        rows = trace_worker.hop_rows(res)
        if out.probe is not None:
            columns.append("PROBE")
            cells = trace_worker.probe_cells(res, out.probe)
            rows = [(*r, c) for r, c in zip(rows, cells, strict=True)]
        table.add_columns(*columns)
        for row in rows:
            # names come from the host: Text, since DataTable reads a str as markup
            table.add_row(*(Text(c) for c in row))
        self.query_one("#trace-verdict", Static).update(trace_worker.verdict_line(res))
        self.query_one("#trace-details", Static).update("\n".join(trace_worker.detail_lines(res)))
        probe = "\n".join(trace_worker.probe_lines(out.probe)) if out.probe is not None else ""
        self.query_one("#trace-probe", Static).update(probe)
        table.focus()

    def action_probe(self) -> None:
        """``p``: the same trace with the probe (one run at a time)."""
        if self.busy:
            self.notify("a trace is still running", severity="warning")
            return
        self._start(
            TraceRequest(
                self.req.src, self.req.dst, self.req.proto, self.req.dport, self.req.sport,
                probe=True,
            )
        )  # fmt: skip
