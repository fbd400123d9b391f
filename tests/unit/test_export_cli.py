"""`netlens dump` on a saved dump (--input): filters, formats, --output, errors.

Runs without root: the snapshot comes from tests/fixtures/model/snapshot.json.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.model.sample import DB, HOST, RT, WEB, sample_snapshot

from netlens.cli import main
from netlens.commands.dump import filter_snapshot, with_findings, write_atomic
from netlens.errors import NetlensError, UsageError
from netlens.model.serialize import dumps, loads

pytestmark = pytest.mark.unit
SNAP = str(Path(__file__).resolve().parent.parent / "fixtures" / "model" / "snapshot.json")


@pytest.fixture(autouse=True)
def _no_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETLENS_NO_LOG", "1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["dump", "--input", SNAP, *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_is_the_default_and_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys)
    assert rc == 0 and err == ""
    # a dump re-rendered from a file carries the doctor's findings on that snapshot
    checked = with_findings(sample_snapshot())
    assert checked.findings and out == dumps(checked) + "\n"
    rc2, out2, _ = run(capsys, "--json", "--pretty")
    assert rc2 == 0 and loads(out2) == checked and out2.count("\n") > 100


@pytest.mark.parametrize(
    ("sel", "kept"),
    [
        (["--netns", "web"], [WEB]),
        (["--netns", "rt1", "--netns", "4026532400"], [DB, RT]),
        (["--netns", "host"], [HOST]),
        (["--netns", "nl-db"], [DB]),
        (["--netns", WEB], [WEB]),
        (["--container", "db"], [DB]),
        (["--container", "1f2e3d"], [WEB]),
        (["--container", "docker:1f2e3d4c5b6a7980", "--netns", "rt1"], [WEB, RT]),
    ],
)
def test_filters(capsys: pytest.CaptureFixture[str], sel: list[str], kept: list[str]) -> None:
    rc, out, _ = run(capsys, *sel)
    assert rc == 0
    doc = json.loads(out)
    assert [ns["id"] for ns in doc["namespaces"]] == kept
    assert all(c["netns"] in kept for c in doc["containers"])
    for p in doc["veth_pairs"]:
        ends = {p["a"].rsplit("/", 1)[0], (p["b"] or "").rsplit("/", 1)[0]}
        assert ends & set(kept)


def test_filter_keeps_the_containers_and_cables_of_the_selection() -> None:
    snap = filter_snapshot(sample_snapshot(), ["web"], [])
    assert [c.id for c in snap.containers] == ["docker:1f2e3d4c5b6a7980"]
    assert [(p.a.key, p.b.key if p.b else None) for p in snap.veth_pairs] == [
        (f"{HOST}/10", f"{WEB}/2")
    ]
    assert snap.server == sample_snapshot().server and snap.warnings == sample_snapshot().warnings


@pytest.mark.parametrize(
    ("sel", "needle"),
    [
        (["--netns", "nope"], "no namespace matches 'nope'"),
        (["--container", "ghost"], "no container matches 'ghost'"),
        (["--container", "1f2"], "no container matches '1f2'"),  # prefix too short
    ],
)
def test_unknown_selection_exits_2(
    capsys: pytest.CaptureFixture[str], sel: list[str], needle: str
) -> None:
    rc, out, err = run(capsys, *sel)
    assert rc == 2 and out == ""
    assert needle in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("fmt", "head"),
    [
        ("dot", 'graph "netlens lab1" {'),
        ("mermaid", "flowchart LR"),
        ("graphml", "<graphml "),
    ],
)
def test_formats(capsys: pytest.CaptureFixture[str], fmt: str, head: str) -> None:
    rc, out, _ = run(capsys, "--format", fmt)
    assert rc == 0 and out.startswith(head)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--format", "dot", "--pretty"], "--pretty applies to JSON output only"),
        (["--sample", "1"], "cannot go with --input"),
        (["--sample", "0"], "positive number of seconds"),
        (["--sample", "nan"], "positive number of seconds"),
        (["--format", "dot", "--sample", "1"], "JSON output only"),
        (["--json", "--format", "mermaid"], "contradict"),
    ],
)
def test_bad_flag_combinations(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and needle in err and err.count("\n") == 1


def test_bad_input_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"schema_version": "9.0"}')
    rc = main(["dump", "--input", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "schema version 9.0" in err and err.count("\n") == 1


def test_output_is_atomic_and_keeps_mode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "snap.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    rc, out, _ = run(capsys, "--output", str(target))
    assert rc == 0 and out == ""
    assert loads(target.read_text()) == with_findings(sample_snapshot())
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json"]  # no temp left


def test_output_new_file_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(str(tmp_path / "n.txt"), "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "n.txt").stat().st_mode) == 0o640


def test_output_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(str(link), "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_output_to_a_device_writes_in_place() -> None:
    before = os.stat("/dev/null")
    write_atomic("/dev/null", "x")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_output_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(NetlensError, match=r"cannot write .*missing/x\.json"):
        write_atomic(str(tmp_path / "missing" / "x.json"), "x")


def test_filter_error_type() -> None:
    with pytest.raises(UsageError):
        filter_snapshot(sample_snapshot(), [], ["nobody"])


def test_sample_without_stats_live_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """--sample looks the stats function up lazily; a build without it fails cleanly."""
    from netlens.commands import dump

    monkeypatch.setitem(sys.modules, "netlens.stats.live", None)  # import raises ImportError
    with pytest.raises(UsageError, match="sample_snapshot_rates"):
        dump._sample(sample_snapshot(), 0.1)


def test_sample_rates_go_under_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from netlens.commands import dump
    from netlens.stats.types import Rate

    fake = types.ModuleType("netlens.stats.live")
    fake.sample_snapshot_rates = lambda snap, s: {"interfaces": {f"{WEB}/2": Rate(8.0, 16.0)}}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "netlens.stats.live", fake)
    rates = dump._sample(sample_snapshot(), 0.5)
    doc = json.loads(dump.render(sample_snapshot(), "json", False, rates))
    assert doc["rates"]["interfaces"][f"{WEB}/2"]["tx_bps"] == 16.0
    assert loads(json.dumps(doc)) == sample_snapshot()


def test_subprocess_help_and_exit_codes() -> None:
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "dump", "--input", SNAP, "--netns", "x"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 2 and res.stderr.startswith("netlens: no namespace matches")
    assert "Traceback" not in res.stderr


def test_dump_restores_the_collector(capsys: pytest.CaptureFixture[str]) -> None:
    """dump turns the cyclic collector off while it runs (see dump.run) and back
    on afterwards, with nothing left in the permanent generation; an error exit
    restores it too."""
    import gc

    assert gc.isenabled()
    rc, _out, _err = run(capsys)
    assert rc == 0 and gc.isenabled() and gc.get_freeze_count() == 0
    assert main(["dump", "--input", "/nonexistent/nm.json"]) != 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()  # a caller that had it off keeps it off
    try:
        rc, _out, _err = run(capsys)
        assert rc == 0 and not gc.isenabled()
    finally:
        gc.enable()


# -- findings (schema 1.3) --------------------------------------------------------------
def test_findings_of_a_filtered_dump_come_from_the_whole_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """br0's MTU finding names only host interfaces: a dump of web alone leaves it out,
    a dump of the host keeps it, and the checks always ran on the whole host."""
    whole = with_findings(sample_snapshot())
    mtu = [f for f in whole.findings if f.check == "mtu-mismatch"]
    assert mtu and all(o.netns == HOST for f in mtu for o in f.objects)
    rc, out, _ = run(capsys, "--netns", "web")
    assert rc == 0
    web = loads(out)
    assert not any(f.check == "mtu-mismatch" for f in web.findings)
    assert all(any(o.netns == WEB for o in f.objects) for f in web.findings)
    assert web.skipped == whole.skipped
    rc, out, _ = run(capsys, "--netns", "host")
    assert [f for f in loads(out).findings if f.check == "mtu-mismatch"] == mtu


def test_no_findings_leaves_a_marker(capsys: pytest.CaptureFixture[str]) -> None:
    from netlens.analysis.doctor import NOT_CHECKED, recorded

    rc, out, _ = run(capsys, "--no-findings")
    snap = loads(out)
    assert rc == 0 and snap.findings == ()
    assert [s.check for s in snap.skipped] == [NOT_CHECKED]
    assert recorded(snap) is None  # a view re-checks it instead of calling it clean


def test_a_dumps_recorded_findings_are_what_a_view_shows() -> None:
    """report_for on a saved dump: its recorded findings as they are (even one the
    checks would not find today), the snapshot checks for a dump older than 1.3."""
    import dataclasses

    from netlens.analysis.doctor import diagnose, recorded, report_for
    from netlens.model.findings import Finding, ObjectRef, Severity

    odd = Finding("hand-made", Severity.INFO, "x", (ObjectRef("netns", HOST, "host"),), ())
    saved = dataclasses.replace(with_findings(sample_snapshot()), findings=(odd,))
    assert report_for(saved, live=False).findings == (odd,)
    alone = dataclasses.replace(saved, skipped=())  # findings without skipped: still recorded
    rec = recorded(alone)
    assert rec is not None and rec.findings == (odd,)
    old = sample_snapshot()  # as a 1.2 dump reads: no findings, no skipped
    assert recorded(old) is None
    assert report_for(old, live=False).findings == diagnose(old, None).findings != ()
