"""Which namespaces own an address (a trace's SRC or DST given as an IP), read by
the C walker on a host with many namespaces and directly on few: same answer.

The walker path is what a trace on a host with a thousand namespaces takes; the
direct path is the fallback (walker not built, not root, or a namespace the
walker did not serve)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import Lab, is_root, sh

from netlens.analysis import scope
from netlens.discovery.nsfind import NsHandle, find_namespaces
from netlens.kernel import walker

pytestmark = pytest.mark.integration

COUNT = scope.WALK_MIN_NAMESPACES + 4


@pytest.fixture
def many() -> Iterator[tuple[Lab, list[NsHandle]]]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("ow")
    try:
        for i in range(COUNT):
            ns = lab.add_netns(str(i))
            sh(f"ip -n {ns} link add v0 type veth peer name v1")
            sh(f"ip -n {ns} addr add 10.233.{i}.1/24 dev v0")
            sh(f"ip -n {ns} addr add fd00:233::{i:x}/64 dev v0 nodad")
        for i in (7, 8):  # one address in two namespaces: both are owners
            sh(f"ip -n {lab.name(str(i))} addr add 10.233.200.9/32 dev v0")
        ours = set(lab.netns)
        handles = [h for h in find_namespaces() if set(h.names) & ours]
        assert len(handles) == COUNT
        yield lab, handles
    finally:
        lab.close()


def _owners(rows: list[tuple[int, list[tuple[int, str]]]]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for inode, addrs in rows:
        for ifindex, addr in addrs:
            if ifindex != 1:
                out.setdefault(addr, set()).add(inode)
    return out


def test_the_walker_and_the_direct_read_agree(
    many: tuple[Lab, list[NsHandle]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, handles = many
    path = walker.find()
    if path is None:
        pytest.skip(f"netlens-walk is not built: {walker.status()[1]}")
    fds = []
    try:
        for h in handles:
            fd = os.open(h.path, os.O_RDONLY | os.O_CLOEXEC)
            fds.append((h, fd))
        walked, left = scope._walk_addresses(path, fds)
    finally:
        for _h, fd in fds:
            os.close(fd)
    assert left == []  # the walker answered for every namespace
    monkeypatch.setenv(walker.ENV, "0")
    assert walker.find() is None
    direct = scope._all_addresses(handles)
    assert _owners(walked) == _owners(direct)
    inode = {h.names[0]: h.inode for h in handles}
    owners = _owners(walked)
    assert owners["10.233.5.1"] == {inode[lab.name("5")]}
    assert owners["fd00:233::b"] == {inode[lab.name("11")]}
    assert owners["10.233.200.9"] == {inode[lab.name("7")], inode[lab.name("8")]}
    monkeypatch.delenv(walker.ENV)
    assert _owners(scope._all_addresses(handles)) == owners  # the whole path, walker on


def test_a_namespace_gone_mid_walk_is_skipped(many: tuple[Lab, list[NsHandle]]) -> None:
    lab, handles = many
    gone = lab.name("3")
    sh(f"ip netns del {gone}")
    lab.netns.remove(gone)
    owners = _owners(scope._all_addresses(handles))
    assert "10.233.3.1" not in owners and "10.233.4.1" in owners
