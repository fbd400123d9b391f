"""Logs never reach the terminal: they go to ``NETLENS_LOG`` (or the XDG state file).

The dashboard owns the screen and scripts parse stdout, so a log record on either
would corrupt what the user reads. Each test runs the real entry point in a fresh
interpreter (logging is process-wide state), with a root handler on stderr already
installed, as an embedding program or a library's import might do: records of the
``netlens`` and ``netlens_runtime`` loggers must still land only in the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netlens.model.serialize import snapshot_to_dict

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "model"))
from sample import sample_snapshot  # noqa: E402

PROGRAM = """
import logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)  # a root handler on the terminal
from netlens.cli import main
rc = main(sys.argv[1:])
logging.getLogger("netlens.discovery.nat").error("marker-error %d", 1)
logging.getLogger("netlens_runtime.create").warning("marker-runtime")
logging.getLogger("netlens").debug("marker-debug")
sys.exit(rc)
"""


def run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    dump = tmp_path / "host.json"
    dump.write_text(json.dumps(snapshot_to_dict(sample_snapshot())))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NETLENS_", "XDG_"))}
    base["PYTHONPATH"] = f"{REPO}{os.pathsep}{REPO / 'runtime'}"
    argv = ["dump", "--input", str(dump), "--format", "mermaid"]
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *argv],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_netlens_log_gets_every_record_and_the_terminal_none(tmp_path: Path) -> None:
    log = tmp_path / "deep" / "dir" / "x.log"  # missing directories are made
    res = run(tmp_path, {"NETLENS_LOG": str(log), "NETLENS_LOG_LEVEL": "DEBUG"})
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith(("graph", "flowchart")) and "marker" not in res.stdout
    text = log.read_text()
    assert "netlens.discovery.nat ERROR marker-error 1" in text
    assert "netlens_runtime.create WARNING marker-runtime" in text
    assert "netlens DEBUG marker-debug" in text


def test_default_level_is_info_and_the_file_is_under_xdg_state_home(tmp_path: Path) -> None:
    res = run(tmp_path, {"XDG_STATE_HOME": str(tmp_path / "state")})
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    text = (tmp_path / "state" / "netlens" / "netlens.log").read_text()
    assert "marker-error" in text and "marker-runtime" in text
    assert "marker-debug" not in text


def test_an_unwritable_log_path_drops_records_silently(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the log's directory would have to be
    res = run(tmp_path, {"NETLENS_LOG": str(blocker / "sub" / "x.log")})
    assert res.returncode == 0
    assert res.stderr == "" and "marker" not in res.stdout
    assert not (blocker / "sub").exists()
