"""The server itself (hostname, kernel, CPUs, memory) and the uplinks' sysfs facts.

Everything comes through a :class:`~netlens.discovery.sources.ProcSource`, so a
recorded fixture answers exactly like the live host.
"""

from __future__ import annotations

import os

from netlens.discovery.sources import ProcSource
from netlens.model import Server


def _cpus_from_list(text: str) -> int:
    """``0-3,6`` -> 5 (the format of /sys/devices/system/cpu/online)."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first = int(lo)
            count += (int(hi) - first + 1) if hi else 1
        except ValueError:
            return 0
    return count


def read_server(proc: ProcSource) -> Server:
    """Hostname, kernel release, architecture, CPU count, memory, boot id, uptime."""
    hostname = (proc.read_text("/proc/sys/kernel/hostname") or "").strip() or os.uname().nodename
    kernel = (proc.read_text("/proc/sys/kernel/osrelease") or "").strip() or os.uname().release
    arch = (proc.read_text("/proc/sys/kernel/arch") or "").strip() or os.uname().machine
    cpus = _cpus_from_list(proc.read_text("/sys/devices/system/cpu/online") or "")
    if cpus <= 0:
        cpus = os.cpu_count() or 1
    mem = 0
    for line in (proc.read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                mem = int(parts[1]) * 1024
            break
    boot_id = (proc.read_text("/proc/sys/kernel/random/boot_id") or "").strip() or None
    uptime: float | None = None
    up = (proc.read_text("/proc/uptime") or "").split()
    if up:
        try:
            uptime = float(up[0])
        except ValueError:
            uptime = None
    return Server(hostname, kernel, arch, cpus, mem, boot_id, uptime)


def is_physical(proc: ProcSource, name: str) -> bool:
    """A NIC with a bus device behind it (``/sys/class/net/NAME/device`` exists)."""
    return proc.exists(f"/sys/class/net/{name}/device")


def link_speed(proc: ProcSource, name: str) -> int | None:
    """Mbit/s as the driver reports it; None when unknown (down, virtual, -1)."""
    text = proc.read_text(f"/sys/class/net/{name}/speed")
    if text is None:
        return None
    try:
        speed = int(text.strip())
    except ValueError:
        return None
    return speed if speed > 0 else None


def link_driver(proc: ProcSource, name: str) -> str | None:
    """The kernel driver bound to the NIC's device (``virtio_net``, ``ixgbe`` ...)."""
    target = proc.readlink(f"/sys/class/net/{name}/device/driver")
    return target.rsplit("/", 1)[-1] if target else None
