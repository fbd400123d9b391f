"""Helpers shared by the runtime's integration tests and benchmarks.

One teardown for every test that runs the bundled runtime against a private
state directory (``NETLENS_STATE_DIR``): labs, containers, networks, cgroups and
the nft table of that directory go, and whatever could not be removed is
reported so the caller can fail on it. A before/after picture of what the
kernel holds for that state directory (:func:`kernel_state`,
:func:`kernel_changes`), so rollback and removal tests check the kernel and not
only the runtime's own records. And one way to wait for an idle machine before a
measurement. Imported as ``runtime_host`` (``tests/`` is on
``sys.path`` because ``conftest.py`` lives there).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def state_env(state_dir: Path) -> Iterator[None]:
    """``NETLENS_STATE_DIR`` set to ``state_dir`` for the block, as it was afterwards.

    For callers that ran the runtime in a subprocess (its own environment) and
    now clean up in this process.
    """
    old = os.environ.get("NETLENS_STATE_DIR")
    os.environ["NETLENS_STATE_DIR"] = str(state_dir)
    try:
        yield
    finally:
        if old is None:
            del os.environ["NETLENS_STATE_DIR"]
        else:
            os.environ["NETLENS_STATE_DIR"] = old


def teardown_state(state_dir: Path) -> list[str]:
    """Remove every lab, container and network of ``state_dir``; return what was left over.

    Each step runs even when an earlier one failed: the host must be cleaned.
    A non-empty result names a runtime bug (something ``lab down`` / ``rm`` /
    ``network rm`` should have removed), so fixtures assert it is empty.
    """
    with state_env(state_dir):
        from netlens_runtime import api, cgroups, lab_ops, lab_record, nat, state

        problems: list[str] = []
        host_tables = _host_loss_tables(state.load_containers().values())
        for rec in lab_record.list_labs():
            try:
                problems += [f"lab {rec.name}: {p}" for p in lab_ops.lab_down(rec.name)]
            except Exception as err:
                problems.append(f"lab_down {rec.name}: {err}")
        recs = state.load_containers()
        if recs:
            try:
                api.remove_containers(list(recs), force=True)
            except Exception as err:
                problems.append(f"remove_containers: {err}")
        for net in state.load_networks():
            try:
                api.remove_network(net)
            except Exception as err:
                problems.append(f"remove_network {net}: {err}")
        scope = state.scope()
        for leaf, dirs in cgroups.all_dirs().items():
            if leaf.endswith(f".{scope}"):
                for pid in {p for d in dirs for p in cgroups.procs(d)}:
                    os.kill(pid, 9)
                if cgroups.remove(dirs, wait=5):
                    problems.append(f"cgroup {leaf} left")
        for table in sorted(host_tables):  # linkloss.forget must have removed them
            listed = subprocess.run(["nft", "list", "table", "netdev", table], capture_output=True)
            if listed.returncode == 0:
                subprocess.run(["nft", "delete", "table", "netdev", table], capture_output=True)
                problems.append(f"nft table netdev {table} left")
        table = nat.table_name()
        listed = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True)
        if listed.returncode == 0:
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
            problems.append(f"nft table {table} left")
    for point in held_namespaces(state_dir):  # rm / lab down must have released them
        subprocess.run(["umount", "-l", point], capture_output=True)
        problems.append(f"held network namespace {point} left")
    shutil.rmtree(state_dir, ignore_errors=True)
    return problems


def held_namespaces(state_dir: Path) -> list[str]:
    """nsfs mounts (held network namespaces: netlens_runtime.nshold) under ``state_dir``."""
    root = os.path.realpath(state_dir)
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            point = left.split(" ")[4]
            if right.startswith("nsfs ") and (point == root or point.startswith(root + "/")):
                out.append(point)
    return out


def free_octet(seed: int) -> int:
    """A second octet whose 10.X.0.0/16 no host route touches (the machine is shared),
    searched from ``seed`` (a run tag's value: parallel runs start apart)."""
    import ipaddress

    out = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used = [ipaddress.ip_network(w.split()[0]) for w in out.splitlines() if w[:1].isdigit()]
    for step in range(150):
        octet = 100 + (seed + step) % 150
        mine = ipaddress.ip_network(f"10.{octet}.0.0/16")
        if not any(mine.overlaps(net) for net in used if net.prefixlen):
            return octet
    raise AssertionError("no free 10.X.0.0/16 on this host")


def _host_loss_tables(recs: Iterable[dict[str, Any]]) -> set[str]:
    """The host-side loss tables (``netlens link``) the containers' records list."""
    from netlens_runtime import linkloss

    return {
        str(made["table"])
        for rec in recs
        for entry in (rec.get("impair") or {}).values()
        for made in (entry.get("made") or {}).get("loss", [])
        if made.get("where") == linkloss.HOST
    }


def wait_idle(limit: float = 0.1, timeout: float = 10.0) -> None:
    """Wait until the machine is idle (busy < ``limit`` of all CPUs over 0.2 s).

    The kernel tears namespaces down asynchronously (cleanup_net, RCU) after
    their last process and veths are gone: a measurement started meanwhile
    shares the CPUs and the rtnl lock with the previous one's teardown.
    """

    def busy() -> float:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = busy()
        time.sleep(0.2)
        if busy() - a < limit * 0.2 * (os.cpu_count() or 1):
            return


# --- what the kernel holds for one state directory ----------------------------------------
FORWARDING_SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv4/conf/all/forwarding",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
)
_COUNTERS = re.compile(r"\s*counter packets \d+ bytes \d+|\[\d+:\d+\]")


@dataclass(frozen=True)
class KernelState:
    """The host's firewall, forwarding and cgroups as one state directory's runtime sees
    them. Raw dumps are kept: which lines are ours is decided when two states are
    compared, with the names both of them know (a bridge made and removed between
    the two is only known to one)."""

    table: str  # the state directory's own nft table (ip family)
    scope: str  # its cgroup leaves end in ".<scope>"
    names: frozenset[str]  # bridges and host veths of its networks and containers
    nft: str  # `nft list ruleset`
    iptables: str  # iptables-save of both flavours (legacy tables are invisible to nft)
    cgroups: frozenset[str]
    sysctls: tuple[tuple[str, str | None], ...]
    forward_claim: bool  # the state dir holds ip_forward.json: it flipped forwarding on


def _run(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout if res.returncode == 0 else ""


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def kernel_state(state_dir: Path, also: Iterable[str] = ()) -> KernelState:
    """Snapshot what the kernel holds for ``state_dir``; ``also``: container names whose
    host veths count as ours even when no record lists them (a half-made create)."""
    with state_env(state_dir):
        from netlens_runtime import cgroups, names, nat, state

        scope = state.scope()
        ours: set[str] = set()
        with contextlib.suppress(Exception):
            ours |= {str(n["bridge"]) for n in state.load_networks().values()}
        with contextlib.suppress(Exception):
            recs = state.load_containers()
            ours |= {str(r.get("host_veth")) for r in recs.values() if r.get("host_veth")}
            ours |= {names.host_veth_name(c, scope) for c in recs}
        ours |= {names.host_veth_name(c, scope) for c in also}
        dirs = {
            d
            for leaf, found in cgroups.all_dirs().items()
            if scope and leaf.endswith(f".{scope}")
            for d in found
        }
        claim = os.path.exists(os.path.join(state.state_dir(), nat.FORWARD_RECORD))
        table = nat.table_name()
    iptables = _run(["iptables-save"]) + _run(["ip6tables-save"])
    if shutil.which("iptables-legacy-save"):
        iptables += _run(["iptables-legacy-save"])
    return KernelState(
        table=table,
        scope=scope,
        names=frozenset(ours),
        nft=_run(["nft", "list", "ruleset"]),
        iptables=iptables,
        cgroups=frozenset(dirs),
        sysctls=tuple((p, _read(p)) for p in FORWARDING_SYSCTLS),
        forward_claim=claim,
    )


def _nft_lines(ruleset: str, table: str, names: frozenset[str]) -> set[str]:
    """Every line of our own table (tables and chains included), and the lines of any
    other table that name one of our bridges or veths; counters dropped."""
    out: set[str] = set()
    header = ""
    for raw in ruleset.splitlines():
        line = _COUNTERS.sub("", raw).strip()
        if raw.startswith("table "):
            header = line
        if header == f"table ip {table} {{" or any(f'"{n}"' in line for n in names):
            out.add(f"{header} | {line}")
    return out


def _ipt_lines(dump: str, names: frozenset[str]) -> set[str]:
    words = {n for n in names if n}
    return {
        _COUNTERS.sub("", line).strip()
        for line in dump.splitlines()
        if not line.startswith("#") and words & set(line.split())
    }


def kernel_changes(before: KernelState, after: KernelState, known: Iterable[str] = ()) -> list[str]:
    """What ``after`` holds for the state directory that ``before`` did not, or lacks.

    Only what belongs to the state directory is compared (its table, its objects'
    names, its cgroup scope): other tests on this host change the rest of the
    ruleset at the same time, and that must not make this check flaky. The global
    forwarding sysctls are the one shared thing: a change of them counts only while
    the state directory still claims it (``ip_forward.json`` left behind), since
    another runtime may flip them meanwhile. ``known``: more names of ours (from a
    state taken in between, when both ends predate or outlive the objects).
    """
    names = before.names | after.names | frozenset(known)
    out: list[str] = []
    for tag, old, new in (
        (
            "nft",
            _nft_lines(before.nft, before.table, names),
            _nft_lines(after.nft, after.table, names),
        ),
        ("iptables", _ipt_lines(before.iptables, names), _ipt_lines(after.iptables, names)),
        ("cgroup", set(before.cgroups), set(after.cgroups)),
    ):
        out += [f"{tag} added: {x}" for x in sorted(new - old)]
        out += [f"{tag} removed: {x}" for x in sorted(old - new)]
    if after.forward_claim and not before.forward_claim:
        out.append("ip_forward.json left: forwarding was turned on and never given back")
    if after.forward_claim and after.sysctls != before.sysctls:
        changed = [
            f"{p}: {a} -> {b}"
            for (p, a), (_q, b) in zip(before.sysctls, after.sysctls, strict=True)
            if a != b
        ]
        out.append(f"forwarding sysctls changed while claimed: {changed}")
    return out
