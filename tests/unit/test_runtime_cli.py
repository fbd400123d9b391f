"""The runtime's CLI: bad flags and missing root give one line and the right exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlens.cli import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--cpus", "lots", "--", "true"],
        ["rm"],
        ["network", "create"],
        ["stop", "-t", "x", "c"],
        ["run", "--host-view", "most", "--", "true"],
    ],
)
def test_bad_flags_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-d", "--", "sleep", "1"],
        ["rm", "-f", "x"],
        ["network", "create", "n1"],
        ["gc"],
        ["exec", "x", "--", "true"],
    ],
)
def test_not_root_exit_77(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    assert main(argv) == 77
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "root" in err


def test_bad_values_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    for sub in ("proc", "sys", "dev", "tmp"):  # a --rootfs that passes its own checks
        os.makedirs(f"{tmp_path}/{sub}", exist_ok=True)
    for argv in (
        ["run", "-d", "--name", "bad name", "--", "true"],
        ["run", "-d", "--memory", "lots", "--", "true"],
        ["run", "-d", "--publish", "80", "--", "true"],
        ["run", "-d", "--env", "NOEQUALS", "--", "true"],
        ["run", "-d"],
        ["run", "-d", "-v", "relative:/x", "--", "true"],
        ["run", "-d", "-v", f"{tmp_path}:/proc/x", "--", "true"],
        ["run", "-d", "--host-view", "full", "--rootfs", str(tmp_path), "--", "true"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err


def test_ps_view_column() -> None:
    """ps says what a container sees as its root; records older than host views had all of it."""
    from netlens_runtime.ps import host_view as _view

    assert _view({"rootfs": "/srv/r", "host_view": None}) == "rootfs"
    assert _view({"rootfs": None, "host_view": "tools"}) == "tools"
    assert _view({"rootfs": None, "host_view": "full"}) == "full"
    assert _view({"rootfs": None}) == "full"


def test_bad_security_options_exit_2_and_make_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bad --security-opt or profile file: one line naming the problem, nothing made."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    state = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state))
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"],'
                   ' "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 0,'
                   ' "op": "SCMP_CMP_EQ"}]}]}')  # fmt: skip
    cases = (
        (["--security-opt", "apparmor=unconfined"], "unsupported security option"),
        (["--security-opt", f"seccomp={tmp_path}/missing.json"], "No such file"),
        (["--security-opt", f"seccomp={bad}"], "bad.json: syscalls[0].args[0].index"),
        (
            ["--privileged", "--security-opt", f"seccomp={bad}"],
            "a privileged container runs without",
        ),
    )
    for opts, text in cases:
        assert main(["run", "-d", "--name", "c1", *opts, "--", "true"]) == 2, opts
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and text in err, err
    assert not (state / "containers").exists() or not os.listdir(state / "containers")
