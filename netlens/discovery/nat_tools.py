"""Run the NAT tools where the probe saw NAT, and read their rules.

:mod:`netlens.discovery.nat` probes every namespace cheaply (one chain dump, two
procfs lists); only where that shows NAT do we spend a process: ``nsenter
--net=PATH nft -j list ruleset``, ``iptables-nft-save`` for tables whose targets
are opaque ``xt`` blobs, ``iptables-legacy-save`` for legacy tables. A few run
at once (the host has few cores to spare), and discovery may start them early
(:func:`start_tools`) so they run while the helper walks the other namespaces.
Their output goes to :mod:`netlens.discovery.nat_rules`. Also here: the Docker
FORWARD-policy trap, which needs the same probe plus one legacy tool.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from netlens.discovery.nat import NsProbe, probe, probe_here
from netlens.discovery.nat_rules import parse_iptables_save, parse_nft_json
from netlens.discovery.nsfind import NsHandle
from netlens.kernel import nsenter
from netlens.model import NatRule

log = logging.getLogger(__name__)

_TOOL_TIMEOUT_S = 10.0
_MAX_PARALLEL = 4


# --- running the tools -------------------------------------------------------------
def _spawn(path: str, argv: list[str]) -> subprocess.Popen[str] | None:
    """Start ``argv`` inside the namespace at ``path`` without waiting for it
    (None when it cannot start: a missing nsenter)."""
    try:
        return subprocess.Popen(
            ["nsenter", f"--net={path}", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as err:
        log.debug("nat: %s in %s failed: %s", argv[0], path, err)
        return None


def _collect(path: str, argv: list[str], proc: subprocess.Popen[str] | None) -> str | None:
    """stdout of a :func:`_spawn`-ed tool; None on failure (a namespace that
    vanished since the probe, a missing tool, a hang past the timeout)."""
    if proc is None:
        return None
    try:
        out, err = proc.communicate(timeout=_TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        log.debug("nat: %s in %s timed out", argv[0], path)
        return None
    if proc.returncode != 0:
        log.debug("nat: %s in %s exit %d: %s", argv[0], path, proc.returncode, err.strip())
        return None
    return out


def _run_in(path: str, argv: list[str]) -> str | None:
    """stdout of ``argv`` run inside the namespace at ``path``; None on failure."""
    return _collect(path, argv, _spawn(path, argv))


def _parallel(jobs: Iterable[tuple[str, list[str]]]) -> list[str | None]:
    """Run (path, argv) jobs a few at a time; the host has few cores to spare."""
    job_list = list(jobs)
    if len(job_list) <= 1:
        return [_run_in(p, a) for p, a in job_list]
    from concurrent.futures import ThreadPoolExecutor  # only when there is work

    with ThreadPoolExecutor(max_workers=_MAX_PARALLEL) as pool:
        return list(pool.map(lambda j: _run_in(j[0], j[1]), job_list))


def _nft_rules(path: str, text: str | None) -> list[NatRule]:
    import json

    if not text:
        return []
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return []
    rules, xt_tables = parse_nft_json(doc)
    if not xt_tables:
        return rules
    keep = [r for r in rules if (r.family, r.table) not in xt_tables]
    for family, _table in sorted(xt_tables):
        tool = "ip6tables-nft-save" if family == "ip6" else "iptables-nft-save"
        if family not in ("ip", "ip6") or not shutil.which(tool):
            keep.extend(r for r in rules if (r.family, r.table) == (family, _table))
            continue
        out = _run_in(path, [tool, "-t", "nat"])
        if out is None:
            keep.extend(r for r in rules if (r.family, r.table) == (family, _table))
            continue
        keep.extend(parse_iptables_save(out, source="iptables-nft", family=family))
    return keep


def _tool_jobs(pr: NsProbe, have_nft: bool) -> list[tuple[str, list[str]]]:
    """(kind, argv) of the tools to run where ``pr`` saw NAT, in the order their
    rules are listed: ``nft`` first, then the legacy ``ip`` and ``ip6`` tables."""
    jobs: list[tuple[str, list[str]]] = []
    if pr.nft_nat and have_nft:
        jobs.append(("nft", ["nft", "-j", "list", "ruleset"]))
    if pr.legacy_nat4 and shutil.which("iptables-legacy-save"):
        jobs.append(("ip", ["iptables-legacy-save", "-t", "nat"]))
    if pr.legacy_nat6 and shutil.which("ip6tables-legacy-save"):
        jobs.append(("ip6", ["ip6tables-legacy-save", "-t", "nat"]))
    return jobs


class StartedTools:
    """NAT tools started before their output is needed (:func:`start_tools`).

    Discovery knows the probe of the namespaces it opens itself (the host's,
    typically the only one with NAT) right after starting the helper process;
    the tools then run while the helper walks the other namespaces instead of
    after it. :func:`read_nat` collects them; :meth:`close` ends any it did not.
    """

    def __init__(self) -> None:
        self.runs: dict[int, list[tuple[NsHandle, str, list[str], subprocess.Popen[str] | None]]]
        self.runs = {}

    def close(self) -> None:
        for runs in self.runs.values():
            for _h, _kind, _argv, proc in runs:
                if proc is not None and proc.returncode is None:
                    with contextlib.suppress(OSError):
                        proc.kill()
                    proc.communicate()
        self.runs.clear()


def start_tools(pairs: Iterable[tuple[NsHandle, NsProbe]]) -> StartedTools:
    """Start the tools for each (handle, probe) now, without waiting for them; at
    most about :data:`_MAX_PARALLEL` at once (the namespaces left over run in
    :func:`read_nat`, which skips only those started here)."""
    started = StartedTools()
    have_nft = shutil.which("nft") is not None
    count = 0
    try:
        for h, pr in pairs:
            if count >= _MAX_PARALLEL:
                break
            jobs = _tool_jobs(pr, have_nft)
            runs = started.runs.setdefault(h.inode, [])
            for kind, argv in jobs:
                # Recorded one by one: an interrupt between two spawns must still
                # find every tool already started, to reap it below.
                runs.append((h, kind, argv, _spawn(h.path, argv)))
            count += len(jobs)
    except BaseException:
        started.close()  # a Ctrl-C mid-start leaves no tool running nor a zombie
        raise
    return started


def read_nat(
    handles: Sequence[NsHandle],
    *,
    probes: Sequence[NsProbe | None] | None = None,
    started: StartedTools | None = None,
) -> dict[int, tuple[NatRule, ...]]:
    """NAT rules keyed by namespace inode; namespaces without NAT are absent.

    ``probes`` (from :func:`probe`, same order as ``handles``) may be passed when
    the caller already probed; ``started``: tools already running for some of
    them (:func:`start_tools`), collected here. Vanished namespaces are skipped.
    Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to enter namespaces); without it
    every probe fails and the result is empty.
    """
    handles = list(handles)
    if probes is None:
        probes = probe(handles)
    early = started.runs if started is not None else {}
    have_nft = shutil.which("nft") is not None
    todo: list[tuple[NsHandle, str, list[str]]] = []
    for h, pr in zip(handles, probes, strict=True):
        if pr is not None and h.inode not in early:
            todo.extend((h, kind, argv) for kind, argv in _tool_jobs(pr, have_nft))
    # One pool for both tools: with NAT in a few namespaces (the host has nft and
    # iptables-legacy tables on many machines) the two batches used to run one
    # after the other, 10 ms each.
    outputs = _parallel([(h.path, argv) for h, _kind, argv in todo])
    results = [(h, kind, text) for (h, kind, _argv), text in zip(todo, outputs, strict=True)]
    for runs in early.values():
        results.extend((h, kind, _collect(h.path, argv, proc)) for h, kind, argv, proc in runs)
    out: dict[int, list[NatRule]] = {}
    for h, kind, text in results:
        if kind == "nft":
            rules = _nft_rules(h.path, text)
        elif text:
            rules = parse_iptables_save(text, source="iptables-legacy", family=kind)
        else:
            continue
        if rules:
            out.setdefault(h.inode, []).extend(rules)
    return {inode: tuple(rules) for inode, rules in out.items()}


# --- the Docker FORWARD trap -------------------------------------------------------
def forward_policy_warning(
    handle: NsHandle | None = None, *, probe_result: NsProbe | None = None
) -> str | None:
    """One line warning when bridged traffic is silently dropped, else None.

    dockerd sets the iptables FORWARD policy to DROP when it turns ip_forward on;
    with br_netfilter calling iptables for bridged frames, traffic between
    namespaces on any bridge Docker did not create is then dropped. Checks the
    namespace of ``handle`` (default: the caller's own, normally the host).
    Pass ``probe_result`` to reuse a probe made with ``probe(..., with_br_nf=True)``.
    """
    pr = probe_result if probe_result is not None else _probe_for_warning(handle)
    if pr is None or not pr.br_nf_call_iptables:
        return None
    drops = [
        f"{c.family} {c.table} {c.name}"
        for c in pr.chains
        if c.hook == "forward" and c.policy == "drop" and c.family in ("ip", "inet")
    ]
    if "filter" in pr.legacy_tables4 and shutil.which("iptables-legacy-save"):
        out = (
            _run_in(handle.path, ["iptables-legacy-save", "-t", "filter"])
            if handle is not None
            else _run_local(["iptables-legacy-save", "-t", "filter"])
        )
        if out and any(line.startswith(":FORWARD DROP") for line in out.splitlines()):
            drops.append("iptables-legacy filter FORWARD")
    if not drops:
        return None
    return (
        f"FORWARD policy is DROP ({'; '.join(drops)}) and br_netfilter is on "
        "(net.bridge.bridge-nf-call-iptables=1): traffic across Linux bridges that "
        "Docker did not create is silently dropped; add ACCEPT rules for those bridges "
        "(e.g. iptables -I DOCKER-USER -i BR -o BR -j ACCEPT)"
    )


def _probe_for_warning(handle: NsHandle | None) -> NsProbe | None:
    """Probe ``handle``'s namespace (or this thread's) with the br_netfilter knob;
    None when it cannot be entered."""
    if handle is None:
        return probe_here("/proc/thread-self/ns/net", with_br_nf=True)
    found = nsenter.run_in_netns([handle.path], lambda t: probe_here(t, with_br_nf=True))[0]
    return None if isinstance(found, OSError) else found


def _run_local(argv: list[str]) -> str | None:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None
