"""walk_decode.c, the C half of decode.py: the same rows as Python, or a refusal.

netlens-walk decodes link, addr and route replies in C and sends the rows as
marshal bytes; the parent only runs marshal.loads. The contract checked here:
for every reply, either the C decoder declines (-1: the raw reply goes to the
parent and Python decodes it) or ``marshal.loads(output)`` equals
``decode.DECODERS[name](reply)`` exactly, types included. Kernel-shaped replies
must never be declined, or the fast path would silently not be used.

The decoder is compiled here into a shared library (ctypes: thousands of
hypothesis examples in a second); the real ``netlens-walk`` that the build step
made (setup.py, ``make setup``; its ``decode NAME`` mode) runs the recorded and
live replies. Both need a C compiler; without one the tests are skipped.
"""

from __future__ import annotations

import ctypes
import marshal
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DISCOVERY_FIXTURES, Lab, built_helper, setup_py, sh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlens.kernel import decode, walker, wire
from netlens.kernel.nsenter import netlink_socket, run_in_netns

unit = pytest.mark.unit

HERE = Path(decode.__file__).resolve().parent
SOURCE = HERE / "walk_decode.c"
CFLAGS = ["-std=c11", "-pedantic", "-O2", "-Wall", "-Wextra"]
NAMES = ("link", "addr", "route")
FIXTURES = sorted(
    p for p in DISCOVERY_FIXTURES.glob("**/*.bin") if p.stem in NAMES and "netlink" in p.parts
)


def examples(n: int) -> settings:
    """No deadline: a loaded CI machine must not make these flaky."""
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the two ways in -----------------------------------------------------------------------
class NlwBuf(ctypes.Structure):
    _fields_ = [  # the layout of struct nlw_buf
        ("data", ctypes.POINTER(ctypes.c_ubyte)),
        ("len", ctypes.c_size_t),
        ("cap", ctypes.c_size_t),
    ]


class CDecoder:
    """nlw_decode through ctypes (the library is built from walk_decode.c alone)."""

    def __init__(self, path: Path) -> None:
        self.dll = ctypes.CDLL(str(path))
        self.fn = self.dll.nlw_decode
        self.fn.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.POINTER(NlwBuf),
        ]
        self.fn.restype = ctypes.c_int
        libc = ctypes.CDLL(None)
        self.malloc = libc.malloc
        self.malloc.argtypes = [ctypes.c_size_t]
        self.malloc.restype = ctypes.c_void_p
        self.free = libc.free
        self.free.argtypes = [ctypes.c_void_p]
        self.free.restype = None

    def call(self, name: bytes, data: bytes, buf: NlwBuf) -> int:
        return int(self.fn(name, data, len(data), ctypes.byref(buf)))

    def release(self, buf: NlwBuf) -> None:
        self.free(ctypes.cast(buf.data, ctypes.c_void_p))

    def decode(self, name: str, data: bytes) -> bytes | None:
        """The marshal bytes, or None when the decoder declined."""
        buf = NlwBuf()
        try:
            rc = self.call(name.encode(), data, buf)
            if rc != 0:
                assert rc == -1 and buf.len == 0
                return None
            return ctypes.string_at(buf.data, buf.len)
        finally:
            self.release(buf)


def _compiler() -> list[str]:
    cc = setup_py().compiler()
    if cc is None:
        pytest.skip("no C compiler")
    return cc


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> CDecoder:
    cc = _compiler()
    out = tmp_path_factory.mktemp("walk_decode") / "libwalkdecode.so"
    res = subprocess.run(
        [*cc, *CFLAGS, "-shared", "-fPIC", "-o", str(out), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return CDecoder(out)


@pytest.fixture(scope="module")
def walk_exe() -> str:
    """netlens-walk as the build step made it (setup.py: walk.c with this decoder)."""
    (helper,) = [h for h in setup_py().HELPERS if h.name == walker.NAME]
    assert "netlens/kernel/walk_decode.c" in helper.sources, "setup.py no longer builds it"
    return built_helper(walker.NAME, walker.find())


def walk_decode(exe: str, name: str, data: bytes) -> bytes | None:
    """``netlens-walk decode NAME``: the marshal bytes, or None (exit 3: declined)."""
    res = subprocess.run([exe, "decode", name], input=data, capture_output=True, timeout=30)
    if res.returncode == 3:
        return None
    assert res.returncode == 0, res.stderr
    return res.stdout


def python_rows(name: str, data: bytes) -> list[Any] | Exception:
    """decode.py's rows, or the exception it raised.

    decode.py memoizes rows across calls (by message bytes minus a cache-info
    attribute of its kernel size); the C decoder has no memory, so each
    comparison starts from empty memos: a row can only come from the message
    at hand, on both sides.
    """
    decode._ADDR_ROWS.clear()
    decode._ROUTE_ROWS.clear()
    decode._ROUTE_EXACT.clear()
    try:
        return decode.DECODERS[name](data)
    except Exception as exc:  # any failure: C must have declined
        return exc


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 == 1.0 == True is not enough),
    and dicts in the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return same(list(a), list(b)) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def agree(out: bytes | None, name: str, data: bytes) -> bool:
    """The contract for one reply: True when C decoded it (to Python's rows),
    False when it declined."""
    want = python_rows(name, data)
    if out is None:
        return False
    assert not isinstance(want, Exception), f"C decoded a reply Python cannot: {want!r}"
    got = marshal.loads(out)
    assert same(got, want), (got, want)
    return True


# --- message builders --------------------------------------------------------------------
def msg(mtype: int, body: bytes, flags: int = 2) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, 1, 4242) + body


DONE = struct.pack("=IHHIIi", 20, 3, 2, 1, 4242, 0)
nla = wire.nla


def u8(v: int) -> bytes:
    return bytes([v])


def u16(v: int) -> bytes:
    return struct.pack("=H", v)


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def cs(text: str) -> bytes:
    return text.encode() + b"\0"


def ifinfo(index: int, *attrs: bytes, iftype: int = 1, flags: int = 0) -> bytes:
    return msg(16, struct.pack("=BxHIII", 0, iftype, index, flags, 0) + b"".join(attrs))


def ifaddr(fam: int, index: int, *attrs: bytes, plen: int = 24, scope: int = 0) -> bytes:
    return msg(20, struct.pack("=BBBBI", fam, plen, 0, scope, index) + b"".join(attrs))


def rtm(fam: int, *attrs: bytes, dlen: int = 0, table: int = 254, flags: int = 0) -> bytes:
    return msg(
        24, struct.pack("=BBBBBBBBI", fam, dlen, 0, 0, table, 3, 0, 1, flags) + b"".join(attrs)
    )


def rtnh(ifindex: int, hops: int, *attrs: bytes) -> bytes:
    body = b"".join(attrs)
    return struct.pack("=HBBi", 8 + len(body), 0, hops, ifindex) + body


# --- strategies: kernel-shaped replies ----------------------------------------------------
B8 = st.integers(0, 0xFF).map(u8)
B16 = st.integers(0, 0xFFFF).map(u16)
B32 = st.integers(0, 0xFFFFFFFF).map(u32)
I32 = st.integers(-(2**31), 2**31 - 1).map(lambda v: struct.pack("=i", v))
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
CSTR = TEXT.map(lambda t: t.encode() + b"\0")
IP = st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16)
ADDR = IP | st.binary(max_size=20)  # other lengths come out as hex
STATS = st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=25).map(
    lambda v: struct.pack(f"={len(v)}Q", *v)
) | st.binary(max_size=80)
NESTED_TYPE = st.integers(0, 0x3FFF) | st.integers(0, 0xFFFF)  # with NLA_F_* flag bits


@st.composite
def attr_set(draw: st.DrawFn, items: list[tuple[int, st.SearchStrategy[bytes]]]) -> bytes:
    """Some of ``items`` (type, payload), in any order, sometimes one twice (the
    last one counts), sometimes with NLA_F_NESTED set."""
    out = []
    for atype, payload in items:
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
            flag = draw(st.sampled_from([0, 0, 0, 0x8000]))
            out.append(nla(atype | flag, draw(payload)))
    extra = draw(st.lists(st.tuples(st.integers(60, 0x3FFF), st.binary(max_size=12)), max_size=2))
    out += [nla(t, p) for t, p in extra]
    return b"".join(draw(st.permutations(out)))


RANDOM_ATTRS = st.lists(st.tuples(NESTED_TYPE, st.binary(max_size=24)), max_size=8).map(
    lambda items: b"".join(nla(t, p) for t, p in items)
)
BRPORT = attr_set([(1, B8), (2, B16), (3, B32), (4, B8), (5, B8), (6, B8), (8, B8), (9, B8)])
KIND = st.sampled_from(["veth", "bridge", "vxlan", "macvlan", "bond", "vlan", ""]).map(cs) | CSTR
SLAVE = st.sampled_from(["bridge"] * 3 + ["bond", "vrf", "bridgeX", "brid"]).map(cs) | CSTR


@st.composite
def linkinfo(draw: st.DrawFn) -> bytes:
    slave = draw(SLAVE)
    sdata = BRPORT if slave == b"bridge\0" else RANDOM_ATTRS
    return draw(attr_set([(1, KIND), (2, RANDOM_ATTRS), (4, st.just(slave)), (5, sdata)]))


LINK_ATTRS = attr_set(
    [
        (1, st.binary(min_size=6, max_size=6) | st.binary(max_size=20)),
        (3, CSTR),
        (4, B32),
        (5, B32),
        (10, B32),
        (16, B8),
        (18, linkinfo()),
        (20, CSTR),
        (23, STATS),
        (33, B8),
        (37, I32),
        (56, CSTR),
    ]
)


@st.composite
def link_msg(draw: st.DrawFn) -> bytes:
    head = struct.pack(
        "=BxHIII",
        draw(st.integers(0, 255)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
    )
    return msg(16, head + draw(LINK_ATTRS))


ADDR_ATTRS = attr_set(
    [
        (1, ADDR),
        (2, ADDR),
        (3, CSTR),
        (4, ADDR),
        (6, st.binary(min_size=16, max_size=16)),
        (8, B32),
        (9, B32),
    ]
)


@st.composite
def addr_msg(draw: st.DrawFn) -> bytes:
    fam = draw(st.sampled_from([2, 10, 2, 10, 0, 7]))
    b = st.integers(0, 255)
    head = struct.pack("=BBBBI", fam, draw(b), draw(b), draw(b), draw(st.integers(0, 2**32 - 1)))
    return msg(20, head + draw(ADDR_ATTRS))


@st.composite
def multipath(draw: st.DrawFn) -> bytes:
    hops = draw(st.lists(st.tuples(st.integers(0, 255), I32, st.none() | IP), max_size=4))
    out = b""
    for weight, ifindex, gw in hops:
        attrs = draw(attr_set([(5, st.just(gw))])) if gw is not None else b""
        body = ifindex + attrs
        out += struct.pack("=HBB", 8 + len(attrs), 0, weight) + body
    return out


ROUTE_ATTRS = attr_set(
    [
        (1, ADDR),
        (2, IP),
        (4, B32),
        (5, ADDR),
        (6, B32),
        (7, ADDR),
        (8, RANDOM_ATTRS),
        (9, multipath()),
        (12, st.binary(min_size=32, max_size=32)),
        (15, B32),
        (20, B8),
    ]
)


@st.composite
def route_msg(draw: st.DrawFn) -> bytes:
    fam = draw(st.sampled_from([2, 10, 2, 10, 0, 7]))
    b = st.integers(0, 255)
    head = struct.pack(
        "=BBBBBBBBI",
        fam,
        *(draw(b) for _ in range(7)),
        draw(st.sampled_from([0, 0, 0x200, 0x100]) | st.integers(0, 2**32 - 1)),
    )
    return msg(24, head + draw(ROUTE_ATTRS))


OTHER = st.tuples(st.sampled_from([1, 2, 17, 21, 25, 28]), st.binary(max_size=24)).map(
    lambda tb: msg(tb[0], tb[1] + b"\0" * (-len(tb[1]) % 4))
)
MESSAGES = {"link": link_msg(), "addr": addr_msg(), "route": route_msg()}


@st.composite
def kernel_reply(draw: st.DrawFn, name: str) -> bytes:
    """A dump as the kernel shapes it: whole messages, padded attributes, DONE last."""
    parts = draw(st.lists(MESSAGES[name] | OTHER, max_size=6))
    return b"".join(parts) + (DONE if draw(st.booleans()) else b"")


@st.composite
def reply_and_name(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    return name, draw(kernel_reply(name))


# --- strategies: anything -------------------------------------------------------------------
INTERESTING = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 15, 16, 18, 20, 23, 33, 37, 56])


@st.composite
def soup_attr(draw: st.DrawFn) -> bytes:
    """An attribute whose length may lie (short, long, below 4) and whose padding may be missing."""
    atype = draw(INTERESTING | st.integers(0, 0xFFFF))
    payload = draw(st.binary(max_size=24))
    alen = 4 + len(payload) + draw(st.sampled_from([0, 0, 0, 0, -1, -3, -4, -6, 1, 4, 9]))
    out = struct.pack("=HH", max(0, alen) & 0xFFFF, atype) + payload
    return out + (b"\0" * (-len(out) % 4) if draw(st.booleans()) else b"")


@st.composite
def soup_reply(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        mtype = draw(st.sampled_from([16, 20, 24, 3, 2, 1]) | st.integers(0, 0xFFFF))
        head = draw(st.binary(max_size=20))
        if draw(st.booleans()):
            head = bytes([draw(st.sampled_from([2, 10]))]) + head
        body = head + b"".join(draw(st.lists(soup_attr(), max_size=8)))
        ln = 16 + len(body) + draw(st.sampled_from([0, 0, 0, -1, -2, 1, 3, 4, -20]))
        parts.append(struct.pack("=IHHII", max(0, ln), mtype, 2, 1, 0) + body)
    data = b"".join(parts)
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A kernel-shaped reply with some bytes overwritten, inserted or cut."""
    name, data = draw(reply_and_name())
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "set16", "insert", "cut", "truncate"]))
        pos = draw(st.integers(0, len(buf)))
        if op == "set" and pos < len(buf):
            buf[pos] = draw(st.integers(0, 255))
        elif op == "set16" and pos + 2 <= len(buf):
            buf[pos : pos + 2] = u16(draw(st.integers(0, 0xFFFF)))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del buf[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buf[pos:]
    return name, bytes(buf)


# --- tests: recorded replies ------------------------------------------------------------------
@unit
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(DISCOVERY_FIXTURES)))
def test_fixture_replies_decode_in_c(path: Path, lib: CDecoder, walk_exe: str) -> None:
    data = path.read_bytes()
    assert agree(lib.decode(path.stem, data), path.stem, data), "declined a recorded reply"
    assert agree(walk_decode(walk_exe, path.stem, data), path.stem, data)


@unit
def test_fixtures_cover_the_kinds() -> None:
    """The recorded replies hold what the fast path must handle (else the test
    above would prove little)."""
    rows: dict[str, list[Any]] = {name: [] for name in NAMES}
    for path in FIXTURES:
        rows[path.stem] += decode.DECODERS[path.stem](path.read_bytes())
    kinds = {r[14] for r in rows["link"]}
    assert {"veth", "bridge", "vlan", "bond", "vrf", "dummy", "macvlan"} <= kinds, kinds
    assert any(r[17] is not None for r in rows["link"]), "no bridge port"
    assert any(r[1] == 6 for r in rows["addr"]) and any(r[6] for r in rows["addr"])
    assert any(r[10] for r in rows["route"]), "no multipath route"
    assert any(r[4] for r in rows["route"]), "no gateway"


# --- tests: generated replies -----------------------------------------------------------------
@unit
@examples(150)
@given(reply_and_name())
def test_kernel_shaped_replies_never_fall_back(lib: CDecoder, case: tuple[str, bytes]) -> None:
    name, data = case
    assert agree(lib.decode(name, data), name, data), "declined a kernel-shaped reply"


@unit
@examples(250)
@given(st.sampled_from(NAMES), soup_reply())
def test_attribute_soup_gives_python_rows_or_falls_back(
    lib: CDecoder, name: str, data: bytes
) -> None:
    agree(lib.decode(name, data), name, data)


@unit
@examples(250)
@given(mutated())
def test_damaged_replies_give_python_rows_or_fall_back(
    lib: CDecoder, case: tuple[str, bytes]
) -> None:
    name, data = case
    agree(lib.decode(name, data), name, data)


@unit
@examples(200)
@given(st.binary(max_size=12), st.sampled_from([3, 20, 56]))
def test_strings_fall_back_exactly_when_not_utf8(lib: CDecoder, raw: bytes, atype: int) -> None:
    data = ifinfo(3, nla(atype, raw)) + DONE
    try:
        raw.split(b"\0", 1)[0].decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert agree(lib.decode("link", data), "link", data) is valid


# --- tests: chosen edge cases -----------------------------------------------------------------
BAD_UTF8 = [
    b"\xff",
    b"\x80x",
    b"\xc0\x80",  # overlong NUL
    b"\xc1\xbf",  # overlong
    b"\xe0\x80\xaf",  # overlong
    b"\xed\xa0\x80",  # a surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"e\xe2\x82",  # cut short
]


@unit
@pytest.mark.parametrize("raw", BAD_UTF8)
def test_invalid_utf8_anywhere_falls_back(lib: CDecoder, raw: bytes) -> None:
    cases = [
        ("link", ifinfo(2, nla(3, raw + b"\0"))),
        ("link", ifinfo(2, nla(3, b"ok\0"), nla(20, raw))),
        ("link", ifinfo(2, nla(18, nla(1, raw + b"\0")))),
        ("link", ifinfo(2, nla(18, nla(4, raw)))),
        ("addr", ifaddr(2, 2, nla(2, bytes(4)), nla(3, raw + b"\0"))),
    ]
    for name, data in cases:
        assert lib.decode(name, data + DONE) is None, (name, data)
        assert "\ufffd" in repr(python_rows(name, data + DONE))


@unit
def test_valid_utf8_and_bytes_after_nul_decode(lib: CDecoder) -> None:
    names = ["eth-ü", "网卡", "🦀x", "\ufffd", "a" * 300, ""]
    data = b"".join(ifinfo(i + 1, nla(3, n.encode() + b"\0\xff\xfe")) for i, n in enumerate(names))
    out = lib.decode("link", data + DONE)
    assert agree(out, "link", data + DONE)
    assert [r[3] for r in marshal.loads(out or b"")] == names


@unit
def test_short_attributes_fall_back(lib: CDecoder) -> None:
    """Python would read past these attributes (into the next bytes, or fail)."""
    base = nla(3, b"x\0")
    for bad in [
        nla(4, b"\1\0"),  # mtu: 2 of 4 bytes
        nla(16, b""),  # operstate without its byte
        nla(33, b""),
        nla(10, b"\1\0\0"),
        nla(5, b""),
        nla(37, b"\0"),
        nla(18, nla(4, b"bridge\0") + nla(5, nla(2, b"\1"))),  # brport priority: 1 of 2 bytes
        nla(18, nla(4, b"bridge\0") + nla(5, nla(3, b"\1\0"))),
        nla(18, nla(4, b"bridge\0") + nla(5, nla(8, b""))),
    ]:
        data = ifinfo(7, base, bad, nla(3, b"y\0")) + DONE
        assert lib.decode("link", data) is None, bad
        agree(None, "link", data)
    route = rtm(2, nla(15, b"\1\0")) + DONE
    assert lib.decode("route", route) is None


@unit
def test_harmless_odd_sizes_still_decode(lib: CDecoder) -> None:
    """Sizes Python reads as designed: a MAC of other than 6 bytes (None), short
    stats (None), an 8-byte address (hex), a reply not a multiple of 4 long."""
    link = ifinfo(4, nla(1, bytes(20)), nla(23, bytes(60)), nla(3, b"ib0\0"))
    addr = ifaddr(10, 4, nla(1, bytes(range(8))), nla(4, b""))
    for name, data in [
        ("link", link + DONE),
        ("addr", addr + DONE),
        ("link", link + DONE + b"\0"),
        ("addr", addr + b"\0\0\0"),
    ]:
        assert agree(lib.decode(name, data), name, data), data


@unit
def test_links_run_past_the_reply_fall_back(lib: CDecoder) -> None:
    good = ifinfo(1, nla(3, b"lo\0"))
    for data in [
        good[:-4],  # the message's length runs past the reply
        ifinfo(1, struct.pack("=HH", 12, 3) + b"lo\0\0"),  # attribute past the message
        ifinfo(1, nla(18, struct.pack("=HH", 12, 1) + b"ab\0\0")),  # nested past its parent
        msg(16, b"\0" * 8),  # ifinfomsg cut short
        msg(20, b"\2\0"),
        msg(24, b"\2" + bytes(7)),
        # a nexthop longer than its RTA_MULTIPATH: Python would walk the next attribute
        rtm(2, nla(9, struct.pack("=HBBi", 16, 0, 0, 3)), nla(5, bytes(4))),
    ]:
        name = NAMES[(struct.unpack_from("=H", data, 4)[0] - 16) // 4]
        assert lib.decode(name, data) is None, data
        agree(None, name, data)


@unit
def test_bridge_port_defaults(lib: CDecoder) -> None:
    """_port's defaults for absent IFLA_BRPORT_* (and no port unless the slave kind
    is exactly "bridge" with slave data)."""
    cases = {
        nla(18, nla(4, b"bridge\0") + nla(5, b"")): (3, -1, -1, 2, 2, 2),
        nla(18, nla(4, b"bridge\0") + nla(5, nla(3, u32(2**32 - 1)))): (3, -1, 2**32 - 1, 2, 2, 2),
        nla(18, nla(4, b"bridge\0")): None,
        nla(18, nla(4, b"bridge0\0") + nla(5, b"")): None,
        nla(18, nla(4, b"bridge\0x") + nla(5, b"")): (3, -1, -1, 2, 2, 2),
    }
    for info, port in cases.items():
        data = ifinfo(3, info) + DONE
        assert agree(lib.decode("link", data), "link", data)
        assert marshal.loads(lib.decode("link", data) or b"")[0][17] == port


@unit
def test_wrong_size_cacheinfo_falls_back(lib: CDecoder) -> None:
    """decode.py's memo cuts a fixed-size cache-info out of the key; another size
    could give another message's row, so C declines it."""
    hdr = struct.pack("=BBBBI", 2, 24, 0, 0, 5)
    odd = hdr + nla(2, bytes([10, 0, 0, 1])) + struct.pack("=HH", 8, 6) + bytes(4)
    odd += nla(3, b"evil\0")
    fine = hdr + nla(2, bytes([10, 0, 0, 1])) + nla(6, bytes(16))
    assert lib.decode("addr", msg(20, odd)) is None
    assert agree(lib.decode("addr", msg(20, fine)), "addr", msg(20, fine))
    route = rtm(10, nla(12, bytes(28)))
    assert lib.decode("route", route) is None
    assert agree(
        lib.decode("route", rtm(10, nla(12, bytes(32)))), "route", rtm(10, nla(12, bytes(32)))
    )


@unit
def test_big_values_and_sizes(lib: CDecoder) -> None:
    """Ints past int32 (marshal longs), negative ids, long strings and hex, more
    than 255 rows and nexthops (int32 counts)."""
    top = 2**32 - 1
    stats = struct.pack("=8Q", 2**64 - 1, 2**63, 2**32, 2**31, 2**31 - 1, 2**15, 0, 1)
    links = [
        ifinfo(
            top,
            nla(4, u32(top)),
            nla(37, struct.pack("=i", -(2**31))),
            nla(10, u32(2**31)),
            nla(5, u32(0)),
            nla(23, stats + bytes(100)),
            nla(20, b"z" * 5000 + b"\0"),
            nla(18, nla(1, b"vxlan\0") + nla(2, nla(1, u32(7)) + nla(0x8001, b"") + nla(1, b"x"))),
            iftype=0xFFFF,
            flags=top,
        ),
        *(ifinfo(i, nla(3, f"v{i}".encode() + b"\0")) for i in range(300)),
    ]
    hops = b"".join(rtnh(-5 if i % 2 else i, i & 255, nla(5, bytes(16))) for i in range(300))
    routes = [
        rtm(10, nla(15, u32(3_000_000_000)), nla(9, hops), nla(1, bytes(range(40))), dlen=255),
        rtm(2, nla(6, u32(top)), dlen=17),
        rtm(10, dlen=3),
    ]
    addrs = [ifaddr(10, top, nla(1, bytes(range(200))), nla(4, bytes(16)), nla(3, b"\0"))]
    for name, parts in [("link", links), ("route", routes), ("addr", addrs)]:
        data = b"".join(parts) + DONE
        assert agree(lib.decode(name, data), name, data), name


@unit
def test_output_buffer_appends_and_is_restored_on_refusal(lib: CDecoder) -> None:
    good = ifinfo(2, nla(3, b"eth0\0")) + DONE
    bad = ifinfo(2, nla(3, b"\xff\0")) + DONE
    buf = NlwBuf()
    ptr = lib.malloc(3)
    ctypes.memmove(ptr, b"abc", 3)
    buf.data = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_ubyte))
    buf.len, buf.cap = 3, 3
    try:
        assert lib.call(b"link", bad, buf) == -1 and buf.len == 3
        assert lib.call(b"nope", good, buf) == -1 and buf.len == 3
        assert lib.call(b"link", good, buf) == 0
        out = ctypes.string_at(buf.data, buf.len)
        assert out[:3] == b"abc" and marshal.loads(out[3:]) == decode.decode_links(good)
        assert buf.cap >= buf.len
        n = buf.len
        assert lib.call(b"link", bad, buf) == -1 and buf.len == n
        assert ctypes.string_at(buf.data, n) == out
    finally:
        lib.release(buf)
    assert lib.decode("link", b"") == b"[\0\0\0\0"  # an empty list, no FLAG_REF


@unit
def test_builds_without_warnings(tmp_path: Path) -> None:
    cc = _compiler()
    res = subprocess.run(
        [*cc, *CFLAGS, "-c", "-o", str(tmp_path / "wd.o"), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


# --- tests: live replies ------------------------------------------------------------------------
LIVE_SETUP = [
    "link add br0 type bridge",
    "link set br0 up",
    "link add va type veth peer name vb",
    "link set vb master br0",
    "link set va up",
    "link set vb up",
    "link set dev va alias 'uplink to rack'",
    "link add vx0 type vxlan id 42 dstport 4789 local 10.1.0.1 dev va",
    "link add link va name mv0 type macvlan mode bridge",
    "addr add 10.1.0.1/24 broadcast 10.1.0.255 dev va label va:x",
    "addr add fd00:1::1/64 dev va nodad",
    "addr add 10.2.0.1/24 dev br0",
    "route add 10.9.0.0/16 via 10.1.0.2 metric 50",
    "route add 10.8.0.0/16 nexthop via 10.1.0.2 weight 1 nexthop via 10.2.0.2 weight 3",
    "-6 route add fd00:9::/48 nexthop via fd00:1::2 dev va nexthop via fd00:1::3 dev va",
    "route add 10.7.0.0/16 via 10.1.0.3 table 100 src 10.1.0.1",
    "-6 route add fd00:7::/48 via fd00:1::9 dev va table 3000000000",
]


def _replies(ns: str) -> Iterator[tuple[str, bytes]]:
    (sock,) = run_in_netns([f"/run/netns/{ns}"], lambda _t: netlink_socket())
    assert not isinstance(sock, OSError), sock
    try:
        for name in NAMES:
            yield name, wire.dump(sock, name)
    finally:
        sock.close()


@pytest.mark.integration
def test_live_replies_decode_in_c(lab: Lab, lib: CDecoder, walk_exe: str) -> None:
    ns = lab.add_netns("wd")
    for cmd in LIVE_SETUP:
        sh(f"ip -n {ns} {cmd}")
    rows: dict[str, list[Any]] = {}
    for name, data in _replies(ns):
        assert agree(lib.decode(name, data), name, data), f"declined the live {name} reply"
        assert agree(walk_decode(walk_exe, name, data), name, data)
        rows[name] = marshal.loads(lib.decode(name, data) or b"")
    by_name = {r[3]: r for r in rows["link"]}
    assert by_name["vb"][16] == "bridge" and by_name["vb"][17] is not None
    assert by_name["va"][8] == "uplink to rack"
    assert {by_name[n][14] for n in ("br0", "vx0", "mv0", "va")} == {
        "bridge",
        "vxlan",
        "macvlan",
        "veth",
    }
    assert isinstance(by_name["vx0"][15], dict) and 1 in by_name["vx0"][15]
    assert (4, 4, "10.1.0.1", 24, 0, "10.1.0.255", "va:x") in rows["addr"]
    assert any(r[1] == 6 and r[2] == "fd00:1::1" for r in rows["addr"])
    routes = {(r[1], r[2]): r for r in rows["route"]}
    assert routes[(254, "10.9.0.0/16")][4] == "10.1.0.2" and routes[(254, "10.9.0.0/16")][8] == 50
    assert [h[2] for h in routes[(254, "10.8.0.0/16")][10]] == [1, 3]
    assert len(routes[(254, "fd00:9::/48")][10]) == 2
    assert routes[(100, "10.7.0.0/16")][9] == "10.1.0.1"
    assert routes[(3_000_000_000, "fd00:7::/48")][4] == "fd00:1::9"
