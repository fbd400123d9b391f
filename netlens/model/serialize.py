"""Snapshot <-> JSON, driven by the declarations in :mod:`netlens.model.types`.

The dataclasses in types.py are the only description of the dump's shape:
msgspec writes and reads them from their fields and type hints (compiled once
per class, in C), :mod:`netlens.model.explain` walks the same hints to word a
reading error, and :mod:`netlens.model.schemagen` derives the JSON Schema from
them. A new field needs its declaration (and its schema description) and
nothing else. Measured on a 1000-namespace snapshot, msgspec writes and reads
several times faster than the hand-written writers and reader this replaces
(figures in SCHEMA.md).

The JSON shape, unchanged since those writers (consumers and the golden files
rely on it byte for byte):

- every dataclass field is written, ``None`` as ``null``, in declaration order,
  so consumers (jq, the schema) can rely on every key being present;
- an :class:`IfRef` is written as its ``key`` string (``"netns:123/4"``), the
  same id the graph uses;
- mappings (labels, sysctls) are written with sorted keys, so two dumps of the
  same host diff line by line;
- the text is exactly ``json.dumps(doc, separators=(",", ":"))``: ASCII only
  (anything else as ``\\uXXXX``), floats as Python's ``repr``. msgspec writes
  UTF-8 and short exponents (``1e16``), so the rare snapshot that has either
  (a non-ASCII name, a lone surrogate from a non-UTF-8 name, a float of
  exponent size, NaN) is written through ``json.dumps`` instead: same text,
  slower, and NaN or infinity refused as there.

Reading is strict about types (a dump is data from outside) and tolerant about
absent keys that have a default (a dump from an older minor version lacks the
fields added since). Any problem becomes one
:class:`~netlens.errors.SnapshotFileError` line naming the JSON path, never a
traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import os
import typing
from typing import Any

import msgspec

from netlens.errors import SnapshotFileError
from netlens.model.explain import explain, fail, json_type, parse_ref, split_optional
from netlens.model.types import SCHEMA_VERSION, IfRef, Snapshot

__all__ = [
    "dumps",
    "load_file",
    "loads",
    "schema_path",
    "snapshot_from_dict",
    "snapshot_to_dict",
]


def _enc_hook(obj: Any) -> Any:
    if type(obj) is IfRef:
        return f"{obj.netns}/{obj.ifindex}"
    raise NotImplementedError(f"cannot write {type(obj).__name__} to a dump")


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is IfRef:
        ref = parse_ref(obj)
        if ref is None:
            raise msgspec.ValidationError(
                f"expected an interface key like 'netns:123/4', got {obj!r}"
            )
        return ref
    raise NotImplementedError(f"cannot read {tp.__name__} from a dump")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, order="deterministic")

# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------


@functools.cache
def _float_plan(cls: type) -> tuple[tuple[str, int, type | None], ...]:
    """Where floats hide under ``cls``: (field, 0 float / 1 object / 2 tuple of
    objects, nested class), from the type hints; only branches that hold a float."""
    plan: list[tuple[str, int, type | None]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        inner = split_optional(tp)[0]
        if inner is float:
            plan.append((f.name, 0, None))
        elif dataclasses.is_dataclass(inner) and isinstance(inner, type):
            if _float_plan(inner):
                plan.append((f.name, 1, inner))
        elif typing.get_origin(inner) is tuple:
            item = typing.get_args(inner)[0]
            if dataclasses.is_dataclass(item) and isinstance(item, type) and _float_plan(item):
                plan.append((f.name, 2, item))
    return tuple(plan)


def _floats_are_plain(obj: Any, cls: type) -> bool:
    """True when msgspec writes every float under ``obj`` as ``json.dumps`` would:
    finite and without an exponent (1e-4 <= |v| < 1e16, or zero)."""
    for name, how, sub in _float_plan(cls):
        v = getattr(obj, name)
        if v is None:
            continue
        if how == 0:
            if v and not 1e-4 <= abs(v) < 1e16:  # NaN fails the comparison too
                return False
        elif how == 1:
            assert sub is not None
            if not _floats_are_plain(v, sub):
                return False
        else:
            assert sub is not None
            for x in v:
                if not _floats_are_plain(x, sub):
                    return False
    return True


def _encode(s: Snapshot) -> bytes | None:
    """The compact UTF-8 text by msgspec; None when its floats would be written
    otherwise than by json.dumps or it holds a lone surrogate (not UTF-8)."""
    if not _floats_are_plain(s, Snapshot):
        return None
    encode = _ENCODER.encode
    try:
        parts = [b'"%s":%s' % (k.encode(), encode(getattr(s, k))) for k in Snapshot.JSON_ORDER]
    except UnicodeEncodeError:  # a lone surrogate: json.dumps escapes it
        return None
    return b"{" + b",".join(parts) + b"}"


def _compact(s: Snapshot) -> str | None:
    """The compact text by msgspec, or None when it would differ from json.dumps."""
    data = _encode(s)
    if data is None or not data.isascii() or b"\x7f" in data:  # json.dumps escapes DEL too
        return None
    return data.decode("ascii")


def _lists(o: Any) -> Any:
    t = type(o)
    if t is dict:
        return {k: _lists(v) for k, v in o.items()}
    if t is tuple or t is list:
        return [_lists(x) for x in o]
    return o


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    """The dump document (schema.json) of a snapshot: plain dicts, lists and scalars.

    Top-level keys in :attr:`Snapshot.JSON_ORDER`: ``schema_version`` first, so a
    reader (human or program) sees it before anything else.
    """
    data = _encode(s)
    if data is not None:  # parsing msgspec's own text back is the fast way to plain data
        doc: dict[str, Any] = msgspec.json.decode(data)
        return doc
    doc = msgspec.to_builtins(s, enc_hook=_enc_hook, order="deterministic")
    return {k: _lists(doc[k]) for k in Snapshot.JSON_ORDER}


_TOP_KEYS = frozenset(f.name for f in dataclasses.fields(Snapshot))


def dumps(s: Snapshot, pretty: bool = False, extra: dict[str, Any] | None = None) -> str:
    """Serialize a snapshot to JSON text (no trailing newline).

    ``extra`` adds top-level keys after the snapshot's own (``rates`` from
    ``--sample``). ``pretty`` indents by two spaces. NaN and infinity are
    refused (ValueError): they are not JSON, and a dump other tools cannot parse
    is worse than an error.
    """
    if not pretty:
        text = _compact(s)
        if text is not None:
            if not extra:
                return text
            if not _TOP_KEYS.intersection(extra):
                tail = json.dumps(extra, separators=(",", ":"), allow_nan=False)
                return text[:-1] + "," + tail[1:]
    doc = snapshot_to_dict(s)
    if extra:
        doc.update(extra)
    if pretty:
        return json.dumps(doc, indent=2, allow_nan=False)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------


def _top_class() -> type:
    """Snapshot's fields with ``schema_version`` required: what a file must say."""
    hints = typing.get_type_hints(Snapshot)
    specs: list[Any] = []
    for f in dataclasses.fields(Snapshot):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required or f.name == "schema_version":
            specs.insert(0, (f.name, hints[f.name]))
        else:
            default = (
                dataclasses.field(default_factory=f.default_factory)
                if f.default is dataclasses.MISSING
                else dataclasses.field(default=f.default)
            )
            specs.append((f.name, hints[f.name], default))
    return dataclasses.make_dataclass("SnapshotFile", specs, slots=True)


_TOP = _top_class()
_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_TOP, dec_hook=_dec_hook)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _check_version(version: Any, where: str) -> None:
    if not isinstance(version, str) or not version:
        fail(where, "not a netlens dump (no 'schema_version'); make one with 'netlens dump --json'")
    if _major(version) != _major(SCHEMA_VERSION):
        fail(
            where,
            f"schema version {version} is not readable by this netlens "
            f"(reads {_major(SCHEMA_VERSION)}.x); use the netlens that wrote it",
        )


def _snapshot(top: Any) -> Snapshot:
    return Snapshot(**{name: getattr(top, name) for name in _TOP_KEYS})


def snapshot_from_dict(d: Any, where: str = "snapshot") -> Snapshot:
    """Rebuild a :class:`Snapshot` from a dump document.

    Accepts any version with this netlens's schema *major* (a newer minor only
    adds optional keys, which are ignored). ``where`` prefixes error messages,
    usually the file name. Raises :class:`SnapshotFileError` with one line.
    """
    if type(d) is not dict:
        fail(where, f"expected an object, got {json_type(d)}")
    _check_version(d.get("schema_version"), where)
    try:
        top: Any = msgspec.convert(d, _TOP, dec_hook=_dec_hook)
    except msgspec.ValidationError as err:
        explain(d, Snapshot, where)
        raise SnapshotFileError(f"{where}: {err}") from None
    return _snapshot(top)


def loads(text: str | bytes, where: str = "snapshot") -> Snapshot:
    """Parse dump JSON text into a :class:`Snapshot` (errors: one line)."""
    # Reading allocates every object of the snapshot and frees nothing: the cyclic
    # collector would only rescan them, many times over on a large host.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    top: Any
    try:
        top = _DECODER.decode(text)
    except msgspec.ValidationError:
        top = None  # say what is wrong from the parsed document, below
    except msgspec.DecodeError:
        # also a lone surrogate escape (a non-UTF-8 name that json.dumps wrote as
        # "\udcff"), which msgspec refuses and json accepts: json decides
        top = None
    finally:
        if gc_was_enabled:
            gc.enable()
    if top is None:
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            raise SnapshotFileError(f"{where}: not valid JSON ({err})") from None
        return snapshot_from_dict(doc, where)
    _check_version(top.schema_version, where)
    return _snapshot(top)


def load_file(path: str | os.PathLike[str]) -> Snapshot:
    """Read a file written by ``netlens dump --json`` (what ``netlens view FILE`` uses)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise SnapshotFileError(f"cannot read {name}: {err.strerror or err}") from None
    return loads(data, name)


def schema_path() -> str:
    """Path of the JSON Schema shipped with the package (``schema.json``)."""
    return os.path.join(os.path.dirname(__file__), "schema.json")
