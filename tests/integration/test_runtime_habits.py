"""Docker habits on real containers: ``ps -a/-q/--format/--filter``, ``rm -f $(ps -q)``,
and a detached container that outlives its caller's process group.

Each test has its own NETLENS_STATE_DIR and names ``nh`` + RUN_TAG; the fixture
removes every container and network of it, pass or fail, and fails if anything
was left on the host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUN_TAG, is_root
from runtime_host import teardown_state

pytestmark = pytest.mark.integration

_INDEX = iter(range(1000))


class Rt:
    """Names, subnet and a CLI runner for one test's state directory."""

    def __init__(self, state_dir: Path, index: int) -> None:
        self.state_dir = state_dir
        self.env = {**os.environ, "NETLENS_STATE_DIR": str(state_dir), "NETLENS_NO_LOG": "1"}
        self.octet = (int(RUN_TAG, 16) * 11 + index * 17) % 200 + 20

    def name(self, short: str) -> str:
        return f"nh{RUN_TAG}{short}"

    def subnet(self) -> str:
        return f"10.{self.octet}.{int(RUN_TAG, 16) % 250}.0/24"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "netlens", *args],
            env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(f"netlens {' '.join(args)} -> {res.returncode}: {res.stderr}")
        return res


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rt]:
    if not is_root():
        pytest.skip("needs root")
    state_dir = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state_dir))
    try:
        yield Rt(state_dir, next(_INDEX))
    finally:
        left = teardown_state(state_dir)
    assert not left, left


def _lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    return res.stdout.split()


def test_ps_all_quiet_format_and_filters(rt: Rt) -> None:
    net = rt.name("n")
    rt.cli("network", "create", net, "--subnet", rt.subnet())
    web, db, solo = rt.name("web"), rt.name("db"), rt.name("solo")
    rt.cli("run", "-d", "--name", web, "--network", net, "-l", "role=web", "-l", "tier=front",
           "-p", f"{20000 + int(RUN_TAG, 16) % 20000}:80", "--", "sleep", "infinity")  # fmt: skip
    rt.cli("run", "-d", "--name", db, "--network", net, "-l", "role=db", "--", "sleep", "infinity")
    rt.cli("run", "-d", "--name", solo, "--network", "none", "--", "sleep", "infinity")
    rt.cli("stop", "-t", "1", db)

    # Default: running only; -a: stopped too (as Docker).
    assert _lines(rt.cli("ps", "-q")) == sorted([web, solo])
    assert _lines(rt.cli("ps", "-aq")) == sorted([web, db, solo])
    table = rt.cli("ps").stdout.splitlines()
    assert table[0].split() == ["NAME", "ID", "STATE", "PID", "NETWORK", "IP", "PORTS",
                                "VIEW", "SECURITY", "CREATED", "COMMAND"]  # fmt: skip
    assert table[1].split()[7] == "tools"  # the default host view: tools, not secrets
    assert [ln.split()[0] for ln in table[1:]] == sorted([web, solo])
    assert db in rt.cli("ps", "-a").stdout

    # Filters.
    assert _lines(rt.cli("ps", "-q", "--filter", "label=role=web")) == [web]
    assert _lines(rt.cli("ps", "-q", "--filter", "label=role=db")) == []  # stopped
    assert _lines(rt.cli("ps", "-aq", "-f", "label=role=db")) == [db]
    assert _lines(rt.cli("ps", "-q", "--filter", "status=exited")) == [db]
    assert _lines(rt.cli("ps", "-aq", "--filter", f"network={net}")) == sorted([web, db])
    assert _lines(rt.cli("ps", "-aq", "--filter", "label=role", "--filter", "name=web")) == [web]
    bad = rt.cli("ps", "--filter", "colour=red", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1

    # --format json: a list of objects with stable keys, from the live records.
    objs = {o["name"]: o for o in json.loads(rt.cli("ps", "-a", "--format", "json").stdout)}
    assert set(objs) == {web, db, solo}
    w = objs[web]
    assert set(w) == {"name", "id", "state", "pid", "networks", "addresses", "ports", "rootfs",
                      "view", "command", "created", "labels", "privileged",
                      "security"}  # fmt: skip
    assert w["security"] == "default"
    assert w["view"] == "tools"
    assert w["state"] == "running" and w["networks"] == [net]
    assert w["command"] == ["sleep", "infinity"]
    assert w["labels"] == {"role": "web", "tier": "front"} and w["privileged"] is False
    assert (
        os.stat(f"/proc/{w['pid']}/ns/net").st_ino
        == json.loads(rt.cli("inspect", web).stdout)["netns_inode"]
    )
    (addr,) = w["addresses"]
    assert (
        addr.endswith("/24")
        and addr.split("/")[0]
        in rt.cli("exec", web, "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    )
    assert [p["port"] for p in w["ports"]] == [80]
    assert objs[db]["state"] == "exited" and objs[db]["pid"] is None
    assert objs[solo]["networks"] == [] and objs[solo]["addresses"] == []


def test_rm_f_of_ps_q_then_nothing_left_to_remove(rt: Rt) -> None:
    names = [rt.name(f"r{i}") for i in range(3)]
    for name in names:
        rt.cli("run", "-d", "--name", name, "--network", "none", "--", "sleep", "infinity")
    cmd = f"{sys.executable} -m netlens"
    res = subprocess.run(["bash", "-c", f"{cmd} rm -f $({cmd} ps -q)"], env=rt.env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == sorted(names)
    assert rt.cli("ps", "-aq").stdout == ""
    again = subprocess.run(["bash", "-c", f"{cmd} rm -f $({cmd} ps -q)"], env=rt.env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip().splitlines() == ["netlens rm: requires at least 1 container name "
                                                 "(none given)"]  # fmt: skip


def _sid_pgid(pid: int) -> tuple[int, int]:
    """(session, process group) of ``pid`` from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[3]), int(fields[2])  # after ')': state ppid pgrp session


def _spawn_env(rt: Rt, spawn_path: str) -> dict[str, str]:
    env = dict(rt.env)
    env.pop("NETLENS_SPAWNER", None)
    env.pop("NETLENS_SPAWN_HELPER", None)
    if spawn_path != "direct":
        env["NETLENS_SPAWNER"] = "1"
    if spawn_path == "python":
        env["NETLENS_SPAWN_HELPER"] = "0"
    if spawn_path == "native":
        from netlens_runtime import helper

        if helper.find() is None:
            pytest.skip("netlens-spawn cannot be built here (no C compiler)")
    return env


@pytest.mark.parametrize("spawn_path", ["direct", "native", "python"])
def test_detached_container_survives_kill_of_callers_group(rt: Rt, spawn_path: str) -> None:
    """``run -d`` from a CI-runner-like caller: its group dies, the container does not."""
    from netlens_runtime import api, state

    name = rt.name("d")
    cmd = f"{sys.executable} -m netlens run -d --name {name} --network none -- sleep infinity"
    # The caller leads its own session and group and stays alive after run -d returns.
    caller = subprocess.Popen(
        ["sh", "-c", f"{cmd} >/dev/null && echo up && exec sleep 300"],
        env=_spawn_env(rt, spawn_path), stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert caller.stdout is not None and caller.stdout.readline().strip() == "up"
        rec = state.load_container(name)
        assert rec is not None and api.is_running(rec)
        pid = int(rec["pid"])
        sid, pgid = _sid_pgid(pid)
        assert (sid, pgid) == (pid, pid), "PID 1 leads its own session and group"
        assert caller.pid not in (sid, pgid)
        ps_out = subprocess.run(["ps", "-o", "sid=,pgid=", "-p", str(pid)],
                                capture_output=True, text=True).stdout.split()  # fmt: skip
        assert ps_out == [str(pid), str(pid)]
    finally:
        os.killpg(caller.pid, signal.SIGKILL)
        caller.wait()
    # The caller's group is gone; the container still runs and answers exec.
    assert api.is_running(rec)
    assert rt.cli("exec", name, "--", "true").returncode == 0
    assert api.is_running(rec)


def test_attached_run_has_its_own_session_and_the_caller_forwards_signals(rt: Rt) -> None:
    """Without -d the container is in a session of its own too (no controlling terminal:
    no TIOCSTI into the caller's shell), and ``netlens run`` forwards SIGTERM to it, so
    stopping the caller stops and removes the container."""
    from netlens_runtime import api, state

    name = rt.name("a")
    caller = subprocess.Popen(
        [sys.executable, "-m", "netlens", "run", "--name", name, "--network", "none", "--",
         "sh", "-c", "echo up; exec sleep 300"],
        env=rt.env, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert caller.stdout is not None and caller.stdout.readline().strip() == "up"
        rec = state.load_container(name)
        assert rec is not None and api.is_running(rec)
        sid, pgid = _sid_pgid(int(rec["pid"]))
        assert sid != caller.pid and pgid != caller.pid
        caller.send_signal(signal.SIGTERM)  # forwarded to the container's PID 1
        caller.wait(timeout=30)
        assert not api.is_running(rec)
        assert state.load_container(name) is None  # an attached run removes its container
    finally:
        if caller.poll() is None:
            os.killpg(caller.pid, signal.SIGKILL)
            caller.wait()


def test_runtime_bridges_named_by_their_network_in_dump_exports_and_stats(rt: Rt) -> None:
    """A real runtime network: dump, every export and stats call its bridge
    ``<network> (<bridge>)`` (discovery reads the runtime's state like any engine's)."""
    net = rt.name("lan")
    info = rt.cli("network", "create", net, "--subnet", rt.subnet(), "--no-nat").stdout.split()
    bridge = info[1]
    rt.cli("run", "-d", "--name", rt.name("w"), "--network", net, "--", "sleep", "infinity")
    label = f"{net} ({bridge})"

    doc = json.loads(rt.cli("dump", "--json").stdout)
    host = next(ns for ns in doc["namespaces"] if ns["is_host"])
    itf = next(i for i in host["interfaces"] if i["name"] == bridge)
    assert itf["kind"] == "bridge" and itf["network"] == net

    for fmt in ("dot", "mermaid", "graphml"):
        assert label in rt.cli("dump", "--format", fmt).stdout, fmt

    stats = json.loads(rt.cli("stats", "--json", "--count", "1", "--interval", "0.2").stdout)
    key = f"{host['id']}/{itf['ifindex']}"
    assert key in stats["bridges"] and stats["names"][key] == label
    table = rt.cli("stats", "--count", "1", "--interval", "0.2").stdout
    assert label in table
