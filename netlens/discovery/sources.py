"""Where discovery's raw inputs come from: the live kernel, or a recorded fixture.

The parsers and the resolver never touch a socket or a file. They ask a
:class:`NetlinkSource` for raw netlink reply bytes per (namespace, request) and for
namespace ids, and a :class:`ProcSource` for procfs/sysfs text. The live
implementations (:mod:`netlens.discovery.live_source`) read this host; the fixture
implementations replay a directory written by ``python3 -m
netlens.discovery.capture``; the recording wrappers sit on a live source and keep
everything that was asked, which is how capture works. So unit tests run the exact
resolver code on bytes captured from a real host.

Fixture directory layout::

    proc/                 recorded procfs subset (ns/net links are dangling symlinks)
    sys/                  recorded sysfs subset (class/net/X/speed, device marker, ...)
    netlink/<inode>/<request>.bin   raw dump replies (``link``, ``addr``, ...)
    meta.json             {"sysctls": {inode: {...}}, "host_nsids": {inode: nsid},
                           "nsids": [[asker, target, nsid], ...], "errors": {inode: text},
                           "cpu_count": N}
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from netlens.discovery.nsfind import NsHandle
from netlens.kernel.pump import Reply

if TYPE_CHECKING:
    pass


BRIDGE_SYSCTLS: dict[str, str] = {
    "net.bridge.bridge-nf-call-iptables": "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables": "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
}
"""Per-namespace sysctls read from /proc/sys inside namespaces that have a bridge
(whether bridged traffic crosses iptables). The forwarding and rp_filter family
comes over netlink (``netlink.NETCONF``): with 1000 namespaces each /proc/sys/net
read costs about 250 us, so procfs is kept to the few namespaces that need it."""


class NetlinkSource(Protocol):
    """Raw rtnetlink replies per namespace (keyed by nsfs inode)."""

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        """Get ready to read ``handles``. Returns the ones that could not be read,
        with why (ENOENT: vanished; EPERM: needs root)."""
        ...

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        """Hint: :meth:`dumps` will be called with ``requests`` for each of ``inodes``
        in this order; a source may start fetching them in the background."""
        ...

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        """Raw reply bytes per request (``netlink.REQUESTS`` names or
        ``netlink.NETCONF``), or the error the kernel answered."""
        ...

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        """The :data:`BRIDGE_SYSCTLS` values as read inside each namespace."""
        ...

    def host_nsids(self) -> dict[int, int]:
        """inode -> the id the host namespace gives it (only assigned ids)."""
        ...

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        """The ids namespace ``asker`` gives each target (None: no id)."""
        ...

    def close(self) -> None: ...


class ProcSource(Protocol):
    """procfs and sysfs text, addressed by absolute path (``/proc/meminfo``)."""

    proc_root: str

    def read_text(self, path: str) -> str | None: ...

    def exists(self, path: str) -> bool: ...

    def readlink(self, path: str) -> str | None: ...


# --- fixtures (replay) ------------------------------------------------------------------------
class FixtureNetlink:
    """Replays a captured fixture directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        import json  # fixtures only: kept off the live path's start-up

        meta: dict[str, Any] = json.loads((self.root / "meta.json").read_text())
        self.meta = meta
        self._sysctls = {int(k): dict(v) for k, v in meta.get("sysctls", {}).items()}
        self._host = {int(k): int(v) for k, v in meta.get("host_nsids", {}).items()}
        self._nsids = {(int(a), int(t)): n for a, t, n in meta.get("nsids", [])}
        self._errors = {int(k): str(v) for k, v in meta.get("errors", {}).items()}

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        failed: dict[int, OSError] = {}
        for h in handles:
            if h.inode in self._errors:
                failed[h.inode] = OSError(errno.EPERM, self._errors[h.inode])
            elif not (self.root / "netlink" / str(h.inode)).is_dir():
                failed[h.inode] = OSError(errno.ENOENT, "namespace vanished")
        return failed

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        pass

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        out: dict[str, Reply] = {}
        for request in requests:
            path = self.root / "netlink" / str(inode) / f"{request}.bin"
            try:
                out[request] = path.read_bytes()
            except FileNotFoundError:
                if request == "qdisc":  # recorded before netlens read qdiscs: none seen
                    out[request] = b""
                    continue
                out[request] = OSError(errno.ENOENT, f"no recorded {request} reply for {inode}")
        return out

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        return {i: self._sysctls[i] for i in inodes if i in self._sysctls}

    def host_nsids(self) -> dict[int, int]:
        return dict(self._host)

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        return [self._nsids.get((asker, t)) for t in targets]

    def close(self) -> None:
        pass


class FixtureProc:
    """Replays recorded procfs/sysfs text: ``/proc/x`` is ``ROOT/proc/x``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.proc_root = str(self.root / "proc")

    def _map(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read_text(self, path: str) -> str | None:
        try:
            return self._map(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        p = self._map(path)
        return p.exists() or p.is_symlink()

    def readlink(self, path: str) -> str | None:
        try:
            return os.readlink(self._map(path))
        except OSError:
            return None


# --- recording (capture) ----------------------------------------------------------------------
class RecordingNetlink:
    """Wraps a source and keeps every answer, to be written as a fixture."""

    def __init__(self, inner: NetlinkSource) -> None:
        self.inner = inner
        self.replies: dict[tuple[int, str], bytes] = {}
        self.nsids: dict[tuple[int, int], int | None] = {}
        self.sysctl_values: dict[int, dict[str, str]] = {}
        self.errors: dict[int, str] = {}
        self.host: dict[int, int] = {}

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        failed = self.inner.open(handles)
        for inode, err in failed.items():
            if err.errno != errno.ENOENT:
                self.errors[inode] = str(err)
        return failed

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        self.inner.prefetch(inodes, requests)

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        replies = self.inner.dumps(inode, requests)
        for request, data in replies.items():
            if isinstance(data, bytes):
                self.replies[(inode, request)] = data
        return replies

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        values = self.inner.sysctls(inodes)
        self.sysctl_values.update(values)
        return values

    def host_nsids(self) -> dict[int, int]:
        self.host = self.inner.host_nsids()
        return self.host

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        answers = self.inner.ask_nsids(asker, targets)
        for t, n in zip(targets, answers, strict=True):
            self.nsids[(asker, t)] = n
        return answers

    def close(self) -> None:
        self.inner.close()

    def write(self, root: Path, extra_meta: dict[str, Any]) -> None:
        for (inode, request), data in self.replies.items():
            d = root / "netlink" / str(inode)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{request}.bin").write_bytes(data)
        meta: dict[str, Any] = {
            "sysctls": {str(k): v for k, v in sorted(self.sysctl_values.items())},
            "host_nsids": {str(k): v for k, v in sorted(self.host.items())},
            "nsids": [[a, t, n] for (a, t), n in sorted(self.nsids.items()) if n is not None],
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
            **extra_meta,
        }
        import json

        (root / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


class RecordingProc:
    """Wraps a ProcSource and copies every file it reads into a fixture tree."""

    def __init__(self, inner: ProcSource) -> None:
        self.inner = inner
        self.proc_root = inner.proc_root
        self.texts: dict[str, str] = {}
        self.present: set[str] = set()
        self.links: dict[str, str] = {}

    def read_text(self, path: str) -> str | None:
        text = self.inner.read_text(path)
        if text is not None:
            self.texts[path] = text
        return text

    def exists(self, path: str) -> bool:
        found = self.inner.exists(path)
        if found:
            self.present.add(path)
        return found

    def readlink(self, path: str) -> str | None:
        target = self.inner.readlink(path)
        if target is not None:
            self.links[path] = target
        return target

    def write(self, root: Path) -> None:
        for path, target in self.links.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.is_symlink():
                p.symlink_to(target)
        for path, text in self.texts.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        for path in self.present:
            p = root / path.lstrip("/")
            if not p.exists() and not p.is_symlink():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("")
