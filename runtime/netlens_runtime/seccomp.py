"""Every container's system call filter: which profile, compiled once, cached.

A container gets netlens's default profile (``seccomp_default.json``: Docker's
default, rewritten; see there), ``--security-opt seccomp=FILE`` (Docker's JSON
format, see :mod:`netlens_runtime.seccomp_profile`) or none
(``seccomp=unconfined``, ``--privileged``). The profile and the container's
capabilities become a classic-BPF program here, in the parent; the child
loads it with ``prctl(PR_SET_SECCOMP)`` right before it execs (spawn.py's
``_child``, spawn_helper.c's ``child_main``), after capset and no_new_privs.

Why libseccomp (through ctypes, at compile time only): it knows every
architecture's system call numbers, the 32-bit ABIs beside the native one
(i386 ``int 0x80``, x32) and the socketcall multiplexer, and emits a checked,
optimised program; a BPF generator of our own would have to re-learn all of
that. Compiling costs milliseconds (the library's start-up and a JSON parse),
so programs are cached by everything that shapes them (the profile's bytes,
the capabilities, the machine, the kernel release and the library itself):
in memory for a batch, and in ``$NETLENS_STATE_DIR/seccomp/`` for the next
``netlens run``. A cache file is used only if it is ours (a regular file owned
by us in a directory owned by us, neither writable by group or others) and
holds the very key it was made for, compared byte for byte (no hash to trust).

What stays per container is the kernel's work when the child loads the
program (checking, converting and JIT-compiling it), which grows with the
program's length: hence the default profile lists the machine's own ABI only
(a 32-bit one would double it; other ABIs are refused by killing the caller),
and its program is not libseccomp's (~500 instructions, one per named call)
but :mod:`netlens_runtime.seccomp_bpf`'s (~200: a search over runs of call
numbers), checked against libseccomp's decisions by the tests. libseccomp
still resolves its call numbers, and compiles every other profile.

Without libseccomp a confined container is refused (fail closed) with a line
saying what to install, or to choose ``seccomp=unconfined``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import stat
import struct
import zlib

from netlens_runtime import state
from netlens_runtime.errors import BadInput, RuntimeFailure

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROFILE = os.path.join(HERE, "seccomp_default.json")
TTY_PROFILE = os.path.join(HERE, "seccomp_tty.json")
"""Added for ``netlens exec`` (see there): no TIOCSTI or TIOCLINUX."""
DEFAULT = "default"
UNCONFINED = "unconfined"
LIBRARY_ENV = "NETLENS_LIBSECCOMP"
"""Use this libseccomp file instead of the system's (empty: as if not installed)."""

_FORMAT = b"netlens-seccomp 2\n"  # bump when the cache key or file layout changes
_MAGIC = b"NLBPF1\n"
_LIB_DIRS = ("/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/local/lib")
_SONAME = "libseccomp.so.2"
MISSING = (
    "libseccomp is not installed (Debian package libseccomp2): it builds every container's"
    " system call filter; install it, or run without a filter with"
    " --security-opt seccomp=unconfined"
)

_programs: dict[bytes, bytes] = {}  # cache key -> program, for this process
# (state dir, profile, its bytes' identity, caps) -> (program, cache file)
_chosen: dict[tuple[str, str, tuple[int, ...], int], tuple[bytes, str]] = {}
_profiles: dict[str, tuple[tuple[int, ...], bytes]] = {}  # path -> (identity, bytes)
_library: list[tuple[str, bytes]] = []  # [(path, fingerprint)] once found


def parse_security_opt(opt: str) -> str:
    """One ``--security-opt`` (lab ``security_opt``) value -> ``unconfined`` or a profile path
    as given (relative paths are the caller's to resolve)."""
    key, sep, value = opt.partition("=")
    if key != "seccomp" or not sep or not value:
        raise BadInput(
            f"unsupported security option {opt!r}: use seccomp=unconfined or seccomp=FILE"
        )
    return value


def check_privileged(choice: str) -> None:
    """A privileged container has no seccomp filter: a profile besides it is a mistake."""
    if choice not in (DEFAULT, UNCONFINED):
        raise BadInput(
            f"a privileged container runs without a seccomp filter: drop seccomp={choice}"
        )


def parse_security_opts(opts: list[str], privileged: bool) -> str:
    """``--security-opt`` values -> ``default``, ``unconfined`` or a profile's absolute path."""
    choice = DEFAULT
    for opt in opts:
        value = parse_security_opt(opt)
        choice = UNCONFINED if value == UNCONFINED else os.path.abspath(value)
    if privileged:
        check_privileged(choice)
        return UNCONFINED
    return choice


def _identity(path: str) -> tuple[int, ...]:
    """What tells that a profile file changed since we read it (BadInput if unreadable)."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise BadInput(f"seccomp profile {path}: {err.strerror}") from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_profile(source: str) -> bytes:
    """The bytes of the default profile or of a profile file (BadInput: one line)."""
    path = DEFAULT_PROFILE if source == DEFAULT else source
    ident = _identity(path)
    known = _profiles.get(path)
    if known is not None and known[0] == ident:
        return known[1]
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8 << 20)
    except OSError as err:
        raise BadInput(f"seccomp profile {path}: {err.strerror}") from None
    _profiles[path] = (ident, raw)
    return raw


def program(source: str, caps: int) -> bytes | None:
    """The compiled filter for a container with ``caps`` (bit mask); None when unconfined.

    Reads the cache first (memory, then state directory); compiles on a miss.
    """
    chosen = _select(source, caps)
    return chosen[0] if chosen is not None else None


def cache_file(source: str, caps: int) -> str | None:
    """The state directory's file holding this filter (what ``netlens exec`` reloads)."""
    chosen = _select(source, caps)
    return chosen[1] if chosen is not None else None


def _select(source: str, caps: int) -> tuple[bytes, str] | None:
    """(program, cache file) for a profile and capabilities; None when unconfined."""
    if source == UNCONFINED:
        return None
    path = DEFAULT_PROFILE if source == DEFAULT else source
    memo = (state.state_dir(), source, _identity(path), caps)
    chosen = _chosen.get(memo)
    if chosen is None:
        raw = read_profile(source)
        key = _key(raw, caps)
        found = _programs.get(key)
        if found is None:
            found = _load(key)
            if found is None:
                found = compile_profile(raw, source, caps)
                _store(key, found)
            _programs[key] = found
        chosen = _chosen[memo] = (found, _path(key))
    return chosen


def load_cached(path: str) -> bytes | None:
    """A cache file's program if it is ours and intact (its key is not re-derived)."""
    got = _read_trusted(path)
    return got[1] if got is not None else None


# --- the cache key and files --------------------------------------------------------


def _fingerprint() -> tuple[str, bytes]:
    """Where libseccomp is and what identifies its build (path, size, mtime); RuntimeFailure."""
    if _library:
        return _library[0]
    forced = os.environ.get(LIBRARY_ENV)
    if forced is not None:
        candidates = [forced] if forced else []
    else:
        multiarch = f"{platform.machine()}-linux-gnu"
        candidates = [f"{d}/{multiarch}/{_SONAME}" for d in _LIB_DIRS[:2]]
        candidates += [f"{d}/{_SONAME}" for d in _LIB_DIRS]
    for path in candidates:
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found = (real, f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode())
            _library.append(found)
            return found
    if forced is None:  # somewhere else on the loader's path?
        with contextlib.suppress(OSError):
            lib = ctypes.CDLL(_SONAME)
            version = _version(lib)
            found = (_SONAME, f"{_SONAME}\0{version}".encode())
            _library.append(found)
            return found
    raise RuntimeFailure(MISSING)


def _key(raw: bytes, caps: int) -> bytes:
    """Everything a program depends on, verbatim (compared byte for byte on load)."""
    _, lib = _fingerprint()
    head = f"{platform.machine()}\0{os.uname().release}\0{caps:x}\0".encode()
    return b"".join((_FORMAT, head, lib, b"\0", raw))


def cache_dir() -> str:
    return state.sub("seccomp")


def _path(key: bytes) -> str:
    name = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}.bpf"
    return os.path.join(cache_dir(), name)


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read_trusted(path: str) -> tuple[bytes, bytes] | None:
    """(key, program) of a cache file that is ours and well formed, else None."""
    try:
        if not _ours(os.lstat(os.path.dirname(path))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _ours(st) or st.st_size > 16 << 20:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    head = len(_MAGIC) + 4
    if not data.startswith(_MAGIC) or len(data) < head:
        return None
    (klen,) = struct.unpack_from("=I", data, len(_MAGIC))
    key, prog = data[head : head + klen], data[head + klen :]
    if len(key) != klen or not prog or len(prog) % 8 or len(prog) > 4096 * 8:
        return None
    return key, prog


def _load(key: bytes) -> bytes | None:
    got = _read_trusted(_path(key))
    return got[1] if got is not None and got[0] == key else None


def _store(key: bytes, prog: bytes) -> None:
    """Write the cache file atomically; a failure only costs the next run a compile."""
    path = _path(key)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(state.state_dir(), mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(cache_dir(), 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        try:
            os.write(fd, b"".join((_MAGIC, struct.pack("=I", len(key)), key, prog)))
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# --- libseccomp ---------------------------------------------------------------------


class _Cmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


_ATTR_ACT_BADARCH = 2
_ATTR_CTL_NNP = 3
_ATTR_CTL_OPTIMIZE = 8
_NR_ERROR = -1  # __NR_SCMP_ERROR: a name libseccomp does not know


def _version(lib: ctypes.CDLL) -> str:
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _open_library() -> ctypes.CDLL:
    path, _ = _fingerprint()
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        raise RuntimeFailure(MISSING) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_Cmp),
    )
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    return lib


def cap_names(caps: int) -> frozenset[str]:
    """``CAP_*`` names of the bits set in ``caps``."""
    from netlens_runtime.names import CAPS

    return frozenset(f"CAP_{name}" for name, bit in CAPS.items() if caps >> bit & 1)


def compile_profile(raw: bytes, source: str, caps: int) -> bytes:
    """Parse, resolve for ``caps`` and compile: the BPF program's bytes.

    The default profile becomes :mod:`netlens_runtime.seccomp_bpf`'s compact program
    (libseccomp gives the call numbers); any other profile libseccomp's.
    """
    from netlens_runtime import seccomp_profile as sp

    label = "the default seccomp profile" if source == DEFAULT else source
    profile = sp.parse(raw, label)
    kernel = sp.kernel_version(os.uname().release)
    plan = sp.resolve(profile, cap_names(caps), platform.machine(), kernel)
    lib = _open_library()
    if source == DEFAULT:  # what every container loads: the compact program (seccomp_bpf)
        from netlens_runtime import seccomp_bpf

        token = lib.seccomp_arch_resolve_name(platform.machine().encode())
        numbers = {}
        for rule in plan.rules:
            nr = lib.seccomp_syscall_resolve_name_arch(token, rule.name.encode())
            if nr >= 0:
                numbers[rule.name] = nr
        with contextlib.suppress(seccomp_bpf.Unsupported):
            return seccomp_bpf.build(plan, numbers, platform.machine())
    ctx = lib.seccomp_init(plan.default)
    if not ctx:
        raise BadInput(f"{label}: libseccomp refused the default action")
    try:
        # A call through an ABI the profile does not list: the process dies (as Docker's).
        lib.seccomp_attr_set(ctx, _ATTR_ACT_BADARCH, sp.ACTIONS["SCMP_ACT_KILL_PROCESS"])
        lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)  # we set no_new_privs ourselves
        lib.seccomp_attr_set(ctx, _ATTR_CTL_OPTIMIZE, 2)  # binary tree: fewer jumps per call
        for arch in plan.arches[1:]:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            ret = lib.seccomp_arch_add(ctx, token) if token else -22
            if ret not in (0, -17):  # EEXIST: the native one
                raise BadInput(f"{label}: libseccomp cannot filter architecture {arch!r}")
        for rule in plan.rules:
            nr = lib.seccomp_syscall_resolve_name(rule.name.encode())
            if nr == _NR_ERROR:
                continue  # unknown to this libseccomp (newer or older): skipped, as Docker does
            cmps = (_Cmp * max(1, len(rule.args)))(
                *(_Cmp(a.index, a.op, a.a, a.b) for a in rule.args)
            )
            ret = lib.seccomp_rule_add_array(ctx, rule.action, nr, len(rule.args), cmps)
            if ret < 0:
                raise BadInput(
                    f"{label}: libseccomp refused the rule for {rule.name!r}: {os.strerror(-ret)}"
                )
        fd = os.memfd_create("netlens-seccomp", os.MFD_CLOEXEC)
        try:
            ret = lib.seccomp_export_bpf(ctx, fd)
            if ret < 0:
                raise RuntimeFailure(f"seccomp: exporting the filter failed: {os.strerror(-ret)}")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            prog = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if not prog or len(prog) % 8 or len(prog) > 4096 * 8:
        raise BadInput(f"{label}: the compiled filter is too long ({len(prog) // 8} instructions)")
    return prog
