"""User key remapping: ``$XDG_CONFIG_HOME/netlens/keymap.toml`` maps binding ids to keys.

    [keymap]
    quit = "ctrl+q"
    pause = "p,space"
    view.vrfs = "v"        # dotted ids may be written bare: TOML nests them

Binding ids are listed by ``?`` (help). Unknown ids are reported, not fatal.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


def keymap_path() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "netlens" / "keymap.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """Return (id -> keys, problems). A missing file is an empty keymap."""
    p = path or keymap_path()
    if not p.is_file():
        return {}, []
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        return {}, [f"{p}: {err}"]
    table = data.get("keymap", data)
    out: dict[str, str] = {}
    problems: list[str] = []
    for k, v in _flat(table):
        if isinstance(v, str) and v.strip():
            out[k] = v.strip()
        else:
            problems.append(f"{p}: keymap.{k} must be a key string like 'ctrl+q'")
    return out, problems


def _flat(table: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """``view.vrfs = "v"`` is a nested table in TOML; binding ids are dotted strings."""
    out: list[tuple[str, object]] = []
    for k, v in table.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out
