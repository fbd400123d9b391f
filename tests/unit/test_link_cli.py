"""``netlens link``: bad input is one line and an exit code; reading paths skip pyroute2.

No namespace is touched: every case here fails (or only reads) before the runtime
would enter one. The state directory is a private empty one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from netlens.cli import main

pytestmark = pytest.mark.unit


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    return tmp_path / "state"


def _run(argv: list[str]) -> int:
    """``netlens ARGV``'s exit code, whether main returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["link", "set", "web:eth0"], 2, "give at least one of --rate"),
        (["link", "set", "web:eth0", "--rate", "fast"], 2, "--rate: 'fast' is not a rate"),
        (["link", "set", "web:eth0", "--delay", "20"], 2, "--delay: '20' is not a time"),
        (["link", "set", "web:eth0", "--loss", "200%"], 2, "--loss: '200%' is more than 100%"),
        (["link", "set", "web:eth0", "--rate", "1mbit", "--direction", "up"], 2, "invalid choice"),
    ],
)
def test_bad_flags_are_one_line(
    state: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, text: str
) -> None:
    assert _run(argv) == code
    assert text in _one_line(capsys)


@pytest.mark.skipif(os.geteuid() != 0, reason="link set checks root before the target")
@pytest.mark.parametrize(
    ("target", "code", "text"),
    [
        ("web", 2, "give LAB:NODE:IF or CONTAINER:IF"),
        ("a:b:c:d", 2, "give LAB:NODE:IF or CONTAINER:IF"),
        ("web:", 2, "give LAB:NODE:IF or CONTAINER:IF"),
        ("nosuch:eth0", 1, "no container 'nosuch'"),
        ("lab:node:eth0", 1, "no node 'node' in lab 'lab'"),
    ],
)
def test_bad_targets_are_one_line(
    state: Path, capsys: pytest.CaptureFixture[str], target: str, code: int, text: str
) -> None:
    assert main(["link", "set", target, "--rate", "1mbit"]) == code
    assert text in _one_line(capsys)
    assert main(["link", "reset", target]) == code


def test_show_on_an_empty_state_dir(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["link", "show"]) == 0
    assert "no impaired or downed links" in capsys.readouterr().out
    assert main(["link", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_show_lists_records(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What a record says is what show prints (table and JSON), filtered by lab."""
    (state / "containers").mkdir(parents=True)
    base = {"id": "0" * 64, "pid": 0, "netns_inode": 0, "state": "exited",
            "created": "2024-01-01T00:00:00.000Z", "command": ["true"]}  # fmt: skip
    rec = {
        **base,  # a record the runtime accepts (netlens_runtime.records)
        "name": "lb-r1",
        "labels": {"netlens.lab": "lb", "netlens.lab.node": "r1"},
        "impair": {"p2p0": {"egress": {"rate": 10_000_000, "delay": 20_000}, "ingress": {}}},
        "link_down": {"p2p0": {"routes": []}},
    }
    (state / "containers" / "lb-r1.json").write_text(json.dumps(rec))
    other = {**base, "name": "web", "impair": {"eth0": {"egress": {}, "ingress": {"loss": 1.0}}}}
    (state / "containers" / "web.json").write_text(json.dumps(other))
    assert main(["link", "show"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["TARGET", "DIR", "RATE", "DELAY", "JITTER", "LOSS", "CORRUPT",
                              "DUP", "LINK"]  # fmt: skip
    assert out[1].split() == ["lb:r1:p2p0", "egress", "10mbit", "20ms", "-", "-", "-", "-", "down"]
    assert out[2].split() == ["web:eth0", "ingress", "-", "-", "-", "1%", "-", "-", "up"]
    assert main(["link", "show", "lb", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["target"] == "lb:r1:p2p0" and row["state"] == "down"
    assert row["egress"] == {"rate": 10_000_000, "delay": 20_000}
    # a lab that does not exist is an error (with the close names), not "nothing there"
    assert main(["link", "show", "lbb"]) == 1
    assert capsys.readouterr().err.splitlines() == ["netlens: no lab named 'lbb'"]


PROBE = """
import json, sys
{body}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


def _roots(body: str, tmp_path: Path) -> set[str]:
    env = {
        **os.environ,
        "NETLENS_NO_LOG": "1",
        "NETLENS_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'runtime'}",
    }
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def test_reading_paths_do_not_import_pyroute2(tmp_path: Path) -> None:
    """Parser, ``link show`` and ``lab check`` of a lab with impairments stay light;
    the probe proves itself by importing pyroute2 through ``link set``'s module."""
    lab = REPO / "tests" / "fixtures" / "labs" / "good" / "impaired.yaml"
    body = (
        "import netlens.cli\n"
        "assert netlens.cli.main(['link', 'show']) == 0\n"
        f"assert netlens.cli.main(['lab', 'check', {str(lab)!r}]) == 0\n"
    )
    assert "pyroute2" not in _roots(body, tmp_path)
    assert "pyroute2" in _roots("import netlens_runtime.linkctl", tmp_path)
