"""``lab start`` rebuilds a node's plan from its record: the same as at creation.

The plan is what the child is confined by (capabilities, seccomp program, root,
host view, volumes, sysctls, environment, log): the plan ``prepare`` computed
from a spec and the plan ``plan_from_record`` computes from the record made of
it must agree field by field, or a restarted node would run with other rules.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from netlens_runtime import create, spawn
from netlens_runtime.args import ContainerArgs
from netlens_runtime.errors import BadInput, RuntimeFailure
from netlens_runtime.lab_lifecycle import plan_from_record
from netlens_runtime.prepare import prepare

pytestmark = pytest.mark.unit

FIELDS = ("name", "hostname", "argv", "env", "caps", "rootfs", "log_path", "sysctls",
          "host_view", "volumes", "skeleton", "log_max", "privileged", "seccomp",
          "layers")  # fmt: skip


@pytest.fixture
def sdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def _record(args: ContainerArgs) -> tuple[spawn.Plan, dict[str, Any]]:
    job = prepare(args, attach=False)
    job.child = spawn.Child(4242, -1, -1)  # the record names its pid; nothing runs
    return job.plan, create._record(job, "2026-01-01T00:00:00.000Z")


def _fields(plan: spawn.Plan) -> dict[str, Any]:
    return {f: getattr(plan, f) for f in FIELDS}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"cap_add": ["NET_ADMIN", "NET_RAW"], "env": {"A": "1"}, "hostname": "r1"},
        {"sysctls": {"net.ipv4.ip_forward": "1"}, "log_size": "1m"},
        {"privileged": True},
        {"security_opt": ["seccomp=unconfined"]},
        {"host_view": "full"},
    ],
)
def test_the_plan_from_the_record_is_the_plan_it_was_made_with(
    sdir: Path, extra: dict[str, Any]
) -> None:
    made, rec = _record(ContainerArgs("lab-r1", ["sleep", "9"], **extra))
    again = plan_from_record(rec)
    assert _fields(again) == _fields(made)
    assert again.netns_path is not None and again.netns_path.endswith("/netns/lab-r1")
    assert again.nl_pre is None and again.nl_post is None  # lo and eth0 are there already


def test_volumes_and_rootfs_are_placed_again(sdir: Path) -> None:
    data = sdir / "data"
    data.mkdir()
    root = sdir / "root"
    for sub in ("proc", "sys", "dev", "tmp", "srv"):
        (root / sub).mkdir(parents=True)
    for extra in ({"volumes": [f"{data}:/data:ro", f"{data}:/tmp/x"]},
                  {"rootfs": str(root), "volumes": [f"{data}:/srv"]}):  # fmt: skip
        made, rec = _record(ContainerArgs("n", ["true"], **extra))  # type: ignore[arg-type]
        assert _fields(plan_from_record(rec)) == _fields(made)
    os.rmdir(data)  # gone since: one line, before anything runs
    with pytest.raises(BadInput, match="does not exist"):
        plan_from_record(rec)


def test_a_layered_root_is_the_same_layers_again(sdir: Path) -> None:
    """A node on an image of several layers starts again on those layers (and on
    a read-only overlay, not on the host's root view of a template)."""
    data = sdir / "data"
    data.mkdir()
    top, base = sdir / "top", sdir / "base"
    top.mkdir()
    for sub in ("proc", "sys", "dev", "tmp", "srv"):
        (base / sub).mkdir(parents=True)
    args = ContainerArgs("n", ["true"], volumes=[f"{data}:/srv"])
    args.layers = [str(top), str(base)]  # what a clab node's image resolves to
    made, rec = _record(args)
    again = plan_from_record(rec)
    assert again.layers == [str(top), str(base)] and _fields(again) == _fields(made)
    os.rmdir(top)  # the store changed since: one line, before anything runs
    with pytest.raises(BadInput, match="not a directory"):
        plan_from_record(rec)


def test_the_cached_filter_is_used_and_a_record_without_confinement_refused(sdir: Path) -> None:
    made, rec = _record(ContainerArgs("n", ["true"]))
    assert made.seccomp and rec["seccomp_filter"]
    Path(rec["seccomp_filter"]).unlink(missing_ok=True)  # compiled again: the same program
    assert plan_from_record(rec).seccomp == made.seccomp
    old = {k: v for k, v in rec.items() if k not in ("caps", "seccomp")}
    with pytest.raises(RuntimeFailure, match="does not say how it was confined"):
        plan_from_record(old)
