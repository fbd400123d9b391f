"""Names, flags and small parsers of the runtime: pure functions, unit-tested.

Interface names are limited to 15 bytes by the kernel (IFNAMSIZ - 1), so host
side names are derived from a short hash of the container or network name: they
are stable (gc can find a leftover by recomputing them) and never collide with
another engine's ``veth*`` or ``br-*`` names.
"""

from __future__ import annotations

import ipaddress
import posixpath
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


def validate_ifname(name: str) -> str:
    """Kernel interface names: 1-15 bytes, no '/', ':' or whitespace."""
    raw = name.encode()
    if not 0 < len(raw) <= 15 or any(c in name for c in "/: \t\n") or name in (".", ".."):
        raise BadInput(f"invalid interface name {name!r}: 1-15 bytes, no '/', ':' or spaces")
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


def parse_publish(text: str) -> dict[str, object]:
    """``[HOSTIP:]HOSTPORT:PORT[/tcp|udp]`` -> {"host_ip", "host_port", "port", "proto"}."""
    proto = "tcp"
    body = text
    if "/" in text:
        body, proto = text.rsplit("/", 1)
        if proto not in ("tcp", "udp"):
            raise BadInput(f"invalid --publish {text!r}: protocol must be tcp or udp")
    parts = body.split(":")
    host_ip: str | None = None
    if len(parts) == 3:
        host_ip = parts[0]
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise BadInput(f"invalid --publish {text!r}: bad host address") from None
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


# The container's own mounts: a volume there would hide or replace them.
_NOT_VOLUME_TARGETS = ("/proc", "/sys", "/dev")


def parse_volume(text: str) -> tuple[str, str, bool]:
    """``HOST:CONTAINER[:ro|rw]`` -> (host path, container path, read-only).

    Both paths absolute, without '..' (a volume must not climb out of what
    its text says), normalised; the container path is neither ``/`` nor under
    /proc, /sys or /dev. Whether the host path exists is the caller's check.
    """
    usage = f"invalid volume {text!r}: use HOST:CONTAINER[:ro] with absolute paths"
    parts = text.split(":")
    read_only = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        read_only = parts.pop() == "ro"
    if len(parts) != 2 or "\0" in text:
        raise BadInput(usage)
    for path in parts:
        if not path.startswith("/"):
            raise BadInput(usage)
        if ".." in path.split("/"):
            raise BadInput(f"invalid volume {text!r}: '..' is not allowed in its paths")
    # One leading slash: normpath keeps '//x' (POSIX lets two mean something else).
    host, target = (posixpath.normpath("/" + p.lstrip("/")) for p in parts)
    if target == "/":
        raise BadInput(f"invalid volume {text!r}: the container path cannot be /")
    for own in _NOT_VOLUME_TARGETS:
        if target == own or target.startswith(own + "/"):
            raise BadInput(f"invalid volume {text!r}: {own} is the container's own")
    return host, target, read_only
