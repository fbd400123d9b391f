"""NAT parsing edge cases, written out one by one.

The properties in test_nat_parsers.py draw random rules; a mutation run gives each
mutant only a few dozen of those draws, and rare branches (a goto, an sctp port, a
negated source, an option without a value before a negation) then go unchecked.
Each case here pins one such branch with the exact fields and text expected.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from netlens.discovery import nat, nat_rules, nat_tools
from netlens.discovery.nat import NftChain, NsProbe
from netlens.discovery.nat_rules import parse_iptables_save, parse_nft_json
from netlens.discovery.nsfind import NsHandle

pytestmark = pytest.mark.unit

TOOLS = {"nft", "iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save"}


def which(tool: str) -> str | None:
    """shutil.which on a host with exactly the tools netlens uses."""
    return f"/usr/sbin/{tool}" if tool in TOOLS else None


def m(left: dict[str, Any], right: Any, op: str | None = "==") -> dict[str, Any]:
    body: dict[str, Any] = {"left": left, "right": right}
    if op is not None:
        body["op"] = op
    return {"match": body}


def pay(proto: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": field}}


def one(*expr: dict[str, Any], action: dict[str, Any] | None = None) -> Any:
    rule = {
        "family": "inet",
        "table": "t",
        "chain": "c",
        "expr": [*expr, action or {"masquerade": None}],
    }
    rules, _xt = parse_nft_json({"nftables": [{"rule": rule}]})
    assert len(rules) == 1
    return rules[0]


# --- nft JSON expressions ----------------------------------------------------------------------
def test_match_text_and_fields_for_each_kind_of_left_side() -> None:
    r = one(m(pay("ip", "saddr"), "10.0.0.0/8", "!="), m(pay("ip", "protocol"), "tcp"))
    assert (r.src, r.proto) == ("!10.0.0.0/8", "tcp")
    assert r.text == "ip saddr != 10.0.0.0/8 ip protocol tcp masquerade"
    r = one(m({"meta": {"key": "iifname"}}, "eth0"), m({"meta": {"key": "oifname"}}, "br0", "!="))
    assert (r.in_iface, r.out_iface) == ("eth0", "!br0")
    assert r.text == 'iifname "eth0" oifname != "br0" masquerade'
    r = one(m({"meta": {"key": "oif"}}, "br0"))
    assert (r.out_iface, r.text) == ("br0", "oif br0 masquerade")
    r = one(m({"meta": {"key": "mark"}}, 7))
    assert (r.in_iface, r.out_iface, r.text) == (None, None, "meta mark 7 masquerade")
    r = one(m(pay("tcp", "dport"), 22, "!="))
    assert (r.proto, r.dport) == ("tcp", "!22")
    r = one(m(pay("tcp", "dport"), {"set": [80, 443]}, "in"))
    assert r.text == "tcp dport { 80, 443 } masquerade"
    r = one(m(pay("tcp", "dport"), 80, None))  # no op: nft's default ==
    assert r.text == "tcp dport 80 masquerade" and r.dport == "80"


@pytest.mark.parametrize("proto", ["sctp", "dccp", "udp"])
def test_ports_of_every_transport_set_proto_and_dport(proto: str) -> None:
    r = one(m(pay(proto, "dport"), 9))
    assert (r.proto, r.dport) == (proto, "9")
    r = one(m(pay(proto, "sport"), 9))
    assert (r.proto, r.dport) == (proto, None)


def test_l4_protocol_of_ip6_and_a_field_that_is_not_one() -> None:
    assert one(m(pay("ip6", "nexthdr"), "udp")).proto == "udp"
    r = one(m(pay("ip", "ttl"), 64))
    assert (r.proto, r.src, r.dst) == (None, None, None)
    assert one(m(pay("ip6", "daddr"), "fd00::1")).dst == "fd00::1"


def test_jump_goto_xt_and_other_statements_keep_their_text() -> None:
    r = one({"goto": {"target": "other"}}, {"xt": {"type": "match", "name": "addrtype"}})
    assert r.text == "goto other xt match addrtype masquerade"
    r = one({"jump": {"target": "x"}}, {"xt": {"name": "comment"}}, {"counter": {"packets": 1}})
    assert r.text == "jump x xt comment counter masquerade"
    r = one({"xt": {"type": "target"}}, {"limit": None})
    assert r.text == "xt target limit masquerade"
    r = one({}, {"notrack": None})
    assert r.text == " notrack masquerade"
    r = one(m({"meta": {"key": "iifname"}}, {}))  # an empty right side: shown, no crash
    assert r.in_iface == "{}"


def test_goto_and_jump_both_give_hooks_but_other_statements_do_not() -> None:
    doc = {
        "nftables": [
            {"chain": {"family": "ip", "table": "t", "name": "pre", "hook": "prerouting"}},
            {"rule": {"family": "ip", "table": "t", "chain": "pre", "expr": [
                {"goto": {"target": "g"}}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "pre", "expr": [
                {"counter": {"target": "n"}}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "g", "expr": [{"masquerade": None}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "n", "expr": [{"masquerade": None}]}},
            "not a dict",
            {"rule": "not a dict either"},
        ]
    }  # fmt: skip
    rules, _ = parse_nft_json(doc)
    assert {r.chain: r.hook for r in rules} == {"g": "prerouting", "n": None}
    assert parse_nft_json({"nftables": 5}) == ([], set())
    assert parse_nft_json({"nftables": "text"}) == ([], set())
    assert parse_nft_json(["nftables"]) == ([], set())  # type: ignore[arg-type]


def test_fmt_left_defaults_and_extra_keys() -> None:
    assert nat_rules._fmt_left({"payload": {}}) == (" ", "", "")
    assert nat_rules._fmt_left({"meta": {}}) == ("meta ", "meta", "")
    assert nat_rules._fmt_left({"meta": {"key": "oif"}}) == ("oif", "meta", "oif")
    assert nat_rules._fmt_left({"ct": {"key": "state", "dir": "original", "field": "f"}}) == (
        "ct state f",
        "ct",
        None,
    )
    assert nat_rules._fmt_left({"ct": {"key": "", "field": "f"}}) == ("ct f", "ct", None)
    assert nat_rules._fmt_value({}) == "{}"


# --- iptables-save text -----------------------------------------------------------------------
def ipt(*lines: str, family: str | None = None) -> list[Any]:
    text = "\n".join(["*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", *lines])
    if family is None:
        return parse_iptables_save(text, source="iptables-legacy")
    return parse_iptables_save(text, source="iptables-legacy", family=family)


def test_every_spelling_of_jump_and_goto() -> None:
    rules = ipt(
        ":A - [0:0]",
        ":B - [0:0]",
        ":C - [0:0]",
        "-A PREROUTING --jump A",
        "-A PREROUTING -g B",
        "-A POSTROUTING --goto C",
        "-A A -p tcp --jump DNAT --to-destination 10.0.0.2",
        "-A B -j SNAT --to-source 10.0.0.3",
        "-A C -j MASQUERADE",
    )
    assert [(r.chain, r.hook, r.action) for r in rules] == [
        ("A", "prerouting", "dnat"),
        ("B", "prerouting", "snat"),
        ("C", "postrouting", "masquerade"),
    ]
    assert [r.family for r in rules] == ["ip"] * 3  # the default family
    assert all(r.comment is None for r in rules)


def test_redirect_to_port_singular_and_plural() -> None:
    (a,) = ipt("-A PREROUTING -p tcp -j REDIRECT --to-port 8080")
    (b,) = ipt("-A PREROUTING -p tcp -j REDIRECT --to-ports 3128-3130")
    assert (a.to_port, a.to_addr) == ("8080", None)
    assert b.to_port == "3128-3130"


def test_valueless_options_and_negation_next_to_them() -> None:
    (r,) = ipt("-A POSTROUTING -p tcp --syn ! -s 10.0.0.0/8 -o eth0 -j MASQUERADE")
    assert (r.proto, r.src, r.out_iface) == ("tcp", "!10.0.0.0/8", "eth0")
    (r,) = ipt("-A POSTROUTING -m addrtype --dst-type LOCAL ! -d 10.1.0.0/16 -j MASQUERADE")
    assert r.dst == "!10.1.0.0/16"
    (r,) = ipt("-A POSTROUTING --random-fully -j MASQUERADE")
    assert r.action == "masquerade"
    (r,) = ipt("-A POSTROUTING ! -i eth0 -o br0 -j MASQUERADE")
    assert (r.in_iface, r.out_iface) == ("!eth0", "br0")  # the ! applies to one option


def test_odd_lines_do_not_crash_the_parse() -> None:
    rules = parse_iptables_save(
        "\n".join(
            [
                ":",  # a chain line without a name
                "-A",  # a rule line without a chain
                '-A POSTROUTING -m comment --comment "unclosed -j MASQUERADE',  # bad quoting
                "-A POSTROUTING -j MASQUERADE -o",  # an option without its value, last
            ]
        ),
        source="iptables-nft",
        family="ip6",
    )
    assert [(r.table, r.chain, r.action, r.family) for r in rules] == [
        ("", "POSTROUTING", "masquerade", "ip6"),
        ("", "POSTROUTING", "masquerade", "ip6"),
    ]
    assert rules[1].out_iface == ""


# --- the raw chain dump --------------------------------------------------------------------------
def attr(typ: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), typ) + payload
    return raw + b"\0" * (-len(raw) % 4)


def chain_msg(body: bytes, family: int = 2) -> bytes:
    payload = struct.pack("=BBH", family, 0, 0) + body
    return struct.pack("=IHHII", 16 + len(payload), (10 << 8) | 3, 2, 1, 0) + payload


def test_chain_attributes_at_their_limits() -> None:
    name = attr(3, b"post\0junk\0")  # bytes after the NUL are not part of the name
    empty = attr(9, b"")  # an empty attribute is skipped, not the end
    hook_without_number = attr(4 | 0x8000, attr(2, struct.pack(">i", 0)))
    data = chain_msg(empty + name + attr(1, b"t\xff\0") + hook_without_number + attr(7, b""))
    (c,), done = nat.parse_chain_dump(data)
    assert not done
    assert (c.name, c.table, c.hook, c.type) == ("post", "t\ufffd", None, "")
    (c,), _ = nat.parse_chain_dump(chain_msg(b""))  # a chain message with no attribute
    assert (c.family, c.table, c.name, c.type, c.hook, c.policy) == ("ip", "", "", None, None, None)
    broken = struct.pack("=HH", 2, 3) + b"\0" * 4  # length below a header: the rest is dropped
    (c,), _ = nat.parse_chain_dump(chain_msg(attr(1, b"t\0") + broken + attr(3, b"x\0")))
    assert (c.table, c.name) == ("t", "")


def test_chain_dump_header_only_messages() -> None:
    noop = struct.pack("=IHHII", 16, 1, 0, 1, 0)
    chain = chain_msg(attr(3, b"c\0"))
    got, done = nat.parse_chain_dump(noop + chain)
    assert [c.name for c in got] == ["c"] and not done
    short_done = struct.pack("=IHHII", 16, 3, 2, 1, 0)  # a DONE without its payload
    got, done = nat.parse_chain_dump(chain + short_done)
    assert [c.name for c in got] == ["c"] and done
    err = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -errno.EACCES) + bytes(16)
    with pytest.raises(OSError) as exc:
        nat.parse_chain_dump(err)
    assert exc.value.errno == errno.EACCES and exc.value.strerror == "Permission denied"


# --- the wire probe and its cache ---------------------------------------------------------------
def test_probe_from_wire_parses_once_and_keeps_at_most_1024_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache: dict[Any, NsProbe] = {}
    monkeypatch.setattr(nat, "_WIRE_PROBES", cache)
    p = nat.probe_from_wire("13:Permission denied: no caps", "nat\n", "filter\n")
    assert p.errors == ("nftables chain dump: Permission denied: no caps",)
    assert (p.legacy_tables4, p.legacy_tables6) == (("nat",), ("filter",))
    assert cache == {("13:Permission denied: no caps", "nat\n", "filter\n"): p}
    assert nat.probe_from_wire("weird", "", "").errors == ("nftables chain dump: weird",)
    cache.clear()
    cache.update({(str(i), "", ""): NsProbe() for i in range(1024)})
    q = nat.probe_from_wire(b"", "", "")
    assert cache == {(b"", "", ""): q}  # full: emptied, then the new answer kept


# --- running the tools -------------------------------------------------------------------------
def test_read_nat_asks_each_installed_tool_and_keeps_each_namespace_s_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    legacy6 = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s fd00::/64 -j MASQUERADE\nCOMMIT\n"
    outputs = {("/a", "ip6tables-legacy-save"): None, ("/b", "ip6tables-legacy-save"): legacy6}
    monkeypatch.setattr("netlens.discovery.nat_tools.shutil.which", which)
    monkeypatch.setattr(
        nat_tools, "_parallel", lambda jobs: [outputs[(path, argv[0])] for path, argv in jobs]
    )
    hs = [NsHandle(4, 1, "/a"), NsHandle(4, 2, "/b")]
    probes: list[NsProbe | None] = [NsProbe(legacy_tables6=("nat",))] * 2
    got = nat_tools.read_nat(hs, probes=probes)
    assert list(got) == [2] and [(r.family, r.src) for r in got[2]] == [("ip6", "fd00::/64")]
    monkeypatch.setattr(nat_tools, "probe", lambda handles: [None] * len(handles))
    assert nat_tools.read_nat(hs) == {}  # probed here when not given
    with pytest.raises(ValueError):
        nat_tools.read_nat(hs, probes=probes[:1])  # one probe per handle


def test_start_tools_finds_nft_by_its_name_and_close_survives_odd_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr("netlens.discovery.nat_tools.shutil.which", which)
    monkeypatch.setattr(nat_tools, "_spawn", lambda path, argv: started.append(argv))
    pr = NsProbe(chains=(NftChain("ip", "t", "c", "nat"),))
    tools = nat_tools.start_tools([(NsHandle(4, 1, "/a"), pr)])
    assert started == [["nft", "-j", "list", "ruleset"]]

    class Stubborn:
        returncode = None
        waited = False

        def kill(self) -> None:
            raise OSError(errno.ESRCH, "gone")

        def communicate(self) -> None:
            self.waited = True

    proc = Stubborn()
    tools.runs = {
        1: [(NsHandle(4, 1, "/a"), "nft", [], None), (NsHandle(4, 1, "/a"), "ip", [], proc)]
    }  # type: ignore[list-item]
    tools.close()
    assert proc.waited and tools.runs == {}


def test_a_rule_whose_expressions_are_not_a_list_is_read_as_empty() -> None:
    """Found by the never-crash property: ``"expr": 1`` raised TypeError."""
    for exprs in (1, "masquerade", {"masquerade": None}, None):
        rule = {"family": "ip", "table": "t", "chain": "c", "expr": exprs}
        assert parse_nft_json({"nftables": [{"rule": rule}]}) == ([], set())


def test_only_nat_xt_targets_mark_a_table_for_a_re_read() -> None:
    rule = {"family": "ip", "table": "t", "chain": "c", "expr": [
        {"counter": {"packets": 1}}, {"limit": None}, {"masquerade": None}]}  # fmt: skip
    rules, xt = parse_nft_json({"nftables": [{"rule": rule}]})
    assert len(rules) == 1 and xt == set()


def test_a_failed_re_read_does_not_stop_the_next_table_s(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    masq = {"xt": {"type": "target", "name": "MASQUERADE"}}
    doc = {"nftables": [
        {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "expr": [masq]}},
        {"rule": {"family": "ip6", "table": "nat", "chain": "POSTROUTING", "expr": [masq]}},
    ]}  # fmt: skip
    six = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s fd00::/64 -j MASQUERADE\nCOMMIT\n"
    monkeypatch.setattr("netlens.discovery.nat_tools.shutil.which", lambda t: f"/usr/sbin/{t}")
    monkeypatch.setattr(
        nat_tools, "_run_in", lambda path, argv: six if argv[0].startswith("ip6") else None
    )
    rules = nat_tools._nft_rules("/p", json.dumps(doc))
    assert [(r.family, r.src) for r in rules] == [("ip6", "fd00::/64")]


def test_read_nat_runs_nft_only_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(
        nat_tools, "_parallel", lambda jobs: [ran.append(argv) for _p, argv in jobs]
    )
    probe = NsProbe(chains=(NftChain("ip", "t", "c", "nat"),))
    monkeypatch.setattr("netlens.discovery.nat_tools.shutil.which", which)
    nat_tools.read_nat([NsHandle(4, 1, "/a")], probes=[probe])
    assert ran == [["nft", "-j", "list", "ruleset"]]
    ran.clear()
    monkeypatch.setattr("netlens.discovery.nat_tools.shutil.which", lambda t: None)
    nat_tools.read_nat([NsHandle(4, 1, "/a")], probes=[probe])
    assert ran == []
