"""The fleet view: one row per server, Enter opens that server's full dashboard.

It shows the fleet document (``netlens fleet --json``'s) as a table, and the
cross-server VXLAN tunnels under it. It takes the document and the dumps as
plain data, so the dashboard layer does not depend on the SSH client
(netlens.fleet): ``netlens fleet --tui`` (netlens/commands/fleet.py) queries the
fleet, runs this app, and when it exits with a server's alias, opens the
dashboard on that server's dump (:class:`DumpSource`), then comes back here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

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


class FleetApp(App[str | None]):
    """``FleetApp(doc, drillable)``; ``run()`` returns the alias to open, or None."""

    TITLE = "netlens fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "open server"),
        Binding("q", "quit_fleet", "quit"),
    ]
    CSS = "#fleet-table { height: 1fr; } #fleet-notes { height: auto; max-height: 12; }"

    def __init__(self, doc: dict[str, Any], drillable: set[str]) -> None:
        super().__init__()
        self.animation_level = "none"
        self.doc = doc
        self.drillable = drillable

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield Static(footer_text(self.doc), id="fleet-notes", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_columns(*COLUMNS)
        for row in self.doc["servers"]:
            # Text, not str: DataTable reads a str cell as Rich markup ('[/]' raised)
            t.add_row(*(Text(c) for c in server_cells(row)), key=row["alias"])
        totals = self.doc["totals"]
        self.sub_title = (
            f"{totals['servers']} servers, {totals['containers']} containers, "
            + ", ".join(f"{n} {s}" for s, n in totals["by_state"].items())
        )
        t.focus()

    def action_open(self) -> None:
        t = self.query_one(DataTable)
        if not t.row_count:
            return
        alias = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        if alias in self.drillable:
            self.exit(alias)
        else:
            self.notify(
                f"{terminal(str(alias))}: no dump received", severity="warning", markup=False
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_quit_fleet(self) -> None:
        self.exit(None)
