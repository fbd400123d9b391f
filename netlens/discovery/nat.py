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
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netlens.discovery.nsfind import NsHandle
from netlens.kernel import consts, nsenter
from netlens.model import NatRule

log = logging.getLogger(__name__)

_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
_INET_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
_IPT_HOOKS = {
    "PREROUTING": "prerouting",
    "INPUT": "input",
    "FORWARD": "forward",
    "OUTPUT": "output",
    "POSTROUTING": "postrouting",
}
_NAT_ACTIONS = ("masquerade", "snat", "dnat", "redirect")
_IPT_TARGETS = {"MASQUERADE": "masquerade", "SNAT": "snat", "DNAT": "dnat", "REDIRECT": "redirect"}
_TOOL_TIMEOUT_S = 10.0
_MAX_PARALLEL = 4


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


def _attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """Netlink attributes in ``data[start:end]`` by type (nested flag masked)."""
    out: dict[int, bytes] = {}
    off = start
    while off + 4 <= end:
        ln, typ = struct.unpack_from("=HH", data, off)
        if ln < 4:
            break
        out[typ & 0x3FFF] = data[off + 4 : off + ln]
        off += (ln + 3) & ~3
    return out


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
            at = _attrs(data, off + 20, off + ln)
            hook: str | None = None
            if consts.NFTA_CHAIN_HOOK in at:
                nested = at[consts.NFTA_CHAIN_HOOK]
                hk = _attrs(nested, 0, len(nested)).get(consts.NFTA_HOOK_HOOKNUM)
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


def _probe_here(_target: int | str, with_br_nf: bool = False) -> NsProbe:
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
        return _probe_here(target, with_br_nf=with_br_nf)

    results = nsenter.run_in_netns([h.path for h in handles], probe_one)
    return [None if isinstance(r, OSError) else r for r in results]


# --- formatting helpers ------------------------------------------------------------
def _fmt_value(v: Any) -> str:
    """An nft JSON right-hand side as nft prints it."""
    if isinstance(v, dict):
        if "prefix" in v and isinstance(v["prefix"], dict):
            return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
        if "range" in v and isinstance(v["range"], list):
            return "-".join(_fmt_value(x) for x in v["range"])
        if "set" in v:
            items = v["set"] if isinstance(v["set"], list) else [v["set"]]
            return "{ " + ", ".join(_fmt_value(x) for x in items) + " }"
        if not v:
            return "{}"  # nothing to show; never a KeyError that would end the parse
        key = next(iter(v))
        return f"{key} {_fmt_value(v[key])}" if v[key] is not None else str(key)
    if isinstance(v, list):
        return "{ " + ", ".join(_fmt_value(x) for x in v) + " }"
    return str(v)


def _fmt_left(left: Any) -> tuple[str, str | None, str | None]:
    """(text, kind, field) of a match's left side; kind is payload protocol or 'meta'."""
    if isinstance(left, dict) and left:
        key, val = next(iter(left.items()))
        if key == "payload" and isinstance(val, dict):
            proto, fld = str(val.get("protocol", "")), str(val.get("field", ""))
            return f"{proto} {fld}", proto, fld
        if key == "meta" and isinstance(val, dict):
            mk = str(val.get("key", ""))
            text = mk if mk in ("iifname", "oifname", "iif", "oif") else f"meta {mk}"
            return text, "meta", mk
        if isinstance(val, dict):
            extra = " ".join(str(x) for k, x in val.items() if k in ("key", "field") and x)
            return f"{key} {extra}".strip(), key, None
        return str(key), key, None
    return str(left), None, None


def _split_addr_port(spec: str) -> tuple[str | None, str | None]:
    """``1.2.3.4:80``, ``[fd00::1]:80``, ``1.2.3.4-1.2.3.9:1000-2000``, ``fd00::1``, ``::1``."""
    if not spec:
        return None, None
    if spec.startswith("["):
        addr, _, rest = spec[1:].partition("]")
        return addr or None, rest.lstrip(":") or None
    if spec.count(":") == 1:  # ":8080" too; "::1" and "fd00::1" are bare addresses
        addr, _, port = spec.partition(":")
        return addr or None, port or None
    return spec, None


def _neg(op: str, text: str) -> str:
    return f"!{text}" if op == "!=" else text


# --- nftables JSON -----------------------------------------------------------------
@dataclass(slots=True)
class _Draft:
    """Fields gathered while walking one rule's expressions."""

    proto: str | None = None
    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    dport: str | None = None
    action: str | None = None
    to_addr: str | None = None
    to_port: str | None = None
    parts: list[str] = field(default_factory=list)


def _nft_expr(d: _Draft, expr: dict[str, Any], jumps: list[str]) -> bool:
    """Fold one expression into ``d``; True when it is an iptables-nft xt NAT target."""
    key, val = next(iter(expr.items())) if expr else ("", None)
    if key == "match" and isinstance(val, dict):
        op = str(val.get("op", "=="))
        ltext, kind, fld = _fmt_left(val.get("left"))
        right = _fmt_value(val.get("right"))
        named = kind == "meta" and fld in ("iifname", "oifname") and not right.startswith("@")
        shown = f'"{right}"' if named else right  # a set reference (@name) is not quoted
        d.parts.append(f"{ltext} {'' if op in ('==', 'in') else op + ' '}{shown}")
        if kind in ("ip", "ip6") and fld in ("saddr", "daddr"):
            if fld == "saddr":
                d.src = _neg(op, right)
            else:
                d.dst = _neg(op, right)
        elif (kind in ("ip", "ip6") and fld in ("protocol", "nexthdr")) or (
            kind == "meta" and fld == "l4proto"
        ):
            d.proto = _neg(op, right)
        elif kind == "meta" and fld in ("iifname", "iif"):
            d.in_iface = _neg(op, right)
        elif kind == "meta" and fld in ("oifname", "oif"):
            d.out_iface = _neg(op, right)
        elif kind in ("tcp", "udp", "sctp", "dccp", "th") and fld == "dport":
            d.dport = _neg(op, right)
            if kind != "th" and d.proto is None:
                d.proto = kind
        elif kind in ("tcp", "udp", "sctp", "dccp") and d.proto is None:
            d.proto = kind
        return False
    if key in _NAT_ACTIONS:
        d.action = key
        args = val if isinstance(val, dict) else {}
        addr = args.get("addr")
        port = args.get("port")
        d.to_addr = _fmt_value(addr) if addr is not None else None
        d.to_port = _fmt_value(port) if port is not None else None
        text = key
        if d.to_addr or d.to_port:
            a = d.to_addr or ""
            if d.to_port and a and ":" in a:
                a = f"[{a}]"
            text += " to " + a + (f":{d.to_port}" if d.to_port else "")
        d.parts.append(text)
        return False
    if key == "xt" and isinstance(val, dict):
        name = str(val.get("name", ""))
        d.parts.append(" ".join(p for p in ("xt", str(val.get("type") or ""), name) if p))
        return val.get("type") == "target" and name in _IPT_TARGETS
    if key in ("jump", "goto") and isinstance(val, dict):
        jumps.append(str(val.get("target")))
        d.parts.append(f"{key} {val.get('target')}")
        return False
    d.parts.append(key if val is None else f"{key}")
    return False


def _hooks_of(base: dict[str, str | None], edges: dict[str, set[str]]) -> dict[str, str | None]:
    """Hook(s) that reach each chain of one table, following jump/goto edges."""
    reach: dict[str, set[str]] = {c: {h} for c, h in base.items() if h}
    stack = list(reach)
    while stack:
        src = stack.pop()
        for dst in edges.get(src, ()):
            before = len(reach.setdefault(dst, set()))
            reach[dst] |= reach[src]
            if len(reach[dst]) != before:
                stack.append(dst)
    return {c: ",".join(sorted(hs)) for c, hs in reach.items()}


def parse_nft_json(doc: dict[str, Any]) -> tuple[list[NatRule], set[tuple[str, str]]]:
    """NAT rules from ``nft -j list ruleset`` output.

    Also returns the (family, table) pairs whose NAT targets are iptables-nft
    ``xt`` blobs: nft -j shows no addresses for those, so the caller reads them
    again with iptables-nft-save and drops this parse's rules of those tables.
    """
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    base: dict[tuple[str, str], dict[str, str | None]] = {}
    edges: dict[tuple[str, str], dict[str, set[str]]] = {}
    drafts: list[tuple[str, str, str, _Draft, str | None]] = []
    xt_tables: set[tuple[str, str]] = set()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if "chain" in item and isinstance(item["chain"], dict):
            ch = item["chain"]
            tkey = (str(ch.get("family")), str(ch.get("table")))
            base.setdefault(tkey, {})[str(ch.get("name"))] = (
                str(ch["hook"]) if ch.get("hook") else None
            )
        elif "rule" in item and isinstance(item["rule"], dict):
            rule = item["rule"]
            tkey = (str(rule.get("family")), str(rule.get("table")))
            chain = str(rule.get("chain"))
            d = _Draft()
            jumps: list[str] = []
            exprs = rule.get("expr")
            for expr in exprs if isinstance(exprs, list) else []:
                if isinstance(expr, dict) and _nft_expr(d, expr, jumps):
                    xt_tables.add(tkey)
            for j in jumps:
                edges.setdefault(tkey, {}).setdefault(chain, set()).add(j)
            if d.action:
                comment = rule.get("comment")
                drafts.append((tkey[0], tkey[1], chain, d, str(comment) if comment else None))
    hooks = {t: _hooks_of(base.get(t, {}), edges.get(t, {})) for t in base}
    rules: list[NatRule] = []
    for family, table, chain, d, comment in drafts:
        text = " ".join(d.parts) + (f' comment "{comment}"' if comment else "")
        rules.append(
            NatRule(
                source="nftables",
                family=family,
                table=table,
                chain=chain,
                hook=hooks.get((family, table), {}).get(chain),
                action=d.action or "",
                proto=d.proto,
                src=d.src,
                dst=d.dst,
                in_iface=d.in_iface,
                out_iface=d.out_iface,
                dport=d.dport,
                to_addr=d.to_addr,
                to_port=d.to_port,
                comment=comment,
                text=text,
            )
        )
    return rules, xt_tables


# --- iptables-save text ------------------------------------------------------------
_IPT_VALUE_OPTS = {
    "-s": "src",
    "--source": "src",
    "-d": "dst",
    "--destination": "dst",
    "-i": "in_iface",
    "--in-interface": "in_iface",
    "-o": "out_iface",
    "--out-interface": "out_iface",
    "-p": "proto",
    "--protocol": "proto",
    "--dport": "dport",
    "--destination-port": "dport",
    "--dports": "dport",
    "--destination-ports": "dport",
}


def parse_iptables_save(text: str, *, source: str, family: str = "ip") -> list[NatRule]:
    """NAT rules from ``iptables-save -t nat`` (legacy or nft flavour) output.

    ``source`` is "iptables-legacy" or "iptables-nft"; ``family`` "ip" or "ip6".
    Chains other than the built-in ones get the hook(s) that jump to them.
    """
    table = ""
    drafts: list[tuple[str, str, dict[str, str], str, str | None]] = []
    edges: dict[str, set[str]] = {}
    builtin: dict[str, str | None] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":"):
            name = line[1:].split()[0] if line[1:].split() else ""
            builtin[name] = _IPT_HOOKS.get(name)
            continue
        if not line.startswith("-A "):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        chain = tokens[1] if len(tokens) > 1 else ""
        fields: dict[str, str] = {}
        target = ""
        comment: str | None = None
        neg = False
        i = 2
        while i < len(tokens):
            tok = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if tok == "!":
                neg = True
                i += 1
                continue
            if tok in _IPT_VALUE_OPTS:
                fields[_IPT_VALUE_OPTS[tok]] = ("!" if neg else "") + nxt
                i += 2
            elif tok in ("-j", "--jump", "-g", "--goto"):
                target = nxt
                i += 2
            elif tok == "--comment":
                comment = nxt
                i += 2
            elif tok in ("--to-destination", "--to-source", "--to-ports", "--to-port"):
                fields[tok] = nxt
                i += 2
            elif tok.startswith("-") and nxt and not nxt.startswith("-") and nxt != "!":
                i += 2  # an option we do not model, with its value (-m tcp, --dst-type X)
            else:
                i += 1
            neg = False
        if target in _IPT_TARGETS:
            drafts.append((chain, _IPT_TARGETS[target], fields, line, comment))
        elif target:
            edges.setdefault(chain, set()).add(target)
    hooks = _hooks_of(builtin, edges)
    rules: list[NatRule] = []
    for chain, action, f, line, comment in drafts:
        spec = f.get("--to-destination") or f.get("--to-source") or ""
        to_addr, to_port = _split_addr_port(spec)
        if "--to-ports" in f or "--to-port" in f:
            to_port = f.get("--to-ports") or f.get("--to-port")
        rules.append(
            NatRule(
                source=source,
                family=family,
                table=table,
                chain=chain,
                hook=hooks.get(chain),
                action=action,
                proto=f.get("proto"),
                src=f.get("src"),
                dst=f.get("dst"),
                in_iface=f.get("in_iface"),
                out_iface=f.get("out_iface"),
                dport=f.get("dport"),
                to_addr=to_addr,
                to_port=to_port,
                comment=comment,
                text=line,
            )
        )
    return rules


# --- running the tools -------------------------------------------------------------
def _spawn(path: str, argv: list[str]) -> subprocess.Popen[str] | None:
    """Start ``argv`` inside the namespace at ``path`` without waiting for it
    (None when it cannot start: a missing nsenter)."""
    try:
        return subprocess.Popen(
            ["nsenter", f"--net={path}", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as err:
        log.debug("nat: %s in %s failed: %s", argv[0], path, err)
        return None


def _collect(path: str, argv: list[str], proc: subprocess.Popen[str] | None) -> str | None:
    """stdout of a :func:`_spawn`-ed tool; None on failure (a namespace that
    vanished since the probe, a missing tool, a hang past the timeout)."""
    if proc is None:
        return None
    try:
        out, err = proc.communicate(timeout=_TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        log.debug("nat: %s in %s timed out", argv[0], path)
        return None
    if proc.returncode != 0:
        log.debug("nat: %s in %s exit %d: %s", argv[0], path, proc.returncode, err.strip())
        return None
    return out


def _run_in(path: str, argv: list[str]) -> str | None:
    """stdout of ``argv`` run inside the namespace at ``path``; None on failure."""
    return _collect(path, argv, _spawn(path, argv))


def _parallel(jobs: Iterable[tuple[str, list[str]]]) -> list[str | None]:
    """Run (path, argv) jobs a few at a time; the host has few cores to spare."""
    job_list = list(jobs)
    if len(job_list) <= 1:
        return [_run_in(p, a) for p, a in job_list]
    from concurrent.futures import ThreadPoolExecutor  # only when there is work

    with ThreadPoolExecutor(max_workers=_MAX_PARALLEL) as pool:
        return list(pool.map(lambda j: _run_in(j[0], j[1]), job_list))


def _nft_rules(path: str, text: str | None) -> list[NatRule]:
    import json

    if not text:
        return []
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return []
    rules, xt_tables = parse_nft_json(doc)
    if not xt_tables:
        return rules
    keep = [r for r in rules if (r.family, r.table) not in xt_tables]
    for family, _table in sorted(xt_tables):
        tool = "ip6tables-nft-save" if family == "ip6" else "iptables-nft-save"
        if family not in ("ip", "ip6") or not shutil.which(tool):
            keep.extend(r for r in rules if (r.family, r.table) == (family, _table))
            continue
        out = _run_in(path, [tool, "-t", "nat"])
        if out is None:
            keep.extend(r for r in rules if (r.family, r.table) == (family, _table))
            continue
        keep.extend(parse_iptables_save(out, source="iptables-nft", family=family))
    return keep


def _tool_jobs(pr: NsProbe, have_nft: bool) -> list[tuple[str, list[str]]]:
    """(kind, argv) of the tools to run where ``pr`` saw NAT, in the order their
    rules are listed: ``nft`` first, then the legacy ``ip`` and ``ip6`` tables."""
    jobs: list[tuple[str, list[str]]] = []
    if pr.nft_nat and have_nft:
        jobs.append(("nft", ["nft", "-j", "list", "ruleset"]))
    if pr.legacy_nat4 and shutil.which("iptables-legacy-save"):
        jobs.append(("ip", ["iptables-legacy-save", "-t", "nat"]))
    if pr.legacy_nat6 and shutil.which("ip6tables-legacy-save"):
        jobs.append(("ip6", ["ip6tables-legacy-save", "-t", "nat"]))
    return jobs


class StartedTools:
    """NAT tools started before their output is needed (:func:`start_tools`).

    Discovery knows the probe of the namespaces it opens itself (the host's,
    typically the only one with NAT) right after starting the helper process;
    the tools then run while the helper walks the other namespaces instead of
    after it. :func:`read_nat` collects them; :meth:`close` ends any it did not.
    """

    def __init__(self) -> None:
        self.runs: dict[int, list[tuple[NsHandle, str, list[str], subprocess.Popen[str] | None]]]
        self.runs = {}

    def close(self) -> None:
        for runs in self.runs.values():
            for _h, _kind, _argv, proc in runs:
                if proc is not None and proc.returncode is None:
                    with contextlib.suppress(OSError):
                        proc.kill()
                    proc.communicate()
        self.runs.clear()


def start_tools(pairs: Iterable[tuple[NsHandle, NsProbe]]) -> StartedTools:
    """Start the tools for each (handle, probe) now, without waiting for them; at
    most about :data:`_MAX_PARALLEL` at once (the namespaces left over run in
    :func:`read_nat`, which skips only those started here)."""
    started = StartedTools()
    have_nft = shutil.which("nft") is not None
    count = 0
    try:
        for h, pr in pairs:
            if count >= _MAX_PARALLEL:
                break
            jobs = _tool_jobs(pr, have_nft)
            runs = started.runs.setdefault(h.inode, [])
            for kind, argv in jobs:
                # Recorded one by one: an interrupt between two spawns must still
                # find every tool already started, to reap it below.
                runs.append((h, kind, argv, _spawn(h.path, argv)))
            count += len(jobs)
    except BaseException:
        started.close()  # a Ctrl-C mid-start leaves no tool running nor a zombie
        raise
    return started


def read_nat(
    handles: Sequence[NsHandle],
    *,
    probes: Sequence[NsProbe | None] | None = None,
    started: StartedTools | None = None,
) -> dict[int, tuple[NatRule, ...]]:
    """NAT rules keyed by namespace inode; namespaces without NAT are absent.

    ``probes`` (from :func:`probe`, same order as ``handles``) may be passed when
    the caller already probed; ``started``: tools already running for some of
    them (:func:`start_tools`), collected here. Vanished namespaces are skipped.
    Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to enter namespaces); without it
    every probe fails and the result is empty.
    """
    handles = list(handles)
    if probes is None:
        probes = probe(handles)
    early = started.runs if started is not None else {}
    have_nft = shutil.which("nft") is not None
    todo: list[tuple[NsHandle, str, list[str]]] = []
    for h, pr in zip(handles, probes, strict=True):
        if pr is not None and h.inode not in early:
            todo.extend((h, kind, argv) for kind, argv in _tool_jobs(pr, have_nft))
    # One pool for both tools: with NAT in a few namespaces (the host has nft and
    # iptables-legacy tables on many machines) the two batches used to run one
    # after the other, 10 ms each.
    outputs = _parallel([(h.path, argv) for h, _kind, argv in todo])
    results = [(h, kind, text) for (h, kind, _argv), text in zip(todo, outputs, strict=True)]
    for runs in early.values():
        results.extend((h, kind, _collect(h.path, argv, proc)) for h, kind, argv, proc in runs)
    out: dict[int, list[NatRule]] = {}
    for h, kind, text in results:
        if kind == "nft":
            rules = _nft_rules(h.path, text)
        elif text:
            rules = parse_iptables_save(text, source="iptables-legacy", family=kind)
        else:
            continue
        if rules:
            out.setdefault(h.inode, []).extend(rules)
    return {inode: tuple(rules) for inode, rules in out.items()}


# --- the Docker FORWARD trap -------------------------------------------------------
def forward_policy_warning(
    handle: NsHandle | None = None, *, probe_result: NsProbe | None = None
) -> str | None:
    """One line warning when bridged traffic is silently dropped, else None.

    dockerd sets the iptables FORWARD policy to DROP when it turns ip_forward on;
    with br_netfilter calling iptables for bridged frames, traffic between
    namespaces on any bridge Docker did not create is then dropped. Checks the
    namespace of ``handle`` (default: the caller's own, normally the host).
    Pass ``probe_result`` to reuse a probe made with ``probe(..., with_br_nf=True)``.
    """
    pr = probe_result if probe_result is not None else _probe_for_warning(handle)
    if pr is None or not pr.br_nf_call_iptables:
        return None
    drops = [
        f"{c.family} {c.table} {c.name}"
        for c in pr.chains
        if c.hook == "forward" and c.policy == "drop" and c.family in ("ip", "inet")
    ]
    if "filter" in pr.legacy_tables4 and shutil.which("iptables-legacy-save"):
        out = (
            _run_in(handle.path, ["iptables-legacy-save", "-t", "filter"])
            if handle is not None
            else _run_local(["iptables-legacy-save", "-t", "filter"])
        )
        if out and any(line.startswith(":FORWARD DROP") for line in out.splitlines()):
            drops.append("iptables-legacy filter FORWARD")
    if not drops:
        return None
    return (
        f"FORWARD policy is DROP ({'; '.join(drops)}) and br_netfilter is on "
        "(net.bridge.bridge-nf-call-iptables=1): traffic across Linux bridges that "
        "Docker did not create is silently dropped; add ACCEPT rules for those bridges "
        "(e.g. iptables -I DOCKER-USER -i BR -o BR -j ACCEPT)"
    )


def _probe_for_warning(handle: NsHandle | None) -> NsProbe | None:
    """Probe ``handle``'s namespace (or this thread's) with the br_netfilter knob;
    None when it cannot be entered."""
    if handle is None:
        return _probe_here("/proc/thread-self/ns/net", with_br_nf=True)
    found = nsenter.run_in_netns([handle.path], lambda t: _probe_here(t, with_br_nf=True))[0]
    return None if isinstance(found, OSError) else found


def _run_local(argv: list[str]) -> str | None:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None
