"""Names, flags and small parsers of the runtime: pure functions, unit-tested.

Interface names are limited to 15 bytes by the kernel (IFNAMSIZ - 1), so host
side names are derived from a short hash of the container or network name: they
are stable (gc can find a leftover by recomputing them) and never collide with
another engine's ``veth*`` or ``br-*`` names.
"""

from __future__ import annotations

import ipaddress
import re
import zlib

from netlens_runtime.errors import BadInput

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
HOST_VETH_RE = re.compile(r"^nlv[0-9a-f]{10}$")
DEFAULT_NETWORK = "default"
DEFAULT_BRIDGE = "netlens0"

# Docker's default capability set minus MKNOD: there is no device cgroup here to
# make a made-up /dev node harmless.
CAPS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
    "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9,
    "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13,
    "IPC_LOCK": 14, "IPC_OWNER": 15, "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18,
    "SYS_PTRACE": 19, "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23,
    "SYS_RESOURCE": 24, "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28,
    "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30, "SETFCAP": 31, "MAC_OVERRIDE": 32,
    "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35, "BLOCK_SUSPEND": 36,
    "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}  # fmt: skip
DEFAULT_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)  # fmt: skip


def validate_name(name: str, what: str = "container") -> str:
    """Container and network names: 1-63 chars of [A-Za-z0-9_.-], no leading dot."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadInput(f"invalid {what} name {name!r}: use 1-63 letters, digits, '_', '.', '-'")
    return name


IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")


def ifname_problem(name: object) -> str | None:
    """Why ``name`` cannot be an interface name netlens makes or names in rules (None: fine).

    The kernel refuses more than 15 bytes, '.', '..', '/', ':', whitespace and
    NUL. Bridge names also end up in nftables rules and iptables arguments,
    where '*' (nft) and '+' (iptables) are wildcards that would match other
    interfaces, and quotes, backslashes or ';' would matter to anything that
    splices text; a leading '-' reads as an option to ip and iptables. So the
    names netlens accepts are a plain subset: ASCII letters, digits, '_', '.'
    and '-' (not first), at most 15 bytes. '@' is left out too: ``ip link``
    prints a veth as ``name@peer``.
    """
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name.encode()) > 15:
        return "longer than 15 bytes (the kernel's limit)"
    if not IFNAME_RE.match(name):
        return "use letters, digits, '_', '.' and '-' (not first)"
    return None


def validate_ifname(name: str) -> str:
    """Interface names netlens creates or puts in firewall rules (see :func:`ifname_problem`)."""
    problem = ifname_problem(name)
    if problem:
        raise BadInput(f"invalid interface name {name!r}: {problem}")
    return name


def _short_hash(text: str) -> str:
    raw = text.encode()
    # Two CRCs (zlib imports in microseconds, hashlib in milliseconds): 40 bits used.
    return f"{zlib.crc32(raw):08x}{zlib.crc32(raw[::-1] + b'nl'):08x}"[:10]


def host_veth_name(container: str, scope: str = "") -> str:
    """Host end of a container's eth0: ``nlv`` + 10 hex = 13 bytes."""
    return "nlv" + _short_hash(f"{scope}/{container}" if scope else container)


def bridge_name(network: str, scope: str = "") -> str:
    """``netlens0`` for the default network, else ``nlb`` + 10 hex."""
    if network == DEFAULT_NETWORK and not scope:
        return DEFAULT_BRIDGE
    return "nlb" + _short_hash(f"{scope}/{network}" if scope else network)


def cgroup_leaf(container: str, scope: str = "") -> str:
    """The container's cgroup directory name under ``netlens/``."""
    return f"{container}.{scope}" if scope else container


_MEM_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_memory(text: str) -> int:
    """``64m`` -> bytes; units b, k, m, g (case-insensitive); at least 4 MiB."""
    m = re.fullmatch(r"\s*(\d+)\s*([bkmgBKMG]?)[bB]?\s*", text)
    if not m:
        raise BadInput(f"invalid memory size {text!r}: use e.g. 64m or 1g")
    value = int(m.group(1)) * _MEM_UNITS[m.group(2).lower()]
    if value < 4 << 20:
        raise BadInput(f"memory limit {text!r} is below 4m")
    return value


def parse_cpus(value: float | str) -> float:
    try:
        cpus = float(value)
    except ValueError:
        raise BadInput(f"invalid --cpus {value!r}: use a number like 0.5") from None
    if not 0.01 <= cpus <= 1024:
        raise BadInput(f"invalid --cpus {value!r}: between 0.01 and 1024")
    return cpus


ANY_ADDRESS = "0.0.0.0"


def parse_publish(text: str) -> dict[str, object]:
    """``[HOSTIP:]HOSTPORT:PORT[/tcp|udp]`` -> {"host_ip", "host_port", "port", "proto"}.

    ``host_ip`` None means every address of the host, as does 0.0.0.0 (Docker's
    meaning), which is stored as None so one rule form serves both. Whether a
    given address is the host's own is checked when the port is published
    (:mod:`netlens_runtime.ports`), not here: this is a pure parser.
    """
    proto = "tcp"
    body = text
    if "/" in text:
        body, proto = text.rsplit("/", 1)
        if proto not in ("tcp", "udp"):
            raise BadInput(f"invalid --publish {text!r}: protocol must be tcp or udp")
    parts = body.split(":")
    host_ip: str | None = None
    if len(parts) == 3:
        try:
            host_ip = str(ipaddress.IPv4Address(parts[0]))
        except ValueError:
            raise BadInput(f"invalid --publish {text!r}: bad host address") from None
        if host_ip == ANY_ADDRESS:
            host_ip = None
        parts = parts[1:]
    if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
        raise BadInput(f"invalid --publish {text!r}: use HOSTPORT:PORT[/tcp|udp]")
    return {"host_ip": host_ip, "host_port": int(parts[0]), "port": int(parts[1]), "proto": proto}


def parse_kv(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise BadInput(f"invalid {what} {text!r}: use KEY=VALUE")
    return key, value


def cap_mask(cap_add: list[str]) -> int:
    """Bit mask of the default capabilities plus ``cap_add`` (names with or without CAP_)."""
    mask = 0
    for cap in (*DEFAULT_CAPS, *cap_add):
        key = cap.upper().removeprefix("CAP_")
        if key == "ALL":
            return (1 << (max(CAPS.values()) + 1)) - 1
        if key not in CAPS:
            raise BadInput(f"unknown capability {cap!r}")
        mask |= 1 << CAPS[key]
    return mask


def validate_sysctl(key: str) -> str:
    """Only namespaced sysctls (net.*, kernel.hostname-like) make sense in a container."""
    if not re.fullmatch(r"[a-z0-9_.\-/]+", key) or ".." in key:
        raise BadInput(f"invalid sysctl {key!r}")
    if not (key.startswith("net.") or key in ("kernel.shm_rmid_forced", "kernel.msgmax")):
        raise BadInput(f"sysctl {key!r} is not namespaced: only net.* are allowed")
    return key
