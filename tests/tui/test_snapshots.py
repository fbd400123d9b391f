"""Snapshot tests: every view and screen on the fixed fixture at 120x40.

Update the references with ``pytest tests/tui --snapshot-update`` after an intended
change, and look at the report before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import SIZE, loaded, make_app
from .fixture import fixture_source

pytestmark = pytest.mark.tui


@pytest.mark.parametrize(
    ("name", "press"),
    [
        ("topology", []),
        ("vrfs", ["2"]),
        ("containers", ["3"]),
        ("density", ["4"]),
        (
            "vrf_routes",
            [
                "2",
                "down",
                "down",
                "down",
                "down",
                "down",
                "down",
                "down",
                "down",
                "down",
                "down",
                "down",
                "enter",
                "right",
                "right",
            ],
        ),
        ("vrf_arp", ["2", *["j"] * 11, "enter", "right", "right", "right"]),
        ("bridge_mac_table", ["2", "tab", "enter", "right", "right"]),
        ("container_detail", ["3", "enter"]),
        ("help", ["question_mark"]),
        ("filter", ["3", "slash", "w", "e", "b"]),
        ("topology_focus", ["right", "right", "right", "f"]),
        ("topology_collapsed", ["right", "c"]),
        ("findings", ["5"]),  # the fixture's one finding: br1's ports disagree on MTU
        ("findings_evidence", ["5", "enter"]),
    ],
)
def test_view(snap_compare: Any, name: str, press: list[str]) -> None:
    assert snap_compare(make_app(), press=press, terminal_size=SIZE, run_before=loaded)


@pytest.mark.parametrize("theme", ["netlens-light", "netlens-contrast"])
@pytest.mark.parametrize("view", ["1", "3"])
def test_themes(snap_compare: Any, theme: str, view: str) -> None:
    assert snap_compare(make_app(theme=theme), press=[view], terminal_size=SIZE, run_before=loaded)


def test_not_root_banner(snap_compare: Any) -> None:
    app = make_app(fixture_source(root=False))
    assert snap_compare(app, press=["2"], terminal_size=SIZE, run_before=loaded)
