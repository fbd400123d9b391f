"""Hostile names made in the kernel reach no terminal raw and break no export.

The test builds what an unprivileged user could build in their own namespace: a
namespace (``nt<tag>ih``, removed pass or fail) holding a bridge named
``ESC[31m[red]br`` (the kernel refuses '/', ':' and whitespace in interface names,
not ESC or brackets), a veth pair whose ends are named with SGR and OSC 8 sequences
and carry an alias with a newline, OSC 52 and Rich markup, a MAC whose ``:ab:`` is
an emoji code, and a process whose argv holds OSC 52 and ``mininet:0[/]`` (netlens
names it as a Mininet host ``0[/]``). Then, as root would:

- ``netlens dump --json`` is valid JSON and keeps every exact name (a byte that is
  not UTF-8 reads as U+FFFD);
- ``--format dot|mermaid|graphml`` print no control character (GraphML parses as XML);
- ``netlens stats`` prints no raw ESC or BEL;
- the dashboard on that dump opens the hostile nodes' details (no MarkupError) and
  paints the names escaped;
- ``netlens ps`` prints a container whose command holds OSC 52 inert.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import os
import shutil
import subprocess
import sys
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from conftest import RUN_TAG, Lab

from netlens.kernel.inert import terminal

pytestmark = pytest.mark.integration
ENV = {**os.environ, "NETLENS_NO_LOG": "1"}

BRIDGE = "\x1b[31m[red]br"
VETH = "v\x1b[1m[b]"
PEER = "\x1b]8;;x\x07p"
ALIAS = "l1\nl2\x1b]52;c;aGk=\x07[/]:ab:"
MAC = "9e:ab:27:7f:6f:86"
OSC52 = "\x1b]52;c;aGk=\x07"
MININET = "mininet:0[/]"
RAW = os.fsdecode(b"\xff\x1b[7mraw")  # a name that is not UTF-8 (the kernel takes bytes)
RAW_PEER = "raw\x9b2J"  # C1 CSI


def unsafe(data: str) -> set[str]:
    """Control and format characters, but the newlines that end lines."""
    return {c for c in data if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Cs")}


def ip(*args: str) -> None:
    """iproute2 with an argv list: these names must never pass through a shell."""
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert res.returncode == 0, f"ip {args!r}: {res.stderr}"


def netlens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "netlens", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=120,
    )
    assert res.returncode == 0, f"netlens {' '.join(args)}: {res.stderr}"
    return res


class Hostile:
    """The namespace, its links and the process, made by ``lab`` (which removes them)."""

    def __init__(self, lab: Lab) -> None:
        self.ns = lab.add_netns("ih")
        ip("-n", self.ns, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.ns, "link", "add", VETH, "type", "veth", "peer", "name", PEER)
        ip("-n", self.ns, "link", "set", VETH, "master", BRIDGE, "address", MAC)
        ip("-n", self.ns, "link", "set", "dev", VETH, "alias", ALIAS)
        ip("-n", self.ns, "link", "add", RAW, "type", "veth", "peer", "name", RAW_PEER)
        for dev in (BRIDGE, VETH, PEER, RAW, RAW_PEER):
            ip("-n", self.ns, "link", "set", dev, "up")
        code = "import time; time.sleep(600)"
        argv = ["ip", "netns", "exec", self.ns, sys.executable, "-c", code, OSC52, MININET]
        self.proc = lab.spawn(argv)
        want = os.stat(f"/run/netns/{self.ns}").st_ino
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ip netns exec has entered the namespace
            try:
                if os.stat(f"/proc/{self.proc.pid}/ns/net").st_ino == want:
                    cmd = Path(f"/proc/{self.proc.pid}/cmdline").read_bytes()
                    if MININET.encode() in cmd:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("the hostile process never ran in its namespace")


@pytest.fixture
def hostile(lab: Lab) -> Iterator[Hostile]:
    yield Hostile(lab)


def test_hostile_names_stay_inert_in_dump_exports_stats_and_dashboard(
    hostile: Hostile, tmp_path: Path
) -> None:
    # -- dump --json: valid, ASCII only, the exact names -------------------------------
    text = netlens("dump", "--json", "--netns", hostile.ns).stdout
    assert text.isascii() and not unsafe(text)
    doc = json.loads(text)
    (ns,) = doc["namespaces"]
    by_name = {i["name"]: i for i in ns["interfaces"]}
    assert {BRIDGE, VETH, PEER, RAW_PEER, "\ufffd\x1b[7mraw"} <= set(by_name)  # 0xff: U+FFFD
    assert by_name[VETH]["alias"] == ALIAS and by_name[VETH]["mac"] == MAC
    (cont,) = [c for c in doc["containers"] if c["netns"] == ns["id"]]
    assert cont["name"] == "0[/]" and OSC52 in cont["command"]
    dump = tmp_path / "hostile.json"
    dump.write_text(text)

    # -- drawings: no control character; GraphML is XML; Graphviz reads the DOT -------
    for fmt in ("dot", "mermaid", "graphml"):
        out = netlens("dump", "--format", fmt, "--netns", hostile.ns).stdout
        assert not unsafe(out), (fmt, unsafe(out))
        assert terminal(BRIDGE) in out.replace("\\\\", "\\"), fmt
    graphml = netlens("dump", "--format", "graphml", "--netns", hostile.ns).stdout
    ET.fromstring(graphml.encode())
    g = nx.read_graphml(io.BytesIO(graphml.encode()), force_multigraph=True)
    assert terminal(BRIDGE) in {d.get("label") for _, d in g.nodes(data=True)}
    if shutil.which("dot"):
        dot = netlens("dump", "--format", "dot", "--netns", hostile.ns).stdout
        res = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr

    # -- stats: the bridge of every namespace is listed, escaped -----------------------
    raw = subprocess.run(
        [sys.executable, "-m", "netlens", "stats", "--count", "1", "--interval", "0.3"],
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert raw.returncode == 0, raw.stderr
    assert b"\x1b" not in raw.stdout and b"\x07" not in raw.stdout
    assert f"{hostile.ns}:{terminal(BRIDGE)}".encode() in raw.stdout

    # -- the dashboard on this dump: open the hostile nodes ----------------------------
    shown = asyncio.run(_dashboard(dump, ns["id"]))
    assert terminal(BRIDGE) in shown and terminal(ALIAS) in shown and MAC in shown
    assert "0[/]" in shown and terminal(OSC52) in shown


async def _dashboard(dump: Path, ns_id: str) -> str:
    """Open the VRF, the bridge and the veth of the hostile namespace; every tab
    painted must hold no control character and no emoji. Returns all text shown."""
    from textual.widgets import TabbedContent, TabPane

    from netlens.model.serialize import load_file
    from netlens.tui.app import NetlensApp
    from netlens.tui.screens.detail import DetailScreen
    from netlens.tui.sources import FileSource
    from netlens.tui.views.base import View

    snap = load_file(dump)
    (ns,) = snap.namespaces
    nodes = [(ns_id, "vrf")]
    nodes += [(i.ref.key, "bridge" if i.name == BRIDGE else "vrf") for i in ns.interfaces]
    app = NetlensApp(FileSource(dump))
    seen: list[str] = []

    def paint(where: str) -> None:
        svg = app.export_screenshot()
        assert not unsafe(svg), (where, unsafe(svg))
        assert "\U0001f18e" not in svg, where  # ":ab:" as an emoji
        seen.append(html.unescape(svg).replace("\xa0", " "))

    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(200):
            if app.ctx.index is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        for key in "1234":
            await pilot.press(key)
            await pilot.pause()
            paint(f"view {key}")
        for node, kind in nodes:
            app.post_message(View.Open(node, kind))
            for _ in range(50):
                await pilot.pause(0.02)
                if isinstance(app.screen, DetailScreen):
                    break
            screen: Any = app.screen
            assert isinstance(screen, DetailScreen), node
            tabs = screen.query_one(TabbedContent)
            for pane in screen.query(TabPane):
                tabs.active = pane.id or ""
                await pilot.pause()
                paint(f"{node} {pane.id}")
            await pilot.press("escape")
            await pilot.pause()
        assert app.is_running
    return "\n".join(seen)


def test_ps_prints_a_hostile_command_inert(labstate: Path) -> None:
    """A container whose argv holds OSC 52 and a newline; ``ps`` shows it escaped."""
    env = {**ENV, "NETLENS_STATE_DIR": str(labstate)}
    name = f"ih{RUN_TAG}osc"
    netlens(
        "run", "-d", "--network", "none", "--name", name, "--",
        "/bin/sh", "-c", "exec sleep 600", f"{OSC52}\nx[/]:ab:",
        env=env,
    )  # fmt: skip
    raw = subprocess.run(
        [sys.executable, "-m", "netlens", "ps"], capture_output=True, env=env, timeout=60
    )
    assert raw.returncode == 0, raw.stderr
    out = raw.stdout.decode()
    assert not unsafe(out), unsafe(out)
    line = next(ln for ln in out.splitlines() if ln.startswith(name))
    assert terminal(f"{OSC52}\nx[/]")[:20] in line
