"""Host forwarding (``net.ipv4.ip_forward``): a NAT network turns it on, the last one
puts back what netlens found (``network rm``, or ``netlens gc`` after a kill).

Other engineers' tests may need forwarding on while these run, so each test
forces the host value only for the few milliseconds between its first write and
its last read, and writes the original value back in ``finally``; the
assertions come after that. Each test has its own state directory and network
names ``nq`` + the run tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUN_TAG, is_root
from runtime_host import teardown_state

pytestmark = pytest.mark.integration

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NET = f"nq{RUN_TAG}f"


@pytest.fixture
def fwd_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state dir; the host's ip_forward and everything made are put back."""
    if not is_root():
        pytest.skip("needs root")
    sdir = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(sdir))
    original = IP_FORWARD.read_text()
    try:
        yield sdir
    finally:
        left = teardown_state(sdir)
        IP_FORWARD.write_text(original)
    assert not left, left


def _create() -> None:
    """A NAT network on a subnet IPAM finds free (a fixed one may meet another
    engineer's lab routes)."""
    from netlens_runtime import api

    api.create_network(api.NetworkSpec(name=NET, nat=True))


def test_nat_network_turns_forwarding_on_and_the_last_one_puts_it_back(
    fwd_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netlens_runtime import api, nat

    # The record and restore logic alone: a host running Docker (or another
    # engineer's NAT lab) would make it keep forwarding on, tested below.
    monkeypatch.setattr(nat, "other_nat_users", lambda: [])
    original = IP_FORWARD.read_text()
    try:
        IP_FORWARD.write_text("0")
        _create()
        while_up = IP_FORWARD.read_text().strip()
        recorded = (fwd_state / "ip_forward.json").is_file()
        api.remove_network(NET)
        after = IP_FORWARD.read_text().strip()
    finally:
        IP_FORWARD.write_text(original)
    assert (while_up, recorded) == ("1", True)
    assert after == "0"
    assert not (fwd_state / "ip_forward.json").exists()


def test_forwarding_already_on_is_left_on(fwd_state: Path) -> None:
    from netlens_runtime import api

    original = IP_FORWARD.read_text()
    try:
        IP_FORWARD.write_text("1")
        _create()
        recorded = (fwd_state / "ip_forward.json").exists()
        api.remove_network(NET)
        after = IP_FORWARD.read_text().strip()
    finally:
        IP_FORWARD.write_text(original)
    assert not recorded
    assert after == "1"


def test_gc_puts_forwarding_back_after_a_killed_network_rm(
    fwd_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``network rm`` killed after the record went but before forwarding was put back:
    the state still says netlens turned it on, so ``gc`` restores it."""
    from netlens_runtime import api, nat

    original = IP_FORWARD.read_text()
    try:
        IP_FORWARD.write_text("0")
        _create()
        with monkeypatch.context() as m:
            m.setattr(nat, "release_forwarding", lambda networks: False)  # the kill
            api.remove_network(NET)
        stuck = IP_FORWARD.read_text().strip()
        removed = api.gc()
        after = IP_FORWARD.read_text().strip()
    finally:
        IP_FORWARD.write_text(original)
    assert stuck == "1"
    assert after == "0"
    assert any("ip_forward" in item for item in removed), removed


def test_forwarding_stays_on_while_someone_else_translates(fwd_state: Path) -> None:
    """A masquerade rule outside our table (Docker's, say) keeps forwarding on."""
    from conftest import sh

    from netlens_runtime import api, nat

    other = f"nq{RUN_TAG}other"
    original = IP_FORWARD.read_text()
    try:
        sh(
            f"nft 'add table ip {other}; add chain ip {other} post "
            f"{{ type nat hook postrouting priority 100; }}; "
            f"add rule ip {other} post ip saddr 198.18.251.0/24 masquerade'"
        )
        found = nat.other_nat_users()
        IP_FORWARD.write_text("0")
        _create()
        api.remove_network(NET)
        after = IP_FORWARD.read_text().strip()
    finally:
        IP_FORWARD.write_text(original)
        sh(f"nft delete table ip {other}", check=False)
    assert any(other in line for line in found), found
    assert after == "1"
    assert not (fwd_state / "ip_forward.json").exists()
