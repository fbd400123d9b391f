"""Host-level families: server totals, density, discovery time, the exporter itself.

Few series, independent of the number of containers (``netlens_headroom_*`` has
one series per headroom resource the density sampler knows, a fixed handful).

Doctor findings: :data:`FindingsHook` is where ``netlens.analysis.doctor`` plugs
in (``netlens_doctor_findings{severity}``) once it exists. No hook, no family: the
exporter does not invent zeros for a check it did not run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from netlens.exporter.collector import Extra
from netlens.model.types import Snapshot
from netlens.stats.types import StatsFrame

P = "netlens"

FindingsHook = Callable[[Snapshot], Mapping[str, int]]
"""Snapshot -> number of doctor findings per severity (for ``netlens_doctor_findings``)."""


@dataclass(slots=True)
class ExporterState:
    """What the exporter knows about itself, carried from sample to sample."""

    version: str
    discoveries: int = 0
    discovery_seconds: float = 0.0  # sum over all discoveries
    last_discovery_seconds: float = 0.0
    series: int = 0
    dropped: int = 0  # entity series left out at the last layout
    dropped_total: float = 0.0  # summed over samples
    render_seconds: float = 0.0  # the previous render
    sample_errors: float = 0.0


def _g(name: str, help_: str, value: float | None) -> list[Extra]:
    return [] if value is None else [Extra(name, "gauge", help_, (), [("", (), float(value))])]


def host_extras(
    frame: StatsFrame | None,
    state: ExporterState,
    snap: Snapshot | None = None,
    findings: FindingsHook | None = None,
) -> list[Extra]:
    """Every host-level family for one sample."""
    out: list[Extra] = [
        Extra(
            f"{P}_build_info",
            "gauge",
            "netlens version",
            ("version",),
            [("", (state.version,), 1.0)],
        )
    ]
    if frame is not None:
        s = frame.server
        out += _g(
            f"{P}_server_receive_bytes_per_second",
            "Bytes per second received by all containers together",
            s.rx_bps / 8,
        )
        out += _g(
            f"{P}_server_transmit_bytes_per_second",
            "Bytes per second sent by all containers together",
            s.tx_bps / 8,
        )
        cap = frame.uplink_capacity_bps
        out += _g(
            f"{P}_uplink_capacity_bytes_per_second",
            "Summed speed of the uplinks whose speed is known, one direction",
            None if cap is None else cap / 8,
        )
        out += _g(
            f"{P}_uplink_utilisation_ratio",
            "Container traffic against uplink capacity, busier direction (1 = full)",
            frame.server_utilisation,
        )
        out += _g(
            f"{P}_last_sample_timestamp_seconds", "When the last sample was taken", frame.taken_at
        )
        out += _g(
            f"{P}_sample_interval_seconds", "Measured length of the last sample", frame.interval
        )
        d = frame.density
        if d is not None:
            out += _g(f"{P}_containers", "Containers on this server", d.containers)
            out += _g(f"{P}_namespaces", "Network namespaces on this server", d.namespaces)
            out += _g(f"{P}_veths", "Veth interfaces on this server", d.veths)
            out += _g(f"{P}_bridges", "Bridges on this server", d.bridges)
            out += _g(f"{P}_container_processes", "Processes in containers", d.processes)
            out += _g(f"{P}_cpus", "CPUs of this server", d.cpu_count)
            out += _g(f"{P}_memory_total_bytes", "Memory of this server", d.mem_total)
            out += _g(f"{P}_memory_used_bytes", "Memory in use on this server", d.mem_used)
            out += _g(f"{P}_containers_memory_bytes", "Memory used by containers", d.containers_mem)
            out += _g(
                f"{P}_containers_cpu_cores",
                "CPU used by containers, in cores",
                None if d.containers_cpu_percent is None else d.containers_cpu_percent / 100,
            )
            out += _g(f"{P}_containers_per_core", "Containers per CPU", d.containers_per_core)
            out += _g(
                f"{P}_containers_per_gib", "Containers per GiB of memory", d.containers_per_gib
            )
            if d.headroom:
                names = sorted(d.headroom)
                out.append(
                    Extra(
                        f"{P}_headroom_used",
                        "gauge",
                        "Use of a bounded kernel resource (see netlens_headroom_limit)",
                        ("resource",),
                        [("", (n,), float(d.headroom[n][0])) for n in names],
                    )
                )
                out.append(
                    Extra(
                        f"{P}_headroom_limit",
                        "gauge",
                        "Limit of a bounded kernel resource",
                        ("resource",),
                        [("", (n,), float(d.headroom[n][1])) for n in names],
                    )
                )
    if findings is not None and snap is not None:
        counts = findings(snap)
        out.append(
            Extra(
                f"{P}_doctor_findings",
                "gauge",
                "Doctor findings by severity",
                ("severity",),
                [("", (sev,), float(n)) for sev, n in sorted(counts.items())],
            )
        )
    out.append(
        Extra(
            f"{P}_discovery_duration_seconds",
            "summary",
            "Time spent discovering the host (at start, on changes, periodic rescans)",
            (),
            [("_count", (), float(state.discoveries)), ("_sum", (), state.discovery_seconds)],
        )
    )
    out += _g(
        f"{P}_discovery_last_duration_seconds",
        "Time the last discovery took",
        state.last_discovery_seconds,
    )
    out += _g(f"{P}_exporter_series", "Entity series exported (after the cap)", state.series)
    out += _g(
        f"{P}_exporter_series_dropped",
        "Entity series left out by --max-series at the current structure",
        state.dropped,
    )
    out.append(
        Extra(
            f"{P}_exporter_dropped_series_total",
            "counter",
            "Entity series left out by --max-series, summed over samples",
            (),
            [("", (), state.dropped_total)],
        )
    )
    out += _g(
        f"{P}_exporter_render_duration_seconds",
        "Time the previous sample took to render (in the background, not per scrape)",
        state.render_seconds,
    )
    out.append(
        Extra(
            f"{P}_exporter_sample_errors_total",
            "counter",
            "Samples that failed (the last good one is served meanwhile)",
            (),
            [("", (), state.sample_errors)],
        )
    )
    return out
