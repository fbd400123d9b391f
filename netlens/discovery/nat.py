"""NAT rules per namespace: nftables, iptables-nft and iptables-legacy.

An engineer asks "who gets translated to what": masquerade towards an uplink,
a published port (dnat), a transparent proxy (redirect). Those live in three
places the kernel keeps apart: nftables tables (native ``nft`` rules),
iptables-nft rules (nftables tables whose targets are opaque ``xt`` blobs in
``nft -j`` output) and iptables-legacy tables (invisible to nft altogether).

Reading all of that by running tools in 1000 namespaces would take seconds, so
we probe first, cheaply, from one worker thread that enters each namespace:

- one raw NFT_MSG_GETCHAIN dump on a NETLINK_NETFILTER socket tells which
  namespaces have a chain of type ``nat`` at all (and the FORWARD policies);
- ``/proc/thread-self/net/ip_tables_names`` (and ip6) tells which have an
  iptables-legacy ``nat`` table. Running ``iptables-legacy-save`` blindly would
  *create* the table, so we never do that.

Only for namespaces that have NAT do we run ``nsenter --net=PATH nft -j list
ruleset`` (plus ``iptables-nft-save`` for tables with xt targets, and
``iptables-legacy-save``). pyroute2 stays off this path: its import alone costs
more than the whole probe.

This module is that probe (and the place NAT rules begin: the overview above).
:mod:`netlens.discovery.nat_rules` parses the tools' output into the model's
rules, and :mod:`netlens.discovery.nat_tools` runs the tools where the probe saw
NAT (:func:`~netlens.discovery.nat_tools.read_nat`, the entry point).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from netlens.discovery.nsfind import NsHandle
from netlens.kernel import consts, nsenter
from netlens.kernel.wire import attr_map

_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
_INET_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")


# --- probing inside each namespace ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class NftChain:
    """One nftables chain as the kernel lists it (no rules)."""

    family: str
    table: str
    name: str
    type: str | None = None  # filter, nat, route; None for a regular (non-base) chain
    hook: str | None = None
    policy: str | None = None  # accept, drop (base chains only)


@dataclass(frozen=True, slots=True)
class NsProbe:
    """What one cheap look inside a namespace found."""

    chains: tuple[NftChain, ...] = ()
    legacy_tables4: tuple[str, ...] = ()  # ip_tables_names
    legacy_tables6: tuple[str, ...] = ()  # ip6_tables_names
    br_nf_call_iptables: bool | None = None  # None: br_netfilter not loaded
    errors: tuple[str, ...] = field(default=())

    @property
    def nft_nat(self) -> bool:
        return any(c.type == "nat" for c in self.chains)

    @property
    def legacy_nat4(self) -> bool:
        return "nat" in self.legacy_tables4

    @property
    def legacy_nat6(self) -> bool:
        return "nat" in self.legacy_tables6


def _cstr(raw: bytes | None) -> str | None:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") if raw is not None else None


def parse_chain_dump(data: bytes) -> tuple[list[NftChain], bool]:
    """Parse NFT_MSG_NEWCHAIN messages from one recv() buffer.

    Returns the chains and whether the dump ended (NLMSG_DONE). Raises OSError
    for a netlink error reply (e.g. EPERM without CAP_NET_ADMIN).
    """
    chains: list[NftChain] = []
    off = 0
    while off + 16 <= len(data):
        ln, typ, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
        if ln < 16:
            return chains, True
        if typ == consts.NLMSG_DONE:
            return chains, True
        if typ == consts.NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + 16)
            if err:
                raise OSError(-err, os.strerror(-err))
            return chains, True
        if typ == (consts.NFNL_SUBSYS_NFTABLES << 8) | consts.NFT_MSG_NEWCHAIN and ln >= 20:
            family = _FAMILIES.get(data[off + 16], str(data[off + 16]))
            at = attr_map(data, off + 20, off + ln)
            hook: str | None = None
            if consts.NFTA_CHAIN_HOOK in at:
                nested = at[consts.NFTA_CHAIN_HOOK]
                hk = attr_map(nested, 0, len(nested)).get(consts.NFTA_HOOK_HOOKNUM)
                if hk is not None and len(hk) >= 4:
                    num = struct.unpack(">I", hk[:4])[0]
                    hook = _INET_HOOKS[num] if num < len(_INET_HOOKS) else str(num)
            policy: str | None = None
            pol = at.get(consts.NFTA_CHAIN_POLICY)
            if pol is not None and len(pol) >= 4:
                policy = "accept" if struct.unpack(">I", pol[:4])[0] == 1 else "drop"
            chains.append(
                NftChain(
                    family=family,
                    table=_cstr(at.get(consts.NFTA_CHAIN_TABLE)) or "",
                    name=_cstr(at.get(consts.NFTA_CHAIN_NAME)) or "",
                    type=_cstr(at.get(consts.NFTA_CHAIN_TYPE)),
                    hook=hook,
                    policy=policy,
                )
            )
        off += (ln + 3) & ~3
    return chains, False


def _send_getchain(sock: socket.socket, seq: int = 1) -> None:
    msg_type = (consts.NFNL_SUBSYS_NFTABLES << 8) | consts.NFT_MSG_GETCHAIN
    req = struct.pack("=IHHII", 20, msg_type, consts.NLM_F_REQUEST | consts.NLM_F_DUMP, seq, 0)
    req += struct.pack("=BBH", 0, 0, 0)  # nfgenmsg: NFPROTO_UNSPEC, version 0, res_id 0
    sock.settimeout(2.0)
    sock.send(req)


def _recv_chains(sock: socket.socket) -> list[NftChain]:
    chains: list[NftChain] = []
    while True:
        data = sock.recv(1 << 17)
        if not data:
            return chains
        got, done = parse_chain_dump(data)
        chains.extend(got)
        if done:
            return chains


def dump_chains(sock: socket.socket, seq: int = 1) -> list[NftChain]:
    """Every nftables chain of the socket's namespace (one GETCHAIN dump)."""
    _send_getchain(sock, seq)
    return _recv_chains(sock)


def _read_names(path: str) -> tuple[str, ...]:
    """Lines of a small procfs list. Raw os calls: in a setns pass over 1000
    namespaces a buffered text ``open()`` costs about three times as much."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ()
    try:
        parts: list[bytes] = []
        while chunk := os.read(fd, 4096):
            parts.append(chunk)
    except OSError:
        return ()
    finally:
        os.close(fd)
    text = b"".join(parts).decode("ascii", "replace")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


LEGACY4 = "/proc/thread-self/net/ip_tables_names"
LEGACY6 = "/proc/thread-self/net/ip6_tables_names"


@dataclass(slots=True)
class StartedProbe:
    """A probe begun inside a namespace (:func:`start_probe`); the chain dump's
    reply waits on ``sock`` until :func:`finish_probe` reads it from any thread."""

    sock: socket.socket | None
    legacy_tables4: tuple[str, ...]
    legacy_tables6: tuple[str, ...]
    errors: list[str]


def legacy_present() -> bool:
    """Whether iptables-legacy lists exist at all (ip_tables loaded or built in).
    The procfs entries are made in every namespace or in none, so asking the
    caller's own namespace once spares two failed opens per namespace."""
    return os.path.exists(LEGACY4) or os.path.exists(LEGACY6)


def start_probe(legacy: bool = True) -> StartedProbe:
    """Runs inside the namespace (the setns worker thread): open a
    NETLINK_NETFILTER socket and send the GETCHAIN dump (the kernel builds the
    reply now, in this namespace), and read the legacy table names. Lets the
    discovery pass that opens the rtnetlink sockets probe NAT in the same visit."""
    errors: list[str] = []
    sock: socket.socket | None = None
    try:
        sock = nsenter.netlink_socket(consts.NETLINK_NETFILTER, rcvbuf=1 << 16)
        try:
            _send_getchain(sock)
        except OSError:
            sock.close()
            raise
    except OSError as err:
        sock = None
        errors.append(f"nftables chain dump: {err.strerror or err}")
    return StartedProbe(
        sock,
        _read_names(LEGACY4) if legacy else (),
        _read_names(LEGACY6) if legacy else (),
        errors,
    )


def finish_probe(started: StartedProbe, br_nf_call_iptables: bool | None = None) -> NsProbe:
    """Collect the chain dump of a :func:`start_probe` and close its socket."""
    chains: list[NftChain] = []
    errors = started.errors
    if started.sock is not None:
        try:
            chains = _recv_chains(started.sock)
        except OSError as err:
            errors.append(f"nftables chain dump: {err.strerror or err}")
        finally:
            started.sock.close()
            started.sock = None
    return NsProbe(
        chains=tuple(chains),
        legacy_tables4=started.legacy_tables4,
        legacy_tables6=started.legacy_tables6,
        br_nf_call_iptables=br_nf_call_iptables,
        errors=tuple(errors),
    )


_WIRE_PROBES: dict[tuple[bytes | str, str, str], NsProbe] = {}


def probe_from_wire(chain: bytes | str, legacy4: str, legacy6: str) -> NsProbe:
    """The probe the discovery helper process made (``serve.py`` STATUS_NAT): the
    raw chain dump bytes (or "errno:text"), and the legacy table lists' text.

    Most namespaces answer alike (no chains, the same table lists): equal
    answers share one probe, parsed once (NsProbe is frozen), instead of a
    thousand parses at the end of the walk."""
    key = (chain, legacy4, legacy6)
    hit = _WIRE_PROBES.get(key)
    if hit is None:
        hit = _probe_from_wire(chain, legacy4, legacy6)
        if len(_WIRE_PROBES) >= 1024:  # base chains carry counters: answers that
            _WIRE_PROBES.clear()  # changed since are never asked again (the TUI)
        _WIRE_PROBES[key] = hit
    return hit


def _probe_from_wire(chain: bytes | str, legacy4: str, legacy6: str) -> NsProbe:
    errors: list[str] = []
    chains: list[NftChain] = []
    if isinstance(chain, str):
        _code, _, text = chain.partition(":")
        errors.append(f"nftables chain dump: {text or chain}")
    else:
        try:
            chains, _done = parse_chain_dump(chain)
        except OSError as err:
            errors.append(f"nftables chain dump: {err.strerror or err}")

    def names(text: str) -> tuple[str, ...]:
        return tuple(line.strip() for line in text.splitlines() if line.strip())

    return NsProbe(
        chains=tuple(chains),
        legacy_tables4=names(legacy4),
        legacy_tables6=names(legacy6),
        errors=tuple(errors),
    )


def probe_here(_target: int | str, with_br_nf: bool = False) -> NsProbe:
    """Runs inside the namespace (worker thread): chains, legacy tables, br_nf."""
    started = start_probe()
    br: bool | None = None
    if with_br_nf:  # opening a sysctl in a namespace costs ~1 ms: only when asked
        try:
            with open("/proc/sys/net/bridge/bridge-nf-call-iptables", encoding="ascii") as fh:
                br = fh.read().strip() == "1"
        except OSError:
            br = None
    return finish_probe(started, br)


def probe(handles: Sequence[NsHandle], *, with_br_nf: bool = False) -> list[NsProbe | None]:
    """Probe every namespace from one setns worker thread; None where it vanished.

    ``with_br_nf`` also reads net.bridge.bridge-nf-call-iptables (for
    :func:`forward_policy_warning`); it is off by default because opening a
    sysctl file in each namespace costs about a millisecond.
    """
    expected = {h.path: h.inode for h in handles}

    def probe_one(target: int | str) -> NsProbe:
        # A /proc/PID/ns/net path may now be a reused pid in another namespace.
        if os.stat("/proc/thread-self/ns/net").st_ino != expected.get(str(target)):
            raise OSError(errno.ESTALE, f"{target} is no longer the namespace found")
        return probe_here(target, with_br_nf=with_br_nf)

    results = nsenter.run_in_netns([h.path for h in handles], probe_one)
    return [None if isinstance(r, OSError) else r for r in results]
