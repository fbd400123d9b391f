"""Findings in ``netlens dump --json`` (schema 1.3), read back by ``doctor --from`` and
shown offline by ``netlens view``, on a broken topology the test builds.

The namespaces are this test's own (the ``lab`` fixture removes them, pass or fail);
the dumps are filtered to them, so what the shared host holds never enters an
assertion. No packet is sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import Lab, sh
from test_doctor_live import bridged, ex, pair

from netlens.model.serialize import load_file, schema_path

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'runtime'}", NETLENS_NO_LOG="1")
    return subprocess.run(
        [sys.executable, "-m", "netlens", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _broken(lab: Lab) -> tuple[str, str, str, str, str]:
    """A veth whose far end is down (a, b) and a bridge in h whose two leaves claim
    one address (x, y): a warning and an error, in namespaces of their own."""
    a, b = pair(lab, "a", "b")
    sh(f"ip -n {b} link set e0 down")
    h, (x, y) = bridged(lab, "h", ["x", "y"])
    for ns in (x, y):
        ex(ns, "ip addr add 10.10.0.5/24 dev eth0 nodad")
    return a, b, h, x, y


def _dump(tmp_path: Path, *netns: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    out = tmp_path / "dump.json"
    sel = [arg for ns in netns for arg in ("--netns", ns)]
    res = _cli("dump", "--json", *sel, *extra, "-o", str(out))
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_dump_carries_the_findings_and_doctor_from_agrees(lab: Lab, tmp_path: Path) -> None:
    a, b, h, x, y = _broken(lab)
    doc = _dump(tmp_path, a, b, h, x, y)
    assert doc["schema_version"] == "1.3"
    jsonschema.Draft202012Validator(json.loads(Path(schema_path()).read_text())).validate(doc)
    by_check = {f["check"]: f for f in doc["findings"]}
    peer = by_check["veth-peer-down"]
    assert peer["severity"] == "warning"
    assert {o["name"] for o in peer["objects"]} == {f"{a}:e0", f"{b}:e0"}
    assert peer["fix"] == f"ip -n {b} link set dev e0 up"
    dup = by_check["duplicate-ip"]
    assert dup["severity"] == "error"
    assert {o["name"] for o in dup["objects"]} == {f"{x}:eth0", f"{y}:eth0"}
    assert doc["findings"].index(dup) < doc["findings"].index(peer)  # worst first
    # the ids join the dump: every interface a finding names is an interface of this dump
    ifaces = {f"{i['netns']}/{i['ifindex']}" for ns in doc["namespaces"] for i in ns["interfaces"]}
    for f in doc["findings"]:
        for o in f["objects"]:
            if o["kind"] == "interface":
                assert o["id"] in ifaces, o
    assert {s["check"] for s in doc["skipped"]} >= {"forward-drop-bridge", "conntrack-near-max"}
    # doctor --from that very file finds the same (it re-runs the snapshot checks)
    res = _cli("doctor", "--from", str(tmp_path / "dump.json"), "--json")
    assert res.returncode == 1, res.stderr  # an error is found
    again = json.loads(res.stdout)
    assert again["findings"] == doc["findings"]


def test_filtered_dump_keeps_only_its_namespaces_findings(lab: Lab, tmp_path: Path) -> None:
    """A dump of x alone still sees the duplicate (the checks ran on the whole host)
    but not the far-away veth of a and b."""
    a, b, _h, x, _y = _broken(lab)
    doc = _dump(tmp_path, x)
    kept = {ns["id"] for ns in doc["namespaces"]}
    checks = {f["check"] for f in doc["findings"]}
    assert "duplicate-ip" in checks and "veth-peer-down" not in checks
    for f in doc["findings"]:
        assert any(o["id"].split("/")[0] in kept for o in f["objects"]), f
    assert not any(a in json.dumps(f) or b in json.dumps(f) for f in doc["findings"])


def test_no_findings_says_nothing_was_checked(lab: Lab, tmp_path: Path) -> None:
    a, b, *_ = _broken(lab)
    doc = _dump(tmp_path, a, b, extra=("--no-findings",))
    assert doc["findings"] == []
    assert [s["check"] for s in doc["skipped"]] == ["doctor"]


def test_view_shows_a_saved_dumps_findings_offline(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``netlens view FILE``: the findings view lists what the dump recorded and the
    VRF box of the downed end carries a badge; the namespaces are gone by then."""
    import asyncio

    from netlens.tui.app import NetlensApp
    from netlens.tui.sources import FileSource
    from netlens.tui.views.findings import FindingsView
    from netlens.tui.widgets.fast_table import FastTable
    from netlens.tui.widgets.topology_view import TopologyView

    a, b, *_ = _broken(lab)
    _dump(tmp_path, a, b)
    path = tmp_path / "dump.json"
    b_id = next(ns.id for ns in load_file(path).namespaces if b in ns.names)
    lab.close()  # offline: nothing of the dump exists any more
    assert b not in sh("ip netns list").stdout
    cfg = tmp_path / "config"
    cfg.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))

    async def body() -> None:
        app = NetlensApp(FileSource(path))
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(250):
                if app.ctx.findings is not None:
                    break
                await pilot.pause(0.02)
            await pilot.press("5")
            await pilot.pause()
            fi = app.ctx.findings
            assert fi is not None and fi.source == "dump.json"
            assert [f.check for f in fi.findings] == ["veth-peer-down"]
            table = app.screen.query_one(FindingsView).query_one(FastTable)
            assert table.row_count == 1 and "veth-peer-down" in table.rows[0]
            topo = app.screen.query_one(TopologyView)
            assert topo.badges.get(b_id), (b_id, fi.badges, topo.badges)
            assert topo.badges[b_id].text == "▲1"

    asyncio.run(body())
