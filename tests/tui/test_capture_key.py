"""The dashboard's ``w``: a capture of the selected node to a file, with a live count.

On the real live source: two namespaces of this test joined by a veth, the VRF
table's cursor on one of them, ``w``, a ping between the two, ``w`` again. The
status line must have shown the count going up while it ran, and Debian's tshark
must read back exactly the echo requests and replies that were sent, under the
label the command line would have given (``VRF:IFNAME``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Lab, is_root, sh
from textual.widgets import Static

from netlens.tui.app import NetlensApp
from netlens.tui.sources import LiveSource

from .conftest import SIZE, loaded, make_app, run_async, select_live_vrf

pytestmark = [pytest.mark.integration, pytest.mark.tui]


@pytest.fixture
def cwlab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("cw")
    try:
        yield lab
    finally:
        lab.close()


async def drive(lab: Lab, a: str, ia: str, peer: str) -> tuple[list[str], Path | None]:
    src = LiveSource(interval=0.5)
    src.open_timeout = 60.0
    app = NetlensApp(src)
    seen: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await select_live_vrf(pilot, a)
        await pilot.press("w")
        assert app.ctx.capturing.startswith(f"● capturing {a}:{ia} → "), app.ctx.capturing
        status = app.query_one("#status", Static)
        await asyncio.to_thread(sh, f"ip netns exec {a} ping -q -c 4 -i 0.2 -W 2 {peer}")
        for _ in range(100):  # the ring hands over a block at most 50 ms after a packet
            await pilot.pause(0.1)
            seen.append(str(status.render()))
            if "packets (w stops)" in seen[-1] and " 0 packets" not in seen[-1]:
                break
        await pilot.press("w")
        cap = app._capture
        path = cap.path if cap is not None else None
        for _ in range(100):
            if app._capture is None:
                break
            await pilot.pause(0.1)
        assert app._capture is None and app.ctx.capturing == ""
    return seen, path


def test_w_captures_the_selected_vrf_with_a_live_count(
    cwlab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not shutil.which("tshark"):
        pytest.skip("needs tshark")
    LiveSource.check_available()
    monkeypatch.setenv("NETLENS_CAPTURE_DIR", str(tmp_path))
    a, b = cwlab.add_netns("a"), cwlab.add_netns("b")
    ia, ib = cwlab.name("ea"), cwlab.name("eb")
    cwlab.add_veth(ia, ib, a, b)
    sh(f"ip -n {a} addr add 10.66.9.1/24 dev {ia}")
    sh(f"ip -n {b} addr add 10.66.9.2/24 dev {ib}")
    seen, path = asyncio.run(drive(cwlab, a, ia, "10.66.9.2"))
    assert any("● capturing" in s and " 0 packets" not in s for s in seen), seen
    assert path is not None and path.parent == tmp_path and path.suffix == ".pcapng"
    res = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
         "-e", "icmp.type", "-Y", "icmp"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [ln.split("\t") for ln in res.stdout.splitlines()]
    assert sorted(r[1] for r in rows) == ["0"] * 4 + ["8"] * 4
    assert {r[0] for r in rows} == {f"{a}:{ia}"}


@run_async
async def test_w_on_a_saved_snapshot_says_why_not() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("w")
        await pilot.pause()
        assert app._capture is None and app.ctx.capturing == ""
        assert any("live host" in str(n.message) for n in app._notifications)
