"""The engine table: every reader of container state, in priority order.

This tuple is the only list of engines. Container identity
(:func:`netlens.discovery.identity.identify`) asks its rows in order, round by
round (see :class:`netlens.discovery.engines.Claims`), and bridge naming
(:func:`netlens.discovery.networks.bridge_networks`) merges their networks with
the first row winning a clash. A new engine is a module in
:mod:`netlens.discovery.engines` exporting ``READER``, plus its line here.

Order is priority: the host before anything; netlens's own runtime before the
engines (its state names a namespace by inode, the strongest evidence); the
engines from the most specific traces to the least; then the names any
namespace may have (a Mininet command line, an ``ip netns`` name, a process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netlens.discovery.engines import (
    EngineReader,
    cni,
    containerd,
    docker,
    host,
    lxc,
    mininet,
    netlens_rt,
    netns,
    podman,
    process,
)

READERS: tuple[EngineReader, ...] = (
    host.READER,
    netlens_rt.READER,
    docker.READER,
    podman.READER,
    lxc.READER,
    containerd.READER,
    cni.READER,
    mininet.READER,
    netns.READER,
    process.READER,
)


def options(
    readers: tuple[EngineReader, ...], given: Mapping[str, object], caller: str
) -> dict[str, Any]:
    """Every reader's default options, overridden by ``given``.

    A keyword no reader takes is a caller's typo: TypeError, as for any function.
    """
    out: dict[str, Any] = {}
    for reader in readers:
        out.update(reader.options)
    unknown = sorted(set(given) - set(out))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    out.update(given)
    return out
