"""The dashboard's ``w``: one background capture of the selected node, to a file.

Thin on purpose: the capture itself is :class:`netlens.analysis.capture_session.
BackgroundCapture` (its own thread enters the namespaces, reads the rings and
writes pcapng). Here only what the app needs: which node is selected, where the
file goes, and the one status text with the live packet count.

Files go to ``$NETLENS_CAPTURE_DIR`` or the current directory, named after the
capture's label and the time (``netlens-web_eth0-20261207-120000.pcapng``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from textual.app import App
from textual.screen import Screen

from netlens.analysis.capture_session import BackgroundCapture
from netlens.analysis.capture_targets import node_targets
from netlens.kernel.inert import terminal
from netlens.model.types import Snapshot
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.topology_view import TopologyView


def selected_node(app: App[None], screen: Screen[object], snap: Snapshot) -> str | None:
    """The node key under the cursor: a detail screen's node, the focused table's row
    or the topology's selection (the server box stands for the host namespace)."""
    if isinstance(screen, DetailScreen):
        if screen.iface is not None:
            return screen.iface.ref.key
        return screen.ns.id if screen.ns is not None else None
    focused = app.focused
    key: str | None = None
    if isinstance(focused, FastTable):
        key = focused.cursor_key()
    elif isinstance(focused, TopologyView):
        key = focused.selected
    if key == "server":
        host = snap.host
        key = host.id if host is not None else None
    return key


def capture_path(label: str, now: float | None = None) -> Path:
    """A new file for ``label`` (labels come from names others chose: reduced to a safe
    file-name alphabet, never a path)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._")[:60] or "capture"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    base = Path(os.environ.get("NETLENS_CAPTURE_DIR") or ".")
    path = base / f"netlens-{safe}-{stamp}.pcapng"
    n = 1
    while path.exists():
        n += 1
        path = base / f"netlens-{safe}-{stamp}-{n}.pcapng"
    return path


def start(snap: Snapshot, key: str) -> BackgroundCapture:
    """A running capture of node ``key`` (raises UsageError: gone, nothing to capture)."""
    targets = node_targets(snap, key)
    return BackgroundCapture(targets, capture_path(targets[0].label)).start()


def status(cap: BackgroundCapture) -> str:
    """``● capturing web:eth0 -> FILE: 123 packets (w stops)``, inert text."""
    what = terminal(cap.label)
    if len(what) > 40:
        what = what[:39] + "…"
    return f"● capturing {what} → {terminal(str(cap.path))}: {cap.count} packets (w stops)"


def summary(cap: BackgroundCapture) -> str:
    """The line shown when a capture has ended (stopped, failed or all targets gone)."""
    if cap.error is not None and cap.result is None:
        return f"capture failed: {terminal(cap.error)}"
    res = cap.result
    dropped = sum(o.dropped for o in res.targets) if res is not None else 0
    gone = [o.target.label for o in res.targets if o.gone] if res is not None else []
    text = f"{cap.count} packets saved to {terminal(str(cap.path))}, {dropped} dropped by kernel"
    if gone:
        text += f"; vanished: {terminal(', '.join(gone))}"
    if cap.error is not None:
        text += f"; error: {terminal(cap.error)}"
    return text
