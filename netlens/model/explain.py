"""One line naming what is wrong in a dump document, read off the declarations.

The fast reader (msgspec, in :mod:`netlens.model.serialize`) says *that* a
document does not fit the model; this module says *where* and *what*, in the
words netlens has always used (``snapshot.namespaces[1].interfaces[1].mtu:
expected an integer, got a string``). It walks the parsed JSON along the type
hints of the model's dataclasses, so a field added to types.py is checked here
with no line to add. It runs only after the fast reader failed: speed does not
matter, clarity does.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, NoReturn, Union

from netlens.errors import SnapshotFileError
from netlens.model.types import IfRef

__all__ = ["explain", "fail", "json_type", "parse_ref", "split_optional"]

Path = Any  # str (the root) or (parent Path, key or index)

_WANT: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    float: "a number",
    IfRef: "an interface key like 'netns:123/4'",
}


def _fmt(path: Path) -> str:
    parts: list[str] = []
    while isinstance(path, tuple):
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return str(path) + "".join(reversed(parts))


def fail(path: Path, msg: str) -> NoReturn:
    """Raise the one-line :class:`SnapshotFileError` for ``path``."""
    raise SnapshotFileError(f"{_fmt(path)}: {msg}")


def json_type(v: Any) -> str:
    """How a JSON value is named in messages (``a string``, ``null``...)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type hint, required) of each field of a model dataclass, once per class."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); any other hint -> (it, False)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _bad(path: Path, tp: Any, nullable: bool, v: Any) -> NoReturn:
    origin = typing.get_origin(tp)
    want = "a list" if origin is tuple else "an object" if origin is dict else _WANT[tp]
    want += " or null" if nullable else ""
    if tp is IfRef and isinstance(v, str):
        fail(path, f"expected {want}, got {v!r}")
    fail(path, f"expected {want}, got {json_type(v)}")


def parse_ref(v: Any) -> IfRef | None:
    """An :class:`IfRef` from its key string, or None when ``v`` is not one."""
    if type(v) is str:
        ns, sep, idx = v.rpartition("/")
        if sep and ns:
            try:
                return IfRef(ns, int(idx))
            except ValueError:
                pass
    return None


def _check(v: Any, tp: Any, path: Path) -> None:
    tp, nullable = split_optional(tp)
    if v is None and nullable:
        return
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        _check_object(v, tp, path)
        return
    origin = typing.get_origin(tp)
    if origin is tuple:
        if type(v) is not list:
            _bad(path, tp, nullable, v)
        item = typing.get_args(tp)[0]
        for i, x in enumerate(v):
            _check(x, item, (path, i))
    elif origin is dict:
        if type(v) is not dict:
            _bad(path, tp, nullable, v)
        item = typing.get_args(tp)[1]
        for k, x in v.items():
            _check(x, item, (path, k))
    elif tp is IfRef:
        if parse_ref(v) is None:
            _bad(path, tp, nullable, v)
    elif tp is float:
        if type(v) is not float and type(v) is not int:
            _bad(path, tp, nullable, v)
    elif type(v) is not tp:
        _bad(path, tp, nullable, v)


def _check_object(d: Any, cls: type, path: Path) -> None:
    if type(d) is not dict:
        fail(path, f"expected an object, got {json_type(d)}")
    for name, hint, required in _fields(cls):
        if name not in d:
            if required:
                fail(path, f"missing required key {name!r}")
            continue
        _check(d[name], hint, (path, name))


def explain(doc: Any, cls: type, where: str) -> None:
    """Raise the first problem of ``doc`` read as ``cls``; return if there is none."""
    _check_object(doc, cls, where)
