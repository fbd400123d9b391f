"""Link impairments as values: parse, merge, describe (no kernel, no pyroute2, no YAML).

One impairment is what a bad link does to the packets leaving one end of it:
a rate limit, a delay with jitter, random loss, corruption and duplication.
``netlens link set`` builds one from its flags, a lab file from an ``impair:``
block; :mod:`netlens_runtime.linkops` applies it. This module stays free of
pyroute2 (~150 ms to import) and of PyYAML so that ``lab check`` and the CLI's
flag checks cost nothing; the YAML side reaches it through the small
:class:`YamlValue` protocol that the lab loader's values satisfy.

Units follow tc(8): rates in ``bit``/``kbit``/``mbit``/``gbit`` (or bytes per
second as ``bps``/``kbps``/``mbps``/``gbps``; a bare number is bits per
second), times in ``us``/``ms``/``s`` (a unit is required: ``20`` could mean
either), percentages with or without ``%``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

DIRECTIONS = ("both", "egress", "ingress")
FIELDS = ("rate", "delay", "jitter", "loss", "corrupt", "duplicate")
NETEM_FIELDS = ("delay", "jitter", "corrupt", "duplicate")
"""What only the kernel's netem qdisc can do (loss has an nftables fallback)."""

MIN_RATE = 8_000
MAX_RATE = 32_000_000_000
"""tbf keeps the rate in 32 bits of bytes per second (~34 Gbit/s)."""
MAX_TIME_US = 60_000_000

_RATE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(bit|bps)?$", re.IGNORECASE)
_TIME_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(us|usec|ms|msec|s|sec)$", re.IGNORECASE)
_PCT_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*%?$")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "t": 1_000_000_000_000}
_TIME_SCALE = {"us": 1, "usec": 1, "ms": 1_000, "msec": 1_000, "s": 1_000_000, "sec": 1_000_000}


class ImpairError(ValueError):
    """A bad value: ``field`` names the flag or key, the message says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def rate_bits(text: str) -> int:
    """The one rate grammar (tc(8)'s units), for link impairments and lab traffic flows:
    ``'10mbit'`` -> 10_000_000 bits/s, ``'1MBps'`` (bytes per second) -> 8_000_000.
    No range: each use has its own."""
    m = _RATE_RE.match(str(text).strip())
    if not m:
        raise ImpairError("rate", f"{text!r} is not a rate (e.g. 100mbit, 512kbit, 1gbit)")
    value = float(m.group(1)) * _SCALE[m.group(2).lower()]
    if (m.group(3) or "").lower() == "bps":  # tc: bytes per second
        value *= 8
    return int(value)


def parse_rate(text: str) -> int:
    """An impairment's rate: ``'10mbit'`` -> 10_000_000 bits/s; ``'0'`` -> 0 (no limit)."""
    bits = rate_bits(text)
    if bits and not MIN_RATE <= bits <= MAX_RATE:
        raise ImpairError("rate", f"{text!r} is out of range (8kbit .. 32gbit, or 0 for none)")
    return bits


def parse_time(text: str, field: str = "delay") -> int:
    """``'20ms'`` -> 20_000 microseconds; a unit is required (``0`` alone is fine)."""
    raw = str(text).strip()
    if raw == "0":
        return 0
    m = _TIME_RE.match(raw)
    if not m:
        raise ImpairError(field, f"{text!r} is not a time (e.g. 20ms, 500us, 1s)")
    us = round(float(m.group(1)) * _TIME_SCALE[m.group(2).lower()])
    if us > MAX_TIME_US:
        raise ImpairError(field, f"{text!r} is longer than 60s")
    return us


def parse_percent(text: str, field: str) -> float:
    """``'1%'``, ``'0.1%'`` or ``'1'`` -> a percentage in 0..100."""
    m = _PCT_RE.match(str(text).strip())
    if not m:
        raise ImpairError(field, f"{text!r} is not a percentage (e.g. 1%, 0.1%)")
    value = float(m.group(1))
    if value > 100:
        raise ImpairError(field, f"{text!r} is more than 100%")
    return value


def format_rate(bits: int) -> str:
    for unit, scale in (("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1_000)):
        if bits >= scale:
            return f"{bits / scale:g}{unit}"
    return f"{bits}bit"


def format_time(us: int) -> str:
    if us >= 1_000_000 and us % 1000 == 0:
        return f"{us / 1_000_000:g}s"
    if us >= 1000:
        return f"{us / 1000:g}ms"
    return f"{us}us"


def format_percent(value: float) -> str:
    return f"{value:g}%"


@dataclass(frozen=True, slots=True)
class Impair:
    """What one direction of an interface suffers; None = not impaired that way.

    ``rate`` in bits/s, ``delay`` and ``jitter`` in microseconds, the rest in
    percent. Zero values never stay in an Impair: they mean "clear" in a merge.
    """

    rate: int | None = None
    delay: int | None = None
    jitter: int | None = None
    loss: float | None = None
    corrupt: float | None = None
    duplicate: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in FIELDS)

    def netem_fields(self) -> list[str]:
        """The settings only netem can apply here, in flag order."""
        return [f for f in NETEM_FIELDS if getattr(self, f) is not None]

    def merged(self, changes: dict[str, float | int]) -> Impair:
        """This impairment with ``changes`` applied; a zero clears that setting.

        Jitter is meaningless without a delay (netem varies the delay), so
        clearing the delay clears the jitter too and a jitter alone is refused.
        """
        values: dict[str, Any] = {f: getattr(self, f) for f in FIELDS}
        for key, value in changes.items():
            values[key] = value or None
        if values["delay"] is None and values["jitter"] is not None:
            if changes.get("jitter"):
                raise ImpairError("jitter", "needs a delay to vary (set the delay too)")
            values["jitter"] = None
        return Impair(**values)

    def to_json(self) -> dict[str, float | int]:
        return {f: getattr(self, f) for f in FIELDS if getattr(self, f) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Impair:
        data = data or {}
        return cls(
            rate=int(data["rate"]) if data.get("rate") else None,
            delay=int(data["delay"]) if data.get("delay") else None,
            jitter=int(data["jitter"]) if data.get("jitter") else None,
            loss=float(data["loss"]) if data.get("loss") else None,
            corrupt=float(data["corrupt"]) if data.get("corrupt") else None,
            duplicate=float(data["duplicate"]) if data.get("duplicate") else None,
        )

    def cells(self) -> dict[str, str]:
        """Each setting as text for tables (``-`` when not set)."""
        return {
            "rate": format_rate(self.rate) if self.rate else "-",
            "delay": format_time(self.delay) if self.delay else "-",
            "jitter": format_time(self.jitter) if self.jitter else "-",
            "loss": format_percent(self.loss) if self.loss else "-",
            "corrupt": format_percent(self.corrupt) if self.corrupt else "-",
            "duplicate": format_percent(self.duplicate) if self.duplicate else "-",
        }

    def describe(self) -> str:
        """``rate 10mbit delay 20ms~5ms loss 1%``: one line for messages."""
        cells = self.cells()
        words = []
        for f in FIELDS:
            if f == "jitter" or cells[f] == "-":
                continue
            text = cells[f]
            if f == "delay" and self.jitter:
                text += f"~{cells['jitter']}"
            words.append(f"{f} {text}")
        return " ".join(words) or "nothing"


def loss_in_netem(imp: Impair) -> bool:
    """Loss rides on netem when netem runs for another setting anyway.

    Otherwise nftables drops (``numgen random``) on the receiving end: netem is
    missing from some kernels (this project's), and a drop on the sending side's
    own hooks is reported back to the sending socket (ping retries, TCP backs off
    as from congestion), which is not what a lossy cable does.
    """
    return bool(imp.netem_fields())


def nft_loss(imp: Impair) -> float | None:
    """The loss nftables must apply for ``imp`` (None: none, or netem does it)."""
    return imp.loss if imp.loss and not loss_in_netem(imp) else None


@dataclass(frozen=True, slots=True)
class ImpairSpec:
    """A requested change: the settings given (zeros clear) and where they apply."""

    changes: dict[str, float | int]
    direction: str = "both"

    def directions(self) -> tuple[str, ...]:
        return ("egress", "ingress") if self.direction == "both" else (self.direction,)

    def as_impair(self) -> Impair:
        """The settings alone (for a fresh interface)."""
        return Impair().merged(self.changes)


def parse_changes(values: dict[str, Any]) -> dict[str, float | int]:
    """Flag or YAML values by field name (None: not given) -> parsed changes."""
    out: dict[str, float | int] = {}
    for key in FIELDS:
        raw = values.get(key)
        if raw is None:
            continue
        if isinstance(raw, bool):
            raise ImpairError(key, f"{raw!r} is not a value")
        if key == "rate":
            out[key] = parse_rate(str(raw))
        elif key in ("delay", "jitter"):
            out[key] = parse_time(str(raw), key)
        else:
            out[key] = parse_percent(str(raw), key)
    return out


def check_direction(text: str) -> str:
    if text not in DIRECTIONS:
        raise ImpairError("direction", f"{text!r}: expected both, egress or ingress")
    return text


# --------------------------------------------------------------- lab files


class YamlValue(Protocol):
    """What :func:`from_yaml` needs of the lab loader's values (``lab_yaml.Val``)."""

    def mapping(self, allowed: frozenset[str] | None = None) -> dict[str, Any]: ...

    def scalar(self) -> Any: ...

    def err(self, message: str) -> Exception: ...


LINK_KEYS = frozenset(FIELDS)
IFACE_KEYS = frozenset({*FIELDS, "direction"})


def from_yaml(val: YamlValue, *, with_direction: bool) -> ImpairSpec:
    """An ``impair:`` block; errors name the block's key (file:line from the value).

    On a link (``with_direction=False``) the block applies to both directions
    of the cable, each end's egress; on an interface it may say ``direction``.
    """
    entries = val.mapping(IFACE_KEYS if with_direction else LINK_KEYS)
    if not entries:
        raise val.err(
            "an empty impair block (give rate, delay, jitter, loss, corrupt or duplicate)"
        )
    raw: dict[str, Any] = {}
    for key, v in entries.items():
        if key == "direction":
            continue
        value = v.scalar()
        if value is None or isinstance(value, (bool, list, dict)):
            raise v.err(f"expected a value, got {value!r}")
        raw[key] = value
    direction = "both"
    if "direction" in entries:
        text = entries["direction"].scalar()
        try:
            direction = check_direction(str(text))
        except ImpairError as exc:
            raise entries["direction"].err(exc.message) from None
    try:
        changes = parse_changes(raw)
        spec = ImpairSpec(changes, direction)
        if spec.as_impair().is_empty():
            raise ImpairError(next(iter(raw), "impair"), "every setting is zero")
    except ImpairError as exc:
        where = entries.get(exc.field, val)
        raise where.err(exc.message) from None
    return spec


__all__ = [
    "DIRECTIONS",
    "FIELDS",
    "Impair",
    "ImpairError",
    "ImpairSpec",
    "from_yaml",
    "parse_changes",
    "parse_percent",
    "parse_rate",
    "parse_time",
    "rate_bits",
]
