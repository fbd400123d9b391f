"""What a container sees of the host's filesystem (issue 17) and of /proc and /sys (issue 16).

Each check runs in a default container made by ``netlens run`` (the single
container path: its child builds the view itself) and in lab nodes (the batch
path: a template builds it once, children cloned by us, by netlens-spawn or by
the Python spawner). A probe (the host's python3, run inside the container)
reports what it can read and write; writes to global sysctls write back the
value just read, never another, and the host's values are compared before and
after. Marker files put where the view must not reach (/root, /var/lib) prove
the host's own files stay hidden; they are removed afterwards, pass or fail.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG, is_root
from runtime_host import teardown_state

pytestmark = pytest.mark.integration

OCTET = 100 + int(RUN_TAG, 16) % 100
GLOBAL_SYSCTLS = (
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/fs/file-max",
)
EROFS = "!30"

# Runs inside the container (argv: marker paths). Prints one JSON document.
PROBE = r"""
import json, os, sys

def read(path, limit=4096):
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode(errors="replace")
    except OSError as err:
        return f"!{err.errno}"

def open_w(path):  # opening for writing is enough to be refused; nothing is written
    try:
        os.close(os.open(path, os.O_WRONLY))
        return "opened"
    except OSError as err:
        return f"!{err.errno}"

def write_same(path):  # writes back exactly what it read (harmless if it got through)
    value = read(path)
    if value.startswith("!"):
        return "!read" + value
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as err:
        return f"!{err.errno}"
    try:
        os.write(fd, value.encode())
        return "written"
    except OSError as err:
        return f"!write{err.errno}"
    finally:
        os.close(fd)

def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as err:
        return f"!{err.errno}"

print(json.dumps({
    "top": listing("/"),
    "shadow": read("/etc/shadow"),
    "gshadow": read("/etc/gshadow"),
    "root": listing("/root"),
    "home": listing("/home"),
    "present": {p: os.path.lexists(p) for p in [
        "/var/lib/docker", "/var/lib/containers", "/srv", "/mnt", "/media", *sys.argv[1:]
    ]},
    "sysctl_writes": {p: write_same(p) for p in SYSCTLS},
    "net_sysctl_write": write_same("/proc/sys/net/ipv4/conf/lo/rp_filter"),
    "sysrq": open_w("/proc/sysrq-trigger"),
    "keys": read("/proc/keys"),
    "kcore": read("/proc/kcore", 64),
    "timer_list": read("/proc/timer_list", 64),
    "sys_writes": {p: open_w(p) for p in [
        "/sys/class/net/lo/mtu", "/sys/kernel/uevent_helper", "/sys/kernel/mm/ksm/run"
    ]},
    "firmware": listing("/sys/firmware"),
    "sysctls": {k: read("/proc/sys/net/ipv4/" + k).strip()
                for k in ("ip_forward", "conf/eth0/rp_filter")},
}))
""".replace("SYSCTLS", repr(GLOBAL_SYSCTLS))


class Env:
    """One test's state directory and CLI runner."""

    def __init__(self, state_dir: Path) -> None:
        self.env = {**os.environ, "NETLENS_STATE_DIR": str(state_dir), "NETLENS_NO_LOG": "1"}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "netlens", *args],
            env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(f"netlens {' '.join(args)} -> {res.returncode}: {res.stderr}")
        return res

    def sh(self, name: str, script: str) -> subprocess.CompletedProcess[str]:
        return self.cli("exec", name, "--", "sh", "-c", script, check=False)

    def probe(self, name: str, markers: list[str]) -> dict[str, Any]:
        out = self.cli("exec", name, "--", "python3", "-c", PROBE, *markers).stdout
        return dict(json.loads(out))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    if not is_root():
        pytest.skip("needs root")
    state_dir = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state_dir))
    try:
        yield Env(state_dir)
    finally:
        left = teardown_state(state_dir)
    assert not left, left


@pytest.fixture
def markers() -> Iterator[list[str]]:
    """Unique files in host directories the default view hides; removed afterwards."""
    paths = [f"/root/.nr{RUN_TAG}-hidden", f"/var/lib/nr{RUN_TAG}-hidden"]
    made = []
    try:
        for path in paths:
            Path(path).write_text("host secret\n")
            made.append(path)
        yield paths
    finally:
        for path in made:
            os.unlink(path)


@pytest.fixture
def host_sysctls() -> Iterator[None]:
    """The host's global sysctls the probes try: the same after the test as before."""
    before = {p: Path(p).read_text() for p in GLOBAL_SYSCTLS}
    yield
    assert {p: Path(p).read_text() for p in GLOBAL_SYSCTLS} == before


@pytest.fixture
def volume_dirs(tmp_path: Path) -> tuple[Path, Path]:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given").write_text("from the host\n")
    return rw, ro


def _rp_value() -> str:
    """An rp_filter value other than the one new namespaces start with (proves it was set)."""
    return (
        "1" if Path("/proc/sys/net/ipv4/conf/default/rp_filter").read_text().strip() == "2" else "2"
    )


def _check_default_view(got: dict[str, Any], mount_points: list[str]) -> None:
    """Everything a default container must (not) see, from one probe's report.

    ``mount_points``: top-level directories its volumes (or its batch's) added.
    """
    host_trees = {"usr", "etc", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}
    own = {"proc", "sys", "dev", "root", "home", "run", "tmp", "var"}
    assert got["top"] == sorted(host_trees & set(os.listdir("/")) | own | set(mount_points))
    assert got["shadow"] == "" or got["shadow"].startswith("!"), got["shadow"][:20]
    assert got["gshadow"] == "" or got["gshadow"].startswith("!")
    assert got["root"] == [] and got["home"] == []
    assert not any(got["present"].values()), got["present"]
    for path, res in got["sysctl_writes"].items():
        assert res == EROFS, (path, res)
    assert got["net_sysctl_write"] == "written"  # /proc/sys/net stays writable
    assert got["sysrq"] in (EROFS, "!2")  # read-only, or this kernel has none
    assert got["keys"] == "" and got["kcore"] in ("", "!2") and got["timer_list"] in ("", "!2")
    for path, res in got["sys_writes"].items():
        assert res in (EROFS, "!2"), (path, res)
    assert got["sys_writes"]["/sys/class/net/lo/mtu"] == EROFS
    assert got["firmware"] == []


def _tools(e: Env, name: str) -> None:
    """The host's tools run inside: ip, ping, iperf3, tcpdump (a real capture), python3."""
    assert "lo" in e.sh(name, "ip -br link show lo").stdout
    assert e.sh(name, "ping -c 1 -W 2 127.0.0.1").returncode == 0
    assert e.sh(name, "iperf3 --version").stdout.startswith("iperf 3")
    cap = e.sh(
        name,
        "ping -c 50 -i 0.2 127.0.0.1 >/dev/null & p=$!; "
        "timeout 20 tcpdump -i lo -n -c 1 icmp; r=$?; kill $p; exit $r",
    )
    assert cap.returncode == 0 and "ICMP echo" in cap.stdout, cap.stderr
    res = e.sh(name, "python3 -c 'import json, ssl; print(json.dumps([1]))'")
    assert res.stdout.strip() == "[1]", res.stderr


def _probe_volumes(e: Env, name: str, rw: Path) -> None:
    """rw volume at /data, ro one at /shared, a file volume under /var/lib (ro)."""
    res = e.sh(name, f"echo {name} > /data/out && cat /shared/given /var/lib/app/given")
    assert res.stdout == "from the host\nfrom the host\n", res.stderr
    assert (rw / "out").read_text() == f"{name}\n"
    for path in ("/shared/new", "/var/lib/app/given"):
        denied = e.sh(name, f"echo x > {path}")
        assert denied.returncode != 0 and "Read-only" in denied.stderr, path


def test_run_default_view(
    env: Env, markers: list[str], host_sysctls: None, volume_dirs: tuple[Path, Path]
) -> None:
    rw, ro = volume_dirs
    net = f"nr{RUN_TAG}fs"
    env.cli("network", "create", net, "--subnet", f"10.{OCTET}.61.0/24", "--no-nat")
    name = f"nr{RUN_TAG}c"
    rp = _rp_value()
    env.cli(
        "run", "-d", "--name", name, "--network", net,
        "-v", f"{rw}:/data", "-v", f"{ro}:/shared:ro", "-v", f"{ro}/given:/var/lib/app/given:ro",
        "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", f"net.ipv4.conf.eth0.rp_filter={rp}",
        "--", "sleep", "600",
    )  # fmt: skip
    got = env.probe(name, markers)
    _check_default_view(got, ["data", "shared"])
    assert got["sysctls"] == {"ip_forward": "1", "conf/eth0/rp_filter": rp}
    _tools(env, name)
    _probe_volumes(env, name, rw)
    rec = json.loads(env.cli("inspect", name).stdout)
    assert rec["host_view"] == "tools"
    assert rec["volumes"] == [
        {"host": str(rw), "container": "/data", "read_only": False},
        {"host": str(ro), "container": "/shared", "read_only": True},
        {"host": f"{ro}/given", "container": "/var/lib/app/given", "read_only": True},
    ]
    assert " tools " in env.cli("ps").stdout


def _lab_text(name: str, rw: Path, ro: Path, rp: str) -> str:
    return f"""
name: {name}
networks:
  n: {{subnet: 10.{OCTET}.62.0/24, nat: false}}
nodes:
  r:
    ip: 10.{OCTET}.62.254
    cap_add: [NET_ADMIN]
    sysctls: {{net.ipv4.ip_forward: 1, net.ipv4.conf.eth0.rp_filter: {rp}}}
    binds: ["{rw}:/data", "{ro}:/shared:ro", "{ro}/given:/var/lib/app/given:ro"]
  h:
    count: 2
    ip: 10.{OCTET}.62.11
"""


@pytest.fixture(params=["direct", "native", "python"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Batch children cloned by us, by netlens-spawn (C) or by the Python spawner."""
    mode = str(request.param)
    if mode != "direct":
        monkeypatch.setenv("NETLENS_SPAWNER", "1")
    if mode == "python":
        monkeypatch.setenv("NETLENS_SPAWN_HELPER", "0")
    if mode == "native":
        from netlens_runtime import helper

        if helper.find() is None:
            pytest.skip("netlens-spawn cannot be built here (no C compiler)")
    return mode


def test_lab_node_default_view(
    env: Env,
    markers: list[str],
    host_sysctls: None,
    volume_dirs: tuple[Path, Path],
    spawn_path: str,
) -> None:
    from netlens_runtime import lab_ops, lab_record
    from netlens_runtime.lab_spec import load_lab

    rw, ro = volume_dirs
    lab = f"nl{RUN_TAG}fs"
    rp = _rp_value()
    lab_ops.lab_up(load_lab("fs.yaml", text=_lab_text(lab, rw, ro, rp)))
    router, host = lab_record.node_name(lab, "r"), lab_record.node_name(lab, "h1")
    for name in (router, host):
        # The batch's shared root has every node's mount points.
        _check_default_view(env.probe(name, markers), ["data", "shared"])
    assert env.probe(router, [])["sysctls"] == {"ip_forward": "1", "conf/eth0/rp_filter": rp}
    _tools(env, host)
    _probe_volumes(env, router, rw)
    # /proc/sys/net is the node's own: a router (NET_ADMIN) flips forwarding, the host's stays.
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    flip = env.sh(
        router, "echo 0 > /proc/sys/net/ipv4/ip_forward; cat /proc/sys/net/ipv4/ip_forward"
    )
    assert flip.stdout == "0\n", flip.stderr
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward


def _view_of(e: Env, name: str) -> tuple[list[str], str]:
    """The mount table (point, type, options) and the root's listing, volumes left out."""
    mounts = e.cli("exec", name, "--", "cat", "/proc/self/mounts").stdout.splitlines()
    table = sorted(" ".join(m.split()[1:4]) for m in mounts)
    listing = e.cli("exec", name, "--", "ls", "-la", "/", "/var", "/etc").stdout
    # Link counts (of /proc: one per process), sizes and times differ; kinds, modes,
    # owners and names must not.
    kept = [
        " ".join(ln.split()[:1] + ln.split()[2:4] + ln.split()[8:]) for ln in listing.splitlines()
    ]
    return table, "\n".join(kept)


def test_single_and_batch_containers_see_the_same(env: Env) -> None:
    from netlens_runtime import api

    net = f"nr{RUN_TAG}sv"
    env.cli("network", "create", net, "--subnet", f"10.{OCTET}.63.0/24", "--no-nat")
    single = f"nr{RUN_TAG}s1"
    env.cli("run", "-d", "--name", single, "--network", net, "--", "sleep", "600")
    batch = api.create_containers(
        [api.ContainerSpec(name=f"nr{RUN_TAG}b{i}", network=net) for i in range(2)]
    )
    want = _view_of(env, single)
    assert want[0], "no mounts read"
    for rec in batch:
        assert _view_of(env, rec["name"]) == want


def test_host_view_full_shows_the_host_root(
    env: Env, markers: list[str], host_sysctls: None
) -> None:
    name = f"nr{RUN_TAG}full"
    env.cli("run", "-d", "--name", name, "--network", "none", "--host-view", "full",
            "--", "sleep", "600")  # fmt: skip
    got = env.probe(name, markers)
    assert got["top"] == sorted(os.listdir("/"))
    assert got["present"][markers[1]]  # the host's /var/lib, as it is
    assert env.sh(name, f"cat {markers[1]}").stdout == "host secret\n"
    # /proc and /sys are confined in every view.
    for path, res in got["sysctl_writes"].items():
        assert res == EROFS, (path, res)
    assert got["keys"] == ""
    assert json.loads(env.cli("inspect", name).stdout)["host_view"] == "full"
    row = next(ln for ln in env.cli("ps").stdout.splitlines() if ln.startswith(name))
    assert " full " in row


@pytest.mark.parametrize("batch", [False, True])
def test_privileged_container_has_no_proc_masks(
    env: Env, monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    """--privileged (ContainerSpec.privileged) skips the masks in the Python and the C child."""
    from netlens_runtime import api

    if batch:
        monkeypatch.setenv("NETLENS_SPAWNER", "1")  # the C child when it can be built
    specs = [
        api.ContainerSpec(name=f"nr{RUN_TAG}p{i}", network=None, privileged=True)
        for i in range(2 if batch else 1)
    ]
    for rec in api.create_containers(specs):
        assert rec["privileged"] is True
        mounts = env.cli("exec", rec["name"], "--", "cat", "/proc/self/mounts").stdout
        points = [m.split()[1] for m in mounts.splitlines()]
        assert "/proc" in points and "/proc/sys" not in points and "/proc/keys" not in points
        # Only the mount flags are looked at: nothing is written to the host's settings.
        assert env.sh(rec["name"], "test -w /proc/sys/kernel/core_pattern").returncode == 0


def test_bad_volumes_are_refused_with_one_line(env: Env, tmp_path: Path) -> None:
    name = f"nr{RUN_TAG}bad"
    cases = [
        (f"{tmp_path}/missing:/x", "does not exist"),
        ("relative:/x", "absolute"),
        (f"{tmp_path}:/x/../y", "'..'"),
        (f"{tmp_path}:/proc/x", "/proc is the container's own"),
        (f"{tmp_path}:/etc/nr{RUN_TAG}-none", "read-only"),
        ("/etc/hostname:/tmp", "is a directory"),
    ]
    for volume, words in cases:
        res = env.cli("run", "-d", "--name", name, "--network", "none", "-v", volume,
                      "--", "true", check=False)  # fmt: skip
        assert res.returncode == 2, (volume, res.stderr)
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert name not in env.cli("ps").stdout


def test_volume_failing_in_the_child_rolls_back(env: Env, tmp_path: Path) -> None:
    """--rootfs DIR lacking the container path: the child reports it, nothing is left."""
    import shutil

    root = tmp_path / "rootfs"
    for sub in ("bin", "proc", "sys", "dev", "tmp"):
        (root / sub).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    name = f"nr{RUN_TAG}rb"
    res = env.cli("run", "-d", "--name", name, "--network", "none", "--rootfs", str(root),
                  "-v", f"{tmp_path}:/nothere", "--", "/bin/busybox", "sleep", "60",
                  check=False)  # fmt: skip
    assert res.returncode != 0 and "volume /nothere" in res.stderr, res.stderr
    assert name not in env.cli("ps").stdout
    assert not (root / "nothere").exists()


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A 1 MiB loop device (the stand-in for the host's /dev/sda) and its backing file;
    detached afterwards, pass or fail."""
    backing = tmp_path / "disk.img"
    backing.write_bytes(bytes(1 << 20))
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(backing)], capture_output=True, text=True, check=False
    )
    if dev.returncode != 0:
        pytest.skip(f"no loop device here: {dev.stderr.strip()}")
    try:
        yield dev.stdout.strip(), backing
    finally:
        subprocess.run(["losetup", "-d", dev.stdout.strip()], check=False)


def test_read_only_bind_of_a_device_does_not_write_it(
    env: Env, tmp_path: Path, loop_disk: tuple[str, Path], spawn_path: str
) -> None:
    """A read-only mount refuses writes to files, directories and links only: a bound
    block device (or one inside a bound directory) still opened for writing, so a lab
    file's ``binds: [/dev/sda:/disk]`` wrote the host's disk. Volumes are nodev."""
    from netlens_runtime import lab_ops, lab_record
    from netlens_runtime.lab_spec import load_lab

    dev, backing = loop_disk
    devdir = tmp_path / "devs"
    devdir.mkdir()
    st = os.stat(dev)
    os.mknod(devdir / "disk", 0o600 | stat.S_IFBLK, st.st_rdev)
    lab = f"nl{RUN_TAG}dv"
    text = f"""
name: {lab}
topology:
  nodes:
    n:
      network-mode: none
      cmd: sleep 600
      binds: ["{dev}:/disk", "{devdir}:/devs"]
"""
    lab_ops.lab_up(load_lab("dev.clab.yml", text=text))
    node = lab_record.node_name(lab, "n")
    for path in ("/disk", "/devs/disk"):
        res = env.sh(node, f"echo written-through-a-bind > {path}")
        assert res.returncode != 0, path
        assert "Permission denied" in res.stderr, res.stderr
    assert backing.read_bytes() == bytes(1 << 20)
