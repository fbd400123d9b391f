"""Unit tests of the dashboard's pure parts: formatting, themes, index, sources, CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from netlens.commands import dashboard, view
from netlens.errors import UsageError
from netlens.model.types import Route
from netlens.stats.types import ZERO
from netlens.tui import fmt
from netlens.tui.index import SnapshotIndex
from netlens.tui.keymap import load_keymap
from netlens.tui.screens.detail import route_code
from netlens.tui.sources import synthetic_frame
from netlens.tui.themes import ROLES, ThemeError, load_themes, parse_theme

from .conftest import REPO
from .fixture import container_ip, make_snapshot

pytestmark = pytest.mark.unit


def test_si_rates_and_levels() -> None:
    assert fmt.rate(12_300_000) == "12.3 Mb/s"
    assert fmt.rate(8_000, bits=False) == "1 kB/s"
    assert fmt.rate(0) == "0 b/s"
    assert fmt.level(10) == "idle"
    assert fmt.level(5e6) == "low" and fmt.level(100e6) == "mid" and fmt.level(1e9) == "high"
    assert fmt.level(700e6, 1e9) == "high" and fmt.level(50e6, 1e9) == "low"
    assert fmt.sparkline([0, 1, 2, 4], 4) == "▁▂▄█"
    assert fmt.sparkline([], 3) == "   "


def test_bundled_themes_are_valid_and_define_every_role() -> None:
    ts = load_themes([REPO / "themes"])
    assert ts.errors == []
    names = {t.name for t in ts.themes}
    assert {"netlens-dark", "netlens-light", "netlens-contrast"} <= names
    for path in (REPO / "themes").glob("*.toml"):
        text = path.read_text()
        for role in ROLES:
            assert f"\n{role} = " in text, (path.name, role)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[theme\n", "not valid TOML"),
        ('[roles]\nveth = "#fff"\n', "missing [theme]"),
        ('[theme]\nname = "x"\n', "needs at least 'primary'"),
        ('[theme]\nprimary = "#fff"\nshiny = 1\n', "unknown [theme] key"),
        ('[theme]\nprimary = "#fff"\n[roles]\nwormhole = "#fff"\n', "unknown role"),
        ('[theme]\nprimary = "#fff"\n[roles]\nveth = "blurple"\n', "not a colour"),
        ('[theme]\nprimary = "#fff"\ndark = "yes"\n', "dark must be"),
    ],
)
def test_bad_theme_files_are_reported(tmp_path: Path, body: str, problem: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(ThemeError, match=problem.replace("[", r"\[")):
        parse_theme(p)
    ts = load_themes([tmp_path])
    assert len(ts.errors) == 1 and [t.name for t in ts.themes] == ["netlens-dark"]


def test_keymap_file(tmp_path: Path) -> None:
    p = tmp_path / "keymap.toml"
    p.write_text('[keymap]\nquit = "ctrl+q"\npause = 3\n')
    km, problems = load_keymap(p)
    assert km == {"quit": "ctrl+q"} and len(problems) == 1
    assert load_keymap(tmp_path / "none.toml") == ({}, [])


def test_index_groups_containers_by_bridge_and_finds_p2p() -> None:
    idx = SnapshotIndex.build(make_snapshot())
    br = {b.name: b.ref.key for b in idx.bridges}
    assert len(idx.members[br["br0"]]) == 7 and len(idx.members[br["br1"]]) == 5
    assert [idx.iface_label(p.a) for p in idx.p2p] == ["router:p2p-edge"]
    rows = {r.name: r for r in idx.rows}
    assert rows["web-1"].bridge == "br0" and rows["edge"].bridge == ""
    assert rows["router"].engine == "netns"
    router = rows["router"].netns
    assert idx.neighbours(router) >= {br["br0"], br["br1"], rows["edge"].netns}
    assert idx.matches(rows["db-3"].netns, container_ip(0, 2))
    assert not idx.matches(rows["db-3"].netns, "10.11.")


def test_synthetic_frame_sums_like_the_live_layer() -> None:
    snap = make_snapshot()
    fr = synthetic_frame(snap, 3)
    idx = SnapshotIndex.build(snap)
    br0 = next(b for b in idx.bridges if b.name == "br0").ref.key
    ports = [i.ref.key for i in snap.host.interfaces if i.master == int(br0.split("/")[1])]  # type: ignore[union-attr]
    total = sum(fr.interfaces[k].total_bps for k in ports if k in fr.interfaces)
    assert fr.bridges[br0].total_bps == pytest.approx(total)
    assert fr.server.total_bps == pytest.approx(sum(r.total_bps for r in fr.vrfs.values()))
    assert synthetic_frame(snap, 3) == fr  # deterministic
    assert any(r == ZERO or r.total_bps == 0 for r in fr.containers.values())


@pytest.mark.parametrize(
    ("route", "code"),
    [
        (Route(4, 254, "10.0.0.0/24", protocol="kernel", scope="link"), "C"),
        (Route(4, 254, "default", gateway="10.0.0.1", protocol="static"), "S*"),
        (Route(4, 254, "default", gateway="10.0.0.1", protocol="dhcp"), "D*"),
        (Route(4, 255, "10.0.0.1", type="local", protocol="kernel", scope="host"), "L"),
        (Route(4, 254, "10.9.0.0/16", protocol="bird"), "B"),
    ],
)
def test_route_codes(route: Route, code: str) -> None:
    assert route_code(route) == code


def test_cli_rejects_bad_input_with_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="between"):
        dashboard.interval_of(argparse.Namespace(interval=0.0))
    assert dashboard.interval_of(argparse.Namespace()) == 1.0  # `netlens demo` args
    with pytest.raises(UsageError, match="no such file"):
        view.run(argparse.Namespace(dump_file=str(tmp_path / "missing.json")))


def test_cached_grids_lay_out_exactly_like_a_fresh_layout() -> None:
    """The grid cache behind fast collapse must never change what is drawn."""
    from netlens.tui.topology import GridCache, ViewState, build_layout

    cache = GridCache()
    for snap in (make_snapshot(), make_snapshot((3, 9), with_router=False)):
        idx = SnapshotIndex.build(snap)
        br = [b.ref.key for b in idx.bridges]
        states = [
            ViewState(),
            ViewState(frozenset({br[0]})),
            ViewState(),
            ViewState(needle="web"),
            ViewState(frozenset({br[1]}), focus=frozenset(idx.neighbours(br[1]))),
            ViewState(),
        ]
        for width in (120, 80):
            for st in states:
                fresh = build_layout(idx, st, width)
                cached = build_layout(idx, st, width, cache)
                assert cached.lines == fresh.lines
                assert cached.regions == fresh.regions
                assert cached.width == fresh.width


def test_gc_policy_freezes_and_gives_back() -> None:
    import gc

    from netlens.tui.gcpolicy import GcPolicy

    pol = GcPolicy(settle_every=3600, reclaim_every=0)
    try:
        pol.settle(force=True)
        assert gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        pol.settle()  # rate-limited: nothing happens
        assert gc.get_freeze_count() == frozen
        pol.structure_changed()  # reclaim_every=0: full collection, then frozen again
        assert pol.reclaims == 1 and gc.get_freeze_count() > 0
    finally:
        pol.release()
    assert gc.get_freeze_count() == 0
