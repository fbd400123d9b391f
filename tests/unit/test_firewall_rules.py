"""The firewall's rule builder (nft JSON), its iptables argument lists and the publish checks'
pure parts. The live behaviour of the same rules is in tests/integration/test_security_net.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nft_text import chains, rules

from netlens_runtime import firewall, nat, ports
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.unit


def _net(name: str, bridge: str, subnet: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "bridge": bridge, "subnet": subnet, "nat": True, "published": {}, **kw}


NETS = [
    _net("a", "nlbA", "10.5.0.0/24"),
    _net("b", "nlbB", "10.6.0.0/24", nat=False, allow_from=["a", "gone", "192.0.2.0/24"]),
    _net("i", "nlbI", "10.7.0.0/24", nat=False, internal=True),
]


def test_guard_drops_loopback_from_bridges_before_conntrack() -> None:
    cmds = firewall.commands(NETS, "t")
    guard = chains(cmds)["guard"]
    assert (guard["type"], guard["hook"], guard["prio"]) == ("filter", "prerouting", -300)
    assert guard["prio"] < -200  # before conntrack (and NAT) sees the packet
    assert rules(cmds, "guard") == [
        "iifname @bridges ip daddr 127.0.0.0/8 drop",
        "iifname @bridges ip saddr 127.0.0.0/8 drop",
    ]
    (bridges,) = [c["add"]["set"] for c in cmds if "set" in c.get("add", {})]
    assert (bridges["type"], bridges["elem"]) == ("ifname", ["nlbA", "nlbB", "nlbI"])


def test_forward_chain_isolates_networks_with_opt_ins() -> None:
    fwd = rules(firewall.commands(NETS, "t"), "forward")
    assert fwd == [
        "ct state established,related accept",
        'iifname "nlbA" oifname "nlbA" accept',
        'iifname "nlbB" oifname "nlbB" accept',
        'iifname "nlbI" oifname "nlbI" accept',
        'iifname "nlbA" oifname "nlbB" accept',  # b allows a; "gone" names no network
        'iifname != @bridges ip saddr 192.0.2.0/24 oifname "nlbB" accept',
        'iifname "nlbI" drop',  # internal: before published ports and the way out
        "ct status dnat oifname @bridges accept",
        "iifname @bridges oifname @bridges drop",
        'iifname "nlbA" accept',
        'iifname "nlbB" accept',
        "oifname @bridges drop",
    ]


def test_nat_only_out_of_our_bridges_and_never_internal() -> None:
    post = rules(firewall.commands(NETS, "t"), "postrouting")
    assert post[0] == "ip saddr 10.5.0.0/24 oifname != @bridges masquerade"
    assert not [r for r in post if "10.6.0.0" in r or "10.7.0.0" in r]
    # an internal network that says nat: true (a hand-edited record) still gets none
    odd = [_net("i", "nlbI", "10.7.0.0/24", internal=True)]
    assert not [r for r in rules(firewall.commands(odd, "t"), "postrouting") if "10.7" in r]


def test_published_ports_on_one_address_or_all() -> None:
    pubs = {
        "web": [
            {"host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp", "ip": "10.5.0.2"},
            {"host_ip": "127.0.0.1", "host_port": 53, "port": 5353, "proto": "udp",
             "ip": "10.5.0.2"},
        ]
    }  # fmt: skip
    cmds = firewall.commands([_net("a", "nlbA", "10.5.0.0/24", published=pubs)], "t")
    want = [
        "fib daddr type local tcp dport 8080 dnat to 10.5.0.2:80",
        "ip daddr 127.0.0.1 udp dport 53 dnat to 10.5.0.2:5353",
    ]
    assert rules(cmds, "prerouting") == rules(cmds, "output") == want
    # the other state directories' check reads these rules back
    back = [ports._dnat_port(c["add"]["rule"]["expr"]) for c in cmds if "rule" in c.get("add", {})]
    assert [b for b in back if b] == [
        {"host_ip": None, "proto": "tcp", "host_port": 8080},
        {"host_ip": "127.0.0.1", "proto": "udp", "host_port": 53},
    ] * 2


@pytest.mark.parametrize("bridge", ['x";drop;#', "+", "eth*", "-o", "a b", "", None])
def test_a_record_with_a_bad_bridge_renders_nothing(bridge: object) -> None:
    with pytest.raises(BadInput, match="bridge"):
        firewall.render([_net("x", "ok", "10.5.0.0/24"), {**_net("y", "", "10.6.0.0/24"),
                         "bridge": bridge}], "t")  # fmt: skip


def test_names_are_json_strings_not_rule_text() -> None:
    """A comment (container name) or network name goes into JSON, never spliced."""
    net = _net('a";flush ruleset;#', "nlbA", "10.5.0.0/24")
    doc = json.loads(firewall.render([net], "t"))
    comments = [
        c["add"]["rule"].get("comment") for c in doc["nftables"] if "rule" in c.get("add", {})
    ]
    assert 'inside a";flush ruleset;#' in comments


def test_no_network_deletes_the_table() -> None:
    assert firewall.commands([], "t") == [
        {"add": {"table": {"family": "ip", "name": "t"}}},
        {"delete": {"table": {"family": "ip", "name": "t"}}},
    ]


def test_iptables_rules_are_argument_lists() -> None:
    assert nat.fwd_rules("nlbA") == [
        ["-i", "nlbA", "-m", "comment", "--comment", "netlens", "-j", "ACCEPT"],
        ["-o", "nlbA", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
         "-m", "comment", "--comment", "netlens", "-j", "ACCEPT"],
        ["-o", "nlbA", "-m", "conntrack", "--ctstate", "DNAT",
         "-m", "comment", "--comment", "netlens", "-j", "ACCEPT"],
    ]  # fmt: skip
    for bad in ("+", "eth+", "-j"):
        with pytest.raises(BadInput):
            nat.fwd_rules(bad)


def test_published_addresses_overlap() -> None:
    def pub(host: str | None, port: int = 80, proto: str = "tcp") -> dict[str, Any]:
        return {"host_ip": host, "host_port": port, "proto": proto}

    assert ports.overlaps(pub(None), pub("127.0.0.1"))
    assert ports.overlaps(pub("192.0.2.1"), pub(None))
    assert ports.overlaps(pub("192.0.2.1"), pub("192.0.2.1"))
    assert not ports.overlaps(pub("192.0.2.1"), pub("127.0.0.1"))
    assert not ports.overlaps(pub(None), pub(None, 81))
    assert not ports.overlaps(pub(None), pub(None, proto="udp"))
    full = {"host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp"}
    assert ports.describe(full) == "0.0.0.0:8080->80/tcp"


def test_a_publish_given_twice_or_on_an_internal_network_is_refused() -> None:
    one = {"host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp"}
    two = {"host_ip": "127.0.0.1", "host_port": 8080, "port": 81, "proto": "tcp"}
    net = _net("a", "nlbA", "10.5.0.0/24")
    with pytest.raises(BadInput, match="given twice"):
        ports.check("c", [one, two], net, {"a": net})
    internal = _net("i", "nlbI", "10.7.0.0/24", internal=True)
    with pytest.raises(BadInput, match="internal"):
        ports.check("c", [one], internal, {"i": internal})


@pytest.mark.parametrize("bridge", ["'+'", "'eth*'", "'x\";drop;#'", "'-x'"])
def test_lab_bridge_names_are_checked_like_the_cli(bridge: str) -> None:
    text = f"name: s\nnetworks:\n  n:\n    bridge: {bridge}\nnodes:\n  a: {{network: n}}\n"
    with pytest.raises(BadInput, match=r"x\.yaml:4: networks\.n\.bridge: invalid interface name"):
        load_lab("x.yaml", text=text)


def test_lab_internal_and_allow_from() -> None:
    text = (
        "name: s\nnetworks:\n  a: {}\n  b: {allow_from: [a, 192.0.2.0/24]}\n"
        "  c: {internal: true}\nnodes:\n  x: {network: a}\n"
    )
    spec = load_lab("x.yaml", text=text)
    nets = {n.name: n for n in spec.networks}
    assert nets["b"].allow_from == ("a", "192.0.2.0/24") and nets["c"].internal
    for bad, why in (
        ("  b: {allow_from: [nope]}\n", "neither a network"),
        ("  b: {internal: true, nat: true}\n", "internal network has no NAT"),
    ):
        text = "name: s\nnetworks:\n  a: {}\n" + bad + "nodes:\n  x: {network: a}\n"
        with pytest.raises(BadInput, match=why):
            load_lab("x.yaml", text=text)


def test_records_written_before_this_version() -> None:
    """0.0.0.0 stored by an older netlens means every address, as it does now; a torn
    allow_from entry is one clear error, not a traceback."""
    old = {"web": [{"host_ip": "0.0.0.0", "host_port": 8080, "port": 80, "proto": "tcp",
                    "ip": "10.5.0.2"}]}  # fmt: skip
    cmds = firewall.commands([_net("a", "nlbA", "10.5.0.0/24", published=old)], "t")
    assert rules(cmds, "prerouting") == ["fib daddr type local tcp dport 8080 dnat to 10.5.0.2:80"]
    assert ports.overlaps(old["web"][0], {"host_ip": "127.0.0.1", "host_port": 8080,
                                          "proto": "tcp"})  # fmt: skip
    with pytest.raises(BadInput, match="allow_from"):
        firewall.commands([_net("a", "nlbA", "10.5.0.0/24", allow_from=["10.0.0.0/99"])], "t")
