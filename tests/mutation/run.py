"""Mutation testing of netlens' pure core with mutmut, one module at a time.

Why mutation testing: the unit tests of the core test by example, and an audit
found that plausible bugs (a reset rule weakened, tx computed from rx, a jump
walk removed) survived every one of them. A mutant that survives is a bug the
suite cannot see; each one left is either killed by a new test or written down
in ``tests/mutation/SURVIVORS.md`` with why it is equivalent or harmless.

Why mutmut (3.x) and not cosmic-ray: measured on ``netlens/stats/rates.py`` on
this 2-core machine, mutmut ran all 244 mutants in about 2 minutes (it forks
each mutant from a process that already imported pytest and the code, and runs
only the tests that call the mutated function), while cosmic-ray managed 16 of
406 in 2 minutes (a fresh ``pytest`` process per mutant, about 7 s each), and it
rewrites the source files in place, which a shared work tree cannot afford.

Why a scratch copy per module: mutmut writes its mutated tree and results into
``mutants/`` under the directory it runs in and reads its settings from that
directory's ``pyproject.toml``. Running each module in ``build/mutation/<name>``
keeps the work tree clean, gives each module its own settings (which file to
mutate), and lets two modules never share a results cache.

Only the unit tests run (``tests/unit``): no root, no namespaces, no engines.
Usage (``make mutation`` runs every module; ``MODULES=rates,nat`` picks some;
``CHANGED=origin/main`` only those whose file or unit tests changed since then)::

    nice -n 19 python3 tests/mutation/run.py [--jobs N] [--min-score 85] [--changed REV]
                                             [MODULE...]

Exit status: 0 when every module reached ``--min-score`` percent of mutants
killed, 1 otherwise. Surviving mutants not listed in SURVIVORS.md are printed
(with their diff, ``--show``) so the list stays honest.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SURVIVORS = Path(__file__).resolve().parent / "SURVIVORS.md"

STATS_TESTS = (
    "tests/unit/test_stats_rates.py",
    "tests/unit/test_stats_counters.py",
    "tests/unit/test_stats_counters_edges.py",
    "tests/unit/test_stats_history.py",
    "tests/unit/test_stats_history_model.py",
    "tests/unit/test_stats_aggregate.py",
    "tests/unit/test_stats_aggregate_model.py",
    "tests/unit/test_stats_monitor.py",
)
DISCOVERY_TESTS = (
    "tests/unit/test_resolve_edges.py",
    "tests/unit/test_discovery_parse.py",
    "tests/unit/test_discovery_fixtures.py",
    "tests/unit/test_veth_pairing.py",
    "tests/unit/test_wire.py",
    "tests/unit/test_netlink_codec.py",
)
"""Per-mutant cost is the tests that reach the mutated function: the walker's C
comparisons (test_walk*.py) rebuild and re-run the C decoder, so they join only
for the modules the C code mirrors (decode, wire)."""
WALKER_TESTS = ("tests/unit/test_walk.py", "tests/unit/test_walk_decode.py")
RUNTIME_TESTS = (
    "tests/unit/test_ipam_edges.py",
    "tests/unit/test_names_edges.py",
    "tests/unit/test_runtime_parsing.py",
    "tests/unit/test_input_rules.py",
    "tests/unit/test_state_safety.py",
)
LAB_TESTS = (
    "tests/unit/test_lab_yaml_edges.py",
    "tests/unit/test_lab_cross_edges.py",
    "tests/unit/test_names_edges.py",
    "tests/unit/test_lab_spec.py",
    "tests/unit/test_lab_ops.py",
    "tests/unit/test_lab_subset.py",
    "tests/unit/test_input_rules.py",
)
NAT_TESTS = (
    "tests/unit/test_nat.py",
    "tests/unit/test_nat_parsers.py",
    "tests/unit/test_nat_edges.py",
)


@dataclass(frozen=True)
class Module:
    """One file of the pure core, the unit tests that exercise it, and its I/O part.

    ``tests``: every unit test file that calls into the module, directly or through
    its callers (more files only cost mutmut's first, mapping run: each mutant then
    runs only the tests that reached its function). ``io``: functions that need a
    live namespace, a helper process or the real kernel; their mutants are left to
    the integration tests and not scored here (they are listed, not hidden).
    """

    path: str
    tests: tuple[str, ...]
    io: tuple[str, ...] = ()

    @property
    def mutated(self) -> str:
        """The file's path in the scratch tree, which is also its module's path.

        mutmut names a mutant after the file's path and records test hits under the
        function's ``__module__``: the two agree only when the path is the import
        name, so the runtime's package (``runtime/netlens_runtime``) is laid out at
        the scratch tree's top as ``netlens_runtime/``.
        """
        return self.path.removeprefix("runtime/")


MODULES: dict[str, Module] = {
    "rates": Module("netlens/stats/rates.py", STATS_TESTS),
    "counters": Module(
        "netlens/stats/counters.py", (*STATS_TESTS, "tests/unit/test_stats_timeout.py")
    ),
    "history": Module("netlens/stats/history.py", STATS_TESTS),
    "aggregate": Module(
        "netlens/stats/aggregate.py", (*STATS_TESTS, "tests/unit/test_stats_cli.py")
    ),
    "nat": Module(
        "netlens/discovery/nat.py",
        NAT_TESTS,
        io=(
            "_send_getchain",
            "_recv_chains",
            "dump_chains",
            "_read_names",
            "legacy_present",
            "start_probe",
            "finish_probe",
            "probe_here",
            "probe",
        ),
    ),
    "nat_rules": Module("netlens/discovery/nat_rules.py", NAT_TESTS),
    "nat_tools": Module(
        "netlens/discovery/nat_tools.py",
        NAT_TESTS,
        io=("_spawn", "_collect", "_run_in", "_parallel", "_run_local", "_probe_for_warning"),
    ),
    "resolve": Module(
        "netlens/discovery/resolve.py",
        DISCOVERY_TESTS,
        io=("read_namespaces", "_replies", "_ingress_redirects"),
    ),
    "decode": Module("netlens/kernel/decode.py", (*DISCOVERY_TESTS, *WALKER_TESTS)),
    "wire": Module(
        "netlens/kernel/wire.py",
        (*DISCOVERY_TESTS, *WALKER_TESTS),
        io=(
            "_read_proc",
            "_netlink",
            "_chain_dump",
            "serve",
            "_frames",
            "_parent_behind",
            "_write_all",
            "_serve_entered",
            "main",
        ),
    ),
    "netlink": Module("netlens/discovery/builders.py", DISCOVERY_TESTS),
    "ipam": Module("runtime/netlens_runtime/ipam.py", RUNTIME_TESTS),
    "names": Module("runtime/netlens_runtime/names.py", (*RUNTIME_TESTS, *LAB_TESTS)),
    "lab_model": Module("runtime/netlens_runtime/lab_model.py", LAB_TESTS),
    "lab_yaml": Module("runtime/netlens_runtime/lab_yaml.py", LAB_TESTS),
    "lab_cross": Module("runtime/netlens_runtime/lab_cross.py", LAB_TESTS),
}
"""The pure core in scope. A mutant of a function no selected test calls counts as
not killed ("no tests"), except in the functions named in ``io``."""

MUTMUT_SETTINGS = """
[tool.mutmut]
source_paths = ["netlens/", "netlens_runtime/"]
only_mutate = ["{path}"]
also_copy = ["runtime/", "setup.py"]
pytest_add_cli_args_test_selection = {tests}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "--hypothesis-profile=mutation"]
timeout_multiplier = 4.0
timeout_constant = 2.0
"""
# A mutant that loops forever is killed all the same; waiting 15 times a test's
# clean duration (mutmut's default) for it made timeouts the bulk of a run here.


@dataclass
class Result:
    """One module's outcome, as mutmut counted it (I/O functions set apart)."""

    name: str
    total: int
    killed: int
    survived: list[str]
    no_tests: list[str]
    io: int
    seconds: float

    @property
    def scored(self) -> int:
        return self.total - self.io

    @property
    def score(self) -> float:
        """Percent of scored mutants killed (a timeout or a crash counts as killed)."""
        return 100.0 * self.killed / self.scored if self.scored else 100.0


MUTMUT = (
    "import shutil, sys\n"
    "_copytree = shutil.copytree\n"
    "def copytree(src, dst, symlinks=True, *args, **kwargs):\n"
    "    return _copytree(src, dst, True, *args, **kwargs)\n"
    "shutil.copytree = copytree\n"
    "from mutmut.__main__ import cli\n"
    "sys.argv[0] = 'mutmut'\n"
    "cli()\n"
)
"""mutmut's entry point, with one change: it copies ``tests/`` into its tree following
symlinks, and the recorded /proc fixtures hold dangling ones (``net:[4026531840]``)
that the tests read with readlink. Copying them as links keeps them what they are."""


def mutmut_bin() -> list[str]:
    """The command that runs mutmut with this interpreter."""
    try:
        import mutmut  # noqa: F401
    except ImportError:
        sys.exit("mutmut is not installed: pip install -e '.[dev]' (pins mutmut)")
    return [sys.executable, "-c", MUTMUT]


def prepare(name: str, mod: Module) -> Path:
    """A fresh scratch copy of the code and unit tests with this module's settings."""
    work = ROOT / "build" / "mutation" / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    # _bin is copied (mtimes kept): the walker's unit tests compare the C helpers,
    # as the checkout built them, with the Python decoder being mutated; setup.py
    # too, which tells them whether a helper is built and current.
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".hypothesis")
    shutil.copy2(ROOT / "setup.py", work / "setup.py")
    for sub in ("netlens", "tests/unit", "tests/fixtures", "themes"):
        shutil.copytree(ROOT / sub, work / sub, symlinks=True, ignore=ignore)
    # The runtime's package at the top (see Module.mutated), and runtime/ beside it
    # pointing there, so tests that find it by path read the mutated files too.
    pkg = ROOT / "runtime" / "netlens_runtime"
    shutil.copytree(pkg, work / "netlens_runtime", symlinks=True, ignore=ignore)
    skip_pkg = shutil.ignore_patterns("__pycache__", "*.egg-info", "netlens_runtime")
    shutil.copytree(ROOT / "runtime", work / "runtime", symlinks=True, ignore=skip_pkg)
    (work / "runtime" / "netlens_runtime").symlink_to(Path("..") / "netlens_runtime")
    for f in ("tests/conftest.py", "tests/runtime_host.py", "tests/nft_text.py"):
        shutil.copy2(ROOT / f, work / f)
    # mutmut's tree must be on sys.path from the start: a directory missing when
    # Python starts is cached as "nothing here", and the tests would then import
    # an installed netlens (never mutated) instead.
    (work / "mutants").mkdir()
    tests = json.dumps([t for t in mod.tests if (ROOT / t).exists()])
    settings = MUTMUT_SETTINGS.format(path=mod.mutated, tests=tests)
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + settings)
    return work


def function_of(mutant: str) -> str:
    """``netlens.stats.rates.x_deltas__mutmut_3`` -> ``deltas``; methods keep their name."""
    leaf = mutant.rsplit(".", 1)[-1].split("__mutmut_")[0]
    return leaf.split("\u01c1")[-1] if "\u01c1" in leaf else leaf.removeprefix("x_")


def run_module(name: str, mod: Module, jobs: int) -> Result:
    """Mutate one file, run its unit tests against every mutant, count."""
    work = prepare(name, mod)
    env = dict(os.environ)
    mutants = work / "mutants"
    env["PYTHONPATH"] = str(mutants)
    env.pop("CI", None)  # the strict-skip hook is for real CI runs, not mutants
    exe = mutmut_bin()
    log = work / "mutmut.log"
    start = time.monotonic()
    with log.open("w") as out:
        # Its own session: mutmut forks workers, and an interrupted run must not
        # leave them behind (they would go on using the shared cores).
        proc = subprocess.Popen(
            [*exe, "run", "--max-children", str(jobs)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"mutmut failed on {name} (exit {proc.returncode}); see {log}")
    listing = subprocess.run(
        [*exe, "results", "--all", "true"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    status = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", listing, flags=re.MULTILINE))
    io = {m for m in status if function_of(m) in mod.io}
    left = {m: st for m, st in status.items() if m not in io}
    killed = sum(st in ("killed", "timeout", "segfault") for st in left.values())
    survived = sorted(m for m, st in left.items() if st in ("survived", "suspicious"))
    no_tests = sorted(m for m, st in left.items() if st == "no tests")
    (work / "status.json").write_text(json.dumps(status, indent=1, sort_keys=True))
    return Result(name, len(status), killed, survived, no_tests, len(io), seconds)


def documented() -> set[str]:
    """Mutant names SURVIVORS.md explains (each in backquotes)."""
    if not SURVIVORS.exists():
        return set()
    return set(re.findall(r"`(netlens(?:_runtime)?\.[\w.]+__mutmut_\d+)`", SURVIVORS.read_text()))


def show(name: str, mutant: str) -> str:
    """mutmut's diff of one mutant."""
    work = ROOT / "build" / "mutation" / name
    return subprocess.run(
        [*mutmut_bin(), "show", mutant], cwd=work, capture_output=True, text=True, check=False
    ).stdout


def changed_modules(rev: str) -> set[str]:
    """Modules whose source, or one of whose unit test files, differs from ``rev``
    (committed or not): what a CI run on a branch needs to mutate again."""
    cmd = ["git", "diff", "--name-only", rev, "--", "netlens", "runtime", "tests/unit"]
    res = subprocess.run(
        [*cmd, "tests/conftest.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:  # a shallow clone, a revision gone: nothing to compare with
        print(f"cannot compare with {rev} ({res.stderr.strip()[:80]}): every module is in scope")
        return set(MODULES)
    diff = res.stdout.split()
    touched = set(diff)
    if "tests/conftest.py" in touched:
        return set(MODULES)
    return {n for n, m in MODULES.items() if m.path in touched or touched & set(m.tests)}


def _function_source(lines: list[str], name: str) -> list[str]:
    """The lines of ``def name(`` in mutmut's generated module, up to the next def."""
    start = next(
        i for i, line in enumerate(lines) if re.match(rf"\s*def {re.escape(name)}\(", line)
    )
    indent = len(lines[start]) - len(lines[start].lstrip())
    while not lines[start].rstrip().endswith(":"):  # a signature over several lines
        start += 1
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    return [line.strip() for line in lines[start + 1 : end]]


def one_line_diffs(name: str, mutants: list[str]) -> dict[str, str]:
    """``- old`` / ``+ new`` of each mutant, read from mutmut's generated module (much
    faster than ``mutmut show`` once per mutant)."""
    path = ROOT / "build" / "mutation" / name / "mutants" / MODULES[name].mutated
    lines = path.read_text().splitlines()
    out: dict[str, str] = {}
    for m in mutants:
        leaf = m.rsplit(".", 1)[-1]
        func = leaf.split("__mutmut_")[0]
        new = _function_source(lines, leaf)
        old = _function_source(lines, f"{func}__mutmut_orig")
        changed = [d for d in difflib.ndiff(old, new) if d[:2] in ("- ", "+ ")]
        out[m] = " / ".join(changed) if changed else "(a default argument)"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    ap.add_argument("--min-score", type=float, default=85.0)
    ap.add_argument("--show", action="store_true", help="print undocumented survivors' diffs")
    ap.add_argument(
        "--budget",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="start no new module after this many seconds (0: no limit); the ones left"
        " are named, not scored",
    )
    ap.add_argument(
        "--smoke",
        metavar="MODULE",
        help="with --changed: the module to run when none changed (proves mutmut works here)",
    )
    ap.add_argument(
        "--changed",
        metavar="REV",
        help="only the modules whose file or unit tests differ from git revision REV",
    )
    args = ap.parse_args(argv)
    # SIGTERM (a CI step's timeout, kill PID) unwinds like Ctrl-C, so the finally
    # above ends mutmut's process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [m for arg in args.modules for m in arg.split(",") if m] or list(MODULES)
    if args.changed:
        names = [n for n in names if n in changed_modules(args.changed)]
        if not names and not args.smoke:
            print(f"no module in scope changed since {args.changed}")
            return 0
        if not names:  # still prove the tool runs here (CI: a fresh machine)
            print(f"no module in scope changed since {args.changed}; smoke run of {args.smoke}")
            names = [args.smoke]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown module(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
        return 2
    known = documented()
    failed = False
    head = ("module", "mutants", "I/O", "scored", "killed", "surv", "no-test", "score", "time")
    print("{:<10}{:>8}{:>6}{:>8}{:>8}{:>6}{:>9}{:>8}{:>7}".format(*head))
    began = time.monotonic()
    for i, name in enumerate(names):
        if args.budget and time.monotonic() - began > args.budget:
            print(f"budget of {args.budget:g} s spent: not run: {', '.join(names[i:])}")
            break
        r = run_module(name, MODULES[name], args.jobs)
        ok = r.score >= args.min_score
        failed |= not ok
        print(
            f"{r.name:<10}{r.total:>8}{r.io:>6}{r.scored:>8}{r.killed:>8}{len(r.survived):>6}"
            f"{len(r.no_tests):>9}{r.score:>7.1f}%{r.seconds:>6.0f}s"
            + ("" if ok else f"  below {args.min_score:g}%"),
            flush=True,
        )
        new = [m for m in r.survived + r.no_tests if m not in known]
        diffs = one_line_diffs(name, new) if args.show else {}
        for m in new:
            kind = "survivor" if m in r.survived else "untested"
            print(f"  undocumented {kind}: {m}")
            if args.show:
                print(f"    {diffs[m]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
