"""read_nat() and the FORWARD-policy check on namespaces this test makes.

One namespace carries our own nft table (masquerade + dnat) and an
iptables-legacy SNAT rule, one only a filter table with a DROP forward policy,
one nothing. Addresses are documentation ranges; no packet is sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import RUN_TAG, Lab, is_root, sh

from netlens.discovery.nat_tools import forward_policy_warning, read_nat
from netlens.discovery.nsfind import NsHandle, find_namespaces
from netlens.model.types import NatRule, Snapshot

pytestmark = pytest.mark.integration

TABLE = f"ni{RUN_TAG}"


@pytest.fixture
def nat_lab() -> Iterator[tuple[Lab, str, str, str]]:
    if not is_root():
        pytest.skip("needs root")
    lb = Lab("ni")
    try:
        natns, filt, plain = lb.add_netns("n"), lb.add_netns("f"), lb.add_netns("p")
        lb.cleanups.append(f"ip netns exec {natns} nft delete table ip {TABLE}")
        lb.cleanups.append(f"ip netns exec {filt} nft delete table ip {TABLE}")
        sh(
            f"ip netns exec {natns} nft -f - <<'EOF'\n"
            f"table ip {TABLE} {{\n"
            "  chain post { type nat hook postrouting priority srcnat; policy accept;\n"
            '    ip saddr 10.231.9.0/24 oifname != "lo" masquerade\n  }\n'
            "  chain pre { type nat hook prerouting priority dstnat; policy accept;\n"
            '    iifname "lo" tcp dport 18080 dnat to 10.231.9.2:80 comment "ni web"\n  }\n'
            "}\nEOF"
        )
        sh(
            f"ip netns exec {natns} iptables-legacy -t nat -A POSTROUTING -o lo -j SNAT "
            "--to-source 192.0.2.7"
        )
        sh(
            f"ip netns exec {filt} nft 'add table ip {TABLE}; add chain ip {TABLE} dropfw "
            "{ type filter hook forward priority 0; policy drop; }'"
        )
        yield lb, natns, filt, plain
    finally:
        lb.close()


def _handles(names: list[str]) -> list[NsHandle]:
    by_name = {n: h for h in find_namespaces() for n in h.names}
    return [by_name[n] for n in names]


def test_nft_and_legacy_rules_found_only_where_they_are(nat_lab: tuple[Lab, str, str, str]) -> None:
    _lb, natns, filt, plain = nat_lab
    hn, hf, hp = _handles([natns, filt, plain])

    got = read_nat([hn, hf, hp])

    assert set(got) == {hn.inode}
    rules = got[hn.inode]
    ours = {r.action: r for r in rules if r.source == "nftables" and r.table == TABLE}
    assert set(ours) == {"masquerade", "dnat"}
    m = ours["masquerade"]
    assert (m.family, m.hook, m.src, m.out_iface) == ("ip", "postrouting", "10.231.9.0/24", "!lo")
    d = ours["dnat"]
    assert (d.proto, d.dport, d.in_iface) == ("tcp", "18080", "lo")
    assert (d.to_addr, d.to_port, d.comment, d.hook) == ("10.231.9.2", "80", "ni web", "prerouting")
    legacy = [r for r in rules if r.source == "iptables-legacy"]
    assert [(r.action, r.out_iface, r.to_addr) for r in legacy] == [("snat", "lo", "192.0.2.7")]
    # reading must not have created legacy tables where there were none
    names = sh(f"ip netns exec {plain} cat /proc/net/ip_tables_names", check=False).stdout
    assert "nat" not in names


def test_vanished_namespace_is_skipped(nat_lab: tuple[Lab, str, str, str]) -> None:
    _lb, natns, _filt, _plain = nat_lab
    (hn,) = _handles([natns])
    gone = NsHandle(dev=hn.dev, inode=1, path=f"/run/netns/ni{RUN_TAG}gone")
    got = read_nat([gone, hn])
    assert set(got) == {hn.inode}


def test_forward_drop_with_br_netfilter_is_flagged(nat_lab: tuple[Lab, str, str, str]) -> None:
    _lb, _natns, filt, plain = nat_lab
    hf, hp = _handles([filt, plain])
    br = sh(f"ip netns exec {filt} cat /proc/sys/net/bridge/bridge-nf-call-iptables", check=False)
    if br.stdout.strip() != "1":
        pytest.skip("br_netfilter is not calling iptables in a new namespace on this kernel")
    warn = forward_policy_warning(hf)
    assert warn is not None and f"ip {TABLE} dropfw" in warn
    assert forward_policy_warning(hp) is None
    assert os.path.exists(f"/run/netns/{filt}")


@pytest.mark.parametrize("helper", [False, True], ids=["setns-pass", "helper-process"])
def test_discovery_probes_nat_in_its_own_visit(
    nat_lab: tuple[Lab, str, str, str], helper: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """discover() probes NAT while it opens each namespace (here, or in the helper
    process that enters them itself): the same probes as nat.probe's own pass."""
    from netlens.discovery import live_source, nat
    from netlens.discovery.resolve import FIRST_ROUND

    _lb, natns, filt, plain = nat_lab
    handles = [h for h in find_namespaces() if h.is_host] + _handles([natns, filt, plain])
    monkeypatch.setattr(live_source, "PUMP_MIN_NAMESPACES", 1 if helper else 10**6)
    src = live_source.LiveNetlink(nat_probe=True)
    try:
        assert src.open(handles) == {}
        inodes = [h.inode for h in handles]
        src.prefetch(inodes, FIRST_ROUND)
        assert (src._pump is not None) == helper
        for inode in inodes:
            got = src.dumps(inode, FIRST_ROUND)
            assert isinstance(got["link"], (bytes, list))
        probes = src.nat_probes(handles)
    finally:
        src.close()
    want = nat.probe(handles)
    assert probes[0] is not None  # the host (others' tests may change its tables meanwhile)
    for h, a, b in zip(handles[1:], probes[1:], want[1:], strict=True):
        assert a is not None and b is not None, h
        assert (a.chains, a.legacy_tables4, a.legacy_tables6) == (
            b.chains,
            b.legacy_tables4,
            b.legacy_tables6,
        )
    assert probes[1] is not None and probes[1].nft_nat and probes[1].legacy_nat4
    assert probes[2] is not None and not probes[2].nft_nat
    assert read_nat(handles, probes=probes).keys() >= {handles[1].inode}


def test_live_monitor_shows_nat_at_start_and_after_a_change(
    nat_lab: tuple[Lab, str, str, str],
) -> None:
    """What the dashboard runs (LiveMonitor with its default discovery) carries NAT:
    the rules of a namespace present at start, and those of one made afterwards."""
    from netlens.stats.live import LiveMonitor

    lb, natns, _filt, plain = nat_lab

    def nat_of(snap: Snapshot, name: str) -> tuple[NatRule, ...]:
        return next(ns.nat for ns in snap.namespaces if name in ns.names)

    mon = LiveMonitor(interval=0.2, history_seconds=5)
    try:
        snap = mon.open()
        assert {r.action for r in nat_of(snap, natns)} >= {"masquerade", "dnat", "snat"}
        assert nat_of(snap, plain) == ()
        later = lb.add_netns("m")
        lb.cleanups.append(f"ip netns exec {later} nft delete table ip {TABLE}")
        sh(
            f"ip netns exec {later} nft 'add table ip {TABLE}; add chain ip {TABLE} post "
            "{ type nat hook postrouting priority srcnat; }; "
            f"add rule ip {TABLE} post ip saddr 10.231.8.0/24 masquerade'"
        )
        seen: tuple[NatRule, ...] = ()
        for _ in range(50):  # the new mount is seen within a tick or two
            new, _frame = mon.tick()
            if new is not None and any(later in ns.names for ns in new.namespaces):
                seen = nat_of(new, later)
                if seen:
                    break
        assert [r.action for r in seen] == ["masquerade"]
    finally:
        mon.close()
