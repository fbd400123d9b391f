"""Shared test fixtures.

Integration tests build real namespaces, links and bridges with iproute2 and
remove them in finalizers that run also when the test fails. Every name carries
a per-run random tag so parallel or aborted runs never collide, and a session
fixture sweeps anything with this run's tag at the end.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings as hypothesis_settings

hypothesis_settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None, max_examples=30
)
"""For ``make mutation`` (tests/mutation/run.py): every mutant meets the same examples,
so a mutant's verdict does not depend on the draw; no example database is shared
between the forked workers; 30 examples a property (tests that ask for more keep
theirs) because every mutant runs the properties again."""

RUN_TAG = secrets.token_hex(2)  # 4 hex chars: short, interface names max 15 bytes


DISCOVERY_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "discovery"


def discovery_fixture_module(name: str) -> ModuleType:
    """A module of tests/fixtures/discovery (not a package: loaded by path, once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DISCOVERY_FIXTURES / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


REPO = Path(__file__).resolve().parents[1]


def setup_py() -> ModuleType:
    """The project's setup.py (the C helpers' build step), loaded by path, once;
    loading it does not run setup()."""
    if "netlens_setup" in sys.modules:
        return sys.modules["netlens_setup"]
    spec = importlib.util.spec_from_file_location("netlens_setup", REPO / "setup.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["netlens_setup"] = mod
    spec.loader.exec_module(mod)
    return mod


def built_helper(name: str, path: str | None) -> str:
    """The C helper ``name`` as the checkout's build step made it (``path`` from its
    ``find()``). Skips without a C compiler; fails when one is there but the program
    is missing or older than its sources: the tests would run a stale build."""
    setup = setup_py()
    helper = next(h for h in setup.HELPERS if h.name == name)
    if path is None:
        if setup.compiler() is None:
            pytest.skip(f"no C compiler: {name} was not built")
        pytest.fail(f"{name} is not built: run `make setup`")
    assert not setup.stale(helper, path), f"{path} is older than its sources: run `make setup`"
    return path


def is_root() -> bool:
    return os.geteuid() == 0


def compile_tree() -> None:
    """Compile the tree's modules, as an installed package has them. With
    PYTHONDONTWRITEBYTECODE set (it is on the CI machine) nothing else writes the
    .pyc files, and every timed ``python -m netlens`` would compile what it imports
    (a static trace: about 0.2 s of CPU becomes 0.7 s)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "netlens", "runtime/netlens_runtime"],
        capture_output=True,
        cwd=REPO,
        check=False,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip root-only tests for non-root users; bench tests only with -m bench."""
    markexpr = config.getoption("-m") or ""
    for item in items:
        if "integration" in item.keywords and not is_root():
            item.add_marker(pytest.mark.skip(reason="needs root (creates namespaces)"))
        if "bench" in item.keywords and "bench" not in markexpr:
            item.add_marker(pytest.mark.skip(reason="benchmark: run with `make bench`"))


STRICT_SKIPS = os.environ.get("CI") == "true"
"""Under CI a test that cannot run fails instead of skipping: CI installs every
package and module the suite needs (.ci/setup.sh), so a skip there means a
missing install step or a broken engine, and a green run would hide it. Outside
CI skips stay, each with a reason that says how to enable the test."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn a skip into a failure under ``CI=true`` (benchmarks excepted: deselected there)."""
    outcome = yield
    report = outcome.get_result()
    if not (STRICT_SKIPS and report.skipped) or "bench" in item.keywords:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


MEMOS = {
    "netlens.discovery.builders": ("_PORT_MEMO", "_ADDR_MEMO", "_ROUTE_MEMO", "_RULE_MEMO",
                                  "_NETCONF_MEMO"),
    "netlens.kernel.decode": ("_IP_CACHE", "_ADDR_ROWS", "_ROUTE_ROWS", "_ROUTE_EXACT"),
    "netlens.kernel.wire": ("_REQUEST_CACHE", "_BATCH_CACHE"),
    "netlens.discovery.nat": ("_WIRE_PROBES",),
    "netlens.stats.counters": ("_fast_structs",),
}  # fmt: skip
"""Module-level memo tables of the parsers (parsed messages by their bytes, structs by
size). A memo filled by an earlier test answers a later one without running the code
under test, so a broken parser could pass; mutation testing (tests/mutation) showed
exactly that. Every test starts with them empty."""


@pytest.fixture(autouse=True)
def _empty_parser_memos() -> None:
    """Empty the memo tables of the parser modules already imported (importing them
    here would change what the import tests see)."""
    for module, names in MEMOS.items():
        mod = sys.modules.get(module)
        for name in names if mod is not None else ():
            getattr(mod, name).clear()


def settle_kernel(max_wait: float = 45.0, quiet_ticks: int = 3, calm_for: float = 5.0) -> float:
    """Wait until the kernel's interrupt work calms down after a lab was built;
    returns the seconds waited (benchmarks print it).

    Why: each new namespace's interfaces run IPv6 duplicate address detection,
    router solicitations (three, 4 s apart) and MLD reports on timers; on a
    bridge each of those multicasts is flooded to every other port, so with a
    thousand new namespaces that softirq work took a core and doubled the
    first dump's time (1.01 s right after the build, 0.38 s ten seconds later).
    A benchmark times the tool on a settled host, not the kernel's aftermath.
    Settled: ``calm_for`` seconds (longer than the solicitation interval) of
    half-seconds with at most ``quiet_ticks`` clock ticks of irq + softirq time
    over all CPUs each.
    """
    import time

    def irq_ticks() -> int:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
        return int(fields[6]) + int(fields[7])  # cpu  user nice system idle iowait irq softirq

    start = time.monotonic()
    calm = 0
    last = irq_ticks()
    while calm < calm_for / 0.5 and time.monotonic() - start < max_wait:
        time.sleep(0.5)
        now = irq_ticks()
        calm = calm + 1 if now - last <= quiet_ticks else 0
        last = now
    return time.monotonic() - start


def sh(cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell command, capture output; raise with stderr when check fails."""
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({res.returncode}): {res.stderr.strip()}")
    return res


class Lab:
    """Builds named namespaces, veths and bridges and undoes all of it on close.

    Names are prefixed with ``prefix`` + the run tag; ``name('a')`` gives the
    real name to use. Cleanup order: processes, namespaces, host links.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}{RUN_TAG}"
        self.netns: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.mounts: list[str] = []
        self.cleanups: list[str] = []

    def name(self, short: str) -> str:
        full = f"{self.prefix}{short}"
        assert len(full.encode()) <= 15, full
        return full

    def add_netns(self, short: str) -> str:
        ns = self.name(short)
        sh(f"ip netns add {ns}")
        self.netns.append(ns)
        sh(f"ip -n {ns} link set lo up")
        return ns

    def add_bridge(self, short: str) -> str:
        br = self.name(short)
        sh(f"ip link add {br} type bridge && ip link set {br} up")
        self.links.append(br)
        return br

    def add_veth(self, a: str, b: str, ns_a: str | None = None, ns_b: str | None = None) -> None:
        """Make a veth a<->b, then move each end into its namespace (None: host)."""
        sh(f"ip link add {a} type veth peer name {b}")
        if ns_a is None:
            self.links.append(a)
        else:
            sh(f"ip link set {a} netns {ns_a}")
        if ns_b is None:
            self.links.append(b)
        else:
            sh(f"ip link set {b} netns {ns_b}")
        for end, ns in ((a, ns_a), (b, ns_b)):
            pre = f"ip -n {ns}" if ns else "ip"
            sh(f"{pre} link set {end} up")

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for cmd in reversed(self.cleanups):
            sh(cmd, check=False)
        for mnt in reversed(self.mounts):
            sh(f"umount -l {mnt}", check=False)
            if os.path.isfile(mnt):
                os.unlink(mnt)
        for ns in reversed(self.netns):
            sh(f"ip netns del {ns}", check=False)
        for link in reversed(self.links):
            sh(f"ip link del {link}", check=False)


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A :class:`Lab` torn down after the test, pass or fail."""
    if not is_root():
        pytest.skip("needs root")
    lb = Lab("nt")
    try:
        yield lb
    finally:
        lb.close()


@pytest.fixture
def labstate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private runtime state dir (``NETLENS_STATE_DIR``) for ``lab up`` tests and benches.

    Afterwards everything it lists is removed, pass or fail, and the test fails
    if anything of it could not be (see ``runtime_host.teardown_state``), or if the
    kernel still holds nft rules, iptables rules, cgroups or a forwarding claim of
    this state directory that it did not hold before (``runtime_host.kernel_changes``).
    """
    if not is_root():
        pytest.skip("needs root")
    from runtime_host import kernel_changes, kernel_state, teardown_state

    sdir = tmp_path / "state"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(sdir))
    before = kernel_state(sdir)
    try:
        yield sdir
    finally:
        known = kernel_state(sdir).names  # the test's bridges and veths, before teardown
        left = teardown_state(sdir)
        left += kernel_changes(before, kernel_state(sdir), known=known)
    assert not left, left


_TAGGED = re.compile(rf"(?!veth)[a-z-]*{RUN_TAG}")


def _run_tagged(name: str) -> bool:
    """A name this run made: a test prefix of letters, then the tag.

    The tag is 4 hex characters, which other engines' names contain by chance
    (Docker's and LXC's host veths are ``veth`` + random hex): a bare substring
    match would delete another session's or another engine's link.
    """
    return _TAGGED.match(name) is not None


@pytest.fixture(scope="session", autouse=True)
def _sweep_run_tag() -> Iterator[None]:
    """Last line of defence: remove any namespace or link carrying this run's tag."""
    yield
    if not is_root() or not shutil.which("ip"):
        return
    ours = _run_tagged
    for line in sh("ip netns list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if ours(name):
            sh(f"ip netns del {name}", check=False)
    for line in sh("ip -o link show", check=False).stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1:
            name = parts[1].split("@")[0]
            if ours(name):
                sh(f"ip link del {name}", check=False)
