"""Which networks reach which: ``allow_from`` opt-ins and the bridges' ``route_localnet``.

Networks are isolated from each other by netlens's table (see
:mod:`netlens_runtime.firewall`); this module keeps the records that open it up
(``allow_from``: other networks by name, outside sources by CIDR) and the one
per-bridge sysctl the published ports need.
"""

from __future__ import annotations

import contextlib
from typing import Any

from netlens_runtime import names, nat, state
from netlens_runtime.errors import NotFound, RuntimeFailure


def set_allow_from(name: str, items: list[str], allow: bool = True) -> dict[str, Any]:
    """Add (or with ``allow=False`` remove) ``items`` in network ``name``'s ``allow_from``.

    The table is replaced first: if nft refuses, the record is unchanged.
    """
    from netlens_runtime.errors import require_root

    require_root("network allow")
    with state.locked():
        networks = state.load_networks()
        net = networks.get(name)
        if net is None:
            raise NotFound(f"no network {name}")
        given = set(names.check_allow_from(name, items))
        old = list(net.get("allow_from") or [])
        net["allow_from"] = sorted(set(old) | given if allow else set(old) - given)
        nat.sync(list(networks.values()))
        try:
            state.write_json(state.network_path(name), net)
        except BaseException:
            net["allow_from"] = old
            with contextlib.suppress(RuntimeFailure):
                nat.sync(list(networks.values()))
            raise
        return net


def sync_localnet(nets: list[dict[str, Any]]) -> None:
    """``route_localnet`` on a bridge only while its network publishes ports.

    The host's own connection from 127.0.0.1 to a published port is translated
    to the container and out of its bridge, and its reply comes back as 127/8
    traffic on that bridge: without route_localnet the kernel drops both ways
    as martians. The switch is off otherwise, so a bridge without published
    ports keeps the kernel's own martian check beside the table's guard chain
    (which drops 127/8 from every bridge, see :mod:`netlens_runtime.firewall`),
    even if someone flushes the ruleset.
    """
    for net in nets:
        value = "1" if net.get("published") else "0"
        with (
            contextlib.suppress(OSError),
            open(f"/proc/sys/net/ipv4/conf/{net['bridge']}/route_localnet", "w") as fh,
        ):
            fh.write(value)
