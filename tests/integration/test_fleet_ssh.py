"""`netlens fleet` over a real sshd on 127.0.0.1, and `netlens agent` as a process.

The test starts Debian's sshd on a free loopback port with its own host key,
config and authorized_keys, and reaches it under several host aliases of a temp
ssh config, each alias with its own client key. A key's ``command=`` forces what
runs, which is how one sshd plays several servers:

- lab1, lab2: a simulator serving a recorded dump (a VXLAN tunnel between them)
  and rate samples until its stdin closes, like the agent;
- slowhost: sends the header, then nothing (slow, with its own short deadline);
- oldhost: an agent of another netlens version (version_mismatch, data kept);
- newhost: an agent of another protocol (version_mismatch, nothing read past the header);
- baddump: a dump of a schema this netlens cannot read, then good samples (error);
- bighost: a dump of more than 3 MiB in one line (asyncssh's readline would stop
  at its 2 MiB receive window and hand back part of it);
- local: no forced command: the real ``netlens agent`` of this tree on this host;
- nonetlens: a command that does not exist (error, with the shell's exit status);
- closed: a port where nothing listens (unreachable).

Every process the fleet starts on the "servers" carries the environment variable
FLEET_TEST_TAG; the test proves none is left after the fleet ends, and kills any
that are in its finalizer. sshd, keys and files go in every case.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import REPO
from fleet_sim import sim_dump_doc, sim_sample, sim_snapshot
from fleet_sshd import DEADLINE, SSHD, Sshd, tagged_pids, wait_gone

from netlens import __version__
from netlens.fleet.merge import schema_path

pytestmark = pytest.mark.integration

SIM = r"""
import os, select, sys, time
name = sys.argv[1]
d = os.path.dirname(os.path.abspath(__file__))
def out(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
out(open(os.path.join(d, name + ".header")).read().strip())
if name != "slow":
    out(open(os.path.join(d, name + ".dump")).read().strip())
sample = open(os.path.join(d, name + ".sample")).read().strip() if name != "slow" else None
while True:  # like the agent: until stdin closes
    r, _, _ = select.select([sys.stdin], [], [], 0.2)
    if r and not os.read(sys.stdin.fileno(), 4096):
        break
    if sample:
        try:
            out(sample)
        except BrokenPipeError:
            break
"""


class Fleet(Sshd):
    """The temp sshd (tests/fleet_sshd.py) with this test's servers, and the fleet file."""

    def write_sims(self) -> None:
        (self.root / "sim.py").write_text(SIM)
        plan = {"lab1": ("lab2", 2, __version__), "lab2": ("lab1", 0, __version__),
                "old": (None, 0, "0.0.1-old"), "slow": (None, 0, __version__),
                "big": (None, 0, __version__), "new": (None, 0, "9.0.0"),
                "baddump": (None, 0, __version__)}  # fmt: skip
        for name, (peer, findings, version) in plan.items():
            host = "lab3" if name in ("old", "slow", "big", "new", "baddump") else name
            head = {
                "netlens_agent": 2 if name == "new" else 1,
                "netlens_version": version,
                "hostname": host,
            }
            (self.root / f"{name}.header").write_text(json.dumps(head))
            doc = sim_dump_doc(host, peer, findings)
            if name == "big":
                doc["warnings"] = [f"padding {n} " + "x" * 1000 for n in range(3500)]
            if name == "baddump":
                doc["schema_version"] = "99.0"
            (self.root / f"{name}.dump").write_text(json.dumps(doc))
            rx = {"lab1": 4e6, "lab2": 2e6}.get(name, 1e6)
            sample = sim_sample(sim_snapshot(host, peer), rx, rx / 2)
            (self.root / f"{name}.sample").write_text(json.dumps(sample))

    def start(self) -> None:
        self.write_sims()
        env = f"env FLEET_TEST_TAG={self.tag}"
        self.serve(
            {
                "lab1": f"{env} {sys.executable} {self.root}/sim.py lab1",
                "lab2": f"{env} {sys.executable} {self.root}/sim.py lab2",
                "slowhost": f"{env} {sys.executable} {self.root}/sim.py slow",
                "oldhost": f"{env} {sys.executable} {self.root}/sim.py old",
                "bighost": f"{env} {sys.executable} {self.root}/sim.py big",
                "newhost": f"{env} {sys.executable} {self.root}/sim.py new",
                "baddump": f"{env} {sys.executable} {self.root}/sim.py baddump",
                "local": None,
                "nonetlens": None,
            }
        )

    def fleet_file(self) -> Path:
        pypath = f"{REPO}:{REPO}/runtime"
        agent = (
            f"env FLEET_TEST_TAG={self.tag} NETLENS_NO_LOG=1 PYTHONPATH={pypath} "
            f"{sys.executable} -m netlens agent"
        )
        text = (
            "defaults: {timeout: 120}\n"
            "hosts:\n"
            "  - {alias: lab1, labels: {rack: r1}}\n"
            "  - {alias: lab2, labels: {rack: r2}}\n"
            "  - {alias: slowhost, timeout: 3}\n"
            "  - oldhost\n"
            "  - bighost\n"
            "  - newhost\n"
            f"  - {{alias: local, command: {json.dumps(agent)}}}\n"
            f"  - {{alias: nonetlens, command: env FLEET_TEST_TAG={self.tag} no-such-netlens-x}}\n"
            "  - closed\n"
        )
        path = self.root / "fleet.yaml"
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    if not os.access(SSHD, os.X_OK):
        pytest.skip("needs Debian's openssh-server (apt-get install openssh-server)")
    root = Path(tempfile.mkdtemp(prefix="netlens-fleet-"))
    f = Fleet(root, os.path.basename(root))
    try:
        f.start()
        yield f
    finally:
        f.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def document(fleet: Fleet) -> dict[str, Any]:
    res = fleet.run("--json", "--interval", "0.2", "--file", str(fleet.fleet_file()))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_document_validates(document: dict[str, Any]) -> None:
    schema = json.loads(Path(schema_path()).read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    aliases = [s["alias"] for s in document["servers"]]
    assert aliases == ["lab1", "lab2", "slowhost", "oldhost", "bighost", "newhost", "local",
                       "nonetlens", "closed"]  # fmt: skip


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["alias"]: s for s in doc["servers"]}


def test_simulated_servers_and_their_tunnel(document: dict[str, Any]) -> None:
    r = rows(document)
    for alias, host, rx, findings in (("lab1", "lab1", 4e6, 2), ("lab2", "lab2", 2e6, 0)):
        s = r[alias]
        assert (s["state"], s["reason"], s["hostname"]) == ("ok", None, host)
        assert s["containers"] == 3 and s["findings"]["total"] == findings
        assert s["bandwidth"]["containers_rx_bps"] == rx
        assert s["memory"]["used"] == 1 << 30
    assert r["lab1"]["labels"] == {"rack": "r1"}
    (link,) = document["vxlan_links"]
    assert link["vni"] == 100 and link["symmetric"]
    assert {link["a"]["server"], link["b"]["server"]} == {"lab1", "lab2"}


def test_faulty_servers_do_not_block_the_others(document: dict[str, Any]) -> None:
    r = rows(document)
    assert r["closed"]["state"] == "unreachable"
    assert "refused" in r["closed"]["reason"].lower()
    assert r["slowhost"]["state"] == "slow"
    assert "dump" in r["slowhost"]["reason"] and r["slowhost"]["netlens_version"] == __version__
    old = r["oldhost"]
    assert old["state"] == "version_mismatch" and "0.0.1-old" in old["reason"]
    assert old["containers"] == 3  # same protocol: its data still counts
    new = r["newhost"]
    assert new["state"] == "version_mismatch" and "agent protocol 2" in new["reason"]
    assert new["agent_protocol"] == 2 and new["containers"] is None
    big = r["bighost"]
    assert big["state"] == "ok" and big["containers"] == 3 and big["bandwidth"] is not None
    bad = r["nonetlens"]
    assert bad["state"] == "error" and "exit status 127" in bad["reason"]
    for s in document["servers"]:
        assert s["reason"] is None or "\n" not in s["reason"]
    assert document["totals"]["by_state"] == {
        "error": 1, "ok": 4, "slow": 1, "unreachable": 1, "version_mismatch": 2,
    }  # fmt: skip


def test_the_real_agent_on_this_host(document: dict[str, Any]) -> None:
    s = rows(document)["local"]
    assert s["state"] == "ok", s["reason"]
    assert s["hostname"] == os.uname().nodename and s["root"] is True
    assert s["namespaces"] >= 1 and s["netlens_version"] == __version__
    assert s["bandwidth"] is not None and s["memory"]["total"] > 0


def test_nothing_left_running_on_the_servers(fleet: Fleet, document: dict[str, Any]) -> None:
    assert document["servers"]  # the fleet ran (and with it every agent and simulator)
    assert wait_gone(fleet.tag) == []


def test_table_output(fleet: Fleet) -> None:
    res = fleet.run("lab1", "lab2", "closed", "--interval", "0.2", "--timeout", "120")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("SERVER")
    assert any(x.startswith("lab1 ") and " ok " in x for x in lines)
    assert any(x.startswith("closed ") and "unreachable" in x for x in lines)
    assert "vxlan 100: lab1:vxlan100 <-> lab2:vxlan100" in res.stdout
    assert wait_gone(fleet.tag) == []


def test_a_bad_dump_is_an_error_though_samples_flow(fleet: Fleet) -> None:
    """The client decodes a dump only after the first sample came: the dump's fault
    is still what the row says (not the sample's success)."""
    res = fleet.run("baddump", "lab1", "--json", "--interval", "0.2", "--timeout", "120")
    assert res.returncode == 0, res.stderr
    r = rows(json.loads(res.stdout))
    assert r["baddump"]["state"] == "error" and r["baddump"]["containers"] is None
    assert r["baddump"]["reason"].startswith("the dump: ") and "99.0" in r["baddump"]["reason"]
    assert r["lab1"]["state"] == "ok"
    assert wait_gone(fleet.tag) == []


def test_all_unreachable_exits_1(fleet: Fleet) -> None:
    res = fleet.run("closed", "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["servers"][0]["state"] == "unreachable"


def test_unreadable_ssh_config_is_one_line(fleet: Fleet) -> None:
    res = fleet.run("lab1", "--ssh-config", str(fleet.root / "nonexistent"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == f"netlens: cannot read ssh config {fleet.root / 'nonexistent'}"


# --- netlens agent as a local process --------------------------------------------------


def start_agent(tag: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NETLENS_NO_LOG": "1", "FLEET_TEST_TAG": tag}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "runtime")])
    return subprocess.Popen(
        [sys.executable, "-m", "netlens", "agent", "--interval", "0.2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["stdin-closes", "sigterm", "reader-goes"])
def test_agent_stream_and_its_ends(how: str) -> None:
    tag = f"agent-{os.getpid()}-{how}"
    proc = start_agent(tag)
    try:
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        head = json.loads(proc.stdout.readline())
        assert head == {"netlens_agent": 1, "netlens_version": __version__,
                        "hostname": os.uname().nodename}  # fmt: skip
        dump = json.loads(proc.stdout.readline())
        assert dump["schema_version"] and "findings" in dump and dump["namespaces"]
        for _ in range(2):
            sample = json.loads(proc.stdout.readline())
            assert "server" in sample and "density" in sample
        if how == "stdin-closes":
            proc.stdin.close()
        elif how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            proc.stdout.close()  # the next write gets EPIPE
        assert proc.wait(timeout=DEADLINE) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err and "Broken pipe" not in err, err
        assert tagged_pids(tag) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- --watch: streaming, and reconnecting a server whose agent died ------------------


def test_watch_streams_and_reconnects_a_lost_server(fleet: Fleet) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "runtime")])
    env["NETLENS_NO_LOG"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netlens", "fleet", "--ssh-config", str(fleet.root / "ssh_config"),
         "--watch", "--json", "--interval", "0.2", "--timeout", "120", "lab1", "closed"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    schema = jsonschema.Draft202012Validator(json.loads(Path(schema_path()).read_text()))
    seen: list[str] = []

    def until(state: str, alias: str = "lab1") -> dict[str, Any]:
        assert proc.stdout is not None
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            doc: dict[str, Any] = json.loads(line)
            schema.validate(doc)
            row = rows(doc)[alias]
            seen.append(row["state"])
            if row["state"] == state:
                return doc
        raise AssertionError(f"{alias} never became {state}: {seen}")

    try:
        doc = until("ok")
        assert rows(doc)["closed"]["state"] == "unreachable"
        assert "retrying in" in rows(doc)["closed"]["reason"]
        for pid in tagged_pids(fleet.tag):  # the simulator behind lab1 dies
            os.kill(pid, signal.SIGKILL)
        lost = until("unreachable")
        assert "agent ended" in rows(lost)["lab1"]["reason"]
        again = until("ok")  # reconnected after the backoff
        assert rows(again)["lab1"]["bandwidth"]["containers_rx_bps"] == 4e6
        assert tagged_pids(fleet.tag)  # a new simulator runs
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    assert wait_gone(fleet.tag) == []


# --- --tui: the fleet view follows the servers -----------------------------------------


def test_tui_rows_follow_a_server_lost_and_back(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet view on the live feed, as ``netlens fleet --tui`` runs it: lab1's row
    becomes ok with its rate, goes unreachable when its agent dies, and is ok again
    after the reconnection, on screen, while ``closed`` stays unreachable."""
    import asyncio

    from textual.widgets import DataTable, Static

    from netlens.fleet.config import hosts_from
    from netlens.fleet.feed import FleetFeed
    from netlens.tui.fleet import FleetApp

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # keys from the ssh config only
    specs = hosts_from(["lab1", "closed"], None, 120.0)
    feed = FleetFeed(specs, __version__, 0.2, [str(fleet.root / "ssh_config")])
    seen: list[str] = []

    async def drive() -> None:
        app = FleetApp(feed)
        async with app.run_test(size=(120, 30)) as pilot:
            t = app.query_one(DataTable)

            async def until(state: str) -> list[str]:
                end = time.monotonic() + DEADLINE
                while time.monotonic() < end:
                    row = [str(c) for c in t.get_row_at(0)]
                    if not seen or seen[-1] != row[1]:
                        seen.append(row[1])
                    if row[1] == state:
                        return row
                    await pilot.pause(0.05)
                raise AssertionError(f"lab1 never showed {state}: {seen}")

            row = await until("ok")
            assert row[0] == "lab1" and row[4] == "4 Mb/s"
            assert [str(c) for c in t.get_row_at(1)][:2] == ["closed", "unreachable"]
            for pid in tagged_pids(fleet.tag):  # the simulator behind lab1 dies
                os.kill(pid, signal.SIGKILL)
            await until("unreachable")
            notes = str(app.query_one("#fleet-notes", Static).render())
            assert "lab1: unreachable: agent ended" in notes and "retrying in" in notes
            row = await until("ok")  # reconnected: the row is back with its rate
            assert row[4] == "4 Mb/s"
            await pilot.press("q")

    feed.start()
    try:
        asyncio.run(drive())
        assert seen[-3:] == ["ok", "unreachable", "ok"]
    finally:
        feed.stop()
    assert wait_gone(fleet.tag) == []
