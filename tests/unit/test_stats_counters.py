"""The RTM_GETSTATS parser on hand-built netlink messages (layout per rtnetlink(7))."""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable

import pytest

from netlens.kernel.consts import (
    IFLA_STATS_LINK_64,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_GETSTATS,
    RTM_NEWSTATS,
)
from netlens.stats import counters
from netlens.stats.counters import (
    NetlinkDumpError,
    StatsReader,
    build_request,
    parse_messages,
)
from netlens.stats.rates import CounterTuple

pytestmark = pytest.mark.unit

N_STATS64 = 25  # rtnl_link_stats64 on kernel 6.18 (rx_otherhost_dropped is the 25th)


def nlmsg(mtype: int, seq: int, body: bytes) -> bytes:
    msg = struct.pack("=IHHII", 16 + len(body), mtype, 2, seq, 0) + body
    return msg + b"\0" * ((4 - len(msg) % 4) % 4)


def stats_msg(
    ifindex: int,
    values: list[int],
    seq: int,
    extra_attr_first: bool = False,
    n_stats: int = N_STATS64,
) -> bytes:
    body = struct.pack("=BBHII", 0, 0, 0, ifindex, 1)
    stats = struct.pack(f"={n_stats}Q", *(values + [0] * (n_stats - len(values))))
    if extra_attr_first:
        other = struct.pack("=HH", 4 + 8, 7) + b"\x01" * 8  # an attribute we did not ask for
        body += other
    body += struct.pack("=HH", 4 + len(stats), IFLA_STATS_LINK_64) + stats
    return nlmsg(RTM_NEWSTATS, seq, body)


def done(seq: int) -> bytes:
    return nlmsg(NLMSG_DONE, seq, struct.pack("=i", 0))


def test_request_layout() -> None:
    req = build_request(7)
    length, mtype, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, mtype, seq, pid) == (len(req), RTM_GETSTATS, 7, 0)
    assert flags & 0x300 == 0x300  # NLM_F_DUMP
    family, _p1, _p2, ifindex, mask = struct.unpack_from("=BBHII", req, 16)
    assert (family, ifindex, mask) == (0, 0, 1 << (IFLA_STATS_LINK_64 - 1))


def test_parses_kernel_order_and_stops_at_done() -> None:
    # kernel order: rx_packets tx_packets rx_bytes tx_bytes rx_errors tx_errors rx_dropped ...
    a = [1, 2, 3000, 4000, 5, 6, 7, 8]
    b = [10, 20, 30, 40, 0, 0, 0, 0]
    buf = stats_msg(1, a, 9) + stats_msg(42, b, 9, extra_attr_first=True) + done(9)
    out: dict[int, CounterTuple] = {}
    assert parse_messages(buf, len(buf), 9, out) is True
    assert out == {1: tuple(a), 42: tuple(b)}


def test_other_sequence_numbers_are_skipped() -> None:
    stale = stats_msg(3, [9] * 8, 4) + done(4)
    fresh = stats_msg(3, [1] * 8, 5)
    buf = stale + fresh
    out: dict[int, CounterTuple] = {}
    assert parse_messages(buf, len(buf), 5, out) is False  # no DONE of seq 5 yet
    assert out == {3: (1,) * 8}


def test_error_answer_raises() -> None:
    buf = nlmsg(NLMSG_ERROR, 3, struct.pack("=i", -errno.EPERM) + b"\0" * 16)
    with pytest.raises(NetlinkDumpError) as exc:
        parse_messages(buf, len(buf), 3, {})
    assert exc.value.errno == errno.EPERM


def test_malformed_length_raises() -> None:
    buf = struct.pack("=IHHII", 8, RTM_NEWSTATS, 0, 1, 0)
    with pytest.raises(NetlinkDumpError):
        parse_messages(buf, len(buf), 1, {})


def test_truncated_buffer_length_is_respected() -> None:
    """Only ``length`` bytes of the (reused, larger) buffer are valid."""
    msg = stats_msg(5, [1] * 8, 2)
    buf = bytearray(msg + stats_msg(6, [2] * 8, 2) + done(2))
    out: dict[int, CounterTuple] = {}
    assert parse_messages(buf, len(msg), 2, out) is False
    assert list(out) == [5]


def test_fast_and_slow_paths_agree_on_mixed_sizes() -> None:
    """A run of same-sized messages is unpacked in one go; a message of another
    size (an older kernel's shorter rtnl_link_stats64) or with another first
    attribute ends the run and is parsed the slow way."""
    msgs = [stats_msg(i, [i, i + 1, i * 100, i * 200, 0, 0, 1, 2], 6) for i in range(1, 5)]
    msgs.append(stats_msg(9, [9, 9, 900, 900, 0, 0, 0, 0], 6, n_stats=24))  # shorter struct
    msgs.append(stats_msg(10, [1] * 8, 6, extra_attr_first=True))
    msgs.append(stats_msg(11, [2] * 8, 6))
    buf = b"".join(msgs) + done(6)
    out: dict[int, CounterTuple] = {}
    assert parse_messages(buf, len(buf), 6, out) is True
    assert sorted(out) == [1, 2, 3, 4, 9, 10, 11]
    assert out[3] == (3, 4, 300, 600, 0, 0, 1, 2)
    assert out[9][2] == 900 and out[10] == (1,) * 8 and out[11] == (2,) * 8


class FakeSock:
    """Answers a dump request with pre-built recv chunks (one chunk per recv)."""

    def __init__(self, make_chunks: Callable[[int], list[bytes]]) -> None:
        self.make_chunks = make_chunks
        self.chunks: list[bytes] = []

    def send(self, data: bytes) -> int:
        seq = struct.unpack_from("=IHHII", data)[3]
        self.chunks = self.make_chunks(seq)
        return len(data)

    def recv_into(self, view: memoryview) -> int:
        chunk = self.chunks.pop(0)
        view[: len(chunk)] = chunk
        return len(chunk)


def test_reader_follows_a_dump_over_several_recvs() -> None:
    """A namespace with many links answers in several buffers (1008 links: 9 here)."""

    def chunks(seq: int) -> list[bytes]:
        stale = stats_msg(99, [5] * 8, seq - 1) + done(seq - 1)  # an abandoned dump
        first = b"".join(stats_msg(i, [i] * 8, seq) for i in range(1, 4))
        second = b"".join(stats_msg(i, [i] * 8, seq) for i in range(4, 9))
        last = stats_msg(9, [9] * 8, seq) + done(seq)
        return [stale, first, second, last]

    sock = FakeSock(chunks)
    got = StatsReader().dump(sock)  # type: ignore[arg-type]
    assert sorted(got) == list(range(1, 10))
    assert got[7] == (7,) * 8
    assert sock.chunks == []  # read up to DONE, not further


def test_reader_single_buffer_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """One buffer of same-sized messages and DONE is unpacked without the message
    walk (parse_messages is never called) and gives what the walk would."""
    sock = FakeSock(
        lambda seq: [stats_msg(1, [1] * 8, seq) + stats_msg(2, [2] * 8, seq) + done(seq)]
    )
    walked: list[int] = []
    real = counters.parse_messages

    def spy(*args: object) -> bool:
        walked.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(counters, "parse_messages", spy)
    assert StatsReader().dump(sock) == {1: (1,) * 8, 2: (2,) * 8}  # type: ignore[arg-type]
    assert walked == []
    # a stale message of another seq in the same buffer: the walk takes over
    sock = FakeSock(
        lambda seq: [stats_msg(7, [7] * 8, seq - 1) + stats_msg(1, [1] * 8, seq) + done(seq)]
    )
    assert StatsReader().dump(sock) == {1: (1,) * 8}  # type: ignore[arg-type]
    assert walked == [1]
