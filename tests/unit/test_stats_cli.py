"""`netlens stats`: argument errors, the table, NDJSON, and the headless rule."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from netlens.cli import main
from netlens.commands import stats as cmd
from netlens.model.types import Container, Interface, Netns, Server, Snapshot
from netlens.stats import units
from netlens.stats.types import Density, Rate, StatsFrame, Usage

pytestmark = pytest.mark.unit


def test_one_set_of_units_for_every_view() -> None:
    assert units.rate(0) == "0 b/s"
    assert units.rate(999) == "999 b/s"
    assert units.rate(12_345_678) == "12.3 Mb/s"
    assert units.rate(2.5e9) == "2.5 Gb/s"
    assert units.rate(8e6, bits=False) == "1 MB/s"
    assert units.pps(0) == "0 p/s"
    assert units.pps(2.5) == "2.5 p/s"
    assert units.pps(12.4) == "12 p/s"  # whole from 10 up
    assert units.pps(999.4) == "999 p/s"
    assert units.pps(12_345) == "12.3 kp/s"
    assert units.size(None) == "-"
    assert units.size(0) == "0 B"
    assert units.size(3 * 2**20) == "3.0 MiB"
    assert units.size(1536 * 2**20) == "1.5 GiB"
    from netlens.tui import fmt

    assert fmt.rate is units.rate and fmt.size is units.size and fmt.pps is units.pps


@pytest.mark.parametrize(
    "argv",
    [
        ["stats", "--interval", "0"],
        ["stats", "--interval", "nan"],
        ["stats", "--interval", "x"],
        ["stats", "--count", "-1"],
        ["stats", "--sort", "pps"],
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert argv[1] in err  # names the bad option
    assert "Traceback" not in err


def snap() -> Snapshot:
    host = Netns(
        id="netns:1",
        inode=1,
        dev=4,
        is_host=True,
        name="host",
        interfaces=(
            Interface(netns="netns:1", ifindex=2, name="eth0", kind="ether", uplink=True),
            Interface(netns="netns:1", ifindex=3, name="br0", kind="bridge"),
        ),
    )
    return Snapshot(
        server=Server("h", "6.18", "x86_64", 2, 2**33),
        namespaces=(host,),
        containers=(
            Container(id="t:web", engine="netlens", name="web", netns="netns:2"),
            Container(id="t:db", engine="netlens", name="db", netns="netns:3"),
        ),
    )


def frame(i: int) -> StatsFrame:
    return StatsFrame(
        taken_at=1000.0 + i,
        interval=1.0,
        containers={"t:web": Rate(rx_bps=1e6, tx_bps=5e6), "t:db": Rate(rx_bps=9e6, tx_bps=1e3)},
        bridges={"netns:1/3": Rate(rx_bps=2e6)},
        uplinks={"netns:1/2": Rate(tx_bps=6e6)},
        server=Rate(rx_bps=1e7, tx_bps=5.001e6),
        usage={"t:web": Usage(mem_bytes=2**20, cpu_percent=12.5, processes=1)},
        density=Density(
            containers=2,
            namespaces=3,
            veths=4,
            bridges=1,
            processes=10,
            cpu_count=2,
            mem_total=2**33,
            mem_used=2**32,
            containers_mem=2**20,
            containers_per_core=1.0,
            containers_per_gib=0.25,
            uplink_capacity_bps=1e9,
            headroom={"bridge_ports": (2, 1024)},
        ),
        uplink_capacity_bps=1e9,
    )


class FakeMonitor:
    def __init__(self) -> None:
        self.ticks = 0
        self.closed = False

    def open(self) -> Snapshot:
        return snap()

    def tick(self) -> tuple[Snapshot | None, StatsFrame]:
        self.ticks += 1
        return None, frame(self.ticks)

    def close(self) -> None:
        self.closed = True


def args(**kw: Any) -> Any:
    import argparse

    base = {"json": False, "interval": 1.0, "count": 2, "sort": "total"}
    base.update(kw)
    return argparse.Namespace(**base)


def test_table_sorts_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    mon = FakeMonitor()
    assert cmd.run(args(sort="tx", count=1), out=out, monitor=mon) == 0
    assert mon.closed and mon.ticks == 1
    text = out.getvalue()
    rows = [ln.split()[0] for ln in text.splitlines() if ln.startswith(("web", "db"))]
    assert rows == ["web", "db"]  # web sent more
    assert "12.5" in text and "1.0 MiB" in text  # cpu and memory of web
    assert "br0" in text and "eth0" in text
    assert "1.0% used" in text  # busier direction: 10 Mb/s rx of 1 Gb/s
    assert "  containers/core 1.0  containers/GiB 0.25  " in text  # ratios say what per what
    out2 = io.StringIO()
    cmd.run(args(sort="rx", count=1), out=out2, monitor=FakeMonitor())
    rows2 = [ln.split()[0] for ln in out2.getvalue().splitlines() if ln.startswith(("web", "db"))]
    assert rows2 == ["db", "web"]


def test_json_is_one_document_per_sample() -> None:
    out = io.StringIO()
    mon = FakeMonitor()
    cmd.run(args(json=True, count=3), out=out, monitor=mon)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and mon.ticks == 3
    docs = [json.loads(ln) for ln in lines]
    assert [d["taken_at"] for d in docs] == [1001.0, 1002.0, 1003.0]
    d = docs[0]
    assert d["containers"]["t:web"]["tx_bps"] == 5e6
    assert d["names"]["t:web"] == "web" and d["names"]["netns:1/3"] == "br0"
    assert d["server"]["uplink_capacity_bps"] == 1e9
    assert d["usage"]["t:web"]["cpu_percent"] == 12.5
    assert d["density"]["headroom"]["bridge_ports"] == {"used": 2, "max": 1024}


def test_headless_modules_import_no_tui_nor_pyroute2() -> None:
    code = (
        "import sys, netlens.stats.live, netlens.stats.density, netlens.commands.stats;"
        "import netlens.stats.history, netlens.stats.aggregate;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('textual','rich','pyroute2')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("euid", [0, 1000])
def test_not_root_line_is_one_stderr_line_and_only_without_root(
    euid: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without root ``stats`` says once, on stderr, what it cannot see, and samples
    anyway; stdout stays pure NDJSON for scripts. As root it says nothing."""
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    out = io.StringIO()
    assert cmd.run(args(json=True, count=2), out=out, monitor=FakeMonitor()) == 0
    err = capsys.readouterr().err.splitlines()
    if euid == 0:
        assert err == []
    else:
        assert err == [
            "netlens: not root: only this process's own namespace is sampled; "
            "run as root to see inside containers"
        ]
    assert [json.loads(line)["taken_at"] for line in out.getvalue().splitlines()] == [
        1001.0,
        1002.0,
    ]
