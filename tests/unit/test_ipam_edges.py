"""The runtime's IPAM at its edges: what a user types, what /proc/net/route holds, and
the one-line errors both get.

Written against the mutants that survived the first mutation run of ipam.py
(``make mutation MODULES=ipam``): an error raised with no text, whitespace no
longer stripped, a route table read from its third line, a short line that ends
the walk, the last /24 of 10.127.0.0/16 never offered.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netlens_runtime import ipam
from netlens_runtime.errors import BadInput, Conflict

pytestmark = pytest.mark.unit

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"


def _route(dev: str, dest: str, mask: str) -> str:
    """One /proc/net/route line: addresses in the kernel's little-endian hex."""

    def hx(a: str) -> str:
        return f"{int.from_bytes(ipaddress.IPv4Address(a).packed, 'little'):08X}"

    return f"{dev}\t{hx(dest)}\t00000000\t0001\t0\t0\t0\t{hx(mask)}\t0\t0\t0"


def test_host_routes_reads_every_line_after_the_header(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "\n".join(
            [
                HEADER,
                _route("eth0", "192.0.2.0", "255.255.255.0"),  # first line after the header
                "garbage",  # too short: skipped, the walk goes on
                _route("eth0", "0.0.0.0", "0.0.0.0"),  # default route: left out
                _route("br0", "10.9.1.7", "255.255.0.0"),  # host bits set: still read
            ]
        )
        + "\n"
    )
    nets = ipam.host_routes(str(table))
    assert nets == [
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("10.9.0.0/16"),
    ]


def test_host_routes_of_a_missing_file_is_no_routes(tmp_path: Path) -> None:
    assert ipam.host_routes(str(tmp_path / "absent")) == []


def test_host_routes_defaults_to_the_kernels_table() -> None:
    real = ipam.host_routes("/proc/net/route")
    if not real:
        pytest.skip("this namespace has no IPv4 route but the default to compare with")
    assert ipam.host_routes() == real


def test_parse_address_strips_blanks_takes_integers_and_names_what_is_wrong() -> None:
    assert ipam.parse_address(" 10.0.0.1\n") == "10.0.0.1"
    assert ipam.parse_address(0x0A000001) == "10.0.0.1"
    with pytest.raises(BadInput, match=r"^'10\.0\.0' is not a valid IPv4 address$"):
        ipam.parse_address("10.0.0")
    with pytest.raises(BadInput, match=r"^'x' is not a valid IPv4 gateway$"):
        ipam.parse_address("x", "gateway")


def test_parse_subnet_errors_say_why() -> None:
    with pytest.raises(BadInput, match=r"^24 is not a subnet \(CIDR like 10\.50\.0\.0/24\)$"):
        ipam.parse_subnet(24)
    with pytest.raises(BadInput, match=r"^invalid subnet '10\.0\.0\.1/24': .*host bits set"):
        ipam.parse_subnet("10.0.0.1/24")
    with pytest.raises(BadInput, match=r"^subnet '10\.0\.0\.0/31' is too small: at most /30$"):
        ipam.parse_subnet("10.0.0.0/31")
    assert ipam.parse_subnet(" 10.0.0.0/30 ") == ipaddress.IPv4Network("10.0.0.0/30")


def test_gateway_and_host_address_errors_say_why() -> None:
    net = ipaddress.IPv4Network("10.0.0.0/24")
    with pytest.raises(BadInput, match=r"^a gateway needs a subnet$"):
        ipam.check_gateway_subnet(None, "10.0.0.1")
    ipam.check_gateway_subnet("10.0.0.0/24", "10.0.0.1")
    ipam.check_gateway_subnet(None, None)
    with pytest.raises(BadInput, match=r"^invalid gateway 'ten'$"):
        ipam.gateway_for(net, "ten")
    with pytest.raises(
        BadInput, match=r"^address 10\.0\.0\.255 is not a host address of 10\.0\.0\.0/24$"
    ):
        ipam.check_host_address(net, "10.0.0.255")
    assert ipam.check_host_address(net, "10.0.0.254") == "10.0.0.254"


def test_pick_subnet_offers_up_to_10_127_255_0_then_says_pass_subnet() -> None:
    taken = [("default", ipaddress.IPv4Network(ipam.DEFAULT_SUBNET))]
    taken.append(("wide", ipaddress.IPv4Network("10.64.0.0/11")))  # 10.64 - 10.95
    taken.append(("wider", ipaddress.IPv4Network("10.96.0.0/11")))  # 10.96 - 10.127
    assert ipam.pick_subnet(taken[:2]) == ipaddress.IPv4Network("10.96.0.0/24")
    last = [*taken[:2], ("most", ipaddress.IPv4Network("10.96.0.0/12"))]
    last += [("more", ipaddress.IPv4Network(f"10.{b}.0.0/16")) for b in range(112, 127)]
    last += [("all but one", n) for n in ipaddress.IPv4Network("10.127.0.0/16").subnets(8)][:-1]
    assert ipam.pick_subnet(last) == ipaddress.IPv4Network("10.127.255.0/24")
    with pytest.raises(Conflict, match=r"^no free private subnet left: pass --subnet$"):
        ipam.pick_subnet(taken)
