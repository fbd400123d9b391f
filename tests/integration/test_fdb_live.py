"""A bridge's MAC table entries carry their age, as ``bridge -s fdb`` reports it.

One namespace (``nt<tag>fd``, removed pass or fail) with a bridge, a veth port and
a static entry for a MAC that never sends: its age only grows, so the dump's age
must lie between what ``bridge -s`` says just before and just after the dump.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import Lab, sh

pytestmark = pytest.mark.integration
MAC = "02:00:00:00:0d:01"


def updated(ns: str) -> int:
    """``bridge -s``'s 'updated' (whole seconds) of the static entry."""
    rows = json.loads(sh(f"bridge -n {ns} -s -j fdb show").stdout)
    (row,) = [r for r in rows if r.get("mac") == MAC and "master" in r]
    return int(row["updated"])


def test_dump_gives_fdb_entries_their_age(lab: Lab) -> None:
    ns = lab.add_netns("fd")
    br, port, other = lab.name("b"), lab.name("p"), lab.name("q")
    sh(f"ip -n {ns} link add {br} type bridge && ip -n {ns} link set {br} up")
    sh(f"ip -n {ns} link add {port} type veth peer name {other}")
    sh(f"ip -n {ns} link set {port} master {br} up && ip -n {ns} link set {other} up")
    sh(f"bridge -n {ns} fdb add {MAC} dev {port} master static")
    before = updated(ns)
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "dump", "--json", "--netns", ns],
        capture_output=True,
        text=True,
        env={**os.environ, "NETLENS_NO_LOG": "1"},
        timeout=120,
    )
    after = updated(ns)
    assert res.returncode == 0, res.stderr
    (got,) = json.loads(res.stdout)["namespaces"]
    (entry,) = [f for f in got["fdb"] if f["mac"] == MAC]
    assert entry["state"] == "static" and entry["age"] is not None
    assert before <= entry["age"] < after + 1  # bridge prints whole seconds
    own = [f for f in got["fdb"] if f["state"] == "permanent" and f["master"] is not None]
    assert own and all(f["age"] is not None for f in own)
