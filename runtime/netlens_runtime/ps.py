"""``netlens ps``: which containers to list, and their shape as a table, JSON or names.

Docker's habits, because that is what users type: running containers by default,
``-a`` for all, ``-q`` for names only (one per line, so ``netlens rm -f
$(netlens ps -q)`` works), ``--filter KEY=VALUE`` (``label=K`` or ``label=K=V``,
``name=``, ``network=``, ``status=``; filters of one key match if any does,
several keys must all match, several labels must all match; a ``status``
filter lists stopped containers without ``-a``, as Docker does).

``--format json`` prints a list of objects whose keys never change (see
:func:`view`), not the raw state records: those carry implementation details
(cgroup paths, veth names) that move between versions; ``inspect`` shows them.

Every string that came from a user or the kernel goes through :func:`cell` before
it is printed, so a single function decides how such text is made safe to show.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from netlens_runtime.errors import BadInput

FILTER_KEYS = ("label", "name", "network", "status")
# Docker's container states: a status filter naming one of these is valid even
# when no netlens container can be in it (the answer is then empty, as in Docker).
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
TABLE_HEAD = (
    "NAME", "ID", "STATE", "PID", "NETWORK", "IP", "PORTS", "VIEW", "SECURITY", "CREATED",
    "COMMAND",
)  # fmt: skip


def cell(text: object) -> str:
    """The one place where user- or kernel-provided text becomes printable output."""
    return str(text)


class Filters:
    """Parsed ``--filter`` values: one list of wanted values per key."""

    def __init__(self, specs: Iterable[str]) -> None:
        self.by_key: dict[str, list[str]] = {}
        for spec in specs:
            key, sep, value = spec.partition("=")
            if not sep or key not in FILTER_KEYS or not value:
                raise BadInput(
                    f"netlens ps: invalid --filter {spec!r}: use label=KEY[=VALUE], "
                    "name=NAME, network=NAME or status=STATE"
                )
            if key == "status" and value not in STATUSES:
                raise BadInput(
                    f"netlens ps: invalid --filter status={value!r}: one of {', '.join(STATUSES)}"
                )
            self.by_key.setdefault(key, []).append(value)

    @property
    def status_given(self) -> bool:
        """A status filter decides which states show; ``-a`` is then implied."""
        return "status" in self.by_key

    def match(self, obj: dict[str, Any]) -> bool:
        """Does the :func:`view` object ``obj`` pass every filter?"""
        for key, wanted in self.by_key.items():
            if key == "label":
                labels = obj["labels"]
                for want in wanted:
                    k, sep, v = want.partition("=")
                    if k not in labels or (sep and labels[k] != v):
                        return False
            elif key == "name":
                if not any(w in obj["name"] for w in wanted):
                    return False
            elif key == "network":
                if not any(w in obj["networks"] for w in wanted):
                    return False
            elif obj["state"] not in wanted:
                return False
        return True


def _addresses(rec: dict[str, Any], networks: dict[str, dict[str, Any]]) -> list[str]:
    """The container's addresses as CIDRs: its network address, then its p2p links'."""
    out: list[str] = []
    ip = rec.get("ip")
    if ip:
        net = networks.get(str(rec.get("network")))
        try:
            prefix = ipaddress.IPv4Network(net["subnet"]).prefixlen if net else 32
        except (KeyError, TypeError, ValueError):
            prefix = 32
        out.append(f"{ip}/{prefix}")
    for link in rec.get("links") or ():
        if isinstance(link, dict) and link.get("addr"):
            out.append(str(link["addr"]))
    return out


def view(rec: dict[str, Any], networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A container as ``ps --format json`` shows it; keys are stable across versions.

    name, id, state, pid (None unless running), networks (names), addresses (CIDR),
    ports (host_ip, host_port, port, proto), rootfs (None: a view of the host's
    root, read only; an image's layers: their directories, topmost first, joined
    by ":" as overlayfs's lowerdir), view ("rootfs", "tools": the host's tools without its
    secrets, "full": the whole host root), command (argv), created (UTC, ISO 8601),
    labels, privileged, security ("privileged"; "default", "profile" (a file) or
    "unconfined": the seccomp filter).
    """
    running = rec.get("state") == "running"
    labels = rec.get("labels")
    command = rec.get("command")
    return {
        "name": str(rec.get("name")),
        "id": str(rec.get("id") or ""),
        "state": str(rec.get("state") or "unknown"),
        "pid": int(rec["pid"]) if running and rec.get("pid") else None,
        "networks": [str(rec["network"])] if rec.get("network") else [],
        "addresses": _addresses(rec, networks),
        "ports": [dict(p) for p in rec.get("publish") or () if isinstance(p, dict)],
        "rootfs": rec.get("rootfs") or _layers(rec),
        "view": host_view(rec),
        "command": [str(a) for a in command] if isinstance(command, list) else [],
        "created": rec.get("created"),
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        "privileged": bool(rec.get("privileged")),
        "security": security(rec),
    }


def _layers(rec: dict[str, Any]) -> str | None:
    """A layered root's directories as overlayfs's lowerdir (topmost first), or None."""
    layers = rec.get("layers")
    if isinstance(layers, list) and layers:
        return ":".join(str(x) for x in layers)
    return None


def host_view(rec: dict[str, Any]) -> str:
    """What the container sees as its root: "rootfs", "tools" (the default) or "full".

    Records made before host views existed had the full host root.
    """
    if rec.get("rootfs") or _layers(rec):
        return "rootfs"
    return "tools" if rec.get("host_view") == "tools" else "full"


def security(rec: dict[str, Any]) -> str:
    """``privileged``, ``unconfined`` (no seccomp filter), ``profile`` (a file) or ``default``.

    Records written before confinement existed had no filter: ``unconfined``.
    """
    if rec.get("privileged"):
        return "privileged"
    profile = rec.get("seccomp")
    if profile is None or profile == "unconfined":
        return "unconfined"
    return "default" if profile == "default" else "profile"


def select_records(
    recs: Iterable[dict[str, Any]],
    networks: dict[str, dict[str, Any]],
    show_all: bool,
    filters: Filters,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The records ``ps`` lists, each with its :func:`view`: running ones (all
    with ``-a`` or a status filter) that pass every filter."""
    every = show_all or filters.status_given
    out = []
    for rec in recs:
        obj = view(rec, networks)
        if (every or obj["state"] == "running") and filters.match(obj):
            out.append((rec, obj))
    return out


def _port(p: dict[str, Any]) -> str:
    host = f"{p['host_ip']}:" if p.get("host_ip") else "0.0.0.0:"
    return f"{host}{p.get('host_port')}->{p.get('port')}/{p.get('proto', 'tcp')}"


def table_rows(objs: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The header and one row per object, every user-provided string through :func:`cell`."""
    rows: list[tuple[str, ...]] = [TABLE_HEAD]
    for o in objs:
        ips = [a.split("/")[0] for a in o["addresses"][:1]]
        command = " ".join(o["command"])
        rows.append(
            (
                cell(o["name"]),
                cell(o["id"][:12]),
                cell(o["state"]),
                str(o["pid"]) if o["pid"] else "-",
                cell(",".join(o["networks"]) or "none"),
                ",".join(ips) or "-",
                cell(",".join(_port(p) for p in o["ports"]) or "-"),
                o["view"],
                o["security"],
                cell(str(o["created"] or "-")[:19]),
                cell(command if len(command) <= 40 else command[:39] + "…"),
            )
        )
    return rows
