"""Inputs that must not reach files or the host: hostile names, bad state, limits.

Root, real containers, each test on its own state directory (the ``rt`` fixture of
test_runtime_containers removes everything of it and fails on leftovers). Every
item of the security review's "inputs" part is reproduced and must be refused or
neutralised: lab and container names that are paths, records that list what is
not theirs, ``gc`` taking live objects for temporary files, bad records stopping
the listings, no pids limit, unbounded logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG, is_root, sh
from runtime_host import teardown_state
from test_runtime_containers import Rt, spawn_path  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration

NESTED = "[" * 100_000 + "]" * 100_000
_INDEX = iter(range(1000))


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rt]:
    if not is_root():
        pytest.skip("needs root")
    state_dir = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state_dir))
    helper = Rt(state_dir, 700 + next(_INDEX))
    try:
        yield helper
    finally:
        left = teardown_state(state_dir)
    assert not left, left


@pytest.fixture
def dummy() -> Iterator[str]:
    """A host interface a forged record names (``eth0`` in the review): it must survive."""
    name = f"nt{RUN_TAG}ev"
    sh(f"ip link add {name} type bridge")
    try:
        yield name
    finally:
        sh(f"ip link del {name}", check=False)


def _exists(link: str) -> bool:
    return os.path.exists(f"/sys/class/net/{link}")


def _wait(cond: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _one_line(res: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in res.stderr, lines


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime_ns), to prove nothing was touched."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            out[os.path.join(dirpath, f)] = (st.st_size, st.st_mtime_ns)
    return out


# --- hostile names ----------------------------------------------------------------


def test_lab_down_of_a_file_naming_a_path_reads_and_deletes_nothing(
    rt: Rt, tmp_path: Path, dummy: str
) -> None:
    """The review's reproduction: ``name: ../../x/evilrec`` pointed lab down at a record
    outside the state dir, which deleted the interfaces it listed, then the file."""
    evil = "../../x/evilrec"
    target = Path(os.path.normpath(rt.state_dir / "labs" / f"{evil}.json"))
    assert target.is_relative_to(tmp_path) and not target.is_relative_to(rt.state_dir)
    target.parent.mkdir(parents=True)
    record = {"name": evil, "file": "", "status": "up", "networks": [], "nodes": {},
              "addresses": {}, "host_links": [dummy]}  # fmt: skip
    target.write_text(json.dumps(record))
    lab = tmp_path / "evil.yaml"
    lab.write_text(f"name: {evil}\nnodes:\n  a: {{}}\n")
    before = _snapshot(tmp_path / "x")
    _one_line(rt.cli("lab", "down", str(lab), check=False), 2, "is not a valid lab name")
    _one_line(rt.cli("lab", "down", evil, check=False), 2, "is not a valid lab name")
    _one_line(rt.cli("lab", "up", str(lab), check=False), 2, "is not a valid lab name")
    _one_line(rt.cli("lab", "check", str(lab), check=False), 2, "is not a valid lab name")
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: fine\nnodes:\n  a: {network: null}\n")
    _one_line(rt.cli("lab", "up", str(ok), "--name", evil, check=False), 2, "--name: ")
    assert _snapshot(tmp_path / "x") == before
    assert json.loads(target.read_text()) == record
    assert _exists(dummy)
    assert not (rt.state_dir / "labs").exists() or not os.listdir(rt.state_dir / "labs")


def test_hostile_container_and_network_names_reach_no_file(rt: Rt, tmp_path: Path) -> None:
    """inspect/logs/rm/stop/exec/run/network of ``../x``: refused before any path is made;
    decoys where such a path would lead stay as they are."""
    from netlens_runtime import state

    state.ensure_dirs()
    decoy = {"name": "../x", "id": "d", "pid": 1, "netns_inode": 1, "state": "running",
             "created": "x", "command": ["DECOY"], "log": "/etc/shadow"}  # fmt: skip
    for path in (rt.state_dir / "x.json", tmp_path / "x.json", rt.state_dir / "x.log"):
        path.write_text(json.dumps(decoy))
    before = _snapshot(tmp_path)
    for args in (
        ["inspect", "../x"],
        ["logs", "../x"],
        ["rm", "../x"],
        ["rm", "-f", "../x"],
        ["stop", "../x"],
        ["exec", "../x", "--", "true"],
        ["network", "rm", "../x"],
        ["network", "create", "../x"],
        ["run", "-d", "--name", "../x", "--network", "none", "--", "true"],
        ["run", "-d", "--name", rt.name("h"), "--network", "../x", "--", "true"],
        ["inspect", "../../containers/x"],
    ):
        res = rt.cli(*args, check=False)
        _one_line(res, 2, "is not a valid")
        assert "DECOY" not in res.stdout
    assert _snapshot(tmp_path) == before


# --- records that name what is not theirs --------------------------------------------


def test_lab_record_listing_foreign_objects_is_set_aside_not_obeyed(
    rt: Rt, tmp_path: Path, dummy: str
) -> None:
    from netlens_runtime import api

    lab = tmp_path / "ok.yaml"
    lab.write_text(f"name: nl{RUN_TAG}ok\nnodes:\n  a: {{network: null}}\n")
    rt.cli("lab", "up", str(lab))
    victim = f"nl{RUN_TAG}ok-a"
    labs = rt.state_dir / "labs"
    forged = {"name": "evil", "networks": [], "nodes": {"a": victim}, "host_links": [dummy]}
    (labs / "evil.json").write_text(json.dumps(forged))
    (labs / "deep.json").write_text(NESTED)
    res = rt.cli("lab", "down", "evil", check=False)
    assert res.returncode == 1 and "no lab named 'evil'" in res.stderr, res.stderr
    assert "not a name of lab 'evil'" in res.stderr
    assert _exists(dummy)
    assert api.is_running(api.get_container(victim))
    ls = rt.cli("lab", "ls")
    assert f"nl{RUN_TAG}ok" in ls.stdout and "nested too deeply" in ls.stderr
    quarantined = sorted(p.name.split(".")[1] for p in (rt.state_dir / "quarantine").iterdir())
    assert quarantined == ["deep", "deep", "evil", "evil"]  # each with its .why
    rt.cli("lab", "down", f"nl{RUN_TAG}ok")


@pytest.mark.parametrize("where", ["host", "own netns"])
def test_a_record_naming_someone_elses_process_gets_no_signal(rt: Rt, where: str) -> None:
    """``rm -f`` and ``stop`` signal a record's pid only if it is the container's own:
    not in our network namespace, and in the container's cgroup."""
    from netlens_runtime import names, state

    argv = ["sleep", "1000"] if where == "host" else ["unshare", "-n", "sleep", "1000"]
    victim = subprocess.Popen(argv)
    try:
        _wait(lambda: os.readlink(f"/proc/{victim.pid}/exe").endswith("/sleep"), "its exec")
        state.ensure_dirs()
        name = rt.name("v")
        forged = {"name": name, "id": "f" * 64, "pid": victim.pid, "state": "running",
                  "netns_inode": os.stat(f"/proc/{victim.pid}/ns/net").st_ino,
                  "created": "2024-01-01T00:00:00.000Z", "command": ["sleep"],
                  "host_veth": names.host_veth_name(name, state.scope())}  # fmt: skip
        Path(state.container_path(name)).write_text(json.dumps(forged))
        rt.cli("stop", "-t", "1", name, check=False)
        rt.cli("rm", "-f", name, check=False)
        assert victim.poll() is None, "a process that is not the container's was killed"
    finally:
        victim.kill()
        victim.wait()


def test_bad_records_stop_neither_listings_nor_create_nor_gc(rt: Rt) -> None:
    from netlens_runtime import api, state

    net = api.create_network(api.NetworkSpec(name=rt.name("g"), subnet=rt.subnet()))
    (rt.state_dir / "networks" / "bad.json").write_text("{}")
    (rt.state_dir / "networks" / "deep.json").write_text(NESTED)
    (rt.state_dir / "containers" / "deep.json").write_text(NESTED)
    (rt.state_dir / "containers" / "types.json").write_text(
        json.dumps({"name": "types", "id": 1, "pid": "1"})
    )
    ls = rt.cli("network", "ls")
    assert net["name"] in ls.stdout
    assert len(ls.stderr.strip().splitlines()) == 2, ls.stderr
    rt.cli("network", "create", rt.name("h"), "--subnet", rt.subnet(1), "--no-nat")
    ps = rt.cli("ps")
    assert len(ps.stderr.strip().splitlines()) == 2, ps.stderr
    rt.cli("gc")
    assert len(os.listdir(rt.state_dir / "quarantine")) == 8  # four files, four reasons
    assert sorted(state.load_networks()) == sorted([net["name"], rt.name("h")])
    assert rt.cli("ps").stderr == "" and rt.cli("network", "ls").stderr == ""


def test_gc_repairs_what_unusable_records_stood_for(rt: Rt) -> None:
    """A record that cannot be used is set aside; gc then removes what it stood for,
    derived from its name (the container's process, veth, cgroups and log; the
    network's bridge once no port is left), so nothing is orphaned."""
    from netlens_runtime import api, cgroups, names, state

    net = api.create_network(api.NetworkSpec(name=rt.name("rn"), subnet=rt.subnet()))
    rec = api.create_container(
        api.ContainerSpec(name=rt.name("rc"), network=net["name"], command=["sleep", "1000"])
    )
    Path(state.container_path(rec["name"])).write_text(NESTED)
    Path(state.network_path(net["name"])).write_text("{}")
    assert "nested too deeply" in rt.cli("ps").stderr  # set aside by a listing
    removed = api.gc()
    assert f"container {rec['name']} (its record was set aside)" in removed
    assert f"bridge {net['bridge']} of network {net['name']} (its record was set aside)" in removed
    _wait(lambda: not os.path.exists(f"/proc/{rec['pid']}"), "the container's end")
    assert not _exists(rec["host_veth"]) and not _exists(net["bridge"])
    leaf = names.cgroup_leaf(rec["name"], state.scope())
    assert leaf not in cgroups.all_dirs()
    assert not os.path.exists(state.log_path(rec["name"]))
    assert api.gc() == []  # nothing left to repair: idempotent


def test_gc_keeps_live_objects_whose_names_contain_tmp(rt: Rt) -> None:
    """``db.tmpfs`` and ``web.tmpl`` were taken for temporary files and their records
    removed, orphaning the process, bridge, nft table and cgroup."""
    from netlens_runtime import api, state

    netname = f"db{RUN_TAG}.tmpfs"
    name = f"web{RUN_TAG}.tmpl"
    rt.cli("network", "create", netname, "--subnet", rt.subnet())
    rt.cli("run", "-d", "--name", name, "--network", netname, "--", "sleep", "1000")
    dead = rt.state_dir / "containers" / ".gone.json.999999999.tmp"
    dead.write_text("{")
    live = rt.state_dir / "networks" / f".x.json.{os.getppid()}.tmp"
    live.write_text("{")
    removed = api.gc()
    assert f"file {dead}" in removed
    assert not [r for r in removed if "tmp" in r and r != f"file {dead}"], removed
    assert live.exists()
    live.unlink()
    rec = api.get_container(name)
    assert api.is_running(rec)
    assert os.path.exists(state.log_path(name))
    assert _exists(api.list_networks()[0]["bridge"])
    assert [n["name"] for n in api.list_networks()] == [netname]


# --- limits ---------------------------------------------------------------------------


def _pids_dir(rec: dict[str, Any]) -> Path:
    (d,) = [Path(d) for d in rec["cgroup_dirs"] if (Path(d) / "pids.max").exists()]
    return d


def _hit_limit(d: Path) -> bool:
    events = (d / "pids.events").read_text().split()
    return int(events[events.index("max") + 1]) > 0


def test_default_pids_limit_stops_a_fork_bomb(rt: Rt) -> None:
    """A default container ran 2000 processes; now 3000 sleeps hit Podman's 2048."""
    from netlens_runtime import api, names

    name = rt.name("fb")
    bomb = "i=0; while [ $i -lt 3000 ]; do sleep 1000 & i=$((i+1)); done; wait"
    rt.cli("run", "-d", "--name", name, "--network", "none", "--", "sh", "-c", bomb)
    rec = api.get_container(name)
    d = _pids_dir(rec)
    assert (d / "pids.max").read_text().strip() == str(names.PIDS_DEFAULT)
    _wait(lambda: _hit_limit(d), "the fork bomb to hit the pids limit", timeout=120)
    if (d / "pids.peak").exists():  # reached, never passed
        assert int((d / "pids.peak").read_text()) == names.PIDS_DEFAULT
    assert int((d / "pids.current").read_text()) <= names.PIDS_DEFAULT
    _wait(lambda: "fork" in rt.cli("logs", name).stdout.lower(), "the shell's fork error")
    rt.cli("rm", "-f", name)


def test_pids_limit_flag_and_lab_node_field(rt: Rt, tmp_path: Path) -> None:
    from netlens_runtime import api

    name = rt.name("pl")
    bomb = "i=0; while [ $i -lt 100 ]; do sleep 1000 & i=$((i+1)); done; wait"
    rt.cli("run", "-d", "--name", name, "--pids-limit", "40", "--network", "none",
           "--", "sh", "-c", bomb)  # fmt: skip
    d = _pids_dir(api.get_container(name))
    assert (d / "pids.max").read_text().strip() == "40"
    _wait(lambda: _hit_limit(d), "the pids limit to be hit")
    assert int((d / "pids.current").read_text()) <= 40
    free = rt.name("pn")
    rt.cli("run", "-d", "--name", free, "--pids-limit", "0", "--network", "none", "--", "true")
    assert api.get_container(free)["pids_limit"] is None
    _one_line(rt.cli("run", "-d", "--name", rt.name("p1"), "--pids-limit", "1", "--", "true",
                     check=False), 2, "pids limit '1' is out of range")  # fmt: skip
    lab = tmp_path / "pl.yaml"
    lab.write_text(f"name: nl{RUN_TAG}pl\nnodes:\n  a: {{network: null, pids_limit: 32}}\n")
    rt.cli("lab", "up", str(lab))
    d = _pids_dir(api.get_container(f"nl{RUN_TAG}pl-a"))
    assert (d / "pids.max").read_text().strip() == "32"
    rt.cli("lab", "down", f"nl{RUN_TAG}pl")


def _written(rec: dict[str, Any]) -> int:
    """Bytes the container's processes wrote (its yes), from /proc/PID/io."""
    from netlens_runtime import cgroups

    total = 0
    for pid in {p for d in rec["cgroup_dirs"] for p in cgroups.procs(d)}:
        try:
            text = Path(f"/proc/{pid}/io").read_text()
        except OSError:
            continue
        total += int(text.split("wchar: ")[1].split()[0])
    return total


def _logs_size(rt: Rt, half: int | None = None) -> int:
    """Bytes the logs take, each file (inode) once: a rotation renames a file while
    the directory is listed, and a renamed file must not be counted under both names.
    With ``half``, also checks that no file is ever bigger than half the cap."""
    sizes: dict[int, int] = {}
    for f in os.scandir(rt.state_dir / "logs"):
        try:
            st = f.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # rotated away between listing and stat
        assert half is None or st.st_size <= half, (f.name, st.st_size)
        sizes[st.st_ino] = st.st_size
    return sum(sizes.values())


@pytest.mark.parametrize("logger", ["native", "shell"])
def test_yes_cannot_write_more_than_the_log_size(rt: Rt, logger: str) -> None:
    """``run -d -- yes`` wrote 2 GB to /run in 3 s; now its log is capped and rotated."""
    from netlens_runtime import api, state

    if logger == "shell":
        rt.env["NETLENS_SPAWN_HELPER"] = "0"
    name = rt.name("y")
    cap = 256 << 10
    rt.cli("run", "-d", "--name", name, "--log-size", "256k", "--network", "none",
           "--", "sh", "-c", "yes")  # fmt: skip
    rec = api.get_container(name)
    assert rec["log_size"] == cap
    _wait(lambda: _written(rec) > 16 * cap, "yes to write 16 times the cap")
    sizes = [_logs_size(rt, cap // 2) for _ in range(200)]
    assert max(sizes) <= cap, max(sizes)
    assert os.path.getsize(state.rotated_log_path(name)) > cap // 4  # it rotated
    assert api.is_running(rec)  # slowed to the logger's pace, not killed
    out = rt.cli("logs", name).stdout
    assert set(out) == {"y", "\n"} and len(out) > cap // 4
    rt.cli("rm", "-f", name)
    assert not os.path.exists(state.log_path(name))
    assert not os.path.exists(state.rotated_log_path(name))


def test_default_log_size_caps_yes_at_10_mib(rt: Rt) -> None:
    from netlens_runtime import api, names

    name = rt.name("yd")
    rt.cli("run", "-d", "--name", name, "--network", "none", "--", "sh", "-c", "yes")
    rec = api.get_container(name)
    _wait(lambda: _written(rec) > 3 * names.LOG_SIZE_DEFAULT, "yes to write 30 MiB")
    assert _logs_size(rt) <= names.LOG_SIZE_DEFAULT == 10 << 20
    rt.cli("rm", "-f", name)


def test_logs_follow_across_rotations_without_a_gap(rt: Rt) -> None:
    name = rt.name("lf")
    script = ("i=0; for b in $(seq 1 40); do for j in $(seq 1 500); do i=$((i+1));"
              " echo line-$i; done; sleep 0.05; done")  # fmt: skip
    rt.cli("run", "-d", "--name", name, "--log-size", "64k", "--network", "none",
           "--", "sh", "-c", script)  # fmt: skip
    follow = rt.cli("logs", "-f", name, timeout=120)
    nums = [int(line.split("-")[1]) for line in follow.stdout.splitlines()]
    assert nums[-1] == 20000
    assert nums == list(range(nums[0], 20001)), "a line lost or repeated"
    assert len(nums) >= 1000  # at least the last rotated half and the current file


def test_batch_containers_log_through_their_loggers(rt: Rt, spawn_path: str) -> None:  # noqa: F811
    from netlens_runtime import api

    specs = [api.ContainerSpec(name=rt.name(f"b{i}"), network=None, log_size="64k",
                               command=["sh", "-c", "echo hello-$HOSTNAME; sleep 1000"])
             for i in range(3)]  # fmt: skip
    api.create_containers(specs)
    for spec in specs:
        _wait(lambda s=spec: f"hello-{s.name}" in rt.cli("logs", s.name).stdout, "the log")
    loggers = _loggers(rt)
    assert len(loggers) == 3
    api.remove_containers([s.name for s in specs])
    _wait(lambda: not _loggers(rt), "the loggers to exit at EOF")


def _loggers(rt: Rt) -> list[int]:
    """Live logger processes writing into this state directory: named netlens-log (the
    C logger's comm, the shell logger's argv[0]) with a log of ours open."""
    logs = str(rt.state_dir / "logs") + "/"
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            stat = Path(f"/proc/{pid}/stat").read_text()
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        named = argv0 == b"netlens-log" or comm == "netlens-log"
        alive = stat.rsplit(")", 1)[1].split()[0] != "Z"
        if named and alive and any(fd.startswith(logs) for fd in fds):
            out.append(int(pid))
    return out


def test_logger_survives_the_callers_process_group(rt: Rt) -> None:
    """The logger has its own session: killing the group of whoever ran ``run -d``
    (a CI runner) leaves the container's log working."""
    name = rt.name("sg")
    proc = subprocess.Popen(
        [sys.executable, "-m", "netlens", "run", "-d", "--name", name, "--network", "none",
         "--", "sh", "-c", "while :; do echo tick; sleep 0.1; done"],
        env=rt.env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    (logger,) = _loggers(rt)
    assert os.getsid(logger) == logger != proc.pid and os.getpgid(logger) != proc.pid
    _wait(lambda: "tick" in rt.cli("logs", name).stdout, "ticks in the log")


# --- the same rules through the CLI ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["network", "create", "N", "--subnet", "127.0.0.0/24"], "loopback"),
        (["network", "create", "N", "--subnet", "224.0.0.0/24"], "multicast"),
        (["network", "create", "N", "--subnet", "0.0.0.0/8"], "'this network'"),
        (["network", "create", "N", "--subnet", "240.0.0.0/24"], "class E"),
        (["network", "create", "N", "--subnet", "fd00::/64"], "IPv6"),
        (["run", "-d", "--name", "C", "--hostname", "a_b", "--", "true"], "hostname"),
        (["run", "-d", "--name", "C", "--hostname", "h" * 65, "--", "true"], "hostname"),
        (["run", "-d", "--name", "C", "--sysctl", "net.IPv4.ip_forward=1", "--", "true"],
         "sysctl"),
        (["run", "-d", "--name", "C", "--cap-add", "FLY", "--", "true"], "capability"),
        (["run", "-d", "--name", "C", "--memory", "3m", "--", "true"], "minimum 4m"),
        (["run", "-d", "--name", "C", "--log-size", "1k", "--", "true"], "minimum 64k"),
    ],
)  # fmt: skip
def test_cli_refuses_what_the_rules_refuse_and_makes_nothing(
    rt: Rt, args: list[str], text: str
) -> None:
    from netlens_runtime import names, state

    args = [rt.name("n") if a == "N" else rt.name("c") if a == "C" else a for a in args]
    _one_line(rt.cli(*args, check=False), 2, text)
    scope = state.scope()
    ours = (names.bridge_name("default", scope), names.bridge_name(rt.name("n"), scope),
            names.host_veth_name(rt.name("c"), scope))  # fmt: skip
    assert not [link for link in ours if _exists(link)]
    for kind in ("containers", "networks"):
        assert not (rt.state_dir / kind).exists() or not os.listdir(rt.state_dir / kind)


def test_memory_sizes_docker_writes_work_end_to_end(rt: Rt) -> None:
    from netlens_runtime import api

    name = rt.name("m")
    rt.cli("run", "-d", "--name", name, "--memory", "1.5g", "--network", "none",
           "--", "sleep", "1000")  # fmt: skip
    rec = api.get_container(name)
    assert rec["memory"] == 3 << 29
    files = ("memory.max", "memory.limit_in_bytes")
    limits = [Path(d) / f for d in rec["cgroup_dirs"] for f in files if (Path(d) / f).exists()]
    assert limits and all(p.read_text().strip() == str(3 << 29) for p in limits)
