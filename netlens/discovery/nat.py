"""NAT rules per namespace: nftables and iptables-legacy. (Being built.)"""

from __future__ import annotations

from collections.abc import Sequence

from netlens.discovery.nsfind import NsHandle
from netlens.model import NatRule


def read_nat(handles: Sequence[NsHandle]) -> dict[int, tuple[NatRule, ...]]:
    """NAT rules keyed by namespace inode; namespaces without NAT are absent."""
    return {}
