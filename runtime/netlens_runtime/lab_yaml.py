"""A lab file's YAML walked with its source marks, and the checks of single values.

The file is parsed with :func:`yaml.compose`, which keeps the node tree *with
its source marks*, instead of :func:`yaml.safe_load`, which throws them away:
every error can then say exactly where the mistake is. :class:`Val` is a node
plus its place; :meth:`Val.checked` passes a value through one of the runtime's
input rules (:mod:`netlens_runtime.names`, :mod:`netlens_runtime.ipam`) and adds
the place to its message, so ``lab check`` and ``netlens run`` refuse the same
value with the same words. The ``check_*`` functions are the lab-only values
(routes, flow rates, seccomp profiles relative to the lab file).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from netlens_runtime import ipam, names
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_impair import rate_bits
from netlens_runtime.lab_model import Where

T = TypeVar("T")


class Val:
    """A composed YAML node plus where it is: the walker's unit of work."""

    __slots__ = ("file", "node", "path")

    _constructor = yaml.constructor.SafeConstructor()

    def __init__(self, file: str, node: yaml.Node, path: str) -> None:
        self.file = file
        self.node = node
        self.path = path

    @property
    def where(self) -> Where:
        return Where(self.file, self.node.start_mark.line + 1, self.path)

    def err(self, message: str) -> BadInput:
        return self.where.error(message)

    def child(self, node: yaml.Node, key: str | int) -> Val:
        if isinstance(key, int):
            path = f"{self.path}[{key}]"
        else:
            path = f"{self.path}.{key}" if self.path else key
        return Val(self.file, node, path)

    # ---- shapes
    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag.endswith(":null")

    def mapping(self, allowed: frozenset[str] | None = None) -> dict[str, Val]:
        """The mapping's entries by key; duplicate and unknown keys are errors."""
        if self.is_null():
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self.err(f"expected a mapping, got {self._kind()}")
        out: dict[str, Val] = {}
        for knode, vnode in self.node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise Val(self.file, knode, self.path).err("keys must be plain names")
            key = str(knode.value)
            kval = Val(self.file, knode, f"{self.path}.{key}" if self.path else key)
            if key in out:
                raise kval.err(f"duplicate key {key!r}")
            if allowed is not None and key not in allowed:
                raise kval.err(f"unknown field (expected one of: {', '.join(sorted(allowed))})")
            out[key] = self.child(vnode, key)
        return out

    def sequence(self) -> list[Val]:
        if self.is_null():
            return []
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.err(f"expected a list, got {self._kind()}")
        return [self.child(n, i) for i, n in enumerate(self.node.value)]

    def scalar(self) -> Any:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.err(f"expected a single value, got {self._kind()}")
        return self._constructor.construct_object(self.node)

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return repr(self._constructor.construct_object(self.node))

    # ---- typed scalars
    def string(self) -> str:
        v = self.scalar()
        if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
            raise self.err(f"expected a string, got {v!r}")
        return str(v)

    def opt_string(self) -> str | None:
        return None if self.is_null() else self.string()

    def boolean(self) -> bool:
        v = self.scalar()
        if not isinstance(v, bool):
            raise self.err(f"expected true or false, got {v!r}")
        return v

    def integer(self, lo: int, hi: int) -> int:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(f"expected an integer, got {v!r}")
        if not lo <= v <= hi:
            raise self.err(f"{v} is out of range ({lo}..{hi})")
        return v

    def number(self) -> float:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(f"expected a number, got {v!r}")
        return float(v)

    def string_list(self) -> list[str]:
        """A list of strings; a single string is shell-split (handy for commands)."""
        if isinstance(self.node, yaml.ScalarNode) and not self.is_null():
            try:
                return shlex.split(self.string())
            except ValueError as exc:
                raise self.err(f"cannot split {self.string()!r}: {exc}") from None
        return [item.string() for item in self.sequence()]

    def checked(self, rule: Callable[[str], T]) -> T:
        """This value (as a string) through one of the runtime's rules, whose error
        message gets this place: the lab file and ``run`` share every rule."""
        try:
            return rule(self.string())
        except BadInput as err:
            raise self.err(str(err)) from None

    def string_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.mapping().items():
            val = v.scalar()
            if val is None or isinstance(val, (list, dict)):
                raise v.err(f"expected a value, got {val!r}")
            out[k] = ("1" if val else "0") if isinstance(val, bool) else str(val)
        return out


def check_name(v: Val, what: str, name: str | None = None) -> str:
    """A lab, node or network name (names.validate_name); ``name`` when it is a mapping key."""
    if name is None:
        return v.checked(lambda text: names.validate_name(text, what))
    try:
        return names.validate_name(name, what)
    except BadInput as err:
        raise v.err(str(err)) from None


def check_ifname(v: Val) -> str:
    """An interface name (a bridge, a link end, a route's device): names.validate_ifname."""
    return v.checked(names.validate_ifname)


def check_ip(v: Val) -> str:
    """A route gateway: IPv4 or IPv6 (a node's routes may be either)."""
    text = v.string()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise v.err(f"{text!r} is not a valid IP address") from None
    return str(ip)


def node_address(text: str) -> str:
    """A node's address without prefix: the rule of ``netlens run --ip``."""
    return ipam.parse_address(text)


def check_mtu(v: Val) -> int:
    try:
        return names.validate_mtu(v.scalar())
    except BadInput as err:
        raise v.err(str(err)) from None


def check_iface_addr(v: Val) -> str:
    """A point-to-point link's address with prefix, e.g. ``10.0.0.1/30`` (as connect takes)."""
    return str(v.checked(ipam.parse_iface_address))


def check_route_dest(v: Val) -> str:
    text = v.string()
    if text == "default":
        return text
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise v.err(f"{text!r} is not a valid destination (a CIDR or 'default': {exc})") from None


def check_binds(v: Val) -> tuple[str, ...]:
    """``binds:`` (containerlab's name): ``HOST:CONTAINER[:ro]`` strings, as ``netlens run -v``."""
    out = []
    for item in v.sequence():
        item.checked(names.check_volume)
        out.append(item.string())
    return tuple(out)


def check_rate(v: Val) -> tuple[int, int]:
    """``'2-20mbit'`` or ``'5mbit'`` -> (min, max) bits per second."""
    text = v.string()
    lo_text, sep, hi_text = text.partition("-")
    try:
        if sep:
            suffix = hi_text.strip().lstrip("0123456789.")  # '2-20mbit': 2 is in mbit too
            lo = rate_bits(lo_text + suffix if lo_text.strip().isdigit() else lo_text)
            hi = rate_bits(hi_text)
        else:
            lo = hi = rate_bits(text)
    except ValueError:
        raise v.err(f"{text!r} is not a rate (e.g. 10mbit or 2-20mbit)") from None
    if lo <= 0 or hi < lo:
        raise v.err(f"{text!r}: rates must be positive and low-high")
    if hi > 1_000_000_000:
        raise v.err(f"{text!r}: at most 1gbit per flow")
    return lo, hi


_PROFILES_OK: set[tuple[str, int, int, int]] = set()
"""Profile files (path and identity) already read and found good."""


def confinement(f: dict[str, Val], out: dict[str, Any], base: str) -> None:
    """``privileged: true`` and ``security_opt: [seccomp=unconfined|FILE]`` of a node.

    A profile FILE is relative to the lab file's directory and is read and
    checked here (Docker's JSON format), so a bad one stops ``lab up`` and
    ``lab check`` before anything is made.
    """
    if "privileged" in f:
        out["privileged"] = f["privileged"].boolean()
    if "security_opt" not in f:
        return
    from netlens_runtime import seccomp_profile

    opts = []
    from netlens_runtime import seccomp

    for v in f["security_opt"].sequence():
        value = v.checked(seccomp.parse_security_opt)
        if value != seccomp.UNCONFINED:
            value = os.path.join(base, value)
            try:
                st = os.stat(value)
                seen = (value, st.st_ino, st.st_size, st.st_mtime_ns)
                if seen not in _PROFILES_OK:  # a group of a thousand nodes: read once
                    with open(value, "rb") as fh:
                        seccomp_profile.parse(fh.read(seccomp_profile.MAX_BYTES + 1), value)
                    _PROFILES_OK.add(seen)
            except OSError as exc:
                raise v.err(f"seccomp profile {value}: {exc.strerror}") from None
            except BadInput as exc:
                raise v.err(str(exc)) from None
            if out.get("privileged"):
                v.checked(lambda _text, value=value: seccomp.check_privileged(value))  # type: ignore[misc]
        opts.append(f"seccomp={value}")
    out["security_opt"] = tuple(opts)
