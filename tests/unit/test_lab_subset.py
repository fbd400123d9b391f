"""``lab up FILE --nodes a,b``: a subset keeps what its nodes need, drops what would dangle."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlens.cli import main
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_spec import load_lab
from netlens_runtime.lab_subset import parse_nodes_arg, subset

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "runtime" / "netlens_runtime" / "labs"


def test_nodes_takes_a_number_or_names() -> None:
    assert parse_nodes_arg(None) is None
    assert parse_nodes_arg("12") == 12
    assert parse_nodes_arg("r1, h1,") == ["r1", "h1"]
    with pytest.raises(BadInput):
        parse_nodes_arg(" , ")


def test_subset_drops_links_networks_routes_and_flows_that_would_dangle() -> None:
    spec = load_lab(str(EXAMPLE / "example.yaml"))
    part, notes = subset(spec, ["r2", "srv"])
    assert [n.name for n in part.nodes] == ["r2", "srv"]
    assert part.links == ()  # r1 is left out: the p2p link goes
    assert [n.name for n in part.networks] == ["right"]  # srv's; r2 is on none
    assert part.node("r2").routes == ()  # its default route used the p2p link
    assert part.node("srv").routes == spec.node("srv").routes  # still on its network
    assert part.traffic == ()
    assert any("r1:p2p0 - r2:p2p0" in n for n in notes)
    assert any("route default via 10.78.254.1 of r2" in n for n in notes)
    whole, none = subset(spec, [n.name for n in spec.nodes])
    assert whole == spec and none == []


def test_unknown_node_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "check", "example", "--nodes", "r1,nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no node 'nosuch' in lab 'example'" in err


def test_check_says_what_a_subset_leaves_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "check", "example", "--nodes", "r1,h1"]) == 0
    out, err = capsys.readouterr()
    assert "2 nodes" in out
    assert "leaves out link r1:p2p0 - r2:p2p0" in err
