"""``netlens link`` on real labs: measured rate limits, counted loss, netem, cables.

Each test builds its own lab in its own state directory (the ``labstate`` fixture
removes it all afterwards, pass or fail, and fails if anything is left, host-side
loss tables included). Rates are measured with iperf3 between the lab's own
nodes and compared as ratios to the limit; loss is counted with ping. Nothing is
sent anywhere but between namespaces the test created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG
from runtime_host import free_octet

from netlens.cli import main
from netlens_runtime import api, lab_ops, lab_record
from netlens_runtime.lab_model import LabSpec
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.integration


OCTET = free_octet(100 + int(RUN_TAG, 16) % 100)
PORT = 15201

LAB = """
name: lk
networks:
  lan: {{subnet: 10.{o}.50.0/24}}
nodes:
  a:
    network: lan
    ip: 10.{o}.50.10
    links:
      - {{peer: b, ifname: p2p0, addr: 10.{o}.51.1/30, peer_addr: 10.{o}.51.2/30}}
  b:
    network: lan
    ip: 10.{o}.50.11
    routes: [{{to: 10.{o}.52.0/24, via: 10.{o}.51.1}}]
{extra}
"""


def _lab(tmp_path: Path, suffix: str, extra: str = "") -> tuple[LabSpec, dict[str, int]]:
    path = tmp_path / "lk.yaml"
    path.write_text(LAB.format(o=OCTET, extra=extra))
    spec = load_lab(str(path), name=f"lk{RUN_TAG}{suffix}")
    lab_ops.lab_up(spec)
    pids = {
        c["labels"]["netlens.lab.node"]: int(c["pid"])
        for c in api.list_containers()
        if c["labels"].get("netlens.lab") == spec.name
    }
    return spec, pids


def _in(pid: int, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", *argv], capture_output=True, text=True, **kw
    )


def _cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    """iperf3 servers started inside lab nodes, killed whatever happens."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _listening(pid: int, ip: str, port: int) -> bool:
    return bool(_in(pid, ["ss", "-Hltn", f"src {ip}:{port}"]).stdout.strip())


def _measure(
    servers: list[subprocess.Popen[str]],
    src: int,
    dst: int,
    dst_ip: str,
    seconds: int = 3,
    udp_bps: int = 0,
) -> float:
    """Received bits/s of one iperf3 run from node ``src`` to ``dst_ip`` in ``dst``: TCP,
    or UDP sent at ``udp_bps``. Through a rate limit UDP sent well above it: on a
    busy shared machine a starved TCP sender lets the shaper's queue run dry (one
    run here measured 4 of 10 Mbit/s), while UDP keeps it full and measures the
    shaper, not the scheduler."""
    srv = subprocess.Popen(
        ["nsenter", f"--net=/proc/{dst}/ns/net", "iperf3", "-s", "-1", "-B", dst_ip,
         "-p", str(PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    servers.append(srv)
    deadline = time.monotonic() + 10
    while not _listening(dst, dst_ip, PORT):
        assert srv.poll() is None and time.monotonic() < deadline, "iperf3 server did not start"
        time.sleep(0.05)
    udp = ["-u", "-b", str(udp_bps)] if udp_bps else []
    res = _in(src, ["iperf3", "-c", dst_ip, "-p", str(PORT), "-t", str(seconds), *udp, "-J"])
    assert res.returncode == 0, res.stdout[-500:] + res.stderr
    srv.wait(timeout=10)
    return float(json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"])


def _ping_loss(src: int, ip: str, count: int) -> tuple[int, int]:
    """(transmitted, received) of a fast ping burst."""
    res = _in(src, ["ping", "-q", "-n", "-c", str(count), "-i", "0.002", "-W", "1", ip])
    for line in res.stdout.splitlines():
        if "packets transmitted" in line:
            words = line.replace(",", "").split()
            return int(words[0]), int(words[3])
    raise AssertionError(res.stdout + res.stderr)


def _tables(pid: int | None) -> set[str]:
    """Loss tables (``family name``) in a node, or in the host when ``pid`` is None."""
    argv = ["nft", "list", "tables"]
    out = (_in(pid, argv) if pid else subprocess.run(argv, capture_output=True, text=True)).stdout
    return {
        " ".join(line.split()[1:])
        for line in out.splitlines()
        if line.startswith("table") and line.split()[-1].startswith("nl_loss_")
    }


def _qdiscs(pid: int) -> str:
    return _in(pid, ["tc", "qdisc", "show"]).stdout


def _dumped(container: str, ifname: str) -> list[dict[str, Any]]:
    """``ifname`` of ``container`` as ``netlens dump --json`` reports it ("": all)."""
    dump = subprocess.run(
        [sys.executable, "-m", "netlens", "dump", "--json", "--container", container],
        capture_output=True, text=True, env={**os.environ, "NETLENS_NO_LOG": "1"},
    )  # fmt: skip
    assert dump.returncode == 0, dump.stderr
    doc = json.loads(dump.stdout)
    return [i for n in doc["namespaces"] for i in n["interfaces"] if ifname in ("", i["name"])]


def _show(lab: str) -> list[dict[str, Any]]:
    from netlens_runtime import linkops

    return linkops.show(lab)


# ----------------------------------------------------------------------- rate


def test_rate_limits_both_directions_as_measured_by_iperf3(
    labstate: Path, tmp_path: Path, servers: list[subprocess.Popen[str]]
) -> None:
    spec, pids = _lab(tmp_path, "r")
    a, b = pids["a"], pids["b"]
    b_ip, a_ip = f"10.{OCTET}.51.2", f"10.{OCTET}.51.1"
    free = _measure(servers, a, b, b_ip, seconds=1)
    assert free > 5 * 10_000_000, free  # the limit below is what makes the difference

    assert _cli("link", "set", f"{spec.name}:a:p2p0", "--rate", "10mbit", "--direction",
                "egress") == 0  # fmt: skip
    out = _measure(servers, a, b, b_ip, udp_bps=40_000_000)
    assert 0.75 <= out / 10_000_000 <= 1.05, out
    assert "tbf 4e4c: dev p2p0 root" in _qdiscs(a)
    # the inspector reads it back from the kernel, like anyone's tc
    (p2p0,) = _dumped(lab_record.node_name(spec.name, "a"), "p2p0")
    assert p2p0["tc"]["kinds"] == ["tbf"] and p2p0["tc"]["rate_bps"] == 10_000_000

    # ingress of the same interface: what b sends to a, through the ifb
    assert _cli("link", "set", f"{spec.name}:a:p2p0", "--rate", "5mbit", "--direction",
                "ingress") == 0  # fmt: skip
    back = _measure(servers, b, a, a_ip, udp_bps=20_000_000)
    assert 0.75 <= back / 5_000_000 <= 1.05, back
    (row,) = _show(spec.name)
    assert row["egress"] == {"rate": 10_000_000} and row["ingress"] == {"rate": 5_000_000}
    # the dump follows the ingress redirect to the ifb and its rate
    (p2p0,) = _dumped(lab_record.node_name(spec.name, "a"), "p2p0")
    assert p2p0["tc"]["ingress"] and p2p0["tc"]["ingress_to"] is not None
    ifb = [i for i in _dumped(lab_record.node_name(spec.name, "a"), "") if i["kind"] == "ifb"]
    assert [(i["ifindex"], i["tc"]["rate_bps"]) for i in ifb] == [
        (p2p0["tc"]["ingress_to"], 5_000_000)
    ]

    assert _cli("link", "reset", f"{spec.name}:a:p2p0") == 0
    assert _show(spec.name) == []
    assert [i["tc"] for i in _dumped(lab_record.node_name(spec.name, "a"), "p2p0")] == [None]
    assert "4e4c" not in _qdiscs(a) and "ingress" not in _qdiscs(a)
    assert "nlifb" not in _in(a, ["ip", "-o", "link"]).stdout
    assert _measure(servers, b, a, a_ip, seconds=1) > 5 * 5_000_000


# ----------------------------------------------------------------------- loss


def test_loss_drops_silently_on_the_receiving_end(labstate: Path, tmp_path: Path) -> None:
    spec, pids = _lab(tmp_path, "l")
    a, b = pids["a"], pids["b"]
    b_ip = f"10.{OCTET}.51.2"
    target = f"{spec.name}:a:p2p0"
    assert _cli("link", "set", target, "--loss", "30%", "--direction", "egress") == 0
    sent, got = _ping_loss(a, b_ip, 400)
    assert sent == 400  # silent: the sender saw no error and sent no extra packet
    assert 0.20 <= 1 - got / sent <= 0.40, (sent, got)
    # the egress drop sits on b's end of the cable, not in a
    assert [t.split()[0] for t in _tables(b)] == ["inet"] and not _tables(a)

    assert _cli("link", "set", target, "--loss", "30%", "--direction", "ingress") == 0
    sent, got = _ping_loss(a, b_ip, 400)
    assert 0.40 <= 1 - got / sent <= 0.62, (sent, got)  # 1 - 0.7 * 0.7 = 0.51
    assert len(_tables(a)) == 1

    assert _cli("link", "reset", target) == 0
    assert not _tables(a) and not _tables(b)
    assert _ping_loss(a, b_ip, 100) == (100, 100)


def test_plain_container_interface_and_rm_removes_host_side_rules(labstate: Path) -> None:
    net = f"lkn{RUN_TAG}"
    api.create_network(api.NetworkSpec(name=net, subnet=f"10.{OCTET}.60.0/24", nat=False))
    a, b = f"lka{RUN_TAG}", f"lkb{RUN_TAG}"
    recs = api.create_containers(
        [api.ContainerSpec(name=n, network=net) for n in (a, b)]  # eth0 on the bridge
    )
    b_ip = str(recs[1]["ip"])
    assert _cli("link", "set", f"{a}:eth0", "--loss", "40%", "--rate", "20mbit") == 0
    host = _tables(None)
    assert len(host) == 1 and host.pop().startswith("netdev ")  # at the bridge port
    host = _tables(None)
    sent, got = _ping_loss(int(recs[0]["pid"]), b_ip, 300)
    # both directions: 1 - 0.6 * 0.6 = 0.64
    assert 0.52 <= 1 - got / sent <= 0.76, (sent, got)
    api.remove_containers([a, b], force=True)
    assert not host & _tables(None)
    api.remove_network(net)


# ---------------------------------------------------------------------- netem


def _kernel_has_netem(pid: int) -> bool:
    """Asked with iproute2 on the node's loopback (an oracle apart from pyroute2)."""
    res = _in(pid, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
    if res.returncode == 0:
        _in(pid, ["tc", "qdisc", "del", "dev", "lo", "root"])
        return True
    assert "unknown" in res.stderr.lower() or "not supported" in res.stderr.lower(), res.stderr
    return False


def test_netem_settings_need_netem_and_a_refusal_changes_nothing(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pids = _lab(tmp_path, "n")
    a = pids["a"]
    target = f"{spec.name}:a:p2p0"
    assert _cli("link", "set", target, "--rate", "10mbit", "--loss", "5%") == 0
    before = (_qdiscs(a), _in(a, ["ip", "-o", "link"]).stdout, _tables(pids["b"]), _show(spec.name))
    capsys.readouterr()
    rc = _cli("link", "set", target, "--delay", "20ms", "--jitter", "5ms", "--duplicate", "1%")
    if _kernel_has_netem(a):
        assert rc == 0
        assert "netem 4e4d: dev p2p0 parent 4e4c:1" in _qdiscs(a)
        return
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "delay and jitter and duplicate need" in err and "sch_netem" in err, err
    after = (_qdiscs(a), _in(a, ["ip", "-o", "link"]).stdout, _tables(pids["b"]), _show(spec.name))
    assert after == before


# ---------------------------------------------------------------- lab files

IMPAIRED = """
    impair: {{rate: 20mbit, loss: 2%, direction: egress}}
links:
  - a: {{node: a, ifname: p2p1, addr: 10.{o}.53.1/30}}
    b: {{node: b, ifname: p2p1, addr: 10.{o}.53.2/30}}
    impair: {{rate: 8mbit, loss: 10%}}
"""


def test_lab_file_impairments_are_applied_and_go_with_the_lab(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the block after `routes:` of node b impairs b's eth0
    spec, pids = _lab(tmp_path, "f", IMPAIRED.format(o=OCTET))
    rows = {r["target"].split(":", 1)[1]: r for r in _show(spec.name)}
    assert rows["b:eth0"]["egress"] == {"rate": 20_000_000, "loss": 2.0}
    assert rows["b:eth0"]["ingress"] == {}
    for end in ("a:p2p1", "b:p2p1"):  # a link's block: each end's egress
        assert rows[end]["egress"] == {"rate": 8_000_000, "loss": 10.0}
        assert rows[end]["ingress"] == {}
    assert "tbf 4e4c: dev p2p1 root" in _qdiscs(pids["a"])
    assert "tbf 4e4c: dev eth0 root" in _qdiscs(pids["b"])
    assert len(_tables(pids["a"])) == 1 and len(_tables(pids["b"])) == 1  # the peers' drops
    host = _tables(None)
    assert len(host) == 1  # b's eth0 egress loss: at the bridge port
    assert lab_ops.lab_down(spec.name) == []
    assert not host & _tables(None)


def test_lab_up_that_fails_at_an_impairment_leaves_nothing(
    labstate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b's eth0 (rate, loss: host-side table) is applied first, then the link's delay
    fails: for want of netem on this kernel, else by a stand-in for that refusal."""
    from netlens_runtime import linkctl

    if os.path.exists("/sys/module/sch_netem"):
        real = linkctl.Tc.send

        def refuse(self: linkctl.Tc, reqs: list[linkctl.TcRequest]) -> None:
            if any(r.kind == "netem" for r in reqs):
                raise linkctl.NetemMissing("netem")
            real(self, reqs)

        monkeypatch.setattr(linkctl.Tc, "send", refuse)
    extra = IMPAIRED.format(o=OCTET).replace("{rate: 8mbit, loss: 10%}", "{delay: 20ms}")
    path = tmp_path / "lk.yaml"
    path.write_text(LAB.format(o=OCTET, extra=extra))
    spec = load_lab(str(path), name=f"lk{RUN_TAG}x")
    before = _tables(None)
    with pytest.raises(linkctl.NetemMissing, match="delay needs the kernel's netem"):
        lab_ops.lab_up(spec)
    assert api.list_containers() == [] and api.list_networks() == []
    assert lab_record.list_labs() == []
    assert _tables(None) == before


# ------------------------------------------------------------- link down/up


def _operstate(pid: int | None, dev: str) -> str:
    if pid is None:
        return Path(f"/sys/class/net/{dev}/operstate").read_text().strip()
    out = _in(pid, ["ip", "-o", "link", "show", dev]).stdout
    return out.split(" state ")[1].split()[0].lower()


def test_link_down_pulls_both_ends_and_up_brings_routes_back(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pids = _lab(tmp_path, "d")
    a, b = pids["a"], pids["b"]
    route = f"10.{OCTET}.52.0/24"
    assert route in _in(b, ["ip", "route"]).stdout
    assert _cli("link", "down", f"{spec.name}:a:p2p0") == 0
    assert capsys.readouterr().out.strip() == f"{spec.name}:a:p2p0 and {spec.name}:b:p2p0: down"
    assert _operstate(a, "p2p0") == "down" and _operstate(b, "p2p0") == "down"
    assert route not in _in(b, ["ip", "route"]).stdout  # the kernel took it
    assert _ping_loss(a, f"10.{OCTET}.51.2", 3)[1] == 0
    (row,) = _show(spec.name)
    assert row["target"] == f"{spec.name}:a:p2p0" and row["state"] == "down"
    assert _cli("link", "down", f"{spec.name}:b:p2p0") == 0  # the same cable: already down
    assert "already down" in capsys.readouterr().out

    (p2p0,) = _dumped(lab_record.node_name(spec.name, "b"), "p2p0")
    assert p2p0["operstate"] == "down", p2p0

    assert _cli("link", "up", f"{spec.name}:b:p2p0") == 0  # either end plugs it back
    assert _operstate(a, "p2p0") == "up" and _operstate(b, "p2p0") == "up"
    assert route in _in(b, ["ip", "route"]).stdout
    assert _ping_loss(a, f"10.{OCTET}.51.2", 3)[1] == 3
    assert _show(spec.name) == []

    # a node on a bridge: its eth0 and the host end; the default route comes back
    rec = api.get_container(lab_record.node_name(spec.name, "a"))
    host_end = str(rec["host_veth"])
    routes = _in(a, ["ip", "route"]).stdout
    assert _cli("link", "down", f"{spec.name}:a:eth0") == 0
    assert _operstate(None, host_end) == "down" and _operstate(a, "eth0") == "down"
    assert _cli("link", "up", f"{spec.name}:a:eth0") == 0
    assert _operstate(None, host_end) == "up"
    # the carrier comes back asynchronously: routes may still say linkdown for a moment
    assert _in(a, ["ip", "route"]).stdout.replace(" linkdown", "") == routes


# ------------------------------------------------------------ lab up --nodes


def test_lab_up_builds_only_the_named_nodes(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lk.yaml"
    path.write_text(LAB.format(o=OCTET, extra=IMPAIRED.format(o=OCTET)))
    name = f"lk{RUN_TAG}s"
    assert _cli("lab", "up", str(path), "--name", name, "--nodes", "b") == 0
    err = capsys.readouterr().err
    assert "leaves out link a:p2p0 - b:p2p0" in err and "route 10." in err
    nodes = {c["labels"]["netlens.lab.node"] for c in api.list_containers()}
    assert nodes == {"b"}
    (b,) = [int(c["pid"]) for c in api.list_containers()]
    assert "p2p0" not in _in(b, ["ip", "-o", "link"]).stdout
    # b's own impairment (its eth0) came along; the dropped link's did not
    assert [r["target"] for r in _show(name)] == [f"{name}:b:eth0"]
    assert lab_ops.lab_down(name) == []


@pytest.mark.parametrize("failures", [1, 99])
def test_a_change_failing_half_way_puts_the_old_settings_back(
    labstate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    """nft refuses the new loss table after the old tc and tables were cleared: the
    old settings come back (once), or nothing is left, record included (always)."""
    from netlens_runtime import linkloss
    from netlens_runtime.errors import RuntimeFailure

    spec, pids = _lab(tmp_path, f"h{failures}")
    a, b = pids["a"], pids["b"]
    target = f"{spec.name}:a:p2p0"
    assert _cli("link", "set", target, "--rate", "10mbit", "--loss", "5%") == 0
    before = (_qdiscs(a), _tables(a), _tables(b), _show(spec.name))
    real, left = linkloss.run_nft, [failures]

    def flaky(fd: int | None, script: str) -> None:
        if "numgen" in script and left[0] > 0:
            left[0] -= 1
            raise RuntimeFailure("nft: injected failure")
        real(fd, script)

    monkeypatch.setattr(linkloss, "run_nft", flaky)
    assert _cli("link", "set", target, "--rate", "20mbit", "--loss", "7%") == 1
    after = (_qdiscs(a), _tables(a), _tables(b), _show(spec.name))
    if failures == 1:
        assert after == before
    else:
        assert "4e4c" not in after[0] and not after[1] and not after[2] and after[3] == []
