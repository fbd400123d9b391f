"""NAT parsing on recorded nft JSON, iptables-save text and raw netlink bytes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from netlens.discovery import nat_tools
from netlens.discovery.nat import NftChain, NsProbe, parse_chain_dump
from netlens.discovery.nat_rules import parse_iptables_save, parse_nft_json
from netlens.discovery.nat_tools import forward_policy_warning, read_nat
from netlens.discovery.nsfind import NsHandle

pytestmark = pytest.mark.unit

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "nat"


def _fixture(name: str) -> str:
    return (FIX / name).read_text()


def test_native_nft_rules_read_like_an_engineer_would() -> None:
    rules, xt = parse_nft_json(json.loads(_fixture("mixed.nft.json")))
    native = {r.action: r for r in rules if r.table == "nix"}
    assert set(native) == {"masquerade", "snat", "dnat", "redirect"}
    m = native["masquerade"]
    assert (m.src, m.out_iface, m.hook, m.chain) == ("10.9.0.0/24", "!br0", "postrouting", "post")
    assert m.text == 'ip saddr 10.9.0.0/24 oifname != "br0" masquerade'
    d = native["dnat"]
    assert (d.proto, d.dport, d.in_iface, d.to_addr, d.to_port) == (
        "tcp",
        "8080",
        "eth0",
        "10.9.0.2",
        "80",
    )
    assert d.comment == "web" and d.hook == "prerouting" and d.source == "nftables"
    s = native["snat"]
    assert (s.dst, s.to_addr) == ("10.1.0.0/16", "192.0.2.1-192.0.2.5")
    r = native["redirect"]
    assert (r.dport, r.to_port, r.to_addr) == ("{ 80, 443 }", "3128", None)
    # iptables-nft's table: targets are xt blobs, flagged for a re-read
    assert xt == {("ip", "nat")}


def test_iptables_save_docker_shape_and_hooks_of_user_chains() -> None:
    rules = parse_iptables_save(_fixture("mixed.iptables-nft.txt"), source="iptables-nft")
    by = {r.action: r for r in rules}
    assert set(by) == {"masquerade", "dnat"}
    assert (by["masquerade"].src, by["masquerade"].out_iface) == ("172.17.0.0/16", "!docker0")
    dn = by["dnat"]
    assert dn.chain == "DOCKER" and dn.hook == "prerouting"  # reached from PREROUTING
    assert (dn.proto, dn.dport, dn.in_iface) == ("tcp", "8080", "!docker0")
    assert (dn.to_addr, dn.to_port, dn.source) == ("172.17.0.2", "80", "iptables-nft")
    assert dn.text.startswith("-A DOCKER ! -i docker0 -p tcp")


def test_iptables_save_variants() -> None:
    text = "\n".join(
        [
            "*nat",
            ":PREROUTING ACCEPT [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]",
            ":FWD - [0:0]",
            "-A PREROUTING -j FWD",
            "-A OUTPUT -j FWD",
            '-A FWD -p udp -m multiport --dports 53,5353 -m comment --comment "dns in" '
            "-j DNAT --to-destination [fd00::53]:5353",
            "-A OUTPUT -d 127.0.0.0/8 -p tcp ! --dport 22 -j REDIRECT --to-ports 3128",
            "-A POSTROUTING -s 10.0.0.0/8 -j SNAT --to-source 192.0.2.1-192.0.2.9:1000-2000",
            "-A POSTROUTING -o lo -j RETURN",
            "COMMIT",
        ]
    )
    rules = parse_iptables_save(text, source="iptables-legacy", family="ip6")
    assert [r.action for r in rules] == ["dnat", "redirect", "snat"]
    dn, rd, sn = rules
    assert (dn.hook, dn.dport, dn.comment) == ("output,prerouting", "53,5353", "dns in")
    assert (dn.to_addr, dn.to_port, dn.family) == ("fd00::53", "5353", "ip6")
    assert (rd.dst, rd.dport, rd.to_port, rd.hook) == ("127.0.0.0/8", "!22", "3128", "output")
    assert (sn.to_addr, sn.to_port) == ("192.0.2.1-192.0.2.9", "1000-2000")


def _attr(typ: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), typ) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _chain_msg(
    family: int, table: str, name: str, ctype: str | None, hook: int | None, policy: int | None
) -> bytes:
    body = _attr(1, table.encode() + b"\0") + _attr(3, name.encode() + b"\0")
    if hook is not None:
        body += _attr(
            4 | 0x8000, _attr(1, struct.pack(">I", hook)) + _attr(2, struct.pack(">i", 0))
        )
    if policy is not None:
        body += _attr(5, struct.pack(">I", policy))
    if ctype is not None:
        body += _attr(7, ctype.encode() + b"\0")
    payload = struct.pack("=BBH", family, 0, 0) + body
    return struct.pack("=IHHII", 16 + len(payload), (10 << 8) | 3, 2, 1, 0) + payload


def test_raw_chain_dump_parse() -> None:
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + b"\0\0\0\0"
    data = (
        _chain_msg(2, "nat", "POSTROUTING", "nat", 4, 1)
        + _chain_msg(2, "filter", "FORWARD", "filter", 2, 0)
        + _chain_msg(1, "t", "user", None, None, None)
        + done
    )
    chains, finished = parse_chain_dump(data)
    assert finished
    assert chains == [
        NftChain("ip", "nat", "POSTROUTING", "nat", "postrouting", "accept"),
        NftChain("ip", "filter", "FORWARD", "filter", "forward", "drop"),
        NftChain("inet", "t", "user", None, None, None),
    ]
    err = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -1) + b"\0" * 16
    with pytest.raises(PermissionError):
        parse_chain_dump(err)


def test_forward_policy_warning_needs_drop_and_br_netfilter() -> None:
    drop = NftChain("ip", "filter", "FORWARD", "filter", "forward", "drop")
    accept = NftChain("ip", "filter", "FORWARD", "filter", "forward", "accept")
    warn = forward_policy_warning(probe_result=NsProbe(chains=(drop,), br_nf_call_iptables=True))
    assert warn is not None and "ip filter FORWARD" in warn and "br_netfilter" in warn
    assert (
        forward_policy_warning(probe_result=NsProbe(chains=(drop,), br_nf_call_iptables=None))
        is None
    )
    assert (
        forward_policy_warning(probe_result=NsProbe(chains=(accept,), br_nf_call_iptables=True))
        is None
    )


def test_read_nat_runs_tools_only_where_the_probe_saw_nat(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    outputs = {
        "nft": _fixture("mixed.nft.json"),
        "iptables-nft-save": _fixture("mixed.iptables-nft.txt"),
        "iptables-legacy-save": _fixture("mixed.iptables-legacy.txt"),
    }

    def fake_run(path: str, argv: list[str]) -> str | None:
        calls.append((path, argv[0]))
        return None if path == "/gone" else outputs[argv[0]]

    monkeypatch.setattr(nat_tools, "_run_in", fake_run)
    monkeypatch.setattr(
        "netlens.discovery.nat_tools.shutil.which", lambda tool: f"/usr/sbin/{tool}"
    )
    hs = [NsHandle(4, n, f"/run/netns/n{n}") for n in (1, 2, 3)] + [NsHandle(4, 9, "/gone")]
    nat_chain = NftChain("ip", "nix", "post", "nat", "postrouting", "accept")
    filt = NftChain("ip", "filter", "FORWARD", "filter", "forward", "accept")
    probes = [
        NsProbe(chains=(nat_chain,), legacy_tables4=("nat", "filter")),
        NsProbe(chains=(filt,)),  # a filter table only: no tool run
        None,  # vanished before the probe
        NsProbe(chains=(nat_chain,)),  # vanished after it
    ]
    got = read_nat(hs, probes=probes)
    assert set(got) == {1}
    sources = sorted({r.source for r in got[1]})
    assert sources == ["iptables-legacy", "iptables-nft", "nftables"]
    # the xt table's rules come from iptables-nft-save, not the lossy JSON
    assert not any(r.source == "nftables" and r.table == "nat" for r in got[1])
    assert sorted(calls) == sorted(
        [
            ("/run/netns/n1", "nft"),
            ("/run/netns/n1", "iptables-nft-save"),
            ("/run/netns/n1", "iptables-legacy-save"),
            ("/gone", "nft"),
        ]
    )


class _FakeProc:
    """Stands in for a started tool (``nat._spawn``): its output, its exit code."""

    def __init__(self, out: str | None, fail: bool = False) -> None:
        self.out = out
        self.returncode: int | None = None
        self.fail = fail
        self.killed = False

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.returncode = 1 if self.fail or self.out is None else 0
        return (self.out or "", "boom" if self.fail else "")

    def kill(self) -> None:
        self.killed = True


def test_tools_started_early_give_the_same_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_tools runs the tools of the namespaces it is given at once;
    read_nat collects them (no second run there) and reads the same rules, in
    the same order, as when it runs the tools itself."""
    outputs = {
        "nft": _fixture("mixed.nft.json"),
        "iptables-nft-save": _fixture("mixed.iptables-nft.txt"),
        "iptables-legacy-save": _fixture("mixed.iptables-legacy.txt"),
    }
    spawned: list[tuple[str, str]] = []
    ran: list[tuple[str, str]] = []

    def fake_spawn(path: str, argv: list[str]) -> _FakeProc:
        spawned.append((path, argv[0]))
        return _FakeProc(outputs[argv[0]], fail=path == "/run/netns/n2")

    def fake_run(path: str, argv: list[str]) -> str | None:
        ran.append((path, argv[0]))
        return outputs[argv[0]]

    monkeypatch.setattr(nat_tools, "_spawn", fake_spawn)
    monkeypatch.setattr(nat_tools, "_run_in", fake_run)
    monkeypatch.setattr(
        "netlens.discovery.nat_tools.shutil.which", lambda tool: f"/usr/sbin/{tool}"
    )
    hs = [NsHandle(4, n, f"/run/netns/n{n}") for n in (1, 2, 3)]
    chain = NftChain("ip", "nix", "post", "nat", "postrouting", "accept")
    probes = [NsProbe(chains=(chain,), legacy_tables4=("nat",))] * 3
    expected = read_nat(hs, probes=probes)
    assert set(expected) == {1, 2, 3}
    ran.clear()

    started = nat_tools.start_tools([(hs[0], probes[0]), (hs[1], probes[1])])
    assert spawned == [
        ("/run/netns/n1", "nft"),
        ("/run/netns/n1", "iptables-legacy-save"),
        ("/run/netns/n2", "nft"),
        ("/run/netns/n2", "iptables-legacy-save"),
    ]
    got = read_nat(hs, probes=probes, started=started)
    assert got[1] == expected[1] and got[3] == expected[3]
    assert 2 not in got  # its early tools failed: nothing, as when a tool fails
    # only n3 ran here, plus n1's follow-up for the xt table in its nft output
    assert sorted(ran) == [
        ("/run/netns/n1", "iptables-nft-save"),
        ("/run/netns/n3", "iptables-legacy-save"),
        ("/run/netns/n3", "iptables-nft-save"),
        ("/run/netns/n3", "nft"),
    ]


def test_start_tools_is_bounded_and_close_ends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    procs: list[_FakeProc] = []

    def fake_spawn(path: str, argv: list[str]) -> _FakeProc:
        procs.append(_FakeProc("x"))
        return procs[-1]

    monkeypatch.setattr(nat_tools, "_spawn", fake_spawn)
    monkeypatch.setattr(
        "netlens.discovery.nat_tools.shutil.which", lambda tool: f"/usr/sbin/{tool}"
    )
    chain = NftChain("ip", "nix", "post", "nat", "postrouting", "accept")
    pairs = [(NsHandle(4, n, f"/run/netns/n{n}"), NsProbe(chains=(chain,))) for n in range(10)]
    started = nat_tools.start_tools(pairs)
    assert len(procs) == nat_tools._MAX_PARALLEL and len(started.runs) == nat_tools._MAX_PARALLEL
    started.close()
    assert all(p.killed for p in procs) and not started.runs


def test_start_tools_interrupted_reaps_the_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt between two spawns kills and waits for the tools
    already started, then propagates."""
    procs: list[_FakeProc] = []

    def fake_spawn(path: str, argv: list[str]) -> _FakeProc:
        if len(procs) == 1:
            raise KeyboardInterrupt
        procs.append(_FakeProc("x"))
        return procs[-1]

    monkeypatch.setattr(nat_tools, "_spawn", fake_spawn)
    monkeypatch.setattr(
        "netlens.discovery.nat_tools.shutil.which", lambda tool: f"/usr/sbin/{tool}"
    )
    chain = NftChain("ip", "nix", "post", "nat", "postrouting", "accept")
    pairs = [
        (NsHandle(4, n, f"/run/netns/n{n}"), NsProbe(chains=(chain,), legacy_tables4=("nat",)))
        for n in range(3)
    ]
    with pytest.raises(KeyboardInterrupt):
        nat_tools.start_tools(pairs)
    assert len(procs) == 1
    assert procs[0].killed and procs[0].returncode is not None  # killed and waited


def test_recorded_docker_ruleset() -> None:
    """A real dockerd 20.10 (own bridge nixd0, one container publishing 127.0.0.1:18080)."""
    rules, xt = parse_nft_json(json.loads(_fixture("docker.nft.json")))
    assert ("ip", "nat") in xt  # MASQUERADE / DNAT are xt targets: re-read needed
    assert not [r for r in rules if r.table == "nat"]  # none guessed from the lossy JSON
    saved = parse_iptables_save(_fixture("docker.iptables-nft.txt"), source="iptables-nft")
    dnat = [r for r in saved if r.action == "dnat"]
    assert [(r.dst, r.dport, r.to_addr, r.to_port) for r in dnat] == [
        ("127.0.0.1/32", "18080", "198.18.77.2", "80")
    ]
    assert dnat[0].hook == "output,prerouting" and dnat[0].in_iface == "!nixd0"
    masq = [r for r in saved if r.action == "masquerade"]
    assert {(r.src, r.out_iface) for r in masq} == {
        ("198.18.77.0/24", "!nixd0"),
        ("198.18.77.2/32", None),
    }


def test_nft_set_reference_reads_as_nft_prints_it() -> None:
    """netlens's own table masquerades ``oifname != @bridges``: a set, not a name."""
    from netlens_runtime import firewall

    nets = [{"name": "a", "bridge": "nlbA", "subnet": "10.5.0.0/24", "nat": True}]
    doc = {"nftables": [
        {"table": {"family": "ip", "name": "t"}},
        {"chain": {"family": "ip", "table": "t", "name": "postrouting", "type": "nat",
                   "hook": "postrouting", "prio": 100, "policy": "accept"}},
    ] + [{"rule": c["add"]["rule"]} for c in firewall.commands(nets, "t")
         if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == "postrouting"]}  # fmt: skip
    rules, _ = parse_nft_json(doc)
    masq = [r for r in rules if r.src == "10.5.0.0/24"]
    assert [(r.out_iface, r.text) for r in masq] == [
        ("!@bridges", "ip saddr 10.5.0.0/24 oifname != @bridges masquerade")
    ]
