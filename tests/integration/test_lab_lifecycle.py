"""``lab stop|start|restart`` on real labs: the wiring stays, the command runs again.

Each test builds its own lab in its own state directory (the ``labstate`` fixture
removes it all afterwards, pass or fail, fails on anything left, and
``runtime_host.teardown_state`` also fails on a held namespace left mounted).
Interfaces are compared as the kernel reports them inside the node's namespace
(``ip -j addr`` through ``nsenter``): index, flags, state, peer index and peer
namespace id, IPv4 addresses. Nothing is sent anywhere but between namespaces
the test created.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG
from runtime_host import free_octet, held_namespaces

from netlens.cli import main
from netlens.discovery.nsfind import find_namespaces
from netlens_runtime import api, cgroups, lab_ops, lab_record, liveness, nshold
from netlens_runtime.errors import RuntimeFailure
from netlens_runtime.lab_model import LabSpec
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.integration

OCTET = free_octet(int(RUN_TAG, 16) + 40)

LAB = """
name: lc
networks:
  lan: {{subnet: 10.{o}.60.0/24}}
nodes:
  a:
    network: lan
    ip: 10.{o}.60.10
    memory: 32m
    cap_add: [NET_ADMIN]
    links:
      - {{peer: b, ifname: p2p0, addr: 10.{o}.61.1/30, peer_addr: 10.{o}.61.2/30}}
  b:
    network: lan
    ip: 10.{o}.60.11
    routes: [{{to: 10.{o}.62.0/24, via: 10.{o}.61.1}}]
links:
  - a: {{node: a, ifname: p2p1, addr: 10.{o}.63.1/30}}
    b: {{node: b, ifname: p2p1, addr: 10.{o}.63.2/30}}
    impair: {{rate: 8mbit}}
"""


def _lab(tmp_path: Path, suffix: str) -> LabSpec:
    path = tmp_path / "lc.yaml"
    path.write_text(LAB.format(o=OCTET))
    spec = load_lab(str(path), name=f"lc{RUN_TAG}{suffix}")
    lab_ops.lab_up(spec)
    return spec


def _rec(spec: LabSpec, node: str) -> dict[str, Any]:
    return api.get_container(lab_record.node_name(spec.name, node))


def _in(netns: str, argv: list[str]) -> str:
    res = subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _v4(addrs: list[dict[str, Any]]) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in addrs if a["family"] == "inet"]


def _ifaces(netns: str) -> dict[str, tuple[Any, ...]]:
    """Every interface of the namespace as the kernel reports it."""
    return {
        i["ifname"]: (
            i["ifindex"],
            tuple(sorted(i["flags"])),
            i["operstate"],
            i.get("link_index"),
            i.get("link_netnsid"),
            tuple(sorted(_v4(i["addr_info"]))),
        )
        for i in json.loads(_in(netns, ["ip", "-j", "addr"]))
    }


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _confinement(pid: int) -> dict[str, Any]:
    """What confines a node's PID 1: capabilities, no_new_privs, seccomp, cgroups, its
    mounts as it sees them (mount point, type, options: not the ids or the order of
    mounts on distinct points), its hostname."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
    mounts = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        mounts.append((fields[4], fields[5], right.split()[0], right.split()[2]))
    uts = subprocess.run(["nsenter", f"--uts=/proc/{pid}/ns/uts", "hostname"],
                         capture_output=True, text=True).stdout  # fmt: skip
    return {
        "status": {k: status[k].strip() for k in keys},
        "cgroup": Path(f"/proc/{pid}/cgroup").read_text(),
        "mounts": sorted(mounts),  # /etc's masks come in the order a directory listing gave
        "hostname": uts,
    }


def _still_held(inodes: set[int], state_dir: Path) -> list[str]:
    """What still holds our namespaces the way the runtime would: a mount under the
    state directory, or a process in one of this state directory's cgroups. Not a
    bare inode match: the machine is shared, and a namespace made by anyone after
    ours died may get its inode number (and another session's inspector may be
    walking through it)."""
    from netlens_runtime import state

    root = os.path.realpath(state_dir)
    out = []
    for h in find_namespaces():
        if h.inode in inodes:
            mine = [m for m in h.mounts if m.startswith(root + "/")]
            mine += [str(p) for p in h.pids if _in_scope(p, state.scope())]
            if mine:
                out.append(f"{h.inode}: {mine}")
    return out


def _in_scope(pid: int, scope: str) -> bool:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    return any(line.endswith(f".{scope}") for line in lines)


def _command_of(pid: int) -> list[str]:
    """The command tini runs (its one child), as argv, once tini has forked and the
    child has exec'd it (a start returns when tini runs, not its command)."""
    deadline = time.monotonic() + 10
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        argv: list[str] = []
        if len(children) == 1:
            raw = Path(f"/proc/{children[0]}/cmdline").read_bytes()
            argv = raw.decode().split("\0")[:-1]
        if (argv and "tini" not in argv[0]) or time.monotonic() > deadline:
            return argv
        time.sleep(0.01)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _netlens(*argv: str) -> tuple[int, str, str]:
    """``netlens ARGV`` in a process of its own: ``exec`` enters the container's
    namespaces itself, which the test process must never do."""
    res = subprocess.run([sys.executable, "-m", "netlens", *argv], capture_output=True,
                         text=True, env={**os.environ, "NETLENS_NO_LOG": "1"})  # fmt: skip
    return res.returncode, res.stdout, res.stderr


def _dumped(container: str) -> dict[str, Any]:
    """The namespace ``netlens dump --json`` reports for ``container``."""
    dump = subprocess.run(
        [sys.executable, "-m", "netlens", "dump", "--json", "--container", container],
        capture_output=True, text=True, env={**os.environ, "NETLENS_NO_LOG": "1"},
    )  # fmt: skip
    assert dump.returncode == 0, dump.stderr
    doc = json.loads(dump.stdout)
    (ctr,) = [c for c in doc["containers"] if c["name"] == container]
    (ns,) = [n for n in doc["namespaces"] if n["id"] == ctr["netns"]]
    return {"container": ctr, "netns": ns, "pairs": doc["veth_pairs"]}


def test_stop_keeps_the_wiring_and_start_runs_the_command_again(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _lab(tmp_path, "s")
    lab = spec.name
    a, b = _rec(spec, "a"), _rec(spec, "b")
    a_pid, b_pid, inode = int(a["pid"]), int(b["pid"]), int(a["netns_inode"])
    # a pulled cable inside a: its state must survive too
    _in(f"/proc/{a_pid}/ns/net", ["ip", "link", "set", "p2p0", "down"])
    a_before = _ifaces(f"/proc/{a_pid}/ns/net")
    b_before = _ifaces(f"/proc/{b_pid}/ns/net")
    assert {"eth0", "p2p0", "p2p1"} <= set(a_before) and "UP" not in a_before["p2p0"][1]
    confined = _confinement(a_pid)
    command = _command_of(a_pid)

    assert _cli(capsys, "lab", "stop", lab, "a") == (0, f"{lab}: a stopped\n", "")
    assert not _alive(a_pid) and _alive(b_pid)
    a = _rec(spec, "a")
    assert (a["state"], a["pid"]) == ("exited", 0)
    handle = nshold.handle_path(str(a["name"]))
    assert os.stat(handle).st_ino == inode
    assert held_namespaces(labstate) == [os.path.realpath(handle)]
    # every interface, address, peer and link state is still there, on both sides
    assert _ifaces(handle) == a_before
    assert _ifaces(f"/proc/{b_pid}/ns/net") == b_before
    assert "tbf" in _in(handle, ["tc", "qdisc", "show", "dev", "p2p1"])
    assert os.path.exists(f"/sys/class/net/{a['host_veth']}")
    # the kernel of the stopped node still answers on its wires
    _in(f"/proc/{b_pid}/ns/net", ["ping", "-c", "1", "-W", "2", f"10.{OCTET}.63.1"])
    # the inspector finds the namespace by its handle, with its links and peer
    dumped = _dumped(str(a["name"]))
    assert dumped["container"]["state"] == "exited" and dumped["netns"]["pids"] == []
    assert dumped["netns"]["inode"] == inode
    assert dumped["netns"]["mounts"] == [os.path.realpath(handle)]
    by_name = {i["name"]: i for i in dumped["netns"]["interfaces"]}
    assert {"eth0", "p2p0", "p2p1"} <= set(by_name)
    ours = f"{dumped['netns']['id']}/{a_before['p2p1'][0]}"
    peer = f"netns:{b['netns_inode']}/{b_before['p2p1'][0]}"
    assert by_name["p2p1"]["peer"] == peer
    assert {"a": ours, "b": peer} in dumped["pairs"] or {"a": peer, "b": ours} in dumped["pairs"]

    # idempotent; exec says what to do
    assert _cli(capsys, "lab", "stop", lab, "a") == (0, f"{lab}: a is already stopped\n", "")
    code, out, err = _netlens("exec", str(a["name"]), "--", "true")
    assert code == 1 and out == ""
    assert err == (
        f"netlens: container {a['name']} is stopped: start it with 'netlens lab start {lab} a'\n"
    )
    assert _netlens("lab", "exec", lab, "a", "--", "true") == (1, "", err)
    # the records agree: ps -a, lab ls
    code, out, _ = _cli(capsys, "ps", "-a", "--format", "json")
    shown = {o["name"]: o for o in json.loads(out)}
    assert (shown[str(a["name"])]["state"], shown[str(a["name"])]["pid"]) == ("exited", None)
    assert shown[str(b["name"])]["state"] == "running"
    code, out, _ = _cli(capsys, "lab", "ls")
    (row,) = [line.split() for line in out.splitlines() if line.startswith(lab + " ")]
    assert row[1:5] == ["up", "2", "1", "1"]  # status, nodes, running, networks
    # its links can still be changed: a rate on the pulled cable, kept after start
    assert _cli(capsys, "link", "set", f"{lab}:a:p2p0", "--rate", "5mbit")[0] == 0
    assert "tbf" in _in(handle, ["tc", "qdisc", "show", "dev", "p2p0"])
    wired = _ifaces(handle)  # with the ifb the ingress half of the rate needs

    assert _cli(capsys, "lab", "start", lab, "a") == (0, f"{lab}: a started\n", "")
    a = _rec(spec, "a")
    new_pid = int(a["pid"])
    assert a["state"] == "running" and new_pid != a_pid and _alive(new_pid)
    assert os.stat(f"/proc/{new_pid}/ns/net").st_ino == inode
    assert _ifaces(f"/proc/{new_pid}/ns/net") == wired
    assert _command_of(new_pid) == command == ["sleep", "infinity"]
    assert "tbf" in _in(f"/proc/{new_pid}/ns/net", ["tc", "qdisc", "show", "dev", "p2p0"])
    assert _confinement(new_pid) == confined
    assert _cli(capsys, "lab", "start", lab, "a") == (0, f"{lab}: a is already running\n", "")
    assert _netlens("exec", str(a["name"]), "--", "ip", "link", "show", "p2p1")[0] == 0
    assert _netlens("lab", "exec", lab, "a", "--", "ip", "link", "show", "p2p0")[0] == 0
    assert lab_ops.lab_down(lab) == []
    assert held_namespaces(labstate) == []


def test_restart_and_lab_down_of_stopped_nodes_leave_nothing(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _lab(tmp_path, "r")
    lab = spec.name
    before = {n: _rec(spec, n) for n in ("a", "b")}
    code, out, _ = _cli(capsys, "lab", "restart", lab, "-t", "2")  # no NODE: all of them
    assert code == 0 and out == f"{lab}: a restarted\n{lab}: b restarted\n"
    for node, old in before.items():
        new = _rec(spec, node)
        assert new["pid"] != old["pid"] and _alive(int(new["pid"]))
        assert new["netns_inode"] == old["netns_inode"]
        assert os.stat(f"/proc/{new['pid']}/ns/net").st_ino == old["netns_inode"]
    # a restarted node keeps its handle: its command ending on its own (a crash)
    # no longer takes its wiring along, and it can be started again
    assert len(held_namespaces(labstate)) == 2
    crashed = _rec(spec, "a")
    os.kill(int(crashed["pid"]), signal.SIGKILL)
    assert liveness.wait_dead([int(crashed["pid"])], 10) == []
    assert _cli(capsys, "lab", "stop", lab, "a")[1] == f"{lab}: a is already stopped\n"
    assert _rec(spec, "a")["pid"] == 0  # the dead pid is not kept
    assert _cli(capsys, "lab", "start", lab, "a")[1] == f"{lab}: a started\n"
    assert os.stat(f"/proc/{_rec(spec, 'a')['pid']}/ns/net").st_ino == crashed["netns_inode"]
    assert _cli(capsys, "lab", "stop", lab)[1] == f"{lab}: a stopped\n{lab}: b stopped\n"
    inodes = {int(r["netns_inode"]) for r in before.values()}
    veths = [str(r["host_veth"]) for r in before.values()]
    assert inodes <= {h.inode for h in find_namespaces()}

    assert lab_ops.lab_down(lab) == []
    assert held_namespaces(labstate) == []
    assert _still_held(inodes, labstate) == []
    assert not any(os.path.exists(f"/sys/class/net/{v}") for v in veths)
    assert api.list_containers() == [] and lab_record.list_labs() == []


def test_gc_releases_the_namespace_of_a_node_whose_record_is_gone(
    labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _lab(tmp_path, "g")
    a = _rec(spec, "a")
    assert _cli(capsys, "lab", "stop", spec.name, "a")[0] == 0
    Path(labstate / "containers" / f"{a['name']}.json").write_text("{")  # torn
    removed = api.gc()
    assert f"held network namespace of {a['name']}" in removed
    assert held_namespaces(labstate) == []
    assert _still_held({int(a["netns_inode"])}, labstate) == []


def test_a_start_that_fails_kills_what_it_cloned_and_keeps_the_nodes_stopped(
    labstate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _lab(tmp_path, "f")
    from netlens_runtime.lab_lifecycle import start_nodes, stop_nodes

    stop_nodes(spec.name, [], 2.0)
    held = {n: _rec(spec, n) for n in ("a", "b")}
    for fault in ("lab_start_before_exec", "lab_start_after_exec"):
        monkeypatch.setenv("NETLENS_FAULT", fault)
        with pytest.raises(RuntimeFailure, match="injected fault"):
            start_nodes(spec.name, [])
        for node, rec in held.items():
            now = _rec(spec, node)
            assert (now["state"], now["pid"]) == ("exited", 0), fault
            assert nshold.held(now)
            assert all(cgroups.procs(d) == [] for d in rec["cgroup_dirs"]), (fault, node)
    monkeypatch.delenv("NETLENS_FAULT")
    start_nodes(spec.name, ["b", "a"])
    assert all(_alive(int(_rec(spec, n)["pid"])) for n in ("a", "b"))


def test_unknown_lab_or_node_and_no_root_say_so_in_one_line(
    labstate: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _lab(tmp_path, "e")
    lab = spec.name
    code, out, err = _cli(capsys, "lab", "stop", lab[:-1] + "x", "a")
    assert code == 1 and out == ""
    assert err == (
        f"netlens: no lab named '{lab[:-1]}x'; did you mean '{lab}'? (see 'netlens lab ls')\n"
    )
    code, _, err = _cli(capsys, "lab", "start", lab, "a", "bb")
    assert code == 1
    assert err == f"netlens: lab '{lab}' has no node 'bb'; did you mean 'b'?\n"
    assert _rec(spec, "a")["state"] == "running"  # nothing done before the refusal
    # a stopped node whose namespace went is refused in one line, not started fresh
    code, _, err = _cli(capsys, "stop", lab_record.node_name(lab, "b"))  # not a lab stop
    assert code == 0
    code, _, err = _cli(capsys, "lab", "start", lab, "b")
    assert code == 1 and len(err.splitlines()) == 1
    assert "b cannot start: its network namespace is gone" in err
    a_pid = _rec(spec, "a")["pid"]  # restart refuses before it stops anything
    assert _cli(capsys, "lab", "restart", lab) == (1, "", err)
    assert _rec(spec, "a")["pid"] == a_pid and _alive(int(a_pid))
    with monkeypatch.context() as m:
        m.setattr(os, "geteuid", lambda: 1000)
        for verb in ("stop", "start", "restart"):
            code, _, err = _cli(capsys, "lab", verb, lab)
            assert code == 77, verb
            assert err.startswith(f"netlens: lab {verb} needs root ("), err
            assert len(err.splitlines()) == 1


def test_a_handle_holds_only_the_recorded_namespace(labstate: Path) -> None:
    """What lies at a handle's path is checked, never trusted: a plain file or another
    namespace's mount there is not the node's namespace, and is replaced by it."""
    proc = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        own = os.stat("/proc/self/ns/net").st_ino
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == own:  # until unshare ran
            assert time.monotonic() < deadline
            time.sleep(0.01)
        inode = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        rec = {"name": "x1", "netns_inode": inode}
        os.makedirs(labstate / "netns", exist_ok=True)
        path = nshold.handle_path("x1")
        Path(path).write_text("")  # planted: not a namespace
        assert not nshold.held(rec) and nshold.open_held("x1", inode) is None
        with pytest.raises(OSError):  # the pid is not in the namespace asked for
            nshold.hold("x1", os.getpid(), inode)
        assert not os.path.lexists(path)
        Path(path).touch()
        subprocess.run(["mount", "--bind", "/proc/self/ns/net", path], check=True)
        assert not nshold.held(rec)  # the host's namespace there is not the node's
        nshold.hold("x1", proc.pid, inode)
        assert nshold.held(rec) and held_namespaces(labstate) == [os.path.realpath(path)]
        nshold.hold("x1", proc.pid, inode)  # held already: nothing stacked
        assert held_namespaces(labstate) == [os.path.realpath(path)]
        assert nshold.release("x1") and not os.path.lexists(path)
        assert held_namespaces(labstate) == [] and not nshold.release("x1")
    finally:
        proc.kill()
        proc.wait()
        for point in held_namespaces(labstate):
            subprocess.run(["umount", "-l", point], check=False)
