"""trace --probe without a kernel: what the probe may send to, how its answers and
the kernel's drop records are read (lines recorded on this machine's 6.18 kernel)."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any, cast

import pytest

from netlens.analysis.probe import check_path, check_target
from netlens.analysis.probe_watch import FateWatch
from netlens.analysis.tracetypes import TraceResult, Verdict
from netlens.errors import UsageError
from netlens.kernel.dropwatch import DropWatch
from netlens.kernel.nfttrace import Monitor
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


# -- FateWatch: a dropped probe is not waited for to the end -------------------------------------
class _Proc:
    """What FateWatch reads of a monitor's process: its stdout (a real pipe here)."""

    def __init__(self, stdout: Any) -> None:
        self.stdout = stdout


def _watch(tmp_path: Path, drops: str = "# tracer: nop\n") -> tuple[FateWatch, int, Monitor]:
    r, w = os.pipe()
    (tmp_path / "trace").write_text(drops)
    dw = DropWatch()
    dw.instance = str(tmp_path)
    mon = Monitor(cast(Any, _Proc(os.fdopen(r, "rb"))))
    watch = FateWatch({1: mon}, dw, {("10.66.1.2", "10.66.2.2")}, "10.66.2.2")
    return watch, w, mon


def _say(watch: FateWatch, w: int, text: str) -> None:
    os.write(w, text.encode())
    for fd in watch.fds():
        watch.feed(fd)


def test_fate_watch_decides_on_a_request_dropped_by_a_rule_even_across_reads(
    tmp_path: Path,
) -> None:
    watch, w, mon = _watch(tmp_path)
    try:
        lines = MONITOR.splitlines(keepends=True)
        _say(watch, w, "".join(lines[:3]))  # a trace table's lines: continue, accept
        assert not watch.decided()
        half = lines[4][:30]
        _say(watch, w, lines[3] + half)  # a line cut in two by the pipe
        assert not watch.decided()
        _say(watch, w, lines[4][30:])
        assert watch.decided() and watch.reason is not None and "inet ntp fw" in watch.reason
        assert bytes(mon.out).decode() == "".join(lines[:5])  # kept for the judge
    finally:
        os.close(w)
        mon.proc.stdout.close()


@pytest.mark.parametrize(
    "text",
    [
        # a reply (from DST back to SRC) dropped: not the request's fate
        'trace id aa inet ntp in packet: iif "rb" ip saddr 10.66.2.2 ip daddr 10.66.1.2\n'
        "trace id aa inet ntp in rule ip saddr 10.66.2.2 drop (verdict drop)\n",
        # rejected: an ICMP error comes back, and that answer is worth waiting for
        'trace id bb inet ntp fw packet: iif "ra" ip saddr 10.66.1.2 ip daddr 10.66.2.2\n'
        "trace id bb inet ntp fw rule ip daddr 10.66.2.2 reject (verdict reject)\n",
        # a verdict line whose trace id was never introduced by a packet line
        "trace id cc inet ntp fw rule ip daddr 10.66.2.2 drop (verdict drop)\n",
    ],
)
def test_fate_watch_does_not_decide_on_replies_rejects_or_unknown_ids(
    tmp_path: Path, text: str
) -> None:
    watch, w, mon = _watch(tmp_path)
    try:
        _say(watch, w, text)
        assert not watch.decided() and watch.reason is None
    finally:
        os.close(w)
        mon.proc.stdout.close()


def test_fate_watch_decides_on_the_kernels_drop_of_the_probes_skb_by_reason(
    tmp_path: Path,
) -> None:
    """A filter's or rp_filter's drop of the probe's skb decides; OTHERHOST (a copy
    flooded to a namespace that does not own the address) and other tasks' drops do
    not."""
    arrive = " python3-31613   [001] b.s1. 1.5: netif_rx: dev=ra skbaddr=0000000000000001 len=97\n"
    head = "# tracer: nop\n" + arrive
    free = (" python3-31613   [001] ..s1. 1.6: kfree_skb: skbaddr=0000000000000001 "
            "rx_sk=0000000000000000 protocol=2048 location=x+0x1/0x2 reason: {}\n")  # fmt: skip
    other = (
        " n3-27762   [001] bNs.. 1.4: kfree_skb: skbaddr=0000000000000009 "
        "rx_sk=0000000000000000 protocol=2048 location=y+0x1/0x2 reason: NETFILTER_DROP\n"
    )
    for drops, want in (
        (head + free.format("OTHERHOST"), False),
        ("# tracer: nop\n" + other, False),
        (head + free.format("NETFILTER_DROP"), True),
        (head + free.format("IP_RPFILTER"), True),
    ):
        watch, w, mon = _watch(tmp_path, drops)
        try:
            assert watch.decided() is want, drops
            if want:
                assert watch.reason is not None and "kernel dropped" in watch.reason
        finally:
            os.close(w)
            mon.proc.stdout.close()


@pytest.mark.timeout(60)
def test_settle_stops_once_every_monitor_showed_a_request(tmp_path: Path) -> None:
    """With a quiet period and a cap far longer than the test's timeout, settle
    returns only because both monitors have shown the request (what each one
    printed is kept for the judge); while one has shown only a reply, it goes on
    reading until the monitors are quiet."""
    request = MONITOR.splitlines(keepends=True)[3]  # ip saddr 10.66.1.2 ip daddr 10.66.2.2
    reply = 'trace id ee inet ntp in packet: iif "rb" ip saddr 10.66.2.2 ip daddr 10.66.1.2\n'
    pipes = [os.pipe(), os.pipe()]
    mons = {i: Monitor(cast(Any, _Proc(os.fdopen(r, "rb")))) for i, (r, _w) in enumerate(pipes)}
    dw = DropWatch()
    watch = FateWatch(mons, dw, {("10.66.1.2", "10.66.2.2")}, "10.66.2.2")
    try:
        os.write(pipes[0][1], request.encode())
        os.write(pipes[1][1], reply.encode())
        watch.settle(quiet_s=0.05, cap_s=3600)  # one shows only a reply: until quiet
        assert bytes(mons[1].out).decode() == reply
        os.write(pipes[1][1], request.encode())
        watch.settle(quiet_s=3600, cap_s=3600)
        assert bytes(mons[1].out).decode() == reply + request
        assert bytes(mons[0].out).decode() == request
    finally:
        for i, (_r, w) in enumerate(pipes):
            os.close(w)
            mons[i].proc.stdout.close()
