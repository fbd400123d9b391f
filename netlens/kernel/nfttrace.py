"""nftables rule tracing in one namespace, temporary: a table that sets
``meta nftrace set 1`` on the probe's packets, and ``nft monitor trace``.

The kernel then reports every rule a traced packet meets, in every table of
that namespace, with the verdict: the rule that dropped a probe is named by
the kernel itself, not by reading the ruleset. The table is this process's own
(``netlens_probe_<pid>``) and is deleted by :func:`remove_here`; the caller
runs install and removal from a thread inside the namespace (``nft`` then
inherits it), and must remove in a ``finally``.

Which tables exist is asked with one netlink dump (:func:`tables_here`), not an
``nft`` process: a probe arms and disarms three or four namespaces, and each
``nft`` run costs tens of milliseconds on a busy host. ``nft`` runs only to
change something: one batch that removes stale tables and adds ours, one delete.

Parsing follows nft 1.0's text: ``trace id ID FAMILY TABLE CHAIN rule ...
(verdict drop)`` and ``... CHAIN policy drop``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field

from netlens.kernel import consts
from netlens.kernel.nsenter import netlink_socket
from netlens.kernel.wire import iter_messages, message

_TIMEOUT_S = 5.0
_LINE = re.compile(r"^trace id (\w+) (\w+) (\S+) (\S+) (.*)$")


def table_name() -> str:
    """This process's trace table (one per process, so two probes never meet)."""
    return f"netlens_probe_{os.getpid()}"


def _nft() -> str | None:
    return shutil.which("nft")


def _match(addrs: list[str]) -> list[str]:
    out: list[str] = []
    for a in dict.fromkeys(addrs):
        fam = "ip6" if ipaddress.ip_address(a).version == 6 else "ip"
        out += [f"{fam} saddr {a}", f"{fam} daddr {a}"]
    return out


_NFT_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}


def tables_here() -> list[tuple[str, str]]:
    """(family, name) of every nftables table in the calling thread's namespace,
    from one NFT_MSG_GETTABLE dump. Raises OSError when it cannot be read."""
    req = message(
        (consts.NFNL_SUBSYS_NFTABLES << 8) | consts.NFT_MSG_GETTABLE,
        consts.NLM_F_REQUEST | consts.NLM_F_DUMP,
        1,
        struct.pack("=BBH", 0, 0, 0),  # nfgenmsg: every family, version 0
    )
    out: list[tuple[str, str]] = []
    with netlink_socket(consts.NETLINK_NETFILTER, rcvbuf=1 << 17) as sock:
        sock.settimeout(_TIMEOUT_S)
        sock.send(req)
        while True:
            data = sock.recv(1 << 17)
            if not data:
                return out
            for typ, _flags, start, end in iter_messages(data):
                if typ == consts.NLMSG_DONE:
                    return out
                if typ == consts.NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, start)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return out
                if typ != (consts.NFNL_SUBSYS_NFTABLES << 8) | consts.NFT_MSG_NEWTABLE:
                    continue
                family = _NFT_FAMILIES.get(data[start], str(data[start]))
                off = start + 4
                while off + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, off)
                    if alen < 4:
                        break
                    if atype & 0x3FFF == consts.NFTA_TABLE_NAME:
                        raw = data[off + 4 : off + alen].split(b"\0", 1)[0]
                        out.append((family, raw.decode("utf-8", "replace")))
                    off += (alen + 3) & ~3


def _stale(tables: list[tuple[str, str]]) -> list[str]:
    """Trace tables of probes whose process is gone (a ``kill -9`` leaves them:
    nothing can clean up after SIGKILL)."""
    out: list[str] = []
    for family, name in tables:
        m = re.fullmatch(r"netlens_probe_(\d+)", name)
        if family == "inet" and m and not os.path.exists(f"/proc/{m.group(1)}"):
            out.append(name)
    return out


def install_here(addrs: list[str]) -> list[str]:
    """Add the trace table to the calling thread's namespace: packets from or to
    any of ``addrs`` are traced at prerouting and output (before everything).
    Stale trace tables are removed in the same batch; their names are returned."""
    nft = _nft()
    if nft is None:
        raise OSError(2, "nft not found")
    name = table_name()
    try:
        stale = _stale(tables_here())
    except OSError:
        stale = []
    rules = "".join(f"    {m} meta nftrace set 1\n" for m in _match(addrs))
    text = (
        f"table inet {name} {{\n"
        "  chain pre {\n    type filter hook prerouting priority -350; policy accept;\n"
        f"{rules}  }}\n"
        "  chain out {\n    type filter hook output priority -350; policy accept;\n"
        f"{rules}  }}\n"
        "}\n"
    )
    # One nft batch, all or nothing: a stale table that vanished meanwhile fails
    # it, and then ours is added alone.
    for gone in (stale, []) if stale else ([],):
        deletes = "".join(f"delete table inet {t}\n" for t in gone)
        res = subprocess.run(
            [nft, "-f", "-"],
            input=deletes + text,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
        if res.returncode == 0:
            return gone
    raise OSError(5, f"nft: {res.stderr.strip() or 'failed'}")


def present_here() -> bool:
    """Whether this process's trace table exists in the calling thread's namespace
    (True when that cannot be read: never claim a table gone that may be there)."""
    try:
        return ("inet", table_name()) in tables_here()
    except OSError:
        return True


def remove_here() -> bool:
    """Delete the trace table here; True when it is gone (or was never there)."""
    if not present_here():
        return True
    nft = _nft()
    if nft is None:
        return False
    subprocess.run(
        [nft, "delete", "table", "inet", table_name()],
        capture_output=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    return not present_here()


@dataclass
class Monitor:
    """One ``nft monitor trace`` and what it printed so far."""

    proc: subprocess.Popen[bytes]
    out: bytearray = field(default_factory=bytearray)


def start_monitor_here() -> Monitor:
    """``nft monitor trace`` for the calling thread's namespace (stop with
    :func:`stop_monitor`)."""
    nft = _nft()
    if nft is None:
        raise OSError(2, "nft not found")
    proc = subprocess.Popen(
        [nft, "monitor", "trace"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    return Monitor(proc)


NFNLGRP_NFTRACE = 9
NETLINK_NETFILTER = 12


def monitor_ready(mon: Monitor) -> bool:
    """Whether ``mon``'s ``nft monitor trace`` has joined the kernel's trace
    group yet: one of its sockets is listed in its namespace's
    ``/proc/PID/net/netlink`` as a netfilter socket with that group's bit set.
    Until then the kernel would send it nothing, so the probe waits for this
    instead of guessing a delay."""
    proc = mon.proc
    try:
        mine = {
            link[len("socket:[") : -1]
            for fd in os.listdir(f"/proc/{proc.pid}/fd")
            if (link := os.readlink(f"/proc/{proc.pid}/fd/{fd}")).startswith("socket:[")
        }
        with open(f"/proc/{proc.pid}/net/netlink", encoding="ascii") as fh:
            rows = [line.split() for line in fh.readlines()[1:]]
    except OSError:
        return False
    bit = 1 << (NFNLGRP_NFTRACE - 1)
    return any(
        len(r) >= 10 and r[1] == str(NETLINK_NETFILTER) and int(r[3], 16) & bit and r[9] in mine
        for r in rows
    )


def stop_monitor(mon: Monitor) -> str:
    """End a monitor and return everything it printed."""
    proc = mon.proc
    if proc.poll() is None:
        proc.terminate()
    try:
        rest, _err = proc.communicate(timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _err = proc.communicate()
    return (bytes(mon.out) + (rest or b"")).decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One line of a trace: a packet ``trace`` id, where, and what happened."""

    trace: str
    family: str
    table: str
    chain: str
    text: str

    @property
    def verdict(self) -> str | None:
        """drop, reject, accept... when this line ends the packet's way through a chain."""
        m = re.search(r"\(verdict (\w+)", self.text)
        if m:
            return m.group(1)
        m = re.match(r"(?:policy|verdict) (\w+)", self.text)
        return m.group(1) if m else None

    @property
    def where(self) -> str:
        return f"{self.family} {self.table} {self.chain}"


def parse(text: str) -> list[TraceEvent]:
    """The trace lines of a monitor's output (other lines ignored)."""
    out: list[TraceEvent] = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            out.append(TraceEvent(*m.groups()))
    return out
