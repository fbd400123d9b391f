"""Themes by role, loaded from TOML files and validated.

A theme file has a ``[theme]`` table (Textual's base palette: name, dark, primary, ...)
and a ``[roles]`` table naming how network objects look (veth, bridge, uplink, vrf,
rate-idle ... rate-high). Every role becomes the CSS variable ``$nl-<role>``, so the one
app stylesheet and the topology renderer colour things by what they are, never by a
colour name. Bad files are reported, never fatal: the caller notifies and falls back.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

ROLES = (
    "server",
    "uplink",
    "bridge",
    "veth",
    "vrf",
    "vxlan",
    "p2p",
    "container",
    "address",
    "muted",
    "vanished",
    "banner",
    "selected",
    "rate-idle",
    "rate-low",
    "rate-mid",
    "rate-high",
    "impaired",
    "finding-error",
    "finding-warning",
    "finding-info",
)
BASE_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
DEFAULT_THEME = "netlens-dark"

# Used when a file lacks a role, and as the fallback theme when no file can be read.
DEFAULT_ROLES: dict[str, str] = {
    "server": "#e6e6e6",
    "uplink": "#ffb454",
    "bridge": "#4aa3ff",
    "veth": "#7f8ea3",
    "vrf": "#8a7dff",
    "vxlan": "#d78700",
    "p2p": "#5fd7d7",
    "container": "#dfe3ea",
    "address": "#9ccc65",
    "muted": "#6b7585",
    "vanished": "#4a5060",
    "banner": "#ffcc66",
    "selected": "#2e4a6e",
    "rate-idle": "#4a5566",
    "rate-low": "#5fd787",
    "rate-mid": "#ffcc66",
    "rate-high": "#ff5f5f",
    "impaired": "#ff87d7",
    "finding-error": "#ff5f5f",
    "finding-warning": "#ffaf00",
    "finding-info": "#5fafff",
}


class ThemeError(Exception):
    """A theme file that cannot be used; the message names the file and the problem."""


@dataclass
class ThemeSet:
    themes: list[Theme] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def role_variables(roles: dict[str, str]) -> dict[str, str]:
    return {f"nl-{k}": v for k, v in roles.items()}


def fallback_theme() -> Theme:
    """A theme that needs no file, so a broken install still has colours."""
    return Theme(
        name=DEFAULT_THEME,
        primary="#4aa3ff",
        secondary="#8a7dff",
        accent="#ffb454",
        foreground="#dfe3ea",
        background="#10141a",
        surface="#171c24",
        panel="#212836",
        dark=True,
        variables=role_variables(DEFAULT_ROLES),
    )


def _colour(path: Path, where: str, value: object) -> str:
    if not isinstance(value, str):
        raise ThemeError(f"{path}: {where} must be a colour string, got {value!r}")
    try:
        Color.parse(value)
    except ColorParseError as err:
        raise ThemeError(f"{path}: {where} = {value!r} is not a colour") from err
    return value


def parse_theme(path: Path) -> Theme:
    """Read and validate one theme file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ThemeError(f"{path}: cannot read ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ThemeError(f"{path}: not valid TOML ({err})") from err
    unknown = set(data) - {"theme", "roles"}
    if unknown:
        raise ThemeError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}")
    base = data.get("theme")
    if not isinstance(base, dict):
        raise ThemeError(f"{path}: missing [theme] table")
    name = base.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ThemeError(f"{path}: theme name must be a non-empty string")
    dark = base.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeError(f"{path}: dark must be true or false")
    bad = set(base) - {"name", "dark", *BASE_KEYS}
    if bad:
        raise ThemeError(f"{path}: unknown [theme] key(s) {', '.join(sorted(bad))}")
    if "primary" not in base:
        raise ThemeError(f"{path}: [theme] needs at least 'primary'")
    colours = {k: _colour(path, f"theme.{k}", base[k]) for k in BASE_KEYS if k in base}
    roles_in = data.get("roles", {})
    if not isinstance(roles_in, dict):
        raise ThemeError(f"{path}: [roles] must be a table")
    bad = set(roles_in) - set(ROLES)
    if bad:
        raise ThemeError(f"{path}: unknown role(s) {', '.join(sorted(bad))}")
    roles = dict(DEFAULT_ROLES)
    roles.update({k: _colour(path, f"roles.{k}", v) for k, v in roles_in.items()})
    return Theme(
        name=name.strip(),
        dark=dark,
        variables=role_variables(roles),
        primary=colours["primary"],
        secondary=colours.get("secondary"),
        accent=colours.get("accent"),
        warning=colours.get("warning"),
        error=colours.get("error"),
        success=colours.get("success"),
        foreground=colours.get("foreground"),
        background=colours.get("background"),
        surface=colours.get("surface"),
        panel=colours.get("panel"),
        boost=colours.get("boost"),
    )


def bundled_theme_dir(package: Path | None = None) -> Path:
    """Where the bundled themes are: ``netlens/themes/`` in an installed package (the
    build copies the top-level ``themes/`` there, see setup.py), else the checkout's
    ``themes/`` itself (a dev or editable tree, next to its pyproject.toml).
    ``package``: the netlens package directory (default: this one)."""
    package = package or Path(__file__).resolve().parents[1]
    installed = package / "themes"
    if installed.is_dir() or not (package.parent / "pyproject.toml").is_file():
        return installed
    return package.parent / "themes"


def theme_dirs() -> list[Path]:
    """Bundled themes first, then the user's ($XDG_CONFIG_HOME/netlens/themes) override."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [bundled_theme_dir(), Path(xdg) / "netlens" / "themes"]


def load_themes(dirs: list[Path] | None = None) -> ThemeSet:
    """Every valid theme in ``dirs``; problems are collected, not raised."""
    out = ThemeSet(themes=[fallback_theme()])
    for d in dirs if dirs is not None else theme_dirs():
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                out.themes.append(parse_theme(path))
            except ThemeError as err:
                out.errors.append(str(err))
    return out
