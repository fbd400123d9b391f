"""Who listens on a port inside a namespace: its socket tables and their owners.

Read from the calling thread's namespace view (``/proc/thread-self/net/tcp``
and friends, inside :meth:`~netlens.kernel.nsquery.NsQuery.run`), then the
owning processes are found by the socket inode among the namespace's pids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TABLES = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6")}
_LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class Listener:
    proto: str
    address: str
    port: int
    inode: int


def _hex_addr(text: str) -> str:
    import ipaddress

    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listeners_here(proto: str, port: int) -> list[Listener]:
    """Sockets of the calling thread's namespace bound to ``port`` that accept
    ``proto`` packets (TCP: in LISTEN; UDP: any bound socket)."""
    out: list[Listener] = []
    for table in _TABLES.get(proto, ()):
        try:
            with open(f"/proc/thread-self/net/{table}", encoding="ascii") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            addr, _, hport = cols[1].partition(":")
            if int(hport, 16) != port or (proto == "tcp" and cols[3] != _LISTEN):
                continue
            out.append(Listener(proto, _hex_addr(addr), port, int(cols[9])))
    return out


def owners(inodes: set[int], pids: tuple[int, ...], proc: str = "/proc") -> dict[int, list[int]]:
    """For each socket inode, the pids (among ``pids``) holding it open."""
    found: dict[int, list[int]] = {}
    wanted = {f"socket:[{i}]": i for i in inodes}
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and pid not in found.setdefault(inode, []):
                found[inode].append(pid)
    return found


def comm(pid: int, proc: str = "/proc") -> str | None:
    try:
        with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None
