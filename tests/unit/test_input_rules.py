"""One validator per input rule: the runtime's rules, and ``lab check`` agreeing with them.

Each rule lives once (netlens_runtime.names, netlens_runtime.ipam); ``netlens run``,
``network create`` and the lab loader all call it. These tests pin the rules
themselves (with the boundary values a mutant would move), check that a lab file
is refused with file and line exactly where the runtime would refuse the same
value, and property-test the size parser and IPAM.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlens_runtime import ipam, names
from netlens_runtime.errors import BadInput, Conflict
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.unit

MIB = 1 << 20


# --- sizes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4m", 4 * MIB),  # exactly the minimum is accepted
        ("4194304", 4 * MIB),
        ("4194304b", 4 * MIB),  # b is bytes, never bits
        ("4194304B", 4 * MIB),
        ("64mb", 64 * MIB),
        ("64MB", 64 * MIB),
        ("64mi", 64 * MIB),
        ("64MiB", 64 * MIB),
        ("64 m", 64 * MIB),
        ("1.5g", 3 << 29),
        ("0.5g", 512 * MIB),
        ("2t", 2 << 40),
        ("4096k", 4 * MIB),
        ("1p", 1 << 50),
    ],
)
def test_memory_sizes_docker_accepts_are_accepted_in_binary_units(text: str, value: int) -> None:
    assert names.parse_memory(text) == value


@pytest.mark.parametrize(
    "text",
    ["4194303", "4194303b", "3m", "0.5m", "4095k", "", "x", "-1m", "1e3m", "1.5.3g", "64ib",
     ".5g", "5.g", "64 mb b", "9" * 25, "8388608t", "64m\n1"],
)  # fmt: skip
def test_memory_sizes_below_4m_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(BadInput):
        names.parse_memory(text)


def test_memory_minimum_is_exactly_4_mib() -> None:
    """Both sides of the boundary: a mutant moving it either way fails."""
    assert names.parse_memory(str(4 * MIB)) == 4 * MIB
    with pytest.raises(BadInput, match="below the minimum 4m"):
        names.parse_memory(str(4 * MIB - 1))


def test_b_suffix_is_bytes_not_bits() -> None:
    assert names.parse_memory("8388608b") == names.parse_memory("8388608") == 8 * MIB
    assert names.parse_memory("8mb") == 8 * MIB  # not 1 MiB (8 megabits)


_UNITS = st.sampled_from(["", "k", "m", "g", "t"])


@given(
    whole=st.integers(0, 10**6),
    frac=st.text("0123456789", min_size=0, max_size=6),
    unit=_UNITS,
    i=st.booleans(),
    b=st.booleans(),
    upper=st.booleans(),
    space=st.booleans(),
)
def test_size_parser_is_exact_integer_arithmetic(
    whole: int, frac: str, unit: str, i: bool, b: bool, upper: bool, space: bool
) -> None:
    suffix = unit + ("i" if i and unit else "") + ("b" if b else "")
    text = f"{whole}{'.' + frac if frac else ''}{' ' if space else ''}"
    text += suffix.upper() if upper else suffix
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
    expect = (whole * 10 ** len(frac) + int(frac or "0")) * scale // 10 ** len(frac)
    assert names.parse_size(text, "test") == expect


@given(st.integers(4 * MIB, 1 << 50))
def test_size_round_trips_through_its_largest_exact_unit(value: int) -> None:
    for unit, scale in (("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if value % scale == 0:
            text = f"{value // scale}{unit}"
            break
    else:
        text = f"{value}b"
    assert names.parse_memory(text) == value


@given(st.text(max_size=30))
def test_size_parser_never_crashes(text: str) -> None:
    try:
        value = names.parse_size(text, "test")
    except BadInput as err:
        assert "\n" not in str(err).replace(repr(text), "")
    else:
        assert 0 <= value <= names.SIZE_MAX


def test_log_size_has_its_own_minimum() -> None:
    assert names.parse_log_size("64k") == 64 << 10
    assert names.parse_log_size("10m") == names.LOG_SIZE_DEFAULT
    with pytest.raises(BadInput, match="log size"):
        names.parse_log_size("63k")


# --- counts and names ------------------------------------------------------------


def test_pids_limit() -> None:
    assert names.parse_pids_limit("512") == 512
    assert names.parse_pids_limit(2) == 2
    assert names.parse_pids_limit(0) is None and names.parse_pids_limit("-1") is None
    for bad in ("1", "-2", "x", "1.5", 1.0, True, names.PIDS_MAX + 1, None):
        with pytest.raises(BadInput):
            names.parse_pids_limit(bad)
    assert names.PIDS_DEFAULT == 2048


def test_cpus() -> None:
    assert names.parse_cpus("0.01") == 0.01 and names.parse_cpus(1024) == 1024.0
    for bad in ("0.009", 0, "1025", "nan", "inf", "x", True, None):
        with pytest.raises(BadInput):
            names.parse_cpus(bad)


@pytest.mark.parametrize("name", ["a", "web-1", "r1.core", "A_b", "x" * 63, "0"])
def test_names_follow_one_rule_of_at_most_63(name: str) -> None:
    for what in ("container", "network", "lab", "node"):
        assert names.validate_name(name, what) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", ".hidden", "-a", "x" * 64, "a\n", "web\n", "é", None]
)
def test_names_that_could_become_paths_or_lines_are_refused(name: str | None) -> None:
    with pytest.raises(BadInput, match="is not a valid"):
        names.validate_name(name)


def test_name_limit_is_the_hostname_label_limit() -> None:
    """A container's hostname defaults to its name: the longest name is a valid hostname."""
    longest = "a" * names.NAME_MAX
    assert names.validate_hostname(longest) == longest


@pytest.mark.parametrize("host", ["web", "a-b.example.org", "x" * 63, "a." + "b" * 62])
def test_hostnames_ok(host: str) -> None:
    assert names.validate_hostname(host) == host


@pytest.mark.parametrize(
    "host", ["", "x" * 64, "a." + "b" * 63, "-a", "a-", "a..b", "a_b", "a b", "é", "a.", "a" * 65]
)
def test_hostnames_bad(host: str) -> None:
    with pytest.raises(BadInput, match="hostname"):
        names.validate_hostname(host)


def test_hostname_is_at_most_64_bytes_even_with_short_labels() -> None:
    ok = ".".join(["abcdefg"] * 8)  # 63 bytes
    assert names.validate_hostname(ok + "x") == ok + "x"  # 64
    with pytest.raises(BadInput):
        names.validate_hostname(ok + "xy")  # 65


def test_sysctls_lower_case_and_namespaced_only() -> None:
    for ok in ("net.ipv4.ip_forward", "net.ipv4.conf.eth0/1.rp_filter", "kernel.shmmax",
               "fs.mqueue.msg_max", "net.ipv6.conf.all.disable_ipv6"):  # fmt: skip
        assert names.validate_sysctl(ok) == ok
    for bad in ("net.IPv4.ip_forward", "NET.ipv4.ip_forward", "kernel.panic", "vm.swappiness",
                "net/../x", "net..ipv4", "net.", "net", "kernel.hostname", ""):  # fmt: skip
        with pytest.raises(BadInput):
            names.validate_sysctl(bad)


def test_capabilities_unknown_refused() -> None:
    assert names.validate_cap("net_admin") == "NET_ADMIN"
    assert names.validate_cap("CAP_SYS_PTRACE") == "SYS_PTRACE"
    assert names.validate_cap("all") == "ALL"
    for bad in ("FLY", "CAP_", "", "NET ADMIN", None):
        with pytest.raises(BadInput, match="capability"):
            names.validate_cap(bad)


def test_env_and_mtu() -> None:
    assert names.validate_env("A", "b=c") == ("A", "b=c")
    for key, value in (("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0y")):
        with pytest.raises(BadInput):
            names.validate_env(key, value)
    assert names.validate_mtu(68) == 68 and names.validate_mtu(65535) == 65535
    for bad in (67, 65536, True, "1500"):
        with pytest.raises(BadInput):
            names.validate_mtu(bad)


# --- subnets and IPAM -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["127.0.0.0/24", "127.0.0.0/8", "224.0.0.0/24", "239.1.0.0/16", "0.0.0.0/8", "0.0.0.0/24",
     "240.0.0.0/24", "255.255.255.0/30", "169.254.0.0/24", "0.0.0.0/0", "fd00::/64",
     "10.0.0.1/24", "10.0.0.0/31", "10.0.0.0/32", "x", ""],
)  # fmt: skip
def test_subnets_that_cannot_be_networks_are_refused(text: str) -> None:
    with pytest.raises(BadInput):
        ipam.parse_subnet(text)


def test_subnet_boundaries() -> None:
    """A /30 is the smallest network (one container); the ranges next to reserved ones work."""
    assert ipam.parse_subnet("10.0.0.0/30") == ipaddress.IPv4Network("10.0.0.0/30")
    for ok in ("1.0.0.0/24", "126.255.255.0/24", "128.0.0.0/24", "223.255.255.0/24",
               "169.253.0.0/16", "192.0.2.0/24"):  # fmt: skip
        assert str(ipam.parse_subnet(ok)) == ok
    with pytest.raises(BadInput, match="IPv6"):
        ipam.parse_subnet("fd00::/64")


def test_a_30_gives_exactly_one_container_address() -> None:
    net = ipam.parse_subnet("10.9.9.0/30")
    gw = ipam.gateway_for(net, None)
    assert gw == "10.9.9.1"
    assert ipam.allocate_batch(net, gw, set(), [None]) == ["10.9.9.2"]
    with pytest.raises(Conflict, match="no free address"):
        ipam.allocate_batch(net, gw, set(), [None, None])


def test_requested_addresses_win_over_automatic_ones_in_a_batch() -> None:
    net = ipaddress.IPv4Network("10.0.0.0/29")
    got = ipam.allocate_batch(net, "10.0.0.1", set(), [None, "10.0.0.2", None, "10.0.0.3"])
    assert got == ["10.0.0.4", "10.0.0.2", "10.0.0.5", "10.0.0.3"]


_PREFIX = st.integers(24, 30)


@st.composite
def _batches(draw: st.DrawFn) -> tuple[ipaddress.IPv4Network, str, set[str], list[str | None]]:
    prefix = draw(_PREFIX)
    base = draw(st.integers(10 << 24, (11 << 24) - 1)) >> (32 - prefix) << (32 - prefix)
    net = ipaddress.IPv4Network((base, prefix))
    hosts = [str(h) for h in net.hosts()]
    gw = draw(st.sampled_from(hosts))
    used = set(draw(st.lists(st.sampled_from(hosts), max_size=len(hosts))))
    wanted = draw(st.lists(st.one_of(st.none(), st.sampled_from(hosts)), max_size=len(hosts) + 2))
    return net, gw, used, wanted


@settings(max_examples=300)
@given(_batches())
def test_ipam_batch_properties(
    case: tuple[ipaddress.IPv4Network, str, set[str], list[str | None]],
) -> None:
    """Never a duplicate, never outside the subnet's hosts, never the gateway or a used
    address, every requested address given as asked; or a Conflict, and then only
    when the request is impossible."""
    net, gw, used, wanted = case
    before = set(used)
    requested = [w for w in wanted if w is not None]
    free = [str(h) for h in net.hosts() if str(h) != gw and str(h) not in used]
    impossible = (
        len(set(requested)) != len(requested)
        or any(w == gw or w in used for w in requested)
        or len(wanted) > len(free)
    )
    try:
        got = ipam.allocate_batch(net, gw, used, wanted)
    except Conflict:
        assert impossible
        return
    assert not impossible
    assert used == before  # the caller's set is not changed
    assert len(got) == len(wanted) == len(set(got))
    for addr, want in zip(got, wanted, strict=True):
        ip = ipaddress.IPv4Address(addr)
        assert ip in net and ip not in (net.network_address, net.broadcast_address)
        assert addr != gw and addr not in used
        if want is not None:
            assert addr == want
    # automatic addresses are the lowest free ones, after the requested are taken
    auto = sorted((a for a, w in zip(got, wanted, strict=True) if w is None),
                  key=lambda a: int(ipaddress.IPv4Address(a)))  # fmt: skip
    rest = [a for a in free if a not in requested]
    assert auto == rest[: len(auto)]


def test_iface_addresses() -> None:
    assert str(ipam.parse_iface_address("10.0.0.1/30")) == "10.0.0.1/30"
    assert str(ipam.parse_iface_address("10.0.0.0/31")) == "10.0.0.0/31"
    for bad, why in (("10.0.0.1", "prefix"), ("10.0.0.0/30", "network or broadcast"),
                     ("fd00::1/64", "IPv6"), ("10.0.0.1/33", "not a valid")):  # fmt: skip
        with pytest.raises(BadInput, match=why):
            ipam.parse_iface_address(bad)


# --- lab check agrees with the runtime --------------------------------------------


def _lab(node: str = "", net: str = "{subnet: 10.44.0.0/24}", lab: str = "t") -> str:
    return f"name: {lab}\nnetworks:\n  n: {net}\nnodes:\n  a:\n{node}"


@pytest.mark.parametrize(
    ("field", "value"),
    [("memory", "1.5g"), ("memory", "2t"), ("memory", "64mi"), ("memory", "4m"),
     ("cpus", "0.01"), ("pids_limit", "100"), ("pids_limit", "0"), ("log_size", "1m"),
     ("hostname", "web.example.org"), ("cap_add", "[net_admin, CAP_SYS_PTRACE]")],
)  # fmt: skip
def test_values_run_accepts_lab_check_accepts(field: str, value: str) -> None:
    spec = load_lab("x.yaml", text=_lab(f"    {field}: {value}\n"))
    node = spec.node("a")
    if field == "memory":
        assert names.parse_memory(node.memory) == names.parse_memory(value)
    elif field == "cap_add":
        assert node.cap_add == ("NET_ADMIN", "SYS_PTRACE")


# Each refusal: the lab line, and the runtime rule's own message for the same value.
_REFUSED = [
    ("    memory: 3m\n", "nodes.a.memory", lambda: names.parse_memory("3m")),
    ("    memory: 64q\n", "nodes.a.memory", lambda: names.parse_memory("64q")),
    ("    cpus: 0.001\n", "nodes.a.cpus", lambda: names.parse_cpus("0.001")),
    ("    pids_limit: 1\n", "nodes.a.pids_limit", lambda: names.parse_pids_limit("1")),
    ("    log_size: 1k\n", "nodes.a.log_size", lambda: names.parse_log_size("1k")),
    ("    cap_add: [FLY]\n", "nodes.a.cap_add[0]", lambda: names.validate_cap("FLY")),
    ("    hostname: " + "h" * 65 + "\n", "nodes.a.hostname",
     lambda: names.validate_hostname("h" * 65)),
    ("    hostname: a_b\n", "nodes.a.hostname", lambda: names.validate_hostname("a_b")),
    ("    sysctls: {net.IPv4.ip_forward: 1}\n", "nodes.a.sysctls.net.IPv4.ip_forward",
     lambda: names.validate_sysctl("net.IPv4.ip_forward")),
    ("    sysctls: {kernel.panic: 1}\n", "nodes.a.sysctls.kernel.panic",
     lambda: names.validate_sysctl("kernel.panic")),
    ("    publish: ['80']\n", "nodes.a.publish[0]", lambda: names.parse_publish("80")),
    ("    env: {'A=B': x}\n", "nodes.a.env.A=B", lambda: names.validate_env("A=B", "x")),
    ("    rootfs: /nonexistent-rootfs\n", "nodes.a.rootfs",
     lambda: names.validate_rootfs("/nonexistent-rootfs")),
]  # fmt: skip


@pytest.mark.parametrize(("node", "field", "runtime"), _REFUSED, ids=[r[1] for r in _REFUSED])
def test_lab_check_refuses_with_file_and_line_what_run_refuses(
    node: str, field: str, runtime: object
) -> None:
    with pytest.raises(BadInput) as rt:
        runtime()  # type: ignore[operator]
    with pytest.raises(BadInput) as lab:
        load_lab("x.yaml", text=_lab(node))
    assert str(lab.value) == f"x.yaml:6: {field}: {rt.value}"


@pytest.mark.parametrize(
    ("net", "why"),
    [("{subnet: 'fd00::/64'}", "IPv6"), ("{subnet: 127.0.0.0/24}", "loopback"),
     ("{subnet: 224.0.0.0/24}", "multicast"), ("{subnet: 0.0.0.0/8}", "'this network'"),
     ("{subnet: 240.0.0.0/24}", "class E"), ("{subnet: 10.44.0.0/24, mtu: 67}", "MTU"),
     ("{subnet: 10.44.0.0/24, gateway: 10.44.0.0}", "not a host address")],
)  # fmt: skip
def test_lab_check_refuses_networks_network_create_refuses(net: str, why: str) -> None:
    with pytest.raises(BadInput, match=rf"^x\.yaml:3: networks\.n\.\w+: .*{why}"):
        load_lab("x.yaml", text=_lab(net=net))


def test_lab_networks_must_not_overlap_each_other() -> None:
    text = ("name: t\nnetworks:\n  a: {subnet: 10.44.0.0/16}\n  b: {subnet: 10.44.7.0/24}\n"
            "nodes:\n  x: {network: a}\n")  # fmt: skip
    with pytest.raises(BadInput, match=r"^x\.yaml:4: networks\.b\.subnet: .*overlaps network 'a'"):
        load_lab("x.yaml", text=text)


def test_a_node_cannot_take_the_default_gateway() -> None:
    """The runtime's gateway is the first address even when the file names none."""
    with pytest.raises(BadInput, match=r"x\.yaml:6: .*10\.44\.0\.1 .*gateway of network 'n'"):
        load_lab("x.yaml", text=_lab("    ip: 10.44.0.1\n"))
    assert load_lab("x.yaml", text=_lab("    ip: 10.44.0.2\n")).node("a").ip == "10.44.0.2"


def test_node_names_have_the_runtime_limit_on_the_whole_container_name() -> None:
    """One limit: <lab>-<node> at most 63 bytes, the name rule of ``run --name``."""
    lab = "l" * 20
    node = "n" * (names.NAME_MAX - len(lab) - 1)  # 42: refused before (at most 38)
    spec = load_lab("x.yaml", text=_lab(lab=lab).replace("  a:\n", f"  {node}:\n"))
    assert names.validate_name(f"{lab}-{spec.nodes[0].name}") == f"{lab}-{node}"
    with pytest.raises(BadInput, match=r"x\.yaml:5: nodes\.n+x: .*longer than 63 bytes"):
        load_lab("x.yaml", text=_lab(lab=lab).replace("  a:\n", f"  {node}x:\n"))


def test_count_groups_are_checked_by_their_longest_member() -> None:
    text = _lab(lab="l" * 50).replace("  a:\n", "  " + "h" * 11 + ":\n    count: 10\n")
    with pytest.raises(BadInput, match=re.escape("would be container '" + "l" * 50)):
        load_lab("x.yaml", text=text)  # h...h10 makes 50 + 1 + 13 = 64 bytes


def test_name_override_follows_the_lab_name_rule() -> None:
    for bad in ("../../x", "a/b", ".x", "x" * 64):
        with pytest.raises(BadInput, match=r"^--name: .* is not a valid lab name"):
            load_lab("x.yaml", text=_lab(), name=bad)


def test_lab_link_addresses_are_what_connect_takes() -> None:
    text = ("name: t\nnodes:\n  a:\n    links:\n      - {peer: b, ifname: p0,"
            " addr: 'fd00::1/64', peer_addr: 'fd00::2/64'}\n  b: {}\n")  # fmt: skip
    with pytest.raises(BadInput, match=r"x\.yaml:5: .*addr: .*IPv6"):
        load_lab("x.yaml", text=text)


# --- `netlens lab check` and `netlens run` / `network create`: one rule, one message ----
#
# Each case was a drift: the lab loader and the run/network path had a rule each, and
# they disagreed on what they refused or on the words. Now both call the one function
# (names, ipam, seccomp); the lab adds its file:line and field, argparse its flag.


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from netlens.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: a flag's type is the rule
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.strip()


def _rule_message(rule: object) -> str:
    with pytest.raises(BadInput) as err:
        rule()  # type: ignore[operator]
    return str(err.value)


def _profile() -> str:
    from netlens_runtime import seccomp

    return seccomp.DEFAULT_PROFILE


# (lab node lines, the field lab check names, `netlens run` flags, the rule)
_SAME_AS_RUN = [
    ("    cpus: 0.001\n", "nodes.a.cpus", ["--cpus", "0.001"],
     lambda: names.parse_cpus("0.001")),
    ("    cpus: lots\n", "nodes.a.cpus", ["--cpus", "lots"], lambda: names.parse_cpus("lots")),
    ("    pids_limit: 5000000\n", "nodes.a.pids_limit", ["--pids-limit", "5000000"],
     lambda: names.parse_pids_limit("5000000")),
    ("    pids_limit: many\n", "nodes.a.pids_limit", ["--pids-limit", "many"],
     lambda: names.parse_pids_limit("many")),
    ("    labels: {netlens.lab: x}\n", "nodes.a.labels", ["--label", "netlens.lab=x"],
     lambda: names.validate_label("netlens.lab")),
    ("    ip: 10.44.0.300\n", "nodes.a.ip", ["--ip", "10.44.0.300"],
     lambda: ipam.parse_address("10.44.0.300")),
    ("    security_opt: [apparmor=x]\n", "nodes.a.security_opt[0]",
     ["--security-opt", "apparmor=x"], lambda: _seccomp().parse_security_opt("apparmor=x")),
    ("    privileged: true\n    security_opt: [seccomp={profile}]\n", "nodes.a.security_opt[0]",
     ["--privileged", "--security-opt", "seccomp={profile}"],
     lambda: _seccomp().check_privileged(_profile())),
    ("    binds: ['/nonexistent-netlens-rule:/data']\n", "nodes.a.binds[0]",
     ["-v", "/nonexistent-netlens-rule:/data"],
     lambda: names.check_volume("/nonexistent-netlens-rule:/data")),
    ("    network: null\n    publish: ['8080:80']\n", "nodes.a.publish",
     ["--network", "none", "-p", "8080:80"], lambda: names.check_publish(None, False)),
]  # fmt: skip


def _seccomp() -> object:
    from netlens_runtime import seccomp

    return seccomp


@pytest.mark.parametrize(
    ("node", "field", "flags", "rule"),
    _SAME_AS_RUN,
    ids=[c[1] + ":" + c[2][-1] for c in _SAME_AS_RUN],
)
def test_lab_check_and_run_refuse_the_same_value_with_the_same_message(
    node: str,
    field: str,
    flags: list[str],
    rule: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    state = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state))
    message = _rule_message(rule)
    lab = tmp_path / "x.yaml"
    lab.write_text(_lab(node.replace("{profile}", _profile())))
    code, err = _cli(["lab", "check", str(lab)], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    line = 5 + node.count("\n")  # the node's last line: the field checked last
    assert err.endswith(f"x.yaml:{line}: {field}: {message}"), err
    argv = ["run", "-d", "--name", "rules-c1", *(f.replace("{profile}", _profile()) for f in flags)]
    code, err = _cli([*argv, "--", "true"], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith(f": {message}"), err
    assert not (state / "containers").exists() or not os.listdir(state / "containers")


# (lab network mapping, the field, `netlens network create n` flags, the rule)
_SAME_AS_NETWORK_CREATE = [
    ("{subnet: 10.44.0.0/24, bridge: 'eth*'}", "networks.n.bridge", ["--bridge", "eth*"],
     lambda: names.validate_ifname("eth*")),
    ("{subnet: 10.44.0.0/24, bridge: lo}", "networks.n.bridge", ["--bridge", "lo"],
     lambda: names.validate_ifname("lo")),
    ("{subnet: 10.44.0.0/24, mtu: 67}", "networks.n.mtu", ["--mtu", "67"],
     lambda: names.validate_mtu(67)),
    ("{subnet: 10.44.0.0/24, mtu: abc}", "networks.n.mtu", ["--mtu", "abc"],
     lambda: names.validate_mtu("abc")),
    ("{subnet: 10.44.0.0/24, internal: true, nat: true}", "networks.n.nat",
     ["--internal", "--nat"], lambda: names.check_internal_nat(True, True)),
    ("{subnet: 10.44.0.0/24, allow_from: [n]}", "networks.n.allow_from", ["--allow-from", "n"],
     lambda: names.check_allow_from("n", ["n"])),
    ("{subnet: 10.44.0.0/24, allow_from: [10.9.0.1/24]}", "networks.n.allow_from",
     ["--allow-from", "10.9.0.1/24"], lambda: names.check_allow_from("n", ["10.9.0.1/24"])),
    ("{gateway: 10.44.0.1}", "networks.n.gateway", ["--gateway", "10.45.0.1"],
     lambda: ipam.check_gateway_subnet(None, "10.45.0.1")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("net", "field", "flags", "rule"),
    _SAME_AS_NETWORK_CREATE,
    ids=[c[1] + ":" + c[2][-1] for c in _SAME_AS_NETWORK_CREATE],
)
def test_lab_check_and_network_create_refuse_the_same_value_with_the_same_message(
    net: str,
    field: str,
    flags: list[str],
    rule: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    state = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state))
    message = _rule_message(rule)
    lab = tmp_path / "x.yaml"
    lab.write_text(_lab(net=net))
    code, err = _cli(["lab", "check", str(lab)], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith(f"x.yaml:3: {field}: {message}"), err
    subnet = [] if "--gateway" in flags else ["--subnet", "10.45.0.0/24"]
    code, err = _cli(["network", "create", "n", *subnet, *flags], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith(f": {message}"), err
    assert not (state / "networks").exists() or not os.listdir(state / "networks")


def test_one_rate_grammar_for_flows_and_impairments() -> None:
    """Lab traffic rates and link impairments read rates with the same grammar (tc's
    units); each keeps its own range. '10mb' meant 10 Mbit/s to a flow and nothing to
    an impairment; it is nothing to both now."""
    from netlens_runtime.lab_impair import ImpairError, parse_rate, rate_bits

    assert rate_bits("1MBps") == 8_000_000 == parse_rate("1MBps")
    for bad in ("10mb", "10mbit/s", "fast"):
        with pytest.raises(ImpairError):
            rate_bits(bad)
        flow = ("name: t\nnetworks:\n  n: {subnet: 10.3.0.0/24}\nnodes:\n"
                "  a: {ip: 10.3.0.2}\n  b: {ip: 10.3.0.3}\ntraffic:\n"
                f"  - {{from: a, to: b, rate: '{bad}'}}\n")  # fmt: skip
        with pytest.raises(BadInput, match=r"x\.yaml:8: traffic\[0\]\.rate: .*not a rate"):
            load_lab("x.yaml", text=flow)


def test_lab_check_refuses_ports_on_an_internal_network_as_lab_up_would() -> None:
    """Before, only ``lab up`` (the runtime's ports check) refused this: lab check passed it."""
    text = _lab("    publish: ['8080:80']\n", net="{subnet: 10.44.0.0/24, internal: true}")
    message = _rule_message(lambda: names.check_publish("n", True))
    with pytest.raises(BadInput) as err:
        load_lab("x.yaml", text=text)
    assert str(err.value) == f"x.yaml:6: nodes.a.publish: {message}"
