"""CNI: bridge networks described by ``/etc/cni/net.d/*.conflist``.

Podman's CNI backend (``cni-podman0``), nerdctl (``nerdctl0``, ``br-<id>``) and
Kubernetes bridge plugins write one conflist per network: its ``name`` and a
plugin of type ``bridge`` naming the host bridge. Only read, never executed.
"""

from __future__ import annotations

import json
import os

from netlens.discovery.engines import EngineReader, read_text

DEFAULT_DIR = "/etc/cni/net.d"


def bridge_networks(conf_dir: str = DEFAULT_DIR) -> dict[str, str]:
    """Bridge interface name -> CNI network name."""
    try:
        files = sorted(f for f in os.listdir(conf_dir) if f.endswith((".conflist", ".conf")))
    except OSError:
        return {}
    out: dict[str, str] = {}
    for fname in files:
        text = read_text(os.path.join(conf_dir, fname), regular=True)
        try:
            data = json.loads(text) if text else None
        except ValueError:
            continue
        if not isinstance(data, dict) or not data.get("name"):
            continue
        plugins = data.get("plugins") if "plugins" in data else [data]  # .conf: one plugin
        for plugin in plugins if isinstance(plugins, list) else []:
            if isinstance(plugin, dict) and plugin.get("type") == "bridge":
                out.setdefault(str(plugin.get("bridge") or "cni0"), str(data["name"]))
    return out


# CNI names no namespace (its plugins leave no record of one): bridges only.
READER = EngineReader(
    name="cni",
    options={"cni_dir": DEFAULT_DIR},
    networks=lambda opts: bridge_networks(opts["cni_dir"]),
)
