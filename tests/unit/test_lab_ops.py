"""Lab bookkeeping without root: names, plans, records, the ``ip`` lines a node
gets, and the traffic generator's refusals. Nothing here touches the kernel."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from netlens_runtime import lab_ns, lab_ops, lab_record
from netlens_runtime.errors import BadInput, Conflict
from netlens_runtime.lab_ns import AddAddr, AddRoute, LinkUp
from netlens_runtime.lab_spec import load_lab
from netlens_runtime.names import IFNAMSIZ
from netlens_runtime.traffic import Flow, TrafficGenerator

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "labs" / "good"
DEMO = Path(__file__).resolve().parents[2] / "runtime" / "netlens_runtime" / "labs" / "demo.yaml"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    return tmp_path


def test_plan_names_are_lab_scoped_and_short() -> None:
    spec = load_lab(str(DEMO), name="nlx")
    rec = lab_record.plan(spec)
    assert rec.nodes["r1"] == "nlx-r1" and rec.nodes["client3"] == "nlx-client3"
    assert rec.networks == ["nlx-lan", "nlx-dmz", "nlx-backend"]
    assert rec.addresses["r1"] == ["10.77.16.254/20", "10.77.32.254/20", "10.77.254.1/30"]
    assert rec.addresses["r2"] == ["10.77.48.254/20", "10.77.254.2/30"]
    assert len(rec.host_links) == 1
    assert all(len(h.encode()) <= IFNAMSIZ for h in rec.host_links)
    assert lab_record.host_ifname("a-b", "eth1") != lab_record.host_ifname("a-b", "eth2")


def test_node_ops_bring_up_extra_legs_then_route() -> None:
    spec = load_lab(str(FIXTURES / "routed.yaml"))
    assert lab_ops._node_ops(spec, spec.node("r")) == [
        AddAddr("eth1", "10.231.2.254/24"),
        LinkUp("eth1"),
    ]
    assert lab_ops._node_ops(spec, spec.node("a")) == [
        AddRoute("10.231.2.0/24", "10.231.1.254", None)
    ]


def test_route_message_layout() -> None:
    """The rtnetlink request for 'route 10.1.0.0/16 via 10.0.0.1' (no interface lookup)."""
    msg = lab_ns._message(AddRoute("10.1.0.0/16", "10.0.0.1"), seq=7)
    length, mtype, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    assert (length, mtype, seq) == (len(msg), lab_ns.RTM_NEWROUTE, 7)
    assert flags & lab_ns.NLM_F_ACK and flags & lab_ns.NLM_F_CREATE
    family, dst_len = struct.unpack_from("=BB", msg, 16)
    assert (family, dst_len) == (socket.AF_INET, 16)
    assert bytes([10, 1, 0, 0]) in msg[28:] and bytes([10, 0, 0, 1]) in msg[28:]


def test_record_is_exclusive_and_round_trips(state: Path) -> None:
    spec = load_lab(str(FIXTURES / "routed.yaml"), name="nlrec")
    rec = lab_record.plan(spec)
    lab_record.claim_record(rec)
    with pytest.raises(Conflict, match="already up"):
        lab_record.claim_record(rec)
    rec.status = "up"
    lab_record.save_record(rec)
    data = json.loads((state / "labs" / "nlrec.json").read_text())
    assert data["status"] == "up" and data["nodes"]["r"] == "nlrec-r"
    (back,) = lab_record.list_labs()
    assert back == rec


def test_list_labs_without_state_dir(state: Path) -> None:
    assert lab_record.list_labs() == []
    assert lab_record.read_record("nope") is None


def test_lab_name_of_file_or_name(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("name: nlfile\nnodes: {a: {}}\n")
    assert lab_ops.lab_name_of(str(f)) == "nlfile"
    assert lab_ops.lab_name_of("justaname") == "justaname"
    f.write_text("nodes: {a: {}}\n")
    with pytest.raises(BadInput, match="no 'name' field"):
        lab_ops.lab_name_of(str(f))


def test_resolve_bundled_lab_by_name() -> None:
    assert lab_ops.resolve_lab_file("demo") == str(DEMO)
    assert lab_ops.resolve_lab_file("./nothing-here.yaml") == "./nothing-here.yaml"


def test_summary_is_one_screen() -> None:
    spec = load_lab(str(DEMO), scale=200)
    lines = list(lab_ops.summary_lines(spec, lab_record.plan(spec), limit=16))
    assert len(lines) <= 18
    assert lines[-1].startswith("... and 184 more nodes")
    assert any("(router)" in line for line in lines)


def _flow(dst_ip: str, **kw: object) -> Flow:
    return Flow("f", "/proc/self/ns/net", "/proc/self/ns/net", dst_ip, 5201, **kw)  # type: ignore[arg-type]


def test_traffic_refuses_destinations_outside_the_lab() -> None:
    with pytest.raises(ValueError, match="not an address of the lab"):
        TrafficGenerator([_flow("8.8.8.8")], allowed={"10.0.0.2"})
    with pytest.raises(ValueError, match="unknown protocol"):
        TrafficGenerator([_flow("10.0.0.2", proto="icmp")], allowed={"10.0.0.2"})
    with pytest.raises(ValueError, match="bad rate bounds"):
        TrafficGenerator([_flow("10.0.0.2", min_bps=5, max_bps=1)], allowed={"10.0.0.2"})


def test_traffic_stop_without_start_is_harmless() -> None:
    gen = TrafficGenerator([], allowed=set())
    gen.stop()
    gen.stop()
    assert not gen.running and gen.stats() == {}
