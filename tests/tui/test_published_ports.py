"""Published ports in the dashboard: read from the host's DNAT rules, whichever engine
made them, on the container whose address they point at (issue 18: `ps` had them, the
Containers view and the container detail did not)."""

from __future__ import annotations

import dataclasses

from netlens.model.types import NatRule
from netlens.tui.index import ViewIndex, published_ports

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import fixture_source


def _rule(**kw: str) -> NatRule:
    base = dict(source="nftables", family="ip", table="nat", chain="prerouting",
                hook="prerouting", action="dnat", proto="tcp")  # fmt: skip
    return NatRule(**{**base, **kw})  # type: ignore[arg-type]


def test_ports_come_from_the_hosts_dnat_rules() -> None:
    snap = fixture_source().open()
    host = next(n for n in snap.namespaces if n.is_host)
    extra = (
        _rule(dport="5353", to_addr="10.10.0.2", to_port="53", proto="udp", dst="127.0.0.1/32"),
        _rule(dport="8080", to_addr="10.10.0.2", to_port="80"),  # the same port twice: once
        _rule(to_addr="10.10.0.3"),  # a whole-address DNAT is not a published port
        _rule(action="snat", dport="1", to_addr="10.10.0.3"),
    )
    host2 = dataclasses.replace(host, nat=(*host.nat, *extra))
    snap2 = dataclasses.replace(
        snap, namespaces=tuple(host2 if n.is_host else n for n in snap.namespaces)
    )
    ports = published_ports(snap2)
    assert ports["10.10.0.2"] == ["8080->80/tcp", "127.0.0.1:5353->53/udp"]
    assert "10.10.0.3" not in ports
    rows = {r.ip: r for r in ViewIndex.build(snap2).rows}
    assert rows["10.10.0.2"].ports == "8080->80/tcp, 127.0.0.1:5353->53/udp"
    assert all(r.ports == "" for ip, r in rows.items() if ip != "10.10.0.2")


@run_async
async def test_containers_view_shows_them_in_its_last_column() -> None:
    from netlens.tui.widgets.fast_table import FastTable
    from netlens.tui.widgets.tables import Cell

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await pilot.pause()
        idx = app.ctx.index
        assert idx is not None
        row = next(r for r in idx.rows if r.ip == "10.10.0.2")
        cells = app.query_one("#containers-table", FastTable).get_row(row.key)
        last = cells[-1]
        assert isinstance(last, Cell) and last.text == "8080->80/tcp"
