"""Veth pairing without root: link records and namespace-id tables as the kernel gives them.

The recorded lab (test_discovery_fixtures.py) pairs every veth right, but only
because its data is consistent; mutation testing showed that dropping the
back-pointer check or letting a namespace be its own candidate passed every
test. Here each rule of :func:`pair_veths` gets data that needs it: a peer index
that points elsewhere, a peer slot that is not a veth, an ifindex pair shared by
several containers, a candidate already taken, a namespace asked about itself.

Ids follow the kernel: IFLA_LINK is the peer's ifindex, IFLA_LINK_NETNSID the id
the *dumping* namespace gives the peer's namespace (absent: same namespace).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from netlens.discovery.builders import LinkRec
from netlens.discovery.nsfind import NsHandle
from netlens.discovery.resolve import NsData, NsidMap, pair_veths

pytestmark = pytest.mark.unit

HOST, A, B, C = 4026531840, 4026532001, 4026532002, 4026532003


class Nsids:
    """The nsid answers of a host: the host's own numbering, and per (asker, target)
    what a namespace calls another. Records every question asked."""

    def __init__(self, host: dict[int, int], table: dict[tuple[int, int], int]) -> None:
        self.host = host
        self.table = table
        self.asked: list[tuple[int, int]] = []
        self.calls = 0

    def host_nsids(self) -> dict[int, int]:
        return dict(self.host)

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        self.calls += 1
        self.asked += [(asker, t) for t in targets]
        return [self.table.get((asker, t)) for t in targets]


def veth(ifindex: int, link: int | None, nsid: int | None = None, kind: str = "veth") -> LinkRec:
    return LinkRec(ifindex, f"v{ifindex}", kind, 0x1003, link=link, link_netnsid=nsid)


def ns(inode: int, *links: LinkRec) -> NsData:
    handle = NsHandle(dev=4, inode=inode, path=f"/proc/{inode}/ns/net", is_host=inode == HOST)
    return NsData(handle, links=list(links), by_index={r.ifindex: r for r in links})


def pair(spaces: list[NsData], src: Nsids) -> dict[tuple[int, int], tuple[int, int] | None]:
    host = HOST if any(s.handle.inode == HOST for s in spaces) else None
    nsids = NsidMap(src, host, [s.handle.inode for s in spaces])  # type: ignore[arg-type]
    return pair_veths(spaces, nsids)


def test_host_end_pairs_only_when_the_peer_points_back() -> None:
    """The host calls A id 0. Host veth 10 says its peer is A's index 2; A's index 2
    is a veth whose peer is host index 11, not 10 (an index reused mid-walk)."""
    src = Nsids({A: 0}, {})
    got = pair([ns(HOST, veth(10, 2, 0), veth(11, 2, 0)), ns(A, veth(2, 11, 5))], src)
    assert got[(HOST, 10)] is None
    assert got[(HOST, 11)] == (A, 2) and got[(A, 2)] == (HOST, 11)


def test_host_end_whose_peer_slot_is_not_a_veth_is_unpaired() -> None:
    src = Nsids({A: 0}, {})
    got = pair([ns(HOST, veth(10, 2, 0)), ns(A, veth(2, 10, 5, kind="bridge"))], src)
    assert got == {(HOST, 10): None}


def test_host_end_with_an_unknown_nsid_or_no_peer_index_is_unpaired() -> None:
    src = Nsids({A: 0}, {})
    got = pair([ns(HOST, veth(10, 2, 7), veth(12, None)), ns(A, veth(3, 99, 5))], src)
    assert got == {(HOST, 10): None, (HOST, 12): None, (A, 3): None}
    assert src.asked == []  # A's end has no candidate: nobody is asked anything


def test_same_namespace_pair_needs_the_back_pointer_too() -> None:
    got = pair([ns(A, veth(5, 6), veth(6, 5), veth(7, 8), veth(8, 9))], Nsids({}, {}))
    assert got[(A, 5)] == (A, 6) and got[(A, 6)] == (A, 5)
    assert got[(A, 7)] is None  # 8 is a veth, but its peer is 9
    assert got[(A, 8)] is None  # 9 does not exist


def test_container_ends_with_the_same_index_pair_are_told_apart_by_their_nsid() -> None:
    """B, C and D-like namespaces all hold a veth 3 -> 2: the usual shape of many
    containers cabled to each other. B's end 2 -> 3 names its peer's namespace 7,
    which B gives to C, so it is C's end, not A's."""
    src = Nsids({}, {(B, C): 7, (B, A): 8, (C, B): 4, (A, B): 9})
    spaces = [ns(A, veth(3, 2, 1)), ns(B, veth(2, 3, 7)), ns(C, veth(3, 2, 4))]
    got = pair(spaces, src)
    assert got[(B, 2)] == (C, 3) and got[(C, 3)] == (B, 2)
    assert got[(A, 3)] is None
    assert (B, B) not in src.asked and (C, C) not in src.asked


def test_a_namespace_is_never_its_own_candidate() -> None:
    """A holds both 2 -> 3 (peer in B) and 3 -> 2 (peer in C): its own end 3 -> 2
    has the key A's end 2 -> 3 looks up. Asking A what it calls itself would cost
    a syscall and, where A numbers itself, could pair A with A."""
    src = Nsids(
        {},
        {(A, B): 1, (A, C): 2, (B, A): 5, (C, A): 6, (A, A): 1},  # A numbers itself 1 too
    )
    spaces = [ns(A, veth(2, 3, 1), veth(3, 2, 2)), ns(B, veth(3, 2, 5)), ns(C, veth(2, 3, 6))]
    got = pair(spaces, src)
    assert got == {(A, 2): (B, 3), (B, 3): (A, 2), (A, 3): (C, 2), (C, 2): (A, 3)}
    assert all(asker != target for asker, target in src.asked)


def test_a_candidate_already_paired_is_not_taken_again() -> None:
    """Host 10 <-> A 3 is confirmed from the host's numbering. B's end 2 -> 3 (a
    stale record: index 3 reused) names A too, but A's 3 is taken."""
    src = Nsids({A: 0, B: 1}, {(B, A): 4})
    spaces = [ns(HOST, veth(10, 3, 0)), ns(A, veth(3, 10, 9)), ns(B, veth(2, 3, 4))]
    got = pair(spaces, src)
    assert got[(HOST, 10)] == (A, 3) and got[(A, 3)] == (HOST, 10)
    assert got[(B, 2)] is None
    assert src.asked == []


def test_host_end_the_host_numbering_cannot_place_is_confirmed_from_the_other_side() -> None:
    """The host has no id for A (never asked, not assigned): its end stays open until
    A's end, which names the host, confirms the pair from A's side."""
    src = Nsids({}, {(A, HOST): 3})
    got = pair([ns(HOST, veth(10, 2, 0)), ns(A, veth(2, 10, 3))], src)
    assert got == {(A, 2): (HOST, 10), (HOST, 10): (A, 2)}
    assert src.asked == [(A, HOST)]


def test_each_asker_is_asked_once_for_all_its_candidates_and_no_question_twice() -> None:
    src = Nsids({}, {(A, B): 1, (A, C): 2, (B, A): 3, (C, A): 4})
    spaces = [
        ns(A, veth(2, 3, 1), veth(4, 5, 2)),
        ns(B, veth(3, 2, 3)),
        ns(C, veth(5, 4, 4)),
    ]
    got = pair(spaces, src)
    assert got[(A, 2)] == (B, 3) and got[(A, 4)] == (C, 5)
    assert src.calls == 3  # A once for B and C, then B, then C
    assert sorted(src.asked) == [(A, B), (A, C), (B, A), (C, A)]
