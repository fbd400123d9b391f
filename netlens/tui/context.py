"""State shared by the app and its views, owned by the app and read by views.

Views receive this object instead of reaching into the app class, which keeps the
modules free of import cycles and lets tests drive a view with a hand-made context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlens.stats.history import History
from netlens.stats.types import StatsFrame
from netlens.tui.findings_index import FindingsIndex
from netlens.tui.index import ContainerRow, ViewIndex
from netlens.tui.sources import DataSource, HistoryView


@dataclass
class Context:
    source: DataSource | None = None
    index: ViewIndex | None = None
    frame: StatsFrame | None = None
    bits: bool = True
    needle: str = ""
    paused: bool = False  # the app holds ticks back; the status line says so
    generation: int = 0  # bumped on every structural change
    ghosts: dict[str, ContainerRow] = field(default_factory=dict)  # rows that went away
    ghost_ttl: dict[str, int] = field(default_factory=dict)  # ticks left before removal
    roles: dict[str, str] = field(default_factory=dict)  # "nl-<role>" -> colour, from theme
    capturing: str = ""  # the running `w` capture's status line (live packet count)
    # the doctor's findings on ``index`` (None until its worker reports; see app.py)
    findings: FindingsIndex | None = None
    findings_seq: int = 0  # bumped with every new ``findings`` (views re-sync on it)

    def style(self, role: str) -> str:
        """A Rich style string for a theme role (cells cannot use CSS variables)."""
        return self.roles.get(f"nl-{role}", "")

    @property
    def vanished(self) -> set[str]:
        return set(self.ghosts)

    def set_index(self, index: ViewIndex, keep_ticks: int = 8) -> None:
        """Swap in a new structure; rows that disappeared stay as greyed ghosts a while
        so the user sees them go instead of the table jumping under the cursor."""
        if self.index is not None:
            new_keys = {r.key for r in index.rows}
            for row in self.index.rows:
                if row.key not in new_keys:
                    self.ghosts[row.key] = row
                    self.ghost_ttl[row.key] = keep_ticks
            for key in list(self.ghosts):
                if key in new_keys:
                    self.ghosts.pop(key)
                    self.ghost_ttl.pop(key, None)
        self.index = index
        self.generation += 1

    def age_ghosts(self) -> bool:
        """One tick older; True when some ghost expired (the views must resync)."""
        expired = False
        for key in list(self.ghost_ttl):
            self.ghost_ttl[key] -= 1
            if self.ghost_ttl[key] <= 0:
                self.ghost_ttl.pop(key)
                self.ghosts.pop(key, None)
                expired = True
        return expired

    @property
    def history(self) -> HistoryView:
        return self.source.history if self.source is not None else History(1)
