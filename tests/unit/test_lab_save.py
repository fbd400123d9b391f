"""``lab save`` / ``lab export --format clab`` as data (netlens_runtime.lab_save):
what they write reads back to the same lab.

Every good lab fixture is written as a native file and loaded again: the LabSpec
must be equal, field for field (impairments, routes, links, flows included). A
containerlab file exported and loaded again is the same lab too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from netlens_runtime.lab_impair import ImpairSpec
from netlens_runtime.lab_model import LabSpec
from netlens_runtime.lab_save import _with_live_state, to_clab, to_native
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GOOD = sorted((ROOT / "tests" / "fixtures" / "labs" / "good").glob("*.yaml")) + sorted(
    (ROOT / "runtime" / "netlens_runtime" / "labs").glob("*.yaml")
)


def _same(a: LabSpec, b: LabSpec) -> bool:
    return dataclasses.replace(a, path="") == dataclasses.replace(b, path="")


def _dump(data: dict[str, object]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_native_round_trip(path: Path) -> None:
    spec = load_lab(str(path))
    again = load_lab(str(path), text=_dump(to_native(spec)))
    assert _same(again, spec)


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_any_lab_exports_to_a_loadable_clab_file(path: Path) -> None:
    spec = load_lab(str(path))
    notes: list[str] = []
    text = _dump(to_clab(spec, notes.append))
    back = load_lab("x.clab.yml", text=text)
    assert [n.name for n in back.nodes] == [n.name for n in spec.nodes]
    assert len(back.links) == len(spec.links)


CLAB = """\
name: c2
mgmt: {ipv4-subnet: 10.44.0.0/24}
topology:
  nodes:
    r1:
      mgmt-ipv4: 10.44.0.5
      cmd: sh -c 'sleep 1000'
      env: {A: "1"}
      exec: ["ip addr add 10.9.0.1/30 dev eth1"]
    r2: {network-mode: none, binds: ["/etc/hostname:/h"]}
    sw: {kind: bridge}
  links:
    - endpoints: [r1:eth1, r2:eth1]
      mtu: 1400
    - endpoints: [r2:eth2, sw:x]
"""


def test_clab_export_round_trip() -> None:
    spec = load_lab("a.clab.yml", text=CLAB)
    notes: list[str] = []
    again = load_lab("b.clab.yml", text=_dump(to_clab(spec, notes.append)))
    assert _same(again, spec)
    assert notes == []


def test_clab_export_turns_addresses_and_routes_into_exec_and_reports_the_rest() -> None:
    text = (
        "name: n\nnetworks:\n  lan: {subnet: 10.5.0.0/24}\n  side: {subnet: 10.6.0.0/24}\n"
        "nodes:\n  a:\n    network: lan\n    ip: 10.5.0.10\n    memory: 64m\n"
        "    interfaces: [{network: side, ifname: e1, ip: 10.6.0.2}]\n"
        "    routes: [{to: 10.8.0.0/16, via: 10.6.0.1}]\n"
        "  b:\n    network: lan\nlinks:\n"
        "  - {a: {node: a, ifname: p1, addr: 10.7.0.1/30}, b: {node: b, ifname: p1,"
        " addr: 10.7.0.2/30}, impair: {rate: 1mbit}}\n"
    )
    notes: list[str] = []
    data = to_clab(load_lab("n.yaml", text=text), notes.append)
    a = data["topology"]["nodes"]["a"]
    assert a["mgmt-ipv4"] == "10.5.0.10"
    assert a["exec"] == [
        "ip addr add 10.6.0.2/24 dev e1",
        "ip addr add 10.7.0.1/30 dev p1",
        "ip route add 10.8.0.0/16 via 10.6.0.1",
    ]
    assert data["topology"]["nodes"]["side"] == {"kind": "bridge"}
    assert data["mgmt"] == {"ipv4-subnet": "10.5.0.0/24"}
    assert notes == [
        "node 'a': memory not exported (no clab field)",
        "link a:p1 - b:p1: impair not exported",
        "network 'side': exported as a plain bridge (no subnet, no NAT)",
    ]
    back = load_lab("n.clab.yml", text=_dump(data))
    assert back.node("a").ip == "10.5.0.10"


LIVE = """\
name: lv
networks:
  n: {subnet: 10.3.0.0/24}
nodes:
  a: {ip: 10.3.0.2, impair: {rate: 5mbit}}
  b: {ip: 10.3.0.3}
links:
  - {a: {node: a, ifname: p1}, b: {node: b, ifname: p1}}
"""


def test_live_impairments_replace_the_files() -> None:
    spec = load_lab("lv.yaml", text=LIVE)
    link = {"egress": {"rate": 2_000_000, "delay": 20_000}}
    live = {
        "a": {"impair": {"p1": link}, "link_down": {"p1": {}}},
        "b": {"impair": {"eth0": {"ingress": {"loss": 1.5}}, "p1": link}},
    }
    notes: list[str] = []
    out = _with_live_state(spec, live, notes.append)
    assert out.node("a").impair is None  # reset live: the file's 5mbit is gone
    assert out.node("b").impair == ImpairSpec({"loss": 1.5}, "ingress")
    assert out.links[0].impair == ImpairSpec({"rate": 2_000_000, "delay": 20_000}, "both")
    assert notes == ["a:p1 is down now; the file brings it up"]
    again = load_lab("lv.yaml", text=_dump(to_native(out)))
    assert _same(again, out)


def test_live_asymmetric_link_is_reported_not_saved() -> None:
    spec = load_lab("lv.yaml", text=LIVE)
    live = {"a": {"impair": {"p1": {"egress": {"rate": 2_000_000}}}}, "b": {}}
    notes: list[str] = []
    out = _with_live_state(spec, live, notes.append)
    assert out.links[0].impair is None
    assert notes == [
        "link a:p1 - b:p1: its ends are impaired differently; a lab file impairs a cable"
        " both ways alike, not saved"
    ]
