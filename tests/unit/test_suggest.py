"""Did-you-mean hints for missing container, network and lab names, end to end.

The hint reads the state directory's file names: a near miss lists the close
names, a far miss adds nothing, and a file name that breaks the name rule (a
control character, a hidden file) is never offered to the terminal.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netlens_runtime import suggest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for kind, names in (
        ("containers", ["web-1", "web-2", "db", ".hidden", "web\x1b[2J1"]),
        ("networks", ["lan", "dmz"]),
        ("labs", ["demo"]),
    ):
        d = tmp_path / kind
        d.mkdir()
        for n in names:
            (d / f"{n}.json").write_text("{}")
    (tmp_path / "containers" / "web-3.tmp").write_text("")  # not a record
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    return tmp_path


def test_close_names_of_the_kinds_asked(state: Path) -> None:
    assert suggest.hint("web1", "containers") == "; did you mean 'web-1' or 'web-2'?"
    assert suggest.hint("lann", "networks") == "; did you mean 'lan'?"
    assert suggest.hint("lann", "containers") == ""
    assert suggest.hint("dem", "labs") == "; did you mean 'demo'?"
    assert suggest.hint("lan", "containers", "networks") == "; did you mean 'lan'?"
    assert suggest.hint("zzzzzz", "containers", "networks", "labs") == ""


def test_only_well_formed_record_names_are_offered(state: Path) -> None:
    assert suggest.existing("containers") == ["db", "web-1", "web-2"]
    assert suggest.hint("hidden", "containers") == ""


def test_a_missing_state_directory_offers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path / "none"))
    assert suggest.existing("containers") == []
    assert suggest.hint("web", "containers") == ""


def test_the_commands_print_the_hint(tmp_path: Path) -> None:
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "demo.json").write_text("{}")
    env = {"NETLENS_STATE_DIR": str(tmp_path), "NETLENS_NO_LOG": "1", "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = f"{REPO}:{REPO / 'runtime'}"
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "lab", "down", "dem"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert res.stderr.splitlines() == [
        "netlens: no lab named 'dem'; did you mean 'demo'? (see 'netlens lab ls')"
    ]
