"""Random loss with nftables, where netem does not run (no pyroute2 here).

Where the drop happens matters. A drop on the *sending* side's own hooks
(netdev egress, postrouting) is reported back to the sending socket: ping gets
ENOBUFS and simply sends again, TCP backs off as from local congestion; the
measured loss is zero. A cable loses packets silently, so netlens drops on the
*receiving* end of what the impaired direction carries: for ``web:eth0``'s
ingress that is eth0 itself, for its egress the other end of its veth (the
host end on a bridge, or the peer node's end of a point-to-point link).

On a node's end the drop sits in ``prerouting`` (``iifname``), not in the
netdev ingress hook: a device whose ingress is shaped hands its packets to an
ifb, which gives them back marked to skip both tc and netdev ingress hooks,
so a netdev ingress chain would never see them. The host end of a veth is a
bridge port (no IP layer, never shaped): there a netdev ingress chain drops.

Each impaired target gets its own table per namespace it touches,
``nl_loss_<hash>`` (hash of the state directory, container and interface;
``inet`` in a node, ``netdev`` on the host), with one chain per direction; the
table comment names the target and the chain comment the loss, so ``nft list
ruleset`` explains itself. A
table is replaced or deleted whole, in one nft transaction. Tables inside a
node's namespace go with it; those elsewhere (the host, a peer node) are listed
in the container's record and removed by :func:`forget` when it is removed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import zlib
from dataclasses import dataclass
from typing import Any

from netlens.kernel.nsenter import call_in
from netlens_runtime import state
from netlens_runtime.errors import RuntimeFailure

HOST = "@host"
"""``where`` of a table in the host's (our own) namespace: no container can be named so."""
PRIORITY = -100
RAW_PRIORITY = -300
"""Before conntrack (-200): a dropped packet leaves no connection state behind."""
RESOLUTION = 10_000
"""Loss is drawn as ``numgen random mod 10000 < N``: 0.01 % steps."""


@dataclass(frozen=True, slots=True)
class LossChain:
    """One direction's drop rule: ``device`` receives the packets of ``direction``."""

    direction: str  # egress | ingress (of the impaired target)
    device: str
    loss: float
    target: str  # for comments: web:eth0, lab:node:if
    bridge_port: bool = False
    """The device is a host bridge port: a netdev ingress chain (else inet prerouting)."""


def table_name(container: str, ifname: str) -> str:
    key = f"{state.state_dir()}\0{container}\0{ifname}"
    return f"nl_loss_{zlib.crc32(key.encode()):08x}"


def threshold(loss: float) -> int:
    """``numgen random mod 10000 < N`` drops ``loss`` percent (at least one step)."""
    return max(1, min(RESOLUTION, round(loss * RESOLUTION / 100)))


FAMILIES = ("netdev", "inet")


def render(table: str, target: str, chains: list[LossChain]) -> str:
    """An nft script that replaces ``table`` with ``chains`` (deletes it when empty).

    The chains of one call share a namespace, so they are all bridge ports or
    all node ends.
    """
    lines = []
    for family in FAMILIES:
        lines += [f"table {family} {table} {{}}", f"delete table {family} {table}"]
    if not chains:
        return "\n".join(lines) + "\n"
    family = "netdev" if chains[0].bridge_port else "inet"
    assert all(c.bridge_port == chains[0].bridge_port for c in chains)
    lines.append(f"table {family} {table} {{")
    lines.append(f'\tcomment "netlens link loss: {target}"')
    for chain in chains:
        drop = f"numgen random mod {RESOLUTION} < {threshold(chain.loss)} drop"
        if chain.bridge_port:
            hook = f'type filter hook ingress device "{chain.device}" priority {PRIORITY};'
        else:
            hook = f"type filter hook prerouting priority {RAW_PRIORITY};"
            drop = f'iifname "{chain.device}" {drop}'
        lines += [
            f"\tchain {chain.direction} {{",
            f'\t\tcomment "loss {chain.loss:g}% {chain.direction} of {chain.target}"',
            f"\t\t{hook} policy accept;",
            f"\t\t{drop}",
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_nft(netns_fd: int | None, script: str) -> None:
    """Run ``nft -f -`` with ``script`` in the namespace of ``netns_fd`` (None: ours)."""

    def go() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)

    try:
        res = call_in(netns_fd, go)
    except FileNotFoundError:
        raise RuntimeFailure("loss needs nftables: the nft command is not installed") from None
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise RuntimeFailure(f"nft: {lines[0] if lines else 'failed'}")


def open_netns(rec: dict[str, Any]) -> int | None:
    """An fd of the container's namespace if its PID 1 still holds the recorded one,
    or a stopped lab node's handle does (:mod:`netlens_runtime.nshold`): its links
    can be impaired, pulled and shown while it is stopped."""
    pid = rec.get("pid")
    if pid:
        try:
            fd = os.open(f"/proc/{int(pid)}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0 and os.fstat(fd).st_ino == rec.get("netns_inode"):
            return fd
        if fd >= 0:
            os.close(fd)
    from netlens_runtime import nshold

    try:
        return nshold.open_held(str(rec.get("name")), rec.get("netns_inode"))
    except RuntimeFailure:  # an invalid name in a hand-made record: nothing held
        return None


def delete_in(where: str, tables: list[str]) -> None:
    """Delete ``tables`` in ``where`` (HOST or a container name); gone ones are fine."""
    if not tables:
        return
    script = "".join(render(t, "", []) for t in tables)
    if where == HOST:
        run_nft(None, script)
        return
    rec = state.load_container(where)
    fd = open_netns(rec) if rec else None
    if fd is None:
        return  # its namespace is gone, and the tables with it
    try:
        run_nft(fd, script)
    finally:
        os.close(fd)


def forget(recs: list[dict[str, Any]]) -> None:
    """Remove the loss tables removed containers left outside their own namespaces.

    Called when containers are removed (their records still in hand). Errors
    are swallowed: the containers are gone either way, and a table bound to a
    deleted device drops nothing.
    """
    names = {str(r.get("name")) for r in recs}
    todo: dict[str, list[str]] = {}
    for rec in recs:
        for entry in (rec.get("impair") or {}).values():
            for made in (entry.get("made") or {}).get("loss", []):
                where = str(made.get("where"))
                if where not in names:
                    todo.setdefault(where, []).append(str(made.get("table")))
    for where, tables in todo.items():
        with contextlib.suppress(RuntimeFailure, OSError):
            delete_in(where, tables)
