"""State files are not trusted: names become paths only inside the state directory, bad
records are reported, set aside and skipped, temporary files have names no object can
take, and a deeply nested JSON file (ours or another engine's) stops nothing.

No root needed: these tests work on a private state directory and fixture trees; the
root-only consequences (lab down, gc, ps of a real host) are in
tests/integration/test_runtime_inputs.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from netlens.discovery.engines import read_json as engine_read_json
from netlens.discovery.identity import identify
from netlens.discovery.nsfind import NsHandle
from netlens.model import Engine
from netlens_runtime import lab_ops, lab_record, leftovers, names, networks, records, state
from netlens_runtime.errors import BadInput, RuntimeFailure

pytestmark = pytest.mark.unit

IDENTITY = Path(__file__).resolve().parent.parent / "fixtures" / "identity"
NESTED = "[" * 100_000 + "]" * 100_000
HOSTILE = ["../x", "../../../x/evilrec", "/etc/passwd", "a/b", ".", "..", ".hidden", "x\n", ""]


def rec(name: str, **extra: Any) -> dict[str, Any]:
    """The smallest container record the runtime uses."""
    return {"name": name, "id": "0" * 64, "pid": 0, "netns_inode": 0, "state": "exited",
            "created": "2024-01-01T00:00:00.000Z", "command": ["true"], **extra}  # fmt: skip


def net(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "bridge": "nlb0000000000", "subnet": "10.9.0.0/24",
            "gateway": "10.9.0.1", "nat": False, "mtu": 1500, "allocations": {},
            "published": {}, **extra}  # fmt: skip


@pytest.fixture
def sdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path / "state"))
    state.ensure_dirs()
    return tmp_path / "state"


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr(state, "report", lines.append)
    monkeypatch.setattr(state, "_reported", set())
    return lines


# --- names never become paths outside ---------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_never_become_state_paths(sdir: Path, name: str) -> None:
    for make in (state.container_path, state.network_path, state.lab_path, state.log_path):
        with pytest.raises(BadInput, match="is not a valid"):
            make(name)
    with pytest.raises(BadInput):
        lab_record.read_record(name)
    with pytest.raises(BadInput):
        state.load_container(name)


def test_every_state_path_is_inside_the_state_dir(sdir: Path) -> None:
    real = os.path.realpath(sdir)
    for path in (state.container_path("a"), state.network_path("a"), state.lab_path("a"),
                 state.log_path("a"), state.rotated_log_path("a")):  # fmt: skip
        assert os.path.realpath(path).startswith(real + os.sep)


def test_a_kind_directory_leading_out_of_the_state_dir_is_refused(
    sdir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.rmdir(sdir / "networks")
    os.symlink(outside, sdir / "networks")
    with pytest.raises(RuntimeFailure, match="leads out of the state directory"):
        state.network_path("a")
    with pytest.raises(RuntimeFailure):
        state.load_networks()


def test_a_symlinked_record_is_not_followed(sdir: Path, tmp_path: Path, said: list[str]) -> None:
    target = tmp_path / "secret.json"
    target.write_text(json.dumps(rec("s")))
    os.symlink(target, sdir / "containers" / "s.json")
    assert state.load_containers() == {}
    assert target.read_text() == json.dumps(rec("s"))  # neither read as a record nor touched
    assert not os.path.lexists(sdir / "containers" / "s.json")
    assert "unreadable" in said[0]


def test_lab_name_of_a_file_naming_a_path_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("name: ../../../x/evilrec\nnodes: {a: {}}\n")
    with pytest.raises(
        BadInput, match=r"evil\.yaml: '\.\./\.\./\.\./x/evilrec' is not a valid lab"
    ):
        lab_ops.lab_name_of(str(f))
    with pytest.raises(BadInput):
        lab_ops.lab_name_of("../x")


# --- temporary files ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["web.tmpl", "db.tmpfs", "x.tmp", "a.tmp123", "tmp"])
def test_temporary_files_have_names_no_object_can_take(sdir: Path, name: str) -> None:
    path = state.container_path(name)
    tmp = state.temp_path(path)
    assert os.path.basename(tmp).startswith(".")
    assert state.TEMP_RE.fullmatch(os.path.basename(tmp))
    for fname in (f"{name}.json", f"{name}.log", f"{name}.log.1"):
        assert not state.TEMP_RE.fullmatch(fname)
        assert not leftovers._gc_leftover("containers", fname, {name: rec(name)})
        assert not leftovers._gc_leftover("networks", fname, {})
    assert not leftovers._gc_leftover("logs", f"{name}.log", {name: rec(name)})
    assert not leftovers._gc_leftover("logs", f"{name}.log.1", {name: rec(name)})
    assert leftovers._gc_leftover("logs", f"{name}.log", {})


def test_gc_takes_temporary_files_of_dead_writers_only(sdir: Path) -> None:
    live = f".a.json.{os.getppid()}.tmp"
    dead = ".a.json.999999999.tmp"
    assert leftovers._gc_leftover("containers", dead, {})
    assert not leftovers._gc_leftover("containers", live, {})


def test_write_json_leaves_no_temporary_and_reads_back(sdir: Path) -> None:
    with state.locked():
        state.write_json(state.container_path("web.tmpl"), rec("web.tmpl"))
    assert os.listdir(sdir / "containers") == ["web.tmpl.json"]
    assert state.load_containers() == {"web.tmpl": rec("web.tmpl")}


# --- bad records: reported, set aside, skipped --------------------------------------

_BAD: list[tuple[str, str | None, str]] = [
    ("empty", "", "not JSON"),
    ("torn", '{"name": "torn", "pid"', "not JSON"),
    ("notjson", "\xff\xfe", "not JSON"),
    ("nested", NESTED, "nested too deeply"),
    ("obj", "{}", "names None"),
    ("list", "[1, 2]", "not a JSON object"),
    ("types", json.dumps(rec("types", pid="12")), "'pid' is not an integer"),
    ("boolpid", json.dumps(rec("boolpid", pid=True)), "'pid' is not an integer"),
    ("cmd", json.dumps(rec("cmd", command="sh -c x")), "'command' is not a list"),
    ("veth", json.dumps(rec("veth", host_veth="eth0")), "not this container's interface"),
    ("cg", json.dumps(rec("cg", cgroup_dirs=["/sys/fs/cgroup/memory"])), "not this container"),
    ("labels", json.dumps(rec("labels", labels={"a": 1})), "mapping of strings"),
    ("legs", json.dumps(rec("legs", legs="eth1")), "'legs' is not a list"),
    (
        "legveth",
        json.dumps(rec("legveth", legs=[{"ifname": "eth1", "network": "n", "host_veth": "eth0"}])),
        "not a lab's host leg",
    ),
    (
        "legif",
        json.dumps(rec("legif", legs=[{"ifname": "../x", "network": "n", "host_veth": "lx0"}])),
        "not an interface",
    ),
    (
        "legip",
        json.dumps(
            rec(
                "legip",
                legs=[
                    {"ifname": "e1", "network": "n", "host_veth": "lx0123456789a", "ip": "1.2.3"}
                ],
            )
        ),
        "not an IPv4 address",
    ),
    ("dir", None, "unreadable (Is a directory)"),
]


@pytest.mark.parametrize(("fname", "content", "why"), _BAD, ids=[b[0] for b in _BAD])
def test_bad_container_records_are_set_aside_and_the_rest_listed(
    sdir: Path, said: list[str], fname: str, content: str | None, why: str
) -> None:
    with state.locked():
        state.write_json(state.container_path("good"), rec("good"))
    bad = sdir / "containers" / f"{fname}.json"
    if content is None:
        bad.mkdir()
    else:
        bad.write_bytes(content.encode("utf-8", "surrogateescape") if fname != "notjson"
                        else b"\xff\xfe")  # fmt: skip
    assert list(state.load_containers()) == ["good"]
    assert len(said) == 1 and why in said[0] and str(bad) in said[0], said
    assert not os.path.lexists(bad)
    (moved,) = [p for p in (sdir / "quarantine").iterdir() if not p.name.endswith(".why")]
    assert moved.name.startswith(f"containers.{fname}.json.")
    assert why in Path(str(moved) + ".why").read_text()
    assert list(state.load_containers()) == ["good"] and len(said) == 1  # once


def test_a_bad_network_record_stops_neither_listing_nor_the_subnet_check(
    sdir: Path, said: list[str]
) -> None:
    with state.locked():
        state.write_json(state.network_path("ok"), net("ok"))
    (sdir / "networks" / "bad.json").write_text("{}")
    (sdir / "networks" / "inj.json").write_text(json.dumps(net("inj", bridge="b/../eth0")))
    nets = state.load_networks()
    assert list(nets) == ["ok"]
    assert networks.taken_subnets(nets)[0][0] == "network ok"
    assert len(said) == 2 and any("not an interface name" in line for line in said)


def test_a_lab_record_listing_what_is_not_the_labs_is_refused() -> None:
    good = {
        "name": "l",
        "networks": ["l-n"],
        "nodes": {"a": "l-a"},
        "host_links": ["lx0123456789a"],
    }
    assert records.check_lab("l", good) == good
    bads: list[dict[str, Any]] = [
        {**good, "host_links": ["eth0"]},
        {**good, "nodes": {"a": "other-a"}},
        {**good, "networks": ["../x"]},
        {**good, "name": "m"},
        {**good, "nodes": []},
    ]
    for bad in bads:
        with pytest.raises(records.BadRecord):
            records.check_lab("l", bad)


def test_unusable_lab_record_does_not_stop_listing_the_others(sdir: Path, said: list[str]) -> None:
    labs = sdir / "labs"
    labs.mkdir()
    (labs / "ok.json").write_text(json.dumps({"name": "ok", "nodes": {"a": "ok-a"}}))
    (labs / "nested.json").write_text(NESTED)
    (labs / "evil.json").write_text(json.dumps({"name": "evil", "host_links": ["eth0"]}))
    assert [r.name for r in lab_record.list_labs()] == ["ok"]
    assert len(said) == 2
    assert lab_record.read_record("ok") is not None and lab_record.read_record("gone") is None


def test_a_record_is_left_in_place_while_another_command_holds_the_lock(
    sdir: Path, said: list[str]
) -> None:
    (sdir / "containers" / "bad.json").write_text("{}")
    fd = os.open(sdir / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running `lab up` would
        assert state.load_containers() == {}
        assert (sdir / "containers" / "bad.json").exists()
        assert "left in place" in said[0]
    finally:
        os.close(fd)
    assert state.load_containers() == {}
    assert not (sdir / "containers" / "bad.json").exists()


def test_looking_up_one_bad_record_by_name_says_why(sdir: Path) -> None:
    (sdir / "containers" / "c.json").write_text(NESTED)
    with pytest.raises(state.UnusableRecord, match=r"nested too deeply.*netlens gc"):
        state.load_container("c")
    assert (sdir / "containers" / "c.json").exists()  # gc and the listings set it aside


def test_a_journal_naming_paths_is_set_aside(sdir: Path, said: list[str]) -> None:
    (sdir / "pending" / "1.json").write_text(json.dumps({"owner": 1, "names": ["../../etc"]}))
    assert state.load_pending() == []
    assert "not a valid container name" in said[0]


def test_read_json_turns_deep_nesting_into_value_error(tmp_path: Path) -> None:
    p = tmp_path / "n.json"
    p.write_text(NESTED)
    with pytest.raises(ValueError, match="nested too deeply"):
        state.read_json(str(p))


# --- the inspector: another engine's nested JSON --------------------------------------


def test_inspector_survives_a_deeply_nested_docker_config(tmp_path: Path) -> None:
    fix = tmp_path / "identity"
    shutil.copytree(IDENTITY, fix, symlinks=True)
    evil = fix / "docker" / "containers" / ("e" * 64)
    evil.mkdir()
    (evil / "config.v2.json").write_text(NESTED)
    (fix / "podman" / "overlay-containers" / "containers.json").write_text(NESTED)
    assert engine_read_json(str(evil / "config.v2.json")) is None
    handle = NsHandle(dev=4, inode=1, path="/proc/100/ns/net", is_host=False, names=(),
                      mounts=(), pids=(101, 100))  # fmt: skip
    (c,) = identify(
        [handle],
        proc_root=str(fix / "proc"),
        netlens_state_dir=str(fix / "netlens"),
        docker_root=str(fix / "docker"),
        podman_root=str(fix / "podman"),
        lxc_root=str(fix / "lxc"),
        containerd_root=str(fix / "containerd"),
    )
    assert (c.engine, c.name) == (Engine.DOCKER, "web-1")


def test_name_rule_module_is_the_one_place() -> None:
    """The lab loader keeps no private copy of a runtime rule (the old ones let 1.5g through)."""
    from netlens_runtime import lab_cross, lab_spec, lab_yaml

    for module in (lab_spec, lab_yaml, lab_cross):
        for private in ("_NAME_RE", "_MEMORY_RE", "_SYSCTL_RE", "_CAP_RE", "LAB_NAME_MAX"):
            assert not hasattr(module, private), (module.__name__, private)
    assert names.NAME_MAX == 63


def test_a_lab_file_nested_too_deeply_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    from netlens_runtime.lab_spec import load_lab

    deep = tmp_path / "deep.yaml"
    deep.write_text("name: t\nnodes:\n  a: {}\nlabels: " + "[" * 5000 + "\n")
    with pytest.raises(BadInput, match=r"^deep\.yaml: the YAML is nested too deeply$"):
        load_lab(str(deep))
    with pytest.raises(BadInput, match="nested too deeply"):
        lab_ops.lab_name_of(str(deep))


def test_a_record_replaced_after_it_was_read_is_not_set_aside(sdir: Path, said: list[str]) -> None:
    """ps read a bad file; a command then wrote a good record in its place: the good one
    stays (set_aside compares with the file as it was read)."""
    path = sdir / "containers" / "r.json"
    path.write_text("{")
    seen = os.lstat(path)
    tmp = sdir / "containers" / ".r.json.1.tmp"
    tmp.write_text(json.dumps(rec("r")))
    os.rename(tmp, path)
    state.set_aside(str(path), "not JSON", seen)
    assert json.loads(path.read_text()) == rec("r") and said == []
