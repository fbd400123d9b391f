"""Seccomp profiles: Docker's JSON format read and checked, rules decided per capability,
compiled by libseccomp and run here through a small classic-BPF interpreter, and the
compiled-program cache (trusted only when ours, keyed byte for byte)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import struct
from pathlib import Path
from typing import Any

import pytest

from netlens_runtime import names, seccomp
from netlens_runtime import seccomp_profile as sp
from netlens_runtime.errors import BadInput, RuntimeFailure

pytestmark = pytest.mark.unit

ALLOW = sp.ACTIONS["SCMP_ACT_ALLOW"]
KILL_PROCESS = sp.ACTIONS["SCMP_ACT_KILL_PROCESS"]
ENOSYS, EPERM = 38, 1
CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
AUDIT_ARCH_I386 = 0x40000003
NR = {  # this machine's numbers of the calls the tests make
    "x86_64": {"read": 0, "clone": 56, "personality": 135, "mount": 165, "unshare": 272,
               "keyctl": 250, "setns": 308, "bpf": 321, "clone3": 435, "chroot": 161},
    "aarch64": {"read": 63, "clone": 220, "personality": 92, "mount": 40, "unshare": 97,
                "keyctl": 219, "setns": 268, "bpf": 280, "clone3": 435, "chroot": 51},
}.get(platform.machine())  # fmt: skip
DEFAULT_CAPS = names.cap_mask([])


def errno(value: int) -> int:
    return sp.ACTIONS["SCMP_ACT_ERRNO"] | value


def _doc(**top: Any) -> bytes:
    doc: dict[str, Any] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    doc.update(top)
    return json.dumps(doc).encode()


def _rules(raw: bytes, caps: set[str] | None = None, arch: str = "x86_64") -> sp.Resolved:
    profile = sp.parse(raw, "p.json")
    return sp.resolve(profile, caps or set(), arch, (6, 1))


def _actions(res: sp.Resolved, name: str) -> list[tuple[int, tuple[sp.Arg, ...]]]:
    return [(r.action, r.args) for r in res.rules if r.name == name]


# --- the default profile, as rules ------------------------------------------------


def _default(caps: int) -> sp.Resolved:
    raw = Path(seccomp.DEFAULT_PROFILE).read_bytes()
    return sp.resolve(sp.parse(raw, "default"), seccomp.cap_names(caps), "x86_64", (6, 1))


def test_default_profile_refuses_the_dangerous_calls_without_capabilities() -> None:
    res = _default(DEFAULT_CAPS)
    assert res.default == errno(ENOSYS)
    assert res.arches == ("x86_64",)  # other ABIs are killed, not filtered
    for name in ("mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key",
                 "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "kexec_load",
                 "init_module", "finit_module", "fsopen", "fsmount", "move_mount", "open_tree",
                 "mount_setattr", "pivot_root", "swapon", "reboot", "io_uring_setup", "syslog",
                 "process_vm_readv", "kcmp", "settimeofday", "clock_settime", "iopl",
                 "quotactl", "acct", "mbind", "set_mempolicy", "uselib", "_sysctl"):  # fmt: skip
        assert _actions(res, name) == [(errno(EPERM), ())], name
    for name in ("read", "write", "execve", "execveat", "socket", "ptrace", "prctl", "chroot",
                 "adjtimex", "mkdir", "rmdir", "unlink", "rename", "setsid", "wait4", "kill",
                 "fork", "vfork", "pipe2", "ioctl", "mknod"):  # fmt: skip
        assert _actions(res, name) == [(ALLOW, ())], name
    # clone3: its flags are out of sight; ENOSYS (the default, so no rule of its own)
    assert _actions(res, "clone3") == []
    clone = _actions(res, "clone")
    assert (ALLOW, (sp.Arg(0, sp.OPS["SCMP_CMP_MASKED_EQ"], 0x7E020000, 0),)) in clone
    user = (sp.Arg(0, sp.OPS["SCMP_CMP_MASKED_EQ"], CLONE_NEWUSER, CLONE_NEWUSER),)
    assert (errno(EPERM), user) in clone
    assert len(clone) == 8  # one ALLOW, seven namespace flags refused


def test_default_profile_relaxes_what_an_added_capability_is_for() -> None:
    admin = _default(names.cap_mask(["SYS_ADMIN"]))
    for name in ("mount", "unshare", "setns", "clone", "clone3", "fsopen", "bpf", "syslog"):
        assert _actions(admin, name) == [(ALLOW, ())], name
    for name in ("keyctl", "kexec_load", "init_module", "reboot", "settimeofday"):
        assert _actions(admin, name) == [(errno(EPERM), ())], name
    for cap, calls in (
        ("SYS_TIME", ("settimeofday", "clock_settime")),
        ("SYS_PTRACE", ("process_vm_readv", "process_vm_writev", "kcmp")),
        ("SYS_MODULE", ("init_module", "finit_module", "delete_module")),
        ("SYS_BOOT", ("reboot",)),
        ("SYSLOG", ("syslog",)),
        ("BPF", ("bpf",)),
        ("PERFMON", ("perf_event_open",)),
        ("DAC_READ_SEARCH", ("open_by_handle_at",)),
    ):
        res = _default(names.cap_mask([cap]))
        for name in calls:
            assert _actions(res, name) == [(ALLOW, ())], (cap, name)
        assert _actions(res, "mount") == [(errno(EPERM), ())], cap
    # SYS_BOOT is reboot, not kexec
    assert _actions(_default(names.cap_mask(["SYS_BOOT"])), "kexec_load") == [(errno(EPERM), ())]


# --- Docker's semantics -------------------------------------------------------------


def test_includes_need_every_cap_and_excludes_any() -> None:
    raw = _doc(
        syscalls=[
            {"names": ["a1"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_NET_ADMIN", "CAP_SYS_TIME"]}},
            {"names": ["b1"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"caps": ["CAP_NET_ADMIN", "CAP_SYS_TIME"]}},
        ]
    )  # fmt: skip
    assert [r.name for r in _rules(raw, {"CAP_NET_ADMIN"}).rules] == []
    assert [r.name for r in _rules(raw, {"CAP_NET_ADMIN", "CAP_SYS_TIME"}).rules] == ["a1"]
    assert [r.name for r in _rules(raw, set()).rules] == ["b1"]


def test_arches_and_min_kernel_conditions() -> None:
    raw = _doc(
        syscalls=[
            {"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["y"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["x86_64"]}},
            {"names": ["z"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
        ]
    )
    assert [r.name for r in _rules(raw, arch="x86_64").rules] == ["x"]
    assert [r.name for r in _rules(raw, arch="aarch64").rules] == ["y"]
    newer = sp.resolve(sp.parse(raw, "p"), set(), "x86_64", (6, 2))
    assert [r.name for r in newer.rules] == ["x", "z"]


def test_arch_map_picks_the_native_entry_and_architectures_add_to_it() -> None:
    amap = [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ]
    assert _rules(_doc(archMap=amap)).arches == ("x86_64", "x86")
    assert _rules(_doc(archMap=amap), arch="aarch64").arches == ("aarch64", "arm")
    assert _rules(_doc(architectures=["SCMP_ARCH_X32"])).arches == ("x86_64", "x32")
    assert _rules(_doc()).arches == ("x86_64",)


def test_repeated_argument_index_becomes_separate_rules_like_runc() -> None:
    eq = "SCMP_CMP_EQ"
    raw = _doc(
        syscalls=[
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": eq}, {"index": 0, "value": 8, "op": eq}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": eq}, {"index": 1, "value": 2, "op": eq}]},
        ]
    )  # fmt: skip
    res = _rules(raw)
    assert [len(a) for _, a in _actions(res, "personality")] == [1, 1]  # ORed
    assert [len(a) for _, a in _actions(res, "socket")] == [2]  # ANDed


def test_default_action_rules_are_dropped_and_errno_defaults_to_eperm() -> None:
    raw = _doc(
        defaultErrnoRet=38,
        syscalls=[
            {"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["b"], "action": "SCMP_ACT_ERRNO"},
            {"name": "c", "action": "SCMP_ACT_ALLOW"},
        ],
    )
    res = _rules(raw)
    assert res.default == errno(38)
    assert [(r.name, r.action) for r in res.rules] == [("b", errno(EPERM)), ("c", ALLOW)]


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        (b"{not json", "invalid JSON"),
        (b"[]", "expected an object"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_NOPE"}]), "syscalls[0].action"),
        (_doc(syscalls=[{"names": ["x"]}]), "syscalls[0]: missing field 'action'"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW", "exclude": {}}]),
         "syscalls[0]: unknown field 'exclude'"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
         "syscalls[0].args[0].index"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]),
         "syscalls[0].args[0].op"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]),
         "syscalls[0].args[0].value"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]),
         "syscalls[0].errnoRet"),
        (_doc(syscalls=[{"names": ["Bad Name"], "action": "SCMP_ACT_ALLOW"}]),
         "syscalls[0].names[0]"),
        (_doc(syscalls=[{"names": [], "action": "SCMP_ACT_ALLOW"}]), "no system call named"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                         "includes": {"caps": ["SYS_ADMIN"]}}]), "includes.caps[0]"),
        (_doc(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                         "includes": {"minKernel": "five"}}]), "includes.minKernel"),
        (json.dumps({"syscalls": []}).encode(), "missing field 'defaultAction'"),
        (_doc(architectures=["SCMP_ARCH_VAX"]), "architectures[0]: unknown architecture"),
        (_doc(architectures=["SCMP_ARCH_X86"],
              archMap=[{"architecture": "SCMP_ARCH_X86_64"}]), "not both"),
        (_doc(flags=["SECCOMP_FILTER_FLAG_LOG"]), "flags"),
        (_doc(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=5000), "defaultErrnoRet"),
        (_doc(syscalls="read"), "syscalls: expected a list"),
        (b" " * (sp.MAX_BYTES + 1), "larger than"),
    ],
)  # fmt: skip
def test_bad_profiles_name_the_file_and_the_field(doc: bytes, where: str) -> None:
    with pytest.raises(BadInput) as exc:
        sp.parse(doc, "/etc/p.json")
    message = str(exc.value)
    assert message.startswith("/etc/p.json: ") and where in message, message
    assert "\n" not in message


def test_first_unconditional_rule_decides_like_libseccomp_under_docker() -> None:
    """Profiles that name a call twice load as under Docker: the first rule without
    conditions decides, later ones and any conditional ones for that call are dropped."""
    both = _doc(
        syscalls=[
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount", "read"], "action": "SCMP_ACT_KILL"},
        ]
    )
    res = _rules(both)
    assert _actions(res, "mount") == [(ALLOW, ())]
    assert _actions(res, "read") == [(sp.ACTIONS["SCMP_ACT_KILL"], ())]
    shadowed = _doc(
        syscalls=[
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        ]
    )  # fmt: skip
    assert _actions(_rules(shadowed), "clone") == [(errno(13), ())]
    # A rule with the default action changes nothing and does not take the call (runc).
    skipped = _doc(
        defaultErrnoRet=38,
        syscalls=[
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"},
        ],
    )
    assert _actions(_rules(skipped), "clone3") == [(ALLOW, ())]


def test_podman_errno_names() -> None:
    raw = _doc(
        defaultErrno="ENOSYS",
        syscalls=[{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errno": "EACCES"}],
    )
    res = _rules(raw)
    assert res.default == errno(ENOSYS) and _actions(res, "x") == [(errno(13), ())]
    for bad, where in (
        (_doc(defaultErrno="ENOPE"), "defaultErrno: 'ENOPE' is not an errno name"),
        (_doc(defaultErrno="EPERM", defaultErrnoRet=38), "defaultErrnoRet: 38 is not EPERM"),
    ):
        with pytest.raises(BadInput, match=where):
            sp.parse(bad, "p.json")


PODMAN = Path("/usr/share/containers/seccomp.json")


@pytest.mark.skipif(not PODMAN.is_file(), reason="Podman's profile is not installed here")
def test_podmans_shipped_profile_loads(state_dir: Path) -> None:
    """A real-world profile in this format (Debian's containers-common) compiles."""
    prog = seccomp.program(str(PODMAN), DEFAULT_CAPS)
    assert prog is not None and len(prog) % 8 == 0


def test_security_opts() -> None:
    assert seccomp.parse_security_opts([], False) == "default"
    assert seccomp.parse_security_opts(["seccomp=unconfined"], False) == "unconfined"
    assert seccomp.parse_security_opts(["seccomp=p.json"], False) == os.path.abspath("p.json")
    assert seccomp.parse_security_opts([], True) == "unconfined"
    assert seccomp.parse_security_opts(["seccomp=unconfined"], True) == "unconfined"
    for bad in (["apparmor=x"], ["seccomp"], ["seccomp="], ["no-new-privileges"]):
        with pytest.raises(BadInput, match="unsupported security option"):
            seccomp.parse_security_opts(bad, False)
    with pytest.raises(BadInput, match="a privileged container runs without a seccomp filter"):
        seccomp.parse_security_opts(["seccomp=/p.json"], True)


# --- compiled by libseccomp, run by an interpreter --------------------------------


def run_bpf(prog: bytes, arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """Classic BPF as the kernel runs a seccomp filter: the action for one call."""
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    a = x = pc = 0
    mem = [0] * 16
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            (a,) = struct.unpack_from("=I", data, k)
        elif code == 0x00:  # ld #k
            a = k
        elif code == 0x60:  # ld M[k]
            a = mem[k]
        elif code == 0x02:  # st M[k]
            mem[k] = a
        elif code == 0x07:  # tax
            x = a
        elif code == 0x87:  # txa
            a = x
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            hit = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if hit else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not known to this interpreter")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(seccomp, "_programs", {})
    monkeypatch.setattr(seccomp, "_chosen", {})
    return tmp_path / "state"


needs_lib = pytest.mark.skipif(
    NR is None or not any(
        os.path.exists(f"{d}/libseccomp.so.2")
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/lib")
    ),
    reason="libseccomp or this machine's syscall numbers are not known here",
)  # fmt: skip


@needs_lib
def test_compiled_default_program_decides_like_the_profile(state_dir: Path) -> None:
    assert NR is not None
    prog = seccomp.program("default", DEFAULT_CAPS)
    assert prog is not None and len(prog) % 8 == 0
    arch = AUDIT_ARCH[platform.machine()]
    run = lambda name, *args: run_bpf(prog, arch, NR[name], args)  # noqa: E731
    assert run("read") == ALLOW
    assert run("chroot") == ALLOW
    for name in ("mount", "unshare", "setns", "keyctl", "bpf"):
        assert run(name, CLONE_NEWUSER) == errno(EPERM), name
    assert run("clone", SIGCHLD) == ALLOW  # fork
    assert run("clone", 0x3D0F00) == ALLOW  # a thread (CLONE_VM|FS|FILES|SIGHAND|THREAD...)
    assert run("clone", SIGCHLD | CLONE_NEWUSER) == errno(EPERM)
    assert run("clone", SIGCHLD | CLONE_NEWNET) == errno(EPERM)
    assert run("clone3") == errno(ENOSYS)  # the C library falls back to clone
    assert run("personality", 0) == ALLOW
    assert run("personality", 0xFFFFFFFF) == ALLOW
    assert run("personality", 0x0400000) == errno(ENOSYS)  # READ_IMPLIES_EXEC: no
    assert run_bpf(prog, arch, 999) == errno(ENOSYS)  # newer than this profile
    # Other ABIs do not get around it: a 32-bit call or an x32 one kills the process.
    assert run_bpf(prog, AUDIT_ARCH_I386, 310, (CLONE_NEWUSER,)) == KILL_PROCESS
    if platform.machine() == "x86_64":
        assert run_bpf(prog, arch, 0x40000000 | 272, (CLONE_NEWUSER,)) == KILL_PROCESS
    admin = seccomp.program("default", names.cap_mask(["SYS_ADMIN"]))
    assert admin is not None
    assert run_bpf(admin, arch, NR["mount"]) == ALLOW
    assert run_bpf(admin, arch, NR["clone"], (SIGCHLD | CLONE_NEWNET,)) == ALLOW
    assert run_bpf(admin, arch, NR["keyctl"]) == errno(EPERM)


@needs_lib
def test_profile_with_a_32bit_abi_filters_it_too(state_dir: Path, tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("i386 numbers are x86_64's compat ABI")
    raw = json.loads(Path(seccomp.DEFAULT_PROFILE).read_bytes())
    raw["archMap"][0]["subArchitectures"] = ["SCMP_ARCH_X86"]
    path = tmp_path / "p32.json"
    path.write_text(json.dumps(raw))
    prog = seccomp.program(str(path), DEFAULT_CAPS)
    assert prog is not None
    assert run_bpf(prog, AUDIT_ARCH_I386, 20) == ALLOW  # getpid
    assert run_bpf(prog, AUDIT_ARCH_I386, 310, (CLONE_NEWUSER,)) == errno(EPERM)  # unshare
    assert run_bpf(prog, AUDIT_ARCH_I386, 120, (CLONE_NEWUSER,)) == errno(EPERM)  # clone


@needs_lib
@pytest.mark.parametrize(
    "cap_add",
    [[], ["ALL"], *[[c] for c in ("SYS_ADMIN", "SYS_PTRACE", "SYS_TIME", "SYS_MODULE", "SYS_BOOT",
                                  "SYSLOG", "BPF", "PERFMON", "DAC_READ_SEARCH", "SYS_NICE",
                                  "SYS_RAWIO", "SYS_PACCT", "SYS_TTY_CONFIG", "NET_ADMIN")]],
)  # fmt: skip
def test_compact_default_program_decides_exactly_like_libseccomps(
    state_dir: Path, cap_add: list[str]
) -> None:
    """The default profile is compiled by seccomp_bpf (a shorter program, loaded by every
    container): for every call number, ABI and the arguments that matter, it must give
    what libseccomp's program for the same rules gives."""
    assert NR is not None
    caps = names.cap_mask(cap_add)
    raw = Path(seccomp.DEFAULT_PROFILE).read_bytes()
    ours = seccomp.compile_profile(raw, "default", caps)
    theirs = seccomp.compile_profile(raw, seccomp.DEFAULT_PROFILE, caps)  # by libseccomp
    assert len(ours) < len(theirs) // 2, (len(ours), len(theirs))
    arch = AUDIT_ARCH[platform.machine()]
    flags = [0, SIGCHLD, 0x3D0F00, SIGCHLD | CLONE_NEWUSER, 1 << 32 | CLONE_NEWUSER, 1 << 32,
             0x20000, 0x20008, 8, 0xFFFFFFFF, 1 << 32 | 0xFFFFFFFF, 0x400000,
             *(bit | SIGCHLD for bit in (0x20000, 0x02000000, 0x04000000, 0x08000000,
                                         0x10000000, 0x20000000, 0x40000000))]  # fmt: skip
    special = {0x3FFFFFFF, 0x40000000, 0x40000001, 0x40000000 | NR["unshare"], 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFE, 0xFFFFFFFF}  # fmt: skip
    checked = 0
    for nr in [*range(0, 1100), *sorted(special)]:
        many = nr in (NR["clone"], NR["personality"])
        for audit in (arch, AUDIT_ARCH_I386, 0) if nr < 600 else (arch,):
            for a0 in flags if many and audit == arch else [0, SIGCHLD | CLONE_NEWUSER]:
                want = run_bpf(theirs, audit, nr, (a0, a0))
                assert run_bpf(ours, audit, nr, (a0, a0)) == want, (hex(nr), hex(audit), hex(a0))
                checked += 1
    assert checked > 3000


# --- the cache ----------------------------------------------------------------------


@needs_lib
def test_cache_is_reused_only_when_ours_and_for_the_same_key(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = seccomp.program("default", DEFAULT_CAPS)
    path = seccomp.cache_file("default", DEFAULT_CAPS)
    assert path is not None and os.path.dirname(path) == str(state_dir / "seccomp")
    assert os.stat(path).st_mode & 0o077 == 0
    compiled: list[int] = []
    real = seccomp.compile_profile

    def counting(raw: bytes, source: str, caps: int) -> bytes:
        compiled.append(caps)
        return real(raw, source, caps)

    monkeypatch.setattr(seccomp, "compile_profile", counting)

    def fresh() -> bytes | None:
        seccomp._programs.clear()
        seccomp._chosen.clear()
        return seccomp.program("default", DEFAULT_CAPS)

    assert fresh() == first and compiled == []  # read back from the state directory
    os.chmod(path, 0o666)  # writable by others: not trusted, compiled again (and rewritten)
    assert fresh() == first and compiled == [DEFAULT_CAPS]
    assert os.stat(path).st_mode & 0o077 == 0
    data = Path(path).read_bytes()  # the same file name, another key: not used
    Path(path).write_bytes(data.replace(b"x86_64" if b"x86_64" in data else b"aarch64", b"X", 1))
    os.chmod(path, 0o600)
    assert fresh() == first and compiled == [DEFAULT_CAPS] * 2
    # other capabilities: another program, another file
    admin = seccomp.program("default", names.cap_mask(["SYS_ADMIN"]))
    assert admin != first and seccomp.cache_file("default", names.cap_mask(["SYS_ADMIN"])) != path


def test_without_libseccomp_a_confined_container_is_refused(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seccomp, "_library", [])
    monkeypatch.setenv(seccomp.LIBRARY_ENV, "")
    with pytest.raises(RuntimeFailure) as exc:
        seccomp.program("default", DEFAULT_CAPS)
    assert "libseccomp2" in str(exc.value) and "seccomp=unconfined" in str(exc.value)
    assert seccomp.program("unconfined", DEFAULT_CAPS) is None


@needs_lib
def test_unreadable_or_bad_profile_file(state_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="No such file"):
        seccomp.program(str(tmp_path / "missing.json"), DEFAULT_CAPS)
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]}')
    with pytest.raises(BadInput, match=r"bad.json: syscalls\[0\]: missing field 'action'"):
        seccomp.program(str(bad), DEFAULT_CAPS)
    assert not (state_dir / "seccomp").exists()


@needs_lib
def test_every_name_in_the_shipped_profiles_is_a_system_call() -> None:
    """A misspelt name would be skipped silently (as Docker skips unknown ones): the call
    would get the default action instead of the one written for it."""
    import ctypes

    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    for path in (seccomp.DEFAULT_PROFILE, seccomp.TTY_PROFILE):
        profile = sp.parse(Path(path).read_bytes(), path)
        unknown = sorted(
            {n for e in profile.entries for n in e.names}
            - {
                n
                for e in profile.entries
                for n in e.names
                if lib.seccomp_syscall_resolve_name(n.encode()) != -1
            }
        )
        assert unknown == [], (path, unknown)


def test_compact_program_overlapping_argument_rules_most_restrictive_first() -> None:
    """Where argument rules of one call overlap, the most restrictive action wins (the
    kernel's order for stacked filters); the default profile's never overlap."""
    from netlens_runtime import seccomp_bpf

    eq = sp.Arg(0, sp.OPS["SCMP_CMP_EQ"], 1, 0)
    low_bit = sp.Arg(0, sp.OPS["SCMP_CMP_MASKED_EQ"], 1, 1)
    rules = (sp.Rule("x", ALLOW, (eq,)), sp.Rule("x", errno(13), (low_bit,)))
    plan = sp.Resolved(errno(ENOSYS), ("x86_64",), rules)
    prog = seccomp_bpf.build(plan, {"x": 7}, "x86_64")
    arch = AUDIT_ARCH["x86_64"]
    assert run_bpf(prog, arch, 7, (1,)) == errno(13)
    assert run_bpf(prog, arch, 7, (3,)) == errno(13)
    assert run_bpf(prog, arch, 7, (2,)) == errno(ENOSYS)
    assert run_bpf(prog, arch, 7, (1 << 32 | 1,)) == errno(13)  # EQ is on all 64 bits
    assert run_bpf(prog, arch, 8, (1,)) == errno(ENOSYS)
    with pytest.raises(seccomp_bpf.Unsupported):
        seccomp_bpf.build(dataclasses.replace(plan, arches=("x86_64", "x86")), {}, "x86_64")
    lt = sp.Arg(0, sp.OPS["SCMP_CMP_LT"], 1, 0)
    with pytest.raises(seccomp_bpf.Unsupported):
        seccomp_bpf.build(sp.Resolved(ALLOW, ("x86_64",), (sp.Rule("x", 0, (lt,)),)), {"x": 1},
                          "x86_64")  # fmt: skip
