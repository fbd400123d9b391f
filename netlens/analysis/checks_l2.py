"""Doctor checks of layer 2: cables, bridges, segments, MTU, the bridged-traffic filter.

Each check is a function ``(snapshot, ...) -> list[Finding]`` reading only the
snapshot (and, for the forward filter, the live facts the caller read).
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict

from netlens.analysis.findings import if_ref, ip_cmd, ns_exec, ns_ref, shell
from netlens.analysis.netfacts import ForwardFilter
from netlens.analysis.topo import lookup, segments
from netlens.model.findings import Finding, Severity
from netlens.model.types import Interface, Netns, Snapshot

VXLAN_OVERHEAD = {4: 50, 6: 70}
"""Bytes a vxlan adds on its underlay: outer IP (20 or 40) + UDP 8 + VXLAN 8 +
inner Ethernet 14."""


def _owner(snapshot: Snapshot) -> dict[str, tuple[Netns, Interface]]:
    return {itf.ref.key: (ns, itf) for ns in snapshot.namespaces for itf in ns.interfaces}


# --- veth cables ----------------------------------------------------------------------------
def veth_peer_down(snapshot: Snapshot) -> list[Finding]:
    """A veth that is up while its peer is administratively down: the cable is dead
    (the up end shows lowerlayerdown / no carrier) and nothing tells the user why."""
    owner = _owner(snapshot)
    out: list[Finding] = []
    for pair in snapshot.veth_pairs:
        if pair.b is None or pair.a.key not in owner or pair.b.key not in owner:
            continue
        for near, far in ((pair.a, pair.b), (pair.b, pair.a)):
            ns, itf = owner[near.key]
            pns, peer = owner[far.key]
            if itf.admin_up and not peer.admin_up:
                out.append(
                    Finding(
                        "veth-peer-down",
                        Severity.WARNING,
                        f"veth {ns.name}:{itf.name} is up but its peer "
                        f"{pns.name}:{peer.name} is down: the cable carries nothing",
                        (if_ref(ns, itf), if_ref(pns, peer)),
                        (
                            f"{ns.name}:{itf.name} admin up, operstate {itf.operstate}",
                            f"{pns.name}:{peer.name} admin down, operstate {peer.operstate}",
                        ),
                        f"{ip_cmd(pns)} link set dev {peer.name} up",
                    )
                )
    return out


def mtu_mismatch(snapshot: Snapshot) -> list[Finding]:
    """Both ends of a cable, and all ports of one bridge, must agree on the MTU:
    a frame larger than the receiving end's MTU is dropped there, silently.
    A vxlan's MTU plus its encapsulation must fit its underlay's MTU."""
    owner = _owner(snapshot)
    out: list[Finding] = []
    for pair in snapshot.veth_pairs:
        if pair.b is None or pair.a.key not in owner or pair.b.key not in owner:
            continue
        ns_a, a = owner[pair.a.key]
        ns_b, b = owner[pair.b.key]
        if a.mtu != b.mtu:
            small, big = (a, b) if a.mtu < b.mtu else (b, a)
            ns_small = ns_a if small is a else ns_b
            out.append(
                Finding(
                    "mtu-mismatch",
                    Severity.WARNING,
                    f"veth ends disagree on MTU: {ns_a.name}:{a.name} {a.mtu}, "
                    f"{ns_b.name}:{b.name} {b.mtu}",
                    (if_ref(ns_a, a), if_ref(ns_b, b)),
                    (
                        f"{ns_a.name}:{a.name} mtu {a.mtu}",
                        f"{ns_b.name}:{b.name} mtu {b.mtu}",
                        f"frames over {small.mtu} bytes sent by {big.name} are dropped "
                        f"at {small.name}",
                    ),
                    f"{ip_cmd(ns_small)} link set dev {small.name} mtu {big.mtu}",
                )
            )
    for ns in snapshot.namespaces:
        by_index = {i.ifindex: i for i in ns.interfaces}
        ports: dict[int, list[Interface]] = defaultdict(list)
        for itf in ns.interfaces:
            if itf.master is not None and itf.port is not None:
                ports[itf.master].append(itf)
        for br_index, members in ports.items():
            mtus = {p.mtu for p in members}
            br = by_index.get(br_index)
            if br is None or len(mtus) < 2:
                continue
            low = min(mtus)
            odd = [p for p in members if p.mtu != low]
            out.append(
                Finding(
                    "mtu-mismatch",
                    Severity.WARNING,
                    f"ports of bridge {ns.name}:{br.name} disagree on MTU "
                    f"({', '.join(str(m) for m in sorted(mtus))})",
                    (if_ref(ns, br), *(if_ref(ns, p) for p in members)),
                    tuple(f"{p.name} mtu {p.mtu}" for p in members),
                    " && ".join(f"{ip_cmd(ns)} link set dev {p.name} mtu {low}" for p in odd),
                )
            )
        for itf in ns.interfaces:
            if itf.kind == "vxlan" and itf.vxlan is not None:
                out.extend(_vxlan_mtu(snapshot, ns, itf, owner))
    return out


def _vxlan_mtu(
    snapshot: Snapshot, ns: Netns, itf: Interface, owner: dict[str, tuple[Netns, Interface]]
) -> list[Finding]:
    """The underlay is the device the vxlan is bound to, else the one the main
    table sends its remote (or group) through."""
    vx = itf.vxlan
    assert vx is not None
    under: Interface | None = None
    uns = ns
    how = ""
    if itf.lower is not None and itf.lower.key in owner:
        uns, under = owner[itf.lower.key]
        how = "bound to"
    elif vx.underlay is not None:
        under = ns.interface(vx.underlay)
        how = "bound to"
    far = vx.remote or vx.group
    family = 6 if far and ":" in far else 4
    if under is None and far:
        route = lookup(ns, far, family)
        if route is not None and route.ifindex is not None:
            under = ns.interface(route.ifindex)
            how = f"route to {far} leaves through"
    if under is None:
        return []
    need = itf.mtu + VXLAN_OVERHEAD[family]
    if need <= under.mtu:
        return []
    return [
        Finding(
            "mtu-mismatch",
            Severity.WARNING,
            f"vxlan {ns.name}:{itf.name} (mtu {itf.mtu}) does not fit its underlay "
            f"{uns.name}:{under.name} (mtu {under.mtu})",
            (if_ref(ns, itf), if_ref(uns, under)),
            (
                f"{itf.name} mtu {itf.mtu} + {VXLAN_OVERHEAD[family]} bytes of IPv{family} "
                f"vxlan encapsulation = {need}",
                f"{how} {under.name}, mtu {under.mtu}",
            ),
            f"{ip_cmd(ns)} link set dev {itf.name} mtu {under.mtu - VXLAN_OVERHEAD[family]}",
        )
    ]


# --- segments ------------------------------------------------------------------------------
def duplicates(snapshot: Snapshot) -> list[Finding]:
    """Two interfaces on one L2 segment with the same IP (ARP answers flap, half the
    traffic goes astray) or the same MAC (the bridge's FDB flaps between ports)."""
    seg = segments(snapshot)
    ips: dict[tuple[str, str], list[tuple[Netns, Interface]]] = defaultdict(list)
    macs: dict[tuple[str, str], list[tuple[Netns, Interface]]] = defaultdict(list)
    for ns in snapshot.namespaces:
        for itf in ns.interfaces:
            if itf.kind == "loopback" or itf.name == "lo":
                continue
            s = seg.of(itf.ref.key)
            for a in itf.addresses:
                if a.scope == "global":
                    ips[(s, a.address)].append((ns, itf))
            if itf.mac and itf.mac != "00:00:00:00:00:00":
                macs[(s, itf.mac.lower())].append((ns, itf))
    out: list[Finding] = []
    for (_s, ip), owners in sorted(ips.items()):
        if len(owners) > 1:
            out.append(_dup("duplicate-ip", f"IP {ip}", owners, ip))
    for (_s, mac), owners in sorted(macs.items()):
        # a bridge takes a port's MAC: that is the kernel's doing, not a clash
        owners = [
            (ns, i)
            for ns, i in owners
            if not (
                i.kind == "bridge"
                and any(o.master == i.ifindex and ons.id == ns.id for ons, o in owners)
            )
        ]
        if len(owners) == 2 and owners[0][1].peer == owners[1][1].ref:
            continue  # the two ends of one cable: each frame still has one receiver
        if len(owners) > 1:
            out.append(_dup("duplicate-mac", f"MAC {mac}", owners, mac))
    return out


def _dup(check: str, what: str, owners: list[tuple[Netns, Interface]], value: str) -> Finding:
    names = ", ".join(f"{ns.name}:{i.name}" for ns, i in owners)
    last_ns, last = owners[-1]
    if check == "duplicate-ip":
        fix = f"{ip_cmd(last_ns)} addr del {value}/{_plen(last, value)} dev {last.name}"
    else:
        fix = f"{ip_cmd(last_ns)} link set dev {last.name} address <a unique MAC>"
    return Finding(
        check,
        Severity.ERROR,
        f"{what} is on {len(owners)} interfaces of one L2 segment: {names}",
        tuple(if_ref(ns, i) for ns, i in owners),
        tuple(f"{ns.name}:{i.name} has {value}" for ns, i in owners),
        fix,
    )


def _plen(itf: Interface, ip: str) -> int:
    return next((a.prefixlen for a in itf.addresses if a.address == ip), 32)


# --- bridges ---------------------------------------------------------------------------------
def bridge_port_state(snapshot: Snapshot) -> list[Finding]:
    """A port that is up but does not forward: disabled by hand (``bridge link set
    state 0``), or blocked by STP. Ports that are down are left to the link checks."""
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        for itf in ns.interfaces:
            port = itf.port
            if port is None or itf.master is None or port.state == "forwarding":
                continue
            if not itf.admin_up or itf.carrier is False:
                continue
            br = ns.interface(itf.master)
            if br is None:
                continue
            stp = br.bridge is not None and br.bridge.stp
            if port.state == "disabled" or not stp:
                sev = Severity.WARNING
                why = "the port is up but the bridge does not forward through it"
            else:
                sev = Severity.INFO
                why = "STP holds the port (a loop elsewhere, or converging)"
            out.append(
                Finding(
                    "bridge-port-not-forwarding",
                    sev,
                    f"bridge port {ns.name}:{itf.name} of {br.name} is {port.state}: {why}",
                    (if_ref(ns, itf), if_ref(ns, br)),
                    (
                        f"{itf.name} port state {port.state}",
                        f"{br.name} stp {'on' if stp else 'off'}",
                        f"{itf.name} admin up, operstate {itf.operstate}",
                    ),
                    f"{ns_exec(ns)}bridge link set dev {itf.name} state 3",
                )
            )
    return out


_NFT_IF = re.compile(r'\b[io]ifname\s+(?:!=\s+)?"([^"]+)"')
_IPT_IF = re.compile(r"(?:^|\s)-[io]\s+(\S+)")


def accepted_ifnames(text: str) -> list[str]:
    """Interface names (or patterns: ``br-*``, ``br+``) that a rule in ``text``
    accepts on: nft lines ending in ``accept``, iptables-save lines ``-j ACCEPT``.
    Jumps are not followed: Docker's rules accept in their own chains, which a
    table listing shows too."""
    names: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s.endswith(" accept") or s == "accept":
            names += _NFT_IF.findall(s)
        elif s.startswith("-A ") and "-j ACCEPT" in s:
            names += [n.replace("+", "*") for n in _IPT_IF.findall(s)]
    return names


def forward_drop(snapshot: Snapshot, forward: dict[str, ForwardFilter]) -> list[Finding]:
    """Docker's trap: the FORWARD policy DROP plus br_netfilter
    (``bridge-nf-call-iptables=1``) makes the host's IP filter judge frames
    *bridged* between two ports of any bridge; a bridge with no ACCEPT rule of
    its own loses all traffic between its ports."""
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        fw = forward.get(ns.id)
        if fw is None or not fw.drops or not fw.br_nf_call_iptables:
            continue
        accepted = accepted_ifnames(fw.text)
        docker = "DOCKER" in fw.text
        for br in ns.interfaces:
            if br.kind != "bridge":
                continue
            ports = [i for i in ns.interfaces if i.master == br.ifindex]
            if len(ports) < 2:
                continue
            if any(fnmatch.fnmatchcase(br.name, pat) for pat in accepted):
                continue
            who = "Docker's " if docker else ""
            out.append(
                Finding(
                    "forward-drop-bridge",
                    Severity.ERROR,
                    f"{who}FORWARD drop policy cuts bridge {ns.name}:{br.name}: "
                    f"br_netfilter sends its bridged frames through iptables",
                    (if_ref(ns, br), *(if_ref(ns, p) for p in ports), ns_ref(ns)),
                    (
                        "net.bridge.bridge-nf-call-iptables = 1",
                        *(f"forward chain {d} policy drop" for d in fw.drops),
                        f"no ACCEPT rule names {br.name} as input or output interface",
                        f"{len(ports)} ports: {', '.join(p.name for p in ports)}",
                    ),
                    _forward_fix(ns, br.name, docker),
                )
            )
    return out


def _forward_fix(ns: Netns, bridge: str, docker: bool) -> str:
    chain = "DOCKER-USER" if docker else "FORWARD"
    b = shell(bridge)
    return f"{ns_exec(ns)}iptables -I {chain} -i {b} -o {b} -j ACCEPT"
