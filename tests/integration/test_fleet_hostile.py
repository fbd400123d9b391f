"""`netlens fleet` against servers that attack the client (a real sshd on 127.0.0.1).

- bighead: more than 64 KiB before the first newline (the header is ~100 bytes),
  then silence. The client read up to 1 GiB (its dump limit) into memory for the
  header; now it stops at 64 KiB with an error row, long before its deadline.
- deep: a good header, dump and sample, then a sample nested 100000 levels deep.
  The parser's RecursionError escaped the client: under ``--watch`` the server's
  task died and its row stayed ``ok`` with the last good sample for ever. Now the
  row says ``error`` (and the server is retried).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_sim import sim_dump_doc, sim_sample, sim_snapshot
from fleet_sshd import DEADLINE, SSHD, Sshd, wait_gone

from netlens import __version__

pytestmark = pytest.mark.integration

HOSTILE = r"""
import os, select, sys
d = os.path.dirname(os.path.abspath(__file__))
def out(text):
    sys.stdout.write(text)
    sys.stdout.flush()
def until_stdin_closes():
    while True:
        r, _, _ = select.select([sys.stdin], [], [], 5)
        if r and not os.read(sys.stdin.fileno(), 4096):
            return
if sys.argv[1] == "bighead":
    out("x" * (200 * 1024))
    until_stdin_closes()
else:
    for name in ("header", "dump", "sample"):
        out(open(os.path.join(d, "good." + name)).read().strip() + "\n")
    out("[" * 100000 + "\n")
    until_stdin_closes()
"""


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    if not os.access(SSHD, os.X_OK):
        pytest.skip("needs Debian's openssh-server (apt-get install openssh-server)")
    root = Path(tempfile.mkdtemp(prefix="netlens-fleet-hostile-"))
    s = Sshd(root, os.path.basename(root))
    try:
        (root / "hostile.py").write_text(HOSTILE)
        head = {"netlens_agent": 1, "netlens_version": __version__, "hostname": "lab1"}
        (root / "good.header").write_text(json.dumps(head))
        (root / "good.dump").write_text(json.dumps(sim_dump_doc("lab1", None)))
        sample = sim_sample(sim_snapshot("lab1", None), 1e6, 5e5)
        (root / "good.sample").write_text(json.dumps(sample))
        env = f"env FLEET_TEST_TAG={s.tag} {sys.executable} {root}/hostile.py"
        s.serve({"bighead": f"{env} bighead", "deep": f"{env} deep"})
        yield s
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alias"]: r for r in doc["servers"]}


def test_an_oversized_header_is_cut_off(sshd: Sshd) -> None:
    res = sshd.run("--json", "--timeout", "120", "bighead")
    assert res.returncode == 1, res.stderr  # no server answered
    row = rows(json.loads(res.stdout))["bighead"]
    assert row["state"] == "error", row  # not "slow": cut off, not waited out
    assert "longer than 65536 bytes" in row["reason"], row
    assert wait_gone(sshd.tag) == []


def test_a_too_deep_sample_is_an_error_row_while_watching(sshd: Sshd) -> None:
    proc = subprocess.Popen(
        sshd.fleet_argv("--watch", "--json", "--interval", "0.2", "--timeout", "120", "deep"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sshd.client_env(),
    )  # fmt: skip
    states: list[str] = []
    try:
        assert proc.stdout is not None
        while len(states) < 10 * DEADLINE:  # documents, one per 0.2 s: no timing check
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            row = rows(json.loads(line))["deep"]
            states.append(row["state"])
            if row["state"] == "error":
                # refused as too deep, or as no stats frame by a decoder that reads
                # only the fields the fleet shows; either way an error, retried
                reason = row["reason"]
                assert "nested too deeply" in reason or "not a netlens stats frame" in reason
                assert "retrying" in reason, row
                break
        assert states[-1] == "error", states[-20:]
    finally:
        proc.terminate()
        proc.wait(timeout=DEADLINE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert wait_gone(sshd.tag) == []
