"""Traffic control from RTM_GETQDISC replies: recorded messages, no kernel needed.

The messages are encoded with pyroute2's ``tcmsg`` (what the kernel sends has the
same layout), plus one packed by hand with the ns-precise netem attributes newer
kernels add. netem cannot run on this project's kernel, so this is where its
decoding is checked; tbf is also checked live (tests/integration/test_link_impair.py).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from netlens.discovery.tc import parse_qdiscs
from netlens.model import TrafficControl

pytestmark = pytest.mark.unit

ROOT, INGRESS_PARENT = 0xFFFFFFFF, 0xFFFFFFF1
U32 = 2**32 - 1


def _qdisc(index: int, kind: str, handle: int, parent: int, options: Any = None) -> bytes:
    from pyroute2.netlink.rtnl.tcmsg import tcmsg

    msg = tcmsg()
    msg["header"]["type"] = 36  # RTM_NEWQDISC
    msg["header"]["flags"] = 2  # NLM_F_MULTI
    msg["index"], msg["handle"], msg["parent"] = index, handle, parent
    msg["attrs"] = [["TCA_KIND", kind]]
    if options is not None:
        msg["attrs"].append(["TCA_OPTIONS", options])
    msg.encode()
    return bytes(msg.data)


def _done() -> bytes:
    return struct.pack("=IHHIIi", 20, 3, 2, 0, 0, 0)


def _tbf(rate_bytes: int) -> dict[str, Any]:
    from pyroute2.netlink.rtnl.tcmsg.sched_tbf import get_parameters

    return get_parameters({"rate": rate_bytes, "burst": 16384, "latency": 50_000})


def _netem(**kw: Any) -> dict[str, Any]:
    from pyroute2.netlink.rtnl.tcmsg.sched_netem import get_parameters

    return get_parameters(kw)


def test_defaults_say_nothing_and_are_skipped_fast() -> None:
    data = (
        _qdisc(1, "noqueue", 0, ROOT)
        + _qdisc(2, "pfifo_fast", 0, ROOT)
        + _qdisc(3, "fq_codel", 0, ROOT)
        + _done()
    )
    assert parse_qdiscs(data) == {}
    assert parse_qdiscs(b"") == {}


def test_tbf_with_netem_child_and_an_ingress_qdisc() -> None:
    data = (
        _qdisc(1, "noqueue", 0, ROOT)
        + _qdisc(2, "tbf", 0x4E4C0000, ROOT, _tbf(10_000_000 // 8))
        + _qdisc(
            2,
            "netem",
            0x4E4D0000,
            0x4E4C0001,
            _netem(delay=20_000, jitter=5_000, loss=1.5, duplicate=0.25, prob_corrupt=0.1),
        )
        + _qdisc(2, "ingress", 0xFFFF0000, INGRESS_PARENT)
        + _done()
    )
    got = parse_qdiscs(data)
    assert set(got) == {2}
    tc = got[2]
    assert tc.kinds == ("tbf", "netem")  # root first
    assert tc.rate_bps == 10_000_000
    assert tc.delay_us == 20_000 and tc.jitter_us == 5_000
    assert tc.loss_pct == pytest.approx(1.5, abs=1e-3)
    assert tc.duplicate_pct == pytest.approx(0.25, abs=1e-3)
    assert tc.corrupt_pct == pytest.approx(0.1, abs=1e-3)
    assert tc.ingress is True
    assert tc.summary() == "10mbit 20ms~5ms loss 1.5% corrupt 0.1% dup 0.25%"


def test_netem_ns_attributes_win_over_the_tick_fields() -> None:
    """Kernels >= 4.15 send delay and jitter in ns too; those are exact."""
    qopt = struct.pack("=IIIIII", 1, 1000, U32 // 2, 0, 0, 1)  # ticks say ~0 us
    nest = b""
    for typ, ns in ((10, 1_500_000), (11, 250_000)):  # LATENCY64, JITTER64
        nest += struct.pack("=HHq", 12, typ, ns)
    options = qopt + nest
    body = struct.pack("=BxxxiIII", 0, 7, 0x10000, ROOT, 0)
    kind = struct.pack("=HH", 10, 1) + b"netem\0" + b"\0\0"
    opts = struct.pack("=HH", 4 + len(options), 2) + options
    payload = body + kind + opts
    msg = struct.pack("=IHHII", 16 + len(payload), 36, 2, 0, 0) + payload
    (tc,) = parse_qdiscs(msg + _done()).values()
    assert (tc.delay_us, tc.jitter_us) == (1500, 250)
    assert tc.loss_pct == pytest.approx(50.0, abs=1e-3)
    assert tc.rate_bps is None and tc.kinds == ("netem",)


def test_only_an_ingress_filter_is_still_reported() -> None:
    got = parse_qdiscs(_qdisc(4, "clsact", 0xFFFF0000, INGRESS_PARENT) + _done())
    assert got == {4: TrafficControl(ingress=True)}
    assert got[4].summary() == "ingress filter"


def test_classful_kinds_are_named_even_without_numbers() -> None:
    got = parse_qdiscs(_qdisc(5, "htb", 0x10000, ROOT) + _done())
    assert got[5].kinds == ("htb",) and got[5].summary() == "htb"


def test_truncated_messages_do_not_raise() -> None:
    data = _qdisc(2, "tbf", 0x4E4C0000, ROOT, _tbf(125_000))
    for cut in range(0, len(data), 7):
        parse_qdiscs(data[:cut])  # never an exception, whatever survives


def test_the_ingress_redirect_target_is_found_in_the_filter_actions() -> None:
    """A u32 filter with a mirred egress redirect, encoded as netlens's link control
    sends it (RTM_NEWTFILTER, the layout the kernel dumps it back in)."""
    from netlens.discovery.tc import redirect_target
    from netlens_runtime.linkctl import compile_requests, redirect_requests

    (raw,) = compile_requests(redirect_requests(5, 9, add_qdisc=False))
    assert redirect_target(raw + _done()) == 9
    assert redirect_target(_done()) is None
    # a mirror (not a redirect) of the same filter shapes nothing
    mirror = raw.replace(struct.pack("=iI", 1, 9), struct.pack("=iI", 2, 9))
    assert mirror != raw
    assert redirect_target(mirror + _done()) is None
