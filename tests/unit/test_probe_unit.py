"""trace --probe without a kernel: what the probe may send to, how its answers and
the kernel's drop records are read (lines recorded on this machine's 6.18 kernel)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from netlens.analysis.probe import check_path, check_target
from netlens.analysis.tracetypes import TraceResult, Verdict
from netlens.errors import UsageError
from netlens.kernel.dropwatch import DropWatch
from netlens.kernel.probesock import _icmp_answer, ip_length

pytestmark = pytest.mark.unit

# Recorded: another task's drop of an skb whose address the probe's skb reuses
# later, then the probe arriving on r's "ra" and dropped there (ip_forward off),
# once in the probe's own context and once (edited pid/comm) in ksoftirqd.
RECORDED = """\
# tracer: nop
 n3-27762   [001] bNs.. 33080.409683: kfree_skb: skbaddr=00000000206ab7eb rx_sk=0000000000000000 protocol=2048 location=br_dev_xmit+0x34f/0x490 reason: NO_TX_TARGET
 python3-31613   [001] b.s1. 33080.521833: netif_rx: dev=ra skbaddr=00000000206ab7eb len=97
 python3-31613   [001] ..s1. 33080.521835: netif_receive_skb: dev=ra skbaddr=00000000206ab7eb len=97
 python3-31613   [001] ..s1. 33080.521872: kfree_skb: skbaddr=00000000206ab7eb rx_sk=0000000000000000 protocol=2048 location=ip_error+0x94/0x220 reason: IP_INADDRERRORS
 python3-31613   [000] bN... 33081.192409: netif_rx: dev=ra skbaddr=0000000083dbfe42 len=97
 ksoftirqd/0-15  [000] .Ns1. 33081.192433: kfree_skb: skbaddr=0000000083dbfe42 rx_sk=0000000000000000 protocol=2048 location=ip_error+0x94/0x220 reason: IP_INADDRERRORS
 ksoftirqd/0-15  [000] .Ns1. 33081.192499: kfree_skb: skbaddr=0000000083dbfe42 rx_sk=0000000000000000 protocol=2048 location=ip_error+0x94/0x220 reason: IP_INNOROUTES
"""  # noqa: E501


def test_drop_records_follow_the_probes_skb(tmp_path: Path) -> None:
    (tmp_path / "trace").write_text(RECORDED)
    dw = DropWatch()
    dw.instance = str(tmp_path)
    drops = dw.read()
    dw.instance = None  # not ours to remove
    assert [(d.pid, d.reason, d.probe_skb) for d in drops] == [
        (27762, "NO_TX_TARGET", False),  # before the probe's skb arrived: not ours
        (31613, "IP_INADDRERRORS", True),
        (15, "IP_INADDRERRORS", True),  # deferred to ksoftirqd: still the probe's skb
        (15, "IP_INNOROUTES", False),  # the address freed once already: reused by others
    ]
    assert drops[1].location == "ip_error+0x94/0x220" and drops[2].comm == "ksoftirqd/0"


def _result(result: str) -> TraceResult:
    return TraceResult({"dst": "10.9.9.9"}, (), Verdict(result, None, "via uplink eth0"))


def test_a_path_that_leaves_the_host_needs_allow_external() -> None:
    with pytest.raises(UsageError, match=r"leaves this host.*--allow-external"):
        check_path(_result("leaves"), allow_external=False)
    check_path(_result("leaves"), allow_external=True)
    check_path(_result("delivered"), allow_external=False)
    check_path(_result("dropped"), allow_external=False)


def test_an_address_no_namespace_owns_needs_allow_external() -> None:
    from netlens.analysis.endpoints import Endpoint

    outside = Endpoint(spec="192.0.2.1", ns=None, iface=None, address="192.0.2.1")
    with pytest.raises(UsageError, match="--allow-external"):
        check_target(outside, allow_external=False)
    check_target(outside, allow_external=True)


def _ip(src: str, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 1, 0,
                       socket.inet_aton(src), socket.inet_aton("10.66.1.2")) + payload  # fmt: skip


def test_icmp_answers_reply_and_errors_about_our_echo_only() -> None:
    echo = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"x" * 8
    assert _icmp_answer(_ip("10.66.2.2", struct.pack("!BBHHH", 0, 0, 0, 0x1234, 1)),
                        0x1234, False, "10.66.2.2") == "reply"  # fmt: skip
    assert _icmp_answer(_ip("10.66.2.2", struct.pack("!BBHHH", 0, 0, 0, 0x9999, 1)),
                        0x1234, False, "10.66.2.2") is None  # fmt: skip
    quoted = _ip("10.66.1.2", echo)
    err = struct.pack("!BBHI", 3, 0, 0, 0) + quoted
    assert _icmp_answer(_ip("10.66.1.1", err), 0x1234, False, "10.66.2.2") == (
        "net unreachable from 10.66.1.1"
    )
    prohibited = struct.pack("!BBHI", 3, 13, 0, 0) + quoted
    assert _icmp_answer(_ip("10.66.1.1", prohibited), 0x1234, False, "10.66.2.2") == (
        "prohibited from 10.66.1.1"
    )
    other = struct.pack("!BBHI", 3, 0, 0, 0) + _ip("10.66.1.2", echo.replace(b"\x12\x34", b"\0\1"))
    assert _icmp_answer(_ip("10.66.1.1", other), 0x1234, False, "10.66.2.2") is None


def test_probe_lengths() -> None:
    assert ip_length("icmp", False) == ip_length("udp", False) == 97
    assert ip_length("udp", True) == 117 and ip_length("tcp", False) is None


# Recorded from `nft monitor trace` (nft 1.0.6) in a router during a probe.
MONITOR = """\
trace id fb8b45c7 inet netlens_probe_14448 pre packet: iif "ra" ether saddr 5a:63:6e:31:73:9e ip saddr 10.66.1.2 ip daddr 10.66.2.2 ip protocol udp ip length 97 udp sport 47117 udp dport 53
trace id fb8b45c7 inet netlens_probe_14448 pre rule ip saddr 10.66.1.2 meta nftrace set 1 (verdict continue)
trace id fb8b45c7 inet netlens_probe_14448 pre policy accept
trace id fb8b45c7 inet ntp fw packet: iif "ra" oif "rb" ip saddr 10.66.1.2 ip daddr 10.66.2.2 ip length 97
trace id fb8b45c7 inet ntp fw rule ip daddr 10.66.2.2 udp dport 53 drop (verdict drop)
trace id fb8b45c7 ip ntk fw2 policy drop
"""  # noqa: E501


def test_monitor_lines_parse_into_where_and_verdict() -> None:
    from netlens.kernel.nfttrace import parse

    evs = parse(MONITOR + "some other line\n")
    assert len(evs) == 6 and {e.trace for e in evs} == {"fb8b45c7"}
    assert [e.verdict for e in evs] == [None, "continue", "accept", None, "drop", "drop"]
    assert evs[4].where == "inet ntp fw" and evs[4].text.startswith("rule ip daddr")
    assert evs[3].text.startswith("packet:") and evs[5].where == "ip ntk fw2"
