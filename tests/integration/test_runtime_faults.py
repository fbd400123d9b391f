"""Faults: rollback of failed creates, gc after SIGKILL, forwarding under a DROP policy.

Failures are injected with NETLENS_FAULT=<point> (fail) or hang_<point>
(hang, so the test can SIGKILL the command right there).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import is_root
from runtime_host import KernelState, kernel_changes, kernel_state, teardown_state

pytestmark = pytest.mark.integration

_INDEX = iter(range(1000))


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not is_root():
        pytest.skip("needs root")
    from test_runtime_containers import Rt

    state_dir = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state_dir))
    helper = Rt(state_dir, 500 + next(_INDEX))
    before = kernel_state(state_dir)
    try:
        yield helper
    finally:
        known = kernel_state(state_dir).names
        left = teardown_state(state_dir)
        left += kernel_changes(before, kernel_state(state_dir), known=known)
    assert not left, left


def _kernel(also: list[str] | None = None) -> KernelState:
    """The kernel's view of this test's state directory (nft, iptables, cgroups, sysctls)."""
    return kernel_state(Path(os.environ["NETLENS_STATE_DIR"]), also=also or [])


def _leftovers(name: str) -> list[str]:
    """Everything of container ``name`` that exists on the host or in state."""
    from netlens_runtime import names, state

    out = []
    scope = state.scope()
    if os.path.exists(state.container_path(name)):
        out.append("record")
    if os.path.exists(state.log_path(name)):
        out.append("log")
    veth = names.host_veth_name(name, scope)
    if os.path.exists(f"/sys/class/net/{veth}"):
        out.append(f"link {veth}")
    leaf = names.cgroup_leaf(name, scope)
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if leaf in dirs:
            out.append(f"cgroup {root}/{leaf}")
        dirs[:] = [d for d in dirs if d in ("netlens",) or root == "/sys/fs/cgroup"]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if f"/{leaf}\n" in Path(f"/proc/{pid}/cgroup").read_text():
                    out.append(f"process {pid}")
            except OSError:
                pass
    for net in state.load_networks().values():
        if name in net["allocations"].values():
            out.append(f"address on {net['name']}")
        if name in net["published"]:
            out.append(f"ports on {net['name']}")
    if os.listdir(state.sub("pending")):
        out.append("journal")
    return out


def _settled(name: str, timeout: float = 30.0) -> list[str]:
    """Leftovers once the kernel had time to tear namespaces (and their veths) down."""
    deadline = time.monotonic() + timeout
    while (left := _leftovers(name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("point", ["after_clone", "after_veth", "before_exec", "after_exec",
                                   "after_commit"])  # fmt: skip
def test_failed_batch_rolls_back_everything(
    rt: Any, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netlens_runtime import api
    from netlens_runtime.errors import RuntimeFailure

    net = api.create_network(api.NetworkSpec(name=rt.name("n"), subnet=rt.subnet()))
    specs = [
        api.ContainerSpec(name=rt.name(f"f{i}"), network=net["name"], memory="64m",
                          publish=[f"{31000 + i}:80"] if i == 0 else [])
        for i in range(3)
    ]  # fmt: skip
    names = [s.name for s in specs]
    before = _kernel(names)
    monkeypatch.setenv("NETLENS_FAULT", point)
    with pytest.raises(RuntimeFailure, match=f"injected fault at {point}"):
        api.create_containers(specs)
    monkeypatch.delenv("NETLENS_FAULT")
    for spec in specs:
        assert _settled(spec.name) == [], spec.name
    # the published port's DNAT, forward rules, cgroups: the kernel is as it was
    assert kernel_changes(before, _kernel(names)) == []
    # The same names work afterwards.
    recs = api.create_containers(specs)
    assert [r["state"] for r in recs] == ["running"] * 3


@pytest.mark.parametrize("path", ["direct", "native", "python"])
def test_failed_exec_in_child_rolls_back(
    rt: Any, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A setup step failing inside the child (bad sysctl value) reports and rolls back,
    whether we cloned it or a spawner (the C program or the Python one) did."""
    from netlens_runtime import api
    from netlens_runtime.errors import RuntimeFailure

    if path != "direct":
        monkeypatch.setenv("NETLENS_SPAWNER", "1")
    if path == "python":
        monkeypatch.setenv("NETLENS_SPAWN_HELPER", "0")

    spec = api.ContainerSpec(name=rt.name("sx"), network=None,
                             sysctls={"net.ipv4.ip_forward": "banana"})  # fmt: skip
    # A spawner only clones batches (a batch of one is cloned by us).
    other = api.ContainerSpec(name=rt.name("sy"), network=None)
    specs = [spec] if path == "direct" else [other, spec]
    before = _kernel([s.name for s in specs])
    with pytest.raises(RuntimeFailure, match=rt.name("sx")):
        api.create_containers(specs)
    for one in specs:
        assert _settled(one.name) == [], one.name
    assert kernel_changes(before, _kernel([s.name for s in specs])) == []


@pytest.mark.parametrize("point", ["before_exec", "after_exec"])
def test_gc_after_sigkill_mid_create(rt: Any, point: str) -> None:
    from netlens_runtime import api, names, state

    net = api.create_network(api.NetworkSpec(name=rt.name("n"), subnet=rt.subnet()))
    name = rt.name("k")
    before = _kernel([name])
    env = {**rt.env, "NETLENS_FAULT": f"hang_{point}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "netlens", "run", "-d", "--name", name, "--network", net["name"],
         "--memory", "64m", "--", "sleep", "infinity"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        veth = names.host_veth_name(name, state.scope())
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/sys/class/net/{veth}"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "create never reached the hang point"
            time.sleep(0.05)
        time.sleep(0.3)  # let it get to the hang point itself
        assert os.listdir(state.sub("pending"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    removed = api.gc()
    assert any("half-created" in r for r in removed), removed
    assert _settled(name) == []
    assert kernel_changes(before, _kernel([name])) == []
    assert api.gc() == []  # nothing left to do


def _iptables_policy() -> str:
    out = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True)
    m = re.search(r"^-P FORWARD (\w+)", out.stdout, re.M)
    return m.group(1) if m else "ACCEPT"


def _ping(rt: Any, src: str, dst: str) -> bool:
    return rt.exec(src, "ping", "-c", "1", "-W", "1", dst, check=False).returncode == 0


def test_forwarding_under_iptables_forward_drop(rt: Any) -> None:
    from netlens_runtime import api, nat

    knob = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not knob.exists():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    if not knob.exists():
        pytest.skip("br_netfilter is not available")
    old_knob = knob.read_text().strip()
    had_filter = subprocess.run(["nft", "list", "table", "ip", "filter"],
                                capture_output=True).returncode == 0  # fmt: skip
    old_policy = _iptables_policy()
    before = _kernel()
    try:
        knob.write_text("1")
        subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], check=True)
        net = api.create_network(api.NetworkSpec(name=rt.name("n"), subnet=rt.subnet()))
        assert net["iptables_forward"]
        a, b = api.create_containers(
            [api.ContainerSpec(name=rt.name(s), network=net["name"]) for s in ("a", "b")]
        )
        rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        assert f"-i {net['bridge']}" in rules and f"-o {net['bridge']}" in rules
        assert _ping(rt, a["name"], b["ip"])
        # Control: without our accept rules the DROP policy does drop the bridge.
        nat.disallow_forward(net["bridge"])
        assert not _ping(rt, a["name"], b["ip"])
        nat.allow_forward(net["bridge"])
        assert _ping(rt, a["name"], b["ip"])
        api.remove_containers([a["name"], b["name"]])
        api.remove_network(net["name"])
        rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        assert net["bridge"] not in rules
        # the bridge's accept rules, the NAT table, the forwarding claim: all gone
        assert kernel_changes(before, _kernel(), known=[net["bridge"]]) == []
    finally:
        subprocess.run(["iptables", "-w", "-P", "FORWARD", old_policy], capture_output=True)
        if not had_filter:
            subprocess.run(["nft", "delete", "table", "ip", "filter"], capture_output=True)
        knob.write_text(old_knob)


@pytest.mark.parametrize(("helpers", "native"), [("1", "1"), ("2", "1"), ("1", "0"), ("2", "0")])
def test_batch_through_spawner_and_its_rollback(
    rt: Any, monkeypatch: pytest.MonkeyPatch, helpers: str, native: str
) -> None:
    """Big batches clone from helper processes (one, or the batch split over two;
    the C program netlens-spawn or the Python fallback); same records, same
    all-or-nothing."""
    from netlens_runtime import api
    from netlens_runtime.errors import RuntimeFailure

    monkeypatch.setenv("NETLENS_SPAWNER", "1")
    monkeypatch.setenv("NETLENS_SPAWNERS", helpers)
    monkeypatch.setenv("NETLENS_SPAWN_HELPER", native)
    net = api.create_network(api.NetworkSpec(name=rt.name("n"), subnet=rt.subnet()))
    specs = [api.ContainerSpec(name=rt.name(f"s{i}"), network=net["name"]) for i in range(3)]
    before = _kernel([s.name for s in specs])
    monkeypatch.setenv("NETLENS_FAULT", "after_veth")
    with pytest.raises(RuntimeFailure, match="injected fault"):
        api.create_containers(specs)
    monkeypatch.delenv("NETLENS_FAULT")
    for spec in specs:
        assert _settled(spec.name) == [], spec.name
    assert kernel_changes(before, _kernel([s.name for s in specs])) == []
    recs = api.create_containers(specs)
    for rec in recs:
        assert rec["cgroup"] in Path(f"/proc/{rec['pid']}/cgroup").read_text()
        assert os.stat(f"/proc/{rec['pid']}/ns/net").st_ino == rec["netns_inode"]
    assert rt.exec(recs[0]["name"], "ping", "-c", "1", "-W", "2", recs[2]["ip"]).returncode == 0


@pytest.mark.parametrize(("broken", "helpers"), [("garbage", "1"), ("silent", "2")])
def test_broken_native_spawner_falls_back_to_python(
    rt: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broken: str, helpers: str
) -> None:
    """A netlens-spawn that cannot run here (exec fails: wrong machine; or it exits
    127 without a report: a dynamic build against a newer C library) is dropped for
    this process and the batch is cloned by the Python spawner instead."""
    from netlens_runtime import api, helper

    program = tmp_path / "netlens-spawn-broken"
    if broken == "garbage":
        program.write_bytes(b"\x7fELF" + os.urandom(64))
    else:
        program.write_text("#!/bin/sh\nexit 127\n")
    program.chmod(0o755)
    monkeypatch.setattr(helper, "_forgotten", False)
    monkeypatch.setattr(helper, "PATH", str(program))
    assert helper.find() == str(program)  # trusted: ours, like an installed build
    monkeypatch.setenv("NETLENS_SPAWNER", "1")
    monkeypatch.setenv("NETLENS_SPAWNERS", helpers)
    specs = [api.ContainerSpec(name=rt.name(f"b{i}"), network=None) for i in range(3)]
    before = _kernel([s.name for s in specs])
    recs = api.create_containers(specs)
    assert [r["state"] for r in recs] == ["running"] * 3
    for rec in recs:
        assert rec["cgroup"] in Path(f"/proc/{rec['pid']}/cgroup").read_text()
    assert helper.find() is None  # not tried again in this process
    assert helper.status()[1] == "it failed at run time in this process"
    api.remove_containers([s.name for s in specs])
    for spec in specs:
        assert _settled(spec.name) == [], spec.name
    assert kernel_changes(before, _kernel([s.name for s in specs])) == []


@pytest.mark.parametrize("content", ["", "{torn"])
def test_gc_removes_unreadable_record_that_blocks_its_name(rt: Any, content: str) -> None:
    from netlens_runtime import api, state
    from netlens_runtime.errors import Conflict, NotFound

    name = rt.name("u")
    state.ensure_dirs()
    Path(state.container_path(name)).write_text(content)
    spec = api.ContainerSpec(name=name, network=None)
    with pytest.raises(Conflict):
        api.create_containers([spec])
    with pytest.raises(NotFound):
        api.remove_containers([name])
    removed = api.gc()
    assert f"file {state.container_path(name)}" in removed
    assert not os.path.exists(state.container_path(name))
    rec = api.create_containers([spec])[0]
    assert rec["name"] == name and rec["state"] == "running"


def test_kernel_check_sees_what_a_run_leaves_behind_and_nothing_else(rt: Any) -> None:
    """Negative control for runtime_host.kernel_changes: a NAT table with a chain,
    a FORWARD rule for one of our bridges, a cgroup of our scope and a forwarding
    claim left in the state directory are all reported; a table of someone else
    made at the same moment is not."""
    from netlens_runtime import names, nat, state

    scope = state.scope()
    table = nat.table_name()
    ghost = names.bridge_name(rt.name("ghost"), scope)
    foreign = f"nl{rt.name('x')}"[:30]
    base = next(
        (b for b in ("/sys/fs/cgroup/unified/netlens", "/sys/fs/cgroup/memory/netlens",
                     "/sys/fs/cgroup/netlens") if os.path.isdir(b)),
        None,
    )  # fmt: skip
    cg = f"{base}/ghost.{scope}" if base else None
    claim = Path(state.sub(nat.FORWARD_RECORD))
    before = _kernel()
    try:
        subprocess.run(["nft", "add", "table", "ip", table], check=True)
        subprocess.run(["nft", f"add chain ip {table} post {{ type nat hook postrouting "
                        "priority 100; }"], check=True)  # fmt: skip
        subprocess.run(["nft", "add", "table", "ip", foreign], check=True)
        subprocess.run(["nft", "add", "chain", "ip", foreign, "c"], check=True)
        subprocess.run(["iptables", "-w", "-I", "FORWARD", "-i", ghost, "-j", "ACCEPT"],
                       check=True)  # fmt: skip
        if cg:
            os.mkdir(cg)
        state.ensure_dirs()
        claim.write_text('{"previous": "0", "set": "1"}')
        found = kernel_changes(before, _kernel(), known=[ghost])
        assert f"nft added: table ip {table} {{ | table ip {table} {{" in found
        assert any(f.startswith(f"nft added: table ip {table} {{ | chain post") for f in found)
        assert f"iptables added: -A FORWARD -i {ghost} -j ACCEPT" in found
        if cg:
            assert f"cgroup added: {cg}" in found
        assert any(f.startswith("ip_forward.json left") for f in found)
        assert not any(foreign in f for f in found)  # someone else's table is not ours
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", foreign], capture_output=True)
        subprocess.run(["iptables", "-w", "-D", "FORWARD", "-i", ghost, "-j", "ACCEPT"],
                       capture_output=True)  # fmt: skip
        if cg and os.path.isdir(cg):
            os.rmdir(cg)
        claim.unlink(missing_ok=True)
    assert kernel_changes(before, _kernel(), known=[ghost]) == []  # and clean again
