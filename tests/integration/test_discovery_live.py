"""Discovery against real namespaces each test builds (and removes, pass or fail).

Every namespace and link carries the ``nd`` prefix and this run's tag, and only
those objects are asserted about: other engineers' tests run at the same time.
Results are compared with what ``ip -j`` reports inside each namespace.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG, Lab, discovery_fixture_module, is_root, sh

from netlens.discovery import discover
from netlens.discovery.live_source import LiveNetlink, LiveProc
from netlens.discovery.nsfind import NsHandle, find_namespaces
from netlens.discovery.resolve import build_snapshot
from netlens.model import Netns, Snapshot

pytestmark = pytest.mark.integration


oracle = discovery_fixture_module("iproute2_oracle")


@pytest.fixture
def ndlab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("nd")
    try:
        yield lab
    finally:
        lab.close()


def _veth_into(lab: Lab, host_end: str, ns: str, peer: str = "eth0") -> None:
    """A veth whose peer is born inside ``ns`` (the host may have its own eth0)."""
    sh(f"ip link add {host_end} type veth peer name {peer} netns {ns}")
    lab.links.append(host_end)
    sh(f"ip link set {host_end} up && ip -n {ns} link set {peer} up")


def _snap() -> Snapshot:
    return discover(with_identity=False, with_nat=False)


def _named(snap: Snapshot, name: str) -> Netns:
    found = [ns for ns in snap.namespaces if name in ns.names]
    assert len(found) == 1, name
    return found[0]


def _by_inode(snap: Snapshot, inode: int) -> Netns:
    found = [ns for ns in snap.namespaces if ns.inode == inode]
    assert len(found) == 1, inode
    return found[0]


def _held_namespace(lab: Lab) -> tuple[int, int]:
    """An unnamed namespace held only by a process: (pid, inode)."""
    proc = lab.spawn(["unshare", "--net", "sleep", "300"])
    for _ in range(200):
        try:
            inode = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
            if inode != os.stat("/proc/self/ns/net").st_ino:
                return proc.pid, inode
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError("unshare did not enter a new namespace")


def test_topology_matches_iproute2(ndlab: Lab) -> None:
    lab = ndlab
    a, b = lab.add_netns("a"), lab.add_netns("b")
    br = lab.add_bridge("br")
    ha, hc = lab.name("ha"), lab.name("hc")
    _veth_into(lab, ha, a)
    sh(f"ip link set {ha} master {br}")
    sh(f"ip -n {a} addr add 10.232.0.2/24 dev eth0 && ip -n {a} route add default via 10.232.0.1")
    x, y = lab.name("x"), lab.name("y")
    lab.add_veth(x, y, a, b)
    sh(f"ip -n {a} addr add 10.232.1.1/30 dev {x} && ip -n {b} addr add 10.232.1.2/30 dev {y}")
    vx, mv = lab.name("vx"), lab.name("mv")
    sh(f"ip -n {a} link add {vx} type vxlan id 777 remote 10.232.1.2 dstport 4789 dev {x}")
    sh(f"ip -n {b} link add {mv} link {y} type macvlan mode bridge && ip -n {b} link set {mv} up")
    sh(f"ip -n {a} rule add from 10.232.0.0/24 table 123 priority 1234")
    sh(f"ip -n {a} route add 10.232.7.0/24 via 10.232.1.2 table 123")
    # an unnamed namespace held by a process, also bind-mounted outside /run/netns
    pid, c_inode = _held_namespace(lab)
    mnt = f"/run/{lab.prefix}c"
    Path(mnt).touch()
    lab.mounts.append(mnt)
    sh(f"mount --bind /proc/{pid}/ns/net {mnt}")
    sh(f"ip link add {hc} type veth peer name eth0 netns {pid}")
    lab.links.append(hc)
    sh(f"ip link set {hc} master {br} up && nsenter --net={mnt} ip link set eth0 up")
    sh(f"bridge fdb add 02:00:00:00:0d:01 dev {ha} master static")

    # IPv6 autoconfiguration keeps adding link-local addresses and routes for a
    # moment after links come up: compare a snapshot taken while iproute2 saw the
    # same state before and after it.
    paths = {None: None, a: f"/run/netns/{a}", b: f"/run/netns/{b}", "c": mnt}

    def views() -> dict[str | None, Any]:
        out = {k: oracle.live_oracle(p) for k, p in paths.items()}
        host_view = out[None]  # the host is shared: only our objects count
        host_view["link"] = [x for x in host_view["link"] if x["ifname"].startswith(lab.prefix)]
        for view in out.values():  # bridge timers tick on their own
            for lk in view["link"]:
                for part in ("info_data", "info_slave_data"):
                    data = lk.get("linkinfo", {}).get(part, {})
                    for key in [k for k in data if k.endswith("timer")]:
                        del data[key]
        host_view["addr"] = [x for x in host_view["addr"] if x["ifname"].startswith(lab.prefix)]
        for key in ("route4", "route6"):
            host_view[key] = [r for r in host_view[key] if r.get("dev", "").startswith(lab.prefix)]
        return out

    for _attempt in range(20):
        before = views()
        snap = _snap()
        after = views()
        if before == after:
            break
        time.sleep(0.25)
    else:
        diff = [
            (k, x)
            for k in before
            for x in ("link", "addr", "route4", "route6")
            if before[k][x] != after[k][x]
        ]
        pytest.fail(f"the topology never settled: {diff}")
    ns_a, ns_b, ns_c = _named(snap, a), _named(snap, b), _by_inode(snap, c_inode)
    host = snap.host
    assert host is not None and snap.namespaces[0] is host

    diffs: list[str] = []
    diffs += oracle.compare(host, after[None], lambda n: n.startswith(lab.prefix))
    for ns, key in ((ns_a, a), (ns_b, b), (ns_c, "c")):
        diffs += oracle.compare(ns, after[key])
    assert diffs == []

    # handles: bind mount outside /run/netns plus the holding process
    assert mnt in ns_c.mounts and pid in ns_c.pids and ns_c.names == ()
    # veths: host<->a, host<->c, a<->b
    pairs = {frozenset((p.a, p.b)) for p in snap.veth_pairs}
    h_ha, h_hc = host.by_name(ha), host.by_name(hc)
    a_eth0, c_eth0 = ns_a.by_name("eth0"), ns_c.by_name("eth0")
    a_x, b_y = ns_a.by_name(x), ns_b.by_name(y)
    assert h_ha and h_hc and a_eth0 and c_eth0 and a_x and b_y
    for e1, e2 in ((h_ha, a_eth0), (h_hc, c_eth0), (a_x, b_y)):
        assert e1.peer == e2.ref and e2.peer == e1.ref
        assert frozenset((e1.ref, e2.ref)) in pairs
    # bridge ports and the MAC table
    bridge = host.by_name(br)
    assert bridge is not None and bridge.kind == "bridge"
    assert h_ha.master == bridge.ifindex and h_ha.port is not None
    assert any(f.mac == "02:00:00:00:0d:01" and f.ifindex == h_ha.ifindex for f in host.fdb)
    # vxlan and macvlan lower devices, policy routing
    v = ns_a.by_name(vx)
    assert v is not None and v.vxlan is not None and v.vxlan.vni == 777 and v.lower == a_x.ref
    m = ns_b.by_name(mv)
    assert m is not None and m.lower == b_y.ref and m.macvlan is not None
    assert any(r.priority == 1234 and r.table == 123 for r in ns_a.rules)
    assert ns_a.default_gateways() == ("10.232.0.1",)
    assert "net.ipv4.ip_forward" in ns_a.sysctls and ns_a.complete


def test_same_ifindex_on_both_ends(ndlab: Lab) -> None:
    a, b = ndlab.add_netns("a"), ndlab.add_netns("b")
    p, q = ndlab.name("p"), ndlab.name("q")
    sh(f"ip -n {a} link add {p} index 77 type veth peer name {q} index 77 netns {b}")
    snap = _snap()
    ep, eq = _named(snap, a).by_name(p), _named(snap, b).by_name(q)
    assert ep is not None and eq is not None and ep.ifindex == eq.ifindex == 77
    assert ep.peer == eq.ref and eq.peer == ep.ref


def test_peer_in_same_namespace(ndlab: Lab) -> None:
    a = ndlab.add_netns("a")
    p, q = ndlab.name("p"), ndlab.name("q")
    sh(f"ip -n {a} link add {p} type veth peer name {q}")
    ns = _named(_snap(), a)
    ep, eq = ns.by_name(p), ns.by_name(q)
    assert ep is not None and eq is not None and ep.link_netnsid is None
    assert ep.peer == eq.ref and eq.peer == ep.ref


def test_macvlan_moved_into_a_namespace_keeps_its_host_lower(ndlab: Lab) -> None:
    a = ndlab.add_netns("a")
    lo_, lo2, mv = ndlab.name("l"), ndlab.name("l2"), ndlab.name("mv")
    ndlab.add_veth(lo_, lo2)
    sh(f"ip link add {mv} link {lo_} type macvlan mode bridge && ip link set {mv} netns {a}")
    snap = _snap()
    host = snap.host
    assert host is not None
    lower = host.by_name(lo_)
    m = _named(snap, a).by_name(mv)
    assert lower is not None and m is not None
    assert m.link_netnsid is not None and m.lower == lower.ref


class _Hooked(LiveNetlink):
    """Live source that runs ``after_host`` once the host namespace was dumped."""

    def __init__(self, after_host: list[str]) -> None:
        super().__init__()
        self.after_host = after_host
        # The hook needs the host read strictly before the others; the helper
        # process (used from 48 namespaces up) reads them concurrently.
        self.use_pump = False

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, bytes | OSError]:
        out = super().dumps(inode, requests)
        if inode == self.host and self.after_host:
            for cmd in self.after_host:
                sh(cmd)
            self.after_host = []
        return out


def _run(handles: list[NsHandle], src: LiveNetlink) -> Snapshot:
    try:
        return build_snapshot(handles, src, LiveProc())
    finally:
        src.close()


def test_peer_vanishes_mid_walk(ndlab: Lab) -> None:
    a = ndlab.add_netns("a")
    h = ndlab.name("h")
    _veth_into(ndlab, h, a)
    handles = find_namespaces()
    snap = _run(handles, _Hooked([f"ip -n {a} link del eth0"]))
    host, ns_a = snap.host, _named(snap, a)
    assert host is not None
    end = host.by_name(h)
    assert end is not None and end.peer is None  # seen in the host dump, peer gone after
    assert ns_a.by_name("eth0") is None
    assert any(p.a == end.ref and p.b is None for p in snap.veth_pairs)


def test_namespace_deleted_during_discovery(ndlab: Lab) -> None:
    gone, late, stays = ndlab.add_netns("g"), ndlab.add_netns("l"), ndlab.add_netns("s")
    hg, hl = ndlab.name("hg"), ndlab.name("hl")
    _veth_into(ndlab, hg, gone)
    _veth_into(ndlab, hl, late)
    handles = find_namespaces()
    sh(f"ip netns del {gone}")  # between finding and reading
    snap = _run(handles, _Hooked([f"ip netns del {late}"]))  # while reading
    names = {n for ns in snap.namespaces for n in ns.names}
    assert gone not in names and stays in names
    late_inode = next(h.inode for h in handles if late in h.names)
    for ns in snap.namespaces:
        if ns.inode == late_inode:  # still held by our socket: read whole
            assert ns.complete
    refs = {ns.id for ns in snap.namespaces}
    for itf in snap.interfaces():
        assert itf.peer is None or itf.peer.netns in refs


def test_discovery_survives_namespace_churn(ndlab: Lab) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            name = ndlab.name(f"c{i % 4}")
            sh(f"ip netns add {name}", check=False)
            sh(f"ip link add {name}v type veth peer name eth0 netns {name}", check=False)
            sh(f"ip netns del {name}", check=False)
            sh(f"ip link del {name}v", check=False)
            i += 1

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(15):
            try:
                snap = _snap()
                assert snap.host is not None
            except BaseException as exc:
                errors.append(exc)
    finally:
        stop.set()
        t.join()
        for i in range(4):
            sh(f"ip netns del {ndlab.name(f'c{i}')}", check=False)
            sh(f"ip link del {ndlab.name(f'c{i}')}v", check=False)
    assert errors == []


def test_discovery_creates_nothing(ndlab: Lab) -> None:
    a = ndlab.add_netns("a")
    ghost = f"/run/netns/{ndlab.name('zz')}"
    before = sorted(os.listdir("/run/netns"))
    handles = find_namespaces()
    handles.append(NsHandle(dev=handles[0].dev, inode=1, path=ghost))  # a name that vanished
    snap = _run(handles, LiveNetlink())
    assert not os.path.exists(ghost)
    assert not any(ns.inode == 1 for ns in snap.namespaces)
    after = sorted(os.listdir("/run/netns"))
    assert [n for n in before if RUN_TAG in n] == [n for n in after if RUN_TAG in n] == [a]


def test_server_facts() -> None:
    if not is_root():
        pytest.skip("needs root")
    snap = _snap()
    assert snap.server.kernel == os.uname().release
    assert snap.server.hostname == os.uname().nodename
    assert snap.server.cpu_count >= 1
    mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert snap.server.mem_total == mem
    assert snap.root is True
    host = snap.host
    assert host is not None
    for itf in host.interfaces:
        if itf.uplink and itf.kind == "ether":
            assert os.path.exists(f"/sys/class/net/{itf.name}/device")


def test_not_root_reads_own_namespace_and_says_what_needs_root(ndlab: Lab) -> None:
    ndlab.add_netns("a")
    code = (
        "import json; from netlens.discovery import discover;"
        "s = discover(with_identity=False, with_nat=False);"
        "print(json.dumps({'root': s.root, 'warnings': list(s.warnings),"
        " 'host': len(s.host.interfaces) if s.host else 0,"
        " 'others': [ns.complete for ns in s.namespaces if not ns.is_host]}))"
    )
    root = str(Path(__file__).resolve().parents[2])
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{root}:{root}/runtime", "HOME": "/tmp"},
        cwd="/tmp",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["root"] is False and out["host"] >= 1
    assert any("needs root" in w for w in out["warnings"])
    assert out["others"] and not any(out["others"])  # listed, but not readable


@pytest.fixture
def many_namespaces(ndlab: Lab) -> Iterator[list[str]]:
    """Enough namespaces (each with a veth to one bridge) for the helper process."""
    from netlens.discovery.live_source import PUMP_MIN_NAMESPACES

    n = PUMP_MIN_NAMESPACES + 8
    br = ndlab.add_bridge("mbr")
    names = [ndlab.name(f"m{i}") for i in range(n)]
    lines = []
    for i, ns in enumerate(names):
        lines += [
            f"netns add {ns}",
            f"link add {ndlab.name(f'v{i}')} master {br} type veth peer name eth0 netns {ns}",
        ]
        ndlab.netns.append(ns)
        ndlab.links.append(ndlab.name(f"v{i}"))
    batch = Path(f"/tmp/{ndlab.prefix}.batch")
    batch.write_text("\n".join(lines) + "\n")
    try:
        sh(f"ip -batch {batch}")
    finally:
        batch.unlink()
    yield names


def _host(snap: Snapshot) -> tuple[object, ...]:
    """The host namespace as the walker (which reads it first) must give it too."""
    h = next(ns for ns in snap.namespaces if ns.is_host)
    return (
        [(i.name, i.ifindex, i.kind, i.peer, i.mac, i.master) for i in h.interfaces],
        h.routes,
        h.rules,
        [dataclasses.replace(f, age=None) for f in h.fdb],  # ages move with the clock
        h.sysctls,
        h.errors,
    )


def _assert_host_as_read_directly(handles: list[NsHandle], got: Snapshot, before: Snapshot) -> None:
    """The host as a direct read saw it just before or just after: other work on
    the machine may change the host's links between two reads, not both times."""
    if _host(got) == _host(before):
        return
    direct = LiveNetlink()
    direct.use_pump = False
    assert _host(got) == _host(_run(handles, direct))


def _mine(snap: Snapshot, names: list[str]) -> list[tuple[object, ...]]:
    wanted = set(names)
    return [
        (
            ns.names,
            ns.nsid,
            [(i.name, i.ifindex, i.kind, i.peer, i.mac) for i in ns.interfaces],
            ns.routes,
            ns.rules,
            ns.sysctls,
        )
        for ns in snap.namespaces
        if set(ns.names) & wanted
    ]


@pytest.fixture
def fresh_walker(monkeypatch: pytest.MonkeyPatch) -> str:
    """The netlens-walk build, remembered as failed only in this test: a walker the
    test breaks is forgotten only here, not for the tests after it."""
    from conftest import built_helper

    from netlens.kernel import walker

    monkeypatch.delenv(walker.ENV, raising=False)
    monkeypatch.setattr(walker, "_forgotten", False)
    return built_helper(walker.NAME, walker.find())


class _Counting:
    """Records every helper process discovery starts (``live_source.Pump``) and
    every ``os.fork`` of this process meanwhile."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from netlens.discovery import live_source

        self.pumps: list[Any] = []
        self.forks = 0
        pumps = self.pumps
        real_fork = os.fork

        class CountingPump(live_source.Pump):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                pumps.append(self)

        def fork() -> int:
            self.forks += 1
            return real_fork()

        monkeypatch.setattr(live_source, "Pump", CountingPump)
        monkeypatch.setattr(os, "fork", fork)

    def kinds(self) -> list[str]:
        return [p.kind for p in self.pumps]


def _source(*, walker: bool = True, start: str = "fork", nat: bool = False) -> LiveNetlink:
    src = LiveNetlink(nat_probe=nat)
    src.use_pump = True
    src.use_walker = walker
    src.helper_start = start
    return src


def test_helper_process_gives_the_same_snapshot(
    many_namespaces: list[str], monkeypatch: pytest.MonkeyPatch, fresh_walker: str
) -> None:
    handles = [h for h in find_namespaces() if h.is_host or set(h.names) & set(many_namespaces)]
    direct = LiveNetlink()
    direct.use_pump = False
    from netlens.kernel import serve

    seen = _Counting(monkeypatch)
    a = _run(handles, direct)
    assert seen.pumps == [] and len(_mine(a, many_namespaces)) == len(many_namespaces)
    # the C walker (the default where it is built): no Python process is forked
    w = _run(handles, _source())
    assert seen.kinds() == ["walk"] and seen.forks == 0
    assert _mine(w, many_namespaces) == _mine(a, many_namespaces)
    _assert_host_as_read_directly(handles, w, a)
    assert all(
        i.peer is not None
        for ns in w.namespaces
        for i in ns.interfaces
        if i.kind == "veth" and set(ns.names) & set(many_namespaces)
    )
    assert not any(ns.errors for ns in w.namespaces if set(ns.names) & set(many_namespaces))
    # the Python helper, forked (NETLENS_WALK_HELPER=0)
    monkeypatch.setenv("NETLENS_WALK_HELPER", "0")
    b = _run(handles, LiveNetlink())
    monkeypatch.delenv("NETLENS_WALK_HELPER")
    assert seen.kinds()[1:] == ["fork"] and seen.forks == 1
    assert _mine(b, many_namespaces) == _mine(a, many_namespaces)
    # the Python helper as a fresh interpreter (the start used when this process
    # has other threads) gives the same snapshot
    fresh = _source(walker=False, start="exec")
    assert _mine(_run(handles, fresh), many_namespaces) == _mine(a, many_namespaces)
    assert seen.kinds()[2:] == ["exec"] and seen.pumps[-1].proc is not None
    # a helper that dies at once: discovery falls back to reading directly
    monkeypatch.setattr(sys, "executable", "/bin/false")
    c = _run(handles, _source(walker=False, start="exec"))
    assert _mine(c, many_namespaces) == _mine(a, many_namespaces)
    # a forked helper that dies at once: the same fallback
    monkeypatch.setattr(serve, "serve", _die)
    d = _run(handles, _source(walker=False))
    assert seen.kinds()[-1] == "fork" and seen.pumps[-1].failed
    assert _mine(d, many_namespaces) == _mine(a, many_namespaces)


def _die(*_args: object, **_kwargs: object) -> None:
    raise SystemExit(3)


def test_walker_from_a_threaded_process(
    many_namespaces: list[str], monkeypatch: pytest.MonkeyPatch, fresh_walker: str
) -> None:
    """The TUI has threads (a fork is then unsafe): the walker is started all the same."""
    handles = [h for h in find_namespaces() if h.is_host or set(h.names) & set(many_namespaces)]
    seen = _Counting(monkeypatch)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        snap = _run(handles, _source())
    finally:
        stop.set()
        t.join()
    assert seen.kinds() == ["walk"] and seen.forks == 0
    assert len(_mine(snap, many_namespaces)) == len(many_namespaces)
    assert not any(ns.errors for ns in snap.namespaces if set(ns.names) & set(many_namespaces))


_GARBAGE = {
    "dies": "#!/bin/sh\nexit 3\n",
    # a frame header (pos 0, name 0, STATUS_DECODED, 5 bytes) and no marshal in it
    "garbage": "#!/bin/sh\nprintf '\\000\\000\\000\\000\\000\\000\\003\\005\\000\\000\\000xxxxx'\n",
    "noise": "#!/bin/sh\nhead -c 100000 /dev/urandom\n",
    "missing": "",
}


@pytest.mark.parametrize("broken", list(_GARBAGE))
def test_broken_walker_falls_back(
    many_namespaces: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fresh_walker: str,
    broken: str,
) -> None:
    """A walker that dies at once, writes garbage or cannot be run: the parent
    reads the rest directly (or starts the Python helper) and gives the same
    snapshot; the walker is not started again by this process."""
    from netlens.discovery import live_source
    from netlens.kernel import walker

    handles = [h for h in find_namespaces() if h.is_host or set(h.names) & set(many_namespaces)]
    direct = LiveNetlink()
    direct.use_pump = False
    a = _run(handles, direct)
    fake = tmp_path / "netlens-walk-broken"
    if _GARBAGE[broken]:
        fake.write_text(_GARBAGE[broken])
        fake.chmod(0o755)
    seen = _Counting(monkeypatch)
    monkeypatch.setattr(live_source, "_walker", lambda: str(fake))
    snap = _run(handles, _source(nat=True))
    assert _mine(snap, many_namespaces) == _mine(a, many_namespaces)
    _assert_host_as_read_directly(handles, snap, a)  # the walker's first namespace, here instead
    assert not any(ns.errors for ns in snap.namespaces if set(ns.names) & set(many_namespaces))
    if broken == "missing":  # posix_spawn fails: the Python helper runs instead
        assert seen.kinds() == ["fork"]
    else:
        assert seen.kinds() == ["walk"] and seen.pumps[0].failed
    assert walker.find() is None  # forgotten for the rest of this process


class _BadFd(LiveNetlink):
    """Hands the helper an fd that is not a network namespace for one namespace
    (setns refuses it), as if that namespace could not be entered."""

    def __init__(self, victim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.victim = victim

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.dup2(null, self.fds[self.victim], inheritable=False)
        finally:
            os.close(null)
        super().prefetch(inodes, requests)


@pytest.mark.parametrize("helper", ["walk", "fork"])
def test_namespace_the_helper_cannot_enter_is_a_namespace_error(
    many_namespaces: list[str], monkeypatch: pytest.MonkeyPatch, fresh_walker: str, helper: str
) -> None:
    handles = [h for h in find_namespaces() if h.is_host or set(h.names) & set(many_namespaces)]
    victim = next(h for h in handles if many_namespaces[3] in h.names)
    seen = _Counting(monkeypatch)
    src = _BadFd(victim.inode, nat_probe=True)
    src.use_pump = True
    src.use_walker = helper == "walk"
    snap = _run(handles, src)
    assert seen.kinds() == [helper] and not seen.pumps[0].failed
    bad = _by_inode(snap, victim.inode)
    einval = os.strerror(22)
    assert f"link: {einval}" in bad.errors and f"route: {einval}" in bad.errors, bad.errors
    assert bad.interfaces == ()
    others = [
        ns for ns in snap.namespaces if set(ns.names) & set(many_namespaces) and ns is not bad
    ]
    assert len(others) == len(many_namespaces) - 1 and not any(ns.errors for ns in others)


def test_walker_reads_nat_like_the_python_helper(
    many_namespaces: list[str], monkeypatch: pytest.MonkeyPatch, fresh_walker: str
) -> None:
    """One namespace of the walk carries an nft NAT table and an iptables-legacy
    rule: the walker's NAT probe finds the same rules as the Python helper's and
    as a direct read."""
    from netlens.discovery.nat_tools import read_nat

    natns, legacy_ns = many_namespaces[5], many_namespaces[6]
    table = f"nw{RUN_TAG}"
    sh(
        f"ip netns exec {natns} nft -f - <<'EOF'\n"
        f"table ip {table} {{\n"
        "  chain post { type nat hook postrouting priority srcnat; policy accept;\n"
        '    ip saddr 10.231.8.0/24 oifname != "lo" masquerade\n  }\n'
        "}\nEOF"
    )
    sh(
        f"ip netns exec {legacy_ns} iptables-legacy -t nat -A POSTROUTING -o lo -j SNAT "
        "--to-source 192.0.2.8"
    )
    handles = [h for h in find_namespaces() if h.is_host or set(h.names) & set(many_namespaces)]
    ours = {h.inode for h in handles if not h.is_host}
    seen = _Counting(monkeypatch)

    def nat_of(src: LiveNetlink) -> dict[int, Any]:
        try:
            build_snapshot(handles, src, LiveProc())
            got = read_nat(handles, probes=src.nat_probes(handles))
        finally:
            src.close()
        return {inode: rules for inode, rules in got.items() if inode in ours}

    direct = LiveNetlink(nat_probe=True)
    direct.use_pump = False
    want = nat_of(direct)
    by_name = {n: h.inode for h in handles for n in h.names}
    assert set(want) == {by_name[natns], by_name[legacy_ns]}
    assert any(r.table == table and r.action == "masquerade" for r in want[by_name[natns]])
    assert [r.to_addr for r in want[by_name[legacy_ns]]] == ["192.0.2.8"]
    assert nat_of(_source(nat=True)) == want
    assert nat_of(_source(nat=True, walker=False)) == want
    assert seen.kinds() == ["walk", "fork"]


def test_capture_replays_like_the_live_host(ndlab: Lab, tmp_path: Path) -> None:
    """capture -> fixture directory -> replay gives what the live walk gave."""
    from netlens.discovery.capture import main as capture_main
    from netlens.discovery.sources import FixtureNetlink, FixtureProc

    a, b = ndlab.add_netns("a"), ndlab.add_netns("b")
    h = ndlab.name("h")
    _veth_into(ndlab, h, a)
    ndlab.add_veth(ndlab.name("x"), ndlab.name("y"), a, b)
    sh(f"ip -n {a} addr add 10.233.0.1/24 dev eth0")
    out = tmp_path / "fx"
    assert capture_main([str(out), "--netns", a, "--netns", b]) == 0
    replayed = build_snapshot(
        find_namespaces(str(out / "proc")), FixtureNetlink(out), FixtureProc(out)
    )
    assert {n for ns in replayed.namespaces for n in ns.names} == {a, b}
    recorded = json.loads((out / "iproute2.json").read_text())
    diffs: list[str] = []
    for ns in replayed.namespaces:
        keep = (lambda n: n.startswith(ndlab.prefix)) if ns.is_host else (lambda _n: True)
        diffs += oracle.compare(ns, recorded[str(ns.inode)], keep)
    assert diffs == []
    ra, rb = _named(replayed, a), _named(replayed, b)
    rx, ry = ra.by_name(ndlab.name("x")), rb.by_name(ndlab.name("y"))
    assert rx is not None and ry is not None and rx.peer == ry.ref
    host = replayed.host
    assert host is not None
    he, a_eth0 = host.by_name(h), ra.by_name("eth0")
    assert he is not None and a_eth0 is not None
    assert he.peer == a_eth0.ref and a_eth0.peer == he.ref
    assert capture_main([str(tmp_path / "no"), "--netns", ndlab.name("nope")]) == 2
