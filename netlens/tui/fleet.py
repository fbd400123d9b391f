"""The fleet view: one row per server, kept current; Enter opens that server's dashboard.

It shows the fleet document (``netlens fleet --json``'s) as a table, and the
cross-server VXLAN tunnels under it. It reads the fleet from a
:class:`FleetSource`, plain data behind a two-method protocol, so the dashboard
layer does not depend on the SSH client (netlens.fleet): ``netlens fleet --tui``
(netlens/commands/fleet.py) hands it netlens.fleet.feed.FleetFeed, which keeps
every server streaming on a thread of its own and says when something changed.
The notice becomes a :class:`FleetChanged` message (posted from that thread:
Textual's post_message is thread-safe); the app redraws at most once per
:attr:`FleetApp.REDRAW_GAP` however many servers sampled meanwhile, and only the
cells whose text changed. When the app exits with a server's alias, the command
opens the dashboard on that server's dump (:class:`DumpSource`), then comes back
here with the feed still running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from netlens.errors import NetlensError
from netlens.kernel.inert import terminal
from netlens.model.types import Snapshot
from netlens.stats.units import rate, size
from netlens.tui.sources import FileSource

COLUMNS = ("server", "state", "ctrs", "netns", "rx", "tx", "uplink", "memory", "cpus", "findings")


def _num(v: Any) -> str:
    return "-" if v is None else str(v)


def _bps(bw: dict[str, Any] | None, key: str) -> str:
    v = (bw or {}).get(key)
    return "-" if v is None else rate(float(v))


def server_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """The table cells of one server row (names escaped: whoever names a host or
    a label must not write escape sequences to the engineer's terminal)."""
    mem = row["memory"] or {}
    return (
        terminal(row["alias"]),
        row["state"],
        _num(row["containers"]),
        _num(row["namespaces"]),
        _bps(row["bandwidth"], "containers_rx_bps"),
        _bps(row["bandwidth"], "containers_tx_bps"),
        _bps(row["bandwidth"], "uplink_capacity_bps"),
        f"{size(mem.get('used'))}/{size(mem.get('total'))}" if mem else "-",
        _num((row["cpu"] or {}).get("count")),
        _num((row["findings"] or {}).get("total")),
    )


def footer_text(doc: dict[str, Any]) -> str:
    """The reasons of the servers that are not ok, then the tunnels."""
    lines = [
        f"{terminal(r['alias'])}: {r['state']}: {terminal(r['reason'])}"
        for r in doc["servers"]
        if r["reason"]
    ]
    for link in doc["vxlan_links"]:
        a, b = link["a"], link["b"]
        lines.append(
            f"vxlan {link['vni']}: {terminal(a['server'])}:{terminal(a['interface'])} <-> "
            f"{terminal(b['server'])}:{terminal(b['interface'])}"
            + ("" if link["symmetric"] else " (one way)")
        )
    return "\n".join(lines) or "all servers ok; no tunnels between them"


class DumpSource(FileSource):
    """A server's dump as received over SSH: the dashboard's read-only file mode."""

    def __init__(self, snapshot: Snapshot, alias: str) -> None:
        super().__init__(alias)
        # "file ..." makes the main screen's banner say read-only, when the dump was taken
        self.label = f"file {alias} via netlens fleet"
        self._snap = snapshot


class FleetSource(Protocol):
    """What the fleet view reads: netlens.fleet.feed.FleetFeed, or :class:`StaticFleet`."""

    def subscribe(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` (from any thread) when the fleet changed since the last
        :meth:`current`, and once at once; None stops the calls."""

    def current(self) -> tuple[dict[str, Any], set[str]]:
        """The fleet document, and the aliases whose dump was received."""
        ...

    def snapshot(self, alias: str) -> Snapshot | None:
        """That server's dump, to open its dashboard on (may raise NetlensError)."""
        ...


class StaticFleet:
    """A fleet that does not change: one document and its dumps."""

    def __init__(self, doc: dict[str, Any], dumps: dict[str, Snapshot]) -> None:
        self.doc, self.dumps = doc, dumps

    def subscribe(self, listener: Callable[[], None] | None) -> None:
        if listener is not None:
            listener()

    def current(self) -> tuple[dict[str, Any], set[str]]:
        return self.doc, set(self.dumps)

    def snapshot(self, alias: str) -> Snapshot | None:
        return self.dumps.get(alias)


class FleetChanged(Message):
    """The source has news (posted from the source's thread)."""


class FleetApp(App[str | None]):
    """``FleetApp(source)``; ``run()`` returns the alias to open, or None."""

    TITLE = "netlens fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "open server"),
        Binding("q", "quit_fleet", "quit"),
    ]
    CSS = "#fleet-table { height: 1fr; } #fleet-notes { height: auto; max-height: 12; }"
    REDRAW_GAP = 0.25
    """Seconds between a notice and the redraw it causes: the notices of the servers
    that sample meanwhile fold into that one redraw."""

    def __init__(self, source: FleetSource) -> None:
        super().__init__()
        self.animation_level = "none"
        self.source = source
        self.doc: dict[str, Any] = {"servers": [], "vxlan_links": [], "totals": {}}
        self.drillable: set[str] = set()
        self.chosen: Snapshot | None = None  # the dump of the server run() returns
        self._shown: dict[str, tuple[str, ...]] = {}
        self._redraw_due = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="fleet-notes", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        for name in COLUMNS:
            t.add_column(name, key=name)
        self.redraw()
        t.focus()
        self.source.subscribe(self._notice)

    def on_unmount(self) -> None:
        self.source.subscribe(None)

    def _notice(self) -> None:
        self.post_message(FleetChanged())

    def on_fleet_changed(self, message: FleetChanged) -> None:
        if not self._redraw_due:
            self._redraw_due = True
            self.set_timer(self.REDRAW_GAP, self.redraw)

    def redraw(self) -> None:
        """Read the source and bring the table, the notes and the title up to date."""
        self._redraw_due = False
        self.doc, self.drillable = self.source.current()
        t = self.query_one(DataTable)
        for row in self.doc["servers"]:
            key = row["alias"]
            cells = tuple(server_cells(row))
            old = self._shown.get(key)
            # Text, not str: DataTable reads a str cell as Rich markup ('[/]' raised)
            if old is None:
                t.add_row(*(Text(c) for c in cells), key=key)
            else:
                for name, new, was in zip(COLUMNS, cells, old, strict=True):
                    if new != was:
                        t.update_cell(key, name, Text(new))
            self._shown[key] = cells
        self.query_one("#fleet-notes", Static).update(footer_text(self.doc))
        totals = self.doc["totals"]
        self.sub_title = (
            f"{totals['servers']} servers, {totals['containers']} containers, "
            + ", ".join(f"{n} {s}" for s, n in totals["by_state"].items())
        )

    def action_open(self) -> None:
        t = self.query_one(DataTable)
        if not t.row_count:
            return
        alias = str(t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value)
        try:
            snap = self.source.snapshot(alias) if alias in self.drillable else None
        except NetlensError as err:  # a dump whose facts read but whose whole does not
            self.notify(f"{terminal(alias)}: {terminal(str(err))}", severity="error", markup=False)
            return
        if snap is None:
            self.notify(f"{terminal(alias)}: no dump received", severity="warning", markup=False)
            return
        self.chosen = snap
        self.exit(alias)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_quit_fleet(self) -> None:
        self.exit(None)
