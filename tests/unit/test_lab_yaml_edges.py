"""The lab file's value checks (netlens_runtime.lab_yaml) with the exact line they print:
``FILE:LINE: FIELD.PATH: what is wrong``.

Written against the mutants that survived the first mutation run of lab_yaml.py
(``make mutation MODULES=lab_yaml``): errors with no text or no place, an integer
range's ends, a flow rate's bounds, ``true`` in a sysctl map written as ``XX1XX``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netlens_runtime import lab_yaml
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_model import LabNetwork, LabSpec
from netlens_runtime.lab_yaml import Val

pytestmark = pytest.mark.unit


def val(text: str, path: str = "f") -> Val:
    """The document ``text`` as a Val at ``path`` in file ``lab.yaml``."""
    return Val("lab.yaml", yaml.compose(text), path)


def refused(fn: object, *args: object, message: str) -> None:
    with pytest.raises(BadInput) as info:
        fn(*args)  # type: ignore[operator]
    assert str(info.value) == message


def test_shapes_say_what_they_got() -> None:
    refused(val("[1]").mapping, message="lab.yaml:1: f: expected a mapping, got a list")
    refused(val("a: 1").sequence, message="lab.yaml:1: f: expected a list, got a mapping")
    refused(val("7").sequence, message="lab.yaml:1: f: expected a list, got 7")
    refused(val("[1]").scalar, message="lab.yaml:1: f: expected a single value, got a list")
    refused(val("true").string, message="lab.yaml:1: f: expected a string, got True")
    refused(val("~").string, message="lab.yaml:1: f: expected a string, got None")
    assert val("12").string() == "12"
    assert val("~").opt_string() is None and val("x").opt_string() == "x"


def test_mapping_keys_place_and_unknown_fields() -> None:
    doc = "a: 1\n? [x]\n: 2\n"
    refused(val(doc, "nodes.r1").mapping, message="lab.yaml:2: nodes.r1: keys must be plain names")
    refused(
        val("a: 1\nzz: 2\n", "nodes.r1").mapping,
        frozenset({"a", "b"}),
        message="lab.yaml:2: nodes.r1.zz: unknown field (expected one of: a, b)",
    )
    refused(val("\na: 1\na: 2\n", "").mapping, message="lab.yaml:3: a: duplicate key 'a'")
    got = val("a: 1\nb: 2\n", "").mapping(frozenset({"a", "b"}))
    assert [(k, v.path) for k, v in got.items()] == [("a", "a"), ("b", "b")]
    assert val("~").mapping() == {}


def test_integer_range_ends_are_inclusive() -> None:
    assert val("1").integer(1, 3) == 1
    assert val("3").integer(1, 3) == 3
    refused(val("0").integer, 1, 3, message="lab.yaml:1: f: 0 is out of range (1..3)")
    refused(val("4").integer, 1, 3, message="lab.yaml:1: f: 4 is out of range (1..3)")
    refused(val("1.5").integer, 1, 3, message="lab.yaml:1: f: expected an integer, got 1.5")
    refused(val("true").integer, 1, 3, message="lab.yaml:1: f: expected an integer, got True")
    refused(val("x").integer, 1, 3, message="lab.yaml:1: f: expected an integer, got 'x'")


def test_number_takes_ints_and_floats_only() -> None:
    assert val("2").number() == 2.0 and isinstance(val("2").number(), float)
    assert val("0.25").number() == 0.25
    refused(val("x").number, message="lab.yaml:1: f: expected a number, got 'x'")
    refused(val("false").number, message="lab.yaml:1: f: expected a number, got False")


def test_string_list_and_string_map() -> None:
    assert val("'sh -c \"a b\"'").string_list() == ["sh", "-c", "a b"]
    assert val("[a, b]").string_list() == ["a", "b"]
    refused(
        val("'a \"b'").string_list,
        message="lab.yaml:1: f: cannot split 'a \"b': No closing quotation",
    )
    assert val("{a: true, b: false, c: 3, d: x}").string_map() == {
        "a": "1",
        "b": "0",
        "c": "3",
        "d": "x",
    }
    refused(
        val("{a: [1]}").string_map, message="lab.yaml:1: f.a: expected a single value, got a list"
    )
    refused(val("{a: ~}").string_map, message="lab.yaml:1: f.a: expected a value, got None")


def test_names_and_addresses_carry_the_place() -> None:
    assert lab_yaml.check_name(val("r1"), "node") == "r1"
    assert lab_yaml.check_name(val("x"), "node", "r2") == "r2"
    refused(
        lab_yaml.check_name,
        val("x"),
        "node",
        "../r",
        message="lab.yaml:1: f: '../r' is not a valid node name (1-63 letters, digits, '_',"
        " '.' or '-', starting with a letter or a digit)",
    )
    refused(
        lab_yaml.check_ip,
        val("10.0.0"),
        message="lab.yaml:1: f: '10.0.0' is not a valid IP address",
    )
    assert lab_yaml.check_ip(val("fd00::1")) == "fd00::1"


def test_route_destination_has_no_host_bits() -> None:
    assert lab_yaml.check_route_dest(val("default")) == "default"
    assert lab_yaml.check_route_dest(val("10.1.0.0/16")) == "10.1.0.0/16"
    refused(
        lab_yaml.check_route_dest,
        val("10.1.0.1/16"),
        message="lab.yaml:1: f: '10.1.0.1/16' is not a valid destination (a CIDR or 'default':"
        " 10.1.0.1/16 has host bits set)",
    )


def test_binds_keep_the_users_text(tmp_path: Path) -> None:
    assert lab_yaml.check_binds(val(f"['{tmp_path}:/data:ro', '{tmp_path}//:/x']")) == (
        f"{tmp_path}:/data:ro",
        f"{tmp_path}//:/x",
    )


def test_rate_bounds() -> None:
    assert lab_yaml.check_rate(val("5mbit")) == (5_000_000, 5_000_000)
    assert lab_yaml.check_rate(val("2-20mbit")) == (2_000_000, 20_000_000)
    assert lab_yaml.check_rate(val("500kbit-2mbit")) == (500_000, 2_000_000)
    assert lab_yaml.check_rate(val("1bit")) == (1, 1)
    assert lab_yaml.check_rate(val("1gbit")) == (1_000_000_000, 1_000_000_000)
    refused(
        lab_yaml.check_rate,
        val("1000000001bit"),
        message="lab.yaml:1: f: '1000000001bit': at most 1gbit per flow",
    )
    refused(
        lab_yaml.check_rate,
        val("0mbit"),
        message="lab.yaml:1: f: '0mbit': rates must be positive and low-high",
    )
    refused(
        lab_yaml.check_rate,
        val("20-2mbit"),
        message="lab.yaml:1: f: '20-2mbit': rates must be positive and low-high",
    )
    refused(
        lab_yaml.check_rate,
        val("0-2mbit"),
        message="lab.yaml:1: f: '0-2mbit': rates must be positive and low-high",
    )
    refused(
        lab_yaml.check_rate,
        val("x-y"),
        message="lab.yaml:1: f: 'x-y' is not a rate (e.g. 10mbit or 2-20mbit)",
    )


def test_seccomp_profile_is_read_whole_and_once(tmp_path: Path) -> None:
    from netlens_runtime import seccomp_profile

    good = tmp_path / "ok.json"
    good.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}')
    fields = val("security_opt: [seccomp=ok.json]", "").mapping()
    out: dict[str, object] = {}
    lab_yaml.confinement(fields, out, str(tmp_path))
    assert out["security_opt"] == (f"seccomp={good}",)
    # a profile one byte over the limit is refused with the parser's words (read whole)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (seccomp_profile.MAX_BYTES + 1))
    fields = val("security_opt: [seccomp=big.json]", "").mapping()
    with pytest.raises(BadInput, match=r"^lab\.yaml:1: security_opt\[0\]: .*big\.json: .*larger"):
        lab_yaml.confinement(fields, {}, str(tmp_path))
    # bytes, not text: a profile that is not UTF-8 is a bad profile, not a crash
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe{")
    fields = val("security_opt: [seccomp=bin.json]", "").mapping()
    with pytest.raises(
        BadInput, match=r"^lab\.yaml:1: security_opt\[0\]: .*bin\.json: .*invalid JSON"
    ):
        lab_yaml.confinement(fields, {}, str(tmp_path))


def test_lab_spec_lookup_misses_name_the_key() -> None:
    spec = LabSpec(name="l", path="lab.yaml", networks=(LabNetwork("lan"),), nodes=())
    assert spec.network("lan").name == "lan"
    with pytest.raises(KeyError) as info:
        spec.network("dmz")
    assert info.value.args == ("dmz",)
    with pytest.raises(KeyError) as info:
        spec.node("r9")
    assert info.value.args == ("r9",)


def test_exec_commands_split_as_a_shell_would() -> None:
    assert lab_yaml.check_exec(val("'ip addr add 10.0.0.1/24 dev eth1'")) == (
        "ip addr add 10.0.0.1/24 dev eth1"
    )
    refused(lab_yaml.check_exec, val("'  '"), message="lab.yaml:1: f: the command is empty")
    refused(
        lab_yaml.check_exec,
        val("'echo \"x'"),
        message="lab.yaml:1: f: cannot split 'echo \"x': No closing quotation",
    )
