"""Published ports: may this host port be taken over by a container?

netlens publishes a port with a DNAT rule and nothing else: no process holds
the host port afterwards. Docker and Podman keep a socket bound for each
published port (dockerd or docker-proxy, conmon), so the kernel refuses a
second user. netlens is daemonless: the only processes that outlive
``netlens run`` are the container's own, and handing a socket of the host's
network namespace to the container's PID 1 would give the container a way to
send from the host's namespace. So netlens checks and refuses instead, under
the state lock, before anything is made, and asks the kernel itself: it binds
a socket to the very address and port (and closes it at once). The bind fails
as Docker's does:

- ``address already in use`` when a host service listens there (for TCP the
  probe sets SO_REUSEADDR, so only a listener or a socket that refuses sharing
  counts, not a connection in TIME_WAIT; for UDP any bound socket counts: its
  replies would be taken over too);
- ``cannot assign requested address`` when the address is not one of the
  host's own (it would capture traffic meant for someone else, e.g. another
  container). With ``net.ipv4.ip_nonlocal_bind=1`` the bind proves nothing
  there, so the address must also route as local.

What a check cannot do that a held socket does: a service that binds the port
*after* the container published it starts without an error and is shadowed
for the addresses the rule covers. The README says so.

Besides the host's sockets, published ports of this state directory (every
network's record) and of netlens's other state directories (their nft tables)
conflict when protocol and port are equal and the addresses overlap (equal, or
either one is every address).
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from typing import Any

from netlens_runtime import names
from netlens_runtime.errors import BadInput, Conflict

Pub = dict[str, Any]
ANY = "0.0.0.0"  # every address of the host (a record's None, or 0.0.0.0 written before)


def describe(pub: Pub) -> str:
    """``0.0.0.0:8080->80/tcp`` style, as Docker prints it."""
    host = pub.get("host_ip") or "0.0.0.0"
    return f"{host}:{pub['host_port']}->{pub['port']}/{pub['proto']}"


def overlaps(a: Pub, b: Pub) -> bool:
    """Same protocol and host port, and one address covers the other."""
    if (a["proto"], int(a["host_port"])) != (b["proto"], int(b["host_port"])):
        return False
    ha, hb = a.get("host_ip") or ANY, b.get("host_ip") or ANY
    return ANY in (ha, hb) or ha == hb


def check(
    cname: str, pubs: list[Pub], net: dict[str, Any], networks: dict[str, dict[str, Any]]
) -> None:
    """Raise unless every one of ``pubs`` (container ``cname`` on ``net``) can be published."""
    if not pubs:
        return
    names.check_publish(str(net["name"]), bool(net.get("internal")))
    for i, mine in enumerate(pubs):
        for other in pubs[:i]:
            if overlaps(mine, other):
                raise BadInput(f"{describe(mine)} is given twice (also {describe(other)})")
        for owner_net in networks.values():
            for owner, theirs in sorted((owner_net.get("published") or {}).items()):
                for pub in theirs:
                    if owner != cname and overlaps(mine, pub):
                        raise Conflict(
                            f"cannot publish {describe(mine)}: host port "
                            f"{mine['host_port']}/{mine['proto']} is already published by {owner}"
                        )
    others = other_tables_ports()
    for mine in pubs:
        for table, pub in others:
            if overlaps(mine, pub):
                raise Conflict(
                    f"cannot publish {describe(mine)}: host port {mine['host_port']}/"
                    f"{mine['proto']} is already published by netlens table {table}"
                )
        probe(mine)


def probe(pub: Pub) -> None:
    """Bind the host address and port once, the way a listener would; raise what the kernel says."""
    host = pub.get("host_ip")
    tcp = pub["proto"] == "tcp"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        if tcp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or "0.0.0.0", int(pub["host_port"])))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise Conflict(
                f"cannot publish {describe(pub)}: host port {pub['host_port']}/{pub['proto']} "
                "is in use on the host (address already in use)"
            ) from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise BadInput(_not_ours(pub)) from None
        raise
    finally:
        sock.close()
    if host and _nonlocal_bind() and not is_local(host):
        raise BadInput(_not_ours(pub))


def _not_ours(pub: Pub) -> str:
    return (
        f"cannot publish {describe(pub)}: {pub['host_ip']} is not an address of this host "
        "(cannot assign requested address)"
    )


def _nonlocal_bind() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_nonlocal_bind") as fh:
            return fh.read().strip() != "0"
    except OSError:
        return False


def is_local(addr: str) -> bool:
    """The host routes ``addr`` to itself: a UDP socket connected there gets it as its source.

    For a local route the kernel picks the route's preferred source, which for
    an address of the host is that address (no packet is sent by connect).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((addr, 9))
        return bool(sock.getsockname()[0] == addr)
    except OSError:
        return False
    finally:
        sock.close()


def other_tables_ports() -> list[tuple[str, Pub]]:
    """Ports published by netlens tables of other state directories (their DNAT rules).

    Read from nft's JSON (``list tables``, then the prerouting chain of each
    ``netlens*`` table but ours); a missing nft or an unreadable table shows
    nothing: the records of this state directory and the bind probe still apply.
    """
    from netlens_runtime import nat

    ours = nat.table_name()
    found: list[tuple[str, Pub]] = []
    for item in _nft_json(["list", "tables", "ip"]):
        table = item.get("table") if isinstance(item, dict) else None
        name = table.get("name") if isinstance(table, dict) else None
        if not isinstance(name, str) or not name.startswith(nat.TABLE) or name == ours:
            continue
        for entry in _nft_json(["list", "chain", "ip", name, "prerouting"]):
            rule = entry.get("rule") if isinstance(entry, dict) else None
            if isinstance(rule, dict):
                pub = _dnat_port(rule.get("expr"))
                if pub is not None:
                    found.append((name, pub))
    return found


def _nft_json(args: list[str]) -> list[Any]:
    try:
        res = subprocess.run(["nft", "-j", *args], capture_output=True, text=True, timeout=10)
        doc = json.loads(res.stdout) if res.returncode == 0 else {}
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    items = doc.get("nftables") if isinstance(doc, dict) else None
    return items if isinstance(items, list) else []


def _dnat_port(expr: Any) -> Pub | None:
    """{host_ip, host_port, proto} of a rule shaped like netlens's DNAT rules, else None."""
    if not isinstance(expr, list):
        return None
    pub: Pub = {"host_ip": None}
    dnat = False
    for e in expr:
        if not isinstance(e, dict):
            continue
        match = e.get("match")
        if isinstance(match, dict):
            left, right = match.get("left"), match.get("right")
            payload = left.get("payload") if isinstance(left, dict) else None
            if isinstance(payload, dict) and payload.get("field") == "dport":
                pub["proto"], pub["host_port"] = payload.get("protocol"), right
            elif isinstance(payload, dict) and payload.get("field") == "daddr":
                pub["host_ip"] = right if isinstance(right, str) else None
        dnat = dnat or "dnat" in e
    if not dnat or pub.get("proto") not in ("tcp", "udp"):
        return None
    if not isinstance(pub.get("host_port"), int):
        return None
    return pub
