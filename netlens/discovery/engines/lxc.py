"""LXC: the name is in the cgroup (``lxc.payload.<name>``), details in its config.

LXC leaves no namespace handle on disk; only the container's init process holds
the namespace. Its config (``/var/lib/lxc/<name>/config``) names the rootfs and
the template it was created from, which stands in for an image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from netlens.discovery.engines import read_text

DEFAULT_ROOT = "/var/lib/lxc"


@dataclass(frozen=True, slots=True)
class LxcConfig:
    image: str | None
    labels: dict[str, str] = field(default_factory=dict)


def read_config(root: str, name: str) -> LxcConfig:
    """The bits of an LXC config an engineer wants: template, rootfs, link, veth."""
    text = read_text(os.path.join(root, name, "config")) or ""
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
        net_key = key.startswith("lxc.net.") and key.endswith((".link", ".veth.pair", ".address"))
        if key in ("lxc.rootfs.path", "lxc.uts.name") or net_key:
            labels[key] = value.strip()
    return LxcConfig(image=image, labels=labels)
