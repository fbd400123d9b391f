"""The engine table is the only list of engines, and identity and bridge naming
ask nothing else: a module in engines/ left out of the table, or a second list
growing somewhere, fails here."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import netlens
from netlens.discovery import engines, registry
from netlens.discovery.engines import Claims, EngineReader, Namespace, Options
from netlens.discovery.identity import identify
from netlens.discovery.networks import bridge_networks
from netlens.discovery.nsfind import NsHandle
from netlens.model import Container, Engine

pytestmark = pytest.mark.unit

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "identity"
ENGINE_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(engines.__path__) if not m.name.startswith("_")
)


def test_every_engine_module_is_in_the_table_once() -> None:
    table = {id(r): r for r in registry.READERS}
    assert len(table) == len(registry.READERS), "a reader listed twice"
    listed = []
    for name in ENGINE_MODULES:
        module = importlib.import_module(f"netlens.discovery.engines.{name}")
        reader = getattr(module, "READER", None)
        assert isinstance(reader, EngineReader), f"engines/{name}.py exports no READER"
        assert id(reader) in table, f"engines/{name}.py is not in registry.READERS"
        listed.append(reader)
    assert len(listed) == len(registry.READERS), "the table holds a reader of no module"


def test_the_table_keeps_todays_priority() -> None:
    assert [r.name for r in registry.READERS] == [
        "host",
        "netlens",
        "docker",
        "podman",
        "lxc",
        "containerd",
        "cni",
        "mininet",
        "netns",
        "process",
    ]


def test_only_the_registry_imports_engine_modules() -> None:
    """Outside engines/ itself, netlens names no engine module but in the table."""
    root = Path(netlens.__file__).parent
    engine_mods = {f"netlens.discovery.engines.{n}" for n in ENGINE_MODULES}
    offenders = []
    for path in root.rglob("*.py"):
        if path.parent == root / "discovery" / "engines" or path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            if engine_mods & set(names):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


class _Fake(Claims):
    """Claims, by its own record, the namespaces whose lowest pid is 100 (the
    fixture's docker web-1, named by cgroup) or 700 (netlens's web, by inode)."""

    asked: list[str] = []

    def __init__(self, opts: Options) -> None:
        self.tag: str = opts["fake_tag"]

    def recorded(self, ns: Namespace) -> Container | None:
        _Fake.asked.append(ns.id)
        if ns.lowest not in (100, 700):
            return None
        return Container(
            id=f"process:{self.tag}",
            engine=Engine.PROCESS,
            name=self.tag,
            netns=ns.id,
            engine_id=self.tag,
            pid=ns.lowest,
            pids=ns.pids,
        )


FAKE = EngineReader(
    name="fake",
    options={"fake_tag": "fake-default"},
    claims=_Fake,
    networks=lambda opts: {"docker0": "fake-net", f"fk-{opts['fake_tag']}": "fake-net"},
)


def _roots(fix: Path = FIX) -> dict[str, str]:
    return {
        "proc_root": str(fix / "proc"),
        "netlens_state_dir": str(fix / "netlens"),
        "docker_root": str(fix / "docker"),
        "podman_root": str(fix / "podman"),
        "lxc_root": str(fix / "lxc"),
        "containerd_root": str(fix / "containerd"),
    }


def _h(inode: int, pids: tuple[int, ...]) -> NsHandle:
    return NsHandle(dev=4, inode=inode, path=f"/proc/{pids[0]}/ns/net", is_host=False,
                    names=(), mounts=(), pids=pids)  # fmt: skip


HANDLES = [_h(1, (101, 100)), _h(4026532700, (700,)), _h(9, (4242,))]


def _named(got: list[Container]) -> list[tuple[str, str]]:
    return [(c.netns or "", c.name) for c in got]


def test_a_registered_reader_is_asked_in_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [c.engine for c in identify(HANDLES, **_roots())] == [
        Engine.DOCKER,
        Engine.NETLENS,
        Engine.PROCESS,
    ]
    # First row: asked for every namespace, it wins everything it claims, and its
    # own keyword reaches it.
    _Fake.asked = []
    monkeypatch.setattr(registry, "READERS", (FAKE, *registry.READERS))
    assert _named(identify(HANDLES, fake_tag="mine", **_roots())) == [
        ("netns:1", "mine"),
        ("netns:4026532700", "mine"),
        ("netns:9", "process[4242]"),
    ]
    assert _Fake.asked == ["netns:1", "netns:4026532700", "netns:9"]

    # Last row: netlens's record comes first in the same round, so it keeps its
    # namespace; Docker's cgroup is a later round than any record, so the fake's
    # record still takes web-1's namespace.
    _Fake.asked = []
    monkeypatch.setattr(registry, "READERS", (*registry.READERS[1:], FAKE))
    assert _named(identify(HANDLES, **_roots())) == [
        ("netns:1", "fake-default"),
        ("netns:4026532700", "web"),
        ("netns:9", "process[4242]"),
    ]
    assert _Fake.asked == ["netns:1", "netns:9"]


def test_a_registered_reader_names_bridges(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = {
        "netlens_state_dir": str(tmp_path / "none"),
        "docker_root": str(tmp_path / "none"),
        "podman_dirs": [str(tmp_path / "none")],
        "cni_dir": str(tmp_path / "none"),
    }
    assert bridge_networks(**empty) == {"podman0": "podman"}  # Podman's built-in default
    monkeypatch.setattr(registry, "READERS", (*registry.READERS, FAKE))
    assert bridge_networks(fake_tag="x", **empty) == {
        "podman0": "podman",
        "docker0": "fake-net",
        "fk-x": "fake-net",
    }


def test_a_keyword_no_reader_takes_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'dockr_root'"):
        identify([], dockr_root="/x")
    with pytest.raises(TypeError, match="'cni_root'"):
        bridge_networks(cni_root="/x")
