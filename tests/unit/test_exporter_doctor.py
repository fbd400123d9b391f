"""The exporter's doctor hook: counts by severity, never run on the sampler's thread."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from fixtures.model.sample import sample_snapshot

from netlens.analysis.doctor import diagnose
from netlens.analysis.findings import Report
from netlens.exporter.doctor import DoctorCounts
from netlens.exporter.hostmetrics import ExporterState, host_extras
from netlens.model.types import Snapshot

pytestmark = pytest.mark.unit


def offline(snap: Snapshot) -> Report:
    return diagnose(snap, None)


def test_counts_come_from_a_thread_and_are_reused_until_the_structure_changes() -> None:
    calls: list[threading.Thread] = []

    def run(snap: Snapshot) -> Report:
        calls.append(threading.current_thread())
        return offline(snap)

    hook = DoctorCounts(run, every=3600)
    snap = sample_snapshot()
    assert hook(snap) is None  # nothing finished yet: no family rather than zeros
    assert hook.wait(30)
    want = offline(snap).counts()
    assert want["warning"] >= 1  # the sample's br0 ports disagree on MTU
    assert hook(snap) == want
    assert hook.runs == 1 and calls[0] is not threading.current_thread()
    assert hook.wait(30) and hook.runs == 1  # same structure: no second run
    clean = dataclasses.replace(snap, namespaces=snap.namespaces[:1])
    hook(clean)  # a new structure: a new run, the old counts meanwhile
    assert hook.wait(30) and hook.runs == 2


def test_a_slow_run_never_blocks_the_sampler_and_a_failed_one_keeps_the_counts() -> None:
    gate = threading.Event()
    fail = threading.Event()

    def run(snap: Snapshot) -> Report:
        gate.wait(30)
        if fail.is_set():
            raise RuntimeError("boom")
        return offline(snap)

    hook = DoctorCounts(run, every=0)  # due on every call
    snap = sample_snapshot()
    assert hook(snap) is None  # returns while the run waits at the gate
    assert hook(snap) is None  # a run in progress is not started twice
    gate.set()
    assert hook.wait(30)
    first = hook(snap)  # due again (every=0): starts the next run, answers the last counts
    assert first == offline(snap).counts() and first["warning"] >= 1
    assert hook.wait(30)
    fail.set()
    hook(snap)
    assert hook.wait(30)
    assert hook.failures == 1 and hook(snap) == first


def test_no_count_yet_means_no_family() -> None:
    snap = sample_snapshot()
    state = ExporterState(version="t")
    got = host_extras(None, state, snap, findings=lambda s: None)
    assert not any("doctor" in e.name for e in got)
