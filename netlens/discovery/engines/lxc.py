"""LXC: the name is in the cgroup (``lxc.payload.<name>``), details in its config.

LXC leaves no namespace handle on disk; only the container's init process holds
the namespace, and the host end of its veth has a random name unless
``lxc.net.N.veth.pair`` sets one. The init's parent is the container's monitor,
whose command line LXC rewrites to ``[lxc monitor] <lxcpath> <name>``: that
tells which lxcpath (``-P``) the container lives in, so a container outside
/var/lib/lxc still gets its config read. The config names the rootfs, the
template it was created from (which stands in for an image) and the network
keys (link, veth pair, addresses) an engineer checks first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from netlens.discovery.engines import Claims, EngineReader, Namespace, Options, read_text
from netlens.model import Container, Engine

DEFAULT_ROOT = "/var/lib/lxc"
MONITOR = "[lxc monitor]"
_CGROUP = re.compile(r"lxc\.payload[./]([^/\s]+)|^/lxc/([^/\s]+)")
_NET_KEYS = (".type", ".link", ".veth.pair", ".name", ".hwaddr", ".ipv4.address", ".ipv6.address")


@dataclass(frozen=True, slots=True)
class LxcConfig:
    image: str | None
    labels: dict[str, str] = field(default_factory=dict)


def _unquote(value: str) -> str:
    """lxc-busybox writes ``lxc.uts.name = "web1"``: LXC itself drops the quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_config(root: str, name: str) -> LxcConfig | None:
    """The bits of an LXC config an engineer wants: template, rootfs, network keys.

    None when ``root`` has no config for ``name`` (another lxcpath, or removed).
    """
    # ``root`` may come from another process's command line: only a regular file.
    text = read_text(os.path.join(root, name, "config"), regular=True)
    if text is None:
        return None
    image: str | None = None
    labels: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") and "Template used to create this container:" in line:
            tpl = line.split(":", 1)[1].strip()
            image = os.path.basename(tpl).removeprefix("lxc-") or None
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key.startswith("#"):
            continue
        net_key = key.startswith("lxc.net.") and key.endswith(_NET_KEYS)
        if key in ("lxc.rootfs.path", "lxc.uts.name") or net_key:
            labels[key] = _unquote(value)
    return LxcConfig(image=image, labels=labels)


def monitor_args(cmdline: str) -> tuple[str, str] | None:
    """(lxcpath, name) from a monitor's command line, None for any other process."""
    text = cmdline.replace("\0", " ").strip()
    if not text.startswith(MONITOR):
        return None
    rest = text[len(MONITOR) :].split()
    if len(rest) < 2:
        return None
    return rest[0], rest[1]


class _Claims(Claims):
    """An LXC container is known by its cgroup only (``lxc.payload.<name>``)."""

    def __init__(self, opts: Options) -> None:
        self.root: str = opts["lxc_root"]

    def by_cgroup(self, ns: Namespace, cgroup: str) -> Container | None:
        m = _CGROUP.search(cgroup)
        if m is None or ns.lowest is None:
            return None
        name = m.group(1) or m.group(2)
        cfg = read_config(self.root, name)
        if cfg is None:
            # Not under our lxcpath: the monitor (init's parent) says which one.
            monitor = monitor_args(ns.parent(ns.lowest)[1])
            if monitor is not None and monitor[1] == name and monitor[0] != self.root:
                cfg = read_config(monitor[0], name)
        return Container(
            id=f"lxc:{name}",
            engine=Engine.LXC,
            name=name,
            netns=ns.id,
            engine_id=name,
            pid=ns.lowest,
            pids=ns.pids,
            command=ns.cmdline(ns.lowest) or None,
            image=cfg.image if cfg else None,
            state="running",
            cgroup=cgroup,
            labels=dict(cfg.labels) if cfg else {},
        )


READER = EngineReader(name="lxc", options={"lxc_root": DEFAULT_ROOT}, claims=_Claims)
