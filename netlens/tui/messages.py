"""Messages the data worker posts to the app (workers never touch widgets)."""

from __future__ import annotations

from textual.message import Message

from netlens.stats.types import StatsFrame
from netlens.tui.findings_index import FindingsIndex
from netlens.tui.index import ViewIndex


class StatsTick(Message):
    """One sample; ``index`` is set only when the structure changed.

    Ticks coalesce: a newer tick replaces a queued one unless the queued one carries a
    structural change the newer one lacks, so a slow repaint never builds a backlog and
    never loses a snapshot.
    """

    def __init__(self, frame: StatsFrame, index: ViewIndex | None) -> None:
        super().__init__()
        self.frame = frame
        self.index = index

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, StatsTick):
            return False
        return message.index is None or self.index is not None


class SourceOpened(Message):
    """The source produced its first snapshot (and maybe a first frame)."""

    def __init__(self, index: ViewIndex, frame: StatsFrame | None) -> None:
        super().__init__()
        self.index = index
        self.frame = frame


class SourceFailed(Message):
    """The source raised; ``title``/``text`` go into a notification."""

    def __init__(self, title: str, text: str, fatal: bool) -> None:
        super().__init__()
        self.title = title
        self.text = text
        self.fatal = fatal


class FindingsReady(Message):
    """The doctor ran on one snapshot (``findings.index``); the app drops it when a
    newer snapshot came meanwhile (its findings are on their way)."""

    def __init__(self, findings: FindingsIndex) -> None:
        super().__init__()
        self.findings = findings
