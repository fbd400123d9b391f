"""``trace --probe``: send real packets along the static path and watch them.

The static trace says what the kernels *would* decide; a probe asks them to
decide. From SRC's namespace it sends ICMP echoes, a TCP SYN or UDP datagrams
(ordinary sockets: the kernel builds and routes them like any program's) and
watches, in every namespace on the path (and DST's):

- an nftables trace (:mod:`netlens.kernel.nfttrace`): the kernel reports each
  namespace the probe entered and any rule that dropped it, by name;
- the kernel's drop reason (:mod:`netlens.kernel.dropwatch`, ``skb:kfree_skb``);
- per-hop interface counters before and after (:mod:`netlens.kernel.probesock`),
  as evidence (ARP moves them too, so they never decide alone).

It names the hop where the probe died and says when that differs from the
static answer. Everything it adds (trace tables, tracefs instance, mount) is
removed in a ``finally``; the command turns SIGTERM and SIGHUP into the same
unwinding as Ctrl-C. Probes go only where the caller allows (see
:func:`check_target`).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from netlens.analysis.endpoints import Endpoint
from netlens.analysis.l2 import ns_paths
from netlens.analysis.probe_watch import FateWatch, is_request
from netlens.analysis.scope import World
from netlens.analysis.tracetypes import DELIVERED, DROPPED, LEAVES, UNKNOWN, TraceResult
from netlens.errors import UsageError
from netlens.kernel import nfttrace
from netlens.kernel.dropwatch import DropWatch
from netlens.kernel.nsquery import NsQuery
from netlens.kernel.probesock import (
    Counters,
    ip_length,
    link_counters,
    open_probe,
    refusal_name,
)
from netlens.model.types import Netns

COUNT = 3
WAIT_S = 0.8  # for an answer (a host's own namespaces answer in well under 10 ms)
MONITOR_READY_S = 3.0  # at most; usually a few ms
QUIET_S = 0.1  # the trace monitors have printed everything when quiet this long
SETTLE_CAP_S = 1.0
LAST_WAIT_S = 0.2


def check_target(dst: Endpoint, allow_external: bool) -> None:
    """Refuse to probe an address no namespace of this host owns (unless allowed)."""
    if dst.ns is None and not allow_external:
        raise UsageError(
            f"--probe: {dst.address} is not an address of any namespace on this host; "
            "add --allow-external to send packets there"
        )


def check_path(res: TraceResult, allow_external: bool) -> None:
    """Refuse to probe when the kernels' own path leaves the host (a DST address
    that a namespace here owns can still be routed out through an uplink)."""
    v = res.verdict
    if v.result == LEAVES and not allow_external:
        raise UsageError(
            f"--probe: the path to {res.query.get('dst')} "
            f"leaves this host ({v.reason}); add --allow-external to send packets there"
        )


@dataclass
class ProbeResult:
    """What the probe saw; ``died_at`` None when it got through (or unknown)."""

    proto: str
    sent: int
    answer: str | None
    result: str  # delivered, dropped, unknown
    died_at: int | None = None
    reason: str = ""
    evidence: list[str] = field(default_factory=list)
    seen_in: list[str] = field(default_factory=list)
    counters: list[dict[str, Any]] = field(default_factory=list)
    drops: list[dict[str, Any]] = field(default_factory=list)
    other_drops: int = 0
    nft: list[str] = field(default_factory=list)
    agrees: bool = True
    disagreement: str | None = None
    notes: list[str] = field(default_factory=list)
    refused_at_source: str | None = None  # SRC's kernel would not send it (strerror)
    beyond: list[str] = field(default_factory=list)  # seen in, but no static hop there

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _path(world: World, res: TraceResult, dst: Endpoint) -> list[Netns]:
    """Namespaces on the path (hops, the bridges crossed, DST's), in order."""
    ids: list[str] = []
    for hop in res.hops:
        ids.append(hop.netns)
        if hop.l2 is not None and hop.l2.bridge is not None:
            ids.append(hop.l2.bridge.netns)
        if hop.l2 is not None and hop.l2.ingress is not None:
            ids.append(hop.l2.ingress.netns)
    if dst.ns is not None:
        ids.append(dst.ns.id)
    out: list[Netns] = []
    for i in dict.fromkeys(ids):
        ns = world.netns(i)
        if ns is not None:
            out.append(ns)
    return out


def _watched(res: TraceResult) -> list[tuple[str, int, str]]:
    """(netns id, ifindex, label) of every interface the static path names."""
    out: dict[tuple[str, int], str] = {}
    for hop in res.hops:
        for itf in (hop.iif, hop.oif):
            if itf is not None:
                out.setdefault((itf.netns, itf.ifindex), f"{itf.netns_name}:{itf.name}")
        if hop.l2 is not None:
            for itf in (hop.l2.port, hop.l2.ingress):
                if itf is not None:
                    out.setdefault((itf.netns, itf.ifindex), f"{itf.netns_name}:{itf.name}")
    return [(k[0], k[1], v) for k, v in out.items()]


def _addresses(res: TraceResult) -> list[str]:
    addrs = [a for hop in res.hops for a in (hop.packet.src, hop.packet.dst) if a]
    return [a for a in dict.fromkeys(addrs) if _is_ip(a)]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _read_counters(
    q: NsQuery, world: World, watched: list[tuple[str, int, str]]
) -> dict[tuple[str, int], Counters | None]:
    out: dict[tuple[str, int], Counters | None] = {}
    for ns_id, ifindex, _label in watched:
        ns = world.netns(ns_id)
        if ns is None:
            continue
        try:
            out[(ns_id, ifindex)] = link_counters(q.sock(ns.inode, ns_paths(ns)), ifindex)
        except OSError:
            out[(ns_id, ifindex)] = None
    return out


def run_probe(
    world: World,
    q: NsQuery,
    res: TraceResult,
    src: Endpoint,
    dst: Endpoint,
    *,
    count: int = COUNT,
) -> ProbeResult:
    """Send ``count`` probes of the traced packet and watch them (see the module doc)."""
    assert src.ns is not None and dst.address is not None
    pkt0 = res.hops[0].packet if res.hops else None
    proto = str(res.query.get("proto") or "icmp")
    dport = res.query.get("dport")
    sport = res.query.get("sport")
    path = _path(world, res, dst)
    watched = _watched(res)
    addrs = _addresses(res) or [dst.address]
    armed: list[Netns] = []
    monitors: dict[int, nfttrace.Monitor] = {}
    drops = DropWatch()
    out = ProbeResult(proto, 0, None, "unknown")
    probe = None
    try:
        # Arming is not interruptible: a signal that came in the middle would leave
        # a table or a monitor the cleanup does not know about. It is acted on after.
        with _Deferred():
            # The monitors first: each takes tens of milliseconds to join the trace
            # group, time the tables' installation then runs in. A monitor traces
            # nothing before its namespace's table marks packets.
            failed: dict[int, OSError] = {}
            for ns in path:
                try:
                    monitors[ns.inode] = q.run(ns.inode, ns_paths(ns), nfttrace.start_monitor_here)
                except OSError as err:
                    failed[ns.inode] = err
            for ns in path:
                armed.append(ns)  # before: removing a table that never came is harmless
                try:
                    if ns.inode in failed:
                        raise failed[ns.inode]
                    swept = q.run(ns.inode, ns_paths(ns), lambda: nfttrace.install_here(addrs))
                    if swept:
                        out.notes.append(f"removed stale trace table(s) in {ns.name}: "
                                         f"{', '.join(swept)}")  # fmt: skip
                except OSError as err:
                    mon = monitors.pop(ns.inode, None)
                    if mon is not None:  # no table: its monitor would see nothing
                        nfttrace.stop_monitor(mon)
                    out.notes.append(f"no nft trace in {ns.name}: {err.strerror or err}")
            six = ":" in dst.address
            if not drops.start((0x86DD,) if six else (0x0800,), ip_length(proto, six)):
                out.notes.append(f"no kernel drop reasons: {drops.unavailable}")
            if drops.swept:
                out.notes.append(f"removed stale tracefs instance(s): {', '.join(drops.swept)}")
        # nft monitor joins the trace group some time after it starts: wait for it
        deadline = time.monotonic() + MONITOR_READY_S
        waiting = dict(monitors)
        while waiting and time.monotonic() < deadline:
            waiting = {
                i: m
                for i, m in waiting.items()
                if m.proc.poll() is None and not nfttrace.monitor_ready(m)
            }
            if waiting:
                time.sleep(0.01)
        for ns in path:
            mon = monitors.get(ns.inode)
            if mon is not None and mon.proc.poll() is not None:
                out.notes.append(f"the nft trace monitor in {ns.name} exited")
            elif ns.inode in waiting:
                out.notes.append(f"the nft trace monitor in {ns.name} was not ready in time")
        before = _read_counters(q, world, watched)
        src_ns = src.ns
        probe = q.run(
            src_ns.inode,
            ns_paths(src_ns),
            lambda: open_probe(
                proto,
                dst.address or "",
                src=(pkt0.src if pkt0 and src.address else None),
                device=src.iface.name if src.iface is not None else None,
                dport=int(dport) if dport else None,
                sport=int(sport) if sport else None,
            ),
        )
        sends = 1 if proto == "tcp" else count
        # A probe the kernel already reported dropped is not waited for to the end.
        watch = FateWatch(monitors, drops, _pairs(res, src, dst), dst.address or "")
        for seq in range(1, sends + 1):
            try:
                probe.send(seq)
            except OSError as err:
                # SRC's own kernel refused it (no route, an output rule): the
                # probe died at hop 1 and that errno is its answer.
                out.answer = refusal_name(err)
                out.refused_at_source = err.strerror or str(err)
                break
            out.sent += 1
            got = probe.answer(WAIT_S / sends, watch)
            if got is not None:
                out.answer = got
                break
            if watch.decided():
                break
        if out.answer is None and proto != "tcp" and not watch.decided():
            out.answer = probe.answer(LAST_WAIT_S, watch)
        if out.answer is None and watch.reason is not None:
            out.notes.append(f"stopped waiting after {out.sent} sent: {watch.reason}")
        watch.settle(QUIET_S, SETTLE_CAP_S)
        after = _read_counters(q, world, watched)
        for ns_id, ifindex, label in watched:
            b, a = before.get((ns_id, ifindex)), after.get((ns_id, ifindex))
            if b is None or a is None:
                continue
            out.counters.append(
                {
                    "interface": label,
                    "rx_packets": a.rx_packets - b.rx_packets,
                    "tx_packets": a.tx_packets - b.tx_packets,
                    "rx_dropped": a.rx_dropped - b.rx_dropped,
                    "tx_dropped": a.tx_dropped - b.tx_dropped,
                }
            )
        me = os.getpid()
        for d in drops.read():
            # The tracepoint is host-wide: drops in this process's own context (the
            # probe's softirq) or of an skb that arrived with the probe's length are
            # the probe's; the rest are counted.
            if d.pid == me or d.probe_skb:
                out.drops.append({"reason": d.reason, "location": d.location})
            else:
                out.other_drops += 1
    finally:
        with _Deferred():
            texts = _disarm(q, out, probe, monitors, armed, drops)
    _judge(out, res, path, texts, addrs, src, dst)
    return out


def _disarm(
    q: NsQuery,
    out: ProbeResult,
    probe: Any,
    monitors: dict[int, nfttrace.Monitor],
    armed: list[Netns],
    drops: DropWatch,
) -> dict[int, str]:
    """Remove everything the probe added; the monitors' output by namespace inode."""
    if probe is not None:
        probe.close()
    texts = {inode: nfttrace.stop_monitor(mon) for inode, mon in monitors.items()}
    removed: dict[int, bool] = {}

    def remove(ns: Netns) -> None:
        try:
            removed[ns.inode] = q.run(ns.inode, ns_paths(ns), nfttrace.remove_here)
        except Exception:  # an nft that hangs past its timeout too: reported, not raised
            removed[ns.inode] = False

    # Each table's removal mostly waits for its nft process, and none depends on
    # another: all at once. The tracefs instance only after them: a child forked
    # meanwhile holds this process's open files until it execs, and one of them in
    # tracefs would make the unmount fail.
    workers = [threading.Thread(target=remove, args=(ns,), name="netlens-disarm") for ns in armed]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    drops.close()
    left = [ns.name for ns in armed if not removed.get(ns.inode, False)]
    if left:
        out.notes.append(f"could not remove the trace table from {', '.join(left)}")
    if not drops.clean():
        out.notes.append("could not remove the tracefs instance or mount")
    return texts


class _Deferred:
    """Hold SIGINT, SIGTERM and SIGHUP while something must not be cut in half;
    one that arrived is raised as KeyboardInterrupt when the block ends (main
    thread only: elsewhere Python delivers no signals anyway)."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.got: int | None = None
        self.old: dict[int, Any] = {}

    def _hold(self, signum: int, _frame: object) -> None:
        self.got = signum

    def __enter__(self) -> _Deferred:
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._hold) for s in self._SIGNALS}
        return self

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        if self.got is not None and exc_type is None:
            raise KeyboardInterrupt(f"signal {self.got}")


def _judge(
    out: ProbeResult,
    res: TraceResult,
    path: list[Netns],
    texts: dict[int, str],
    addrs: list[str],
    src: Endpoint,
    dst: Endpoint,
) -> None:
    """Where the probe died, from the kernels' own reports; then compare."""
    pairs = _pairs(res, src, dst)
    dropped_by: dict[str, str] = {}
    seen: set[str] = set()
    own = nfttrace.table_name()
    for ns in path:
        # The kernel reuses trace ids (a reply can get a request's id): each
        # "packet:" line says what the id's next lines are about.
        requests: dict[str, bool] = {}
        for ev in nfttrace.parse(texts.get(ns.inode, "")):
            if ev.text.startswith("packet:"):
                requests[ev.trace] = is_request(ev.text, pairs, dst.address or "")
            if not requests.get(ev.trace, False):
                continue
            seen.add(ns.id)
            if ev.table != own and ev.verdict in ("drop", "reject"):
                line = f"{ns.name}: {ev.where}: {ev.text}"
                dropped_by.setdefault(ns.id, line)
                out.nft.append(line)
    out.seen_in = [ns.name for ns in path if ns.id in seen]
    hop_of = {h.netns: h.index for h in res.hops}
    got_answer = out.answer in ("reply", "refused")
    if got_answer:
        out.drops.clear()  # e.g. the reply's copy no ping socket wanted: not the probe's fate
        out.result = DELIVERED
        out.reason = f"{out.proto} probe answered ({out.answer})"
        if out.answer == "refused":
            out.reason += ": the destination's kernel refused it (nothing listens)"
    else:
        out.result = DROPPED
        # the furthest namespace on the path the kernel saw the probe in
        last = next((ns for ns in reversed(path) if ns.id in seen), None)
        where = next((ns_id for ns_id in dropped_by), None)
        if out.refused_at_source is not None and where is None:
            first = res.hops[0] if res.hops else None
            out.died_at = first.index if first else 1
            out.reason = (
                f"the kernel of {first.netns_name if first else 'SRC'} refused to send it: "
                f"{out.refused_at_source}"
            )
        elif where is not None:
            out.died_at = hop_of.get(where)
            out.reason = f"dropped by an nftables rule in {_name(path, where)}{_off(where, hop_of)}"
            out.evidence.append(dropped_by[where])
        elif last is not None:
            out.died_at = hop_of.get(last.id)
            at = f" (hop {out.died_at})" if out.died_at is not None else _off(last.id, hop_of)
            out.reason = f"last seen in {last.name}{at}"
        elif not texts:
            # no trace monitor ran: only the drop reason (if any) says what happened
            out.result = DROPPED if out.drops else UNKNOWN
            out.reason = "no answer, and no nft trace to say where it went"
        else:
            out.reason = "not seen in any namespace on the path"
        # (a namespace the path only bridges through may see frames with br_netfilter)
        bridging = {h.l2.bridge.netns for h in res.hops if h.l2 and h.l2.bridge}
        out.beyond = [
            ns.name for ns in path if ns.id in seen and ns.id not in hop_of.keys() | bridging
        ]
        if out.drops:
            d = out.drops[0]
            out.evidence.append(f"kernel drop reason {d['reason']} at {d['location']}")
            if where is None:
                out.reason += f"; the kernel dropped it: {d['reason']}"
    _compare(out, res)


def _off(ns_id: str, hop_of: dict[str, int]) -> str:
    return "" if ns_id in hop_of else " (not a hop of the static path)"


def _name(path: list[Netns], ns_id: str) -> str:
    return next((ns.name for ns in path if ns.id == ns_id), ns_id)


def _pairs(res: TraceResult, src: Endpoint, dst: Endpoint) -> set[tuple[str, str]]:
    """The probe's packets as each hop sees them (NAT rewrites them on the way)."""
    pairs = {(h.packet.src, h.packet.dst) for h in res.hops}
    if src.address and dst.address:
        pairs.add((src.address, dst.address))
    return pairs


def _compare(out: ProbeResult, res: TraceResult) -> None:
    static = res.verdict
    if static.result == DELIVERED and out.result == DROPPED:
        out.agrees = False
        out.disagreement = (
            f"the static trace says delivered, but the probe died"
            f"{f' at hop {out.died_at}' if out.died_at else ''}: {out.reason}"
        )
    elif static.result == DROPPED and out.result == DELIVERED and out.answer != "refused":
        out.agrees = False
        out.disagreement = (
            f"the static trace says dropped at hop {static.hop} ({static.reason}), "
            "but the probe was answered"
        )
    elif static.result == DROPPED and out.beyond:
        out.agrees = False
        out.disagreement = (
            f"the static trace says dropped at hop {static.hop} ({static.reason}), "
            f"but the probe got further: into {', '.join(out.beyond)}"
        )
    elif (
        static.result == DROPPED
        and out.result == DROPPED
        and out.died_at is not None
        and static.hop is not None
        and out.died_at != static.hop
    ):
        out.agrees = False
        out.disagreement = (
            f"the static trace says dropped at hop {static.hop}, "
            f"the probe died at hop {out.died_at}"
        )
