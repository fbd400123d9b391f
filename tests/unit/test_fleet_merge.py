"""The fleet document from per-server results: rows, totals, VXLAN links, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fleet_sim import sim_sample, sim_snapshot

from netlens.commands.fleet import format_table
from netlens.errors import UsageError
from netlens.fleet import protocol
from netlens.fleet.config import DEFAULT_COMMAND, HostSpec, hosts_from, load_fleet_file
from netlens.fleet.merge import ServerResult, fleet_document, schema_path

pytestmark = pytest.mark.unit

SCHEMA = json.loads(Path(schema_path()).read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def header(version: str = "0.1.0", host: str = "h") -> dict[str, Any]:
    return protocol.parse_header(protocol.line(protocol.header(version, host)))


def ok(alias: str, host: str, peer: str | None, rx: float, findings: int = 0) -> ServerResult:
    snap = sim_snapshot(host, peer, findings)
    return ServerResult(
        alias=alias,
        labels={"rack": alias[-1]},
        header=header(host=host),
        snapshot=snap,
        sample=sim_sample(snap, rx, rx / 2),
    )


def fleet() -> dict[str, Any]:
    return fleet_document(
        [
            ok("a1", "lab1", "lab2", 4e6, findings=2),
            ok("a2", "lab2", "lab1", 2e6),
            ServerResult("down", state="unreachable", reason="ConnectionRefusedError: refused"),
            ServerResult("slow", state="slow", reason="no the dump within 2 s", header=header()),
        ],
        "0.1.0",
        now=1000.0,
    )


def test_document_rows_and_totals() -> None:
    doc = fleet()
    VALIDATOR.validate(doc)
    assert doc["fleet_schema_version"] == "1.0"
    rows = {r["alias"]: r for r in doc["servers"]}
    assert [r["alias"] for r in doc["servers"]] == ["a1", "a2", "down", "slow"]
    a1 = rows["a1"]
    assert (a1["state"], a1["hostname"], a1["containers"], a1["namespaces"]) == ("ok", "lab1", 3, 5)
    assert a1["findings"] == {"total": 2, "by_severity": {"warning": 2}}
    assert a1["bandwidth"]["containers_rx_bps"] == 4e6
    assert a1["bandwidth"]["containers_tx_bps"] == 2e6
    assert a1["bandwidth"]["uplink_rx_bps"] == 8e6
    assert a1["bandwidth"]["uplink_capacity_bps"] == 10e9
    assert a1["memory"]["used"] == 1 << 30 and a1["cpu"]["containers_percent"] == 12.5
    assert {u["name"] for u in a1["uplinks"]} >= {"eth0"}
    assert a1["labels"] == {"rack": "1"}
    down = rows["down"]
    assert down["state"] == "unreachable" and "refused" in down["reason"]
    assert down["containers"] is None and down["bandwidth"] is None
    assert rows["slow"]["netlens_version"] == "0.1.0" and rows["slow"]["containers"] is None
    t = doc["totals"]
    assert t["servers"] == 4 and t["containers"] == 6 and t["findings"] == 2
    assert t["by_state"] == {"ok": 2, "slow": 1, "unreachable": 1}
    assert t["containers_rx_bps"] == 6e6


def test_namespaces_count_matches_the_dump() -> None:
    snap = sim_snapshot("lab1", None)
    row = fleet_document([ServerResult("x", snapshot=snap)], "0.1.0")["servers"][0]
    assert row["namespaces"] == len(snap.namespaces)


def test_symmetric_vxlan_link_between_two_servers() -> None:
    links = fleet()["vxlan_links"]
    assert len(links) == 1
    (link,) = links
    assert link["vni"] == 100 and link["symmetric"] is True
    assert {link["a"]["server"], link["b"]["server"]} == {"a1", "a2"}
    assert {link["a"]["remote"], link["b"]["remote"]} == {"192.0.2.10", "192.0.2.20"}


def test_one_way_tunnel_is_listed_as_such_and_strangers_are_not() -> None:
    # lab2 points at lab1, lab1 at an address outside the fleet: one way
    doc = fleet_document([ok("a1", "lab1", None, 1.0), ok("a2", "lab2", "lab1", 1.0)], "0.1.0")
    VALIDATOR.validate(doc)
    assert [(x["vni"], x["symmetric"]) for x in doc["vxlan_links"]] == [(100, False)]
    # neither points at the other: no link
    doc = fleet_document([ok("a1", "lab1", None, 1.0), ok("a3", "lab3", None, 1.0)], "0.1.0")
    assert doc["vxlan_links"] == []


def test_same_vni_elsewhere_is_not_a_link() -> None:
    """lab3 also has VNI 100, but towards lab1 only as its remote: lab1<->lab2 stays
    the only symmetric link, and lab3->lab1 is one way."""
    doc = fleet_document(
        [ok("a1", "lab1", "lab2", 1.0), ok("a2", "lab2", "lab1", 1.0), ok("a3", "lab3", "lab1", 1)],
        "0.1.0",
    )
    pairs = {
        (frozenset((x["a"]["server"], x["b"]["server"])), x["symmetric"])
        for x in doc["vxlan_links"]
    }
    assert pairs == {(frozenset({"a1", "a2"}), True), (frozenset({"a1", "a3"}), False)}


def test_schema_rejects_a_wrong_state_and_a_missing_row_key() -> None:
    doc = fleet()
    doc["servers"][0]["state"] = "fine"
    assert not VALIDATOR.is_valid(doc)
    doc = fleet()
    del doc["servers"][1]["bandwidth"]
    assert not VALIDATOR.is_valid(doc)


def test_table_names_every_server_and_the_reason() -> None:
    text = format_table(fleet())
    for word in ("a1", "a2", "down", "unreachable", "refused", "vxlan 100"):
        assert word in text
    assert "\x1b" not in format_table(
        fleet_document([ServerResult("evil\x1b[2J", state="error", reason="x\x1b]0;t")], "0.1.0")
    )


def test_header_parsing() -> None:
    assert header()["netlens_agent"] == protocol.PROTOCOL
    for bad, why in (
        ("Welcome to lab!", "not a netlens agent"),
        ("", "nothing"),
        ('{"x": 1}', "no protocol header"),
        ('{"netlens_agent": "1"}', "bad agent protocol"),
    ):
        with pytest.raises(protocol.ProtocolError, match=why):
            protocol.parse_header(bad)
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_sample('{"taken_at": 1}')


def test_sample_parsing_keeps_what_the_fleet_uses() -> None:
    snap = sim_snapshot("lab1", "lab2")
    full = sim_sample(snap, 4e6, 2e6)
    full["containers"] = {"c1": {"rx_bps": 1.0}}
    got = protocol.parse_sample(json.dumps(full).encode())
    assert got == {k: full[k] for k in ("server", "uplink_total", "density")}
    assert protocol.parse_sample('{"server": {"rx_bps": 1}}') == {"server": {"rx_bps": 1}}
    for bad, why in (
        ('{"taken_at": 1}', "not a netlens stats frame"),
        ('{"server": 3}', "not a netlens stats frame"),
        ("[1, 2]", "not a netlens stats frame"),
        ('{"server": {}, "density": "x"}', "not a netlens stats frame"),
        ('{"server": {', "not JSON"),
        ("", "not JSON"),
    ):
        with pytest.raises(protocol.ProtocolError, match=why):
            protocol.parse_sample(bad)


def test_fleet_file(tmp_path: Path) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text(
        "defaults: {user: ops, timeout: 5}\n"
        "hosts:\n"
        "  - lab1\n"
        "  - {alias: lab2, host: 10.0.0.2, port: 2222, key: ~/k, jump: bastion,\n"
        "     command: sudo netlens agent, labels: {rack: r1}}\n"
    )
    a, b = load_fleet_file(str(f))
    assert (a.alias, a.user, a.timeout, a.command, a.host) == (
        "lab1",
        "ops",
        5.0,
        DEFAULT_COMMAND,
        None,
    )
    assert (b.host, b.port, b.jump, b.command, b.labels) == (
        "10.0.0.2", 2222, "bastion", "sudo netlens agent", {"rack": "r1"},
    )  # fmt: skip
    assert b.key is not None and not b.key.startswith("~")
    both = hosts_from(["lab1", "lab9"], str(f), 2.0)
    assert [s.alias for s in both] == ["lab1", "lab2", "lab9"]
    assert {s.timeout for s in both} == {2.0}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hosts: lab1\n", "a 'hosts' list"),
        ("hosts: [{alias: a, prot: 22}]\n", "unknown key 'prot'"),
        ("hosts: [{alias: a, port: 70000}]\n", "out of range"),
        ("hosts: [{alias: a, port: x}]\n", "must be numbers"),
        ("hosts: [{user: u}]\n", "needs an 'alias'"),
        ("hosts: [a]\nextra: 1\n", "unknown key 'extra'"),
        ("hosts: [a\n", "not YAML"),
    ],
)
def test_fleet_file_mistakes_are_one_line(tmp_path: Path, text: str, why: str) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text(text)
    with pytest.raises(UsageError, match=why) as err:
        load_fleet_file(str(f))
    assert "\n" not in str(err.value)


def test_no_hosts_at_all() -> None:
    with pytest.raises(UsageError, match="no hosts"):
        hosts_from([], None, None)


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["fleet", "--tui", "--json", "h"], "--tui and --json contradict"),
        (["fleet", "--tui", "h"], "--tui needs a terminal"),
        (["fleet", "--tui", "--watch", "--count", "2", "h"], "--count goes with --watch's"),
    ],
)
def test_tui_flag_mistakes(argv: list[str], why: str, capsys: pytest.CaptureFixture[str]) -> None:
    from netlens.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1


class _Stream:
    """Stands in for an SSH channel's stdout: hands out the given chunks, then EOF."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_line_reader_joins_chunks_and_caps_a_line() -> None:
    import asyncio

    from netlens.fleet.client import LineReader

    async def lines(reader: LineReader) -> list[str | None]:
        return [await reader.readline() for _ in range(4)]

    got = asyncio.run(lines(LineReader(_Stream(b'{"a":', b'1}\n{"b"', b":2}\ntail"))))  # type: ignore[arg-type]
    assert got == ['{"a":1}', '{"b":2}', "tail", None]
    with pytest.raises(protocol.ProtocolError, match="longer than 8 bytes"):
        asyncio.run(lines(LineReader(_Stream(b"x" * 5, b"y" * 5, b"z" * 5), limit=8)))  # type: ignore[arg-type]


def test_loopback_check_matches_ipaddress() -> None:
    import ipaddress

    from netlens.fleet.facts import is_loopback

    for a in ("127.0.0.1", "127.255.3.4", "10.0.0.1", "1.27.0.0", "172.16.0.1", "::1",
              "fe80::1", "2001:db8::127", "::ffff:127.0.0.1", "0.0.0.0"):  # fmt: skip
        assert is_loopback(a) == ipaddress.ip_address(a).is_loopback, a


def test_aes_gcm_first_only_when_no_config_picks_ciphers(tmp_path: Path) -> None:
    from netlens.fleet import client

    plain = tmp_path / "plain"
    plain.write_text("Host lab1\n  HostName 127.0.0.1\n  Port 2222\n")
    picks = tmp_path / "picks"
    picks.write_text("Host *\n  Ciphers=aes256-ctr\n")
    includes = tmp_path / "includes"
    includes.write_text("Include ~/.ssh/more\nHost lab1\n  User ops\n")
    missing = str(tmp_path / "missing")
    assert not client._configures_ciphers([str(plain), missing])
    assert client._configures_ciphers([str(plain), str(picks)])
    assert client._configures_ciphers([str(includes)])
    assert client._cipher_preference((str(picks),)) is None
    assert client._cipher_preference((str(includes),)) is None
    got = client._cipher_preference((str(plain),))
    default = [a.decode() for a in client._asyncssh().encryption.get_default_encryption_algs()]
    if not client._has_aes_instructions():
        assert got is None
        return
    assert got is not None and sorted(got) == sorted(default)  # nothing added or dropped
    assert got[0].endswith("-gcm@openssh.com") and default[0] == "chacha20-poly1305@openssh.com"
    assert "encryption_algs" in client._connect_kwargs(HostSpec("lab1"), [str(plain)])
    assert "encryption_algs" not in client._connect_kwargs(HostSpec("lab1"), [str(picks)])


def test_ssh_config_lines_split_as_shlex_splits_them(tmp_path: Path) -> None:
    """asyncssh's config reader with the remembered splits reads a config as before:
    quoted values, '=' forms, and a broken line refused the same way, every time."""
    import asyncssh.config

    from netlens.fleet import client

    ssh = client._asyncssh()
    assert isinstance(asyncssh.config.shlex, client._MemoShlex)
    cfg = tmp_path / "cfg"
    cfg.write_text('Host lab1\n  HostName=10.0.0.1\n  User "ops team"\nHost *\n  Port 2222\n')
    for _ in range(2):  # the second read comes from the remembered splits
        o = ssh.SSHClientConnectionOptions(config=[str(cfg)], host="lab1")
        assert (o.host, o.port, o.username) == ("10.0.0.1", 2222, "ops team")
    assert client._MemoShlex().split("a 'b c' #d", comments=True) == ["a", "b c"]
    bad = tmp_path / "bad"
    bad.write_text('Host lab1\n  User "unclosed\n')
    for _ in range(2):
        with pytest.raises(ValueError, match="No closing quotation"):
            ssh.SSHClientConnectionOptions(config=[str(bad)], host="lab1")


def test_links_follow_a_changed_dump_though_remembered() -> None:
    a1 = ServerResult("a1", snapshot=sim_snapshot("lab1", "lab2"))
    a2 = ServerResult("a2", snapshot=sim_snapshot("lab2", "lab1"))
    first = fleet_document([a1, a2], "1")["vxlan_links"]
    assert [x["symmetric"] for x in first] == [True]
    assert fleet_document([a1, a2], "1")["vxlan_links"] == first  # the same dumps again
    moved = ServerResult("a2", snapshot=sim_snapshot("lab2", None))  # reconnected, new dump
    assert [x["symmetric"] for x in fleet_document([a1, moved], "1")["vxlan_links"]] == [False]
    down = ServerResult("a2", state="unreachable")
    assert fleet_document([a1, down], "1")["vxlan_links"] == []
    assert fleet_document([a1, a2], "1")["vxlan_links"] == first


def test_a_fault_of_the_client_is_a_row_and_the_server_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from netlens.fleet import watch

    calls: list[str] = []

    async def broken(spec: HostSpec, *args: Any, **kwargs: Any) -> ServerResult:
        calls.append(spec.alias)
        raise RuntimeError("boom\nmore")

    monkeypatch.setattr(watch, "query_host", broken)
    results: dict[str, ServerResult] = {}

    async def run() -> None:
        seen = asyncio.Event()
        task = asyncio.create_task(
            watch.watch_host(HostSpec("h1", labels={"r": "1"}), "1", 1.0, None, results,
                             first_wait=0.01, changed=lambda alias: seen.set())
        )  # fmt: skip
        while len(calls) < 2:  # it went on after the fault
            await asyncio.wait_for(seen.wait(), 60)
            seen.clear()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    r = results["h1"]
    assert (r.state, r.labels) == ("error", {"r": "1"})
    assert r.reason is not None and r.reason.startswith("RuntimeError: boom; retrying in")
