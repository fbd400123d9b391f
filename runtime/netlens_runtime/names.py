"""Every input rule of the runtime in one place: names, sizes, limits, flags.

``netlens run``, ``network create`` and the CLI call these functions, and so
does the lab loader (:mod:`netlens_runtime.lab_spec`, which adds the file and
line to the message): ``lab check`` and ``lab up`` cannot disagree, because
there is one validator per rule. Subnets and addresses are IPAM's rules
(:mod:`netlens_runtime.ipam`); publish specs and interface names are here too.
Each rule raises :class:`BadInput` with a message that names the value and
the rule, and no file or line (the lab loader adds those).

Interface names are limited to 15 bytes by the kernel (IFNAMSIZ - 1), so host
side names are derived from a short hash of the container or network name: they
are stable (gc can find a leftover by recomputing them) and never collide with
another engine's ``veth*`` or ``br-*`` names.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import zlib

from netlens_runtime.errors import BadInput

NAME_MAX = 63
"""Container, network, lab and node names: at most 63 bytes.

Why 63: a container's hostname defaults to its name (a lab node's to its node
name), and a hostname label is at most 63 bytes (RFC 1123; the kernel takes 64).
Everything else a name becomes fits with room to spare: state files
``<name>.json`` and logs ``<name>.log.1`` (255 bytes, NAME_MAX of the file
system), cgroup leaves ``<name>.<scope>`` (255), labels; interface names are
hashes of it. A lab node's runtime name is ``<lab>-<node>``: that whole name must
fit, not each part alone.
"""
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
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


def validate_name(name: object, what: str = "container") -> str:
    """A container, network, lab or node name: see :data:`NAME_MAX` for the limit.

    1-63 ASCII letters, digits, ``_``, ``.``, ``-``, starting with a letter or a
    digit. So a name is never ``.``, ``..``, a path, a hidden or temporary file
    of the state directory (those start with a dot), and has no newline.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise BadInput(
            f"{name!r} is not a valid {what} name (1-{NAME_MAX} letters, digits, '_', '.'"
            " or '-', starting with a letter or a digit)"
        )
    return name


IFNAMSIZ = 15
"""Linux interface names are at most 15 bytes (the kernel's IFNAMSIZ, 16, less the NUL)."""
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
    if len(name.encode()) > IFNAMSIZ:
        return f"longer than {IFNAMSIZ} bytes (the kernel's limit)"
    if not IFNAME_RE.match(name):
        return "use letters, digits, '_', '.' and '-' (not first)"
    return None


def validate_ifname(name: str) -> str:
    """Interface names netlens creates or puts in firewall rules (see :func:`ifname_problem`),
    or a lab route's device: never ``lo``, every namespace's loopback (an interface that
    exists already, so nothing netlens may make under that name)."""
    problem = ifname_problem(name) or ("it is the loopback interface" if name == "lo" else None)
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


_SIZE_RE = re.compile(r"\s*(\d{1,20})(?:\.(\d{1,20}))? ?(?:([kmgtp])(i?))?(b?)\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
SIZE_MAX = (1 << 63) - 1
"""The cgroup counters' range: a bigger number wraps around in a v1 memory cgroup."""
MEMORY_MIN = 4 << 20
"""Below this a container does not start (tini, the command, its page tables)."""
LOG_SIZE_MIN = 64 << 10
LOG_SIZE_DEFAULT = 10 << 20


def parse_size(text: object, what: str, minimum: int = 0) -> int:
    """A byte size as Docker writes it: ``64m``, ``1.5g``, ``512k``, ``2t``, ``64MiB``, ``100``.

    A number (decimals allowed) and an optional unit k, m, g, t or p, any case,
    optionally followed by ``i`` and ``b`` (``m``, ``mb``, ``mi``, ``mib`` are all
    MiB): every unit is binary, as in Docker and cgroups, and ``b`` means bytes,
    never bits. No unit means bytes. Fractions of a byte are dropped. Exact
    integer arithmetic: ``1.5g`` is 1610612736, not a float's approximation.
    """
    m = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise BadInput(f"{text!r} is not a {what} size (e.g. 64m, 1.5g, 512k, 2t)")
    whole, frac, unit = m.group(1), m.group(2) or "", (m.group(3) or "").lower()
    scale = 10 ** len(frac)
    value: int = (int(whole) * scale + int(frac or 0)) * _SIZE_UNITS[unit] // scale
    if value < minimum:
        raise BadInput(f"{what} size {text!r} is below the minimum {_human(minimum)}")
    if value > SIZE_MAX:
        raise BadInput(f"{what} size {text!r} is too big (at most 2^63-1 bytes)")
    return value


def _human(size: int) -> str:
    for unit, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def parse_memory(text: object) -> int:
    """A memory limit in bytes (see :func:`parse_size`); at least 4 MiB."""
    return parse_size(text, "memory", MEMORY_MIN)


def parse_log_size(text: object) -> int:
    """The most a detached container's log takes on disk: the current file and one
    rotated file, each at most half of it (see :mod:`netlens_runtime.logger`)."""
    return parse_size(text, "log", LOG_SIZE_MIN)


def parse_cpus(value: object) -> float:
    """CPU quota in cores: 0.01 to 1024 (the cgroup period is 100 ms: 1 ms at least)."""
    try:
        cpus = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput(f"{value!r} is not a CPU count: use a number like 0.5") from None
    if isinstance(value, bool) or not 0.01 <= cpus <= 1024:
        raise BadInput(f"{value!r} is not a CPU count: between 0.01 and 1024")
    return cpus


PIDS_DEFAULT = 2048
"""Podman's default: enough for any service, too few for a fork bomb to hurt the host."""
PIDS_MAX = 4194304  # PID_MAX_LIMIT on 64-bit kernels


def parse_pids_limit(value: object) -> int | None:
    """Tasks (processes and threads) a container may have; None means no limit.

    ``0`` or ``-1`` lift the limit, as in Docker and Podman. Otherwise at least 2:
    tini and the command.
    """
    try:
        if isinstance(value, (bool, float)):
            raise ValueError
        limit: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise BadInput(f"{value!r} is not a pids limit: use a whole number like 512") from None
    if limit in (0, -1):
        return None
    if not 2 <= limit <= PIDS_MAX:
        raise BadInput(
            f"pids limit {value!r} is out of range: 2 (tini and the command) to {PIDS_MAX},"
            " or 0/-1 for none"
        )
    return limit


_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def validate_hostname(name: object) -> str:
    """A hostname: at most 64 bytes (the kernel's limit), dot-separated RFC 1123 labels
    (1-63 letters, digits and '-', not starting or ending with '-')."""
    if (
        not isinstance(name, str)
        or not 0 < len(name.encode()) <= 64
        or not all(_LABEL_RE.fullmatch(label) for label in name.split("."))
    ):
        raise BadInput(
            f"{name!r} is not a valid hostname (at most 64 bytes of dot-separated labels:"
            " letters, digits and '-', not at either end)"
        )
    return name


def validate_mtu(mtu: object) -> int:
    """An MTU the kernel takes for a bridge or a veth: 68 (IPv4's minimum) to 65535."""
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise BadInput(f"{mtu!r} is not a valid MTU (68-65535)")
    return mtu


def validate_rootfs(path: str) -> str:
    """A root directory for a container: its real path, with /proc, /sys, /dev and /tmp."""
    real = os.path.realpath(path)
    if not os.path.isdir(real) or real == "/":
        raise BadInput(f"rootfs {path!r} is not a directory (nor '/')")
    for sub in ("proc", "sys", "dev", "tmp"):
        if not os.path.isdir(os.path.join(real, sub)):
            raise BadInput(f"rootfs {path!r} has no /{sub} directory")
    return real


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


RESERVED_LABEL_PREFIX = "netlens."
"""Labels netlens sets itself (``netlens.lab``, ``netlens.lab.node``): a lab's membership."""


def validate_label(key: str) -> str:
    """A label key a user may set: not in netlens's own ``netlens.`` namespace (a
    container claiming ``netlens.lab`` would pass for a lab's node)."""
    if key.startswith(RESERVED_LABEL_PREFIX):
        raise BadInput(f"{key!r}: labels starting with {RESERVED_LABEL_PREFIX!r} are reserved")
    return key


def check_publish(network: str | None, internal: bool) -> None:
    """Published ports need a network with a way out: some network, and not an internal one."""
    if network is None:
        raise BadInput("publishing a port needs a network")
    if internal:
        raise BadInput(f"network {network} is internal: it cannot publish ports")


def check_internal_nat(internal: bool, nat: bool) -> None:
    """An internal network forwards nothing out, so it cannot masquerade either."""
    if internal and nat:
        raise BadInput("an internal network has no NAT")


def check_allow_from(name: str, items: list[str]) -> list[str]:
    """``allow_from`` entries: network names (other netlens networks) or CIDRs (outside).

    A name need not exist yet: the rule applies whenever a network of that name
    does (a lab creates its networks one by one), and allows nothing otherwise.
    A network always reaches itself, so naming itself is a mistake.
    """
    out: list[str] = []
    for item in items:
        if "/" in item:
            try:
                cidr = str(ipaddress.IPv4Network(item, strict=True))
            except ValueError as err:
                raise BadInput(f"invalid allow-from {item!r}: {err}") from None
            out.append(cidr)
        else:
            if validate_name(item, "network") == name:
                raise BadInput(f"network {name} cannot allow itself (it always reaches itself)")
            out.append(item)
    return sorted(set(out))


def validate_env(key: object, value: object) -> tuple[str, str]:
    """An environment variable: a key without '=' or NUL, a value without NUL (C strings
    end at a NUL byte, so the container would get something else than asked)."""
    if not isinstance(key, str) or not key or "=" in key or "\0" in key:
        raise BadInput(f"{key!r} is not an environment variable name (no '=', not empty)")
    if not isinstance(value, str) or "\0" in value:
        raise BadInput(f"environment variable {key}: the value must be text without NUL bytes")
    return key, value


def validate_cap(cap: object) -> str:
    """A capability name as the kernel knows it (``NET_ADMIN``, ``cap_net_admin``), or ALL;
    returned upper case without ``CAP_``. An unknown name is refused, never ignored."""
    key = cap.upper().removeprefix("CAP_") if isinstance(cap, str) else ""
    if key != "ALL" and key not in CAPS:
        raise BadInput(f"{cap!r} is not a capability (e.g. NET_ADMIN, SYS_PTRACE, ALL)")
    return key


def cap_mask(cap_add: list[str]) -> int:
    """Bit mask of the default capabilities plus ``cap_add`` (names with or without CAP_)."""
    mask = 0
    for cap in (*DEFAULT_CAPS, *cap_add):
        key = validate_cap(cap)
        if key == "ALL":
            return (1 << (max(CAPS.values()) + 1)) - 1
        mask |= 1 << CAPS[key]
    return mask


_SYSCTL_RE = re.compile(r"[a-z0-9_-]+(?:[./][a-z0-9_-]+)+")
IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
"""Sysctls of the IPC namespace (every container has its own), as Docker allows."""


def validate_sysctl(key: object) -> str:
    """A sysctl a container may set: its own namespaces' only.

    ``net.*`` (the container's network namespace), the IPC namespace's
    ``kernel.msg*``/``kernel.sem``/``kernel.shm*`` and ``fs.mqueue.*``.
    Lower case, dot-separated (a '/' stands for a dot inside an interface name,
    as in ``net.ipv4.conf.eth0/1.rp_filter``); no empty, '.' or '..' part.
    Whether a ``net.*`` key exists in a new network namespace depends on the
    kernel and its modules: the container's setup reports a missing one.
    """
    if not isinstance(key, str) or not _SYSCTL_RE.fullmatch(key) or ".." in key:
        raise BadInput(f"{key!r} is not a sysctl name (lower case, e.g. net.ipv4.ip_forward)")
    if not (key.startswith(("net.", "fs.mqueue.")) or key in IPC_SYSCTLS):
        raise BadInput(
            f"sysctl {key!r} is not namespaced: only net.*, fs.mqueue.* and the IPC"
            " kernel.msg*/sem/shm* keys are set per container"
        )
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


def check_volume(text: str) -> tuple[str, str, bool]:
    """:func:`parse_volume`, and the host path must exist (``run -v``, lab ``binds``)."""
    host, target, read_only = parse_volume(text)
    if not os.path.exists(host):
        raise BadInput(f"volume {text!r}: host path {host} does not exist")
    return host, target, read_only
