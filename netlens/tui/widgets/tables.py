"""DataTable helpers: vim keys, sortable cells and keyed, in-place row syncing.

Tables are never rebuilt on a tick: rows are added, removed and updated cell by cell
by their key, and the cursor is put back on the row key it was on, so rows appearing
and vanishing never make the cursor jump.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.measure import Measurement
from rich.text import Text, TextType
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import (
    CellDoesNotExist,
    CellKey,
    ColumnKey,
    RowDoesNotExist,
    RowKey,
)

from netlens.kernel.inert import terminal

CURSOR_MARK = "▶"
"""Drawn beside the cursor row (and the topology's selection): a terminal without
colour, or a screen reader, shows where the cursor is; a background is not enough."""


def next_sort_key(keys: list[str], current: str | None) -> str:
    """The column `s` sorts by next: both table widgets cycle the same way."""
    if current in keys:
        return keys[(keys.index(current) + 1) % len(keys)]
    return keys[0]


class Cell:
    """Display text plus the raw value to sort on; a Rich Text only when painted.

    With 1000 rows a tick rewrites thousands of cells, but only the ~40 visible rows
    are painted, so the Text is built lazily (``__rich__``) rather than per update.
    The text is made inert here (:func:`netlens.kernel.inert.terminal`), once for every
    table: the fast table paints it as raw segments, where an escape sequence in
    a name would reach the terminal and a zero-width one would break the columns.
    """

    __slots__ = ("justify", "sort", "style", "text")

    def __init__(self, text: str, sort: Any = None, style: str = "", right: bool = False):
        text = terminal(text)
        self.text = text
        self.style = style
        self.justify: JustifyMethod = "right" if right else "left"
        self.sort = text.lower() if sort is None else sort

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.text, style=self.style, justify=self.justify, no_wrap=True)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        # DataTable measures every cell of every new row; make that a len()
        n = cell_len(self.text)
        return Measurement(n, n)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Cell({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Cell):
            return self.text == other.text and self.style == other.style
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class Painter(Protocol):
    """Computes a live cell from the latest frame (a view's plain helper object)."""

    def paint(self, row: Any, col: str) -> Cell: ...

    def sort_value(self, row: Any, col: str) -> float: ...


class LiveCell:
    """A cell whose text is computed from the latest frame when it is painted.

    A stats tick then costs O(visible rows): the table is told its data changed and
    repaints the rows on screen; nothing is written per cell. Two live cells for the
    same row and column compare equal, so a structural sync leaves them alone.
    """

    __slots__ = ("col", "painter", "row")

    def __init__(self, painter: Painter, row: Any, col: str) -> None:
        self.painter = painter
        self.row = row
        self.col = col

    def cell(self) -> Cell:
        """The cell as it should look now."""
        return self.painter.paint(self.row, self.col)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.cell().__rich_console__(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, 1)  # live columns have a fixed width

    @property
    def sort(self) -> float:
        return self.painter.sort_value(self.row, self.col)

    def __str__(self) -> str:
        return self.cell().text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LiveCell) and other.col == self.col and other.row == self.row

    __hash__ = None  # type: ignore[assignment]


class NlTable(DataTable[Any]):
    """A row-cursor table with vim keys and key-stable updates."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
        Binding("s", "cycle_sort", "Sort", id="table.sort"),
        Binding("r", "reverse_sort", "Reverse", show=False, id="table.reverse"),
    ]

    def __init__(self, columns: Sequence[tuple[str, ...]], **kwargs: Any) -> None:
        """``columns``: (key, label) or (key, label, width) - live columns need a fixed
        width, since their text changes after the table measured it."""
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cols = [(c[0], c[1]) for c in columns]
        self.sort_col: str | None = None
        self.sort_reverse = False
        self._marked: str | None = None  # the row key whose label is the cursor mark
        for col in columns:
            width = int(col[2]) if len(col) > 2 else None
            self.add_column(col[1], key=col[0], width=width)

    # -- the cursor mark ------------------------------------------------------------------
    def add_row(
        self,
        *cells: Any,
        height: int | None = 1,
        key: str | None = None,
        label: TextType | None = None,
    ) -> RowKey:
        """Every row gets a one-character label: where :data:`CURSOR_MARK` goes."""
        row_key = super().add_row(*cells, height=height, key=key, label=label or " ")
        self._mark_cursor()
        return row_key

    def _mark_cursor(self) -> None:
        """Put the mark on the row the cursor is on (rows move under it when sorted)."""
        key = self.cursor_key()
        if key == self._marked:
            return
        old = self.rows.get(RowKey(self._marked)) if self._marked is not None else None
        if old is not None:
            old.label = Text(" ")
        new = self.rows.get(RowKey(key)) if key is not None else None
        if new is not None:
            new.label = Text(CURSOR_MARK)
        self._marked = key
        self._update_count += 1
        self.refresh()

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        self._mark_cursor()

    # -- keyed sync -----------------------------------------------------------------------
    def cursor_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            rk = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return rk.value

    def restore_cursor(self, key: str | None, fallback_row: int) -> None:
        if self.row_count == 0:
            return
        row = fallback_row
        if key is not None:
            with contextlib.suppress(RowDoesNotExist):
                row = self.get_row_index(key)
        row = max(0, min(self.row_count - 1, row))
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False, scroll=False)

    def sync(self, rows: Mapping[str, Sequence[Any]], *, partial: bool = False) -> None:
        """Make the table hold exactly ``rows`` (key -> cells), touching only changes.

        ``partial``: only update cells of rows already present (ticks), never add/remove.
        Changed cells are written straight into the table's store and repainted with one
        refresh: ``update_cell`` per cell costs a refresh each, which at 1000 rows x 7
        columns per tick is what made the app sluggish.
        """
        key = self.cursor_key()
        old_row = self.cursor_row
        col_keys = [ColumnKey(k) for k, _ in self._cols]
        data = self._data
        changed_structure = False
        if not partial:
            wanted = set(rows)
            for rk in [rk for rk in data if rk.value not in wanted]:
                self.remove_row(rk)
                changed_structure = True
        changed = False
        for rkey, cells in rows.items():
            current = data.get(RowKey(rkey))
            if current is None:
                if not partial:
                    self.add_row(*cells, key=rkey)
                    changed_structure = True
                continue
            for ck, new in zip(col_keys, cells, strict=False):
                if current.get(ck) != new:
                    current[ck] = new
                    changed = True
        if changed:
            self._update_count += 1
            self.refresh()
        if self.sort_col is not None and (changed or changed_structure):
            self._apply_sort()
        elif not changed_structure:
            return
        self.restore_cursor(key, old_row)
        self._mark_cursor()  # rows came or went under a cursor that did not move

    def update_columns(self, cols: Sequence[str], rows: Mapping[str, Sequence[Any]]) -> None:
        """Write ``cols`` of the rows present (key -> cells in ``cols`` order); one
        repaint for all, none when nothing changed (live counters, every tick)."""
        keys = [ColumnKey(c) for c in cols]
        data = self._data
        changed = False
        for rkey, cells in rows.items():
            current = data.get(RowKey(rkey))
            if current is None:
                continue
            for ck, new in zip(keys, cells, strict=False):
                if current.get(ck) != new:
                    current[ck] = new
                    self._updated_cells.add(CellKey(RowKey(rkey), ck))  # may widen it
                    changed = True
        if not changed:
            return
        self._require_update_dimensions = True
        self._update_count += 1
        self.refresh()
        if self.sort_col in cols:
            key, row = self.cursor_key(), self.cursor_row
            self._apply_sort()
            self.restore_cursor(key, row)

    def touch(self) -> None:
        """Live cells changed (a new frame): repaint visible rows, re-sort if needed."""
        if self.row_count == 0:
            return
        self._update_count += 1
        self.refresh()
        if self.sort_col is not None:
            key = self.cursor_key()
            row = self.cursor_row
            self._apply_sort()
            self.restore_cursor(key, row)

    # -- sorting --------------------------------------------------------------------------
    def _apply_sort(self) -> None:
        if self.sort_col is None or self.row_count == 0:
            return
        self.sort(self.sort_col, key=lambda c: getattr(c, "sort", c), reverse=self.sort_reverse)
        self._mark_cursor()

    def sort_by(self, col: str, reverse: bool | None = None) -> None:
        key = self.cursor_key()
        if reverse is None:
            reverse = (not self.sort_reverse) if col == self.sort_col else False
        self.sort_col, self.sort_reverse = col, reverse
        self._apply_sort()
        self.restore_cursor(key, 0)
        self.refresh()

    def action_cycle_sort(self) -> None:
        self.sort_by(next_sort_key([k for k, _ in self._cols], self.sort_col), reverse=False)

    def action_reverse_sort(self) -> None:
        if self.sort_col is not None:
            self.sort_by(self.sort_col, reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        ck = event.column_key.value
        if ck is not None:
            self.sort_by(ck)

    def row_key_at_cursor(self) -> RowKey | None:
        k = self.cursor_key()
        return RowKey(k) if k is not None else None
