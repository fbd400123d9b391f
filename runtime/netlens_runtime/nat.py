"""NAT and forwarding rules in netlens's own nftables table ``ip netlens``.

The whole table is rendered from state (:mod:`netlens_runtime.firewall`, nft
JSON) and replaced in one ``nft -j -f -`` transaction per change, so the rules
always match the state files and a crash cannot leave half a rule set. The
table is deleted with the last network.

Beside Docker: a DROP policy in iptables' filter FORWARD chain drops bridged
traffic (br_netfilter) whatever our table accepts, so each network also puts
accept rules (comment ``netlens``) into that chain when it exists, and removes
them with the network: what leaves the bridge (``-i BR``), and what enters it
as a reply or through a published port (``-o BR`` with conntrack state
RELATED,ESTABLISHED or DNAT). Our own table still decides what of that passes
(isolation between networks); the iptables rules only keep Docker's policy from
dropping it, and never open a bridge to new connections from outside. Every
rule is an argument list (no shell), and bridge names are validated before
they get here.

Host forwarding (``net.ipv4.ip_forward``) is turned on by the first NAT network
and put back by the last one: see :func:`need_forwarding`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from netlens_runtime.errors import RuntimeFailure

TABLE = "netlens"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
FORWARD_RECORD = "ip_forward.json"  # in the state directory, only while netlens flipped it


def table_name() -> str:
    """``netlens`` for the default state directory, ``netlens_<hash>`` for others.

    Each state directory renders the whole table from its own networks, so a
    test (or a second installation) with its own NETLENS_STATE_DIR must not
    replace the main table.
    """
    from netlens_runtime import state

    scope = state.scope()
    return f"{TABLE}_{scope}" if scope else TABLE


def render(networks: list[dict[str, Any]], table: str | None = None) -> str:
    """The nft JSON document that replaces the table (see :mod:`netlens_runtime.firewall`).

    Published ports live in each network's record (``published``: container ->
    list of {host_ip, host_port, port, proto, ip}) so a change reads no
    container file.
    """
    from netlens_runtime import firewall

    return firewall.render(networks, table or table_name())


def apply(script: str) -> None:
    """Feed one nft JSON document to ``nft -j -f -``: one transaction, all or nothing."""
    import subprocess

    try:
        res = subprocess.run(["nft", "-j", "-f", "-"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("nft is not installed (Debian package nftables)") from None
    if res.returncode != 0:
        errs = [ln for ln in res.stderr.splitlines() if "Error" in ln] or [res.stderr.strip()]
        raise RuntimeFailure(f"nft failed: {errs[0]}")


def sync(networks: list[dict[str, Any]]) -> None:
    apply(render(networks))


def _iptables_forward_exists() -> bool:
    import subprocess

    try:
        res = subprocess.run(
            ["nft", "list", "chain", "ip", "filter", "FORWARD"], capture_output=True, text=True
        )
    except FileNotFoundError:
        return False
    return res.returncode == 0


def _iptables(args: list[str]) -> bool:
    import subprocess

    try:
        res = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return res.returncode == 0


_COMMENT = ["-m", "comment", "--comment", "netlens"]


def fwd_rules(bridge: str) -> list[list[str]]:
    """The FORWARD accept rules of one bridge, as iptables argument lists."""
    from netlens_runtime import names

    names.validate_ifname(bridge)
    ct = ["-m", "conntrack", "--ctstate"]
    return [
        ["-i", bridge, *_COMMENT, "-j", "ACCEPT"],
        ["-o", bridge, *ct, "RELATED,ESTABLISHED", *_COMMENT, "-j", "ACCEPT"],
        ["-o", bridge, *ct, "DNAT", *_COMMENT, "-j", "ACCEPT"],
    ]


def _old_fwd_rules(bridge: str) -> list[list[str]]:
    """What netlens inserted before networks were isolated, removed with the network."""
    return [["-o", bridge, *_COMMENT, "-j", "ACCEPT"]]


def allow_forward(bridge: str) -> bool:
    """Accept the bridge in iptables' FORWARD chain if that chain exists."""
    if not _iptables_forward_exists():
        return False
    for rule in reversed(fwd_rules(bridge)):  # -I: the first rule ends up on top
        if not _iptables(["-C", "FORWARD", *rule]):
            _iptables(["-I", "FORWARD", *rule])
    return True


def disallow_forward(bridge: str) -> None:
    if not _iptables_forward_exists():
        return
    for rule in [*fwd_rules(bridge), *_old_fwd_rules(bridge)]:
        while _iptables(["-D", "FORWARD", *rule]):
            pass


def _read_forward() -> str:
    with open(IP_FORWARD) as fh:
        return fh.read().strip()


def _write_forward(value: str) -> None:
    with open(IP_FORWARD, "w") as fh:
        fh.write(value)


def need_forwarding() -> None:
    """Turn host forwarding on for a NAT network; remember the old value if we flipped it.

    Called under the state lock before a NAT network is made. Only when netlens
    is the one turning it on does the state directory get a record
    (``ip_forward.json``: the value found and the value set); a host that
    already forwards is left alone and nothing is recorded, so nothing is
    restored later either.
    """
    from netlens_runtime import state

    current = _read_forward()
    if current == "1":
        return
    _write_forward("1")
    path = state.sub(FORWARD_RECORD)
    if not os.path.exists(path):  # keep the first value found if we flip it again
        state.write_json(path, {"previous": current, "set": "1"})


def release_forwarding(networks: list[dict[str, Any]]) -> bool:
    """Put host forwarding back once no NAT network of this state directory is left.

    ``networks`` are the ones that remain. The rule: the value recorded by
    :func:`need_forwarding` is restored when the last NAT network of the same
    state directory goes (``network rm``, a failed create, ``netlens gc``),
    and only if ip_forward still holds the value netlens set; if someone
    changed it meanwhile, theirs stays. netlens cannot know who else came to
    rely on forwarding while it was on, so it leaves forwarding on (and drops
    its record) whenever the host shows source NAT that is not this state
    directory's: Docker's MASQUERADE, another state directory's table, a
    hand-made rule (:func:`other_nat_users`). Whoever needs forwarding for good
    should still set it themselves (``/etc/sysctl.d``). Returns True if the value
    was written back.
    """
    from netlens_runtime import state

    if any(n.get("nat", True) for n in networks):
        return False
    path = state.sub(FORWARD_RECORD)
    try:
        rec = state.read_json(path)
    except (OSError, ValueError):
        return False
    restored = False
    with contextlib.suppress(OSError):
        if (
            isinstance(rec, dict)
            and _read_forward() == str(rec.get("set", "1"))
            and not other_nat_users()
        ):
            _write_forward(str(rec["previous"]))
            restored = True
    state.remove_file(path)
    return restored


_SNAT_WORDS = ("masquerade", "snat to", "MASQUERADE", "SNAT")


def other_nat_users() -> list[str]:
    """Where the host translates sources outside this state directory's own table.

    Any such rule means something else (Docker, Podman, libvirt, another
    netlens state directory, a hand-made rule) may route through this host and
    need ``ip_forward`` on. Read from ``nft list ruleset`` (nftables and
    iptables-nft) and ``iptables-legacy-save -t nat``; a tool that is missing or
    fails counts as showing nothing. Returns one short line per user found.
    """
    import subprocess

    ours = f"table ip {table_name()} "
    found: list[str] = []
    for argv in (["nft", "list", "ruleset"], ["iptables-legacy-save", "-t", "nat"]):
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        legacy = argv[0] != "nft"
        table = "iptables-legacy nat" if legacy else ""
        for line in res.stdout.splitlines():
            if not legacy and line.startswith("table "):
                table = line.rstrip(" {")
                continue
            rule = line.startswith("-A ") if legacy else not (table + " ").startswith(ours)
            if rule and any(w in line for w in _SNAT_WORDS):
                found.append(f"{table}: {line.strip()}")
    return found
