"""Host-side links the runtime made: does one exist, delete one or many, quiet IPv6.

Shared by networks (bridges), container creation and removal (host veths),
``gc`` and ``lab down``: deleting links fast is its own problem (link groups,
ENODEV), and so is not paying for IPv6 on a thousand bridge ports.
"""

from __future__ import annotations

import contextlib
import os

from netlens_runtime.netlink import Netlink


def del_links(links: list[str]) -> None:
    with contextlib.suppress(OSError), Netlink() as nl:
        for link in links:
            nl.del_link(link)
        nl.commit(ignore=(19,))  # ENODEV: already gone


def delete_links(links: list[str]) -> None:
    """Delete many host links at once: tag them with a fresh link group, delete the group.

    A group goes in one unregister batch instead of one per link (100 nodes:
    3.0 ms/node against 3.4-4.8 one by one; what is left is mostly the kernel
    walking the host's IPv6 routing table once per device, whoever deletes
    it). The group number is random in a range nothing else here uses;
    setting it is cheap, and a link that vanished meanwhile (its namespace's
    teardown took it) is fine (ENODEV).
    """
    present = [link for link in links if exists(link)]
    if not present:
        return
    if len(present) == 1:
        del_links(present)
        return
    group = 0x40000000 | int.from_bytes(os.urandom(4), "little") & 0x3FFFFFFF
    with contextlib.suppress(OSError), Netlink() as nl:
        for link in present:
            nl.set_group(link, group)
        nl.commit(ignore=(19,))
        nl.del_group(group)
        nl.commit(ignore=(19,))


def exists(link: str) -> bool:
    return os.path.exists(f"/sys/class/net/{link}")


def no_ipv6(link: str) -> None:
    """No IPv6 on a host veth (a bridge port needs no address), set before it goes up.

    Bringing a link up with IPv6 on walks the host's whole IPv6 routing table
    (rt6_sync_up), adds link-local and multicast routes to it and sends
    probes into the bridge: with a thousand links on the host each walk
    visits ~3000 routes. With this and eth0's quiet IPv6 (see
    spawn.prepare_netlink), 1000 containers came up in 10 s instead of 16.
    """
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6", "w") as fh,
    ):
        fh.write("1")
