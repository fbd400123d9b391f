"""A keyed, sortable table painted with the line API, for views with 1000+ rows.

Textual's DataTable renders each visible cell through Rich's full layout engine, and a
stats tick invalidates every visible cell, which at 1000 containers and 1 Hz left
little time for key presses. This table paints a row as one strip of pre-formatted,
fixed-width segments: a tick costs O(visible rows), a key press repaints two rows.
Rows are keyed; ``sync`` adds, removes and updates rows by key and puts the cursor
back on the row key it was on, so rows appearing and vanishing never move it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip

from netlens.tui.widgets.styled import StyledScrollView
from netlens.tui.widgets.tables import CURSOR_MARK, Cell, LiveCell, next_sort_key

AnyCell = Cell | LiveCell


@dataclass
class Column:
    key: str
    label: str
    width: int  # content width as painted (after fitting to the widget's width)
    fixed: bool
    natural: int = 0  # content width before fitting; 0 = size to content


FitStep = str | tuple[str, int]
"""One step of fitting a table to a narrow terminal: a column key to hide, or (key,
least width) to narrow a column to no less than that."""


def _cell(c: AnyCell) -> Cell:
    return c.cell() if isinstance(c, LiveCell) else c


class FastTable(StyledScrollView, can_focus=True):
    """Row-cursor table; ``columns`` are (key, label) or (key, label, width)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "cursor(1)", "Down", show=False, id="table.down"),
        Binding("up,k", "cursor(-1)", "Up", show=False, id="table.up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.pagedown"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.pageup"),
        Binding("home,g", "cursor_to(0)", "Top", show=False, id="table.top"),
        Binding("end,G", "cursor_to(-1)", "Bottom", show=False, id="table.bottom"),
        Binding("enter", "select", "Open", id="table.open"),
        Binding("s", "cycle_sort", "Sort", id="table.sort"),
        Binding("r", "reverse_sort", "Reverse", show=False, id="table.reverse"),
    ]

    class RowSelected(Message):
        """Enter or double click on a row."""

        def __init__(self, table: FastTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> FastTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[tuple[str, ...]],
        *,
        sort_col: str | None = None,
        sort_reverse: bool = False,
        fit: Sequence[FitStep] = (),
        **kwargs: Any,
    ) -> None:
        """``sort_col``/``sort_reverse``: the order before the user picks one (``s``).
        ``fit``: what goes first when the columns are wider than the widget, in order
        (:data:`FitStep`); taken only as far as needed, undone when the widget widens."""
        super().__init__(**kwargs)
        widths = [int(c[2]) if len(c) > 2 else 0 for c in columns]
        self.columns = [
            Column(c[0], c[1], w, len(c) > 2, w) for c, w in zip(columns, widths, strict=True)
        ]
        self._fit_steps = tuple(fit)
        self._hidden: frozenset[int] = frozenset()  # column indices fitting hid
        self._keys: list[str] = []
        self._rows: dict[str, list[AnyCell]] = {}
        self._pos: dict[str, int] = {}
        self.cursor_row = 0
        self.sort_col: str | None = sort_col
        self.sort_reverse = sort_reverse
        self._cache: dict[int, Strip] = {}
        self._cache_key: dict[int, tuple[int, int, int]] = {}  # row -> (row, scroll x, width)
        self._styles: dict[str, Style] = {}
        # row key -> (base style, number of leading static cells, their segments)
        self._static: dict[str, tuple[Style, int, list[Segment]]] = {}

    # -- data access (DataTable-like) -----------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def rows(self) -> list[str]:
        return list(self._keys)

    def get_row(self, key: str) -> list[AnyCell]:
        return self._rows[key]

    def get_row_at(self, index: int) -> list[AnyCell]:
        return self._rows[self._keys[index]]

    def cursor_key(self) -> str | None:
        if not self._keys:
            return None
        return self._keys[max(0, min(self.cursor_row, len(self._keys) - 1))]

    def restore_cursor(self, key: str | None, fallback_row: int) -> None:
        row = self._pos.get(key, fallback_row) if key is not None else fallback_row
        self._move(row, scroll=False)

    # -- updates --------------------------------------------------------------------------
    def sync(self, rows: Mapping[str, Sequence[AnyCell]], *, partial: bool = False) -> None:
        """Hold exactly ``rows`` (or, ``partial``, update only present rows)."""
        key = self.cursor_key()
        old = self.cursor_row
        if not partial:
            self._keys = [k for k in self._keys if k in rows]
            present = set(self._keys)
            self._keys += [k for k in rows if k not in present]
            self._rows = {k: list(v) for k, v in rows.items()}
        else:
            for k, v in rows.items():
                if k in self._rows:
                    self._rows[k] = list(v)
        self._resize_columns()
        self._fit_columns()
        self._reorder()
        self.restore_cursor(key, old)
        self._invalidate_all()

    def touch(self) -> None:
        """Live cells have new values (a stats tick): re-sort if needed, repaint.

        Without a re-sort only the live columns of the visible rows are marked dirty:
        the screen then composes and writes just that part of each line.
        """
        live = self._live_cols()
        if self.sort_col is not None and self.sort_col in live:
            key = self.cursor_key()
            self._reorder()
            self.restore_cursor(key, self.cursor_row)
            self._invalidate()
            return
        self._cache.clear()
        x = 0
        for col in self._shown():
            if col.key in live:
                break
            x += col.width + 2
        x = max(0, x - int(self.scroll_offset.x))
        width, height = self.size
        if x < width and height > 1:
            self.refresh(Region(x, 1, width - x, height - 1))  # line 0 is the header

    def _live_cols(self) -> set[str]:
        if not self._keys:
            return set()
        first = self._rows[self._keys[0]]
        return {c.key for c, v in zip(self.columns, first, strict=False) if isinstance(v, LiveCell)}

    def _reorder(self) -> None:
        if self.sort_col is not None:
            i = next((n for n, c in enumerate(self.columns) if c.key == self.sort_col), None)
            if i is not None:
                rows = self._rows
                self._keys.sort(key=lambda k: rows[k][i].sort, reverse=self.sort_reverse)
        self._pos = {k: n for n, k in enumerate(self._keys)}
        self.virtual_size = Size(self._total_width(), len(self._keys) + 1)

    def _resize_columns(self) -> None:
        for n, col in enumerate(self.columns):
            if col.fixed:
                continue
            widest = cell_len(col.label)
            for cells in self._rows.values():
                c = cells[n] if n < len(cells) else None
                if isinstance(c, Cell):
                    widest = max(widest, cell_len(c.text))
            col.natural = col.width = min(widest, 40)

    def _shown(self) -> list[Column]:
        hidden = self._hidden
        return [c for n, c in enumerate(self.columns) if n not in hidden]

    def _fit_columns(self) -> bool:
        """Hide or narrow columns by the view's order of importance (``fit``) until a
        row fits the widget: at 80 columns the drops and errors fell off the right
        edge, behind engine and bridge. True when what is shown changed."""
        avail = self.size.width
        widths = {c.key: c.natural for c in self.columns}
        hidden: set[str] = set()

        def total() -> int:
            return sum(widths[c.key] + 2 for c in self.columns if c.key not in hidden)

        if avail > 0:
            for step in self._fit_steps:
                excess = total() - avail
                if excess <= 0:
                    break
                if isinstance(step, str):
                    hidden.add(step)
                elif step[0] in widths and widths[step[0]] > step[1]:
                    widths[step[0]] = max(step[1], widths[step[0]] - excess)
            # a column hidden after one was narrowed may leave room: give it back
            natural = {c.key: c.natural for c in self.columns}
            for key, w in widths.items():
                slack = avail - total()
                if slack > 0 and w < natural[key]:
                    widths[key] = min(natural[key], w + slack)
        hid = frozenset(n for n, c in enumerate(self.columns) if c.key in hidden)
        changed = hid != self._hidden
        self._hidden = hid
        for col in self.columns:
            changed |= col.width != widths[col.key]
            col.width = widths[col.key]
        return changed

    def on_resize(self) -> None:
        if self._fit_columns():
            self.virtual_size = Size(self._total_width(), len(self._keys) + 1)
            self._invalidate_all()

    def _total_width(self) -> int:
        return sum(c.width + 2 for c in self._shown())

    def _invalidate(self) -> None:
        self._cache.clear()
        self.refresh()

    def _invalidate_all(self) -> None:
        """Rows, column widths or styles changed: the static segments go too."""
        self._static.clear()
        self._invalidate()

    # -- sorting --------------------------------------------------------------------------
    def sort_by(self, col: str, reverse: bool | None = None) -> None:
        key = self.cursor_key()
        if reverse is None:
            reverse = (not self.sort_reverse) if col == self.sort_col else False
        self.sort_col, self.sort_reverse = col, reverse
        self._reorder()
        self.restore_cursor(key, 0)
        self._scroll_cursor()
        self._invalidate()

    def action_cycle_sort(self) -> None:
        self.sort_by(next_sort_key([c.key for c in self.columns], self.sort_col), reverse=False)

    def action_reverse_sort(self) -> None:
        if self.sort_col is not None:
            self.sort_by(self.sort_col, reverse=not self.sort_reverse)

    # -- cursor ---------------------------------------------------------------------------
    def _move(self, row: int, scroll: bool = True) -> None:
        row = max(0, min(len(self._keys) - 1, row)) if self._keys else 0
        if row != self.cursor_row:
            old = self.cursor_row
            self.cursor_row = row
            self._refresh_rows(old, row)
        if scroll:
            self._scroll_cursor()

    def _scroll_cursor(self) -> None:
        body = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + body:
            self.scroll_to(y=self.cursor_row - body + 1, animate=False)

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor_row + delta)

    def action_page(self, delta: int) -> None:
        self._move(self.cursor_row + delta * max(1, self.size.height - 2))

    def action_cursor_to(self, row: int) -> None:
        self._move(row if row >= 0 else len(self._keys) - 1)

    def action_select(self) -> None:
        key = self.cursor_key()
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            x = event.x + int(self.scroll_offset.x)
            for col in self._shown():
                if x < col.width + 2:
                    self.sort_by(col.key)
                    return
                x -= col.width + 2
            return
        row = int(self.scroll_offset.y) + event.y - 1
        if 0 <= row < len(self._keys):
            self._move(row)
            if event.chain >= 2:
                self.action_select()

    def _refresh_rows(self, *rows: int) -> None:
        """Repaint only these rows: a full refresh makes Textual re-run its per-line
        pipeline for every visible line (~40 lines), even when our strips are cached."""
        for row in rows:
            self._cache.pop(row, None)
            self.refresh_line(row + 1)  # virtual line 0 is the header

    def on_focus(self) -> None:
        self._refresh_rows(self.cursor_row)  # only the cursor row is drawn by focus

    def on_blur(self) -> None:
        self._refresh_rows(self.cursor_row)

    # -- painting -------------------------------------------------------------------------
    def _style(self, spec: str) -> Style:
        st = self._styles.get(spec)
        if st is None:
            try:
                st = Style.parse(spec) if spec else Style()
            except Exception:  # a bad colour from a theme must not break painting
                st = Style()
            self._styles[spec] = st
        return st

    def theme_changed(self) -> None:
        self._styles.clear()
        self.forget_base_style()
        self._invalidate_all()

    def base_style_changed(self) -> None:
        self._cache.clear()

    def _segments(self, cells: Sequence[Cell], base: Style, first: int = 0) -> list[Segment]:
        """``cells`` from column ``first`` on; the columns fitting hid are left out."""
        segs: list[Segment] = []
        columns = self.columns[first:] if first else self.columns
        hidden = self._hidden
        for n, (col, c) in enumerate(zip(columns, cells, strict=False), first):
            if n in hidden:
                continue
            text = c.text
            if cell_len(text) > col.width:
                text = set_cell_size(text, col.width - 1) + "…" if col.width > 1 else ""
            pad = col.width - cell_len(text)
            text = " " * pad + text if c.justify == "right" else text + " " * pad
            segs.append(Segment(" " + text + " ", base + self._style(c.style)))
        return segs

    def _line(self, segs: list[Segment], style: Style, width: int, sx: int) -> Strip:
        """One Strip per painted line (Strip construction is not free): pad the segments
        to the widget width, and crop only when scrolled sideways."""
        if sx == 0:
            used = sum(cell_len(sg.text) for sg in segs)
            if used < width:
                segs.append(Segment(" " * (width - used), style))
            strip = Strip(segs)
            return strip if used <= width else strip.crop(0, width)
        return Strip(segs).crop_extend(sx, sx + width, style)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        sx = int(self.scroll_offset.x)
        var = self.app.theme_variables
        base = self._base_style()
        if y == 0:
            head = base + Style(bold=True, color=var.get("primary"), bgcolor=var.get("panel"))
            cells = []
            for col in self.columns:
                mark = ("▼" if self.sort_reverse else "▲") if col.key == self.sort_col else ""
                cells.append(Cell(col.label + mark, right=False))
            return self._line(self._segments(cells, head), head, width, sx)
        row = int(self.scroll_offset.y) + y - 1
        key = (row, sx, width)
        cached = self._cache.get(row)
        if cached is not None and self._cache_key.get(row) == key:
            return cached
        if 0 <= row < len(self._keys):
            cur = row == self.cursor_row
            style = base
            if cur:
                bg = var.get("nl-selected") if not self.has_focus else var.get("accent")
                style = base + Style(bgcolor=bg, bold=self.has_focus)
                if self.has_focus:
                    style += Style(color=var.get("background"))
            rkey = self._keys[row]
            src = self._rows[rkey]
            if cur:
                cells = [_cell(c) for c in src]
                if self.has_focus:
                    cells = [Cell(c.text, 0, "", c.justify == "right") for c in cells]
                segs = self._segments(cells, style)
                if segs:  # the cursor seen without colour too: a marker in the margin
                    segs[0] = Segment(CURSOR_MARK + segs[0].text[1:], segs[0].style)
            else:
                # The leading static cells of a row (name, engine, IP, ...) look the
                # same on every tick: keep their segments, paint only the live ones.
                hit = self._static.get(rkey)
                if hit is None or hit[0] != style:
                    n = next((i for i, c in enumerate(src) if not isinstance(c, Cell)), len(src))
                    lead = [c for c in src[:n] if isinstance(c, Cell)]
                    hit = self._static[rkey] = (style, n, self._segments(lead, style))
                _, n, static = hit
                segs = [*static, *self._segments([_cell(c) for c in src[n:]], style, n)]
            strip = self._line(segs, style, width, sx)
        else:
            strip = Strip.blank(width, base)
        self._cache[row] = strip
        self._cache_key[row] = key
        return strip
