"""`netlens stats`: live throughput as a top-like table, or NDJSON for scripts.

Plain text on purpose: this is the headless core, so no rich. On a terminal
each sample redraws the screen (ANSI home + clear); into a pipe each sample is
appended as a block. ``--json`` prints one JSON document per sample (NDJSON).
Names in the table are :func:`netlens.kernel.inert.terminal` text: whoever names a
bridge or a container must not be able to write escape sequences to root's
terminal (the JSON keeps the exact names, escaped by JSON itself).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any, TextIO

from netlens.errors import UsageError
from netlens.kernel.inert import terminal
from netlens.stats.units import pps, rate, size

if TYPE_CHECKING:
    from netlens.model.types import Snapshot
    from netlens.stats.types import Rate, StatsFrame

SORT_KEYS = ("rx", "tx", "total")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v < 0.05:
        raise argparse.ArgumentTypeError(f"must be at least 0.05 seconds: {text!r}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (forever) or more: {text!r}")
    return v


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "stats",
        help="live throughput per container, bridge and uplink (top-like, or --json)",
        description=(
            "Sample every interface of every network namespace and print rates per "
            "container (tx = what the container sent), bridge and uplink, with the "
            "server's density. Needs root to see inside other namespaces."
        ),
    )
    p.add_argument("--json", action="store_true", help="one JSON document per sample (NDJSON)")
    p.add_argument(
        "--interval", type=_positive_float, default=1.0, metavar="S", help="seconds (default 1)"
    )
    p.add_argument(
        "--count", type=_count, default=0, metavar="N", help="samples to print (0: until Ctrl-C)"
    )
    p.add_argument(
        "--sort", choices=SORT_KEYS, default="total", help="order containers by (default total)"
    )
    p.set_defaults(func=run)


# --- formatting (pure, unit-tested) --------------------------------------------------
def _sort_value(r: Rate, key: str) -> float:
    return r.rx_bps if key == "rx" else r.tx_bps if key == "tx" else r.total_bps


def names_of(snap: Snapshot) -> dict[str, str]:
    """Display names by key: containers by id, interfaces (bridges, uplinks) by IfRef key."""
    names: dict[str, str] = {c.id: c.name for c in snap.containers}
    for ns in snap.namespaces:
        for itf in ns.interfaces:
            label = itf.display_name
            names[itf.ref.key] = label if ns.is_host else f"{ns.name}:{label}"
        names.setdefault(ns.id, ns.name)
    return names


def format_table(
    frame: StatsFrame, names: dict[str, str], sort: str = "total", limit: int | None = None
) -> str:
    """The top-like text of one frame."""
    from netlens.stats.frames import density_to_dict

    lines: list[str] = []
    s = frame.server
    util = frame.server_utilisation
    cap = frame.uplink_capacity_bps
    head = (
        f"netlens stats  interval {frame.interval:.2f}s  containers rx {rate(s.rx_bps)}"
        f"  tx {rate(s.tx_bps)}"
    )
    if cap:
        head += f"  uplink capacity {rate(cap)}"
        if util is not None:
            head += f" ({util * 100:.1f}% used)"
    lines.append(head)
    d = frame.density
    if d is not None:
        dd = density_to_dict(d)
        lines.append(
            f"density: {d.containers} containers  {d.namespaces} netns  {d.veths} veths"
            f"  {d.bridges} bridges  {d.processes} procs  "
            f"containers/core {dd['containers_per_core']}"
            f"  containers/GiB {dd['containers_per_gib']}  "
            f"mem {size(d.mem_used)}/{size(d.mem_total)}"
        )
        if d.headroom:
            lines.append(
                "headroom: " + "  ".join(f"{k} {u}/{m}" for k, (u, m) in sorted(d.headroom.items()))
            )
    lines.append("")
    lines.append(
        f"{'CONTAINER':<28} {'RX':>10} {'TX':>10} {'TOTAL':>10} {'PKT/S':>9} "
        f"{'DROP/S':>7} {'MEM':>9} {'CPU%':>6}"
    )
    rows = sorted(
        frame.containers.items(),
        key=lambda kv: (-_sort_value(kv[1], sort), names.get(kv[0], kv[0])),
    )
    if limit is not None:
        rows = rows[:limit]
    for cid, r in rows:
        u = frame.usage.get(cid)
        cpu = "-" if u is None or u.cpu_percent is None else f"{u.cpu_percent:.1f}"
        mem = size(u.mem_bytes if u else None)
        name = terminal(names.get(cid, cid))[:28]
        lines.append(
            f"{name:<28} {rate(r.rx_bps):>10} {rate(r.tx_bps):>10} "
            f"{rate(r.total_bps):>10} {pps(r.rx_pps + r.tx_pps):>9} "
            f"{r.rx_drops + r.tx_drops:>7.0f} {mem:>9} {cpu:>6}"
        )
    if not rows:
        lines.append("(no containers)")
    for title, section in (("BRIDGE", frame.bridges), ("UPLINK", frame.uplinks)):
        if not section:
            continue
        lines.append("")
        lines.append(f"{title:<28} {'RX':>10} {'TX':>10} {'TOTAL':>10} {'PKT/S':>9} {'DROP/S':>7}")
        for key, r in sorted(section.items(), key=lambda kv: -_sort_value(kv[1], sort)):
            lines.append(
                f"{terminal(names.get(key, key))[:28]:<28} {rate(r.rx_bps):>10} "
                f"{rate(r.tx_bps):>10} {rate(r.total_bps):>10} "
                f"{pps(r.rx_pps + r.tx_pps):>9} {r.rx_drops + r.tx_drops:>7.0f}"
            )
    return "\n".join(lines)


def frame_document(frame: StatsFrame, names: dict[str, str]) -> dict[str, Any]:
    """The NDJSON document of one frame: the frame plus display names of its keys."""
    from netlens.stats.frames import frame_to_json

    doc = frame_to_json(frame)
    keys = set(frame.containers) | set(frame.bridges) | set(frame.uplinks) | set(frame.vrfs)
    doc["names"] = {k: names[k] for k in sorted(keys) if k in names}
    return doc


# --- the command -----------------------------------------------------------------------
def run(args: argparse.Namespace, out: TextIO | None = None, monitor: Any = None) -> int:
    """Sample until ``--count`` frames were printed (or Ctrl-C)."""
    import json
    import os
    import shutil

    from netlens.stats.live import LiveMonitor

    out = out or sys.stdout
    if args.sort not in SORT_KEYS:
        raise UsageError(f"--sort must be one of {', '.join(SORT_KEYS)}")
    mon = monitor or LiveMonitor(interval=args.interval, history_seconds=max(args.interval, 60))
    snap = mon.open()
    try:
        if os.geteuid() != 0:
            print(
                "netlens: not root: only this process's own namespace is sampled; "
                "run as root to see inside containers",
                file=sys.stderr,
            )
        names = names_of(snap)
        tty = out.isatty() and not args.json
        printed = 0
        while args.count == 0 or printed < args.count:
            new_snap, frame = mon.tick()
            if new_snap is not None:
                names = names_of(new_snap)
            if args.json:
                out.write(json.dumps(frame_document(frame, names), separators=(",", ":")) + "\n")
            else:
                limit = None
                if tty:
                    limit = max(shutil.get_terminal_size().lines - 12, 5)
                    out.write("\x1b[H\x1b[J")
                elif printed:
                    out.write("\n")
                out.write(format_table(frame, names, args.sort, limit) + "\n")
            out.flush()
            printed += 1
    finally:
        mon.close()
    return 0
