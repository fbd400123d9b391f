"""Build, trust and find the small C programs netlens runs as root.

Why one module: the runtime's batch spawner (``netlens-spawn``) and discovery's
namespace walker (``netlens-walk``) are both optional C helpers built on the
target machine by the system ``cc``; both are run as root, so both need the
same care about what gets run. A :class:`Program` says what to build (name,
sources, flags, the exit code of a run without arguments) and where (a private
``_bin`` directory); the rules live here once:

- the build is named after the hash of its sources, flags and machine plus the
  link mode, so a stale build, or one copied from another architecture, is
  never run; static first (no dynamic loader work at start), then dynamic;
- it is built under a lock into a temporary name (umask 077) and renamed, so
  two processes building at once both end with the same complete file;
- a fresh build is run once (without arguments it must exit with its usage
  code) before it is kept;
- only a regular file (not a symlink) owned by us and writable by nobody else,
  in a directory of ours that nobody else can write, is ever run.

What is not checked: the sources, the compiler and the directories above
``_bin``. Whoever can write those can already change the Python files that
root runs, so the checks keep a build from being swapped or shared, not the
tree from its owner.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from typing import Any

# Finding a build runs before discovery's walker starts, where every import
# counts: hashlib (OpenSSL), platform and subprocess cost milliseconds, so the
# digest comes from the builtin module and the rest is imported when building.
_sha: Any
try:
    import _sha2  # type: ignore[import-not-found,unused-ignore]  # Python >= 3.12

    _sha = _sha2.sha256
except ImportError:
    try:
        import _sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.11

        _sha = _sha256.sha256
    except ImportError:  # pragma: no cover - an interpreter built without either
        import hashlib

        _sha = hashlib.sha256

FAILED_RETRY_S = 86400.0
"""A recorded build failure is trusted this long; then a build on first use
tries again (a header package installed since, say)."""

LINKS: dict[str, list[str]] = {"static": ["-static"], "dynamic": []}  # tried in this order
DEFAULT_FLAGS = ("-O2", "-Wall", "-Wextra")
COMPILE_TIMEOUT = 120.0


class Program:
    """One optional C helper: what it is built from and where it lives.

    A plain class, not a dataclass: the decorator's code generation cost
    milliseconds at import, on the path that starts discovery's walker."""

    def __init__(
        self,
        name: str,
        sources: tuple[str, ...],
        bin_dir: str,
        flags: tuple[str, ...] = DEFAULT_FLAGS,
        usage_exit: int = 2,
        compile_timeout: float = COMPILE_TIMEOUT,
        machine: str | None = None,
        headers: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        """File name prefix (``netlens-walk``); builds are ``NAME-HASH-LINK``."""
        self.sources = tuple(sources)
        """Absolute paths of the ``.c`` files, compiled together (the hash covers them)."""
        self.headers = tuple(headers)
        """Files the sources include: hashed with them, not compiled."""
        self.bin_dir = bin_dir
        """Private directory of the builds (created 0755 on first build)."""
        self.flags = tuple(flags)
        self.usage_exit = usage_exit
        """What the program exits with when run without arguments: its "it starts" check."""
        self.compile_timeout = compile_timeout
        self.machine = machine if machine is not None else os.uname().machine
        """Part of the build's name: a build from another architecture is never run."""

    def key(self) -> tuple[object, ...]:
        """What identifies a build (:class:`Finder` caches by it)."""
        return (self.name, self.sources, self.headers, self.bin_dir, self.flags, self.machine)

    def binary_path(self, link: str = "static") -> str:
        """Where the ``link`` build for these sources and this machine lives (it
        may not exist yet)."""
        digest = _sha()
        for source in (*self.sources, *self.headers):
            with open(source, "rb") as fh:
                digest.update(fh.read())
        digest.update(" ".join([*self.flags, self.machine]).encode())
        return os.path.join(self.bin_dir, f"{self.name}-{digest.hexdigest()[:12]}-{link}")

    def dir_trusted(self) -> bool:
        """The build directory is a real directory of ours: nobody else can swap
        files in it."""
        try:
            st = os.lstat(self.bin_dir)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and owned_not_shared(st)

    def trusted(self, path: str) -> bool:
        """A regular file (not a symlink), ours and writable by nobody else, in
        a directory of ours: we run it as root."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return (
            stat.S_ISREG(st.st_mode)
            and owned_not_shared(st)
            and os.access(path, os.X_OK)
            and os.path.dirname(os.path.abspath(path)) == os.path.abspath(self.bin_dir)
            and self.dir_trusted()
        )

    def existing(self) -> str | None:
        """The trusted build for the current sources, if one is there."""
        for link in LINKS:
            try:
                path = self.binary_path(link)
            except OSError:
                return None  # a source is missing: nothing can match it
            if self.trusted(path):
                return path
        return None

    def starts(self, path: str) -> bool:
        """Run without arguments it exits with its usage code: it loads and runs here."""
        import subprocess

        try:
            res = subprocess.run(
                [path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return res.returncode == self.usage_exit

    def build(self, quiet: bool = True) -> str | None:
        """Compile the program if needed; its path, or None without a working ``cc``
        (or without its sources, or when the directory is not ours). ``quiet``
        (a build on first use, inside a command) also gives up at once where the
        compiler refused these sources with this compiler in the last day (see
        :meth:`failed_marker`); an explicit build (setup) always tries."""
        if not all(os.path.isfile(s) for s in (*self.sources, *self.headers)):
            if not quiet:
                print(f"{self.name}: sources missing", file=sys.stderr)
            return None
        found = self.existing()
        if found is not None:
            return found
        cc = compiler()
        if cc is None:
            return None
        try:
            if quiet and self._failed_before(cc):
                return None
            os.makedirs(self.bin_dir, mode=0o755, exist_ok=True)
            if not self.dir_trusted():
                if not quiet:
                    print(
                        f"{self.name}: {self.bin_dir} is not a directory of ours", file=sys.stderr
                    )
                return None
            with contextlib.suppress(FileExistsError):
                fd = _open_new(os.path.join(self.bin_dir, ".gitignore"), 0o644)
                try:
                    os.write(fd, b"*\n")
                finally:
                    os.close(fd)
            import fcntl

            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            lock = os.open(os.path.join(self.bin_dir, ".lock"), flags, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                found = self.existing()
                if found is not None:
                    return found
                return self._compile(cc, quiet)
            finally:
                os.close(lock)
        except OSError:
            return None

    def failed_marker(self) -> str:
        """A file saying the compiler (named inside) refused these sources here: a
        build on first use then falls back at once instead of running the
        compiler again on every start. Only a compile error writes it (not a
        timeout or a killed compiler); it counts for :data:`FAILED_RETRY_S` and
        for the same compiler; an explicit build (``quiet=False``, what setup
        runs) tries again, and any success removes it."""
        return self.binary_path("failed")

    def _failed_before(self, cc: list[str]) -> bool:
        import time

        try:
            fd = os.open(self.failed_marker(), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            recent = time.time() - os.fstat(fd).st_mtime < FAILED_RETRY_S
            return recent and os.read(fd, 4096).decode(errors="replace") == " ".join(cc)
        finally:
            os.close(fd)

    def _compile(self, cc: list[str], quiet: bool) -> str | None:
        """Build each link mode in turn until one compiles and starts (lock held)."""
        import subprocess

        refused = True  # every attempt ended in a compile error or a build that does not
        # start (not a timeout, not a killed compiler)
        for link, extra in LINKS.items():
            target = self.binary_path(link)
            tmp = f"{target}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            try:
                res = subprocess.run(
                    [*cc, *self.flags, *extra, "-o", tmp, *self.sources],
                    capture_output=True,
                    text=True,
                    timeout=self.compile_timeout,
                    umask=0o077,  # never group/world writable, not even for an instant;
                    # the compiler's umask only: other threads of ours keep theirs
                )
                ok = res.returncode == 0
                err = res.stderr
                refused = refused and res.returncode >= 0  # < 0: killed by a signal
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, err, refused = False, str(exc), False
            if ok:
                os.chmod(tmp, 0o755)
                if self.starts(tmp):
                    os.rename(tmp, target)
                    for old in os.listdir(self.bin_dir):  # builds of older sources or machines
                        path = os.path.join(self.bin_dir, old)
                        if old.startswith(f"{self.name}-") and path != target:
                            with contextlib.suppress(OSError):
                                os.unlink(path)
                    return target if self.trusted(target) else None
                err = f"{link} build does not start on this machine"
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if not quiet:
                print(err, file=sys.stderr)
        if refused:
            marker = self.failed_marker()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(marker)  # another compiler's
            with contextlib.suppress(OSError):
                fd = _open_new(marker, 0o644)
                try:
                    os.write(fd, " ".join(cc).encode())
                finally:
                    os.close(fd)
        return None


def build_main(program: Program) -> int:
    """``python3 -m MODULE`` for a C helper (what setup runs): build now, also
    after a recorded failure, and print the build's path; 1 when there is none."""
    path = program.build(quiet=False)
    if path is None:
        print(f"{program.name}: not built (no working C compiler)", file=sys.stderr)
        return 1
    print(path)
    return 0


def owned_not_shared(st: os.stat_result) -> bool:
    """Owned by us and writable by neither group nor others."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def compiler() -> list[str] | None:
    """``$CC`` split like a shell would, else ``cc`` or ``gcc`` from PATH."""
    import shlex
    import shutil

    env = shlex.split(os.environ.get("CC", ""))
    if env:
        return env
    cc = shutil.which("cc") or shutil.which("gcc")
    return [cc] if cc else None


def _open_new(path: str, mode: int) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


class Finder:
    """The build to run for one :class:`Program`, found (or built) once per
    process; a build that failed at run time can be forgotten for the rest of it."""

    def __init__(self, env_var: str) -> None:
        self.env_var = env_var
        """``ENV_VAR=0`` turns the program off (the Python path is used)."""
        self._found: dict[tuple[object, ...], str | None] = {}

    def find(self, program: Program) -> str | None:
        """The trusted build, building it on first use; None: off, or cannot be built."""
        if os.environ.get(self.env_var) == "0":
            return None
        key = program.key()
        if key not in self._found or (
            (path := self._found[key]) is not None and not program.trusted(path)
        ):
            self._found[key] = program.build()
        return self._found[key]

    def forget(self, program: Program) -> None:
        """The build failed at run time: not used again in this process."""
        self._found[program.key()] = None
