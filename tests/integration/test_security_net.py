"""Network security of the bundled runtime (issue 19): each attack reproduced, and refused or
neutralised.

Everything runs inside a scratch network namespace that plays the host: the
runtime is started there (``ip netns exec``), so its bridges, nft table,
iptables rules, sysctls and listeners are that namespace's, and a broken rule
cannot cut the real host's forwarding. A second scratch namespace is the
"outside" (a LAN neighbour on the scratch host's uplink, 192.0.2.0/24). Traffic
only flows between these namespaces and the containers made in them. Each
test has its own state directory; the teardown removes its containers,
networks and cgroups from inside the scratch host and then deletes both
namespaces.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG, is_root

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parents[1]
HOST_IP, PEER_IP = "192.0.2.1", "192.0.2.2"
_COUNTER = itertools.count()

# Sent from inside a container (NET_RAW, a default capability): a frame to the
# gateway's MAC with destination DST, TCP SYN or UDP. Prints SYNACK if a SYN-ACK
# came back within 2 s, else nothing.
RAW = r"""
import socket, struct, sys, time
gwmac, src_ip, dst_ip, port, proto = sys.argv[1:6]
port = int(port)
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
if proto == "tcp":
    pn, at = 6, 16
    l4 = struct.pack("!HHIIBBHHH", 40000, port, 1234, 0, 5 << 4, 0x02, 64240, 0, 0)
else:
    pn, at = 17, 6
    l4 = struct.pack("!HHHH", 40000, port, 22, 0) + b"from-container"
sum4 = csum(src + dst + struct.pack("!BBH", 0, pn, len(l4)) + l4) or 0xFFFF
l4 = l4[:at] + struct.pack("!H", sum4) + l4[at + 2:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, pn, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0))
s.send(bytes.fromhex(gwmac.replace(":", "")) + s.getsockname()[4] + b"\x08\x00" + ip + l4)
s.settimeout(0.2)
deadline = time.monotonic() + (2 if proto == "tcp" else 0)
while time.monotonic() < deadline:
    try:
        pkt = s.recv(2000)
    except socket.timeout:
        continue
    if pkt[23] == 6 and pkt[26:30] == dst and pkt[47] & 0x12 == 0x12:
        print("SYNACK")
        break
"""

# A listener in the scratch host: prints one line per TCP accept or UDP datagram.
LISTEN = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    proto, addr, port = spec.split(":")
    if proto == "tcp":
        s = socket.create_server((addr, int(port)))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, int(port)))
    sel.register(s, selectors.EVENT_READ, proto)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        if key.data == "tcp":
            c, peer = key.fileobj.accept(); c.close(); print("tcp", peer[0], flush=True)
        else:
            data, peer = key.fileobj.recvfrom(100)
            print("udp", data.decode(), peer[0], key.fileobj.getsockname()[0], flush=True)
"""

# Connect to ADDR:PORT from wherever it runs; prints the first bytes, or "failed".
FETCH = r"""
import socket, sys
try:
    addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with socket.create_connection((addr, port), timeout=timeout) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        print(c.recv(12).decode() or "empty")
except OSError as err:
    print("failed", err)
"""


class Scratch:
    """A scratch host namespace (netlens runs there) and an outside peer on its uplink."""

    def __init__(self, state_dir: Path) -> None:
        k = next(_COUNTER)
        self.host = f"nsh{RUN_TAG}{k}"
        self.peer = f"nsp{RUN_TAG}{k}"
        self.state_dirs = [state_dir]
        self.env = {**os.environ, "NETLENS_STATE_DIR": str(state_dir), "NETLENS_NO_LOG": "1"}
        self.procs: list[subprocess.Popen[str]] = []
        for ns in (self.host, self.peer):
            _run(["ip", "netns", "add", ns])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        up, down = f"nsu{RUN_TAG}{k}", f"nsd{RUN_TAG}{k}"
        _run(["ip", "link", "add", up, "netns", self.host, "type", "veth",
              "peer", "name", down, "netns", self.peer])  # fmt: skip
        for ns, dev, addr in ((self.host, up, HOST_IP), (self.peer, down, PEER_IP)):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
        # The outside knows the way to the containers' subnets through the host.
        _run(["ip", "-n", self.peer, "route", "add", "10.0.0.0/8", "via", HOST_IP])

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        res = subprocess.run(
            ["ip", "netns", "exec", self.host, sys.executable, "-m", "netlens", *args],
            env=env or self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(f"netlens {' '.join(args)} -> {res.returncode}: {res.stderr}")
        return res

    def in_host(self, *argv: str, ns: str | None = None) -> str:
        return _run(["ip", "netns", "exec", ns or self.host, *argv]).stdout

    def exec(self, name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return self.cli("exec", name, "--", *cmd, check=False)

    def fetch(self, addr: str, port: int, where: str = "host", timeout: float = 2) -> str:
        """GET from the scratch host, the outside peer, or a container named ``where``."""
        cmd = [sys.executable, "-c", FETCH, addr, str(port), str(timeout)]
        if where in ("host", "peer"):
            ns = self.host if where == "host" else self.peer
            return _run(["ip", "netns", "exec", ns, *cmd], check=False).stdout.strip()
        return self.exec(
            where, "python3", "-c", FETCH, addr, str(port), str(timeout)
        ).stdout.strip()

    def wait_http(self, ip: str, port: int = 8000) -> None:
        """Until the container's server answers the scratch host directly (it can always)."""
        deadline = time.monotonic() + 20
        while not self.fetch(ip, port, timeout=1).startswith("HTTP"):
            assert time.monotonic() < deadline, f"no server on {ip}:{port}"
            time.sleep(0.1)

    def listen(self, *specs: str, ns: str | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns or self.host, sys.executable, "-c", LISTEN, *specs],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    def server(self, name: str, network: str, *flags: str) -> dict[str, Any]:
        """A container serving HTTP on 8000; its record once it answers."""
        self.cli("run", "-d", "--name", name, "--network", network, *flags,
                 "--", "python3", "-m", "http.server", "8000")  # fmt: skip
        rec = self.inspect(name)
        self.wait_http(rec["ip"])
        return rec

    def inspect(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("inspect", name).stdout))

    def settled(self, want: tuple[str, str, list[str]]) -> tuple[str, str, list[str]]:
        """The snapshot once it equals ``want``, or the last one after 10 s.

        A rolled-back container's host veth goes with its namespace, which the
        kernel tears down asynchronously: wait for it rather than racing it.
        """
        deadline = time.monotonic() + 10
        while (snap := self.snapshot()) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        return snap

    def snapshot(self) -> tuple[str, str, list[str]]:
        """The scratch host's nft ruleset, iptables rules and links."""
        rules = self.in_host("iptables-save").splitlines()
        rules = [ln.split(" [")[0] for ln in rules if not ln.startswith("#")]
        links = sorted(ln.split(": ")[1].split("@")[0]
                       for ln in self.in_host("ip", "-o", "link").splitlines())  # fmt: skip
        return self.in_host("nft", "list", "ruleset"), "\n".join(rules), links

    def close(self) -> list[str]:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        left: list[str] = []
        for sdir in self.state_dirs:
            code = (
                "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
                "from runtime_host import teardown_state;"
                "print(json.dumps(teardown_state(Path(sys.argv[2]))))"
            )
            res = subprocess.run(
                ["ip", "netns", "exec", self.host, sys.executable, "-c", code, str(TESTS),
                 str(sdir)], env={**self.env, "NETLENS_STATE_DIR": str(sdir)},
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            try:
                left += json.loads(res.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                left.append(f"teardown of {sdir} failed: {res.stderr.strip()[-300:]}")
        for ns in (self.host, self.peer):
            _run(["ip", "netns", "del", ns], check=False)
        return left


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} -> {res.returncode}: {res.stderr.strip()}")
    return res


@pytest.fixture
def sc(tmp_path: Path) -> Iterator[Scratch]:
    if not is_root():
        pytest.skip("needs root")
    scratch = Scratch(tmp_path / "state")
    try:
        yield scratch
    finally:
        left = scratch.close()
    assert not left, left


def _one_line(res: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    err = res.stderr.strip()
    assert res.returncode == code, (res.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def _net(sc: Scratch, name: str, subnet: str, *flags: str) -> dict[str, Any]:
    sc.cli("network", "create", name, "--subnet", subnet, *flags)
    return dict(json.loads(sc.cli("inspect", name).stdout))


def _ping(sc: Scratch, name: str, ip: str) -> bool:
    return sc.exec(name, "ping", "-c", "1", "-W", "1", ip).returncode == 0


# --- 127.0.0.1 ------------------------------------------------------------------------


def test_container_cannot_reach_host_loopback_services(sc: Scratch) -> None:
    """SYN and UDP to 127.0.0.1 sent to the gateway's MAC (NET_RAW) get nowhere, while the
    same frames to the gateway's own address do (the probe works), and a published port
    still answers the host on 127.0.0.1."""
    net = _net(sc, "lo1", "10.61.0.0/24")
    sc.cli("run", "-d", "--name", "att", "--network", "lo1", "--", "sleep", "infinity")
    att = sc.inspect("att")
    mac = sc.in_host("cat", f"/sys/class/net/{net['bridge']}/address").strip()
    gw = net["gateway"]
    listener = sc.listen("tcp:127.0.0.1:7001", "udp:127.0.0.1:7001", f"tcp:{gw}:7002",
                         f"udp:{gw}:7002")  # fmt: skip
    assert _ping(sc, "att", gw)  # the host learns the container's MAC for its answers

    def raw(src: str, dst: str, port: int, proto: str) -> str:
        res = sc.exec("att", "python3", "-c", RAW, mac, src, dst, str(port), proto)
        return res.stdout.strip()

    def probe_round() -> None:
        assert raw(att["ip"], gw, 7002, "tcp") == "SYNACK"  # control: the probe does work
        assert raw(att["ip"], "127.0.0.1", 7001, "tcp") == ""
        raw("127.0.0.1", gw, 7002, "udp")  # a loopback source, to the gateway's address
        raw(att["ip"], gw, 7002, "udp")  # control
        raw(att["ip"], "127.0.0.1", 7001, "udp")
        # A marker from the host itself: whatever the container's datagrams did, they
        # were handled before it (a send returns after the host's receive path ran).
        sc.in_host(sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, "
                   "socket.SOCK_DGRAM).sendto(b'marker', ('127.0.0.1', 7001))")  # fmt: skip
        # The two sockets' lines come in any order; one socket's lines in arrival order.
        assert listener.stdout is not None
        got: list[list[str]] = []
        while not ({"marker", "from-container"} <= {line[1] for line in got}):
            got.append(listener.stdout.readline().split())
        assert sorted(got) == [
            ["udp", "from-container", att["ip"], gw],  # control, and nothing from 127/8
            ["udp", "marker", "127.0.0.1", "127.0.0.1"],  # and nothing before it
        ], got

    # route_localnet is on only where a port is published; 127.0.0.1 still reaches it.
    knob = f"/proc/sys/net/ipv4/conf/{net['bridge']}/route_localnet"
    assert sc.in_host("cat", knob).strip() == "0"
    probe_round()
    web = sc.server("web", "lo1", "-p", "18080:8000")
    assert sc.in_host("cat", knob).strip() == "1"
    assert sc.fetch("127.0.0.1", 18080).startswith("HTTP/1.0 200")
    probe_round()  # the kernel lets 127/8 in from this bridge now: the guard chain does not
    sc.cli("rm", "-f", web["name"])
    assert sc.in_host("cat", knob).strip() == "0"


# --- published ports ------------------------------------------------------------------


def test_publish_refuses_ports_in_use_and_foreign_addresses(sc: Scratch) -> None:
    """Docker's two errors, with nothing made; 0.0.0.0 means every host address."""
    _net(sc, "p1", "10.62.0.0/24")
    other = sc.server("other", "p1")
    sc.listen("tcp:0.0.0.0:18081", "udp:127.0.0.1:18053")
    before = sc.snapshot()
    for flags, code, words in (
        (["-p", "18081:8000"], 1, ("18081/tcp", "address already in use")),
        (["-p", "127.0.0.1:18081:8000"], 1, ("address already in use",)),
        (["-p", "18053:53/udp"], 1, ("18053/udp", "address already in use")),
        # another container's address, and the outside peer's: not this host's
        (["-p", f"{other['ip']}:8000:8000"], 2, (other["ip"], "cannot assign requested address")),
        (["-p", f"{PEER_IP}:8000:8000"], 2, ("not an address of this host",)),
    ):
        res = sc.cli("run", "-d", "--name", "bad", "--network", "p1", *flags, "--", "true",
                     check=False)  # fmt: skip
        _one_line(res, code, *words)
        assert sc.snapshot() == before, flags
    assert "bad" not in sc.cli("ps").stdout
    # 0.0.0.0: today this published nothing
    sc.server("all", "p1", "-p", "0.0.0.0:18090:8000")
    assert sc.fetch(HOST_IP, 18090, where="peer").startswith("HTTP/1.0 200")
    assert sc.fetch("127.0.0.1", 18090).startswith("HTTP/1.0 200")
    assert sc.fetch(HOST_IP, 18090).startswith("HTTP/1.0 200")


def test_two_publishers_of_one_port_conflict(sc: Scratch, tmp_path: Path) -> None:
    _net(sc, "q1", "10.63.0.0/24")
    _net(sc, "q2", "10.64.0.0/24")
    sc.server("first", "q1", "-p", "18100:8000", "-p", f"{HOST_IP}:18101:8000")
    for net, port in (("q1", "18100:8000"), ("q2", "127.0.0.1:18100:8000"),
                      ("q2", "18101:8000"), ("q2", f"{HOST_IP}:18101:8000")):  # fmt: skip
        res = sc.cli("run", "-d", "--name", "second", "--network", net, "-p", port, "--",
                     "true", check=False)  # fmt: skip
        _one_line(res, 1, "already published by first")
    # One port on two different addresses is two publications, as in Docker.
    sc.server("third", "q2", "-p", "127.0.0.1:18101:8000")
    # Another state directory (its own table) publishing the same port conflicts too.
    sdir2 = tmp_path / "state2"
    sc.state_dirs.append(sdir2)
    env2 = {**sc.env, "NETLENS_STATE_DIR": str(sdir2)}
    sc.cli("network", "create", "q3", "--subnet", "10.65.0.0/24", env=env2)
    res = sc.cli("run", "-d", "--name", "fourth", "--network", "q3", "-p", "18100:8000",
                 "--", "true", check=False, env=env2)  # fmt: skip
    _one_line(res, 1, "already published by netlens table")
    sc.cli("run", "-d", "--name", "fifth", "--network", "q3", "-p", "18102:8000",
           "--", "sleep", "infinity", env=env2)  # fmt: skip


# --- isolation between networks ---------------------------------------------------------


def test_networks_are_isolated_unless_allowed(sc: Scratch) -> None:
    _net(sc, "ia", "10.66.0.0/24")
    _net(sc, "ib", "10.67.0.0/24")
    sc.cli("run", "-d", "--name", "a", "--network", "ia", "--", "sleep", "infinity")
    a = sc.inspect("a")
    b = sc.server("b", "ib", "-p", "18110:8000")
    sc.cli("run", "-d", "--name", "a2", "--network", "ia", "--", "sleep", "infinity")
    a2 = sc.inspect("a2")
    assert _ping(sc, "a", a2["ip"])  # inside one network: fine
    assert sc.fetch(b["ip"], 8000, where="a").startswith("failed")
    assert not _ping(sc, "b", a["ip"])
    # a published port is for everyone, other networks included (through the gateway)
    assert sc.fetch(a["gateway"], 18110, where="a").startswith("HTTP/1.0 200")
    # the opt-in, one way
    assert "allows from: ia" in sc.cli("network", "allow", "ib", "--from", "ia").stdout
    assert sc.fetch(b["ip"], 8000, where="a").startswith("HTTP/1.0 200")
    assert not _ping(sc, "b", a["ip"])
    sc.cli("network", "disallow", "ib", "--from", "ia")
    assert sc.fetch(b["ip"], 8000, where="a").startswith("failed")
    # ... or given at creation
    _net(sc, "ic", "10.68.0.0/24", "--allow-from", "ia")
    c = sc.server("c", "ic")
    assert sc.fetch(c["ip"], 8000, where="a").startswith("HTTP/1.0 200")
    assert sc.fetch(c["ip"], 8000, where="b").startswith("failed")
    bad = sc.cli("network", "allow", "ic", "--from", "ic", check=False)
    _one_line(bad, 2, "cannot allow itself")


def test_outside_reaches_only_published_ports(sc: Scratch) -> None:
    """From the uplink: published ports yes, any other container port no; the containers'
    own connections out (NAT or routed) get their answers."""
    _net(sc, "o1", "10.69.0.0/24")
    _net(sc, "o2", "10.70.0.0/24", "--no-nat")
    web = sc.server("web", "o1", "-p", "18120:8000")
    routed = sc.server("routed", "o2")
    assert sc.fetch(HOST_IP, 18120, where="peer").startswith("HTTP/1.0 200")
    for ip in (web["ip"], routed["ip"]):
        assert sc.fetch(ip, 8000, where="peer").startswith("failed"), ip
    out = sc.listen(f"tcp:{PEER_IP}:9000", ns=sc.peer)
    assert out.stdout is not None
    for name, src in (("web", HOST_IP), ("routed", routed["ip"])):
        assert sc.fetch(PEER_IP, 9000, where=name).startswith(("empty", "failed [Errno 104]"))
        assert out.stdout.readline().split() == ["tcp", src]  # masqueraded, or not


def test_internal_network_has_no_way_out(sc: Scratch) -> None:
    net = _net(sc, "in1", "10.71.0.0/24", "--internal")
    assert (net["internal"], net["nat"]) == (True, False)
    _net(sc, "ok1", "10.72.0.0/24")
    sc.cli("run", "-d", "--name", "inner", "--network", "in1", "--cap-add", "NET_ADMIN",
           "--", "sleep", "infinity")  # fmt: skip
    sc.cli("run", "-d", "--name", "free", "--network", "ok1", "--", "sleep", "infinity")
    assert "default" not in sc.exec("inner", "ip", "route").stdout
    assert _ping(sc, "free", PEER_IP)  # control
    # even a route added by hand (NET_ADMIN) leads nowhere
    assert sc.exec("inner", "ip", "route", "add", "default", "via", net["gateway"]).returncode == 0
    assert not _ping(sc, "inner", PEER_IP)
    assert not _ping(sc, "inner", sc.inspect("free")["ip"])
    assert "10.71.0.0/24" not in sc.in_host("nft", "list", "chain", "ip",
                                           _table(sc), "postrouting")  # fmt: skip
    res = sc.cli("run", "-d", "--name", "pub", "--network", "in1", "-p", "18130:80", "--",
                 "true", check=False)  # fmt: skip
    _one_line(res, 2, "internal")
    _one_line(sc.cli("network", "create", "in2", "--internal", "--nat", check=False), 2, "NAT")


def _table(sc: Scratch) -> str:
    tables = sc.in_host("nft", "list", "tables").split()
    return next(t for t in tables if t.startswith("netlens"))


def test_lab_routers_route_while_the_host_does_not(sc: Scratch, tmp_path: Path) -> None:
    """A routed lab keeps working through its router node; the host itself does not route
    between the lab's networks (a node that takes the host's gateway gets nowhere)."""
    lab = tmp_path / "routed.yaml"
    lab.write_text(
        "name: rl\n"
        "networks:\n  left: {subnet: 10.73.0.0/24}\n  right: {subnet: 10.74.0.0/24}\n"
        "nodes:\n"
        "  r: {network: left, ip: 10.73.0.254, ip_forward: true,\n"
        "      interfaces: [{network: right, ifname: eth1, ip: 10.74.0.254}]}\n"
        "  h1: {network: left, ip: 10.73.0.11, routes: [{to: 10.74.0.0/24, via: 10.73.0.254}]}\n"
        "  h2: {network: right, ip: 10.74.0.11, routes: [{to: 10.73.0.0/24, via: 10.74.0.254}]}\n"
        "  h3: {network: left, ip: 10.73.0.12}\n"
    )
    sc.cli("lab", "up", str(lab))
    assert _ping(sc, "rl-h1", "10.74.0.11")  # through the router node
    assert not _ping(sc, "rl-h3", "10.74.0.11")  # through the host's gateway: isolated


# --- bridge names -------------------------------------------------------------------------


@pytest.mark.parametrize("bridge", ['x";drop;#', "+", "eth*", "-o", "a\x1b[31m"])
def test_bridge_names_that_are_rules_are_refused(sc: Scratch, tmp_path: Path, bridge: str) -> None:
    before = sc.snapshot()
    res = sc.cli("network", "create", "inj", "--bridge=" + bridge, check=False)
    _one_line(res, 2, "invalid interface name")
    lab = tmp_path / "inj.yaml"
    lab.write_text(f"name: inj\nnetworks:\n  n: {{bridge: {json.dumps(bridge)}}}\n"
                   "nodes:\n  a: {network: n}\n")  # fmt: skip
    for verb in ("check", "up"):
        _one_line(sc.cli("lab", verb, str(lab), check=False), 2, "invalid interface name")
    assert sc.snapshot() == before
    assert sc.cli("network", "ls", "--json").stdout.strip() == "[]"


# --- rollback, and Docker's FORWARD DROP --------------------------------------------------


def test_rules_under_forward_drop_and_rollback_leaves_nothing(sc: Scratch) -> None:
    """With iptables' FORWARD policy DROP (as Docker sets it) netlens's accept rules keep
    its traffic flowing but open nothing; a failed create removes every rule it made."""
    sc.in_host("iptables", "-w", "-P", "FORWARD", "DROP")
    empty = sc.snapshot()
    res = sc.cli("network", "create", "rb0", "--subnet", "10.75.0.0/24", check=False,
                 env={**sc.env, "NETLENS_FAULT": "network_rules"})  # fmt: skip
    _one_line(res, 1, "injected fault")
    assert sc.snapshot() == empty
    _net(sc, "rb1", "10.76.0.0/24")
    rules = sc.in_host("iptables", "-w", "-S", "FORWARD")
    assert rules.count("netlens") == 3, rules
    one_net = sc.snapshot()
    res = sc.cli("run", "-d", "--name", "pub", "--network", "rb1", "-p", "18140:8000",
                 "--", "sleep", "infinity", check=False,
                 env={**sc.env, "NETLENS_FAULT": "after_exec"})  # fmt: skip
    _one_line(res, 1, "injected fault")
    assert sc.settled(one_net) == one_net
    web = sc.server("web", "rb1", "-p", "18140:8000")
    sc.cli("run", "-d", "--name", "cli", "--network", "rb1", "--", "sleep", "infinity")
    assert _ping(sc, "cli", web["ip"])
    assert sc.fetch(HOST_IP, 18140, where="peer").startswith("HTTP/1.0 200")
    assert sc.fetch(web["ip"], 8000, where="peer").startswith("failed")
    assert _ping(sc, "cli", PEER_IP)  # out, and the answer back in
    sc.cli("rm", "-f", "web", "cli")
    sc.cli("network", "rm", "rb1")
    assert sc.snapshot() == empty
