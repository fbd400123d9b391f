"""A stats frame (and its density) as the JSON ``netlens stats`` prints.

Keys sorted and floats rounded, so consecutive NDJSON lines diff cleanly.
"""

from __future__ import annotations

from typing import Any

from netlens.stats.rates import rate_to_dict
from netlens.stats.types import Density, Rate, StatsFrame, Usage


def _usage_to_dict(u: Usage) -> dict[str, Any]:
    return {
        "mem_bytes": u.mem_bytes,
        "mem_limit": u.mem_limit,
        "cpu_percent": None if u.cpu_percent is None else round(u.cpu_percent, 2),
        "cpu_limit": u.cpu_limit,
        "processes": u.processes,
    }


def density_to_dict(d: Density) -> dict[str, Any]:
    return {
        "containers": d.containers,
        "namespaces": d.namespaces,
        "veths": d.veths,
        "bridges": d.bridges,
        "processes": d.processes,
        "cpu_count": d.cpu_count,
        "mem_total": d.mem_total,
        "mem_used": d.mem_used,
        "containers_mem": d.containers_mem,
        "containers_cpu_percent": (
            None if d.containers_cpu_percent is None else round(d.containers_cpu_percent, 2)
        ),
        "containers_per_core": round(d.containers_per_core, 3),
        "containers_per_gib": round(d.containers_per_gib, 3),
        "uplink_capacity_bps": d.uplink_capacity_bps,
        "headroom": {k: {"used": u, "max": m} for k, (u, m) in sorted(d.headroom.items())},
    }


def frame_to_json(frame: StatsFrame) -> dict[str, Any]:
    """A JSON-ready dict of one frame (keys sorted for stable output)."""

    def section(d: dict[str, Rate]) -> dict[str, dict[str, float]]:
        return {k: rate_to_dict(d[k]) for k in sorted(d)}

    util = frame.server_utilisation
    return {
        "taken_at": round(frame.taken_at, 3),
        "interval": round(frame.interval, 6),
        "units": {"bps": "bits/s", "pps": "packets/s", "drops": "/s", "errors": "/s"},
        "server": {
            **rate_to_dict(frame.server),
            "uplink_capacity_bps": frame.uplink_capacity_bps,
            "utilisation": None if util is None else round(util, 6),
        },
        "uplink_total": rate_to_dict(frame.uplink_total),
        "containers": section(frame.containers),
        "veth_pairs": section(frame.veth_pairs),
        "bridges": section(frame.bridges),
        "vrfs": section(frame.vrfs),
        "uplinks": section(frame.uplinks),
        "interfaces": section(frame.interfaces),
        "usage": {k: _usage_to_dict(frame.usage[k]) for k in sorted(frame.usage)},
        "density": density_to_dict(frame.density) if frame.density else None,
    }
