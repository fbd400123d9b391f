"""Hostile names stay inert in every output: terminal text, dot, mermaid, GraphML, JSON,
``stats``, error lines and the runtime's ``ps`` table.

The names (tests/fixtures/model/hostile.py) carry what an unprivileged user can put in
an interface name, an alias, a process's argv or an engine's config: SGR and OSC
escape sequences, BEL, CR, newlines, NUL, C1 controls, bidi overrides, Rich markup,
emoji codes, Mermaid entities, non-UTF-8 bytes and very long names.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET

import networkx as nx
import pytest
from fixtures.model import hostile as H
from fixtures.model.sample import sample_snapshot

from netlens.export import render
from netlens.kernel.inert import dot_string, mermaid_text, terminal, xml_text
from netlens.model.serialize import dumps, loads

pytestmark = pytest.mark.unit

MORE = (
    "[bold]x[/]",
    "[/]",
    ":ab:",
    ":smile:",
    "\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\",
    "bell\x07",
    "cr\rover",
    "nul\x00x",
    "c1\x9b31m\x85",
    "del\x7f",
    "zero\u200bwidth\u2028line\u2029para\ufeff",
    "tab\tx",
    "x" * 5000 + "\x1b",
    "bad\udcff\udc80",
    "\U000e0001tag",
    "\ufffe\uffff",
)
HOSTILE = (*H.EVERY, *MORE)
BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def unsafe_chars(text: str, allowed: str = "") -> set[str]:
    """Characters a terminal or an XML reader would act on (controls, formats...)."""
    return {ch for ch in text if ch not in allowed and unicodedata.category(ch) in BAD_CATEGORIES}


# --- the terminal rule ----------------------------------------------------------------
@pytest.mark.parametrize("text", HOSTILE)
def test_terminal_leaves_only_printable_text(text: str) -> None:
    out = terminal(text)
    assert out.isprintable(), repr(out)
    assert terminal(out) == out  # idempotent: a label escaped twice reads the same
    out.encode("utf-8")  # lone surrogates would make the write to stdout fail


def test_terminal_shows_each_character_as_a_visible_escape() -> None:
    assert terminal(H.BRIDGE) == "\\x1b[31m[red]br"
    assert terminal(H.ALIAS) == "l1\\nl2\\x1b]52;c;aGk=\\x07[/]:ab:"
    assert terminal("a\x00b\rc\td\x7fe\x9bf") == "a\\x00b\\rc\\td\\x7fe\\x9bf"
    assert terminal("rtl\u202eltr\u2028") == "rtl\\u202eltr\\u2028"
    assert terminal("\U000e0001") == "\\U000e0001"
    assert terminal("raw\udcff") == "raw\\xff"  # the byte that was not UTF-8


def test_terminal_keeps_printable_unicode_and_returns_plain_names_as_they_are() -> None:
    for name in ("eth0", "brü-日本-🙂", "[red]x[/] :ab:", "back\\slash", "sp ace"):
        assert terminal(name) is name


def test_format_escapers() -> None:
    assert dot_string('a"b\\N\x1b') == '"a\\"b\\\\N\\\\x1b"'
    assert mermaid_text('#quot; "x" <b>&`md`') == "#35;quot; #quot;x#quot; #lt;b#gt;#amp;#96;md#96;"
    assert xml_text("a\x00b\ufffe") == "a\\x00b\\ufffe"


# --- exports ---------------------------------------------------------------------------
def test_dot_export_is_inert_and_keeps_its_shape() -> None:
    text = render(H.hostile_snapshot(), "dot")
    assert not unsafe_chars(text, "\n"), unsafe_chars(text, "\n")
    # no name broke out of its line or its quotes: same lines as the tame sample
    assert len(text.splitlines()) == len(render(sample_snapshot(), "dot").splitlines())
    # the bridge's label (its network's name, then its own), escaped
    assert '"lan\\\\x1b[1m[b] (\\\\x1b[31m[red]br)\\nbridge' in text
    assert '"lxc:\\\\x1b[31mx[/]\\\\xff"' in text  # an id, quoted the same everywhere


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_dot_export_of_hostile_names_renders_with_graphviz() -> None:
    res = subprocess.run(
        ["dot", "-Tsvg"], input=render(H.hostile_snapshot(), "dot"), capture_output=True, text=True
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert "\\x1b[31m[red]br" in res.stdout  # drawn as text, not as a Graphviz escape
    ET.fromstring(res.stdout)  # and the SVG is XML


def test_mermaid_export_is_inert_and_keeps_its_shape() -> None:
    text = render(H.hostile_snapshot(), "mermaid")
    assert not unsafe_chars(text, "\n")
    assert len(text.splitlines()) == len(render(sample_snapshot(), "mermaid").splitlines())
    labels = re.findall(r'"([^"]*)"', text)
    # no backtick (markdown), no HTML but the line breaks the exporter writes
    assert labels and all("`" not in x and "<" not in x.replace("<br/>", "") for x in labels)
    assert "lab\\x07\\x1b[8m#35;quot;#96;md#96;" in text  # the hostname, as plain text


def test_graphml_export_is_valid_xml_with_every_node() -> None:
    text = render(H.hostile_snapshot(), "graphml")
    assert not unsafe_chars(text, "\n")
    ET.fromstring(text.encode())  # valid XML 1.0 (it was not: a raw ESC is forbidden)
    g = nx.read_graphml(io.BytesIO(text.encode()), force_multigraph=True)
    tame = nx.read_graphml(
        io.BytesIO(render(sample_snapshot(), "graphml").encode()), force_multigraph=True
    )
    assert g.number_of_nodes() == tame.number_of_nodes()
    assert g.number_of_edges() == tame.number_of_edges()
    labels = {d.get("label") for _, d in g.nodes(data=True)}
    bridge_label = terminal(f"{H.NETWORK} ({H.BRIDGE})")  # the network's name, then its own
    assert bridge_label in labels and terminal(H.CONTAINER) in labels
    assert terminal(H.LXC_ID) in g  # ids escaped the same for nodes and edges


def test_json_dump_escapes_everything_and_round_trips_exact_names() -> None:
    snap = H.hostile_snapshot()
    for text in (dumps(snap), dumps(snap, pretty=True)):
        assert text.isascii() and not unsafe_chars(text, "\n")
        back = loads(text)
        assert back == snap  # the exact names, NUL and lone surrogates included
    doc = json.loads(dumps(snap))
    host = doc["namespaces"][0]
    assert {i["name"] for i in host["interfaces"]} >= {H.BRIDGE, H.PORT}


def test_error_line_on_stderr_is_one_inert_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from netlens.cli import main

    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    assert main(["dump", "--input", "/nonexistent/\x1b]52;c;aGk=\x07\n[/].json"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("netlens: cannot read ") and err.count("\n") == 1
    assert "/nonexistent/\\x1b]52;c;aGk=\\x07\\n[/].json" in err and not unsafe_chars(err, "\n")


# --- stats -------------------------------------------------------------------------------
def test_stats_table_prints_names_inert() -> None:
    from netlens.commands.stats import format_table, frame_document, names_of
    from netlens.stats.types import Rate, StatsFrame

    snap = H.hostile_snapshot()
    names = names_of(snap)
    br_key = "netns:4026531840/4"
    frame = StatsFrame(
        taken_at=1.0,
        interval=1.0,
        containers={c.id: Rate(rx_bps=1e6) for c in snap.containers},
        bridges={br_key: Rate(tx_bps=5.0)},
    )
    text = format_table(frame, names)
    assert not unsafe_chars(text, "\n")
    # the bridge's shown name (network, then its own) is cut to the column, escaped
    assert "lan\\x1b[1m[b] (\\x1b[31m[red]" in text
    assert "mininet:0[/]" in text and "dddd" in text
    rows = text.splitlines()
    assert len(rows) == 6 + len(snap.containers)  # no name added a line
    # the NDJSON keeps the exact names (JSON escapes them)
    line = json.dumps(frame_document(frame, names))
    assert line.isascii() and json.loads(line)["names"][br_key] == f"{H.NETWORK} ({H.BRIDGE})"


# --- runtime ps ----------------------------------------------------------------------------
def test_runtime_tables_print_every_cell_inert(capsys: pytest.CaptureFixture[str]) -> None:
    from netlens_runtime.cli import _table

    _table([("NAME", "COMMAND"), (H.CONTAINER, H.COMMAND), ("x\x1b[2J", "a\nb")])
    out = capsys.readouterr().out
    assert not unsafe_chars(out, "\n") and out.count("\n") == 3
    assert "\\x1b]52;c;aGk=\\x07" in out and "x\\x1b[2J" in out and "a\\nb" in out
