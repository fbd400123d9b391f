"""A virtualised, selectable drawing of the topology (Textual line API).

Only visible lines are painted; painted strips are cached until the next stats tick,
selection move or theme change. The layout itself is rebuilt only when the structure,
the filter, the focus, the collapsed set or the width changes.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region as GRegion
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from netlens.stats.types import Rate, StatsFrame
from netlens.tui import fmt
from netlens.tui.findings_index import Badge
from netlens.tui.index import ViewIndex
from netlens.tui.topology import (
    GridCache,
    Layout,
    Region,
    Span,
    ViewState,
    badge_text,
    build_layout,
)
from netlens.tui.widgets.styled import StyledScrollView
from netlens.tui.widgets.tables import CURSOR_MARK

_HEAVY = str.maketrans("│─┌┐└┘", "┃━┏┓┗┛")


def _mark(segs: list[Segment], col: int) -> list[Segment]:
    """``segs`` with the character at ``col`` replaced by the selection marker, so the
    selection shows without colour too (the marker sits just left of the node)."""
    out: list[Segment] = []
    x = 0
    for seg in segs:
        n = len(seg.text)
        if x <= col < x + n:
            i = col - x
            seg = Segment(seg.text[:i] + CURSOR_MARK + seg.text[i + 1 :], seg.style)
        out.append(seg)
        x += n
    return out


_ON_PATH = Style(reverse=True, bold=True)
"""How a node on the last trace's path is painted (over its role colour)."""


class TopologyView(StyledScrollView, can_focus=True):
    """The graph drawn in the terminal; arrows/vim keys move between nodes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "move(1)", "Next row", show=False, id="topo.down"),
        Binding("up,k", "move(-1)", "Prev row", show=False, id="topo.up"),
        Binding("right,l", "step(1)", "Next node", show=False, id="topo.right"),
        Binding("left,h", "step(-1)", "Prev node", show=False, id="topo.left"),
        Binding("enter", "open", "Open", id="topo.open"),
        Binding("c", "collapse", "Collapse", id="topo.collapse"),
        Binding("f", "focus_node", "Focus", id="topo.focus"),
        Binding("home,g", "first", "First", show=False, id="topo.first"),
        Binding("end,G", "last", "Last", show=False, id="topo.last"),
    ]

    class Opened(Message):
        """The user opened a node (Enter or double click)."""

        def __init__(self, node: str, kind: str) -> None:
            super().__init__()
            self.node = node
            self.kind = kind

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.index: ViewIndex | None = None
        self.frame: StatsFrame | None = None
        self.state = ViewState()
        self.bits = True
        self.selected: str | None = None
        self.badges: dict[str, Badge] = {}  # node -> its findings badge
        self.path: frozenset[str] = frozenset()  # nodes on the last trace's path (`t`)
        self._layout = Layout()
        self._grids = GridCache()
        self._node_lines: dict[str, list[int]] | None = None  # node -> layout lines
        self._layout_width = -1
        self._styles: dict[str, Style] = {}
        self._cache: dict[int, tuple[tuple[int, int], Strip]] = {}

    # -- data in --------------------------------------------------------------------------
    def set_index(self, index: ViewIndex) -> None:
        self.index = index
        self._relayout()

    def set_frame(self, frame: StatsFrame | None) -> None:
        self.frame = frame
        self._cache.clear()
        self.refresh()

    def set_state(self, state: ViewState) -> None:
        """New collapse/filter/focus state. A new filter puts the selection on its
        first match: Enter right after filtering opened the server (the selection
        stayed on it, above the matches) instead of the VRF the filter found."""
        refiltered = bool(state.needle) and state.needle != self.state.needle
        self.state = state
        self._relayout()
        if refiltered:
            self._select_first_match()

    def _select_first_match(self) -> None:
        regs = self._layout.regions
        idx, needle = self.index, self.state.needle
        if idx is None:
            return
        first = next((r for r in regs if r.kind == "vrf" and idx.matches(r.node, needle)), None)
        if first is None:
            first = next((r for r in regs if r.kind not in ("server", "uplink")), None)
        if first is not None and first.node != self.selected:
            self._select(first)

    def set_badges(self, badges: dict[str, Badge]) -> None:
        """New findings: repaint (the badge slots are in the layout already)."""
        if badges == self.badges:
            return
        self.badges = badges
        self._cache.clear()
        self.refresh()

    def set_path(self, nodes: frozenset[str]) -> None:
        """The nodes of the last trace's path, painted reversed (a repaint, no layout)."""
        if nodes == self.path:
            return
        self.path = nodes
        self._cache.clear()
        self.refresh()

    def set_bits(self, bits: bool) -> None:
        self.bits = bits
        self._cache.clear()
        self.refresh()

    def theme_changed(self) -> None:
        self._styles.clear()
        self.forget_base_style()
        self._cache.clear()
        self.refresh()

    def base_style_changed(self) -> None:
        self._cache.clear()

    def on_resize(self, event: events.Resize) -> None:
        # a hidden tab reports width 0: keep the layout instead of laying 1000 boxes out
        # in one column and back again on every view switch
        if event.size.width > 0 and event.size.width != self._layout_width:
            self._relayout()

    def _relayout(self) -> None:
        if self.index is None:
            return
        width = self.size.width or 120
        self._layout = build_layout(self.index, self.state, width, self._grids)
        self._node_lines = None
        self._layout_width = width
        regions = self._layout.regions
        if regions and (self.selected is None or not any(r.node == self.selected for r in regions)):
            self.selected = regions[0].node
        self.virtual_size = Size(self._layout.width, len(self._layout.lines))
        self._cache.clear()
        self.refresh()

    # -- painting -------------------------------------------------------------------------
    def _style(self, token: str) -> Style:
        st = self._styles.get(token)
        if st is None:
            var = self.app.theme_variables
            name = token.split(":", 1)[1] if ":" in token else token
            colour = var.get(f"nl-{name}")
            st = Style(color=colour) if colour else Style()
            if name in ("bridge", "uplink", "rate-high", "server"):
                st += Style(bold=True)
            self._styles[token] = st
        return st

    def _rate(self, ref: tuple[str, str, float | None]) -> Rate | None:
        if self.frame is None:
            return None
        table = getattr(self.frame, ref[0], None)
        if not isinstance(table, dict):
            return None
        r = table.get(ref[1])
        return r if isinstance(r, Rate) else None

    def _segment(self, span: Span, base: Style, sel: Style) -> Segment:
        text = span.text
        if span.rate is not None:
            r = self._rate(span.rate)
            bps = r.total_bps if r else 0.0
            lvl = fmt.level(bps, span.rate[2]) if r else "idle"
            st = self._style(f"role:rate-{lvl}")
            if span.token == "rate":
                text = (fmt.rate(bps, self.bits) if r else "—").rjust(len(text))
            elif lvl in ("mid", "high"):
                text = text.translate(_HEAVY)
        elif span.badge and span.node in self.badges:
            badge = self.badges[span.node]
            text = badge_text(text, badge.text)
            st = self._style(f"role:{badge.role}") + Style(bold=True)
        else:
            st = self._style(span.token)
        style = base + st
        if span.node is not None and span.node in self.path:
            style += _ON_PATH
        if span.node is not None and span.node == self.selected:
            style += sel
        return Segment(text, style)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line_y = scroll_y + y
        width = self.size.width
        key = (scroll_x, width)
        base = self._base_style()  # first: a changed style empties the cache
        hit = self._cache.get(line_y)
        if hit is not None and hit[0] == key:
            return hit[1]
        sel = Style(bgcolor=self.app.theme_variables.get("nl-selected", "blue"))
        if 0 <= line_y < len(self._layout.lines):
            segs = [self._segment(s, base, sel) for s in self._layout.lines[line_y]]
            cur = self._current()
            if cur is not None and cur.y == line_y:
                segs = _mark(segs, cur.x - 1 if cur.x > 0 else cur.x + 1)
            if scroll_x == 0:
                # one Strip per line: pad to the width instead of crop_extend's copy
                used = sum(cell_len(sg.text) for sg in segs)
                if used < width:
                    segs.append(Segment(" " * (width - used), base))
                strip = Strip(segs)
                if used > width:
                    strip = strip.crop(0, width)
            else:
                strip = Strip(segs).crop_extend(scroll_x, scroll_x + width, base)
        else:
            strip = Strip.blank(width, base)
        self._cache[line_y] = (key, strip)
        return strip

    # -- selection ------------------------------------------------------------------------
    def _current(self) -> Region | None:
        for r in self._layout.regions:
            if r.node == self.selected:
                return r
        return None

    def _lines_of(self, node: str | None) -> list[int]:
        """Layout lines holding spans of ``node`` (what its selection highlight touches)."""
        if node is None:
            return []
        if self._node_lines is None:
            where: dict[str, list[int]] = {}
            for y, spans in enumerate(self._layout.lines):
                for n in {s.node for s in spans if s.node is not None}:
                    where.setdefault(n, []).append(y)
            self._node_lines = where
        return self._node_lines.get(node, [])

    def _select(self, region: Region | None) -> None:
        if region is None:
            return
        # Repaint only the lines of the old and the new selection: a full refresh
        # re-runs Textual's per-line pipeline for every visible line.
        for y in {*self._lines_of(self.selected), *self._lines_of(region.node)}:
            self._cache.pop(y, None)
            self.refresh_line(y)
        self.selected = region.node
        self.scroll_to_region(GRegion(region.x, max(0, region.y - 1), 20, 6), animate=False)

    def action_step(self, delta: int) -> None:
        regs = self._layout.regions
        if not regs:
            return
        cur = self._current()
        i = regs.index(cur) if cur in regs else -1
        self._select(regs[max(0, min(len(regs) - 1, i + delta))])

    def action_move(self, delta: int) -> None:
        regs = self._layout.regions
        cur = self._current()
        if cur is None:
            self._select(regs[0] if regs else None)
            return
        rows = sorted(
            {r.y for r in regs if (r.y - cur.y) * delta > 0}, key=lambda ry: abs(ry - cur.y)
        )
        if not rows:
            return
        row = [r for r in regs if r.y == rows[0]]
        self._select(min(row, key=lambda r: abs(r.x - cur.x)))

    def action_first(self) -> None:
        self._select(self._layout.regions[0] if self._layout.regions else None)

    def action_last(self) -> None:
        self._select(self._layout.regions[-1] if self._layout.regions else None)

    def action_open(self) -> None:
        cur = self._current()
        if cur is not None:
            self.post_message(self.Opened(cur.node, cur.kind))

    def action_collapse(self) -> None:
        """Collapse or expand the selected bridge (or the bridge of the selected VRF)."""
        cur = self._current()
        if cur is None or self.index is None:
            return
        key = cur.node
        if cur.kind == "vrf":
            atts = self.index.attachments.get(cur.node, [])
            if not atts:
                return
            key = atts[0].bridge
        if key not in self.index.members:
            return
        coll = set(self.state.collapsed) ^ {key}
        self.selected = key
        self.set_state(ViewState(frozenset(coll), self.state.needle, self.state.focus))

    def action_focus_node(self) -> None:
        """Show only the selected node and its neighbours; again to show everything."""
        if self.index is None:
            return
        if self.state.focus is not None:
            self.set_state(ViewState(self.state.collapsed, self.state.needle, None))
            return
        cur = self._current()
        if cur is None:
            return
        keep = frozenset(self.index.neighbours(cur.node))
        self.set_state(ViewState(self.state.collapsed, self.state.needle, keep))

    def on_click(self, event: events.Click) -> None:
        x = event.x + self.scroll_offset.x
        y = event.y + self.scroll_offset.y
        hit = None
        # on one line the rightmost node starting left of the click: a point-to-point
        # line holds three (its two VRFs and the wire between them) within 32 columns
        same = [r for r in self._layout.regions if r.y == y and r.x <= x < r.x + 32]
        if same:
            hit = max(same, key=lambda r: r.x)
        for r in self._layout.regions if hit is None else ():
            if r.y <= y <= r.y + 4 and r.x <= x < r.x + 32:
                hit = r
                if r.kind == "vrf":
                    break
        if hit is not None:
            self._select(hit)
            if event.chain >= 2:
                self.post_message(self.Opened(hit.node, hit.kind))
