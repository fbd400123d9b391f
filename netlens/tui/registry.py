"""The one list of views and main keys: tabs, bindings, help and key bar come from here.

Each view was named three times (a tuple of labels, four bindings, four widgets in
``compose``) and the key bar was fixed text, so a key remapped in ``keymap.toml``
worked but the bar and the tabs still showed the old one. Now a view is one
:class:`ViewSpec`; the screen-wide keys are one ordered list of :class:`KeySpec` whose
``owner`` says which class binds them (the app for what works on every screen, the main
screen for what only makes sense there); and every label a user reads is rendered from
the *live* keymap (:func:`active_keys`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rich.markup import escape
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Tabs

from netlens.tui.context import Context
from netlens.tui.views.base import View
from netlens.tui.views.containers import ContainersView
from netlens.tui.views.density import DensityView
from netlens.tui.views.findings import FindingsView
from netlens.tui.views.topology import TopologyPane
from netlens.tui.views.vrfs import VrfsView
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import NlTable
from netlens.tui.widgets.topology_view import TopologyView


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """A main view: ``id`` (its widget is ``view-<id>``, its binding ``view.<id>``),
    the title its tab shows, the default key and how to build it."""

    id: str
    title: str
    key: str
    make: Callable[[Context, str], View]

    @property
    def binding_id(self) -> str:
        return f"view.{self.id}"


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("topology", "Topology", "1", lambda ctx, wid: TopologyPane(ctx, id=wid)),
    ViewSpec("vrfs", "VRFs", "2", lambda ctx, wid: VrfsView(ctx, id=wid)),
    ViewSpec("containers", "Containers", "3", lambda ctx, wid: ContainersView(ctx, id=wid)),
    ViewSpec("density", "Density", "4", lambda ctx, wid: DensityView(ctx, id=wid)),
    ViewSpec("findings", "Findings", "5", lambda ctx, wid: FindingsView(ctx, id=wid)),
)
VIEW_IDS = tuple(v.id for v in VIEWS)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A screen-wide key. ``owner`` is the class that binds it: ``app`` keys work on
    every screen, ``main`` keys only on the main screen (the filter and the views)."""

    id: str
    key: str
    action: str
    description: str
    owner: Literal["app", "main"]
    show: bool = True


def _view_keys() -> list[KeySpec]:
    return [
        KeySpec(v.binding_id, v.key, f"show_view('{v.id}')", v.title, "main", show=False)
        for v in VIEWS
    ]


KEYS: tuple[KeySpec, ...] = (
    KeySpec("quit", "q", "quit", "Quit", "app"),
    KeySpec("help", "question_mark", "help", "Help", "app"),
    KeySpec("filter", "slash", "filter", "Filter", "main"),
    KeySpec("pause", "space", "pause", "Pause", "app"),
    KeySpec("interval.up", "plus,equals_sign", "interval(1)", "Slower", "app", show=False),
    KeySpec("interval.down", "minus", "interval(-1)", "Faster", "app", show=False),
    KeySpec("units", "b", "units", "Bits/bytes", "app"),
    KeySpec("capture", "w", "capture", "Capture to file", "app", show=False),
    KeySpec("trace", "t", "trace", "Trace from here (p probes)", "app", show=False),
    KeySpec(
        "link.toggle",
        "x",
        "link_toggle",
        "Lab cable down/up (asks before down)",
        "app",
        show=False,
    ),
    *_view_keys(),
    KeySpec("clear", "escape", "clear", "Clear filter", "main", show=False),
)
"""In the order the help screen lists them."""


def _binding(k: KeySpec) -> Binding:
    return Binding(k.key, k.action, k.description, show=k.show, id=k.id)


def bindings(owner: Literal["app", "main"]) -> list[BindingType]:
    """The :class:`Binding` list of one owner class."""
    return [_binding(k) for k in KEYS if k.owner == owner]


def view_bindings(namespace: str = "app.") -> list[BindingType]:
    """The view keys for screens stacked over the main one (a detail, the help): a view
    key there goes back to the main screen and shows that view, as it always did."""
    return [
        Binding(v.key, f"{namespace}show_view('{v.id}')", v.title, show=False, id=v.binding_id)
        for v in VIEWS
    ]


# What the detail pane's widgets bind, said for a user: Textual's own descriptions
# ("Focus Next") do not tell that Tab moves between the tab strip and the table.
_DETAIL_WORDS = {
    "previous_tab": "Previous tab (tab strip focused)",
    "next_tab": "Next tab (tab strip focused)",
    "app.focus_next": "Focus next: tab strip, table",
    "app.focus_previous": "Focus previous",
}


def _detail_pane_keys() -> list[BindingType]:
    """Tab switching and focus movement in a detail pane, read from the classes that
    bind them (Textual's :class:`Tabs` and :class:`Screen`), so the help follows them."""
    out: list[BindingType] = []
    for cls in (Tabs, Screen):
        for b in cls.BINDINGS:
            if isinstance(b, Binding) and b.action in _DETAIL_WORDS:
                out.append(Binding(b.key, b.action, _DETAIL_WORDS[b.action], id=b.id))
    return out


def help_groups(
    detail: Iterable[BindingType], trace: Iterable[BindingType] = ()
) -> dict[str, list[BindingType]]:
    """What the ``?`` screen lists, group by group (global keys in :data:`KEYS` order,
    whichever class binds them); ``detail``: the detail screen's own keys; ``trace``:
    the trace screens' (given by the caller: those screens import this module)."""
    return {
        "Global": [_binding(k) for k in KEYS],
        "Topology": list(TopologyView.BINDINGS),
        "Tables": list(FastTable.BINDINGS),
        "Detail": [*detail, *_detail_pane_keys()],
        "Detail tables": [
            *NlTable.BINDINGS,
            Binding("enter", "select_cursor", "Open the interface (Interfaces tab)"),
        ],
        "Trace (t)": list(trace),
    }


# -- labels from the live keymap -------------------------------------------------------------
_SHORT = {"enter": "Enter"}


def active_keys(app: App[Any], binding_id: str, default: str) -> list[str]:
    """The keys bound to ``binding_id`` now: the user's keymap's, else the default."""
    keymap: Mapping[str, str] = getattr(app, "_keymap", {})  # Textual's, normalised
    return [k.strip() for k in keymap.get(binding_id, default).split(",") if k.strip()]


def key_label(app: App[object], key: str) -> str:
    """How a key is written on screen (``slash`` -> ``/``, ``ctrl+p`` -> ``^p``)."""
    return _SHORT.get(key) or app.get_key_display(Binding(key, ""))


def first_key(app: App[object], binding_id: str, default: str) -> str:
    keys = active_keys(app, binding_id, default)
    return key_label(app, keys[0]) if keys else "?"


def view_key(app: App[object], view: ViewSpec) -> str:
    """The key that shows ``view`` now (its tab is labelled with it)."""
    return first_key(app, view.binding_id, view.key)


def _views_label(app: App[object]) -> str:
    keys = [view_key(app, v) for v in VIEWS]
    if all(k.isdigit() and len(k) == 1 for k in keys) and [int(k) for k in keys] == list(
        range(int(keys[0]), int(keys[0]) + len(keys))
    ):
        return f"{keys[0]}-{keys[-1]}"  # the usual 1-5
    return "/".join(keys)


def _default(binding_id: str) -> str:
    for k in KEYS:
        if k.id == binding_id:
            return k.key
    for group in (TopologyView.BINDINGS, FastTable.BINDINGS):
        for b in group:
            if isinstance(b, Binding) and b.id == binding_id:
                return b.key
    raise KeyError(binding_id)


# (binding ids joined by "/", what the bar calls them); None stands for the views
_BAR: tuple[tuple[tuple[str, ...] | None, str], ...] = (
    (None, "views"),
    (("topo.open",), "open"),
    (("filter",), "filter"),
    (("table.sort",), "sort"),
    (("pause",), "pause"),
    (("interval.up", "interval.down"), "interval"),
    (("units",), "bits/bytes"),
    (("help",), "keys"),
    (("quit",), "quit"),
)


_BAR_DROP = ("palette", "interval", "bits/bytes", "pause", "sort", "views")
"""What the key bar leaves out first when the terminal is narrow (``?`` lists all)."""


def key_bar(app: App[object], width: int | None = None) -> str:
    """The one-line key bar (Rich markup), written with the keys bound now; with a
    ``width``, the least needed entries left out until it fits (at 80 columns it was
    cut after "b", hiding ``?`` and quit)."""
    parts: list[tuple[str, str, str]] = []  # (what, keys, markup)
    for ids, what in _BAR:
        if ids is None:
            keys = _views_label(app)
        else:
            keys = "/".join(first_key(app, i, _default(i)) for i in ids)
        parts.append((what, keys, f"[b]{escape(keys)}[/] {what}"))
    palette = key_label(app, app.COMMAND_PALETTE_BINDING)
    parts.append(("palette", palette, f"[b]{escape(palette)}[/] palette"))
    if width is not None:
        for what in _BAR_DROP:
            if sum(len(k) + len(w) + 3 for w, k, _ in parts) - 2 <= width:
                break
            parts = [p for p in parts if p[0] != what]
    return "  ".join(m for _, _, m in parts)
