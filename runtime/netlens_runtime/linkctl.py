"""Traffic control and link state inside a node's namespace, with pyroute2.

This is the only runtime module that imports pyroute2 (~150 ms): tc requests
(qdiscs, classes, filters with actions) are a large, versioned wire format that
pyroute2 encodes well, while the runtime's own small codec
(:mod:`netlens_runtime.netlink`) only knows the few messages ``run`` needs.
Nothing on a start-up path imports this module: :mod:`netlens_runtime.linkops`
imports it inside the functions that change links.

What one impaired interface gets (the handles say "NL", so netlens only ever
removes qdiscs and filters it made):

- egress: a ``tbf`` root (handle ``4e4c:``) for a rate, with a ``netem`` child
  (``4e4d:``) for delay, jitter, corruption, duplication (and loss, when netem
  runs anyway); without a rate, netem itself is the root;
- ingress: an ``ingress`` qdisc whose u32 filter (priority 0x4e4c) redirects
  every packet with ``mirred`` to an ``ifb`` device of the same namespace,
  which gets the same egress tree. The ifb hands the packets back to the
  stack afterwards, so ingress is shaped exactly like egress.

Requests are built as :class:`TcRequest` values and sent with
``IPRoute.tc``; :func:`compile_requests` encodes the same values with
pyroute2's ``IPBatch`` so unit tests check the bytes the kernel would get,
including netem, which this project's kernel lacks.

:class:`Tc` works in the namespace of the thread that makes it: callers run it
through :func:`netlens.kernel.nsenter.call_in`, whose worker thread
``setns``es into an fd the caller opened and checked, and goes home after; no
namespace is ever created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import zlib
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPBatch, IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netlens_runtime.errors import NotFound, RuntimeFailure
from netlens_runtime.lab_impair import Impair, loss_in_netem

HANDLE = 0x4E4C0000
"""Our root qdisc (``4e4c:``, "NL")."""
CHILD = 0x4E4D0000
"""netem under our tbf (``4e4d:``)."""
TC_H_ROOT = 0xFFFFFFFF
INGRESS = 0xFFFF0000
FILTER_PRIO = 0x4E4C
ETH_P_ALL = 0x0003
LATENCY_US = 50_000
"""How long tbf may queue a packet before dropping it (the queue's length in time)."""
MIN_BURST = 16 * 1024
RTPROT_KERNEL = 2
RT_TABLE_LOCAL = 255


class NetemMissing(RuntimeFailure):
    """netem was needed and the kernel has no such qdisc: nothing was changed."""


@dataclass(frozen=True, slots=True)
class TcRequest:
    """One ``IPRoute.tc(command, kind, **kwargs)`` call, kept as data."""

    command: str
    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        dev = self.kwargs.get("index")
        return f"tc {self.command} {self.kind} on link {dev}"


def ifb_name(ifname: str) -> str:
    """The ifb device that carries ``ifname``'s ingress (per namespace, <= 15 bytes)."""
    return f"nlifb{zlib.crc32(ifname.encode()):08x}"


def tbf_burst(rate_bits: int) -> int:
    """Bucket size in bytes: 10 ms worth of the rate, at least 16 KiB.

    Less than one timer tick's worth starves the link below its rate; much more
    lets a burst through at line speed before the limit bites.
    """
    return max(rate_bits // 8 // 100, MIN_BURST)


def netem_params(imp: Impair) -> dict[str, Any]:
    """pyroute2's netem keywords for ``imp`` (times in microseconds, percentages)."""
    out: dict[str, Any] = {}
    if imp.delay:
        out["delay"] = imp.delay
    if imp.jitter:
        out["jitter"] = imp.jitter
    if imp.loss and loss_in_netem(imp):
        out["loss"] = imp.loss
    if imp.duplicate:
        out["duplicate"] = imp.duplicate
    if imp.corrupt:
        out["prob_corrupt"] = imp.corrupt
    return out


def qdisc_tree(index: int, imp: Impair) -> list[TcRequest]:
    """The qdiscs that give link ``index`` the rate and netem part of ``imp``.

    Empty when nothing needs a qdisc (no impairment, or only a loss that
    nftables applies).
    """
    netem = netem_params(imp) if imp.netem_fields() else {}
    reqs: list[TcRequest] = []
    if imp.rate:
        reqs.append(
            TcRequest(
                "add",
                "tbf",
                {
                    "index": index,
                    "handle": HANDLE,
                    "parent": TC_H_ROOT,
                    "rate": imp.rate // 8,  # pyroute2: an int rate is bytes per second
                    "burst": tbf_burst(imp.rate),
                    "latency": LATENCY_US,
                },
            )
        )
        if netem:
            kwargs = {"index": index, "handle": CHILD, "parent": HANDLE | 1, **netem}
            reqs.append(TcRequest("add", "netem", kwargs))
    elif netem:
        reqs.append(
            TcRequest(
                "add", "netem", {"index": index, "handle": HANDLE, "parent": TC_H_ROOT, **netem}
            )
        )
    return reqs


def redirect_requests(index: int, ifb_index: int, add_qdisc: bool = True) -> list[TcRequest]:
    """Every packet arriving on ``index`` goes to ``ifb_index``'s egress (mirred redirect)."""
    reqs = [TcRequest("add", "ingress", {"index": index})] if add_qdisc else []
    reqs.append(
        TcRequest(
            "add-filter",
            "u32",
            {
                "index": index,
                "parent": INGRESS,
                "prio": FILTER_PRIO,
                "protocol": ETH_P_ALL,
                "target": 0x10000,
                "keys": ["0x0/0x0+0"],
                "action": {
                    "kind": "mirred",
                    "direction": "egress",
                    "action": "redirect",
                    "ifindex": ifb_index,
                },
            },
        )
    )
    return reqs


def compile_requests(reqs: list[TcRequest]) -> list[bytes]:
    """The netlink messages pyroute2 would send for ``reqs``, one bytes each (sends nothing)."""
    out = []
    batch = IPBatch()
    try:
        for req in reqs:
            batch.reset()
            batch.tc(req.command, req.kind, **req.kwargs)
            out.append(bytes(batch.batch))
    finally:
        batch.close()
    return out


def _reason(err: NetlinkError) -> str:
    text = str(err.args[1]) if len(err.args) > 1 else ""
    return text or os.strerror(err.code)


class Tc:
    """tc and link requests in the namespace of the thread that made it.

    Make it inside :func:`netlens.kernel.nsenter.call_in`'s function and close it there: pyroute2
    sockets belong to the thread that opened them.
    """

    def __init__(self) -> None:
        self.ipr = IPRoute(ext_ack=True)

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> Tc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- links
    def index(self, ifname: str) -> int:
        found = self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise NotFound(f"no interface {ifname}")
        return int(found[0])

    def has_link(self, ifname: str) -> bool:
        return bool(self.ipr.link_lookup(ifname=ifname))

    def peer_index(self, ifname: str) -> int | None:
        """The veth peer's ifindex (in the peer's namespace), or None for other kinds."""
        msg = self.ipr.get_links(self.index(ifname))[0]
        link = msg.get("IFLA_LINK")
        return int(link) if link else None

    def set_state(self, ifname: str, up: bool) -> None:
        self.ipr.link("set", index=self.index(ifname), state="up" if up else "down")

    def is_up(self, ifname: str) -> bool:
        msg = self.ipr.get_links(self.index(ifname))[0]
        return bool(msg["flags"] & 1)

    # -- traffic control
    def send(self, reqs: list[TcRequest]) -> None:
        for req in reqs:
            try:
                self.ipr.tc(req.command, req.kind, **req.kwargs)
            except NetlinkError as err:
                if req.kind == "netem" and err.code == errno.ENOENT:
                    raise NetemMissing("netem") from None
                raise RuntimeFailure(f"{req.describe()}: {_reason(err)}") from None

    def probe_netem(self) -> None:
        """NetemMissing unless the kernel takes a netem qdisc, asked on a scratch ifb.

        Asked before anything on the interface changes, so that a kernel without
        netem refuses a ``link set`` while the old settings still stand untouched.
        Without ifb support the probe cannot run; the real request then decides.
        """
        scratch = f"nlprobe{os.getpid() % 100000:05d}"[:15]
        try:
            self.ipr.link("add", ifname=scratch, kind="ifb")
        except NetlinkError:
            return
        try:
            self.send([TcRequest("add", "netem", {"index": self.index(scratch), "delay": 1000})])
        finally:
            with contextlib.suppress(NetlinkError):
                self.ipr.link("del", ifname=scratch)

    def _qdiscs(self, index: int) -> list[Any]:
        return [m for m in self.ipr.get_qdiscs(index=index) if m["index"] == index]

    def _our_filters(self, index: int) -> tuple[bool, bool]:
        """(our redirect filter is there, any other filter is there) on the ingress hook."""
        ours = other = False
        for msg in self.ipr.get_filters(index=index, parent=INGRESS):
            if msg["index"] != index or not msg.get_attr("TCA_KIND"):
                continue
            if msg["info"] >> 16 == FILTER_PRIO:
                ours = True
            else:
                other = True
        return ours, other

    def clear(self, ifname: str) -> None:
        """Remove what netlens put on ``ifname``: our root qdisc, our ingress
        redirect (and the ingress qdisc if nothing else uses it), our ifb.

        Anything else on the interface stays. Missing pieces are fine.
        """
        index = self.index(ifname)
        for msg in self._qdiscs(index):
            if msg["parent"] == TC_H_ROOT and msg["handle"] == HANDLE:
                self._quiet("del", index=index, parent=TC_H_ROOT, handle=HANDLE)
        if any(m["handle"] == INGRESS for m in self._qdiscs(index)):
            ours, other = self._our_filters(index)
            if ours and not other:
                self._quiet("del", index=index, parent=INGRESS, handle=INGRESS)
            elif ours:
                with contextlib.suppress(NetlinkError):
                    self.ipr.tc(
                        "del-filter", index=index, parent=INGRESS, prio=FILTER_PRIO,
                        protocol=ETH_P_ALL,
                    )  # fmt: skip
        ifb = ifb_name(ifname)
        if self.has_link(ifb):
            with contextlib.suppress(NetlinkError):
                self.ipr.link("del", ifname=ifb)

    def _quiet(self, command: str, **kwargs: Any) -> None:
        with contextlib.suppress(NetlinkError):
            self.ipr.tc(command, **kwargs)

    def shape(self, ifname: str, egress: Impair, ingress: Impair) -> str | None:
        """Put ``egress`` and ``ingress`` on ``ifname`` (cleared first by the caller).

        Returns the ifb's name when ingress needed one. Raises
        :class:`NetemMissing` or :class:`RuntimeFailure`; the caller clears again.
        """
        index = self.index(ifname)
        self.send(qdisc_tree(index, egress))
        reqs_in = qdisc_tree(0, ingress)
        if not reqs_in:
            return None
        ifb = ifb_name(ifname)
        try:
            self.ipr.link("add", ifname=ifb, kind="ifb")
        except NetlinkError as err:
            raise RuntimeFailure(f"creating {ifb} for {ifname}'s ingress: {_reason(err)}") from None
        ifb_index = self.index(ifb)
        # A plumbing device: no IPv6 link-local address showing up in the node.
        with (
            contextlib.suppress(OSError),
            open(f"/proc/sys/net/ipv6/conf/{ifb}/disable_ipv6", "w") as fh,
        ):
            fh.write("1")
        self.ipr.link("set", index=ifb_index, state="up")
        self.send(qdisc_tree(ifb_index, ingress))
        has_ingress = any(m["handle"] == INGRESS for m in self._qdiscs(index))
        self.send(redirect_requests(index, ifb_index, add_qdisc=not has_ingress))
        return ifb

    def read(self, ifname: str) -> list[dict[str, Any]]:
        """Our qdiscs on ``ifname`` and its ifb, as the kernel reports them (for tests)."""
        out = []
        for dev in (ifname, ifb_name(ifname)):
            if not self.has_link(dev):
                continue
            for msg in self._qdiscs(self.index(dev)):
                if msg["handle"] in (HANDLE, CHILD):
                    out.append({"dev": dev, "kind": msg.get_attr("TCA_KIND")})
        return out

    # -- routes (link down takes them; link up puts them back)
    def routes_via(self, ifname: str) -> list[dict[str, Any]]:
        """Routes of every table leaving through ``ifname`` that the kernel would
        not make again by itself (no connected, local or link-local ones)."""
        index = self.index(ifname)
        out: list[dict[str, Any]] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self.ipr.route("dump", family=family):
                if msg.get_attr("RTA_OIF") != index or msg["proto"] == RTPROT_KERNEL:
                    continue
                table = msg.get_attr("RTA_TABLE") or msg["table"]
                if table == RT_TABLE_LOCAL:
                    continue
                dst = msg.get_attr("RTA_DST")
                route = {
                    "family": family,
                    "dst": f"{dst}/{msg['dst_len']}" if dst else None,
                    "gateway": msg.get_attr("RTA_GATEWAY"),
                    "prefsrc": msg.get_attr("RTA_PREFSRC"),
                    "priority": msg.get_attr("RTA_PRIORITY"),
                    "table": table,
                    "proto": msg["proto"],
                    "scope": msg["scope"],
                    "type": msg["type"],
                }
                out.append(route)
        return out

    def restore_routes(self, ifname: str, routes: list[dict[str, Any]]) -> list[str]:
        """Put ``routes`` back through ``ifname``; return the ones the kernel refused."""
        index = self.index(ifname)
        failed = []
        for r in routes:
            kwargs = {k: v for k, v in r.items() if v is not None and k != "dst"}
            kwargs["dst"] = r["dst"] or ("default" if r["family"] == socket.AF_INET else "::/0")
            try:
                self.ipr.route("replace", oif=index, **kwargs)
            except NetlinkError as err:
                failed.append(f"{kwargs['dst']} via {r.get('gateway') or ifname}: {_reason(err)}")
        return failed


def keep_addresses(ifname: str) -> str | None:
    """Keep ``ifname``'s IPv6 addresses across a down/up (the thread's namespace).

    IPv4 addresses survive an admin down, IPv6 ones do not unless
    ``keep_addr_on_down`` is set. Returns the old value to put back, or None
    when the interface has no IPv6.
    """
    path = f"/proc/sys/net/ipv6/conf/{ifname}/keep_addr_on_down"
    try:
        with open(path) as fh:
            old = fh.read().strip()
        with open(path, "w") as fh:
            fh.write("1")
    except OSError:
        return None
    return old


def put_back_keep(ifname: str, old: str | None) -> None:
    if old is None:
        return
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{ifname}/keep_addr_on_down", "w") as fh,
    ):
        fh.write(old)
