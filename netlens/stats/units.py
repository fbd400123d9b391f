"""The units every view prints: one formatter for rates, packet rates and sizes.

The dashboard, ``netlens stats`` and the demo's flow report print the same
number the same way, so an engineer comparing two of them never converts:

- rates in SI bits per second (1 Mb/s = 10^6 bit/s, what link speeds are sold
  in), three significant digits; bytes per second (SI B/s) on request;
- packet rates likewise, but whole numbers from 10 up (``12 p/s``, not
  ``12.3 p/s``: a fraction of a packet per second is noise at that size);
- sizes in binary units (``1.5 GiB``: memory is sold in GiB, cgroups count it
  so), and ``-`` for a size nobody measured, never a 0 that reads as "empty".

Pure functions, no dependency: the headless core and every view import them.
"""

from __future__ import annotations

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BINARY = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """``value`` with an SI prefix: ``si(12_300_000, 'b/s') == '12.3 Mb/s'``."""
    for factor, prefix in _SI:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip() if value else f"0 {unit}".rstrip()


def rate(bps: float, bits: bool = True) -> str:
    """A rate given in bit/s, printed in bits (default) or bytes per second."""
    return si(bps, "b/s") if bits else si(bps / 8.0, "B/s")


def pps(value: float) -> str:
    """Packets per second: whole numbers from 10 up, SI prefixes from 1000."""
    if 10 <= abs(value) < 1000:
        return f"{value:.0f} p/s"
    return si(value, "p/s")


def size(n: float | None) -> str:
    """Bytes in binary units; ``-`` when not measured."""
    if n is None:
        return "-"
    for factor, unit in _BINARY:
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n)} B"
