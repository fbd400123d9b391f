"""The netlink wire without a kernel: request bytes, reply framing, nsid answers.

``wire.py`` builds every request discovery sends and frames every reply it gets;
its socket helpers only call ``send`` and ``recv``, so a scripted socket that
answers like the kernel checks them without root. Layouts are the kernel's
(linux/netlink.h, linux/rtnetlink.h): a mistake here is a dump the kernel
refuses or a reply cut in the wrong place.
"""

from __future__ import annotations

import struct
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlens.kernel import consts, wire

pytestmark = pytest.mark.unit

HDR = struct.Struct("=IHHII")


def msg(typ: int, body: bytes = b"", seq: int = 1, flags: int = consts.NLM_F_MULTI) -> bytes:
    return HDR.pack(16 + len(body), typ, flags, seq, 0) + body


def done(seq: int = 1, flags: int = consts.NLM_F_MULTI) -> bytes:
    return msg(consts.NLMSG_DONE, b"\0\0\0\0", seq, flags)


def error(code: int, seq: int = 1) -> bytes:
    return msg(consts.NLMSG_ERROR, struct.pack("=i", code) + bytes(16), seq, 0)


class Script:
    """A socket that answers each recv with the next scripted datagram."""

    def __init__(self, *datagrams: bytes) -> None:
        self.replies = deque(datagrams)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, _size: int) -> bytes:
        return self.replies.popleft() if self.replies else b""


# --- request builders --------------------------------------------------------------------
@given(st.integers(0, 0x7FFF), st.binary(max_size=40))
def test_attribute_is_length_type_payload_padded_to_four(atype: int, payload: bytes) -> None:
    raw = wire.nla(atype, payload)
    assert struct.unpack_from("=HH", raw) == (4 + len(payload), atype)
    assert raw[4 : 4 + len(payload)] == payload
    assert len(raw) % 4 == 0 and len(raw) - (4 + len(payload)) < 4
    assert raw[4 + len(payload) :] == b"\0" * (len(raw) - 4 - len(payload))


def test_message_header_counts_itself() -> None:
    raw = wire.message(26, 0x301, 9, b"abcd")
    assert HDR.unpack_from(raw) == (20, 26, 0x301, 9, 0) and raw[16:] == b"abcd"


@pytest.mark.parametrize(
    ("name", "size", "family"),
    [("link", 16, 0), ("addr", 8, 0), ("route", 12, 0), ("rule", 12, 0), ("neigh", 12, 0),
     ("fdb", 12, 7)],
)  # fmt: skip
def test_dump_request_bodies_have_the_kernel_struct_sizes(
    name: str, size: int, family: int
) -> None:
    """ifinfomsg 16, ifaddrmsg 8, rtmsg/fib_rule_hdr 12, ndmsg 12 bytes; all zero
    but the family (AF_BRIDGE for the FDB)."""
    raw = wire.dump_request(name, seq=5)
    ln, typ, flags, seq, pid = HDR.unpack_from(raw)
    assert (ln, typ, flags, seq, pid) == (16 + size, wire.REQUESTS[name][0], 0x301, 5, 0)
    assert raw[16] == family and raw[17:] == bytes(size - 1)


def test_netconf_and_nsid_requests() -> None:
    raw = wire.netconf_request(consts.AF_INET6, -2, seq=4)
    assert HDR.unpack_from(raw) == (28, consts.RTM_GETNETCONF, consts.NLM_F_REQUEST, 4, 0)
    assert raw[16:20] == b"\x0a\0\0\0"
    assert struct.unpack_from("=HHi", raw, 20) == (8, consts.NETCONFA_IFINDEX, -2)
    raw = wire.nsid_request(42, seq=3)
    assert HDR.unpack_from(raw) == (28, consts.RTM_GETNSID, consts.NLM_F_REQUEST, 3, 0)
    assert raw[16:20] == bytes(4)
    assert struct.unpack_from("=HHI", raw, 20) == (8, consts.NETNSA_FD, 42)


# --- reply framing -----------------------------------------------------------------------
def test_iter_messages_walks_aligned_messages_and_stops_at_a_bad_length() -> None:
    data = msg(24, b"abc", flags=2) + b"\0" + msg(24, b"", seq=2) + done(3)  # padded
    got = list(wire.iter_messages(data))
    assert got == [(24, 2, 16, 19), (24, 2, 36, 36), (3, 2, 52, 56)]
    broken = msg(24, b"abcd") + HDR.pack(8, 24, 0, 0, 0) + msg(24)
    assert list(wire.iter_messages(broken)) == [(24, 2, 16, 20)]
    assert list(wire.iter_messages(msg(24)[:15])) == []


def test_end_of_dump_reads_done_errors_and_acks() -> None:
    part = msg(16, b"x" * 4)
    assert wire.end_of_dump(part) == 0
    assert wire.end_of_dump(part + done()) == 1
    assert wire.end_of_dump(part + error(-95)) == -95
    assert wire.end_of_dump(error(0)) == 1  # an ack ends it too
    assert wire.end_of_dump(HDR.pack(8, 16, 0, 0, 0) + bytes(8)) == 1  # malformed: stop
    assert wire.end_of_dump(b"") == 0


def test_recv_dump_joins_parts_until_done_and_raises_a_refusal() -> None:
    a, b = msg(16, b"1111"), msg(16, b"2222") + done()
    sock = Script(a, b, msg(16, b"never read"))
    assert wire.recv_dump(sock) == a + b  # type: ignore[arg-type]
    assert list(sock.replies) == [msg(16, b"never read")]
    single = Script(a + done())
    assert wire.recv_dump(single) == a + done()  # type: ignore[arg-type]
    with pytest.raises(wire.NetlinkError) as err:
        wire.recv_dump(Script(a, error(-95)))  # type: ignore[arg-type]
    assert err.value.errno == 95
    assert wire.recv_dump(Script(a)) == a  # type: ignore[arg-type]  # socket closed: what came
    sock = Script(msg(16, b"1111") + done(7))
    assert wire.dump(sock, "addr", seq=7) == msg(16, b"1111") + done(7)  # type: ignore[arg-type]
    assert sock.sent == [wire.dump_request("addr", 7)]


def test_requests_number_messages_from_one_and_netconf_asks_three() -> None:
    raw, seq_name = wire._requests(("rule", wire.NETCONF, "link"))
    assert seq_name == {1: "rule", 2: wire.NETCONF, 3: wire.NETCONF, 4: wire.NETCONF, 5: "link"}
    seqs = [struct.unpack_from("=I", raw, s - 8)[0] for _t, _f, s, _e in wire.iter_messages(raw)]
    assert seqs == [1, 2, 3, 4, 5]
    types = [t for t, *_ in wire.iter_messages(raw)]
    assert types == [consts.RTM_GETRULE, *[consts.RTM_GETNETCONF] * 3, consts.RTM_GETLINK]
    assert raw == b"".join(
        [
            wire.dump_request("rule", 1),
            *(wire.netconf_request(f, i, n) for n, (f, i) in enumerate(wire.NETCONF_QUERIES, 2)),
            wire.dump_request("link", 5),
        ]
    )
    assert wire._requests(("rule", wire.NETCONF, "link")) is wire._requests(
        ("rule", wire.NETCONF, "link")
    )


def test_batches_put_the_short_requests_with_the_first_long_dump() -> None:
    assert wire._batches(wire.FIRST_ROUND) == [
        ("rule", "neigh", "qdisc", wire.NETCONF, "link"),
        ("addr",),
        ("route",),
    ]
    assert wire._batches(("neigh", "rule")) == [("neigh", "rule")]
    assert wire._batches(("route",)) == [("route",)]


def test_any_interrupted_looks_at_every_message() -> None:
    flagged = msg(16, flags=consts.NLM_F_MULTI | consts.NLM_F_DUMP_INTR)
    assert wire._any_interrupted(msg(16) + msg(16) + flagged)
    assert not wire._any_interrupted(msg(16) + msg(16) + done())
    assert not wire._any_interrupted(msg(16, b"abc") + flagged[:-1])  # odd size: not a dump
    assert not wire._any_interrupted(HDR.pack(8, 16, 0, 0, 0) + flagged)  # stops at bad length


# --- exchange over a scripted socket --------------------------------------------------------
def test_exchange_keeps_errors_per_request_and_skips_strangers() -> None:
    sock = Script(
        msg(consts.RTM_NEWRULE, b"r", 1) + done(1),
        msg(consts.RTM_NEWRULE, b"?", 99) + done(99),  # another dump's late answer
        error(-95, 2),  # neigh refused
    )
    out = wire.exchange(sock, ["rule", "neigh", "rule"])  # type: ignore[arg-type]
    assert list(out) == ["rule", "neigh", "rule"][:2]
    assert out["rule"] == msg(consts.RTM_NEWRULE, b"r", 1) + done(1)
    err = out["neigh"]
    assert isinstance(err, wire.NetlinkError) and err.errno == 95


def test_exchange_ignores_a_refused_netconf_and_gives_empty_bytes() -> None:
    sock = Script(error(-95, 1), error(-95, 2), error(-95, 3))
    assert wire.exchange(sock, [wire.NETCONF]) == {wire.NETCONF: b""}  # type: ignore[arg-type]


def test_exchange_sees_an_interruption_in_a_later_part_and_on_a_lone_done() -> None:
    first = msg(consts.RTM_NEWLINK, b"1111", 1)
    later = msg(consts.RTM_NEWLINK, b"2222", 1) + msg(
        consts.RTM_NEWLINK, b"3333", 1, consts.NLM_F_MULTI | consts.NLM_F_DUMP_INTR
    )
    out = wire.exchange(Script(first, later, done(1)), ["link"])  # type: ignore[arg-type]
    assert isinstance(out["link"], wire.Interrupted) and out["link"] == first + later + done(1)
    lone = done(1, consts.NLM_F_MULTI | consts.NLM_F_DUMP_INTR)
    out = wire.exchange(Script(first, lone), ["link"])  # type: ignore[arg-type]
    assert isinstance(out["link"], wire.Interrupted)
    out = wire.exchange(Script(first, done(1)), ["link"])  # type: ignore[arg-type]
    assert not isinstance(out["link"], wire.Interrupted) and out["link"] == first + done(1)


def test_exchange_short_reply_is_an_error_for_every_request() -> None:
    with pytest.raises(wire.NetlinkError):
        wire.exchange(Script(b"\0" * 19), ["rule"])  # type: ignore[arg-type]
    got = wire.exchange_or_error(Script(b"\0" * 19), ["rule", "neigh"])  # type: ignore[arg-type]
    assert set(got) == {"rule", "neigh"} and all(isinstance(e, OSError) for e in got.values())


# --- namespace ids ---------------------------------------------------------------------------
def nsid_reply(seq: int, nsid: int) -> bytes:
    body = bytes(4) + wire.nla(consts.NETNSA_NSID, struct.pack("=i", nsid))
    return msg(consts.RTM_NEWNSID, body, seq, 0)


def test_parse_nsid_reads_the_id_and_treats_minus_one_and_errors_as_none() -> None:
    raw = nsid_reply(1, 7)
    assert wire.parse_nsid(consts.RTM_NEWNSID, raw, 16, len(raw)) == 7
    raw = nsid_reply(1, -1)
    assert wire.parse_nsid(consts.RTM_NEWNSID, raw, 16, len(raw)) is None
    assert wire.parse_nsid(consts.NLMSG_ERROR, raw, 16, len(raw)) is None
    other = msg(consts.RTM_NEWNSID, bytes(4) + wire.nla(2, b"\0" * 4) + wire.nla(1, b"\5\0\0\0"))
    assert wire.parse_nsid(consts.RTM_NEWNSID, other, 16, len(other)) == 5
    nested = msg(consts.RTM_NEWNSID, bytes(4) + wire.nla(0x8000 | 1, b"\3\0\0\0"))
    assert wire.parse_nsid(consts.RTM_NEWNSID, nested, 16, len(nested)) == 3
    bad = msg(consts.RTM_NEWNSID, bytes(4) + struct.pack("=HH", 2, 1) + b"\0" * 8)
    assert wire.parse_nsid(consts.RTM_NEWNSID, bad, 16, len(bad)) is None


@settings(deadline=None)
@given(st.lists(st.none() | st.integers(0, 1000), min_size=0, max_size=150), st.integers(1, 70))
def test_ask_nsids_in_batches_answers_each_fd_in_order(ids: list[int | None], batch: int) -> None:
    """The kernel answers every request of a send, in order, one datagram each; an
    fd it cannot use gets an error reply, a namespace without an id -1."""
    fds = list(range(100, 100 + len(ids)))

    class Kernel(Script):
        def send(self, data: bytes) -> int:
            super().send(data)
            for _t, _f, start, _e in wire.iter_messages(data):
                seq = struct.unpack_from("=I", data, start - 8)[0]
                fd = struct.unpack_from("=I", data, start + 8)[0]
                got = ids[fd - 100]
                self.replies.append(error(-9, seq) if got is None else nsid_reply(seq, got))
            self.replies.append(nsid_reply(12345, 1))  # someone else's seq: ignored
            return len(data)

    sock = Kernel()
    assert wire.ask_nsids(sock, fds, batch=batch) == ids  # type: ignore[arg-type]
    assert len(sock.sent) == -(-len(ids) // batch)


def test_ask_nsids_short_reply_is_an_error() -> None:
    with pytest.raises(wire.NetlinkError):
        wire.ask_nsids(Script(b"\0" * 12), [3])  # type: ignore[arg-type]
