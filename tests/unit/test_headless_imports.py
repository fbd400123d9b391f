"""The headless core never pulls in textual or rich, and `dump --json` stays light.

Checked in a fresh interpreter (sys.modules of the test process is polluted by
whatever other tests imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEADLESS = [
    "netlens.kernel",
    "netlens.kernel.consts",
    "netlens.kernel.wire",
    "netlens.kernel.decode",
    "netlens.kernel.serve",
    "netlens.kernel.nsenter",
    "netlens.kernel.pump",
    "netlens.kernel.native",
    "netlens.kernel.walker",
    "netlens.kernel.inert",
    "netlens.kernel.packet",
    "netlens.kernel.pcapng",
    "netlens.discovery",
    "netlens.model",
    "netlens.model.graph",
    "netlens.model.serialize",
    "netlens.model.index",
    "netlens.stats",
    "netlens.export",
    "netlens.export.dot",
    "netlens.export.graphml",
    "netlens.export.mermaid",
    "netlens.commands.dump",
    "netlens.analysis.trace",
    "netlens.analysis.render",
    "netlens.commands.trace",
    "netlens.analysis.capture",
    "netlens.analysis.capture_targets",
    "netlens.analysis.capture_print",
    "netlens.analysis.capture_session",
    "netlens.commands.capture",
    "netlens.exporter",
    "netlens.exporter.collector",
    "netlens.exporter.server",
    "netlens.commands.exporter",
    "netlens.fleet.protocol",
    "netlens.fleet.merge",
    "netlens.fleet.config",
    "netlens.fleet.client",
    "netlens.fleet.watch",
    "netlens.commands.fleet",
    "netlens.commands.agent",
]
PROBE = """
import json, sys
{body}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


def loaded_roots(body: str) -> set[str]:
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_imports_no_tui(module: str) -> None:
    roots = loaded_roots(f"import {module}")
    assert "textual" not in roots and "rich" not in roots, module


def test_all_headless_together_and_the_graph_is_built() -> None:
    body = "\n".join(f"import {m}" for m in HEADLESS)
    body += "\nimport netlens.export, netlens.model.graph as g"
    body += "\nfrom netlens.model import Server, Snapshot"
    body += "\nnetlens.export.render(Snapshot(Server('h','k','a',1,1), ()), 'dot')"
    roots = loaded_roots(body)
    assert "networkx" in roots  # the probe really ran the exporter
    assert not roots & {"textual", "rich"}


def test_dump_json_path_imports_neither_networkx_nor_pyroute2() -> None:
    """Run the real `netlens dump --json` (live discovery of whatever this user can
    read, output to /dev/null) and inspect what got imported on the way."""
    body = (
        "import netlens.cli\n"
        "rc = netlens.cli.main(['dump', '--json', '--output', '/dev/null'])\n"
        "assert rc == 0, rc"
    )
    roots = loaded_roots(body)
    assert "netlens" in roots
    assert not roots & {"networkx", "pyroute2", "textual", "rich"}, sorted(roots)


def test_dump_command_module_imports_only_argparse_level_modules() -> None:
    """netlens.commands.dump at import time must not drag model/discovery in (startup)."""
    body = "import netlens.commands.dump"
    roots = loaded_roots(body)
    assert not roots & {"networkx", "pyroute2", "jsonschema", "textual", "rich"}
