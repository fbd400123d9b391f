"""Link impairments without a kernel: values, the tc requests pyroute2 builds, nft scripts.

The tc requests are compiled by pyroute2's ``IPBatch`` (the encoder ``IPRoute.tc``
uses, minus the socket) and decoded back with its ``tcmsg`` class, so these tests
check the attributes the kernel would receive, including netem's, which this
project's kernel lacks (the live side is tests/integration/test_link_impair.py).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from netlens_runtime import linkloss
from netlens_runtime.lab_impair import (
    Impair,
    ImpairError,
    ImpairSpec,
    loss_in_netem,
    nft_loss,
    parse_changes,
    parse_percent,
    parse_rate,
    parse_time,
)

pytestmark = pytest.mark.unit

RTM_NEWQDISC, RTM_NEWTFILTER = 36, 44
NLM_F_CREATE_EXCL_ACK = 0x400 | 0x200 | 0x4 | 0x1


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("100mbit", 100_000_000),
        ("512kbit", 512_000),
        ("1gbit", 1_000_000_000),
        ("1.5Mbit", 1_500_000),
        ("10mbps", 80_000_000),  # tc: bytes per second
        ("64000", 64_000),
        ("0", 0),
    ],
)
def test_rates_parse_like_tc(text: str, bits: int) -> None:
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["fast", "10 mbits", "-1mbit", "1kbit", "40gbit", ""])
def test_bad_rates_are_refused_with_the_field(text: str) -> None:
    with pytest.raises(ImpairError) as info:
        parse_rate(text)
    assert info.value.field == "rate"


def test_times_need_a_unit_and_percentages_stay_in_range() -> None:
    assert parse_time("20ms") == 20_000
    assert parse_time("500us") == 500
    assert parse_time("1.5s") == 1_500_000
    assert parse_time("0") == 0
    for bad in ("20", "ms", "2min", "61s"):
        with pytest.raises(ImpairError):
            parse_time(bad)
    assert parse_percent("1%", "loss") == 1.0
    assert parse_percent("0.1", "loss") == 0.1
    for bad in ("101%", "-1%", "lots"):
        with pytest.raises(ImpairError):
            parse_percent(bad, "loss")


def test_merge_keeps_what_is_set_and_zero_clears() -> None:
    imp = Impair().merged(parse_changes({"rate": "10mbit", "delay": "20ms", "jitter": "5ms"}))
    assert imp == Impair(rate=10_000_000, delay=20_000, jitter=5_000)
    more = imp.merged(parse_changes({"loss": "1%"}))
    assert more.rate == 10_000_000 and more.loss == 1.0
    cleared = more.merged(parse_changes({"delay": "0"}))
    assert cleared.delay is None and cleared.jitter is None  # no delay, nothing to vary
    assert cleared.merged(parse_changes({"rate": "0", "loss": "0"})).is_empty()
    with pytest.raises(ImpairError, match="needs a delay"):
        Impair().merged(parse_changes({"jitter": "5ms"}))
    assert Impair.from_json(more.to_json()) == more
    assert more.describe() == "rate 10mbit delay 20ms~5ms loss 1%"


def test_loss_rides_on_netem_only_when_netem_runs_anyway() -> None:
    alone = Impair(loss=2.0)
    assert not loss_in_netem(alone) and nft_loss(alone) == 2.0
    with_delay = Impair(delay=1000, loss=2.0)
    assert loss_in_netem(with_delay) and nft_loss(with_delay) is None
    assert nft_loss(Impair(rate=1_000_000, loss=2.0)) == 2.0  # tbf has no loss


def test_a_spec_applies_to_its_directions() -> None:
    assert ImpairSpec({}, "both").directions() == ("egress", "ingress")
    assert ImpairSpec({}, "ingress").directions() == ("ingress",)


# ------------------------------------------------------ tc requests (pyroute2)


def _decode(raw: bytes) -> Any:
    from pyroute2.netlink.rtnl.tcmsg import tcmsg

    msg = tcmsg(raw)
    msg.decode()
    return msg


def _compiled(reqs: list[Any]) -> list[Any]:
    from netlens_runtime.linkctl import compile_requests

    return [_decode(raw) for raw in compile_requests(reqs)]


def _ticks_to_us(ticks: int) -> float:
    from pyroute2.netlink.rtnl.tcmsg.common import tick_in_usec

    return ticks / tick_in_usec


def test_rate_alone_is_one_tbf_at_the_root_with_our_handle() -> None:
    from netlens_runtime.linkctl import HANDLE, TC_H_ROOT, qdisc_tree, tbf_burst

    (msg,) = _compiled(qdisc_tree(7, Impair(rate=10_000_000)))
    assert msg["header"]["type"] == RTM_NEWQDISC
    assert msg["header"]["flags"] & NLM_F_CREATE_EXCL_ACK == NLM_F_CREATE_EXCL_ACK
    assert (msg["index"], msg["handle"], msg["parent"]) == (7, HANDLE, TC_H_ROOT)
    assert msg.get_attr("TCA_KIND") == "tbf"
    parms = msg.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
    assert parms["rate"] == 10_000_000 // 8  # bytes per second
    burst = tbf_burst(10_000_000)
    # the queue holds LATENCY_US of the rate plus the bucket
    assert parms["limit"] == int(10_000_000 // 8 * 0.05 + burst)
    assert _ticks_to_us(parms["buffer"]) == pytest.approx(burst / (10_000_000 / 8) * 1e6, 0.01)


def test_netem_under_tbf_carries_every_setting() -> None:
    from netlens_runtime.linkctl import CHILD, HANDLE, qdisc_tree

    imp = Impair(rate=50_000_000, delay=20_000, jitter=5_000, loss=1.5, corrupt=0.1, duplicate=0.2)
    tbf, netem = _compiled(qdisc_tree(3, imp))
    assert tbf.get_attr("TCA_KIND") == "tbf"
    assert netem.get_attr("TCA_KIND") == "netem"
    assert (netem["index"], netem["handle"], netem["parent"]) == (3, CHILD, HANDLE | 1)
    opts = netem.get_attr("TCA_OPTIONS")
    assert _ticks_to_us(opts["delay"]) == pytest.approx(20_000)
    assert _ticks_to_us(opts["jitter"]) == pytest.approx(5_000)
    u32 = 2**32 - 1
    assert opts["loss"] == int(u32 * 1.5 / 100)  # netem runs anyway: loss rides on it
    assert opts["duplicate"] == int(u32 * 0.2 / 100)
    corrupt = opts.get_attr("TCA_NETEM_CORRUPT")
    assert corrupt["prob_corrupt"] == int(u32 * 0.1 / 100)


def test_netem_alone_is_the_root_and_loss_alone_needs_no_qdisc() -> None:
    from netlens_runtime.linkctl import HANDLE, TC_H_ROOT, qdisc_tree

    (netem,) = _compiled(qdisc_tree(4, Impair(delay=100_000)))
    assert netem.get_attr("TCA_KIND") == "netem"
    assert (netem["handle"], netem["parent"]) == (HANDLE, TC_H_ROOT)
    opts = netem.get_attr("TCA_OPTIONS")
    assert opts["loss"] == 0 and opts["duplicate"] == 0 and opts["jitter"] == 0
    assert opts.get_attr("TCA_NETEM_CORRUPT") is None
    assert qdisc_tree(4, Impair(loss=5.0)) == []  # nftables drops it
    assert qdisc_tree(4, Impair()) == []


def test_ingress_is_redirected_to_the_ifb_with_mirred() -> None:
    from netlens_runtime.linkctl import ETH_P_ALL, FILTER_PRIO, INGRESS, redirect_requests

    qdisc, flt = _compiled(redirect_requests(5, 9))
    assert qdisc.get_attr("TCA_KIND") == "ingress"
    assert (qdisc["index"], qdisc["handle"], qdisc["parent"]) == (5, INGRESS, 0xFFFFFFF1)
    assert flt["header"]["type"] == RTM_NEWTFILTER
    assert flt.get_attr("TCA_KIND") == "u32"
    assert (flt["index"], flt["parent"]) == (5, INGRESS)
    assert flt["info"] >> 16 == FILTER_PRIO
    assert flt["info"] & 0xFFFF == socket.htons(ETH_P_ALL)
    opts = flt.get_attr("TCA_OPTIONS")
    sel = opts.get_attr("TCA_U32_SEL")
    assert [(k["key_val"], k["key_mask"]) for k in sel["keys"]] == [(0, 0)]  # every packet
    act = opts.get_attr("TCA_U32_ACT").get_attr("TCA_ACT_PRIO_1")
    assert act.get_attr("TCA_ACT_KIND") == "mirred"
    parms = act.get_attr("TCA_ACT_OPTIONS").get_attr("TCA_MIRRED_PARMS")
    assert parms["ifindex"] == 9
    assert parms["eaction"] == 1  # TCA_EGRESS_REDIR: into the ifb's egress (its qdisc)
    assert parms["action"] == 4  # TC_ACT_STOLEN
    (only_filter,) = _compiled(redirect_requests(5, 9, add_qdisc=False))
    assert only_filter.get_attr("TCA_KIND") == "u32"


def test_ifb_names_fit_and_differ() -> None:
    from netlens_runtime.linkctl import ifb_name

    names = {ifb_name(n) for n in ("eth0", "eth1", "p2p0", "a-very-long-if0")}
    assert len(names) == 4
    assert all(len(n) <= 15 for n in names)


# ------------------------------------------------------------------- nft loss


def test_loss_script_replaces_the_table_and_drops_on_the_receiving_device() -> None:
    delete = [
        "table netdev nl_loss_x {}",
        "delete table netdev nl_loss_x",
        "table inet nl_loss_x {}",
        "delete table inet nl_loss_x",
    ]
    # the host end of a veth is a bridge port: a netdev ingress chain on it
    port = linkloss.render(
        "nl_loss_x", "web:eth0", [linkloss.LossChain("egress", "nlv0123", 1.5, "web:eth0", True)]
    )
    assert port.splitlines()[:4] == delete
    assert "table netdev nl_loss_x {\n" in port and "table inet nl_loss_x {\n" not in port
    assert 'type filter hook ingress device "nlv0123" priority -100;' in port
    assert "\t\tnumgen random mod 10000 < 150 drop" in port
    # a node's end: prerouting by input interface (ifb-shaped ingress skips netdev hooks)
    node = linkloss.render(
        "nl_loss_x",
        "lab:a:p0",
        [
            linkloss.LossChain("egress", "p0", 30, "lab:b:p0"),
            linkloss.LossChain("ingress", "eth1", 0.004, "lab:a:eth1"),
        ],
    )
    assert "table inet nl_loss_x {\n" in node and "hook ingress" not in node
    assert node.count("type filter hook prerouting priority -300;") == 2
    assert 'iifname "p0" numgen random mod 10000 < 3000 drop' in node
    assert 'iifname "eth1" numgen random mod 10000 < 1 drop' in node  # never zero
    assert "hook egress" not in port + node and "postrouting" not in port + node
    assert linkloss.render("nl_loss_x", "t", []).splitlines() == delete


def test_loss_tables_are_per_state_dir_and_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETLENS_STATE_DIR", "/run/one")
    a = linkloss.table_name("web", "eth0")
    assert a == linkloss.table_name("web", "eth0")
    assert a != linkloss.table_name("web", "eth1")
    monkeypatch.setenv("NETLENS_STATE_DIR", "/run/two")
    assert a != linkloss.table_name("web", "eth0")
    assert len(a) < 32 and a.startswith("nl_loss_")


def test_forget_looks_only_outside_the_removed_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(linkloss, "delete_in", lambda where, tables: calls.append((where, tables)))
    recs = [
        {"name": "a", "impair": {"eth0": {"made": {"loss": [
            {"where": linkloss.HOST, "table": "t1"}, {"where": "a", "table": "t1"}]}}}},
        {"name": "b", "impair": {"p0": {"made": {"loss": [{"where": "a", "table": "t2"},
                                                         {"where": "c", "table": "t2"}]}}}},
    ]  # fmt: skip
    linkloss.forget(recs)
    assert sorted(calls) == [(linkloss.HOST, ["t1"]), ("c", ["t2"])]


def test_lab_labels_match_lab_ops() -> None:
    from netlens_runtime import lab_record, linkops

    assert (linkops.LAB_LABEL, linkops.NODE_LABEL) == (lab_record.LAB_LABEL, lab_record.NODE_LABEL)
