"""Doctor checks on recorded fixtures (no root): device kinds this kernel lacks
(vrf, vlan, bond, dummy: the ``kinds`` fixture), the captured ``lab``, the forward
filter's rule reading, the JSON document and the inert text output."""

from __future__ import annotations

import dataclasses

import pytest
from test_discovery_fixtures import KINDS, LAB, replay

from netlens.analysis import checks_l2, checks_l3
from netlens.analysis.doctor import LIVE_ONLY, diagnose
from netlens.analysis.findings import DOCTOR_VERSION, Report, report_to_dict
from netlens.analysis.netfacts import ForwardFilter
from netlens.commands.doctor import render_text
from netlens.model.findings import Finding, ObjectRef, Severity
from netlens.model.types import NextHop, Route, Rule, Snapshot

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def kinds() -> Snapshot:
    return replay(KINDS)


@pytest.fixture(scope="module")
def lab() -> Snapshot:
    return replay(LAB)


def _with_routes(snap: Snapshot, ns_index: int, routes: tuple[Route, ...]) -> Snapshot:
    ns = snap.namespaces[ns_index]
    new = dataclasses.replace(ns, routes=ns.routes + routes)
    spaces = list(snap.namespaces)
    spaces[ns_index] = new
    return dataclasses.replace(snap, namespaces=tuple(spaces))


def test_kinds_fixture_is_clean(kinds: Snapshot) -> None:
    """bond, vlan, dummy and an l3mdev VRF with an ECMP route: nothing to report
    (the ECMP gateways sit on the vlan's subnet; the veth ends sharing a MAC are
    one cable)."""
    assert diagnose(kinds, None, "kinds").findings == ()


def test_blackhole_in_a_vrf_table_hides_its_ecmp_route(kinds: Snapshot) -> None:
    hole = Route(family=4, table=10, dst="10.9.0.0/24", type="blackhole", metric=0)
    snap = _with_routes(kinds, 0, (hole,))
    found = [f for f in checks_l3.hidden_routes(snap) if f.check == "route-hidden"]
    assert len(found) == 1
    f = found[0]
    assert f.severity is Severity.ERROR
    assert f.objects[0].name == "host: blackhole 10.9.0.0/24 table 10"
    assert "hidden route: 10.9.0.0/24 via 10.100.0.2 via 10.100.0.3 table 10" in f.evidence


def test_gateway_off_the_vlan_subnet_in_a_vrf(kinds: Snapshot) -> None:
    odd = Route(
        family=4,
        table=10,
        dst="10.77.0.0/24",
        nexthops=(NextHop(gateway="10.200.0.1", ifindex=5, dev="bond0.100"),),
    )
    found = checks_l3.gateway_not_connected(_with_routes(kinds, 0, (odd,)))
    assert [(f.severity, f.objects[1].name) for f in found] == [
        (Severity.WARNING, "host:bond0.100")
    ]
    assert "subnets of bond0.100: 10.100.0.0/24" in found[0].evidence


def test_rule_before_main_hides_the_default(lab: Snapshot) -> None:
    host = lab.namespaces[0]
    rule = Rule(family=4, priority=10, table=0, action="unreachable")
    snap = dataclasses.replace(
        lab,
        namespaces=(dataclasses.replace(host, rules=(*host.rules, rule)), *lab.namespaces[1:]),
    )
    found = [f for f in checks_l3.hidden_routes(snap) if f.check == "rule-hides-routes"]
    assert len(found) == 1 and found[0].severity is Severity.ERROR  # it matches everything
    assert "rule: 10: from all unreachable" in found[0].evidence


# --- the forward filter ------------------------------------------------------------------------
NFT_DOCKER = """table ip filter {
	chain DOCKER-FORWARD {
		iifname "docker0" counter packets 0 bytes 0 accept
		oifname "br-*" ct state related,established counter accept
	}
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		counter packets 0 bytes 0 jump DOCKER-USER
	}
}"""
IPT_SAVE = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i virbr+ -j ACCEPT\n-A FORWARD -o x -j DROP\n"


def test_accepted_ifnames_reads_nft_and_iptables_save() -> None:
    assert checks_l2.accepted_ifnames(NFT_DOCKER) == ["docker0", "br-*"]
    assert checks_l2.accepted_ifnames(IPT_SAVE) == ["virbr*"]


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        (NFT_DOCKER, True),
        (NFT_DOCKER + '\niifname "ndfbr" oifname "ndfbr" accept', False),
        (NFT_DOCKER + '\niifname "ndf*" accept', False),
    ],
)
def test_forward_drop_names_the_bridge_without_accept(lab: Snapshot, text: str, cut: bool) -> None:
    host = lab.namespaces[0]
    fw = {host.id: ForwardFilter(True, ("ip filter FORWARD",), text)}
    found = checks_l2.forward_drop(lab, fw)
    assert [f.objects[0].name for f in found] == (["host:ndfbr"] if cut else [])
    if cut:
        assert found[0].title.startswith("Docker's FORWARD drop policy")
        assert found[0].fix == "iptables -I DOCKER-USER -i ndfbr -o ndfbr -j ACCEPT"
    off = {host.id: ForwardFilter(False, ("ip filter FORWARD",), NFT_DOCKER)}
    assert checks_l2.forward_drop(lab, off) == []


# --- output -----------------------------------------------------------------------------------
def test_saved_dump_lists_live_checks_as_skipped(lab: Snapshot) -> None:
    report = diagnose(lab, None, "lab.json")
    doc = report_to_dict(report)
    assert doc["doctor_version"] == DOCTOR_VERSION
    assert set(doc) == {
        "doctor_version",
        "schema_version",
        "source",
        "taken_at",
        "counts",
        "findings",
        "skipped",
    }
    assert {s["check"] for s in doc["skipped"]} >= set(LIVE_ONLY)
    assert doc["counts"] == {"error": 0, "warning": 0, "info": 0} or doc["findings"]


def test_text_output_is_inert_and_grouped() -> None:
    evil = "\x1b]52;c;AAAA\x07web"
    f = Finding(
        "veth-peer-down",
        Severity.ERROR,
        f"veth {evil}:eth0 is down",
        (ObjectRef("interface", "netns:1/2", f"{evil}:eth0"),),
        (f"{evil} admin down",),
        f"ip -n {evil} link set dev eth0 up",
    )
    g = dataclasses.replace(f, severity=Severity.INFO, title="later")
    text = render_text(Report((f, g), source="test"), 3)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]52;c;AAAA\\x07web" in text
    assert text.index("ERROR (1)") < text.index("INFO (1)")
    assert text.splitlines()[0].startswith("netlens doctor: 1 error(s), 0 warning(s), 1 info")


def test_checks_share_one_segments_per_snapshot_only_inside_diagnose(
    lab: Snapshot, kinds: Snapshot
) -> None:
    """The union-find the L2 checks join is built once per diagnose (at 1000
    namespaces each build cost ~9 ms), never handed to another snapshot, and not
    kept after; the findings are those of checks that each build their own."""
    from netlens.analysis import topo

    alone = sorted(f.title for f in diagnose(lab, None).findings)
    with topo.shared_segments(lab):
        first = topo.segments(lab)
        assert topo.segments(lab) is first
        other = topo.segments(kinds)
        assert other is not first and other.parent != first.parent
        assert topo.segments(lab) is first
    assert topo.segments(lab) is not first
    assert sorted(f.title for f in diagnose(lab, None).findings) == alone
    shared = {f.title for f in diagnose(lab, None).findings}
    own = {f.title for c in (checks_l2.duplicates, checks_l3.overlapping_subnets) for f in c(lab)}
    assert own <= shared
