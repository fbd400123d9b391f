"""Which network owns each bridge, read from each engine's own state files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.identity import docker_kv as kv

from netlens.discovery.engines import cni, docker, netlens_rt, podman
from netlens.discovery.engines._bolt import BoltFile
from netlens.discovery.networks import bridge_networks

pytestmark = pytest.mark.unit

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "identity"
ID_DEFAULT = "9f" * 32
ID_BACKEND = "3f2a1c9e8d7b" + "a" * 52
ID_NAMED = "77" * 32
ID_ORPHAN = "c0ffee" + "0" * 58
ID_MACVLAN = "ab" * 32
DEFAULT_OPTS = {
    "com.docker.network.bridge.name": "docker0",
    "com.docker.network.bridge.default_bridge": "true",
}


def _docker_root(tmp: Path, entries: dict[bytes, bytes]) -> str:
    path = tmp / "docker" / "network" / "files" / "local-kv.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(kv.bolt_file(docker.KV_BUCKET, entries))
    return str(tmp / "docker")


def test_writer_makes_a_file_the_bolt_reader_walks() -> None:
    entries = {kv.key("network", f"{i:064x}"): kv.kv_value({"n": i}) for i in range(300)}
    db = BoltFile(kv.bolt_file(b"libnetwork", entries))
    assert {k for k, _v, _b in db.bucket(b"libnetwork")} == set(entries)


def test_docker_networks_from_the_network_store(tmp_path: Path) -> None:
    entries = {
        # the default network: bridge named by an option and by the driver's record
        kv.key("network", ID_DEFAULT): kv.kv_value(
            kv.network(ID_DEFAULT, "bridge", **DEFAULT_OPTS)
        ),
        kv.key("bridge", ID_DEFAULT): kv.kv_value(kv.bridge_config(ID_DEFAULT, "docker0")),
        # a user network: br-<12 hex> from the driver's record
        kv.key("network", ID_BACKEND): kv.kv_value(kv.network(ID_BACKEND, "backend")),
        kv.key("bridge", ID_BACKEND): kv.kv_value(
            kv.bridge_config(ID_BACKEND, f"br-{ID_BACKEND[:12]}")
        ),
        # named by -o com.docker.network.bridge.name only (no driver record yet)
        kv.key("network", ID_NAMED): kv.kv_value(
            kv.network(ID_NAMED, "named", **{"com.docker.network.bridge.name": "mybr0"})
        ),
        # no driver record, no option: Docker's naming rule
        kv.key("network", ID_ORPHAN): kv.kv_value(kv.network(ID_ORPHAN, "orphan")),
        # other drivers own no bridge; an endpoint and a torn value are skipped
        kv.key("network", ID_MACVLAN): kv.kv_value(kv.network(ID_MACVLAN, "mv", "macvlan")),
        kv.key("network", "11" * 32): kv.kv_value(kv.network("11" * 32, "host", "host")),
        kv.key("endpoint", ID_BACKEND, "ee" * 32): kv.kv_value({"name": "web", "id": "ee"}),
        kv.key("network", "22" * 32): b"\x07\0\0\0\0\0\0\0{torn",
    }
    got = docker.bridge_networks(_docker_root(tmp_path, entries))
    assert got == {
        "docker0": "bridge",
        f"br-{ID_BACKEND[:12]}": "backend",
        "mybr0": "named",
        f"br-{ID_ORPHAN[:12]}": "orphan",
    }


def test_docker_networks_from_a_recorded_store(tmp_path: Path) -> None:
    """docker-network/local-kv.db.gz: dockerd 20.10 (Debian) started with
    ``--bridge=nibadbdk``, one container on the default network and a user network
    ``nibadbnet`` (recorded by the Docker engine test with NETLENS_RECORD_DIR)."""
    import gzip

    path = tmp_path / "docker" / "network" / "files" / "local-kv.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.decompress((FIX / "docker-network" / "local-kv.db.gz").read_bytes()))
    got = docker.bridge_networks(str(tmp_path / "docker"))
    assert got == {"nibadbdk": "bridge", "br-f3258c6e2c23": "nibadbnet"}


def test_docker_without_a_readable_store_names_nothing(tmp_path: Path) -> None:
    assert docker.bridge_networks(str(tmp_path / "nothing")) == {}
    path = tmp_path / "docker" / "network" / "files" / "local-kv.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * 8192)  # not a bbolt file
    assert docker.bridge_networks(str(tmp_path / "docker")) == {}


def test_podman_networks_from_recorded_netavark_files(tmp_path: Path) -> None:
    """podman-networks/habitsnet.json was written by Debian's podman 4.3 (netavark)."""
    recorded = json.loads((FIX / "podman-networks" / "habitsnet.json").read_text())
    assert recorded["network_interface"] == "podman1"
    extra = tmp_path / "nets"
    extra.mkdir()
    (extra / "mv.json").write_text(json.dumps(
        {"name": "mv", "driver": "macvlan", "network_interface": "eth0"}
    ))  # fmt: skip
    (extra / "broken.json").write_text("{")
    got = podman.bridge_networks([str(FIX / "podman-networks"), str(extra)])
    # podman0 is the built-in default network's, which has no file.
    assert got == {"podman1": "habitsnet", "podman0": "podman"}
    (extra / "podman.json").write_text(json.dumps(
        {"name": "podman", "driver": "bridge", "network_interface": "podman9"}
    ))  # fmt: skip
    assert podman.bridge_networks([str(extra)]) == {"podman9": "podman", "podman0": "podman"}


def test_cni_conflists_name_their_bridges(tmp_path: Path) -> None:
    (tmp_path / "87-podman-bridge.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "podman",
        "plugins": [{"type": "bridge", "bridge": "cni-podman0"}, {"type": "portmap"}],
    }))  # fmt: skip
    (tmp_path / "10-k8s.conf").write_text(json.dumps({"name": "k8s", "type": "bridge"}))
    (tmp_path / "99-vlan.conflist").write_text(json.dumps(
        {"name": "v", "plugins": [{"type": "macvlan", "master": "eth0"}]}
    ))  # fmt: skip
    (tmp_path / "bad.conflist").write_text("not json")
    assert cni.bridge_networks(str(tmp_path)) == {"cni-podman0": "podman", "cni0": "k8s"}


def test_netlens_runtime_networks(tmp_path: Path) -> None:
    nets = tmp_path / "networks"
    nets.mkdir()
    (nets / "demo-lan.json").write_text(json.dumps({"name": "demo-lan", "bridge": "nlb827cbd6c2a"}))
    (nets / "half.json").write_text("")
    assert netlens_rt.bridge_networks(str(tmp_path)) == {"nlb827cbd6c2a": "demo-lan"}
    assert netlens_rt.bridge_networks(str(tmp_path / "none")) == {}


def test_merged_first_engine_wins(tmp_path: Path) -> None:
    (tmp_path / "state" / "networks").mkdir(parents=True)
    (tmp_path / "state" / "networks" / "lan.json").write_text(
        json.dumps({"name": "lan", "bridge": "docker0"})  # a clash made on purpose
    )
    entries = {
        kv.key("network", ID_DEFAULT): kv.kv_value(kv.network(ID_DEFAULT, "bridge")),
        kv.key("bridge", ID_DEFAULT): kv.kv_value(kv.bridge_config(ID_DEFAULT, "docker0")),
        kv.key("network", ID_BACKEND): kv.kv_value(kv.network(ID_BACKEND, "backend")),
    }
    got = bridge_networks(
        netlens_state_dir=str(tmp_path / "state"),
        docker_root=_docker_root(tmp_path, entries),
        podman_dirs=[str(FIX / "podman-networks")],
        cni_dir=str(tmp_path / "no-cni"),
    )
    assert got == {
        "docker0": "lan",
        f"br-{ID_BACKEND[:12]}": "backend",
        "podman1": "habitsnet",
        "podman0": "podman",
    }


def test_discovery_sets_network_on_host_bridges_only() -> None:
    """On the recorded lab host: the named bridge gets its network; a veth of the
    same table, and any link in another namespace, never does."""
    from conftest import DISCOVERY_FIXTURES

    from netlens.discovery.nsfind import find_namespaces
    from netlens.discovery.resolve import build_snapshot
    from netlens.discovery.sources import FixtureNetlink, FixtureProc

    root = DISCOVERY_FIXTURES / "lab"
    handles = find_namespaces(str(root / "proc"))
    inner = {i.name for ns in build_snapshot(handles, FixtureNetlink(root), FixtureProc(root))
             .namespaces if not ns.is_host for i in ns.interfaces}  # fmt: skip
    owners = {"ndfbr": "lab-lan", "ndfha": "not-a-bridge"} | {n: "inner" for n in inner}
    snap = build_snapshot(handles, FixtureNetlink(root), FixtureProc(root), networks=owners)
    host = snap.host
    assert host is not None
    named = {i.name: i.network for i in host.interfaces if i.network}
    assert named == {"ndfbr": "lab-lan"}
    assert all(i.network is None for ns in snap.namespaces if not ns.is_host for i in ns.interfaces)
    br = host.by_name("ndfbr")
    assert br is not None and br.display_name == "lab-lan (ndfbr)"
