"""The build steps pyproject.toml cannot declare: netlens's two C helpers and its themes.

Everything else about the package (metadata, dependencies, packages, package data)
is in pyproject.toml. This file adds three things to setuptools' build, so that
``pip install .``, ``pipx install .``, a wheel from ``python -m build`` and the
editable install of a checkout all give the same product:

- ``build_helpers`` compiles ``netlens-walk`` (netlens/kernel/walk.c and
  walk_decode.c: discovery's namespace walker) and ``netlens-spawn``
  (runtime/netlens_runtime/spawn_helper.c and log_helper.c: the runtime's batch
  spawner and its containers' logger) with the
  system ``cc`` (``$CC``) into ``_bin/`` beside the module that finds each one
  (netlens/kernel/walker.py, netlens_runtime/helper.py). Nothing is compiled
  at run time. Without a working compiler the build still succeeds: it says
  why on stderr and the product uses its Python fallbacks (``netlens --version``
  tells which). Static first (no dynamic loader work when the walker starts, and
  a wheel that runs on any glibc), then dynamic; a program is kept only if it
  starts here (run without arguments it exits with its usage code).
- ``build_py`` copies the top-level ``themes/*.toml`` (the source folder) into the
  package as ``netlens/themes/``; a checkout reads ``themes/`` directly.
- ``bdist_wheel`` tags the wheel ``py3-none-<platform>``: it holds programs for this
  machine (any Python 3, no Python ABI).

A checkout (``make setup``) runs ``python3 setup.py -q build_helpers --inplace``: it
compiles into the source tree when a program is missing or older than its sources
or this file, so a changed walk.c is never run from a stale build. The editable
install (``pip install -e .``) does the same.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from glob import glob
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Helper:
    """One C program shipped in a package's ``_bin/``."""

    name: str
    package: str
    """The import name of the package it belongs to (its ``_bin/`` holds the build)."""
    sources: tuple[str, ...]
    """Compiled together; paths relative to the project root."""
    headers: tuple[str, ...] = ()
    """Included by the sources: part of the staleness check, not compiled."""
    usage_exit: int = 2
    """What it exits with when run without arguments: the "it starts here" check."""


HELPERS = (
    Helper(
        "netlens-walk",
        "netlens.kernel",
        ("netlens/kernel/walk.c", "netlens/kernel/walk_decode.c"),
        ("netlens/kernel/walk_decode.h",),
    ),
    Helper(
        "netlens-spawn",
        "netlens_runtime",
        ("runtime/netlens_runtime/spawn_helper.c", "runtime/netlens_runtime/log_helper.c"),
    ),
)
FLAGS = ("-O2", "-Wall", "-Wextra")
LINKS = (("static", ("-static",)), ("dynamic", ()))
"""Link modes tried in this order."""
COMPILE_TIMEOUT = 300.0
THEMES = "themes"
"""The top-level source folder of the bundled themes; installed as ``netlens/themes``."""


def compiler() -> list[str] | None:
    """``$CC`` split like a shell would, else ``cc`` or ``gcc`` from PATH."""
    env = shlex.split(os.environ.get("CC", ""))
    if env:
        return env
    cc = shutil.which("cc") or shutil.which("gcc")
    return [cc] if cc else None


def compile_helper(helper: Helper, out_dir: str, root: str = HERE) -> tuple[str | None, str]:
    """Build ``helper`` into ``out_dir/<name>``: (its path, "") or (None, why not).

    Never raises for a missing or failing compiler: the caller goes on without the
    program. The file is written under another name (umask 077, so it is never
    writable by others, not even for an instant) and renamed once it starts here.
    """
    cc = compiler()
    if cc is None:
        return None, "no C compiler (set CC, or install cc/gcc)"
    sources = [os.path.join(root, s) for s in helper.sources]
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, helper.name)
    tmp = f"{target}.tmp{os.getpid()}"
    why = ""
    for link, extra in LINKS:
        try:
            res = subprocess.run(
                [*cc, *FLAGS, *extra, "-o", tmp, *sources],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
                umask=0o077,
            )
            ok, err = res.returncode == 0, res.stderr.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            ok, err = False, str(exc)
        if ok:
            os.chmod(tmp, 0o755)
            if _starts(tmp, helper.usage_exit):
                os.replace(tmp, target)
                return target, ""
            err = "the program does not start on this machine"
        lines = err.splitlines() or ["no message"]
        why = f"{link} build failed: " + next((x for x in lines if "error" in x), lines[-1])
        if os.path.exists(tmp):
            os.unlink(tmp)
    return None, why


def _starts(path: str, usage_exit: int) -> bool:
    """Run without arguments, the program exits with its usage code: it loads and runs."""
    try:
        res = subprocess.run([path], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == usage_exit


def stale(helper: Helper, target: str, root: str = HERE) -> bool:
    """The build is missing or older than a source, a header or this file (its flags)."""
    try:
        built = os.stat(target).st_mtime
    except OSError:
        return True
    inputs = [os.path.join(root, p) for p in (*helper.sources, *helper.headers)]
    return any(os.stat(p).st_mtime > built for p in [*inputs, os.path.abspath(__file__)])


def theme_files(root: str = HERE) -> list[str]:
    """The bundled theme files, relative to the project root (sorted)."""
    return sorted(os.path.relpath(p, root) for p in glob(os.path.join(root, THEMES, "*.toml")))


def _commands() -> dict[str, Any]:
    """setuptools command classes (imported here so that tests can import this file)."""
    from setuptools import Command
    from setuptools.command.build import build
    from setuptools.command.build_py import build_py

    class BuildHelpers(Command):
        """Compile the C helpers into the build (or, in place, into the checkout)."""

        description = "compile netlens-walk and netlens-spawn (optional C helpers)"
        user_options = [("inplace", "i", "build into the source tree (a checkout)")]
        boolean_options = ["inplace"]

        def initialize_options(self) -> None:
            self.inplace = False
            self.editable_mode = False
            self.build_lib: str | None = None

        def finalize_options(self) -> None:
            self.set_undefined_options("build", ("build_lib", "build_lib"))
            self.inplace = bool(self.inplace or self.editable_mode)

        def _out_dir(self, helper: Helper) -> str:
            if self.inplace:
                package_dir = self.get_finalized_command("build_py").get_package_dir
                return os.path.join(HERE, package_dir(helper.package), "_bin")
            assert self.build_lib is not None
            return os.path.join(self.build_lib, *helper.package.split("."), "_bin")

        def run(self) -> None:
            for helper in HELPERS:
                out_dir = self._out_dir(helper)
                target = os.path.join(out_dir, helper.name)
                if self.inplace:  # hash-named builds of the old build-at-first-use,
                    # and what an interrupted build left
                    for pattern in (f"{helper.name}-*", f"{helper.name}.tmp*"):
                        for old in glob(os.path.join(out_dir, pattern)):
                            os.unlink(old)
                    if not stale(helper, target):
                        continue
                path, why = compile_helper(helper, out_dir)
                if path is None:
                    if os.path.exists(target):  # never leave an older build behind
                        os.unlink(target)
                    print(
                        f"netlens: {helper.name} not built ({why}); the Python fallback runs",
                        file=sys.stderr,
                    )

        def get_outputs(self) -> list[str]:
            if self.inplace:
                return []
            return [os.path.join(self._out_dir(h), h.name) for h in HELPERS]

        def get_output_mapping(self) -> dict[str, str]:
            return {}  # in place: nothing to map

        def get_source_files(self) -> list[str]:
            return [p for h in HELPERS for p in (*h.sources, *h.headers)]

    class BuildPy(build_py):
        """build_py, plus the top-level themes/ copied into the package."""

        def _theme_outputs(self) -> list[tuple[str, str]]:
            dest = os.path.join(self.build_lib, "netlens", THEMES)
            return [(p, os.path.join(dest, os.path.basename(p))) for p in theme_files()]

        def run(self) -> None:
            super().run()
            if getattr(self, "editable_mode", False):
                return  # a checkout reads themes/ itself
            for src, dst in self._theme_outputs():
                self.mkpath(os.path.dirname(dst))
                self.copy_file(os.path.join(HERE, src), dst)

        def get_outputs(self, include_bytecode: bool = True) -> list[str]:
            extra = [dst for _, dst in self._theme_outputs()]
            return [*super().get_outputs(include_bytecode), *extra]

        def get_source_files(self) -> list[str]:
            return [*super().get_source_files(), *theme_files()]

    class Build(build):
        sub_commands = [*build.sub_commands, ("build_helpers", None)]

    commands: dict[str, Any] = {"build": Build, "build_py": BuildPy, "build_helpers": BuildHelpers}
    try:
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:  # setuptools < 70.1 (the dev step never builds a wheel)
        return commands

    class BdistWheel(bdist_wheel):
        """A wheel with programs for this machine: platform-tagged, Python-ABI free."""

        def get_tag(self) -> tuple[str, str, str]:
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    commands["bdist_wheel"] = BdistWheel
    return commands


def _distribution() -> Any:
    """A distribution that says it has platform code (the helpers), so that the
    wheel installs into platlib as one tree and is not tagged pure."""
    from setuptools import Distribution

    class WithPrograms(Distribution):
        def has_ext_modules(self) -> bool:
            return True

    return WithPrograms


if __name__ == "__main__":
    from setuptools import setup

    setup(cmdclass=_commands(), distclass=_distribution())
