"""The RTM_GETSTATS reader's two paths, its limits and its errors.

The reader has a fast path (one ``iter_unpack`` over a run of same-sized
messages) and a slow one (the attribute walk). When the fast path refuses a
buffer the slow one gives the same counters, so comparing outputs alone cannot
tell a broken fast path from a working one: mutation testing showed a dozen
such breakages surviving. These tests also check which path ran, every
condition that makes the fast path step aside, the walk's bounds on odd
attributes, and the exact errors a caller logs.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from test_stats_counters import FakeSock, done, nlmsg, stats_msg

from netlens.kernel.consts import (
    IFLA_STATS_LINK_64,
    NLMSG_ERROR,
    RTM_NEWSTATS,
)
from netlens.stats import counters
from netlens.stats.counters import (
    NetlinkDumpError,
    StatsReader,
    parse_messages,
)
from netlens.stats.rates import CounterTuple

pytestmark = pytest.mark.unit

SEQ = 11


def raw_stats(ifindex: int, attrs: bytes, seq: int = SEQ) -> bytes:
    """A RTM_NEWSTATS message with exactly ``attrs`` after the if_stats_msg."""
    return nlmsg(RTM_NEWSTATS, seq, struct.pack("=BBHII", 0, 0, 0, ifindex, 1) + attrs)


def nla(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def parse(buf: bytes) -> tuple[bool, dict[int, CounterTuple]]:
    out: dict[int, CounterTuple] = {}
    return parse_messages(buf, len(buf), SEQ, out), out


# --- the fast run ----------------------------------------------------------------------------
def test_fast_run_takes_the_whole_run_and_stops_at_the_first_odd_message() -> None:
    good = [stats_msg(i, [i] * 8, SEQ) for i in range(1, 4)]
    mlen = len(good[0])
    out: dict[int, CounterTuple] = {}
    assert counters._fast_run(b"".join(good), 0, 3 * mlen, mlen, SEQ, out) == 3 * mlen
    assert out == {1: (1,) * 8, 2: (2,) * 8, 3: (3,) * 8}
    odd_ones = {
        "length field": lambda m: struct.pack("=I", mlen + 4) + m[4:],
        "type": lambda m: m[:4] + struct.pack("=H", RTM_NEWSTATS + 1) + m[6:],
        "sequence": lambda m: m[:8] + struct.pack("=I", SEQ + 1) + m[12:],
        "first attribute": lambda m: m[:30] + struct.pack("=H", 7) + m[32:],
        "attribute length": lambda m: m[:28] + struct.pack("=H", 4 + 63) + m[30:],
    }
    for what, spoil in odd_ones.items():
        buf = good[0] + spoil(good[1]) + good[2]
        out = {}
        assert counters._fast_run(buf, 0, len(buf), mlen, SEQ, out) == mlen, what
        assert out == {1: (1,) * 8}, what
    # an offset into the buffer, and a buffer shorter than one message
    buf = b"\0" * 8 + b"".join(good)
    out = {}
    assert counters._fast_run(buf, 8, len(buf), mlen, SEQ, out) == 3 * mlen
    assert counters._fast_run(good[0][:-4], 0, mlen - 4, mlen, SEQ, out) == 0


def test_fast_struct_is_made_once_per_size_and_has_that_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(counters, "_fast_structs", {})
    a = counters._fast_struct(232)
    assert a.size == 232 and counters._fast_struct(232) is a
    b = counters._fast_struct(96)
    assert b.size == 96 and b is not a
    assert counters._fast_structs == {232: a, 96: b}


def test_parse_messages_uses_the_fast_run_only_for_aligned_full_sized_stats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = counters._fast_run

    def spy(*args: object) -> int:
        used = real(*args)  # type: ignore[arg-type]
        calls.append(used)
        return used

    monkeypatch.setattr(counters, "_fast_run", spy)
    good = stats_msg(1, [1] * 8, SEQ) + stats_msg(2, [2] * 8, SEQ) + done(SEQ)
    assert parse(good) == (True, {1: (1,) * 8, 2: (2,) * 8})
    assert calls and calls[0] == 2 * len(stats_msg(1, [1] * 8, SEQ))
    calls.clear()
    short = raw_stats(3, nla(IFLA_STATS_LINK_64, struct.pack("=8Q", *[3] * 8)))
    assert len(short) == counters._FAST_MIN  # the smallest the fast run takes
    assert parse(short + done(SEQ)) == (True, {3: (3,) * 8})
    assert calls == [len(short)]
    calls.clear()
    seven = raw_stats(3, nla(IFLA_STATS_LINK_64, struct.pack("=7Q", *[3] * 7)))
    assert parse(seven + done(SEQ)) == (True, {})  # too small for 8 counters: walked, skipped
    assert calls == []
    # a length that is not a multiple of 4 (98, padded to 100 on the wire)
    unaligned = raw_stats(3, nla(IFLA_STATS_LINK_64, struct.pack("=8Q", *[3] * 8)) + b"\0\0")
    assert struct.unpack_from("=I", unaligned)[0] == 98
    assert parse(unaligned + done(SEQ)) == (True, {3: (3,) * 8})
    assert calls == []


# --- the attribute walk ----------------------------------------------------------------------
def test_walk_reads_exactly_sized_stats_after_other_attributes() -> None:
    eight = struct.pack("=8Q", *range(1, 9))
    big_other = nla(2, b"\x07" * 80)  # not ours, although big enough to look like it
    empty = nla(9, b"")  # a zero-length attribute is skipped, not the end
    buf = raw_stats(4, big_other + empty + nla(IFLA_STATS_LINK_64, eight)) + done(SEQ)
    assert parse(buf) == (True, {4: tuple(range(1, 9))})


def test_walk_skips_short_stats_and_stops_at_a_broken_attribute() -> None:
    four = nla(IFLA_STATS_LINK_64, struct.pack("=4Q", 1, 2, 3, 4))  # fewer than 8 counters
    assert parse(raw_stats(5, four) + done(SEQ)) == (True, {})
    broken = struct.pack("=HH", 2, IFLA_STATS_LINK_64) + b"\0" * 4  # length below a header
    eight = nla(IFLA_STATS_LINK_64, struct.pack("=8Q", *[6] * 8))
    assert parse(raw_stats(6, broken + eight) + done(SEQ)) == (True, {})
    # a message without our attribute, last in the buffer: the walk stays inside it
    assert parse(raw_stats(7, nla(2, b"\0" * 8))) == (False, {})


def test_errors_say_what_failed() -> None:
    buf = struct.pack("=IHHII", 8, RTM_NEWSTATS, 0, SEQ, 0)
    with pytest.raises(NetlinkDumpError) as exc:
        parse(buf)
    assert exc.value.errno == errno.EPROTO and exc.value.strerror == "malformed netlink message"
    for code, name in ((errno.EPERM, "EPERM"), (4095, "4095")):
        buf = nlmsg(NLMSG_ERROR, SEQ, struct.pack("=i", -code) + b"\0" * 16)
        with pytest.raises(NetlinkDumpError) as exc:
            parse(buf)
        assert exc.value.errno == code and exc.value.strerror == f"RTM_GETSTATS: {name}"
    ack = nlmsg(NLMSG_ERROR, SEQ, struct.pack("=i", 0) + b"\0" * 16)
    assert parse(stats_msg(1, [1] * 8, SEQ) + ack) == (True, {1: (1,) * 8})


def test_request_is_the_whole_if_stats_msg() -> None:
    req = counters.build_request(3)
    assert req == struct.pack("=IHHIIBBHII", 28, 94, 0x301, 3, 0, 0, 0, 0, 0, 1)


# --- the reader ----------------------------------------------------------------------------
class ClosedSock(FakeSock):
    def recv_into(self, view: memoryview) -> int:
        return 0


def test_reader_reports_a_closed_socket_and_a_timeout_by_errno() -> None:
    with pytest.raises(NetlinkDumpError) as exc:
        StatsReader().dump(ClosedSock(lambda seq: []))  # type: ignore[arg-type]
    assert exc.value.errno == errno.EPIPE and exc.value.strerror == "netlink socket closed"
    err = counters._timed_out()
    assert err.errno == errno.ETIMEDOUT
    assert err.strerror == "RTM_GETSTATS: no answer (namespace going away?)"


def test_reader_fast_path_checks_every_message_of_the_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-buffer shortcut must refuse a buffer with any message of another
    type, sequence, size or first attribute: then the walk reads it."""
    walked: list[int] = []
    real = counters.parse_messages

    def spy(*args: object) -> bool:
        walked.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(counters, "parse_messages", spy)

    def reader(build: object) -> dict[int, CounterTuple]:
        return StatsReader().dump(FakeSock(build))  # type: ignore[arg-type,arg-type]

    ok = stats_msg(1, [1] * 8, 0)
    mlen = len(ok)

    def two(second: bytes) -> object:
        def build(seq: int) -> list[bytes]:
            first = stats_msg(1, [1] * 8, seq)
            # the second message gets this dump's sequence number (bytes 8-12)
            return [first + second[:8] + struct.pack("=I", seq) + second[12:] + done(seq)]

        return build

    assert reader(two(stats_msg(2, [2] * 8, 0))) == {1: (1,) * 8, 2: (2,) * 8}
    assert walked == []
    other_type = stats_msg(2, [2] * 8, 0)
    other_type = other_type[:4] + struct.pack("=H", 77) + other_type[6:]
    other_attr = stats_msg(2, [2] * 8, 0)
    other_attr = other_attr[:30] + struct.pack("=H", 9) + other_attr[32:]
    for spoiled in (other_type, other_attr):
        assert len(spoiled) == mlen
        walked.clear()
        assert reader(two(spoiled)) == {1: (1,) * 8}
        assert walked == [1]


def test_dump_counters_arms_the_receive_timeout() -> None:
    class Armed(FakeSock):
        opts: list[tuple[int, int, bytes]] = []

        def setsockopt(self, level: int, name: int, value: bytes) -> None:
            self.opts.append((level, name, value))

    sock = Armed(lambda seq: [stats_msg(4, [4] * 8, seq) + done(seq)])
    assert counters.dump_counters(sock) == {4: (4,) * 8}  # type: ignore[arg-type]
    assert sock.opts == [(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 1, 0))]


def test_arm_timeout_splits_seconds_and_microseconds() -> None:
    class Recorder:
        value = b""

        def setsockopt(self, _level: int, _name: int, value: bytes) -> None:
            self.value = value

    rec = Recorder()
    for seconds, want in ((0.25, (0, 250000)), (2.5, (2, 500000)), (0.999999, (0, 999999))):
        counters.arm_timeout(rec, seconds)  # type: ignore[arg-type]
        assert struct.unpack("@ll", rec.value) == want, seconds
    a, b = socket.socketpair()  # and the kernel takes that layout (rounded to its tick)
    try:
        counters.arm_timeout(a, 2.5)
        sec, usec = struct.unpack("@ll", a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
        assert sec == 2 and 490000 <= usec <= 510000
    finally:
        a.close()
        b.close()


def test_reader_shortcut_takes_minimal_messages_and_leaves_short_ones_to_the_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages of exactly the smallest stats size go through the shortcut; an error
    reply that happens to come with DONE in one buffer is walked and raised, not
    unpacked as if it were stats."""
    walked: list[int] = []
    real = counters.parse_messages

    def spy(*args: object) -> bool:
        walked.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(counters, "parse_messages", spy)

    def minimal(seq: int) -> list[bytes]:
        eight = nla(IFLA_STATS_LINK_64, struct.pack("=8Q", *[5] * 8))
        return [raw_stats(5, eight, seq) + raw_stats(6, eight, seq) + done(seq)]

    assert StatsReader().dump(FakeSock(minimal)) == {5: (5,) * 8, 6: (5,) * 8}  # type: ignore[arg-type]
    assert walked == []

    def refused(seq: int) -> list[bytes]:
        err = nlmsg(NLMSG_ERROR, seq, struct.pack("=i", -errno.EPERM) + b"\0" * 16)
        return [err + done(seq)]

    with pytest.raises(NetlinkDumpError) as exc:
        StatsReader().dump(FakeSock(refused))  # type: ignore[arg-type]
    assert exc.value.errno == errno.EPERM and walked == [1]
