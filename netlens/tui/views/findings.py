"""View 5: what ``netlens doctor`` finds on the host, worst first.

One row per finding (severity, check, what is wrong, the objects); Enter shows the
evidence and the fixing command under the table. The rows come from
``Context.findings``, which the app's doctor worker fills after each new snapshot
(:mod:`netlens.tui.app`): this view only formats, so it never runs a check itself.
Severities are coloured by the theme roles ``finding-error``, ``finding-warning`` and
``finding-info``, and carry a glyph so they read without colour too.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Label, Static

from netlens.kernel.inert import terminal
from netlens.model.findings import Finding, Severity
from netlens.tui.context import Context
from netlens.tui.findings_index import MARK, FindingsIndex
from netlens.tui.views.base import View
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import Cell

COLUMNS = (
    ("severity", "Severity", "9"),
    ("check", "Check"),
    ("what", "What"),
    ("objects", "Objects"),
)
MAX_OBJECTS = 3
"""Object names shown in a row; the rest are counted (a bridge can have 1000 ports)."""


def row_key(n: int, f: Finding) -> str:
    """A row's key: stable across reports for the same finding, so the cursor stays
    on it when the doctor runs again after a structure change."""
    return f"{f.check}|{f.title}|{n}" if n else f"{f.check}|{f.title}"


def objects_text(f: Finding) -> str:
    names = [o.name for o in f.objects]
    more = f" +{len(names) - MAX_OBJECTS}" if len(names) > MAX_OBJECTS else ""
    return ", ".join(names[:MAX_OBJECTS]) + more


def matches(f: Finding, needle: str) -> bool:
    """The filter box: a check name, a word of the title, an object's name or id."""
    n = needle.lower()
    return (
        not n
        or n in f.check.lower()
        or n in f.title.lower()
        or any(n in o.name.lower() or n in o.id.lower() for o in f.objects)
    )


def summary(fi: FindingsIndex | None) -> str:
    """The line above the table: counts by severity, where they come from, and the
    checks that did not run (a clean bill must say what it did not look at)."""
    if fi is None:
        return "running the doctor…"
    counts = fi.counts()
    parts = [f"{MARK[s]} {counts[s]} {s.value}" for s in Severity]
    line = " · ".join(parts) + (f" · from {fi.source}" if fi.source else "")
    if fi.skipped:
        line += f" · {len(fi.skipped)} check(s) not run"
    return line


class FindingsView(View):
    def __init__(self, ctx: Context, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self._by_key: dict[str, Finding] = {}
        self._shown: str | None = None  # the row whose evidence is on show

    def compose(self) -> ComposeResult:
        yield Static("", id="findings-summary")
        yield Label("Findings (netlens doctor) - Enter: evidence and fix", classes="section-title")
        yield FastTable(COLUMNS, id="findings-table")
        yield Static("", id="findings-detail")

    def focus_main(self) -> None:
        self.query_one("#findings-table", FastTable).focus()

    def _rows(self) -> dict[str, list[Cell]]:
        fi, ctx = self.ctx.findings, self.ctx
        self._by_key = {}
        if fi is None:
            return {}
        rows: dict[str, list[Cell]] = {}
        seen: dict[str, int] = {}
        for f in fi.findings:
            base = row_key(0, f)
            n = seen[base] = seen.get(base, -1) + 1
            key = row_key(n, f)
            self._by_key[key] = f
            if not matches(f, ctx.needle):
                continue
            role = ctx.style(f"finding-{f.severity.value}")
            rows[key] = [
                Cell(f"{MARK[f.severity]} {f.severity.value}", f.severity.rank, f"bold {role}"),
                Cell(f.check),
                Cell(f.title),
                Cell(objects_text(f), len(f.objects)),
            ]
        return rows

    def refresh_index(self) -> None:
        first = self.refiltered()
        self.query_one("#findings-summary", Static).update(
            Text(terminal(summary(self.ctx.findings)))
        )
        table = self.query_one("#findings-table", FastTable)
        table.sync(self._rows())
        if first:
            table.action_cursor_to(0)
        self._show(self._shown if self._shown in self._by_key else None)

    def _show(self, key: str | None) -> None:
        """Evidence, fix and objects of one finding under the table; with none picked,
        the checks that did not run."""
        self._shown = key
        box = self.query_one("#findings-detail", Static)
        f = self._by_key.get(key) if key is not None else None
        fi = self.ctx.findings
        text = Text()
        if f is not None:
            role = self.ctx.style(f"finding-{f.severity.value}")
            text.append(f"{MARK[f.severity]} {terminal(f.title)}\n", style=f"bold {role}")
            text.append("objects: ", style="bold")
            text.append(", ".join(terminal(f"{o.name} ({o.id})") for o in f.objects) + "\n")
            for line in f.evidence:
                text.append("  • " + terminal(line) + "\n")
            text.append("fix: ", style="bold")
            text.append(terminal(f.fix) if f.fix else "depends on intent (no single command)")
        elif fi is not None and fi.skipped:
            text.append("not checked:\n", style="bold")
            text.append("\n".join("  " + terminal(s) for s in fi.skipped))
        elif fi is not None and not fi.findings:
            text.append("no findings")
        box.update(text)

    def on_fast_table_row_selected(self, event: FastTable.RowSelected) -> None:
        event.stop()
        self._show(event.key)
