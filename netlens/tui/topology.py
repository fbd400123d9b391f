"""The topology as text: a layered layout computed once per structure change.

Layout (top to bottom): the server box with its uplinks; each bridge as a switch bar with
its VRF boxes below it in a grid (the connector above each box is the veth, drawn
heavier and hotter as its load grows); point-to-point veths; VRFs on no bridge; vxlan
tunnels. The layout is a list of lines of spans. A span's *text* is fixed except for
rate labels, and its *style* is a token resolved at paint time ("role:bridge",
"wire:pair:<key>"), so a stats tick repaints only the visible lines and never
re-lays-out 1000 containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlens.kernel.inert import terminal
from netlens.model.types import Interface, Netns
from netlens.tui import fmt
from netlens.tui.index import ViewIndex

BOX_W = 30
GAP = 2
INDENT = 4
BADGE_W = 6
"""Columns kept free on a node for its findings badge (``✖12`` with a space each side)."""


@dataclass(frozen=True, slots=True)
class Span:
    """``text`` in style ``token``; ``node`` makes it part of a selectable node.

    ``rate`` names a rate (table, key, capacity) whose label or level is computed at
    paint time: for ``token == "rate"`` the text is replaced by the rate label padded
    to ``len(text)``; for ``token == "wire"`` the box-drawing chars get heavier with load.
    ``badge`` marks the slot where ``node``'s findings badge is painted when it has
    one (:func:`badge_text`); findings arrive after the layout, from the doctor's
    worker, so they repaint lines and never re-lay the topology out.
    """

    text: str
    token: str
    node: str | None = None
    rate: tuple[str, str, float | None] | None = None
    badge: bool = False


def badge_text(slot: str, mark: str) -> str:
    """``mark`` (``✖3``) written over a badge ``slot``, keeping the slot's width and
    its fill (a box border keeps its line on both sides of the badge)."""
    fill = slot[:1] or " "
    text = f" {mark} "
    if len(text) > len(slot):
        text = text[: len(slot)]
    return text.center(len(slot), fill)


@dataclass(frozen=True, slots=True)
class Region:
    node: str
    kind: str  # server, uplink, bridge, vrf, link (a point-to-point wire), vxlan
    y: int
    x: int


@dataclass
class Layout:
    lines: list[list[Span]] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    width: int = 0

    def add(self, spans: list[Span]) -> int:
        self.lines.append(spans)
        self.width = max(self.width, sum(len(s.text) for s in spans))
        return len(self.lines) - 1


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _pad(text: str, width: int) -> str:
    return _fit(text, width).ljust(width)


def _cidrs(itf: Interface) -> str:
    return " ".join(a.cidr for a in itf.addresses if a.scope != "host")


def _bridge_head(name: str, br: Interface, tail: str, room: int) -> str:
    """A switch bar's text in ``room`` columns, so its rate stays on screen: link-local
    (fe80::) addresses go first, then every address but the first, then the name is
    cut."""
    addrs = [a for a in br.addresses if a.scope != "host"]
    routable = [a for a in addrs if not a.address.lower().startswith("fe80:")]
    for keep in (addrs, routable, (routable or addrs)[:1], []):
        shown = "".join(f" {a.cidr}" for a in keep)
        more = len(addrs) - len(keep)
        text = f"{name}{shown}{f' +{more}' if more else ''}{tail}"
        if len(text) <= room:
            return text
    return _fit(f"{name}{tail.rstrip()}", max(room - 1, 1)) + " "


IMPAIRED = "≈"
"""Marks a link whose qdiscs shape or impair it (``Interface.tc``, read from the kernel)."""


def egress_text(itf: Interface | None) -> str:
    """What ``itf``'s own qdiscs do to what it sends ("" when nothing shapes it)."""
    tc = itf.tc if itf is not None else None
    if tc is None or not (tc.kinds or not tc.ingress):
        return ""
    return tc.summary()


def ingress_text(idx: ViewIndex, itf: Interface | None) -> str:
    """What shapes what ``itf`` receives: the tc of the device (an ifb) its ingress
    filter redirects to; "" when nothing does."""
    tc = itf.tc if itf is not None else None
    if itf is None or tc is None or not tc.ingress_to:
        return ""
    target = idx.ifaces.get(f"{itf.netns}/{tc.ingress_to}")
    return target.tc.summary() if target is not None and target.tc is not None else ""


def redirect_targets(ns: Netns) -> set[int]:
    """ifindexes of the devices (ifbs) other interfaces of ``ns`` redirect ingress to."""
    return {i.tc.ingress_to for i in ns.interfaces if i.tc and i.tc.ingress_to}


def shaping_text(idx: ViewIndex, itf: Interface) -> str:
    """``10mbit 20ms, in 2mbit``: both directions of one interface ("" when none)."""
    out, into = egress_text(itf), ingress_text(idx, itf)
    if into:
        into = f"in {into}"
    elif itf.tc is not None and itf.tc.ingress:
        into = "ingress filter"
    return ", ".join(w for w in (out, into) if w)


def p2p_impairment(
    a: Interface | None,
    b: Interface | None,
    a_name: str,
    b_name: str,
    idx: ViewIndex | None = None,
) -> str:
    """``≈ r1→r2 10mbit 20ms · r2→r1 loss 1%``: what each direction of the cable
    suffers (the sender's egress, then the receiver's ingress), "" when nothing."""
    parts = []
    for src, dst, s_name, d_name in ((a, b, a_name, b_name), (b, a, b_name, a_name)):
        said = [egress_text(src), ingress_text(idx, dst) if idx is not None else ""]
        said = [w for w in said if w]
        if said:
            parts.append(f"{s_name}→{d_name} {' + '.join(said)}")
    return f"{IMPAIRED} {' · '.join(parts)}" if parts else ""


@dataclass
class ViewState:
    """What the user asked for: collapsed bridges, a filter, a focused node."""

    collapsed: frozenset[str] = frozenset()
    needle: str = ""
    focus: frozenset[str] | None = None  # node keys to keep, None = all


@dataclass
class _Block:
    lines: list[list[Span]]
    regions: list[Region]  # y relative to the block's first line
    width: int


class GridCache:
    """Laid-out grids of VRF boxes, reused across layouts of the same index.

    Collapsing one bridge, focusing or clearing a filter used to re-lay every box
    out (1000 boxes: ~75 ms); with this cache a re-layout only copies the grids
    that did not change. Keyed by (bridge, members, columns); emptied when the
    index changes (boxes draw the index's names and addresses).
    """

    def __init__(self) -> None:
        self._idx: ViewIndex | None = None
        self._blocks: dict[tuple[str | None, tuple[str, ...], int], _Block] = {}

    def grid(
        self, lay: Layout, idx: ViewIndex, members: list[str], cols: int, bridge: str | None
    ) -> None:
        if idx is not self._idx:
            self._idx = idx
            self._blocks.clear()
        key = (bridge, tuple(members), cols)
        block = self._blocks.get(key)
        if block is None:
            if len(self._blocks) >= 256:  # many filters typed: start over
                self._blocks.clear()
            sub = Layout()
            _grid(sub, idx, members, cols, bridge)
            block = self._blocks[key] = _Block(sub.lines, sub.regions, sub.width)
        base = len(lay.lines)
        lay.lines.extend(block.lines)
        lay.regions.extend(Region(r.node, r.kind, r.y + base, r.x) for r in block.regions)
        lay.width = max(lay.width, block.width)


def build_layout(
    idx: ViewIndex, state: ViewState, width: int, cache: GridCache | None = None
) -> Layout:
    """Lay the snapshot out for a terminal ``width`` columns wide.

    ``cache`` (kept by the caller across calls) makes re-layouts that change only a
    few bridges (collapse, focus, filter) cost what changed, not every box.
    """
    grid = cache.grid if cache is not None else _grid
    lay = Layout()
    width = max(width, BOX_W + INDENT + 2)
    cols = max(1, (width - INDENT) // (BOX_W + GAP))
    snap = idx.snapshot
    srv = snap.server

    def keep(ns_id: str) -> bool:
        if state.focus is not None and ns_id not in state.focus:
            return False
        return idx.matches(ns_id, state.needle)

    # -- server and uplinks ---------------------------------------------------------------
    inner = max(width - 4, 40)
    counts = idx.counts
    title = (
        f" server {terminal(srv.hostname)} · linux {terminal(srv.kernel)}"
        f" · {terminal(srv.arch)} · {srv.cpu_count} cpu"
        f" · {fmt.size(srv.mem_total)} · {counts['containers']} containers"
        f" · {counts['namespaces']} VRFs "
    )
    title = _fit(title, inner - 2)
    y = lay.add(
        [Span("╭─" + title + "─" * (inner - len(title) - 2) + "╮", "role:server", "server")]
    )
    lay.regions.append(Region("server", "server", y, 0))
    line: list[Span] = [Span("│ ", "role:server", "server")]
    used = 2
    for up in idx.uplinks:
        cap = (up.speed_mbps or 0) * 1e6 or None
        speed = fmt.si(cap, "b/s") if cap else "speed ?"
        label = f"⇅ {terminal(up.name)} {speed} {_cidrs(up)} "
        chunk = len(label) + 12
        if used + chunk > inner:
            line.append(Span(" " * (inner - used + 1), "role:server"))
            line.append(Span("│", "role:server", "server"))
            y = lay.add(line)
            line, used = [Span("│ ", "role:server", "server")], 2
        lay.regions.append(Region(up.ref.key, "uplink", len(lay.lines), used))
        line.append(Span(label, "role:uplink", up.ref.key))
        line.append(Span(" " * 10, "rate", up.ref.key, ("uplinks", up.ref.key, cap)))
        line.append(Span("  ", "role:server"))
        used += chunk
    if not idx.uplinks:
        line.append(Span("no uplinks seen", "role:muted"))
        used += 15
    line.append(Span(" " * max(0, inner - used + 1), "role:server"))
    line.append(Span("│", "role:server", "server"))
    lay.add(line)
    lay.add(
        [
            Span("╰" + "─" * 2, "role:server", "server"),
            Span("─" * BADGE_W, "role:server", "server", badge=True),
            Span("─" * (inner - 2 - BADGE_W) + "╯", "role:server", "server"),
        ]
    )

    drawn: set[str] = set()

    # -- bridges with their VRFs ----------------------------------------------------------
    for br in idx.bridges:
        bkey = br.ref.key
        members = [m for m in idx.members.get(bkey, []) if keep(m)]
        if state.focus is not None and bkey not in state.focus and not members:
            continue
        if state.needle and not members and state.needle.lower() not in br.display_name.lower():
            continue
        collapsed = bkey in state.collapsed
        ns_note = "" if idx.ns[br.netns].is_host else f" in {idx.ns_label(br.netns)}"
        head = _bridge_head(
            f"{'▸' if collapsed else '▾'} ▣ switch {terminal(br.display_name)}{ns_note}",
            br,
            f" · {len(idx.members.get(bkey, []))} VRFs ",
            width - 2 - 10 - BADGE_W,  # the indent, the rate and the badge stay
        )
        lay.add([Span("", "role:muted")])
        y = lay.add(
            [
                Span("  ", "role:muted"),
                Span(head, "role:bridge", bkey),
                Span(" " * 10, "rate", bkey, ("bridges", bkey, None)),
                Span(" " * BADGE_W, "role:muted", bkey, badge=True),
            ]
        )
        lay.regions.append(Region(bkey, "bridge", y, 2))
        if collapsed:
            lay.add([Span(f"{' ' * INDENT}… {len(members)} VRFs hidden (c expands)", "role:muted")])
            drawn.update(members)
            continue
        grid(lay, idx, members, cols, bkey)
        drawn.update(members)

    # -- point-to-point veths -------------------------------------------------------------
    p2p = [link for link in idx.p2p if keep(link.a.split("/")[0]) or keep(link.b.split("/")[0])]
    if p2p:
        lay.add([Span("", "role:muted")])
        lay.add([Span("  ═ point-to-point veths", "role:p2p")])
        for link in p2p:
            a_ns, b_ns = link.a.split("/")[0], link.b.split("/")[0]
            ia, ib = idx.ifaces.get(link.a), idx.ifaces.get(link.b)
            la = _fit(f"{idx.iface_label(link.a)} {_cidrs(ia) if ia else ''}", 38)
            lb = _fit(f"{idx.iface_label(link.b)} {_cidrs(ib) if ib else ''}", 38)
            y = len(lay.lines)
            lay.regions.append(Region(a_ns, "vrf", y, INDENT))
            # the wire is the cable itself, so a key can act on it (``x`` pulls it, ``w``
            # captures it, Enter opens that end); named by its smaller end key, which
            # stays the same when a new snapshot lists the pair the other way round
            # (the selection would jump back to the server)
            wire = min(link.a, link.b)
            lay.regions.append(Region(wire, "link", y, INDENT + len(la) + 1))
            lay.regions.append(Region(b_ns, "vrf", y, INDENT + len(la) + 12))
            spans = [
                Span(" " * INDENT, "role:muted"),
                Span(la, "role:vrf", a_ns),
                Span(" ──────── ", "wire", wire, ("veth_pairs", link.pair, None)),
                Span("  ", "role:muted"),
                Span(lb, "role:vrf", b_ns),
                Span("  ", "role:muted"),
                Span(" " * 10, "rate", None, ("veth_pairs", link.pair, None)),
            ]
            mark = p2p_impairment(ia, ib, idx.ns_label(a_ns), idx.ns_label(b_ns), idx)
            if mark:
                spans.append(Span(f"  {mark}", "role:impaired"))
            lay.add(spans)

    # -- VRFs on no bridge ----------------------------------------------------------------
    loose = [
        ns.id for ns in snap.namespaces if not ns.is_host and ns.id not in drawn and keep(ns.id)
    ]
    if loose:
        lay.add([Span("", "role:muted")])
        lay.add([Span("  ◇ VRFs on no bridge", "role:vrf")])
        grid(lay, idx, loose, cols, None)

    # -- tunnels --------------------------------------------------------------------------
    if idx.vxlans and not state.needle and state.focus is None:
        lay.add([Span("", "role:muted")])
        lay.add([Span("  ◆ tunnels", "role:vxlan")])
        for vx in idx.vxlans:
            info = vx.vxlan
            where = (
                f" in {terminal(idx.ifaces[f'{vx.netns}/{vx.master}'].name)}"
                if vx.master and (f"{vx.netns}/{vx.master}" in idx.ifaces)
                else ""
            )
            low = idx.ifaces.get(vx.lower.key) if vx.lower else None
            under = terminal(low.name) if low else "?"
            text = (
                f"{terminal(vx.name)} vni {info.vni if info else '?'} "
                f"{info.local or '' if info else ''} → "
                f"{(info.remote or info.group or 'learning') if info else '?'}"
                f":{(info.port if info and info.port else 4789)} via {under}{where} "
            )
            y = lay.add(
                [
                    Span(" " * INDENT, "role:muted"),
                    Span(text, "role:vxlan", vx.ref.key),
                    Span(" " * 10, "rate", vx.ref.key, ("interfaces", vx.ref.key, None)),
                    Span(" " * BADGE_W, "role:muted", vx.ref.key, badge=True),
                ]
            )
            lay.regions.append(Region(vx.ref.key, "vxlan", y, INDENT))
    if len(lay.lines) <= 4:
        lay.add([Span("", "role:muted")])
        lay.add(
            [Span("  nothing matches the filter" if state.needle else "  no VRFs", "role:muted")]
        )
    lay.regions.sort(key=lambda r: (r.y, r.x))
    return lay


def _box_lines(idx: ViewIndex, ns: Netns, bridge: str | None) -> list[tuple[str, str]]:
    """Two content lines of a VRF box with their roles: its interfaces, addresses and
    far ends; the second says what shapes or impairs the box's links, if anything does."""
    lines = _box_text(idx, ns, bridge)
    plumbing = redirect_targets(ns)
    shaped = [
        (i, text)
        for i in ns.interfaces
        if i.tc is not None and i.kind != "loopback" and i.ifindex not in plumbing
        for text in (shaping_text(idx, i),)
        if text
    ]
    if shaped:
        more = f" (+{len(shaped) - 1})" if len(shaped) > 1 else ""
        text = f"{IMPAIRED} {terminal(shaped[0][0].name)} {shaped[0][1]}{more}"
        return [(lines[0], "role:address"), (text, "role:impaired")]
    return [(text, "role:address") for text in lines]


def _box_text(idx: ViewIndex, ns: Netns, bridge: str | None) -> list[str]:
    """A VRF box's interfaces, addresses and far ends, two lines.

    Under a bridge the interface cabled to that bridge comes first: a router with a
    leg on several bridges showed its first interface under each of them, and the
    one that really sat on the bridge was often never drawn.
    """
    out: list[str] = []
    plumbing = redirect_targets(ns)  # ifbs shaping another interface's ingress
    ifs = [i for i in ns.interfaces if i.kind != "loopback" and i.ifindex not in plumbing]
    if bridge is not None:
        here = {a.inside for a in idx.attachments.get(ns.id, []) if a.bridge == bridge}
        ifs.sort(key=lambda i: i.ref.key not in here)  # stable: the rest keep their order
    for itf in ifs:
        if len(out) == 2:
            break
        extra = ""
        if (
            itf.peer is not None
            and itf.peer.netns != ns.id
            and (not idx.ns.get(itf.peer.netns) or not idx.ns[itf.peer.netns].is_host)
        ):
            extra = f" ⇄ {idx.ns_label(itf.peer.netns)}"
        out.append(f"{terminal(itf.name)} {_cidrs(itf) or '-'}{extra}")
    if len(ifs) > 2:
        out[1] = f"{out[1]} (+{len(ifs) - 2})"
    if not out:
        out.append("no interfaces")
    while len(out) < 2:
        gws = ns.default_gateways()
        out.append(f"gw {gws[0]}" if gws and len(out) == 1 else "")
    return out


def _grid(lay: Layout, idx: ViewIndex, members: list[str], cols: int, bridge: str | None) -> None:
    inner = BOX_W - 2
    for start in range(0, len(members), cols):
        row = members[start : start + cols]
        wires: list[Span] = [Span(" " * INDENT, "role:muted")]
        tops: list[Span] = [Span(" " * INDENT, "role:muted")]
        mids: list[list[Span]] = [[Span(" " * INDENT, "role:muted")] for _ in range(2)]
        bots: list[Span] = [Span(" " * INDENT, "role:muted")]
        y_top = len(lay.lines) + 1
        for col, ns_id in enumerate(row):
            ns = idx.ns[ns_id]
            vanished = not ns.complete
            role = "role:vanished" if vanished else "role:vrf"
            c = idx.container_of_ns.get(ns_id)
            att = next((a for a in idx.attachments.get(ns_id, []) if a.bridge == bridge), None)
            sep = Span(" " * GAP, "role:muted")
            if att is not None:
                port = idx.ifaces.get(att.port)
                pname = _fit(terminal(port.name) if port else "?", inner - 14)
                wires += [
                    Span(" │", "wire", ns_id, ("veth_pairs", att.pair, None)),
                    Span(f" {pname} ", "role:veth", ns_id),
                    Span(" " * 10, "rate", ns_id, ("veth_pairs", att.pair, None)),
                    Span(" " * (BOX_W - 2 - len(pname) - 2 - 10), "role:muted"),
                    sep,
                ]
            else:
                wires += [Span(" " * BOX_W, "role:muted"), sep]
            label = terminal(c.name if c else ns.name)
            eng = terminal(c.engine) if c else "netns"
            head = _fit(f" {label} · {eng} ", inner - 1)
            tops += [
                Span("┌─", role, ns_id),
                Span(head, "role:vanished" if vanished else "role:container", ns_id),
                Span("─" * (inner - 1 - len(head)) + "┐", role, ns_id),
                sep,
            ]
            for k, (text, text_role) in enumerate(_box_lines(idx, ns, bridge)):
                mids[k] += [
                    Span("│", role, ns_id),
                    Span(
                        _pad(" " + text, inner),
                        "role:vanished" if vanished else text_role,
                        ns_id,
                    ),
                    Span("│", role, ns_id),
                    sep,
                ]
            bots += [
                Span("└─", role, ns_id),
                Span("─" * BADGE_W, role, ns_id, badge=True),
                Span("─" * (inner - 1 - BADGE_W) + "┘", role, ns_id),
                sep,
            ]
            lay.regions.append(Region(ns_id, "vrf", y_top, INDENT + col * (BOX_W + GAP)))
        lay.add(wires)
        lay.add(tops)
        for m in mids:
            lay.add(m)
        lay.add(bots)
