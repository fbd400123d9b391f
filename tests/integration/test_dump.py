"""`netlens dump` as a real process on namespaces this test builds, checked against iproute2.

Topology (names carry the ``nm`` prefix and the run tag, removed pass or fail):
bridge ``<p>br`` in the host; namespaces ``<p>a`` and ``<p>b``, each joined to
the bridge by a veth (host end ``<p>ha``/``<p>hb``, namespace end ``<p>ca``/``<p>cb``)
with an IPv4 address inside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from conftest import RUN_TAG, Lab, is_root, sh

from netlens.model.graph import build_graph, path_to_uplink
from netlens.model.serialize import schema_path, snapshot_from_dict

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(Path(schema_path()).read_text())
ENV = {**os.environ, "NETLENS_NO_LOG": "1"}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(scope="module")
def nobody_site() -> Iterator[str]:
    """A directory nobody can read holding the compiled dependency the dump needs.

    Root's site-packages sits under /root (mode 700), so as nobody this interpreter
    falls back to the system's paths. A real unprivileged user has netlens installed
    in an environment of their own; this gives them msgspec the same way.
    """
    site = tempfile.mkdtemp(prefix="netlens-nobody-")
    try:
        os.chmod(site, 0o755)
        shutil.copytree(Path(msgspec.__file__).parent, Path(site) / "msgspec")
        yield site
    finally:
        shutil.rmtree(site, ignore_errors=True)


class Topo:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.br = lab.add_bridge("br")
        self.ns: dict[str, str] = {}
        for i, x in enumerate("ab"):
            ns = lab.add_netns(x)
            lab.add_veth(lab.name(f"h{x}"), lab.name(f"c{x}"), None, ns)
            sh(f"ip link set {lab.name(f'h{x}')} master {self.br}")
            addr = f"10.231.{int(RUN_TAG, 16) % 250}.{i + 2}/24"
            sh(f"ip -n {ns} addr add {addr} dev {lab.name(f'c{x}')}")
            self.ns[x] = ns
        self._settle()

    def _settle(self) -> None:
        """Wait (bounded) until every namespace end is up and IPv6 autoconfiguration
        is done (link-local address present, DAD over), so that two dumps, and the
        dump and iproute2, see the same addresses and routes."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(self._settled(ns, self.lab.name("c" + x)) for x, ns in self.ns.items()):
                return
            time.sleep(0.1)

    @staticmethod
    def _settled(ns: str, dev: str) -> bool:
        link = json.loads(sh(f"ip -n {ns} -j link show {dev}").stdout)[0]
        addrs = json.loads(sh(f"ip -n {ns} -j -6 addr show {dev}").stdout or "[]")
        infos = [a for x in addrs for a in x.get("addr_info", [])]
        return (
            link["operstate"] == "UP"
            and any(a.get("scope") == "link" for a in infos)
            and not any(a.get("tentative") for a in infos)
        )


@pytest.fixture
def topo() -> Iterator[Topo]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("nm")
    try:
        yield Topo(lab)
    finally:
        lab.close()


def netlens(
    *args: str,
    user: list[str] | None = None,
    cwd: str | None = None,
    prefix: list[str] | None = None,
    site: str = "",
) -> subprocess.CompletedProcess[str]:
    env = dict(ENV)
    if user:
        # the unprivileged user cannot read root's site-packages: the checkout and `site`
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), str(REPO / "runtime"), site) if p
        )
    argv = [*(prefix or []), *(user or []), sys.executable, "-m", "netlens", "dump", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd or str(REPO), timeout=120
    )


def ns_by_name(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = [ns for ns in doc["namespaces"] if name in ns["names"]]
    assert len(found) == 1, name
    return found[0]


def ip_json(cmd: str) -> list[dict[str, Any]]:
    return json.loads(sh(cmd).stdout or "[]")


def test_dump_json_matches_iproute2_and_schema(topo: Topo) -> None:
    res = netlens("--json")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["root"] is True
    for x, ns_name in topo.ns.items():
        ns = ns_by_name(doc, ns_name)
        ino = os.stat(f"/run/netns/{ns_name}").st_ino
        assert ns["id"] == f"netns:{ino}" and ns["inode"] == ino and not ns["is_host"]
        links = ip_json(f"ip -n {ns_name} -j -d link")
        want = {(ln["ifindex"], ln["ifname"], ln["mtu"], ln.get("address")) for ln in links}
        got = {(i["ifindex"], i["name"], i["mtu"], i["mac"]) for i in ns["interfaces"]}
        assert got == want
        kinds = {ln["ifname"]: ln.get("linkinfo", {}).get("info_kind") for ln in links}
        assert kinds[topo.lab.name(f"c{x}")] == "veth"
        assert {i["name"]: i["kind"] for i in ns["interfaces"]}[topo.lab.name(f"c{x}")] == "veth"
        addrs = ip_json(f"ip -n {ns_name} -j addr")
        want_a = {
            (a["ifindex"], ai["local"], ai["prefixlen"]) for a in addrs for ai in a["addr_info"]
        }
        got_a = {
            (i["ifindex"], a["address"], a["prefixlen"])
            for i in ns["interfaces"]
            for a in i["addresses"]
        }
        assert got_a == want_a
        # the host end: a port of our bridge, paired with the namespace end
        host_end = ip_json(f"ip -j -d link show {topo.lab.name(f'h{x}')}")[0]
        br = ip_json(f"ip -j link show {topo.br}")[0]
        host = next(n for n in doc["namespaces"] if n["is_host"])
        h = next(i for i in host["interfaces"] if i["name"] == host_end["ifname"])
        assert h["ifindex"] == host_end["ifindex"] and h["master"] == br["ifindex"]
        c = next(i for i in ns["interfaces"] if i["name"] == topo.lab.name(f"c{x}"))
        assert h["peer"] == f"{ns['id']}/{c['ifindex']}"
        assert c["peer"] == f"{host['id']}/{h['ifindex']}"
        assert {"a": h["peer"], "b": c["peer"]} in doc["veth_pairs"] or {
            "a": c["peer"],
            "b": h["peer"],
        } in doc["veth_pairs"]
    # the same document through the model and the graph
    snap = snapshot_from_dict(doc)
    g = build_graph(snap)
    a = ns_by_name(doc, topo.ns["a"])
    br_key = f"{next(n for n in doc['namespaces'] if n['is_host'])['id']}/{br['ifindex']}"
    assert g.nodes[br_key]["type"] == "bridge"
    path = path_to_uplink(g, a["id"])
    if path is not None:  # a host without any uplink has no way out to show
        assert br_key in path


def test_filter_and_formats(topo: Topo) -> None:
    a = topo.ns["a"]
    res = netlens("--netns", a, "--pretty")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [n["names"] for n in doc["namespaces"]] == [[a]]
    assert len(doc["veth_pairs"]) == 1
    for fmt, needle in (("dot", f'"VRF {a}"'), ("mermaid", f"VRF {a}"), ("graphml", a)):
        out = netlens("--netns", a, "--format", fmt)
        assert out.returncode == 0, out.stderr
        assert needle in out.stdout
    bad = netlens("--netns", f"{topo.lab.prefix}zz")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stdout == ""


def test_two_dumps_diff_cleanly(topo: Topo) -> None:
    """Same host state -> same text, once the clock and counters are set aside."""

    def stable(text: str) -> dict[str, Any]:
        doc = json.loads(text)
        doc.pop("taken_at")
        doc["server"].pop("uptime_s")
        for ns in doc["namespaces"]:
            for i in ns["interfaces"]:
                i["counters"] = None
        return doc

    sel = ["--netns", topo.ns["a"], "--netns", topo.ns["b"]]
    one, two = netlens(*sel), netlens(*sel)
    assert one.returncode == two.returncode == 0
    a, b = stable(one.stdout), stable(two.stdout)
    assert a == b, _diff(a, b)


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON values differ (for a readable failure)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_output_file(topo: Topo, tmp_path: Path) -> None:
    out = tmp_path / "dump.json"
    res = netlens("--json", "--output", str(out), "--netns", topo.ns["b"])
    assert res.returncode == 0 and res.stdout == ""
    assert ns_by_name(json.loads(out.read_text()), topo.ns["b"])


def test_not_root_says_so_and_dumps_its_own_namespace(topo: Topo, nobody_site: str) -> None:
    """As nobody inside namespace a: one line about root, exit 0, namespace a dumped."""
    ns = topo.ns["a"]
    res = netlens(
        "--json", user=NOBODY, cwd="/tmp", prefix=["ip", "netns", "exec", ns], site=nobody_site
    )
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "not root" in lines[0] and "root" in lines[0].split("not root", 1)[1]
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["root"] is False
    ino = os.stat(f"/run/netns/{ns}").st_ino
    own = next(n for n in doc["namespaces"] if n["inode"] == ino)
    assert own["complete"] is True
    assert topo.lab.name("ca") in {i["name"] for i in own["interfaces"]}
    # what it cannot enter is at most listed as an unread stub (discovery's choice), never read
    for n in doc["namespaces"]:
        if topo.ns["b"] in n["names"]:
            assert n["complete"] is False and n["interfaces"] == []


def test_not_root_in_host_namespace(topo: Topo, nobody_site: str) -> None:
    res = netlens("--json", user=NOBODY, cwd="/tmp", site=nobody_site)
    assert res.returncode == 0, res.stderr
    assert len(res.stderr.splitlines()) == 1
    doc = json.loads(res.stdout)
    assert doc["root"] is False
    for n in doc["namespaces"]:
        if not set(n["names"]).isdisjoint(topo.ns.values()):
            assert n["complete"] is False and n["interfaces"] == []
    summary = [(n["name"], n["is_host"], n["complete"], n["errors"][:1]) for n in doc["namespaces"]]
    # its own (host) namespace is read; it may be marked incomplete when other tests
    # change host links during the dump (NLM_F_DUMP_INTR), but never refused
    own = [n for n in doc["namespaces"] if n["is_host"]]
    assert len(own) == 1 and own[0]["interfaces"], summary[:5]
    assert "Operation not permitted" not in own[0]["errors"]


def test_run_inside_a_namespace_the_host_is_still_the_host(topo: Topo) -> None:
    """``ip netns exec a netlens dump``: the namespace netlens runs in is ``a``, not
    the host. The host is init's namespace (kthreadd's where init hides itself, as
    this machine's does), with the host's links, and ``a`` keeps its own name."""
    res = netlens("--json", prefix=["ip", "netns", "exec", topo.ns["a"]])
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    (host,) = [n for n in doc["namespaces"] if n["is_host"]]
    assert host["inode"] == os.stat("/proc/self/ns/net").st_ino  # this test runs on the host
    assert topo.br in {i["name"] for i in host["interfaces"]}
    a = ns_by_name(doc, topo.ns["a"])
    assert not a["is_host"] and a["inode"] != host["inode"]


def test_sample_adds_rates_or_says_why_not(topo: Topo) -> None:
    """With the stats layer's sample_snapshot_rates: a schema-valid 'rates' object;
    without it (not built yet): one line and exit 2, never a traceback."""
    import importlib

    res = netlens("--json", "--sample", "0.2", "--netns", topo.ns["a"])
    try:
        has_live = hasattr(importlib.import_module("netlens.stats.live"), "sample_snapshot_rates")
    except ImportError:
        has_live = False
    if not has_live:
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr.count("\n") == 1 and "sample_snapshot_rates" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert isinstance(doc["rates"], dict)
