"""The kernel's own drop reason: the ``skb:kfree_skb`` tracepoint through tracefs.

Every freed-as-dropped skb fires the tracepoint with the code location and,
on 6.x kernels, ``reason`` (``IP_INADDRERRORS``, ``NETFILTER_DROP``,
``IP_NOPROTO``...). It is host-wide (it carries no namespace), so:

- it runs in a private tracefs *instance* (``instances/netlens_probe_<pid>``):
  its own buffer and its own event switch, nothing of the global trace setup
  is touched, and removing the directory removes every setting;
- tracefs is used where it is mounted; otherwise it is mounted on a private
  temporary directory for the probe and unmounted after;
- a drop is the probe's when it ran in this process's context (a probe sent
  from here is usually received and dropped in this task's own softirq), or
  when the same skb was seen arriving on a device with the probe's unusual
  length (``net:netif_rx`` and ``net:netif_receive_skb`` filtered on ``len``,
  in the same instance): that covers the softirq work a busy host defers to
  ``ksoftirqd``. Everything else is other traffic (counted apart).

:meth:`DropWatch.close` puts everything back (instance, mount, directory) and is
safe to call twice; the caller calls it in a ``finally``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import tempfile
import time
from dataclasses import dataclass

_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_EVENT = "events/skb/kfree_skb"
_RX_EVENTS = ("events/net/netif_rx", "events/net/netif_receive_skb")
_LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[\d+\].*?kfree_skb:\s+skbaddr=(?P<skb>\S+)"
    r".*?protocol=(?P<proto>\d+)"
    r".*?location=(?P<loc>\S+)(?:.*?reason: (?P<reason>\w+))?"
)
_RX_LINE = re.compile(r"netif_(?:rx|receive_skb): dev=\S+ skbaddr=(?P<skb>\S+) len=\d+")


@dataclass(frozen=True, slots=True)
class Drop:
    pid: int
    comm: str
    protocol: int
    location: str
    reason: str
    probe_skb: bool = False  # this skb arrived somewhere with the probe's length


def _mounted_tracefs() -> str | None:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "tracefs" and os.path.isdir(parts[1]):
                    return parts[1]
    except OSError:
        return None
    return None


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int


def _mount_tracefs(point: str) -> bool:
    """``mount -t tracefs nodev POINT`` as one system call: a ``mount`` process on
    each side of a probe cost it 40-50 ms of a busy host's time."""
    return bool(_libc.mount(b"nodev", point.encode(), b"tracefs", 0, None) == 0)


BUSY_TRIES = 5


def _umount(point: str) -> bool:
    """Unmount ``point``; a busy mount is tried again for a little while (a child
    process of another thread may hold one of our files there until it execs)."""
    for attempt in range(BUSY_TRIES):
        if _libc.umount2(point.encode(), 0) == 0:
            return True
        if ctypes.get_errno() != errno.EBUSY:
            return False
        time.sleep(0.01 * (attempt + 1))
    return False


def _rmdir_instance(path: str) -> bool:
    """Remove a tracefs instance (its settings go with it); busy, as for
    :func:`_umount`, it is tried again for a little while."""
    for attempt in range(BUSY_TRIES):
        try:
            os.rmdir(path)
            return True
        except OSError as err:
            if err.errno != errno.EBUSY:
                return False
        time.sleep(0.01 * (attempt + 1))
    return False


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def _dead(pid: str) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _sweep_stale_instances(root: str) -> list[str]:
    """Remove the instances of probes whose process is gone (SIGKILL leaves them,
    still recording); removing an instance's directory removes its settings."""
    gone: list[str] = []
    try:
        names = os.listdir(os.path.join(root, "instances"))
    except OSError:
        return gone
    for name in names:
        m = re.fullmatch(r"netlens_probe_(\d+)", name)
        if m and _dead(m.group(1)):
            inst = os.path.join(root, "instances", name)
            for event in (_EVENT, *_RX_EVENTS):
                with contextlib.suppress(OSError):
                    _write(os.path.join(inst, event, "enable"), "0")
            with contextlib.suppress(OSError):
                os.rmdir(inst)
                gone.append(name)
    return gone


def _sweep_stale_mounts() -> None:
    """Unmount and remove the private tracefs mounts of probes that are gone."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            points = [line.split()[1] for line in fh if " tracefs " in line]
    except OSError:
        return
    for point in points:
        m = re.fullmatch(r".*/netlens-tracefs-(\d+)-[^/]*", point)
        if m and _dead(m.group(1)):
            _sweep_stale_instances(point)
            if _umount(point):
                with contextlib.suppress(OSError):
                    os.rmdir(point)


def instance_name() -> str:
    return f"netlens_probe_{os.getpid()}"


class DropWatch:
    """One tracefs instance watching ``skb:kfree_skb`` (see the module doc)."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.mounted: str | None = None  # our private mount point, if we mounted
        self.instance: str | None = None
        self.unavailable: str | None = None
        self.swept: list[str] = []  # stale instances of killed probes, removed

    def start(
        self, protocols: tuple[int, ...] = (0x0800, 0x86DD), rx_len: int | None = None
    ) -> bool:
        """Begin recording; False (with :attr:`unavailable` saying why) if this
        kernel or host cannot. ``rx_len``: the probe's IP length, to follow its
        skbs (see the module doc)."""
        try:
            _sweep_stale_mounts()
            root = _mounted_tracefs()
            if root is None:
                self.mounted = tempfile.mkdtemp(prefix=f"netlens-tracefs-{os.getpid()}-")
                if not _mount_tracefs(self.mounted):
                    self.unavailable = "tracefs could not be mounted"
                    self.close()
                    return False
                root = self.mounted
            self.root = root
            if not os.path.isdir(os.path.join(root, _EVENT)):
                self.unavailable = "this kernel has no skb:kfree_skb tracepoint"
                self.close()
                return False
            self.swept = _sweep_stale_instances(root)
            inst = os.path.join(root, "instances", instance_name())
            os.mkdir(inst)
            self.instance = inst
            ev = os.path.join(inst, _EVENT)
            _write(os.path.join(ev, "filter"), " || ".join(f"protocol == {p}" for p in protocols))
            _write(os.path.join(ev, "enable"), "1")
            if rx_len is not None:
                for rx in _RX_EVENTS:
                    rx_ev = os.path.join(inst, rx)
                    if os.path.isdir(rx_ev):
                        _write(os.path.join(rx_ev, "filter"), f"len == {int(rx_len)}")
                        _write(os.path.join(rx_ev, "enable"), "1")
            return True
        except OSError as err:
            self.unavailable = f"tracefs: {err.strerror or err}"
            self.close()
            return False

    def read(self) -> list[Drop]:
        """The drops recorded so far (the buffer is left as is)."""
        if self.instance is None:
            return []
        try:
            with open(
                os.path.join(self.instance, "trace"), encoding="utf-8", errors="replace"
            ) as fh:
                text = fh.read()
        except OSError:
            return []
        out: list[Drop] = []
        arrived: set[str] = set()  # skbs seen arriving with the probe's length
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            rx = _RX_LINE.search(line)
            if rx:
                arrived.add(rx["skb"])
                continue
            m = _LINE.match(line)
            if m:
                out.append(
                    Drop(
                        int(m["pid"]),
                        m["comm"].strip(),
                        int(m["proto"]),
                        m["loc"],
                        m["reason"] or "NOT_SPECIFIED",
                        m["skb"] in arrived,
                    )
                )
                arrived.discard(m["skb"])  # freed: the address may be reused
        return out

    def close(self) -> None:
        """Remove the instance, unmount what we mounted; idempotent."""
        if self.instance is not None:
            for event in (_EVENT, *_RX_EVENTS):
                with contextlib.suppress(OSError):
                    _write(os.path.join(self.instance, event, "enable"), "0")
            if _rmdir_instance(self.instance):
                self.instance = None
        if self.mounted is not None:
            _umount(self.mounted)
            try:
                os.rmdir(self.mounted)
                self.mounted = None
            except OSError:
                pass

    def clean(self) -> bool:
        """Whether nothing of ours is left (for tests and the final check)."""
        return self.instance is None and self.mounted is None

    def __enter__(self) -> DropWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
