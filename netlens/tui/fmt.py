"""Formatting of rates and levels, shared by every view (pure functions, no widgets).

Network engineers read SI bit/s (1 Mb/s = 10^6 bit/s), so that is the default; ``b``
switches to bytes (SI B/s). Levels map a rate to a theme role (rate-idle ... rate-high)
so colour and line weight say how loaded a link is.

Text from the host (names, aliases, MACs, commands) reaches widgets only through
:func:`plain`: a markup string would turn ``[/]`` in a name into a MarkupError and
``:ab:`` in a MAC into an emoji.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from netlens.kernel.inert import terminal

LEVELS = ("idle", "low", "mid", "high")
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_SPARK = "▁▂▃▄▅▆▇█"


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """Format ``value`` with an SI prefix, e.g. ``si(12_300_000, 'b/s') == '12.3 Mb/s'``."""
    for factor, prefix in _SI:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip() if value else f"0 {unit}".rstrip()


def rate(bps: float, bits: bool = True) -> str:
    """A bit rate (input is always bit/s) in bits or bytes per second."""
    return si(bps, "b/s") if bits else si(bps / 8.0, "B/s")


def pps(value: float) -> str:
    return si(value, "p/s")


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


def size(n: float) -> str:
    """Bytes in binary units (memory is sold in GiB)."""
    for factor, unit in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n)} B"


def plain(text: str, style: str = "") -> Text:
    """Host data as Rich text: never parsed as markup or emoji codes, and with every
    control character shown as an escape (:func:`netlens.kernel.inert.terminal`)."""
    return Text(terminal(text), style=style)
