"""Formatting of rates and levels, shared by every view (pure functions, no widgets).

Rates, packet rates and sizes are :mod:`netlens.stats.units`' (the same text as
``netlens stats`` and the demo's report): SI bit/s by default, ``b`` switches to
bytes (SI B/s), sizes in GiB/MiB. Levels map a rate to a theme role (rate-idle ... rate-high)
so colour and line weight say how loaded a link is.

Text from the host (names, aliases, MACs, commands) reaches widgets only through
:func:`plain`: a markup string would turn ``[/]`` in a name into a MarkupError and
``:ab:`` in a MAC into an emoji.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from netlens.kernel.inert import terminal
from netlens.stats.units import pps, rate, si, size

__all__ = ["bar", "level", "plain", "pps", "rate", "si", "size", "sparkline"]

LEVELS = ("idle", "low", "mid", "high")
_SPARK = "▁▂▃▄▅▆▇█"


def level(bps: float, capacity_bps: float | None = None) -> str:
    """Load level of a link: relative to its capacity when known, else absolute."""
    if bps < 1_000:
        return "idle"
    if capacity_bps:
        frac = bps / capacity_bps
        return "low" if frac < 0.1 else "mid" if frac < 0.6 else "high"
    return "low" if bps < 10e6 else "mid" if bps < 500e6 else "high"


def sparkline(values: Sequence[float], width: int = 16) -> str:
    """A text sparkline of the last ``width`` values, scaled to their own maximum."""
    vals = list(values)[-width:]
    if not vals:
        return " " * width
    top = max(vals)
    if top <= 0:
        return (_SPARK[0] * len(vals)).rjust(width)
    chars = [_SPARK[min(len(_SPARK) - 1, int(v / top * (len(_SPARK) - 1)))] for v in vals]
    return "".join(chars).rjust(width)


def bar(fraction: float, width: int = 30) -> str:
    """A horizontal bar for density gauges, ``fraction`` clamped to [0, 1]."""
    frac = max(0.0, min(1.0, fraction))
    full = int(frac * width)
    return "█" * full + "░" * (width - full)


def plain(text: str, style: str = "") -> Text:
    """Host data as Rich text: never parsed as markup or emoji codes, and with every
    control character shown as an escape (:func:`netlens.kernel.inert.terminal`)."""
    return Text(terminal(text), style=style)
