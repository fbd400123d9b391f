"""Find every network namespace on the host (named, process-held, bind-mounted)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NsHandle:
    """One network namespace found on the host, deduplicated by (dev, inode).

    ``path`` is one path that opens it (``/run/netns/X``, a bind mount, or
    ``/proc/PID/ns/net``); ``names`` are its /run/netns names, ``mounts`` every
    nsfs bind mount of it, ``pids`` the processes (thread group ids) inside it.
    """

    dev: int
    inode: int
    path: str
    is_host: bool = False
    names: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        """The model's Netns.id."""
        return f"netns:{self.inode}"
