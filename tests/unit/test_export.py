"""Golden-file tests of the drawing exports on the fixed fixture snapshot.

Regenerate the golden files after an intended change with
``NETLENS_REGEN_GOLDEN=1 python3 -m pytest tests/unit/test_export.py tests/unit/test_serialize.py``
and review the diff before committing it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import pytest
from fixtures.model.sample import sample_snapshot

from netlens.export import FORMATS, render
from netlens.model.graph import build_graph

pytestmark = pytest.mark.unit
GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "model" / "golden"
SUFFIX = {"dot": "dot", "graphml": "graphml", "mermaid": "mmd"}
REGEN = os.environ.get("NETLENS_REGEN_GOLDEN") == "1"


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(fmt: str) -> None:
    text = render(sample_snapshot(), fmt)
    path = GOLDEN / f"sample.{SUFFIX[fmt]}"
    if REGEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing {path}; run with NETLENS_REGEN_GOLDEN=1"
    assert text == path.read_text(), f"{fmt} output changed; regenerate if intended"


@pytest.mark.parametrize("fmt", FORMATS)
def test_deterministic(fmt: str) -> None:
    assert render(sample_snapshot(), fmt) == render(sample_snapshot(), fmt)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        render(sample_snapshot(), "svg")


def test_graphml_reads_back_with_same_structure() -> None:
    g = build_graph(sample_snapshot())
    h = nx.read_graphml(
        io.BytesIO(render(sample_snapshot(), "graphml").encode()), force_multigraph=True
    )
    assert list(h.nodes) == list(g.nodes)
    assert sorted((u, v, d["type"]) for u, v, d in h.edges(data=True)) == sorted(
        (u, v, k) for u, v, k in g.edges(keys=True)
    )
    host_eth0 = h.nodes["netns:4026531840/2"]
    assert host_eth0["addresses"] == "192.0.2.10/24,2001:db8::10/64"
    assert host_eth0["mtu"] == 1500 and host_eth0["up"] is True


def test_dot_shape() -> None:
    text = render(sample_snapshot(), "dot")
    assert text.startswith('graph "netlens lab1" {') and text.endswith("}\n")
    assert text.count("{") == text.count("}")
    g = build_graph(sample_snapshot())
    assert text.count(" -- ") == g.number_of_edges()
    assert text.count("subgraph cluster_") == 5  # one box per VRF


def test_dot_escapes_quotes() -> None:
    import dataclasses

    snap = sample_snapshot()
    srv = dataclasses.replace(snap.server, hostname='we"ird\\host')
    text = render(dataclasses.replace(snap, server=srv), "dot")
    assert 'graph "netlens we\\"ird\\\\host" {' in text


def test_mermaid_shape() -> None:
    text = render(sample_snapshot(), "mermaid")
    g = build_graph(sample_snapshot())
    assert text.splitlines()[0] == "flowchart LR"
    assert text.count("subgraph ") == text.count("\n  end") == 5
    edges = [ln for ln in text.splitlines() if re.match(r"^  n\d+ \S+\|\w+\| n\d+$", ln)]
    assert len(edges) == g.number_of_edges()
    assert '"' not in "".join(re.findall(r'"([^"]*)"', text))  # labels never break quoting


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_dot_renders_with_graphviz() -> None:
    """Graphviz itself accepts the text (syntax, quoting, attributes)."""
    res = subprocess.run(
        ["dot", "-Tsvg"], input=render(sample_snapshot(), "dot"), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and "<svg" in res.stdout
