"""The runtime's input rules (netlens_runtime.names) at their edges, with the exact
one-line error each refusal prints.

Written against the mutants that survived the first mutation run of names.py
(``make mutation MODULES=names``): a volume's ``:ro`` read as ``:rw``, ``/tcp``
refused, port 65536 accepted, a rootfs without /dev taken, ``ALL`` capabilities
lost, an error raised with no text. Where a rule guards a path, a firewall rule
or a name the kernel sees, both sides of its boundary are checked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from netlens_runtime import names
from netlens_runtime.errors import BadInput

pytestmark = pytest.mark.unit


def refused(fn: object, *args: object, message: str) -> None:
    """``fn(*args)`` raises BadInput whose text is exactly ``message``."""
    with pytest.raises(BadInput) as info:
        fn(*args)  # type: ignore[operator]
    assert str(info.value) == message


# -- names, interface names, hashes -------------------------------------------------


def test_ifname_problem_says_what_is_wrong() -> None:
    assert names.ifname_problem("") == "it is empty"
    assert names.ifname_problem(None) == "it is empty"
    assert names.ifname_problem(7) == "it is empty"
    assert names.ifname_problem("a" * 16) == "longer than 15 bytes (the kernel's limit)"
    assert names.ifname_problem("-eth0") == "use letters, digits, '_', '.' and '-' (not first)"
    assert names.ifname_problem("eth0") is None
    refused(
        names.validate_ifname,
        "lo",
        message="invalid interface name 'lo': it is the loopback interface",
    )


def test_validate_name_message_names_what() -> None:
    refused(
        names.validate_name,
        ".x",
        "network",
        message="'.x' is not a valid network name (1-63 letters, digits, '_', '.' or '-',"
        " starting with a letter or a digit)",
    )
    refused(
        names.validate_name,
        "a/b",
        message="'a/b' is not a valid container name (1-63 letters, digits, '_', '.' or '-',"
        " starting with a letter or a digit)",
    )


def test_generated_names_depend_on_scope_and_are_stable() -> None:
    # Recorded values: a change would rename every existing container's veth and bridge.
    assert names.host_veth_name("web") == "nlv" + names._short_hash("web")
    assert names._short_hash("web") == "15c93851c7"
    assert names.host_veth_name("web", "lab1") == "nlv" + names._short_hash("lab1/web")
    assert names.host_veth_name("web", "lab1") != names.host_veth_name("web")
    assert names.bridge_name("lan") == "nlb" + names._short_hash("lan")
    assert names.bridge_name("lan", "lab1") == "nlb" + names._short_hash("lab1/lan")
    assert names.bridge_name("default") == "netlens0"
    assert names.bridge_name("default", "lab1").startswith("nlb")
    assert names.cgroup_leaf("web") == "web"
    assert names.cgroup_leaf("web", "lab1") == "web.lab1"
    for n in (names.host_veth_name("x" * 63, "y" * 63), names.bridge_name("z" * 63, "q")):
        assert len(n) == 13 and names.ifname_problem(n) is None


def test_short_hash_is_crc32_of_the_text_then_of_it_reversed_with_a_suffix() -> None:
    import zlib

    assert names._short_hash("abc") == "352441c27f"
    assert names._short_hash("abc")[:8] == f"{zlib.crc32(b'abc'):08x}"
    assert names._short_hash("abc")[8:] == f"{zlib.crc32(b'cbanl'):08x}"[:2]


# -- sizes, CPUs, pids ---------------------------------------------------------------


def test_size_minimum_is_printed_in_the_largest_exact_unit() -> None:
    refused(names.parse_memory, "1m", message="memory size '1m' is below the minimum 4m")
    refused(names.parse_log_size, "1k", message="log size '1k' is below the minimum 64k")
    refused(names.parse_size, "1", "x", 3 << 30, message="x size '1' is below the minimum 3g")
    refused(names.parse_size, "1", "x", 1536, message="x size '1' is below the minimum 1536")
    refused(names.parse_size, "1", "x", 5 << 10, message="x size '1' is below the minimum 5k")


def test_size_upper_bound_is_2_63_minus_1() -> None:
    assert names.parse_size(str(names.SIZE_MAX), "x") == names.SIZE_MAX
    refused(
        names.parse_size,
        str(names.SIZE_MAX + 1),
        "x",
        message=f"x size '{names.SIZE_MAX + 1}' is too big (at most 2^63-1 bytes)",
    )
    refused(
        names.parse_size, 64, "memory", message="64 is not a memory size (e.g. 64m, 1.5g, 512k, 2t)"
    )


def test_cpus_and_pids_errors() -> None:
    refused(names.parse_cpus, "x", message="'x' is not a CPU count: use a number like 0.5")
    refused(names.parse_cpus, "0", message="'0' is not a CPU count: between 0.01 and 1024")
    refused(
        names.parse_pids_limit, "x", message="'x' is not a pids limit: use a whole number like 512"
    )
    assert names.parse_pids_limit(names.PIDS_MAX) == names.PIDS_MAX
    refused(
        names.parse_pids_limit,
        names.PIDS_MAX + 1,
        message=f"pids limit {names.PIDS_MAX + 1} is out of range: 2 (tini and the command)"
        f" to {names.PIDS_MAX}, or 0/-1 for none",
    )


def test_hostname_length_bounds() -> None:
    assert names.validate_hostname("a") == "a"
    assert names.validate_hostname("a" * 63) == "a" * 63
    refused(
        names.validate_hostname,
        "",
        message="'' is not a valid hostname (at most 64 bytes of dot-separated labels:"
        " letters, digits and '-', not at either end)",
    )


# -- rootfs --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["proc", "sys", "dev", "tmp"])
def test_rootfs_needs_each_mount_point(tmp_path: Path, missing: str) -> None:
    for sub in ("proc", "sys", "dev", "tmp"):
        if sub != missing:
            (tmp_path / sub).mkdir()
    refused(
        names.validate_rootfs,
        str(tmp_path),
        message=f"rootfs {str(tmp_path)!r} has no /{missing} directory",
    )
    (tmp_path / missing).mkdir()
    assert names.validate_rootfs(str(tmp_path)) == os.path.realpath(tmp_path)


def test_rootfs_is_a_directory_and_never_the_hosts_root(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    refused(
        names.validate_rootfs, str(f), message=f"rootfs {str(f)!r} is not a directory (nor '/')"
    )
    refused(names.validate_rootfs, "/", message="rootfs '/' is not a directory (nor '/')")
    refused(names.validate_rootfs, "/.", message="rootfs '/.' is not a directory (nor '/')")


# -- publish, allow-from, env, labels ------------------------------------------------


def test_publish_protocols_and_port_bounds() -> None:
    assert names.parse_publish("8080:80/tcp")["proto"] == "tcp"
    assert names.parse_publish("8080:80/udp")["proto"] == "udp"
    assert names.parse_publish("127.0.0.1:1:65535/udp") == {
        "host_ip": "127.0.0.1",
        "host_port": 1,
        "port": 65535,
        "proto": "udp",
    }
    refused(
        names.parse_publish,
        "8080:80/sctp",
        message="invalid --publish '8080:80/sctp': protocol must be tcp or udp",
    )
    refused(
        names.parse_publish,
        "8080:80/tcp/udp",  # the protocol is what follows the last '/'
        message="invalid --publish '8080:80/tcp/udp': use HOSTPORT:PORT[/tcp|udp]",
    )
    refused(names.parse_publish, "x:1:2", message="invalid --publish 'x:1:2': bad host address")
    for bad in ("0:80", "8080:65536", "65536:80", "8080", "a:b"):
        refused(
            names.parse_publish,
            bad,
            message=f"invalid --publish {bad!r}: use HOSTPORT:PORT[/tcp|udp]",
        )


def test_publish_and_internal_network_rules() -> None:
    refused(names.check_publish, None, False, message="publishing a port needs a network")
    refused(
        names.check_publish, "lan", True, message="network lan is internal: it cannot publish ports"
    )
    names.check_publish("lan", False)
    refused(names.check_internal_nat, True, True, message="an internal network has no NAT")
    names.check_internal_nat(True, False)
    names.check_internal_nat(False, True)


def test_allow_from_names_and_cidrs() -> None:
    assert names.check_allow_from("lan", []) == []
    got = names.check_allow_from(
        "lan", ["dmz", "10.1.0.0/16", "dmz", "10.1.0.0/16", "192.0.2.0/24"]
    )
    assert got == ["10.1.0.0/16", "192.0.2.0/24", "dmz"]
    refused(
        names.check_allow_from,
        "lan",
        ["lan"],
        message="network lan cannot allow itself (it always reaches itself)",
    )
    refused(
        names.check_allow_from,
        "lan",
        ["a b"],
        message="'a b' is not a valid network name (1-63 letters, digits, '_', '.' or '-',"
        " starting with a letter or a digit)",
    )
    with pytest.raises(
        BadInput, match=r"^invalid allow-from '10\.1\.0\.1/16': .*has host bits set$"
    ):
        names.check_allow_from("lan", ["10.1.0.1/16"])


def test_kv_env_and_label_errors() -> None:
    assert names.parse_kv("A=b=c", "label") == ("A", "b=c")
    refused(names.parse_kv, "A", "label", message="invalid label 'A': use KEY=VALUE")
    refused(names.parse_kv, "=v", "env", message="invalid env '=v': use KEY=VALUE")
    refused(
        names.validate_env,
        "",
        "v",
        message="'' is not an environment variable name (no '=', not empty)",
    )
    refused(
        names.validate_env,
        "A",
        "x\0y",
        message="environment variable A: the value must be text without NUL bytes",
    )


# -- capabilities and sysctls --------------------------------------------------------


def test_cap_mask_all_and_defaults() -> None:
    full = (1 << (max(names.CAPS.values()) + 1)) - 1
    assert names.cap_mask(["ALL"]) == full
    assert names.cap_mask(["all"]) == full
    assert names.cap_mask(["cap_all"]) == full
    default = names.cap_mask([])
    assert default == sum(1 << names.CAPS[names.validate_cap(c)] for c in names.DEFAULT_CAPS)
    assert names.cap_mask(["NET_ADMIN"]) == default | (1 << names.CAPS["NET_ADMIN"])
    assert default != full and full.bit_length() == max(names.CAPS.values()) + 1
    refused(
        names.validate_cap, 5, message="5 is not a capability (e.g. NET_ADMIN, SYS_PTRACE, ALL)"
    )


def test_sysctl_rules() -> None:
    assert (
        names.validate_sysctl("net.ipv4.conf.eth0/1.rp_filter") == "net.ipv4.conf.eth0/1.rp_filter"
    )
    assert names.validate_sysctl("kernel.shmmax") == "kernel.shmmax"
    refused(
        names.validate_sysctl,
        "net..ipv4",
        message="'net..ipv4' is not a sysctl name (lower case, e.g. net.ipv4.ip_forward)",
    )
    refused(
        names.validate_sysctl,
        "net/../kernel.x",
        message="'net/../kernel.x' is not a sysctl name (lower case, e.g. net.ipv4.ip_forward)",
    )
    refused(
        names.validate_sysctl,
        "kernel.hostname",
        message="sysctl 'kernel.hostname' is not namespaced: only net.*, fs.mqueue.* and the IPC"
        " kernel.msg*/sem/shm* keys are set per container",
    )


# -- volumes -------------------------------------------------------------------------


def test_volume_modes() -> None:
    assert names.parse_volume("/a:/b") == ("/a", "/b", False)
    assert names.parse_volume("/a:/b:ro") == ("/a", "/b", True)
    assert names.parse_volume("/a:/b:rw") == ("/a", "/b", False)
    assert names.parse_volume("//a//:///b/") == ("/a", "/b", False)
    assert names.parse_volume("/Xa:/X/b") == ("/Xa", "/X/b", False)  # only slashes are stripped
    usage = "invalid volume {!r}: use HOST:CONTAINER[:ro] with absolute paths"
    for bad in ("/a:/b:RO", "/a:/b:x", "/a", "/a:b", "a:/b", "/a:/b\0"):
        refused(names.parse_volume, bad, message=usage.format(bad))


def test_volume_paths_never_climb_or_cover_the_containers_own() -> None:
    refused(
        names.parse_volume,
        "/a/../etc:/b",
        message="invalid volume '/a/../etc:/b': '..' is not allowed in its paths",
    )
    refused(
        names.parse_volume,
        "/a:/b/..",
        message="invalid volume '/a:/b/..': '..' is not allowed in its paths",
    )
    assert names.parse_volume("/a..b:/c..d") == ("/a..b", "/c..d", False)
    refused(
        names.parse_volume,
        "/a://",
        message="invalid volume '/a://': the container path cannot be /",
    )
    for own in ("/proc", "/sys", "/dev"):
        refused(
            names.parse_volume,
            f"/a:{own}",
            message=f"invalid volume '/a:{own}': {own} is the container's own",
        )
        refused(
            names.parse_volume,
            f"/a:{own}/x",
            message=f"invalid volume '/a:{own}/x': {own} is the container's own",
        )
        assert names.parse_volume(f"/a:{own}x")[1] == f"{own}x"


def test_check_volume_needs_the_host_path(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    refused(
        names.check_volume,
        f"{gone}:/data",
        message=f"volume '{gone}:/data': host path {gone} does not exist",
    )
    assert names.check_volume(f"{tmp_path}:/data:ro") == (str(tmp_path), "/data", True)
    assert re.fullmatch(r"/data", names.check_volume(f"{tmp_path}:/data")[1])
