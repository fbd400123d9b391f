"""The lab loader: good files load into the expected spec, bad ones name file:line:field.

Bad fixtures carry their expected error in their first line (``# expect: LINE:
TEXT``) so each case documents itself and adding one needs no test code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from netlens_runtime.errors import BadInput
from netlens_runtime.lab_impair import rate_bits
from netlens_runtime.lab_spec import load_lab
from netlens_runtime.names import IFNAMSIZ

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "labs"
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))
DEMO = Path(__file__).resolve().parents[2] / "runtime" / "netlens_runtime" / "labs"


def _expectation(path: Path) -> tuple[int, str]:
    first = path.read_text().splitlines()[0]
    m = re.match(r"# expect: (\d+): (.*)$", first)
    assert m, f"{path.name}: first line must be '# expect: LINE: TEXT'"
    return int(m.group(1)), m.group(2)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_names_file_line_and_field(path: Path) -> None:
    line, text = _expectation(path)
    with pytest.raises(BadInput) as info:
        load_lab(str(path))
    msg = str(info.value)
    assert msg.startswith(f"{path.name}:{line}: "), msg
    assert text in msg, msg
    assert "\n" not in msg


def test_there_are_bad_fixtures() -> None:
    assert len(BAD) >= 10


def test_routed_lab_loads() -> None:
    spec = load_lab(str(FIXTURES / "good" / "routed.yaml"))
    assert spec.name == "routed"
    assert [n.name for n in spec.networks] == ["left", "right"]
    r = spec.node("r")
    assert r.network == "left" and r.ip == "10.231.1.254"
    assert r.sysctls == {"net.ipv4.ip_forward": "1"}
    assert [(i.network, i.ifname, i.ip) for i in r.interfaces] == [
        ("right", "eth1", "10.231.2.254")
    ]
    a = spec.node("a")
    assert [(x.to, x.via) for x in a.routes] == [("10.231.2.0/24", "10.231.1.254")]
    assert spec.node("b").network == "right"


def test_p2p_lab_both_link_forms_and_node_fields() -> None:
    spec = load_lab(str(FIXTURES / "good" / "p2p.yaml"))
    assert spec.networks == ()
    assert all(n.network is None for n in spec.nodes)
    ends = {(lk.a, lk.a_ifname, lk.a_addr, lk.b, lk.b_ifname, lk.b_addr) for lk in spec.links}
    assert ends == {
        ("x", "to-y", "10.231.9.1/30", "y", "to-x", "10.231.9.2/30"),
        ("y", "to-z", "10.231.9.5/30", "z", "to-y", "10.231.9.6/30"),
    }
    z = spec.node("z")
    assert z.command == ("sleep", "infinity")
    assert z.cap_add == ("NET_ADMIN",)
    assert z.memory == "16m" and z.cpus == 0.5
    assert z.routes[0].to == "default"
    assert spec.node("y").sysctls == {"net.ipv4.ip_forward": "1"}
    assert [lk.mtu for lk in spec.links] == [None, 1400]


def _load(text: str, **kw: object) -> object:
    return load_lab("inline.yaml", text=text, **kw)  # type: ignore[arg-type]


def test_count_groups_expand_with_consecutive_addresses() -> None:
    spec = load_lab(
        "x.yaml",
        text="name: g\nnetworks:\n  n: {subnet: 10.1.0.0/24}\n"
        "nodes:\n  h: {count: 3, ip: 10.1.0.10}\n",
    )
    assert [(n.name, n.ip) for n in spec.nodes] == [
        ("h1", "10.1.0.10"),
        ("h2", "10.1.0.11"),
        ("h3", "10.1.0.12"),
    ]


def test_scale_only_grows_groups() -> None:
    base = load_lab(str(DEMO / "demo.yaml"))
    grown = load_lab(str(DEMO / "demo.yaml"), scale=len(base.nodes) + 7)
    assert len(grown.nodes) == len(base.nodes) + 7
    assert {n.name for n in base.nodes} <= {n.name for n in grown.nodes}
    with pytest.raises(BadInput, match="--nodes must be between"):
        load_lab(str(DEMO / "demo.yaml"), scale=len(base.nodes) - 1)


def test_name_override_and_missing_name() -> None:
    text = "nodes:\n  a: {}\n"
    with pytest.raises(BadInput, match=r"^x\.yaml:1: missing field 'name'"):
        load_lab("x.yaml", text=text)
    assert load_lab("x.yaml", text=text, name="nl1").name == "nl1"


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="empty"):
        load_lab("e.yaml", text="")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(BadInput, match="cannot read lab file"):
        load_lab(str(missing))


def test_single_network_is_the_default_and_ifname_limit() -> None:
    spec = load_lab(
        "x.yaml",
        text="name: s\nnetworks:\n  n: {subnet: 10.2.0.0/24}\nnodes:\n  a: {ip: 10.2.0.5}\n",
    )
    assert spec.node("a").network == "n"
    ok = "a" * IFNAMSIZ
    text = f"name: s\nnodes:\n  a:\n    links: [{{peer: b, ifname: {ok}}}]\n  b: {{}}\n"
    assert load_lab("x.yaml", text=text).links[0].a_ifname == ok
    with pytest.raises(
        BadInput, match=r"x\.yaml:4: nodes\.a\.links\[0\]\.ifname: .* longer than 15"
    ):
        load_lab("x.yaml", text=text.replace(ok, ok + "b"))


def test_gateway_and_reserved_labels() -> None:
    text = (
        "name: s\nnetworks:\n  n: {subnet: 10.2.0.0/24, gateway: 10.2.0.1}\n"
        "nodes:\n  a: {ip: 10.2.0.1}\n"
    )
    with pytest.raises(BadInput, match=r"x\.yaml:5: nodes\.a\.ip: .*gateway of network 'n'"):
        load_lab("x.yaml", text=text)
    text = "name: s\nnodes:\n  a:\n    labels: {netlens.lab: other}\n"
    with pytest.raises(BadInput, match=r"x\.yaml:4: nodes\.a\.labels: .*reserved"):
        load_lab("x.yaml", text=text)


@pytest.mark.parametrize(
    ("text", "bps"),
    [("10mbit", 10_000_000), ("500kbit", 500_000), ("1gbit", 1_000_000_000), ("1MBps", 8_000_000)],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert rate_bits(text) == bps


def test_traffic_rate_range() -> None:
    text = (
        "name: t\nnetworks:\n  n: {subnet: 10.3.0.0/24}\nnodes:\n  a: {ip: 10.3.0.2}\n"
        "  b: {ip: 10.3.0.3}\ntraffic:\n  - {from: a, to: b, proto: udp, rate: 2-8mbit}\n"
    )
    flow = load_lab("x.yaml", text=text).traffic[0]
    assert (flow.src, flow.dst, flow.proto) == ("a", "b", "udp")
    assert (flow.min_bps, flow.max_bps) == (2_000_000, 8_000_000)


def test_bundled_labs_are_valid() -> None:
    files = sorted(DEMO.glob("*.yaml"))
    assert any(f.name == "demo.yaml" for f in files)
    for f in files:
        spec = load_lab(str(f))
        assert spec.nodes


def test_demo_lab_shape() -> None:
    spec = load_lab(str(DEMO / "demo.yaml"))
    assert len(spec.networks) >= 3
    assert 10 <= len(spec.nodes) <= 16
    routers = [n for n in spec.nodes if n.sysctls.get("net.ipv4.ip_forward") == "1"]
    assert routers
    assert any(n.nat for n in spec.networks)
    assert not all(n.nat for n in spec.networks)
    # Traffic only between the lab's own nodes, to addresses inside lab subnets.
    names = {n.name for n in spec.nodes}
    assert spec.traffic
    for flow in spec.traffic:
        assert flow.src in names and flow.dst in names
    assert os.path.basename(spec.path) == "demo.yaml"


def test_cli_reports_one_line_and_exit_2(tmp_path: Path) -> None:
    """Through the real ``netlens`` entry point: no traceback, exit code 2."""
    import subprocess
    import sys

    bad = FIXTURES / "bad" / "bad_prefix.yaml"
    env = dict(os.environ, NETLENS_NO_LOG="1", NETLENS_STATE_DIR=str(tmp_path))
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "lab", "check", str(bad)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "netlens: bad_prefix.yaml:11: nodes.r1.links[0].addr: '10.0.0.1/33' is not a valid address"
    ]
    ok = subprocess.run(
        [sys.executable, "-m", "netlens", "lab", "check", "demo"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0 and "ok: lab 'demo', 12 nodes" in ok.stdout


def test_privileged_and_security_opt_nodes(tmp_path: Path) -> None:
    """Profiles are relative to the lab file, read and checked at load time; a bad one
    (or one on a privileged node) names the lab file's line and the field."""
    (tmp_path / "p.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    (tmp_path / "bad.json").write_text('{"defaultAction": "SCMP_ACT_MAYBE"}')
    lab = tmp_path / "lab.yaml"
    text = (
        "name: s\n"
        "defaults: {security_opt: [seccomp=p.json]}\n"
        "nodes:\n"
        "  a: {}\n"
        "  b: {privileged: true, security_opt: [seccomp=unconfined]}\n"
        "  c: {security_opt: [seccomp=unconfined]}\n"
    )
    spec = load_lab(str(lab), text=text)
    assert spec.node("a").security_opt == (f"seccomp={tmp_path}/p.json",)
    assert not spec.node("a").privileged
    assert spec.node("b").privileged and spec.node("b").security_opt == ("seccomp=unconfined",)
    assert spec.node("c").security_opt == ("seccomp=unconfined",)
    for bad, where in (
        ("  a: {security_opt: [seccomp=bad.json]}\n", r"lab\.yaml:\d+: .*bad\.json: defaultAction"),
        ("  a: {security_opt: [seccomp=nope.json]}\n", r"lab\.yaml:\d+: .*No such file"),
        ("  a: {security_opt: [label=x]}\n", r"use seccomp=unconfined or seccomp=FILE"),
        ("  a: {privileged: yes please}\n", r"nodes\.a\.privileged: expected true or false"),
        ("  a: {privileged: true}\n", r"lab\.yaml:2: .*privileged container runs without"),
    ):
        with pytest.raises(BadInput, match=where):
            load_lab(str(lab), text=text.split("nodes:\n")[0] + "nodes:\n" + bad)
