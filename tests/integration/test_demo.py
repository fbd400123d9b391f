"""``netlens demo --no-dashboard``: the bundled lab comes up, traffic crosses the
routers (the kernel's counters grow), and everything is gone afterwards - also
when the demo is stopped with SIGTERM half-way.

The demo runs as a real ``netlens`` process with a private state directory and
a lab name carrying ``nl`` + the run tag.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUN_TAG, is_root
from runtime_host import teardown_state

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a demo subprocess; removes whatever its state dir lists, and fails
    the test if anything of it could not be."""
    if not is_root():
        pytest.skip("needs root")
    env = dict(os.environ, NETLENS_STATE_DIR=str(tmp_path / "state"), NETLENS_NO_LOG="1")
    try:
        yield env
    finally:
        left = teardown_state(Path(env["NETLENS_STATE_DIR"]))
    assert not left, left


def _start(env: dict[str, str], name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "netlens", "demo", "--no-dashboard", "--name", name, *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_up(env: dict[str, str], name: str, proc: subprocess.Popen[str]) -> dict[str, int]:
    """Wait for the lab record to say 'up'; return node name -> pid."""
    sdir = Path(env["NETLENS_STATE_DIR"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rec_path = sdir / "labs" / f"{name}.json"
        if rec_path.is_file() and json.loads(rec_path.read_text())["status"] == "up":
            pids = {}
            for f in (sdir / "containers").glob("*.json"):
                c = json.loads(f.read_text())
                if c.get("labels", {}).get("netlens.lab") == name:
                    pids[c["labels"]["netlens.lab.node"]] = int(c["pid"])
            return pids
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("demo lab did not come up")


def _counters(pid: int) -> dict[str, tuple[int, int]]:
    """rx/tx bytes per interface of the namespace of ``pid`` (from /proc/PID/net/dev)."""
    out = {}
    for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]:
        ifname, rest = line.split(":", 1)
        fields = rest.split()
        out[ifname.strip()] = (int(fields[0]), int(fields[8]))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _assert_gone(env: dict[str, str], name: str, pids: dict[str, int]) -> None:
    sdir = Path(env["NETLENS_STATE_DIR"])
    assert not (sdir / "labs" / f"{name}.json").exists()
    assert list((sdir / "containers").glob("*.json")) == []
    assert list((sdir / "networks").glob("*.json")) == []
    assert not any(_alive(p) for p in pids.values())


def test_demo_moves_bytes_between_nodes_and_cleans_up(demo_env: dict[str, str]) -> None:
    name = f"nl{RUN_TAG}d"
    proc = _start(demo_env, name, "--duration", "3")
    try:
        pids = _wait_up(demo_env, name, proc)
        assert len(pids) == 12
        before = {n: _counters(pids[n]) for n in ("r1", "r2", "web1", "cache")}
        time.sleep(1.0)
        after = {n: _counters(pids[n]) for n in ("r1", "r2", "web1", "cache")}
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err

    def grew(node: str, ifname: str, direction: int) -> int:
        return after[node][ifname][direction] - before[node][ifname][direction]

    # client1 -> web1 is routed by r1: in on eth0 (lan), out on eth1 (dmz).
    assert grew("r1", "eth0", 0) > 50_000 and grew("r1", "eth1", 1) > 50_000
    # web1 -> db1 crosses the point-to-point link r1 -> r2.
    assert grew("r1", "p2p0", 1) > 20_000 and grew("r2", "p2p0", 0) > 20_000
    assert grew("web1", "eth0", 0) > 50_000
    assert grew("cache", "eth0", 0) > 10_000
    flows = [line for line in out.splitlines() if line.strip().startswith("flow ")]
    assert len(flows) == 7 and all(line.endswith(" ok") for line in flows), out
    _assert_gone(demo_env, name, pids)


def test_demo_stops_cleanly_on_sigterm(demo_env: dict[str, str]) -> None:
    name = f"nl{RUN_TAG}s"
    proc = _start(demo_env, name, "--duration", "120")
    try:
        pids = _wait_up(demo_env, name, proc)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    _assert_gone(demo_env, name, pids)


def test_demo_refuses_a_lab_already_up_unless_replace(demo_env: dict[str, str]) -> None:
    """A kept lab of the same name is someone's: the demo says so and leaves it running;
    --replace removes it first and builds anew."""
    name = f"nl{RUN_TAG}r"
    first = _start(demo_env, name, "--keep", "--no-traffic", "--duration", "0")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    pids = _wait_up(demo_env, name, first)
    again = _start(demo_env, name, "--no-traffic", "--duration", "0")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 1
    assert err.splitlines() == [
        f"netlens: a lab named {name!r} is already up: remove it with"
        f" 'netlens lab down {name}', or run the demo with --replace"
    ]
    assert pids and all(_alive(p) for p in pids.values())  # untouched
    replaced = _start(demo_env, name, "--no-traffic", "--duration", "0", "--replace")
    _, err = replaced.communicate(timeout=120)
    assert replaced.returncode == 0, err
    assert f"removing the previous {name!r} lab first" in err
    _assert_gone(demo_env, name, pids)
