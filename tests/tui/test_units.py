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
from netlens.tui.index import ViewIndex
from netlens.tui.keymap import load_keymap
from netlens.tui.screens.detail import route_code
from netlens.tui.sources import synthetic_frame
from netlens.tui.themes import ROLES, ThemeError, bundled_theme_dir, load_themes, parse_theme

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


def test_bundled_themes_come_from_the_package_else_the_checkout(tmp_path: Path) -> None:
    assert bundled_theme_dir() == REPO / "themes"  # this checkout: no netlens/themes
    site = tmp_path / "site-packages" / "netlens"
    (site / "themes").mkdir(parents=True)
    assert bundled_theme_dir(site) == site / "themes"  # installed: the copy in the package
    checkout = tmp_path / "checkout"
    (checkout / "netlens").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    assert bundled_theme_dir(checkout / "netlens") == checkout / "themes"
    bare = tmp_path / "elsewhere" / "netlens"  # neither: never a stranger's themes/ beside
    bare.mkdir(parents=True)
    assert bundled_theme_dir(bare) == bare / "themes"


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


def test_keymap_dotted_ids_written_bare_or_quoted(tmp_path: Path) -> None:
    """``view.vrfs = "v"`` is a nested table to TOML: it must still remap view.vrfs."""
    p = tmp_path / "keymap.toml"
    p.write_text('[keymap]\nview.vrfs = "v"\n"interval.up" = "u"\nview.density = 4\n')
    km, problems = load_keymap(p)
    assert km == {"view.vrfs": "v", "interval.up": "u"}
    assert problems == [f"{p}: keymap.view.density must be a key string like 'ctrl+q'"]


def test_index_groups_containers_by_bridge_and_finds_p2p() -> None:
    idx = ViewIndex.build(make_snapshot())
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
    idx = ViewIndex.build(snap)
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
        idx = ViewIndex.build(snap)
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


@pytest.mark.parametrize(
    ("route", "code"),
    [
        # the local table's broadcast and multicast routes are not local addresses
        (Route(4, 255, "10.0.0.255", type="broadcast", protocol="kernel", scope="link"), "b"),
        (Route(6, 255, "ff00::/8", type="multicast", protocol="kernel"), "m"),
        (Route(6, 255, "2001:db8::", type="anycast", protocol="kernel"), "L"),
        # IPv6 connected prefixes have universe scope, and are still connected
        (Route(6, 254, "2001:db8::/64", protocol="kernel", metric=256), "C"),
        (Route(6, 254, "fe80::/64", protocol="kernel", metric=256), "C"),
        (Route(6, 254, "default", gateway="fe80::1", protocol="ra"), "R*"),
        (Route(4, 254, "10.8.0.0/16", gateway="10.0.0.9", protocol="kernel"), "K"),
    ],
)
def test_route_codes_a_router_would_use(route: Route, code: str) -> None:
    assert route_code(route) == code


def test_routes_sort_by_family_then_numeric_prefix() -> None:
    from netlens.tui.routing import prefix_text, route_sort_key

    routes = [
        Route(6, 254, "2001:db8::/64"),
        Route(4, 254, "10.77.254.0/30"),
        Route(4, 254, "10.77.32.0/20"),
        Route(4, 254, "10.77.32.0/24"),
        Route(6, 254, "default", gateway="fe80::1"),
        Route(4, 100, "default", gateway="10.0.0.1"),
        Route(4, 254, "default", gateway="10.0.0.1"),
        Route(4, 254, "9.0.0.0/8"),
    ]
    got = [(r.table, prefix_text(r)) for r in sorted(routes, key=route_sort_key)]
    assert got == [
        (254, "0.0.0.0/0"),
        (254, "9.0.0.0/8"),
        (254, "10.77.32.0/20"),
        (254, "10.77.32.0/24"),
        (254, "10.77.254.0/30"),
        (254, "::/0"),
        (254, "2001:db8::/64"),
        (100, "0.0.0.0/0"),
    ]


def test_policy_rules_read_like_ip_rule() -> None:
    from netlens.model.types import Rule
    from netlens.tui.routing import rule_action, rule_selector

    r = Rule(4, 100, 200, src="10.10.0.0/16", iif="eth0", fwmark=7)
    assert (rule_selector(r), rule_action(r)) == (
        "from 10.10.0.0/16 iif eth0 fwmark 0x7",
        "lookup 200",
    )
    assert (rule_selector(Rule(4, 32766, 254)), rule_action(Rule(4, 32766, 254))) == (
        "from all",
        "lookup main",
    )
    r = Rule(6, 5, 0, action="blackhole", dst="2001:db8::/32", invert=True)
    assert (rule_selector(r), rule_action(r)) == ("not from all to 2001:db8::/32", "blackhole")


def test_privileged_container_is_marked_and_found() -> None:
    """A privileged container (every capability, no seccomp filter) shows as such in the
    containers table and the detail, and the filter finds it by that word."""
    import dataclasses

    from netlens.tui.context import Context
    from netlens.tui.screens.detail import DetailScreen
    from netlens.tui.views.containers import ContainersView

    snap = make_snapshot()
    first = snap.containers[0]
    snap = dataclasses.replace(
        snap, containers=(dataclasses.replace(first, privileged=True), *snap.containers[1:])
    )
    idx = ViewIndex.build(snap)
    rows = {r.key: r for r in idx.rows}
    assert rows[first.id].privileged
    assert sum(r.privileged for r in idx.rows) == 1
    assert idx.matches(rows[first.id].netns, "privileged")
    assert not any(idx.matches(r.netns, "privileged") for r in idx.rows if r.key != first.id)
    ctx = Context()
    ctx.index = idx
    cells = ContainersView(ctx)._static(rows[first.id], gone=False)
    assert cells[0].text == f"{first.name} (privileged)"
    other = next(r for r in idx.rows if not r.privileged)
    assert ContainersView(ctx)._static(other, gone=False)[0].text == other.name
    from rich.console import Console

    def overview(netns: str) -> str:
        screen = DetailScreen(ctx, netns, "vrf")
        assert screen.ns is not None
        console = Console(width=120, record=True)
        console.print(screen._ns_overview(screen.ns))
        return console.export_text()

    assert "every capability, no seccomp filter" in overview(rows[first.id].netns)
    assert "privileged" not in overview(other.netns)  # the engine does not say: no row
