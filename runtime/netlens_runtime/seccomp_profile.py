"""Read a seccomp profile in Docker's JSON format and decide its rules for one container.

Pure Python, no libseccomp: :func:`parse` checks a whole file and names the
first mistake (``profile.json: syscalls[3].args[0].op: unknown operator
'SCMP_CMP_FOO'``), so a bad ``--security-opt seccomp=FILE`` or lab
``security_opt`` is refused before anything is made; :func:`resolve` applies
one container's capabilities, this machine's architecture and kernel to the
``includes``/``excludes`` conditions and returns the rules that
:mod:`netlens_runtime.seccomp` hands to libseccomp.

The format (Docker's, whose semantics are followed so its profiles load):
``defaultAction`` (+ ``defaultErrnoRet``), ``architectures`` or ``archMap``
(the filter's ABIs: the native one plus, from ``archMap``, the entry for the
native one and its ``subArchitectures``; each ABI gets the same rules, so a
32-bit ``int 0x80`` call meets them too), and ``syscalls``: entries with
``names`` (or ``name``), ``action`` (+ ``errnoRet``), ``args`` (conditions
``{index, value, valueTwo, op}``; for ``SCMP_CMP_MASKED_EQ`` ``value`` is the
mask and ``valueTwo`` the expected value), ``includes`` (applies only when
the container has *all* these ``caps``, runs on one of these ``arches``, on a
kernel of at least ``minKernel``) and ``excludes`` (not when it has *any* of
these ``caps``, runs on one of these ``arches``, kernel >= ``minKernel``).
Conditions on distinct arguments are ANDed; when an argument index repeats,
each condition becomes a rule of its own (ORed), as runc does.

Podman's additions ``defaultErrno`` and ``errno`` (errno names) are read too.
Where this is stricter than Docker: unknown keys are errors (a typo such as
``exclude`` would silently widen a rule). Names libseccomp does not know are
skipped later, as Docker does, so one file serves older and newer kernels.
"""

from __future__ import annotations

import errno as errno_names
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from netlens_runtime.errors import BadInput

MAX_BYTES = 1 << 20
"""A profile file larger than this is refused: it is a mistake, not a profile."""

EPERM = 1

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # the thread (libseccomp's SCMP_ACT_KILL)
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,  # | errno
    "SCMP_ACT_TRACE": 0x7FF00000,  # | message for the tracer
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
"""Docker's action names and libseccomp's values (seccomp.h)."""

OPS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

ARCHES = frozenset(
    {
        "x86", "x86_64", "x32", "arm", "aarch64", "loongarch64", "m68k", "mips", "mips64",
        "mips64n32", "mipsel", "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390",
        "s390x", "parisc", "parisc64", "riscv64", "sh", "sheb",
    }
)  # fmt: skip
"""libseccomp's architecture names: ``SCMP_ARCH_X86_64`` is ``x86_64``."""

_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "386": "x86", "i386": "x86", "i686": "x86"}
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_CAP_RE = re.compile(r"^CAP_[A-Z0-9_]{1,40}$")
_KERNEL_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})$")
_TOP = frozenset(
    {
        "defaultAction",
        "defaultErrnoRet",
        "defaultErrno",
        "architectures",
        "archMap",
        "syscalls",
        "flags",
        "listenerPath",
        "listenerMetadata",
        "comment",
    }
)
_ENTRY = frozenset(
    {"name", "names", "action", "errnoRet", "errno", "args", "includes", "excludes", "comment"}
)
_ARG = frozenset({"index", "value", "valueTwo", "op"})
_COND = frozenset({"caps", "arches", "minKernel"})


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument condition, in libseccomp's terms (datum_a, datum_b)."""

    index: int
    op: int
    a: int
    b: int


@dataclass(frozen=True, slots=True)
class When:
    """An ``includes`` or ``excludes`` block."""

    caps: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()
    min_kernel: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``syscalls[i]`` entry, checked."""

    where: str  # "syscalls[3]", for messages
    names: tuple[str, ...]
    action: int  # libseccomp action value, errno included
    args: tuple[Arg, ...]
    includes: When
    excludes: When


@dataclass(frozen=True, slots=True)
class Profile:
    default: int
    arches: tuple[str, ...]  # from "architectures"
    arch_map: dict[str, tuple[str, ...]]  # from "archMap": arch -> sub-architectures
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One libseccomp rule: a system call, an action and ANDed argument conditions."""

    name: str
    action: int
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one container's filter is made of."""

    default: int
    arches: tuple[str, ...]  # native first
    rules: tuple[Rule, ...]


class _Bad(Exception):
    """A mistake at a place in the document (turned into one BadInput line)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def arch_name(text: str) -> str:
    """``SCMP_ARCH_X86_64``, ``x86_64`` or ``amd64`` -> libseccomp's ``x86_64``."""
    name = text.removeprefix("SCMP_ARCH_").lower()
    return _ARCH_ALIASES.get(name, name)


def kernel_version(release: str) -> tuple[int, int]:
    """``6.1.0-18-amd64`` -> (6, 1); (0, 0) when unreadable."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def parse(raw: bytes, source: str) -> Profile:
    """Check a whole profile; BadInput naming ``source`` and the field at the first mistake."""
    if len(raw) > MAX_BYTES:
        raise BadInput(f"{source}: not a seccomp profile: larger than {MAX_BYTES >> 20} MiB")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadInput(f"{source}: not a seccomp profile: invalid JSON ({err})") from None
    try:
        return _profile(doc)
    except _Bad as err:
        raise BadInput(f"{source}: {err}") from None


def _mapping(value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(where, f"expected an object, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            raise _Bad(where, f"unknown field {key!r} (known: {', '.join(sorted(allowed))})")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(where, f"expected a list, got {_kind(value)}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    out = []
    for i, item in enumerate(_list(value, where)):
        if not isinstance(item, str):
            raise _Bad(f"{where}[{i}]", f"expected a string, got {_kind(item)}")
        out.append(item)
    return out


def _uint(value: Any, where: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise _Bad(where, f"expected a whole number from 0 to {(1 << bits) - 1}, got {value!r}")
    return value


def _arch(text: str, where: str) -> str:
    name = arch_name(text)
    if name not in ARCHES:
        raise _Bad(where, f"unknown architecture {text!r}")
    return name


def _errno(number: Any, name: Any, where: str, errno_key: str) -> Any:
    """``errnoRet`` (a number), else Podman's ``errno`` (a name such as ``ENOSYS``)."""
    if name is None:
        return number
    code = getattr(errno_names, name, None) if isinstance(name, str) else None
    if not isinstance(code, int) or not name.startswith("E"):
        raise _Bad(where, f"{name!r} is not an errno name (e.g. EPERM)")
    if number is not None and number != code:
        raise _Bad(errno_key, f"{number} is not {name} ({code})")
    return code


def _action(name: Any, errno: Any, where: str, errno_key: str) -> int:
    if not isinstance(name, str) or name not in ACTIONS:
        raise _Bad(where, f"unknown action {name!r} (known: {', '.join(sorted(ACTIONS))})")
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value = EPERM if errno is None else _uint(errno, errno_key, 16)
        if name == "SCMP_ACT_ERRNO" and not 0 <= value <= 4095:
            raise _Bad(errno_key, f"{value} is not an errno (0 to 4095)")
        return ACTIONS[name] | value
    if errno is not None:
        raise _Bad(errno_key, f"only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take {errno_key!r}")
    return ACTIONS[name]


def _when(value: Any, where: str) -> When:
    if value is None:
        return When()
    f = _mapping(value, where, _COND)
    caps = _strings(f.get("caps"), f"{where}.caps")
    for i, cap in enumerate(caps):
        if not _CAP_RE.match(cap):
            raise _Bad(f"{where}.caps[{i}]", f"{cap!r} is not a capability name (CAP_SYS_ADMIN)")
    arches = [
        _arch(a, f"{where}.arches[{i}]") for i, a in enumerate(_strings(f.get("arches"), where))
    ]
    kernel = None
    if f.get("minKernel") is not None:
        m = _KERNEL_RE.match(str(f["minKernel"]))
        if not isinstance(f["minKernel"], str) or not m:
            raise _Bad(f"{where}.minKernel", f"{f['minKernel']!r} is not a version like '5.8'")
        kernel = (int(m.group(1)), int(m.group(2)))
    return When(frozenset(caps), frozenset(arches), kernel)


def _args(value: Any, where: str) -> tuple[Arg, ...]:
    out = []
    for i, item in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        f = _mapping(item, at, _ARG)
        for key in ("index", "value", "op"):
            if key not in f:
                raise _Bad(at, f"missing field {key!r}")
        op = f["op"]
        if not isinstance(op, str) or op not in OPS:
            raise _Bad(f"{at}.op", f"unknown operator {op!r} (known: {', '.join(sorted(OPS))})")
        index = _uint(f["index"], f"{at}.index", 8)
        if index > 5:
            raise _Bad(f"{at}.index", f"{index}: system calls have arguments 0 to 5")
        out.append(
            Arg(
                index,
                OPS[op],
                _uint(f["value"], f"{at}.value", 64),
                _uint(f.get("valueTwo", 0), f"{at}.valueTwo", 64),
            )
        )
    return tuple(out)


def _profile(doc: Any) -> Profile:
    top = _mapping(doc, "", _TOP)
    if "defaultAction" not in top:
        raise _Bad("", "missing field 'defaultAction' (e.g. SCMP_ACT_ERRNO)")
    default_errno = _errno(
        top.get("defaultErrnoRet"), top.get("defaultErrno"), "defaultErrno", "defaultErrnoRet"
    )
    default = _action(top["defaultAction"], default_errno, "defaultAction", "defaultErrnoRet")
    if _list(top.get("flags"), "flags"):
        raise _Bad("flags", "seccomp filter flags are not supported")
    if top.get("listenerPath"):
        raise _Bad("listenerPath", "seccomp notification listeners are not supported")
    arches = tuple(
        _arch(a, f"architectures[{i}]")
        for i, a in enumerate(_strings(top.get("architectures"), "architectures"))
    )
    arch_map: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(_list(top.get("archMap"), "archMap")):
        at = f"archMap[{i}]"
        f = _mapping(item, at, frozenset({"architecture", "subArchitectures"}))
        if not isinstance(f.get("architecture"), str):
            raise _Bad(at, "missing field 'architecture'")
        subs = f.get("subArchitectures")
        arch_map[_arch(f["architecture"], f"{at}.architecture")] = tuple(
            _arch(s, f"{at}.subArchitectures[{j}]")
            for j, s in enumerate(_strings(subs, f"{at}.subArchitectures"))
        )
    if arches and arch_map:
        raise _Bad("archMap", "give either 'architectures' or 'archMap', not both")
    entries = []
    for i, item in enumerate(_list(top.get("syscalls"), "syscalls")):
        at = f"syscalls[{i}]"
        f = _mapping(item, at, _ENTRY)
        names = _strings(f.get("names"), f"{at}.names")
        if f.get("name") is not None:
            if not isinstance(f["name"], str):
                raise _Bad(f"{at}.name", f"expected a string, got {_kind(f['name'])}")
            names.append(f["name"])
        if not names:
            raise _Bad(at, "no system call named ('names': [...])")
        for j, name in enumerate(names):
            if not _NAME_RE.match(name):
                raise _Bad(f"{at}.names[{j}]", f"{name!r} is not a system call name")
        if "action" not in f:
            raise _Bad(at, "missing field 'action'")
        code = _errno(f.get("errnoRet"), f.get("errno"), f"{at}.errno", f"{at}.errnoRet")
        action = _action(f["action"], code, f"{at}.action", f"{at}.errnoRet")
        entries.append(
            Entry(
                where=at,
                names=tuple(dict.fromkeys(names)),
                action=action,
                args=_args(f.get("args"), f"{at}.args"),
                includes=_when(f.get("includes"), f"{at}.includes"),
                excludes=_when(f.get("excludes"), f"{at}.excludes"),
            )
        )
    return Profile(default, arches, arch_map, tuple(entries))


def _applies(e: Entry, caps: Collection[str], arch: str, kernel: tuple[int, int]) -> bool:
    inc, exc = e.includes, e.excludes
    if inc.caps and not all(c in caps for c in inc.caps):
        return False
    if inc.arches and arch not in inc.arches:
        return False
    if inc.min_kernel is not None and kernel < inc.min_kernel:
        return False
    if exc.caps and any(c in caps for c in exc.caps):
        return False
    if exc.arches and arch in exc.arches:
        return False
    return not (exc.min_kernel is not None and kernel >= exc.min_kernel)


def resolve(
    profile: Profile, caps: Collection[str], arch: str, kernel: tuple[int, int]
) -> Resolved:
    """The rules for a container with ``caps`` (``CAP_*`` names) on ``arch`` and ``kernel``.

    What Docker's profiles mean under runc and libseccomp, made explicit here:
    entries whose action is the default one are skipped (runc does; they change
    nothing), the first rule without conditions for a system call decides it
    (libseccomp keeps the first and ignores later ones), and then the
    conditional rules for that call are dropped (libseccomp does too).
    """
    native = arch_name(arch)
    if profile.arch_map:
        arches = (native, *profile.arch_map.get(native, ()))
    else:
        arches = (native, *profile.arches)
    decided: set[str] = set()
    rules: list[Rule] = []
    for e in profile.entries:
        if e.action == profile.default or not _applies(e, caps, native, kernel):
            continue
        for name in e.names:
            if not e.args:
                if name not in decided:
                    decided.add(name)
                    rules.append(Rule(name, e.action, ()))
            elif len({a.index for a in e.args}) == len(e.args):
                rules.append(Rule(name, e.action, e.args))
            else:  # an argument named twice: each condition on its own (ORed), as runc does
                rules += [Rule(name, e.action, (a,)) for a in e.args]
    out = tuple(dict.fromkeys(r for r in rules if not r.args or r.name not in decided))
    return Resolved(profile.default, tuple(dict.fromkeys(arches)), out)
