"""A throw-away sshd on 127.0.0.1 that plays many servers, for the fleet tests and bench.

Debian's sshd runs on a free loopback port with its own host key, config and
authorized_keys, and a temp ssh config names each simulated server as a host
alias with its own client key. A key's ``command=`` forces what runs, which is
how one sshd plays several servers (an alias whose command is None gets a plain
shell: the real ``netlens agent`` can run there). One more alias, ``closed``,
points at a port that is bound but never listens (connections are refused).

Every process the forced commands start carries FLEET_TEST_TAG=<tag> in its
environment, so the caller can prove none is left and :meth:`Sshd.stop` can kill
any that are. Shared by tests/integration/test_fleet_ssh.py and
tests/bench/test_bench_fleet.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from conftest import REPO

SSHD = "/usr/sbin/sshd"
DEADLINE = 60.0  # seconds to wait for sshd or for processes to end (not a timing check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tagged_pids(tag: str) -> list[int]:
    """Processes whose environment carries FLEET_TEST_TAG=tag."""
    want = f"FLEET_TEST_TAG={tag}".encode()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if want in env.split(b"\0"):
            out.append(int(pid))
    return out


def wait_gone(tag: str) -> list[int]:
    end = time.monotonic() + DEADLINE
    while (left := tagged_pids(tag)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


class Sshd:
    """The temp sshd and its host aliases (call :meth:`serve`, and :meth:`stop` always)."""

    def __init__(self, root: Path, tag: str, max_startups: int = 50, rexec: bool = True) -> None:
        self.root, self.tag = root, tag
        self.max_startups = max_startups  # > the fleet's size: all connect at once
        # False: sshd -r, a session is a fork of the listener, not a fresh exec that
        # reads its config and keys again (the bench's 50 servers share its cores)
        self.rexec = rexec
        self.port = free_port()
        self.sshd: subprocess.Popen[bytes] | None = None
        self.made_privsep = False
        self.closed = socket.socket()  # bound, never listening: connections are refused
        self.closed.bind(("127.0.0.1", 0))

    def keygen(self, name: str) -> Path:
        path = self.root / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
            check=True,
        )
        return path

    def serve(self, forced: Mapping[str, str | None]) -> None:
        """Write keys and configs for ``forced`` (alias -> forced command or None), start
        sshd and wait until it listens."""
        hostkey = self.keygen("host_key")
        auth = []
        for alias, cmd in forced.items():
            key = self.keygen(f"key_{alias}")
            pub = Path(f"{key}.pub").read_text().strip()
            opts = "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding"
            if cmd:
                opts = f'command="{cmd}",{opts}'
            auth.append(f"{opts} {pub}")
        (self.root / "authorized_keys").write_text("\n".join(auth) + "\n")
        (self.root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n"
            f"AuthorizedKeysFile {self.root}/authorized_keys\nPidFile {self.root}/sshd.pid\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            f"PrintMotd no\nLogLevel VERBOSE\nMaxStartups {self.max_startups}\n"
            # Debian's bash runs ~/.bashrc before a command sshd starts (SSH_CLIENT is
            # set) when it is the top-level shell; this machine's root .bashrc runs
            # `pyenv init` (~0.1 s of CPU), which would be most of what a simulated
            # server costs. SHLVL=1 makes the forced command's bash a nested shell.
            "SetEnv SHLVL=1\n"
        )
        hostpub = Path(f"{hostkey}.pub").read_text().split()
        (self.root / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {hostpub[0]} {hostpub[1]}\n"
        )
        cfg = []
        first = next(iter(forced))
        for alias in [*forced, "closed"]:
            port = self.closed.getsockname()[1] if alias == "closed" else self.port
            key = self.root / f"key_{first if alias == 'closed' else alias}"
            cfg.append(
                f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
                f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.root}/known_hosts\n"
            )
        (self.root / "ssh_config").write_text("".join(cfg))
        if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory
            os.makedirs("/run/sshd", mode=0o755)
            self.made_privsep = True
        norexec = [] if self.rexec else ["-r"]
        self.sshd = subprocess.Popen(
            [SSHD, "-D", "-e", *norexec, "-f", str(self.root / "sshd_config")],
            stderr=open(self.root / "sshd.log", "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )
        end = time.monotonic() + DEADLINE
        while True:
            assert self.sshd.poll() is None, (self.root / "sshd.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < end, "sshd did not listen"
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill what the forced commands left, stop sshd, put /run/sshd back."""
        for pid in tagged_pids(self.tag):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()
        self.closed.close()
        if self.made_privsep:
            shutil.rmtree("/run/sshd", ignore_errors=True)

    def client_env(self) -> dict[str, str]:
        """The environment for a client: this tree's netlens, no SSH agent (keys come
        from the ssh config only), no log file."""
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "runtime")])
        env["NETLENS_NO_LOG"] = "1"
        return env

    def fleet_argv(self, *args: str) -> list[str]:
        """``netlens fleet`` of this tree, reading the temp ssh config."""
        cfg = str(self.root / "ssh_config")
        return [sys.executable, "-m", "netlens", "fleet", "--ssh-config", cfg, *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.fleet_argv(*args), capture_output=True, text=True, env=self.client_env(),
            timeout=300,
        )  # fmt: skip
