"""The live layer against real namespaces, veths and a bridge this test builds.

Discovery here is a small stand-in (:func:`lab_discover`, from ``ip -j -d link``)
that sees only the host and this test's namespaces: the real discover() would
open sockets in every namespace on the host, and a kept socket keeps its
namespace alive, which could delay other engineers' concurrent teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Lab, is_root, sh

from netlens.model.types import Container, IfRef, Interface, Netns, Server, Snapshot, VethPair
from netlens.stats.counters import StatsReader
from netlens.stats.live import LiveMonitor, sample_snapshot_rates
from netlens.stats.rates import FIELDS
from netlens.stats.watch import open_sockets

pytestmark = pytest.mark.integration

# Per TCP segment on the wire, on top of the payload iperf3 counts: Ethernet 14 +
# IPv4 20 + TCP 20 + timestamps option 12. With GSO a veth counts one super-packet
# (one header set) per several segments, so the overhead is taken from the packet
# counter the kernel reports, not from the MSS.
HEADER_BYTES = 14 + 20 + 32


# --- a stand-in discovery for this test's objects ------------------------------------
def _links(ns: str | None) -> list[dict[str, Any]]:
    pre = ["ip", "-n", ns] if ns else ["ip"]
    out = subprocess.run([*pre, "-j", "-d", "link", "show"], capture_output=True, text=True)
    if out.returncode != 0:
        return []
    data: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    return data


def _interfaces(ns_id: str, links: list[dict[str, Any]]) -> list[Interface]:
    by_name = {ln["ifname"]: ln["ifindex"] for ln in links}
    out = []
    for ln in links:
        info = ln.get("linkinfo", {})
        kind = info.get("info_kind") or (
            "loopback" if ln.get("link_type") == "loopback" else "ether"
        )
        out.append(
            Interface(
                netns=ns_id,
                ifindex=ln["ifindex"],
                name=ln["ifname"],
                kind=kind,
                master=by_name.get(ln.get("master", "")),
                link=ln.get("link_index"),
                operstate=ln.get("operstate", "unknown").lower(),
            )
        )
    return out


def lab_discover(lab: Lab) -> Callable[[], Snapshot]:
    """A discover_fn that sees the host and ``lab``'s namespaces still present."""

    def discover() -> Snapshot:
        host_st = os.stat("/proc/self/ns/net")  # the test runs in the host namespace
        host_id = f"netns:{host_st.st_ino}"
        raw: dict[str, tuple[os.stat_result, list[Interface], tuple[str, ...]]] = {}
        raw[host_id] = (host_st, _interfaces(host_id, _links(None)), ())
        for name in list(lab.netns):
            try:
                st = os.stat(f"/run/netns/{name}")
            except OSError:
                continue
            ns_id = f"netns:{st.st_ino}"
            raw[ns_id] = (st, _interfaces(ns_id, _links(name)), (name,))
        # pair veths: an end in a lab namespace whose `link` is an ifindex in the host
        # (or another lab namespace) whose own `link` points back
        pairs: list[VethPair] = []
        peer_of: dict[str, IfRef] = {}
        for ns_id, (_st, itfs, names) in raw.items():
            if not names:
                continue
            for i in itfs:
                if i.kind != "veth" or i.link is None:
                    continue
                for other_id, (_s2, others, _n2) in raw.items():
                    if other_id == ns_id:
                        continue
                    hit = [o for o in others if o.ifindex == i.link and o.link == i.ifindex]
                    if hit and i.ref.key not in peer_of:
                        peer_of[i.ref.key] = hit[0].ref
                        peer_of[hit[0].ref.key] = i.ref
                        pairs.append(VethPair(i.ref, hit[0].ref))
                        break
        namespaces = []
        containers = []
        for ns_id, (st, itfs, names) in raw.items():
            fixed = tuple(
                Interface(
                    netns=i.netns,
                    ifindex=i.ifindex,
                    name=i.name,
                    kind=i.kind,
                    master=i.master,
                    link=i.link,
                    operstate=i.operstate,
                    peer=peer_of.get(i.ref.key),
                )
                for i in itfs
            )
            namespaces.append(
                Netns(
                    id=ns_id,
                    inode=st.st_ino,
                    dev=st.st_dev,
                    is_host=not names,
                    name=names[0] if names else "host",
                    names=names,
                    container=f"netns:{names[0]}" if names else None,
                    interfaces=fixed,
                )
            )
            if names:
                containers.append(
                    Container(id=f"netns:{names[0]}", engine="netns", name=names[0], netns=ns_id)
                )
        return Snapshot(
            server=Server("test", os.uname().release, os.uname().machine, os.cpu_count() or 1, 0),
            namespaces=tuple(namespaces),
            containers=tuple(containers),
            veth_pairs=tuple(pairs),
            taken_at=time.time(),
        )

    return discover


# --- fixtures ----------------------------------------------------------------------------
@pytest.fixture
def nslab() -> Iterator[Lab]:
    """A lab with this engineer's prefix, torn down also when the test fails."""
    if not is_root():
        pytest.skip("needs root (creates namespaces)")
    lb = Lab("ns")
    try:
        yield lb
    finally:
        lb.close()


def veth_into(lab: Lab, host_end: str, ns: str) -> None:
    """A veth whose host end is ``host_end`` and whose other end is eth0 inside ``ns``."""
    sh(f"ip link add {host_end} type veth peer name eth0 netns {ns}")
    lab.links.append(host_end)
    sh(f"ip link set {host_end} up && ip -n {ns} link set eth0 up")


def two_on_a_bridge(lab: Lab) -> dict[str, str]:
    """Namespaces a and b, each with eth0 to a host veth on one bridge, 10.77.x.0/24."""
    br = lab.add_bridge("br")
    a, b = lab.add_netns("a"), lab.add_netns("b")
    ha, hb = lab.name("ha"), lab.name("hb")
    veth_into(lab, ha, a)
    veth_into(lab, hb, b)
    sh(f"ip link set {ha} master {br} && ip link set {hb} master {br}")
    net = int(lab.prefix[-4:], 16) % 250 + 1  # per run, only inside these namespaces
    sh(f"ip -n {a} addr add 10.77.{net}.1/24 dev eth0")
    sh(f"ip -n {b} addr add 10.77.{net}.2/24 dev eth0")
    ping = sh(f"ip netns exec {a} ping -c 1 -W 2 10.77.{net}.2", check=False)
    assert ping.returncode == 0, (
        "no connectivity on the test bridge (FORWARD drop by br_netfilter?)"
    )
    return {"a": a, "b": b, "br": br, "ha": ha, "hb": hb, "ip_b": f"10.77.{net}.2"}


def ip_counters(ns: str | None, dev: str) -> dict[str, int]:
    pre = f"ip -n {ns}" if ns else "ip"
    data = json.loads(sh(f"{pre} -s -j link show dev {dev}").stdout)[0]["stats64"]
    return {
        "rx_bytes": data["rx"]["bytes"],
        "tx_bytes": data["tx"]["bytes"],
        "rx_packets": data["rx"]["packets"],
        "tx_packets": data["tx"]["packets"],
    }


def ifindex(ns: str | None, dev: str) -> int:
    pre = f"ip -n {ns}" if ns else "ip"
    return int(json.loads(sh(f"{pre} -j link show dev {dev}").stdout)[0]["ifindex"])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- tests -------------------------------------------------------------------------------
def test_raw_dump_matches_ip_counters(nslab: Lab) -> None:
    t = two_on_a_bridge(nslab)
    snap = lab_discover(nslab)()
    a_ns = next(ns for ns in snap.namespaces if t["a"] in ns.names)
    socks = open_sockets([a_ns])
    try:
        before = ip_counters(t["a"], "eth0")
        dumped = StatsReader().dump(socks[a_ns.id])
        after = ip_counters(t["a"], "eth0")
    finally:
        for s in socks.values():
            s.close()
    eth0 = dumped[ifindex(t["a"], "eth0")]
    for name in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"):
        got = eth0[FIELDS.index(name)]
        assert before[name] <= got <= after[name], name
    assert set(dumped) == {ifindex(t["a"], "lo"), ifindex(t["a"], "eth0")}


def test_iperf3_bytes_and_rate_match_the_kernel(nslab: Lab) -> None:
    t = two_on_a_bridge(nslab)
    # The structure is fixed during the run: discover once, so that other tests'
    # namespaces coming and going on this host cost no rediscovery mid-measurement.
    fixed = lab_discover(nslab)()
    mon = LiveMonitor(interval=0.25, discover_fn=lambda: fixed, watch_events=False)
    server = nslab.spawn(["ip", "netns", "exec", t["b"], "iperf3", "-s", "-1", "-B", t["ip_b"]])
    time.sleep(0.3)
    snap = mon.open()
    cid = f"netns:{t['a']}"
    try:
        k0 = ip_counters(t["a"], "eth0")
        client = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                t["a"],
                "iperf3",
                "-c",
                t["ip_b"],
                "-t",
                "6",
                "-b",
                "200M",
                "-J",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        frames = []
        started = time.monotonic()
        while client.poll() is None:
            frames.append((time.monotonic(), mon.tick()[1]))
        ended = time.monotonic()
        for _ in range(2):
            frames.append((time.monotonic(), mon.tick()[1]))
        k1 = ip_counters(t["a"], "eth0")
        report = json.loads(client.communicate()[0])
    finally:
        mon.close()
        server.wait(timeout=10)
    assert any(c.id == cid for c in snap.containers)

    # 1) bytes over the run: the integral of netlens's rates equals the kernel's counters
    kernel_bytes = k1["tx_bytes"] - k0["tx_bytes"]
    netlens_bytes = sum(f.containers[cid].tx_bps * f.interval / 8 for _, f in frames)
    assert kernel_bytes > 100e6, "iperf3 moved too little to measure"
    assert netlens_bytes == pytest.approx(kernel_bytes, rel=0.01)

    # 2) mean rate while iperf3 ran (ticks fully inside, 0.5 s margins) against iperf3's
    # bitrate. iperf3 counts payload only; the counters add one header set per
    # (GSO super-)packet, so subtract tx_pps * HEADER_BYTES before comparing.
    inner = [f for at, f in frames if at - f.interval >= started + 0.5 and at <= ended - 0.5]
    assert len(inner) >= 6
    span = sum(f.interval for f in inner)
    wire = sum(f.containers[cid].tx_bps * f.interval for f in inner) / span
    headers = sum(f.containers[cid].tx_pps * f.interval for f in inner) / span * HEADER_BYTES * 8
    iperf_bps = report["end"]["sum_sent"]["bits_per_second"]
    print(
        f"\niperf3 {iperf_bps / 1e6:.1f} Mb/s payload; netlens wire {wire / 1e6:.1f} Mb/s,"
        f" headers {headers / 1e6:.2f} Mb/s;"
        f" bytes kernel {kernel_bytes} netlens {netlens_bytes:.0f}"
    )
    assert wire - headers == pytest.approx(iperf_bps, rel=0.05)
    # The cable and the switch carry the same bytes. Compared as integrals over the
    # whole run: a busy host can delay one namespace's dump against another's within
    # a tick, so single ticks of different namespaces cover slightly shifted windows.
    mid = inner[len(inner) // 2]
    a_eth0 = next(k for k in mid.veth_pairs if k in mid.interfaces and mid.interfaces[k].tx_bps)
    assert mid.veth_pairs[a_eth0].tx_bps == mid.containers[cid].tx_bps
    host = next(ns for ns in snap.namespaces if ns.is_host)
    br_key = f"{host.id}/{ifindex(None, t['br'])}"
    bid = f"netns:{t['b']}"
    into_switch = sum(f.bridges[br_key].rx_bps * f.interval for _, f in frames)
    sent = sum(
        (f.containers[cid].tx_bps + f.containers[bid].tx_bps) * f.interval for _, f in frames
    )
    assert into_switch == pytest.approx(sent, rel=0.01)


def test_interface_recreated_with_same_index_gives_no_spike(nslab: Lab) -> None:
    t = two_on_a_bridge(nslab)
    mon = LiveMonitor(interval=0.2, discover_fn=lab_discover(nslab))
    mon.open()
    cid = f"netns:{t['a']}"
    try:
        idx = ifindex(t["a"], "eth0")
        sh(f"ip netns exec {t['a']} ping -q -c 300 -i 0.002 -s 1200 {t['ip_b']}")
        frames = [mon.tick()[1] for _ in range(2)]
        busy = max(f.containers[cid].tx_bps for f in frames)
        assert busy > 0
        # delete the pair and recreate it with the same name and the same ifindex
        sh(f"ip -n {t['a']} link del eth0")
        sh(
            f"ip -n {t['a']} link add eth0 index {idx} type veth peer name {t['ha']}"
            f" netns {os.getpid()}"
            f" && ip link set {t['ha']} master {t['br']} up && ip -n {t['a']} link set eth0 up"
        )
        assert ifindex(t["a"], "eth0") == idx
        sh(f"ip netns exec {t['a']} ping -q -c 20 -i 0.01 {t['ip_b']}", check=False)
        frames = [mon.tick()[1] for _ in range(6)]
    finally:
        mon.close()
    for f in frames:
        for rate in (f.containers[cid], *f.interfaces.values()):
            for field in ("rx_bps", "tx_bps", "rx_pps", "tx_pps"):
                v = getattr(rate, field)
                assert 0 <= v <= 10 * max(busy, 1e6), (field, v)  # a wrap guess is ~1e20
    assert mon.sampler.resets >= 1  # the counters went down under the same key


def test_structure_changes_and_no_fd_left_behind(nslab: Lab) -> None:
    two_on_a_bridge(nslab)
    mon = LiveMonitor(interval=0.2, discover_fn=lab_discover(nslab))
    fds0 = open_fds()
    mon.open()
    try:
        mon.tick()
        socks0 = mon.socket_count
        fds1 = open_fds()
        c = nslab.add_netns("c")
        veth_into(nslab, nslab.name("hc"), c)
        seen_at = None
        for n in range(1, 4):
            snap, frame = mon.tick()
            if snap is not None and any(c in ns.names for ns in snap.namespaces):
                seen_at = n
                cid = f"netns:{c}"
                assert cid in frame.containers
                break
        assert seen_at is not None and seen_at <= 2, "new namespace not shown within 2 ticks"
        assert mon.socket_count == socks0 + 1
        sh(f"ip netns del {c}")
        nslab.netns.remove(c)
        gone_at = None
        for n in range(1, 4):
            snap, _ = mon.tick()
            if snap is not None and not any(c in ns.names for ns in snap.namespaces):
                gone_at = n
                break
        assert gone_at is not None and gone_at <= 2, "removed namespace still shown"
        assert mon.socket_count == socks0
        for _ in range(3):  # the host end vanishes once the kernel frees the namespace
            mon.tick()
        assert open_fds() == fds1
    finally:
        mon.close()
    assert open_fds() <= fds0


def test_sample_snapshot_rates_is_json_ready(nslab: Lab) -> None:
    t = two_on_a_bridge(nslab)
    snap = lab_discover(nslab)()
    proc = nslab.spawn(
        ["ip", "netns", "exec", t["a"], "ping", "-q", "-c", "400", "-i", "0.002", t["ip_b"]]
    )
    doc = sample_snapshot_rates(snap, 0.5)
    proc.wait(timeout=20)
    text = json.dumps(doc)  # must not raise
    assert json.loads(text) == doc
    a = doc["containers"][f"netns:{t['a']}"]
    assert a["tx_pps"] > 10 and a["tx_bps"] > 0
    assert 0.4 < doc["interval"] < 2
    assert doc["density"]["namespaces"] == len(snap.namespaces)


def test_stats_without_root_says_so_once_and_samples_its_own_namespace(nslab: Lab) -> None:
    """``netlens stats --json`` as nobody inside namespace a: exit 0, exactly the one
    not-root line on stderr, and NDJSON on stdout that sees a's own veth move."""
    ns = nslab.add_netns("a")
    hb = nslab.name("hb")
    veth_into(nslab, hb, ns)
    sh(f"ip -n {ns} addr add 169.254.77.1/30 dev eth0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETLENS_")}
    env["NETLENS_NO_LOG"] = "1"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = f"{repo}{os.pathsep}{repo}/runtime"
    res = subprocess.run(
        ["ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534",
         "--clear-groups", sys.executable, "-m", "netlens", "stats", "--json", "--count", "2",
         "--interval", "0.2"],
        capture_output=True, text=True, timeout=60, cwd="/tmp", env=env, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        "netlens: not root: only this process's own namespace is sampled; "
        "run as root to see inside containers"
    ]
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(docs) == 2
    ino = os.stat(f"/run/netns/{ns}").st_ino
    assert f"netns:{ino}" in docs[-1]["vrfs"]  # its own namespace is sampled
