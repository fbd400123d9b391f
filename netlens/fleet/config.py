"""Which servers make the fleet: host names on the command line and a fleet file.

A fleet file is YAML::

    defaults: {user: ops, command: "sudo netlens agent", timeout: 15}
    hosts:
      - lab1                      # a name as ssh would take it (~/.ssh/config applies)
      - alias: lab2
        host: 10.0.0.2            # what to connect to (default: the alias)
        user: root
        port: 2222
        key: ~/.ssh/lab_ed25519
        jump: bastion             # [user@]host[:port], as ssh -J
        command: /opt/netlens/bin/netlens agent
        labels: {rack: r12}

Everything left out falls to asyncssh's defaults, which read ~/.ssh/config and use
the SSH agent: a fleet that ssh already reaches needs nothing but the names.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from netlens.errors import UsageError

DEFAULT_COMMAND = "netlens agent"
DEFAULT_TIMEOUT = 15.0
_KEYS = {"alias", "host", "user", "port", "key", "jump", "command", "labels", "timeout"}


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """How to reach one server and what to run there."""

    alias: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    key: str | None = None
    jump: str | None = None
    command: str = DEFAULT_COMMAND
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT


def _spec(entry: Any, defaults: dict[str, Any], where: str) -> HostSpec:
    if isinstance(entry, str):
        entry = {"alias": entry}
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: a host is a name or a mapping, not {type(entry).__name__}")
    merged = {**defaults, **entry}
    unknown = sorted(set(merged) - _KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    alias = merged.get("alias") or merged.get("host")
    if not isinstance(alias, str) or not alias:
        raise UsageError(f"{where}: a host needs an 'alias' or a 'host'")
    try:
        port = None if merged.get("port") is None else int(merged["port"])
        timeout = float(merged.get("timeout", DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        raise UsageError(f"{where}: 'port' and 'timeout' must be numbers") from None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"{where}: port {port} is out of range")
    if not timeout > 0:
        raise UsageError(f"{where}: timeout must be positive")
    labels = merged.get("labels") or {}
    if not isinstance(labels, dict):
        raise UsageError(f"{where}: 'labels' is a mapping of names to values")
    key = merged.get("key")
    return HostSpec(
        alias=alias,
        host=merged.get("host"),
        user=merged.get("user"),
        port=port,
        key=os.path.expanduser(str(key)) if key else None,
        jump=merged.get("jump"),
        command=str(merged.get("command") or DEFAULT_COMMAND),
        labels={str(k): str(v) for k, v in labels.items()},
        timeout=timeout,
    )


def load_fleet_file(path: str) -> list[HostSpec]:
    """The hosts of a fleet file; any mistake is one :class:`UsageError` line."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as err:
        raise UsageError(f"cannot read fleet file {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"fleet file {path} is not YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("hosts"), list):
        raise UsageError(f"fleet file {path}: expected a mapping with a 'hosts' list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UsageError(f"fleet file {path}: 'defaults' is a mapping")
    extra = sorted(set(doc) - {"hosts", "defaults"})
    if extra:
        raise UsageError(f"fleet file {path}: unknown key {extra[0]!r}")
    return [
        _spec(e, defaults, f"fleet file {path}, host {n + 1}") for n, e in enumerate(doc["hosts"])
    ]


def hosts_from(names: list[str], path: str | None, timeout: float | None) -> list[HostSpec]:
    """Command-line names plus the fleet file's hosts; a name given twice is one host."""
    specs = load_fleet_file(path) if path else []
    known = {s.alias for s in specs}
    for n in names:
        if n not in known:
            specs.append(HostSpec(alias=n))
            known.add(n)
    if timeout is not None:
        specs = [dataclasses.replace(s, timeout=timeout) for s in specs]
    if not specs:
        raise UsageError("no hosts: name some, or give a fleet file with --file")
    return specs
