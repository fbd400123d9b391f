"""``netlens ps``: filters, the stable JSON shape and the table, from state records."""

from __future__ import annotations

from typing import Any

import pytest

from netlens.cli import main
from netlens_runtime import ps
from netlens_runtime.errors import BadInput

pytestmark = pytest.mark.unit

NETS = {"lan": {"name": "lan", "subnet": "10.9.0.0/24"}}


def _rec(name: str, state: str = "running", **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "name": name,
        "id": "ab" * 32,
        "pid": 4242,
        "state": state,
        "network": "lan",
        "ip": "10.9.0.5",
        "rootfs": None,
        "command": ["sleep", "infinity"],
        "labels": {},
        "created": "2024-05-01T10:00:00.000Z",
        "publish": [],
        "links": [],
        "cgroup": "/netlens/x",  # implementation detail: never in the stable view
    }
    rec.update(kw)
    return rec


def _names(recs: list[dict[str, Any]], show_all: bool, *specs: str) -> list[str]:
    return [o["name"] for _, o in ps.select_records(recs, NETS, show_all, ps.Filters(specs))]


def test_view_has_exactly_the_documented_keys() -> None:
    rec = _rec(
        "web",
        publish=[{"host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp"}],
        links=[{"ifname": "p0", "peer": "db", "peer_ifname": "p0", "addr": "10.99.0.1/30"}],
        labels={"role": "web"},
    )
    obj = ps.view(rec, NETS)
    assert list(obj) == [
        "name", "id", "state", "pid", "networks", "addresses", "ports", "rootfs", "view",
        "command", "created", "labels", "privileged", "security",
    ]  # fmt: skip
    assert obj["security"] == "unconfined"  # a record from before seccomp had no filter
    assert ps.view({**rec, "seccomp": "default"}, NETS)["security"] == "default"
    assert ps.view({**rec, "seccomp": "/p.json"}, NETS)["security"] == "profile"
    assert ps.view({**rec, "privileged": True}, NETS)["security"] == "privileged"
    assert obj["view"] == "full"  # a record from before host views had the whole host root
    assert ps.view({**rec, "host_view": "tools"}, NETS)["view"] == "tools"
    assert ps.view({**rec, "rootfs": "/srv/r", "host_view": "tools"}, NETS)["view"] == "rootfs"
    assert obj["addresses"] == ["10.9.0.5/24", "10.99.0.1/30"]
    assert obj["networks"] == ["lan"] and obj["pid"] == 4242 and obj["privileged"] is False
    assert obj["ports"] == [{"host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp"}]
    # A stopped container's pid is stale: never shown as if it were alive.
    assert ps.view(_rec("old", state="exited"), NETS)["pid"] is None
    # No network: no address from it, an empty list of networks.
    bare = ps.view(_rec("bare", network=None, ip=None), NETS)
    assert bare["networks"] == [] and bare["addresses"] == []
    # A record edited by hand into odd shapes still lists, with empty fields.
    odd = ps.view(_rec("odd", labels=["x"], command="sleep", publish=None, links=None), NETS)
    assert (odd["labels"], odd["command"], odd["ports"]) == ({}, [], [])


def test_default_lists_running_all_lists_every_state() -> None:
    recs = [_rec("a"), _rec("b", state="exited")]
    assert _names(recs, False) == ["a"]
    assert _names(recs, True) == ["a", "b"]
    # A status filter decides the states by itself, as in Docker (-a implied).
    assert _names(recs, False, "status=exited") == ["b"]
    assert _names(recs, False, "status=running", "status=exited") == ["a", "b"]
    assert _names(recs, True, "status=paused") == []


def test_filters_by_label_name_and_network() -> None:
    recs = [
        _rec("web1", labels={"role": "web", "tier": "front"}),
        _rec("web2", labels={"role": "web"}),
        _rec("db1", labels={"role": "db", "tier": "back"}, network="back"),
        _rec("plain"),
    ]
    assert _names(recs, False, "label=role=web") == ["web1", "web2"]
    assert _names(recs, False, "label=tier") == ["web1", "db1"]  # key present, any value
    # Several labels: all must match; several names: any may.
    assert _names(recs, False, "label=role=web", "label=tier=front") == ["web1"]
    assert _names(recs, False, "name=web") == ["web1", "web2"]
    assert _names(recs, False, "name=web2", "name=db") == ["web2", "db1"]
    assert _names(recs, False, "network=back") == ["db1"]
    # Different keys: all must match.
    assert _names(recs, False, "network=lan", "label=role=web") == ["web1", "web2"]
    # A label value with '=' in it is compared whole.
    assert _names([_rec("eq", labels={"k": "a=b"})], False, "label=k=a=b") == ["eq"]


@pytest.mark.parametrize(
    "spec", ["label", "label=", "colour=red", "status=sleeping", "=x", "name="]
)
def test_bad_filter_is_bad_input(spec: str) -> None:
    with pytest.raises(BadInput) as exc:
        ps.Filters([spec])
    assert "--filter" in str(exc.value) and "\n" not in str(exc.value)


def test_table_has_header_ports_and_short_command() -> None:
    long_cmd = ["sh", "-c", "x" * 80]
    rec = _rec(
        "web",
        command=long_cmd,
        publish=[{"host_ip": "127.0.0.1", "host_port": 8080, "port": 80, "proto": "tcp"}],
    )
    rows = ps.table_rows([ps.view(rec, NETS)])
    assert rows[0] == ps.TABLE_HEAD
    row = dict(zip(ps.TABLE_HEAD, rows[1], strict=True))
    assert row["PORTS"] == "127.0.0.1:8080->80/tcp" and row["IP"] == "10.9.0.5"
    assert row["ID"] == "ab" * 6 and len(row["COMMAND"]) == 40 and row["COMMAND"].endswith("…")


@pytest.mark.parametrize("argv", [["rm"], ["rm", "-f"], ["stop"]])
def test_rm_and_stop_without_names_say_so_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``netlens rm -f $(netlens ps -q)`` when nothing runs: one line, exit 2, touches nothing."""
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "requires at least 1 container name" in err


def test_ps_without_root_says_what_it_reads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("NETLENS_NO_LOG", "1")
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    assert main(["ps"]) == 77
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert str(tmp_path) in err and "creates" not in err and "root" in err
    # A bad filter is a usage error, said before the root check.
    assert main(["ps", "--filter", "colour=red"]) == 2
