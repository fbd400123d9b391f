"""The product as users install it: the wheel, in a fresh venv, outside the checkout.

``python -m build`` makes the sdist and then the wheel from that sdist (as pip
does for a user who installs from the sdist), both from a clean copy of the
checkout's files (its ``build/``, egg-info and ``_bin`` builds are never used),
the wheel goes into a new venv with its declared dependencies and
nothing else, and every command runs from a temporary directory with no
PYTHONPATH: nothing of the checkout can be imported. The checks are what a user
does first: ``--version`` (both C helpers native), ``dump --json`` (valid against
the shipped schema), the dashboard in a pilot on every view with every bundled
theme plus a user theme and keymap, ``view`` of a saved dump in a real terminal
(tmux), ``lab up``/``lab down``, ``run -d``/``exec``/``rm``, ``stats --json``.

The orchestration runs in the dev interpreter (pytest, jsonschema); only the
installed copy runs netlens. ``make installed`` runs this file alone; ``make
test`` runs it with the rest of the suite.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import DISCOVERY_FIXTURES, REPO, RUN_TAG, is_root, setup_py

from netlens import __version__

pytestmark = [pytest.mark.installed, pytest.mark.timeout(900)]  # the first test builds

HERE = Path(__file__).resolve().parent
OCTET = 100 + int(RUN_TAG, 16) % 100  # the lab tests' second octet: 10.OCTET.77.0/24
THEMES = sorted((REPO / "themes").glob("*.toml"))


class Installed:
    """The fresh venv holding the wheel, and how to run its netlens."""

    def __init__(self, venv: Path, work: Path) -> None:
        self.venv = venv
        self.bin = venv / "bin"
        self.work = work
        """The cwd of every command: outside the checkout."""
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
        }
        self.env.update(
            PATH=f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            XDG_CONFIG_HOME=str(work / "config"),
            XDG_STATE_HOME=str(work / "state"),
        )

    def run(
        self, *args: str, timeout: float = 120, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``netlens ARGS`` from the venv's console script."""
        res = subprocess.run(
            [str(self.bin / "netlens"), *args],
            cwd=self.work,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert res.returncode == 0, (args, res.returncode, res.stdout[-2000:], res.stderr)
        return res

    def python(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The venv's interpreter in isolated mode (-I: no cwd, script dir or user site)."""
        return subprocess.run(
            [str(self.bin / "python"), "-I", *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def site(self) -> Path:
        out = self.python("-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])")
        assert out.returncode == 0, out.stderr
        return Path(out.stdout.strip())


def _clean_source(dest: Path) -> Path:
    """The checkout's files as a fresh clone has them (tracked, plus new files not
    ignored; worktree contents): no builds, no egg-info, no ``build/``. setuptools
    reuses those when it finds them, so a stale one could hide a missing file."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    if listed.returncode != 0:  # not a git checkout: everything but what builds make
        junk = ("_bin", "build", "dist", "*.egg-info", "__pycache__", ".*")
        ignore = shutil.ignore_patterns(*junk)
        shutil.copytree(REPO, dest, symlinks=True, ignore=ignore, dirs_exist_ok=True)
        return dest
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = REPO / rel
        if src.is_file():  # a file deleted in the worktree is not part of it
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from that sdist, by ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    src = _clean_source(tmp_path_factory.mktemp("src"))
    res = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    inst = Installed(work / "venv", work / "cwd")
    inst.work.mkdir()
    res = subprocess.run(
        [str(inst.bin / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        cwd=inst.work,
        env=inst.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return inst


@pytest.fixture(scope="module")
def saved_dump(installed: Installed) -> Path:
    """``netlens dump --json`` of this host by the installed copy (root: every namespace)."""
    if not is_root():
        pytest.skip("needs root (reads every namespace)")
    res = installed.run("dump", "--json", "--pretty", "-o", "host.json")
    assert res.stderr == "", res.stderr
    return installed.work / "host.json"


def test_wheel_is_platform_tagged_and_holds_the_whole_product(wheel: Path, dist: Path) -> None:
    assert wheel.name.endswith(f"-py3-none-linux_{platform.machine()}.whl"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        top = zf.read(f"netlens-{__version__}.dist-info/top_level.txt").decode().split()
    assert sorted(top) == ["netlens", "netlens_runtime"]  # nothing named plain "runtime"
    assert not any(n.startswith("runtime/") for n in names)
    want = {
        "netlens/tui/app.tcss",
        "netlens/model/schema.json",
        "netlens/fleet/fleet_schema.json",
        "netlens_runtime/labs/demo.yaml",
        "netlens_runtime/labs/example.yaml",
        *(f"netlens/themes/{p.name}" for p in THEMES),
    }
    assert want <= names, want - names
    if setup_py().compiler() is not None:
        for prog in ("netlens/kernel/_bin/netlens-walk", "netlens_runtime/_bin/netlens-spawn"):
            assert prog in names and modes[prog] & 0o777 == 0o755, prog
    assert not [n for n in names if n.endswith((".c", ".h"))]  # nothing compiles at run time
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    sources = [p for h in setup_py().HELPERS for p in (*h.sources, *h.headers)]
    assert {"setup.py", *sources, *(f"themes/{p.name}" for p in THEMES)} <= members


def test_the_installed_copy_runs_and_nothing_of_the_checkout(installed: Installed) -> None:
    code = (
        "import json, sys, importlib.util, netlens, netlens_runtime, netlens.tui.themes as t;"
        "print(json.dumps([netlens.__file__, netlens_runtime.__file__, sys.path,"
        " importlib.util.find_spec('runtime') is None, str(t.bundled_theme_dir())]))"
    )
    res = installed.python("-c", code)
    assert res.returncode == 0, res.stderr
    nl, rt, path, no_runtime, themes = json.loads(res.stdout)
    site = installed.site()
    assert Path(nl).is_relative_to(site) and Path(rt).is_relative_to(site)
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(REPO)], path
    assert no_runtime and not (site / "runtime").exists()
    assert themes == str(site / "netlens" / "themes")


def test_version_shows_both_helpers_native_and_they_run(installed: Installed) -> None:
    if setup_py().compiler() is None:
        pytest.skip("no C compiler: the wheel holds no helpers")
    res = installed.run("--version")
    lines = res.stdout.splitlines()
    site = installed.site()
    python = platform.python_version()
    assert lines[0] == f"netlens {__version__} ({site / 'netlens'}, Python {python})"
    walk = site / "netlens" / "kernel" / "_bin" / "netlens-walk"
    spawn = site / "netlens_runtime" / "_bin" / "netlens-spawn"
    assert [line.split() for line in lines[1:]] == [
        ["netlens-walk", "native", str(walk)],
        ["netlens-spawn", "native", str(spawn)],
    ]
    off = installed.run("--version", NETLENS_WALK_HELPER="0", NETLENS_SPAWN_HELPER="0")
    assert [line.split()[:2] for line in off.stdout.splitlines()[1:]] == [
        ["netlens-walk", "fallback"],
        ["netlens-spawn", "fallback"],
    ]
    # The installed walker decodes a recorded reply exactly as the installed decode.py.
    reply = next(DISCOVERY_FIXTURES.glob("*/netlink/*/link.bin"))
    code = (
        "import marshal, subprocess, sys; from netlens.kernel.decode import DECODERS;"
        "raw = open(sys.argv[2], 'rb').read();"
        "out = subprocess.run([sys.argv[1], 'decode', 'link'], input=raw, capture_output=True);"
        "assert out.returncode == 0, out;"
        "assert marshal.loads(out.stdout) == DECODERS['link'](raw);"
        "print('same')"
    )
    res2 = installed.python("-c", code, str(walk), str(reply))
    assert res2.stdout.strip() == "same", res2.stderr
    # The installed spawner takes an empty job and reports no pids (tests/unit/test_runtime_helper).
    r, w = os.pipe()
    try:
        proc = subprocess.run(
            [str(spawn), str(w)], input=struct.pack("=Iii", 0, -1, -1), pass_fds=[w], timeout=30
        )
    finally:
        os.close(w)
        report = os.read(r, 4096)
        os.close(r)
    assert (proc.returncode, report) == (0, b"")


def test_dump_json_validates_against_the_shipped_schema(
    installed: Installed, saved_dump: Path
) -> None:
    import jsonschema

    shipped = installed.site() / "netlens" / "model" / "schema.json"
    schema = json.loads(shipped.read_text())
    assert schema == json.loads((REPO / "netlens" / "model" / "schema.json").read_text())
    doc = json.loads(saved_dump.read_text())
    jsonschema.validate(doc, schema)
    assert doc["root"] is True and doc["namespaces"]
    compact = installed.run("dump", "--json")
    jsonschema.validate(json.loads(compact.stdout), schema)


def _user_config(installed: Installed) -> dict[str, Any]:
    """A user theme and a keymap in the venv's $XDG_CONFIG_HOME; the pilot's plan."""
    cfg = Path(installed.env["XDG_CONFIG_HOME"]) / "netlens"
    (cfg / "themes").mkdir(parents=True, exist_ok=True)
    text = (REPO / "themes" / "netlens-light.toml").read_text()
    text = text.replace('name = "netlens-light"', 'name = "netlens-user-test"')
    data = tomllib.loads(text)
    data_veth = data["roles"]["veth"]
    text = text.replace(f'veth = "{data_veth}"', 'veth = "#123456"')
    (cfg / "themes" / "user-test.toml").write_text(text)
    (cfg / "keymap.toml").write_text('[keymap]\n"view.density" = "4,9"\n')
    expected = {tomllib.loads(p.read_text())["theme"]["name"]: p for p in THEMES}
    veth = {name: tomllib.loads(p.read_text())["roles"]["veth"] for name, p in expected.items()}
    veth["netlens-user-test"] = "#123456"
    return {"themes": sorted(veth), "veth": veth, "user_key": "9", "variables": ["nl-veth"]}


def test_dashboard_every_view_with_every_theme(installed: Installed, saved_dump: Path) -> None:
    plan = _user_config(installed)
    res = installed.python(str(HERE / "pilot.py"), str(saved_dump), json.dumps(plan))
    assert res.returncode == 0, res.stderr[-4000:]
    report = json.loads(res.stdout)
    site = installed.site()
    assert Path(report["netlens"]).is_relative_to(site)
    assert not [p for p in report["sys_path"] if p and Path(p).resolve().is_relative_to(REPO)]
    assert report["bundled_theme_dir"] == str(site / "netlens" / "themes")
    assert report["loaded"] and report["notes"] == []
    assert set(plan["themes"]) <= set(report["themes"])
    views = ["topology", "vrfs", "containers", "density", "findings"]
    assert [(theme, view) for theme, view, _ in report["seen"]] == [
        (t, v) for t in plan["themes"] for v in views
    ]
    for theme, _, variables in report["seen"]:  # the theme file's roles, not a fallback
        assert variables["nl-veth"].lower() == plan["veth"][theme].lower(), theme
    assert report["after_user_key"] == "density"  # the user's keymap.toml binding


def test_view_of_a_saved_dump_in_a_terminal(installed: Installed, saved_dump: Path) -> None:
    """``netlens view FILE`` from the console script in tmux: it draws, and q quits with 0."""
    if shutil.which("tmux") is None:
        pytest.skip("no tmux")
    sock = f"nl-installed-{RUN_TAG}"
    status = installed.work / "view.status"
    script = f'"{installed.bin}/netlens" view "{saved_dump}"; echo $? > "{status}"; exec sleep 60'
    tmux = ["tmux", "-L", sock]
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "view", "-x", "120", "-y", "40", "sh", "-c", script],
        cwd=installed.work,
        env={**installed.env, "TERM": "xterm-256color"},
        check=True,
        timeout=30,
    )
    try:
        screen = _wait_for_screen(tmux, lambda s: "Topology" in s and "Containers" in s)
        assert "Traceback" not in screen
        subprocess.run([*tmux, "send-keys", "-t", "view", "q"], check=True, timeout=30)
        deadline = time.monotonic() + 60
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        final = _capture(tmux)
        assert status.exists(), final
        assert status.read_text().strip() == "0", final
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


def _capture(tmux: list[str]) -> str:
    res = subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "view"], capture_output=True, text=True, timeout=30
    )
    return res.stdout


def _wait_for_screen(tmux: list[str], ready: Any, limit: float = 60) -> str:
    """The pane once ``ready(text)`` holds (a wait for the app to draw, not a timing check)."""
    deadline = time.monotonic() + limit
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(tmux)
        if ready(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"the dashboard never drew:\n{screen}")


def test_lab_up_and_down(installed: Installed, labstate: Path) -> None:
    """A two-node lab, its batch cloned by the installed netlens-spawn (conftest's
    labstate: a private NETLENS_STATE_DIR torn down pass or fail)."""
    lab = f"nl{RUN_TAG}inst"
    net = f"10.{OCTET}.77"
    path = installed.work / "lab.yaml"
    path.write_text(
        f"name: {lab}\n"
        f"networks:\n  lan: {{subnet: {net}.0/24}}\n"
        "defaults: {command: [sleep, infinity]}\n"
        f"nodes:\n  a: {{ip: {net}.10}}\n  b: {{ip: {net}.11}}\n"
    )
    env = {"NETLENS_STATE_DIR": str(labstate), "NETLENS_SPAWNER": "1"}
    installed.run("lab", "check", str(path))
    installed.run("lab", "check", "demo")  # the bundled lab files, by name
    installed.run("lab", "up", str(path), **env)
    listed = json.loads(installed.run("lab", "ls", "--json", **env).stdout)
    assert [rec["name"] for rec in listed] == [lab]
    ping = installed.run("exec", f"{lab}-a", "--", "ping", "-c", "1", "-W", "5", f"{net}.11", **env)
    assert "1 received" in ping.stdout
    installed.run("lab", "down", lab, **env)
    assert json.loads(installed.run("lab", "ls", "--json", **env).stdout) == []


def test_run_exec_rm(installed: Installed, labstate: Path) -> None:
    name = f"nl{RUN_TAG}-inst"
    env = {"NETLENS_STATE_DIR": str(labstate)}
    installed.run("run", "-d", "--name", name, "--network", "none", "--", "sleep", "inf", **env)
    out = installed.run("exec", name, "--", "ip", "-br", "link", **env)
    assert out.stdout.split()[0] == "lo"
    assert name in installed.run("ps", **env).stdout
    installed.run("rm", "-f", name, **env)
    assert name not in installed.run("ps", **env).stdout


def test_fleet_reports_a_refused_server_in_the_shipped_schema(installed: Installed) -> None:
    """The installed copy's asyncssh and fleet file reading, and its shipped schema: a
    port where nothing listens (bound, never listening) is a row, not a traceback."""
    import socket

    import jsonschema

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        fleet = installed.work / "fleet.yaml"
        port = closed.getsockname()[1]
        fleet.write_text(f"hosts: [{{alias: nowhere, host: 127.0.0.1, port: {port}}}]\n")
        res = installed.run(
            "fleet", "--json", "--file", str(fleet), "--ssh-config", os.devnull, check=False
        )
    assert res.returncode == 1 and res.stderr == "", res.stderr
    doc = json.loads(res.stdout)
    shipped = installed.site() / "netlens" / "fleet" / "fleet_schema.json"
    jsonschema.validate(doc, json.loads(shipped.read_text()))
    assert doc["servers"][0]["state"] == "unreachable"


def test_stats_json_two_samples(installed: Installed) -> None:
    if not is_root():
        pytest.skip("needs root (reads every namespace)")
    res = installed.run("stats", "--json", "--count", "2", "--interval", "0.5")
    docs = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert len(docs) == 2 and all(isinstance(d, dict) for d in docs)
