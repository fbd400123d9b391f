"""Escape attempts against the system call half of confinement (issue 16), from inside
real containers: one made by ``netlens run``, and lab nodes built by each spawn path.

Each attempt must fail: mount (old and new API), new user / network / mount
namespaces (unshare, clone), setns into PID 1's namespaces (nsenter), file
handles (open_by_handle_at), a block device node, the kernel keyring, bpf,
perf_event_open, userfaultfd, kexec and modules, the 32-bit and x32 ABIs
around the filter, and signals to a host process. The probe reports errno per
attempt (so a filter that is not there, or one that refuses for another
reason, shows). Then the switches: ``--privileged`` and
``--security-opt seccomp=unconfined`` make the same unshare and mount work,
inside the container's own namespaces (nothing on the host is touched).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG

CPY = "/usr/bin/python3"
"""The python a container runs probes with: the host's tools (/usr) are in its default
view, a developer's interpreter elsewhere (pyenv, a venv under /root) is not."""

pytestmark = pytest.mark.integration

# Runs inside the container: python3 -c PROBE MODE HOST_PID HOST_PIDNS; prints one JSON object.
PROBE = r"""
import ctypes, errno, json, os, platform, subprocess, sys
mode, host_pid, host_pidns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if os.stat("/proc/self/ns/pid").st_ino == host_pidns:  # never kill(-1) on the host itself
    print(json.dumps({"error": "the probe runs in the host's pid namespace"}))
    sys.exit(1)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {
    "x86_64": dict(mount=165, unshare=272, setns=308, clone=56, clone3=435, keyctl=250,
                   add_key=248, bpf=321, perf_event_open=298, userfaultfd=323,
                   name_to_handle_at=303, open_by_handle_at=304, fsopen=430, open_tree=428,
                   kexec_load=246, init_module=175),
    "aarch64": dict(mount=40, unshare=97, setns=268, clone=220, clone3=435, keyctl=219,
                    add_key=217, bpf=280, perf_event_open=241, userfaultfd=282,
                    name_to_handle_at=264, open_by_handle_at=265, fsopen=430, open_tree=428,
                    kexec_load=104, init_module=105),
}[platform.machine()]
U = ctypes.c_ulong
out = {}

def call(name, *args):
    ret = libc.syscall(ctypes.c_long(NR[name]), *args)
    if ret == 0 and name in ("clone",):
        os._exit(0)  # the clone succeeded: we are the child
    if ret < 0:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    if name == "clone":
        os.waitpid(ret, 0)
    return "ok"

def run(*argv):
    return subprocess.run(list(argv), capture_output=True).returncode

status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
out["Seccomp"] = status["Seccomp"].strip()
out["NoNewPrivs"] = status["NoNewPrivs"].strip()
if mode == "default":
    buf = ctypes.create_string_buffer(256)
    out["mount"] = call("mount", b"none", b"/tmp", b"tmpfs", U(0), None)
    out["fsopen"] = call("fsopen", b"tmpfs", U(0))
    out["open_tree"] = call("open_tree", ctypes.c_int(-100), b"/", U(0))
    out["unshare_user"] = call("unshare", U(0x10000000))
    out["unshare_net"] = call("unshare", U(0x40000000))
    out["unshare_mnt"] = call("unshare", U(0x00020000))
    out["clone_user"] = call("clone", U(0x10000000 | 17), U(0), U(0), U(0), U(0))
    out["clone_net"] = call("clone", U(0x40000000 | 17), U(0), U(0), U(0), U(0))
    out["clone3"] = call("clone3", buf, U(88))
    for kind in ("net", "mnt"):
        try:
            fd = os.open(f"/proc/1/ns/{kind}", os.O_RDONLY)
            out[f"setns_pid1_{kind}"] = call("setns", ctypes.c_int(fd), ctypes.c_int(0))
        except OSError as err:  # an earlier escape that worked left us unable to look
            out[f"setns_pid1_{kind}"] = "open: " + errno.errorcode[err.errno]
    handle = ctypes.create_string_buffer(b"\x80\x00\x00\x00" + b"\0" * 132)
    mount_id = ctypes.c_int(0)
    out["name_to_handle_at"] = call("name_to_handle_at", ctypes.c_int(-100), b"/etc/hostname",
                                    handle, ctypes.byref(mount_id), ctypes.c_int(0))
    root = os.open("/", os.O_RDONLY)
    out["open_by_handle_at"] = call("open_by_handle_at", ctypes.c_int(root), handle,
                                    ctypes.c_int(0))
    out["keyctl"] = call("keyctl", U(0), ctypes.c_long(-3), U(0))  # KEYCTL_GET_KEYRING_ID
    out["add_key"] = call("add_key", b"user", b"nl", b"x", U(1), ctypes.c_long(-3))
    out["bpf"] = call("bpf", U(0), buf, U(64))  # BPF_MAP_CREATE
    out["perf_event_open"] = call("perf_event_open", buf, ctypes.c_int(0), ctypes.c_int(-1),
                                  ctypes.c_int(-1), U(0))
    out["userfaultfd"] = call("userfaultfd", U(0))
    out["kexec_load"] = call("kexec_load", U(0), U(0), None, U(0))
    out["init_module"] = call("init_module", None, U(0), b"")
    try:
        os.mknod("/tmp/nl-sda", 0o60600, os.makedev(8, 0))
        out["mknod_block"] = "ok"
    except OSError as err:
        out["mknod_block"] = errno.errorcode[err.errno]
    out["unshare_cmd"] = run("unshare", "-U", "-r", "true")
    out["unshare_net_cmd"] = run("unshare", "-n", "true")
    out["mount_cmd"] = run("mount", "-t", "tmpfs", "none", "/mnt")
    out["nsenter_cmd"] = run("nsenter", "-t", "1", "-m", "-n", "-p", "true")
    # Around the filter through another ABI: the process is killed (SIGSYS = 31).
    if platform.machine() == "x86_64":
        i386 = (
            "import ctypes, mmap\n"
            "m = mmap.mmap(-1, 4096, prot=7)\n"
            # push rbx; mov eax, 310 (unshare); mov ebx, CLONE_NEWUSER; int 0x80; pop rbx; ret
            "m.write(bytes.fromhex('53b836010000bb00000010cd805bc3'))\n"
            "f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n"
            "print(f())\n"
        )
        out["i386_unshare"] = run(sys.executable, "-c", i386)
        x32 = ("import ctypes; l = ctypes.CDLL(None, use_errno=True); "
               "print(l.syscall(0x40000000 | 272, 0x10000000))")
        out["x32_unshare"] = run(sys.executable, "-c", x32)
    # Signals: every process we may signal (a sibling of ours is there to be hit), then
    # the host's process by its number.
    sibling = subprocess.Popen(["sleep", "600"])
    try:
        os.kill(-1, signal_kill := 9)
        out["kill_all"] = "sent"
    except OSError as err:
        out["kill_all"] = errno.errorcode[err.errno]
    out["sibling"] = sibling.wait()
    try:
        os.kill(host_pid, signal_kill)
        out["kill_host_pid"] = "ok"
    except OSError as err:
        out["kill_host_pid"] = errno.errorcode[err.errno]
else:  # privileged or unconfined: the same calls work, in our own namespaces only
    nested = "mount -t tmpfs none /tmp && grep -q ' /tmp tmpfs' /proc/self/mounts"
    out["unshare_user_mount"] = run("unshare", "-U", "-r", "--mount", "--net", "sh", "-c", nested)
    if mode == "privileged":
        out["unshare_net_cmd"] = run("unshare", "-n", "true")
        out["mount_cmd"] = run("sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"
                                           " && umount /tmp/m")
print(json.dumps(out), flush=True)
"""

HOST_PIDNS = os.stat("/proc/self/ns/pid").st_ino

DENIED = (
    "mount", "fsopen", "open_tree", "unshare_user", "unshare_net", "unshare_mnt", "clone_user",
    "clone_net", "setns_pid1_net", "setns_pid1_mnt", "name_to_handle_at", "open_by_handle_at",
    "keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module",
    "mknod_block",
)  # fmt: skip


def _check_default(out: dict[str, Any], host: subprocess.Popen[bytes]) -> None:
    assert out["Seccomp"] == "2" and out["NoNewPrivs"] == "1", out
    for name in DENIED:
        assert out[name] == "EPERM", (name, out[name])
    assert out["clone3"] == "ENOSYS"  # so the C library falls back to clone, checked above
    for name in ("unshare_cmd", "unshare_net_cmd", "mount_cmd", "nsenter_cmd"):
        assert out[name] != 0, name
    if platform.machine() == "x86_64":
        assert out["i386_unshare"] == -signal.SIGSYS
        assert out["x32_unshare"] == -signal.SIGSYS
    assert out["kill_all"] == "sent" and out["sibling"] == -signal.SIGKILL  # its own processes
    assert out["kill_host_pid"] == "ESRCH"
    assert host.poll() is None, "a host process was killed from inside a container"


def _check_switch(out: dict[str, Any], mode: str) -> None:
    assert out["Seccomp"] == "0", out
    assert out["NoNewPrivs"] == ("0" if mode == "privileged" else "1")
    assert out["unshare_user_mount"] == 0, out
    if mode == "privileged":
        assert out["unshare_net_cmd"] == 0 and out["mount_cmd"] == 0, out


@pytest.fixture
def host_process() -> Iterator[subprocess.Popen[bytes]]:
    """A host process the containers try to kill; it must be alive afterwards."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "netlens", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    if check and res.returncode != 0:
        raise AssertionError(f"netlens {args[:3]} -> {res.returncode}: {res.stderr}")
    return res


def _probe_argv(mode: str, host_pid: int) -> list[str]:
    return [CPY, "-c", PROBE, mode, str(host_pid), str(HOST_PIDNS)]


def _probe_run(name: str, mode: str, host_pid: int, *opts: str) -> dict[str, Any]:
    """The probe as the command of an attached ``netlens run`` (removed when it exits)."""
    res = _cli("run", "--name", name, "--network", "none", *opts, "--",
               *_probe_argv(mode, host_pid))  # fmt: skip
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    assert lines, (res.stdout, res.stderr)
    return dict(json.loads(lines[-1]))


def test_default_run_container_cannot_escape(
    labstate: Path, host_process: subprocess.Popen[bytes]
) -> None:
    out = _probe_run(f"nc{RUN_TAG}d", "default", host_process.pid)
    _check_default(out, host_process)


@pytest.mark.parametrize(
    ("mode", "opts"),
    [("privileged", ("--privileged",)), ("unconfined", ("--security-opt", "seccomp=unconfined"))],
)
def test_run_switches_lift_the_filter(
    labstate: Path, host_process: subprocess.Popen[bytes], mode: str, opts: tuple[str, ...]
) -> None:
    _check_switch(_probe_run(f"nc{RUN_TAG}{mode[0]}", mode, host_process.pid, *opts), mode)


@pytest.fixture(params=["direct", "native", "python"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Lab nodes cloned by us (the Python child), by netlens-spawn (C) or its Python twin."""
    mode = str(request.param)
    monkeypatch.setenv("NETLENS_SPAWNER", "0" if mode == "direct" else "1")
    if mode == "python":
        monkeypatch.setenv("NETLENS_SPAWN_HELPER", "0")
    if mode == "native":
        from netlens_runtime import helper

        if helper.find() is None:
            pytest.skip("netlens-spawn cannot be built here (no C compiler)")
    return mode


def _wait_exited(names: list[str], timeout: float = 60.0) -> None:
    from netlens_runtime import api

    deadline = time.monotonic() + timeout
    while any(api.get_container(n)["state"] == "running" for n in names):
        assert time.monotonic() < deadline, "the probes did not finish"
        time.sleep(0.1)


def test_lab_nodes_cannot_escape_and_switches_work(
    labstate: Path, host_process: subprocess.Popen[bytes], spawn_path: str
) -> None:
    from netlens_runtime import lab_ops
    from netlens_runtime.lab_spec import load_lab

    def cmd(mode: str) -> str:
        return json.dumps(_probe_argv(mode, host_process.pid))

    name = f"nc{RUN_TAG}{spawn_path[0]}"
    text = (
        f"name: {name}\n"
        "nodes:\n"
        f"  d: {{command: {cmd('default')}}}\n"
        f"  e: {{command: {cmd('default')}}}\n"
        f"  p: {{privileged: true, command: {cmd('privileged')}}}\n"
        f"  u: {{security_opt: [seccomp=unconfined], command: {cmd('unconfined')}}}\n"
    )
    spec = load_lab(f"{name}.yaml", text=text)
    rec = lab_ops.lab_up(spec)
    nodes = dict(rec.nodes)
    _wait_exited(list(nodes.values()))
    logs = {
        node: Path(labstate / "logs" / f"{real}.log").read_text() for node, real in nodes.items()
    }
    outs = {}
    for node, log in logs.items():
        found = [x for x in log.splitlines() if x.startswith("{")]
        assert found, f"node {node} reported nothing: {log[-2000:]}"
        outs[node] = json.loads(found[-1])
    _check_default(outs["d"], host_process)
    _check_default(outs["e"], host_process)
    _check_switch(outs["p"], "privileged")
    _check_switch(outs["u"], "unconfined")
    from netlens_runtime import api

    recs = {n: api.get_container(real) for n, real in nodes.items()}
    assert recs["p"]["privileged"] is True and recs["p"]["seccomp"] == "unconfined"
    assert recs["d"]["privileged"] is False and recs["d"]["seccomp"] == "default"
    assert recs["u"]["privileged"] is False and recs["u"]["seccomp"] == "unconfined"


def test_exec_runs_under_the_container_filter_and_ps_marks_it(labstate: Path) -> None:
    """A process entering a default container gets its filter (else the container's
    processes could ptrace it into what the filter refuses them); a privileged one not."""
    plain, priv = f"nc{RUN_TAG}x", f"nc{RUN_TAG}y"
    _cli("run", "-d", "--name", plain, "--network", "none", "--", "sleep", "600")
    _cli("run", "-d", "--name", priv, "--network", "none", "--privileged", "--", "sleep", "600")
    assert _cli("exec", plain, "--", "grep", "Seccomp:", "/proc/self/status").stdout.split() == [
        "Seccomp:",
        "2",
    ]
    assert _cli("exec", plain, "--", "unshare", "-U", "-r", "true", check=False).returncode != 0
    assert _cli("exec", priv, "--", "unshare", "-U", "-r", "true").returncode == 0
    # The cache file the record names went away: exec compiles the filter again.
    from netlens_runtime import api

    os.unlink(api.get_container(plain)["seccomp_filter"])
    assert _cli("exec", plain, "--", "unshare", "-U", "-r", "true", check=False).returncode != 0
    lines = _cli("ps").stdout.splitlines()
    col = lines[0].split().index("SECURITY")
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[plain][col] == "default" and rows[priv][col] == "privileged"
    inspected = json.loads(_cli("inspect", priv).stdout)
    assert inspected["privileged"] is True and inspected["seccomp"] == "unconfined"


def test_custom_profile_file_and_missing_libseccomp(labstate: Path, tmp_path: Path) -> None:
    """A Docker-format FILE is what the container runs under; without libseccomp a
    confined container is refused (one line, nothing made) and unconfined still runs."""
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
                ],
            }
        )
    )
    script = "mkdir /tmp/d; echo rc=$?; grep Seccomp: /proc/self/status"
    res = _cli("run", "--name", f"nc{RUN_TAG}f", "--network", "none",
               "--security-opt", f"seccomp={profile}", "--", "sh", "-c", script)  # fmt: skip
    assert "rc=1" in res.stdout and "Seccomp:\t2" in res.stdout, res.stdout
    assert "Permission denied" in res.stderr  # errnoRet 13, from the file
    env_missing = {**os.environ, "NETLENS_LIBSECCOMP": ""}
    argv = [sys.executable, "-m", "netlens", "run", "-d", "--name", f"nc{RUN_TAG}g",
            "--network", "none", "--", "sleep", "600"]  # fmt: skip
    res = subprocess.run(argv, env=env_missing, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "libseccomp2" in lines[0] and "seccomp=unconfined" in lines[0]
    assert not (labstate / "containers" / f"nc{RUN_TAG}g.json").exists()
    res = subprocess.run([*argv[:-3], "--security-opt", "seccomp=unconfined", *argv[-3:]],
                         env=env_missing, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    # exec keeps the caller's terminal away from the container with a filter: none, no exec
    res = subprocess.run([sys.executable, "-m", "netlens", "exec", f"nc{RUN_TAG}g", "--", "true"],
                         env=env_missing, capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and "libseccomp2" in lines[0], res.stderr
    assert _cli("exec", f"nc{RUN_TAG}g", "--", "true").returncode == 0


# --- the terminal that started the container ------------------------------------------

# Tries to push a line into the controlling terminal, or (ARG "fd1") into fd 1.
TTY_PROBE = r"""
import fcntl, sys, termios, time
line = b"echo " + b"INJ" + b"-" + sys.argv[1].encode() + b"\n"
time.sleep(float(sys.argv[3]))
try:
    if sys.argv[2] == "fd1":
        tty = open(sys.stdout.fileno(), "wb", closefd=False)
    else:
        tty = open("/dev/tty", "wb")
    for c in line:
        fcntl.ioctl(tty, termios.TIOCSTI, bytes([c]))
    print("TTY-INJECTED", flush=True)
except OSError as err:
    print("TTY-REFUSED", err.errno, flush=True)
"""


def _in_pty(argvs: list[list[str]], linger: float = 0.0) -> str:
    """Run commands one after the other in a new session whose controlling terminal is
    a fresh pty (as from an admin's shell); everything the terminal showed."""
    import pty

    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            for argv in argvs:
                subprocess.run(argv, env={**os.environ, "NETLENS_NO_LOG": "1"}, timeout=120)
            time.sleep(linger)
        finally:
            os._exit(0)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the session is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_attached_run_cannot_type_into_the_terminal_and_ctrl_c_still_works(
    labstate: Path,
) -> None:
    tag = f"{RUN_TAG}a"
    probe = [CPY, "-c", TTY_PROBE, tag, "fd1", "0"]
    netlens = [sys.executable, "-m", "netlens", "run", "--network", "none", "--"]
    shown = _in_pty([[*netlens, *probe]])
    assert "TTY-REFUSED 1" in shown, shown  # EPERM: not its controlling terminal
    assert f"INJ-{tag}" not in shown, shown
    # Ctrl-C reaches the command (through netlens and tini) though it has its own session.
    script = "trap 'echo GOT-INT; exit 3' INT; echo READY; sleep 60 & wait"
    proc = subprocess.Popen(
        [*netlens[:-1], "--name", f"nc{RUN_TAG}i", "--", "sh", "-c", script],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "NETLENS_NO_LOG": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert "GOT-INT" in out and proc.returncode == 3


def test_detached_and_lab_containers_have_no_controlling_terminal(
    labstate: Path, tmp_path: Path, spawn_path: str
) -> None:
    """``run -d`` and ``lab up`` from a terminal: the containers outlive the command,
    and must not reach that terminal through /dev/tty (its shell runs what they type)."""
    tag = f"{RUN_TAG}{spawn_path[0]}"
    run_name = f"nc{tag}t"
    probe = [CPY, "-c", TTY_PROBE, tag, "tty", "1"]
    lab = tmp_path / "tty.yaml"
    node = json.dumps({"command": probe})
    lab.write_text(f"name: nc{tag}l\nnodes:\n  a: {node}\n  b: {node}\n")
    netlens = [sys.executable, "-m", "netlens"]
    shown = _in_pty(
        [[*netlens, "run", "-d", "--name", run_name, "--network", "none", "--", *probe],
         [*netlens, "lab", "up", str(lab)]],
        linger=2.5,
    )  # fmt: skip
    assert f"INJ-{tag}" not in shown, shown
    from netlens_runtime import state

    names = [run_name, f"nc{tag}l-a", f"nc{tag}l-b"]
    _wait_exited(names)
    for name in names:
        log = Path(state.log_path(name)).read_text()
        assert "TTY-REFUSED 6" in log, (name, log)  # ENXIO: no controlling terminal


def test_exec_cannot_type_into_the_callers_terminal(labstate: Path) -> None:
    """The exec'd process does hold the caller's terminal (interactive use): a second
    filter refuses TIOCSTI, so no process of the container can make it type there."""
    name, tag = f"nc{RUN_TAG}e", f"{RUN_TAG}e"
    _cli("run", "-d", "--name", name, "--network", "none", "--", "sleep", "600")
    netlens = [sys.executable, "-m", "netlens", "exec", name, "--"]
    shown = _in_pty([[*netlens, CPY, "-c", TTY_PROBE, tag, "tty", "0"]])
    assert "TTY-REFUSED 1" in shown and f"INJ-{tag}" not in shown, shown


def test_exec_of_a_missing_tool_names_it_and_says_why(labstate: Path) -> None:
    """The container sees its own filesystem: a tool it lacks is named (inert), with the
    PATH searched, exit 127 as a shell gives; never a raw errno and a bytes path."""
    name = f"nc{RUN_TAG}m"
    _cli("run", "-d", "--name", name, "--network", "none", "--", "sleep", "600")
    res = _cli("exec", name, "--", "nosuchtool\x1b[2J", check=False)
    assert res.returncode == 127
    assert res.stderr.splitlines() == [
        "netlens: exec: 'nosuchtool\\x1b[2J': no such program on the container's PATH"
        " (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin):"
        " the container sees its own filesystem"
    ]
    res = _cli("exec", name, "--", "/no/such/tracepath", check=False)
    assert res.returncode == 127
    assert res.stderr.splitlines() == [
        "netlens: exec: '/no/such/tracepath': no such program in the container:"
        " the container sees its own filesystem"
    ]
