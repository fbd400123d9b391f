"""Under CI=true a skipped test fails (tests/conftest.py); elsewhere it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("skip_probe.py")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def _run(ci: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PROBE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_a_skip_under_ci_true_fails_and_names_the_reason() -> None:
    res = _run("true")
    assert res.returncode == 1, res.stdout
    assert "1 failed" in res.stdout
    assert "skipped under CI=true" in res.stdout and "a probe that cannot run here" in res.stdout


def test_a_skip_outside_ci_stays_a_skip() -> None:
    res = _run("")
    assert res.returncode == 0, res.stdout
    assert "1 skipped" in res.stdout
