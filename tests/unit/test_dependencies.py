"""Honest dependencies: pyproject's runtime dependencies are exactly what product code imports.

Product code is netlens/ and runtime/netlens_runtime/ (what the wheel holds). Every
absolute import of a module outside the standard library and the two packages must
belong to a declared dependency (else a clean install breaks on it), and every
declared dependency must be imported somewhere (else users install it for
nothing). The import names are mapped to distributions through the metadata of
the installed dependencies, so ``yaml`` counts for PyYAML. And the runtime
imports nothing of netlens but its kernel-access package netlens.kernel, a leaf
(the dependency runs the other way, from netlens/cli.py).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest
from conftest import REPO

pytestmark = pytest.mark.unit

OWN = {"netlens", "netlens_runtime"}
DECLARED_NOT_IMPORTED: dict[str, str] = {}
"""Declared on purpose although no product code imports it yet, each with the reason."""

PYROUTE2_HOME = "runtime/netlens_runtime/linkctl.py"
"""The one product module that imports pyroute2 (traffic control): ~150 ms to import,
so it stays off every start-up path (see test_link_cli_paths.py)."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_norm(re.split(r"[\s<>=~!;\[]", d, maxsplit=1)[0]) for d in deps}


def imported() -> dict[str, set[str]]:
    """Top-level third-party import names of product code -> the files importing them."""
    out: dict[str, set[str]] = {}
    for root in (REPO / "netlens", REPO / "runtime" / "netlens_runtime"):
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        out.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return out


@functools.cache
def used() -> dict[str, set[str]]:
    """Distributions product code imports -> the files importing them."""
    dists = packages_distributions()
    out: dict[str, set[str]] = {}
    for name, files in imported().items():
        assert name in dists, f"{name} (imported by {sorted(files)}) is no installed distribution"
        for dist in dists[name]:
            out.setdefault(_norm(dist), set()).update(files)
    return out


def test_everything_product_code_imports_is_declared() -> None:
    imports = used()
    missing = set(imports) - declared()
    assert not missing, {d: sorted(imports[d]) for d in missing}


def test_every_declared_dependency_is_imported_or_a_stated_exception() -> None:
    unused = declared() - set(used())
    assert unused <= set(DECLARED_NOT_IMPORTED), f"nothing imports {sorted(unused)}"


def test_the_exceptions_are_still_exceptions() -> None:
    """A stated exception that product code now imports must leave the list."""
    assert set(DECLARED_NOT_IMPORTED) <= declared()
    now_used = set(DECLARED_NOT_IMPORTED) & set(used())
    assert not now_used, f"{sorted(now_used)} is imported now: remove it from the exceptions"


def test_pyroute2_is_imported_by_product_code_and_only_by_link_control() -> None:
    """The product brief requires pyroute2: traffic control uses it. Anywhere else its
    import cost would land on a path that must start fast."""
    assert "pyroute2" in declared()
    assert used().get("pyroute2") == {PYROUTE2_HOME}


def _own_imports(root: str) -> list[tuple[str, str]]:
    """(file name, imported module) for every absolute import under ``REPO/root``."""
    out = []
    for path in (REPO / root).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            out += [(path.name, n) for n in names]
    return out


def _kernel(name: str) -> bool:
    return name == "netlens.kernel" or name.startswith("netlens.kernel.")


def test_the_runtime_imports_nothing_of_netlens_but_the_kernel() -> None:
    """netlens_runtime stands alone (only netlens/cli.py wires the two together): its C
    helper's finder once imported netlens.native. It may use the kernel-access
    package, which is a leaf, and nothing else of netlens."""
    offenders = [
        f"{f}: {n}"
        for f, n in _own_imports("runtime/netlens_runtime")
        if n.split(".")[0] == "netlens" and not _kernel(n)
    ]
    assert offenders == []


def test_the_kernel_package_is_a_leaf() -> None:
    """netlens.kernel imports nothing of the rest of netlens nor of the runtime, so
    that discovery, stats and the runtime stand on it without standing on each other."""
    offenders = [
        f"{f}: {n}"
        for f, n in _own_imports("netlens/kernel")
        if n.split(".")[0] in OWN and not _kernel(n)
    ]
    assert offenders == []
