"""netlens capture without root: pcapng/pcap block structure, packet lines, TARGET parsing.

The files themselves are read back by Debian's tshark in
tests/integration/test_capture_live.py; here each block's layout is checked
against the pcapng specification field by field.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from netlens.analysis.capture import exclusion
from netlens.analysis.capture_print import line, summary
from netlens.analysis.capture_targets import node_targets, resolve_targets
from netlens.errors import UsageError
from netlens.kernel import pcapng
from netlens.kernel.consts import LINKTYPE_ETHERNET
from netlens.model.types import (
    BridgePortInfo,
    Container,
    IfRef,
    Interface,
    Netns,
    Server,
    Snapshot,
)

pytestmark = pytest.mark.unit


def _blocks(raw: bytes) -> list[tuple[int, bytes]]:
    """Walk blocks by their leading length, checking the trailing copy matches."""
    out = []
    off = 0
    while off < len(raw):
        kind, total = struct.unpack_from("=II", raw, off)
        assert total % 4 == 0 and total >= 12
        assert struct.unpack_from("=I", raw, off + total - 4)[0] == total
        out.append((kind, raw[off + 8 : off + total - 4]))
        off += total
    assert off == len(raw)
    return out


def _options(body: bytes) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    off = 0
    while off < len(body):
        code, length = struct.unpack_from("=HH", body, off)
        if code == 0:
            break
        opts[code] = body[off + 4 : off + 4 + length]
        off += 4 + length + (-length & 3)
    return opts


def test_pcapng_stream_layout() -> None:
    buf = io.BytesIO()
    w = pcapng.PcapngWriter(buf, [(1, 128, "web:eth0"), (101, 64, "db:tun0")], "netlens test")
    w.write([(5_000_000_123, 1, b"abcde", 60), (6_000_000_000, 0, b"x" * 8, 8)])
    w.close([(0, 10, 2), (1, 3, 0)], 7_000_000_000)
    blocks = _blocks(buf.getvalue())
    kinds = [k for k, _ in blocks]
    assert kinds == [pcapng.SHB_TYPE, 1, 1, 6, 6, 5, 5]
    magic, major, minor, length = struct.unpack_from("=IHHq", blocks[0][1])
    assert (magic, major, minor, length) == (0x1A2B3C4D, 1, 0, -1)
    assert _options(blocks[0][1][16:])[pcapng.SHB_USERAPPL] == b"netlens test"
    linktype, _res, snaplen = struct.unpack_from("=HHI", blocks[1][1])
    opts = _options(blocks[1][1][8:])
    assert (linktype, snaplen, opts[pcapng.IF_NAME]) == (1, 128, b"web:eth0")
    assert opts[pcapng.IF_TSRESOL] == b"\x09"
    assert struct.unpack_from("=HHI", blocks[2][1])[0] == 101
    ifid, hi, lo, cap, orig = struct.unpack_from("=IIIII", blocks[3][1])
    assert (ifid, (hi << 32) | lo, cap, orig) == (1, 5_000_000_123, 5, 60)
    assert blocks[3][1][20:25] == b"abcde" and blocks[3][1][25:28] == b"\0\0\0"
    isb = _options(blocks[5][1][12:])
    assert struct.unpack("=Q", isb[pcapng.ISB_IFRECV])[0] == 10
    assert struct.unpack("=Q", isb[pcapng.ISB_IFDROP])[0] == 2


def test_pcapng_padding_for_every_length() -> None:
    for n in range(9):
        blk = pcapng.enhanced_packet(0, 0, b"z" * n, n)
        assert len(blk) % 4 == 0
        assert _blocks(blk)[0][1][12:16] == struct.pack("=I", n)


def test_pcap_classic_layout() -> None:
    buf = io.BytesIO()
    w = pcapng.PcapWriter(buf, LINKTYPE_ETHERNET, 96)
    w.write([(1_500_000_007, 0, b"hello", 70)])
    raw = buf.getvalue()
    magic, vmaj, vmin, _zone, _sig, snap, lt = struct.unpack_from("=IHHiIII", raw)
    assert (magic, vmaj, vmin, snap, lt) == (0xA1B23C4D, 2, 4, 96, 1)
    assert struct.unpack_from("=IIII", raw, 24) == (1, 500_000_007, 5, 70)
    assert raw[40:] == b"hello"


def _frame_ipv4_udp() -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return eth + ip + struct.pack("!HHHH", 5353, 53, 12, 0)


def test_packet_line() -> None:
    assert summary(_frame_ipv4_udp(), LINKTYPE_ETHERNET) == ("10.0.0.1.5353", "10.0.0.2.53", "UDP")
    text = line(1_000_000_000_500_000, "web:eth0", _frame_ipv4_udp(), 46, LINKTYPE_ETHERNET)
    assert text.endswith(" web:eth0 10.0.0.1.5353 -> 10.0.0.2.53 UDP length 46")
    assert summary(b"\x01" * 12 + b"\x88\xcc" + b"\0" * 20, 1)[2] == "ethertype 0x88cc"
    assert summary(b"\x01" * 5, 1)[2] == "truncated"


def test_exclusion_clause() -> None:
    assert exclusion(("10.0.0.1", 22, "fe80::1%eth0", 5000)) == (
        "not (tcp and host 10.0.0.1 and host fe80::1 and port 22 and port 5000)"
    )


def _itf(ns: str, idx: int, name: str, kind: str, **kw: object) -> Interface:
    return Interface(netns=ns, ifindex=idx, name=name, kind=kind, **kw)  # type: ignore[arg-type]


def _snapshot() -> Snapshot:
    host = Netns(
        id="netns:1", inode=1, dev=4, is_host=True, name="host",
        interfaces=(
            _itf("netns:1", 1, "lo", "loopback"),
            _itf("netns:1", 2, "br0", "bridge"),
            _itf("netns:1", 3, "vethweb", "veth", master=2, port=BridgePortInfo(),
                 peer=IfRef("netns:2", 2)),
            _itf("netns:1", 4, "vethdb", "veth", master=2, port=BridgePortInfo(),
                 peer=IfRef("netns:3", 2)),
        ),
    )  # fmt: skip
    web = Netns(
        id="netns:2", inode=2, dev=4, is_host=False, name="web", container="docker:aaaa1111",
        interfaces=(_itf("netns:2", 1, "lo", "loopback"),
                    _itf("netns:2", 2, "eth0", "veth", peer=IfRef("netns:1", 3))),
    )  # fmt: skip
    vrf = Netns(
        id="netns:3", inode=3, dev=4, is_host=False, name="red", names=("red",),
        interfaces=(_itf("netns:3", 1, "lo", "loopback"), _itf("netns:3", 2, "up0", "veth"),
                    _itf("netns:3", 3, "up1", "veth")),
    )  # fmt: skip
    web_c = Container(id="docker:aaaa1111", engine="docker", name="web", netns="netns:2",
                      engine_id="aaaa1111")  # fmt: skip
    return Snapshot(
        server=Server(hostname="h", kernel="6", arch="x86_64", cpu_count=1, mem_total=1),
        namespaces=(host, web, vrf),
        containers=(web_c,),
    )


def labels(specs: list[str]) -> list[str]:
    return [t.label for t in resolve_targets(_snapshot(), specs)]


def test_targets_forms() -> None:
    assert labels(["web"]) == ["web:eth0"]
    assert labels(["aaaa"]) == ["web:eth0"]  # engine id prefix
    assert labels(["web:all"]) == ["web:lo", "web:eth0"]
    assert labels(["red:up1"]) == ["red:up1"]
    assert labels(["br0"]) == ["host:br0"]
    assert labels(["br0:ports"]) == ["host:vethweb", "host:vethdb"]
    assert labels(["web:eth0:pair"]) == ["web:eth0", "host:vethweb"]
    assert labels(["vethweb:pair"]) == ["host:vethweb", "web:eth0"]
    assert labels(["web", "web:eth0", "br0:ports"]) == ["web:eth0", "host:vethweb", "host:vethdb"]
    assert labels(["host:lo"]) == ["host:lo"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("wbe", "did you mean 'web'"),
        ("web:eht0", "has no interface 'eht0'; did you mean 'eth0'"),
        ("red", "has no eth0"),
        ("web:eth0:ports", "is a veth, not a bridge"),
        ("br0:pair", "is a bridge, not a veth"),
        ("red:up0:pair", "peer of veth"),
        ("nosuch:all", "no container or VRF matches 'nosuch'"),
        ("", "empty TARGET"),
    ],
)
def test_targets_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        resolve_targets(_snapshot(), [spec])


def test_node_targets_for_the_dashboard() -> None:
    snap = _snapshot()

    def node(key: str) -> list[str]:
        return [t.label for t in node_targets(snap, key)]

    assert node("netns:2/2") == ["web:eth0"]  # an interface key
    assert node("docker:aaaa1111") == ["web:eth0"]  # a container: its namespace, no lo
    assert node("netns:3") == ["red:up0", "red:up1"]
    assert node("netns:1") == ["host:br0", "host:vethweb", "host:vethdb"]
    # the command line gives the same labels, so both files read alike in Wireshark
    assert node("netns:1/3") == labels(["vethweb"])
    for gone in ("netns:9", "netns:2/9", "docker:nope"):
        with pytest.raises(UsageError, match="gone"):
            node_targets(snap, gone)


def test_dashboard_capture_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netlens.tui.capture import capture_path

    monkeypatch.setenv("NETLENS_CAPTURE_DIR", str(tmp_path))
    first = capture_path("web:eth0, db:eth0", now=0)
    assert first == tmp_path / "netlens-web_eth0_db_eth0-19700101-000000.pcapng"
    first.write_bytes(b"")
    assert capture_path("web:eth0, db:eth0", now=0).name.endswith("-000000-2.pcapng")
    hostile = capture_path("../../etc/\x1b[31mx:eth0", now=0)
    assert (
        hostile.parent == tmp_path
        and hostile.name == "netlens-etc_31mx_eth0-19700101-000000.pcapng"
    )
