"""Big batches: clone PID 1s from small helper processes instead of from ourselves.

The job goes to the C program ``netlens-spawn`` (spawn_helper.c, the same steps
as :func:`netlens_runtime.spawn.clone_child`; built with the package, see
netlens_runtime.helper) as a binary record (:func:`encode_job`), or, without it,
to a fresh Python running :data:`_SPAWNER`. Why a helper at all is
:func:`start_many`'s docstring; :mod:`netlens_runtime.spawn` is the one-child path
and the child's own steps.
"""

from __future__ import annotations

import os
from typing import Any

from netlens_runtime.spawn import Child, Plan


def _import_roots() -> str:
    """The directories holding netlens_runtime and netlens.kernel (one directory when
    installed, two in a checkout), joined for the ``-S -I`` spawner's sys.path."""
    import netlens.kernel

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kernel = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(netlens.kernel.__file__)))
    )
    return os.pathsep.join(dict.fromkeys((here, kernel)))


# Reports on the fd in argv[2]: "pid pid ..." or "!error". Its stdio goes to
# /dev/null first: the children inherit it until they close it, and a pipe
# held by children waiting for ``go`` would never reach EOF.
_SPAWNER = """
import os, pickle, sys
out = int(sys.argv[2])
try:
    sys.path[:0] = sys.argv[1].split(os.pathsep)
    from netlens_runtime import logger, spawn
    job = pickle.load(sys.stdin.buffer)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for _, go_r, err_w, _ in job["children"]:  # clone copies them; no logger may inherit them
        os.set_inheritable(go_r, False)
        os.set_inheritable(err_w, False)
    pids = []
    for plan, go_r, err_w, cg_path in job["children"]:
        cg = os.open(cg_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cg_path else -1
        log = -1
        try:
            if plan.log_path is not None:
                log = logger.start(plan.log_path, plan.log_max, job["logger"])
            pids.append(spawn.clone_child(plan, go_r, err_w, log, job["tini"], cg, job["template"]))
        finally:
            for fd in (cg, log):
                if fd >= 0:
                    os.close(fd)
            os.close(go_r)
            os.close(err_w)
    os.write(out, " ".join(map(str, pids)).encode())
except BaseException as err:
    os.write(out, ("!" + repr(err)).encode())
"""


# Flags of the job record (spawn_helper.c's header comment has the layout).
FS_PRIVILEGED = 1
VOL_RDONLY, VOL_MKDIR, VOL_MKFILE = 1, 2, 4
_VOL_CREATE = {"": 0, "dir": VOL_MKDIR, "file": VOL_MKFILE}


class _NativeBroken(OSError):
    """netlens-spawn could not run here (exec failed, or it died without a word)."""


def start_many(
    plans: list[Plan],
    tini_fd: int,
    cgroup_dirs: list[str | None],
    template_fd: int,
    helpers: int = 1,
) -> list[Child]:
    """Clone many PID 1s from small helper processes instead of from ourselves.

    Cloning copies the page tables of the cloning process, and every page the
    children or we then write is copied again (copy-on-write): from a big
    process (a test runner, a TUI) that costs milliseconds per container. A
    fresh ``python -S -I`` costs ~20 ms once and clones cheaply, but its
    children still run Python until exec, copying every page they touch
    (~2.7 ms of CPU per container at 100); children of ``netlens-spawn`` run C
    (100 nodes: 6.4 -> 2.7 ms/node). Either's children outlive it (they are
    re-parented to init); EOF on ``go`` still tells them that we died.
    ``helpers`` > 1 splits the batch over that many helpers running at once
    (it did not pay on 2 cores, see create._helpers).

    A ``netlens-spawn`` that cannot run (copied from another machine, built
    against another C library: exec fails, or it exits without any report)
    is dropped for the rest of the process and the batch is cloned again by
    the Python spawner; whatever the first try made was aborted before.
    """
    from netlens_runtime import helper as native

    program = native.find()
    if program is not None:
        try:
            return _start_many(plans, tini_fd, cgroup_dirs, template_fd, helpers, program)
        except _NativeBroken:
            native.forget()
    return _start_many(plans, tini_fd, cgroup_dirs, template_fd, helpers, None)


def _start_many(
    plans: list[Plan],
    tini_fd: int,
    cgroup_dirs: list[str | None],
    template_fd: int,
    helpers: int,
    program: str | None,
) -> list[Child]:
    """One try of :func:`start_many` with ``program`` (None: the Python spawner)."""
    import pickle
    import subprocess
    import sys

    pipes: list[tuple[int, int, int, int]] = []
    launched: list[tuple[subprocess.Popen[bytes], int, int, int]] = []  # proc, res_r, lo, hi
    reports: list[tuple[int, str]] = []
    try:
        for _ in plans:
            go_r, go_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            pipes.append((go_r, go_w, err_r, err_w))
        for plan in plans:
            plan.pdeathsig = False
        root = _import_roots()
        helpers = max(1, min(helpers, len(plans)))
        step = -(-len(plans) // helpers)
        for lo in range(0, len(plans), step):
            hi = min(lo + step, len(plans))
            part = pipes[lo:hi]
            passed = [tini_fd, template_fd] + [fd for g, _, _, e in part for fd in (g, e)]
            work = [
                (plan, g, e, cg)
                for plan, (g, _, _, e), cg in zip(
                    plans[lo:hi], part, cgroup_dirs[lo:hi], strict=True
                )
            ]
            if program is not None:
                payload = encode_job(work, tini_fd, template_fd)
                argv = [program, "RES"]
            else:
                # No netlens-spawn here (none, or it failed): no C logger either.
                payload = pickle.dumps(
                    {"tini": tini_fd, "template": template_fd, "children": work, "logger": None}
                )
                argv = [sys.executable, "-S", "-I", "-c", _SPAWNER, root, "RES"]
            res_r, res_w = os.pipe2(os.O_CLOEXEC)
            argv[argv.index("RES")] = str(res_w)
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    pass_fds=[fd for fd in [*passed, res_w] if fd >= 0],
                )
            except BaseException as err:
                os.close(res_r)
                if program is not None and isinstance(err, OSError):
                    raise _NativeBroken(f"netlens-spawn cannot run: {err}") from err
                raise
            finally:
                os.close(res_w)
            launched.append((proc, res_r, lo, hi))
            try:
                assert proc.stdin is not None
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it died: its report (or its exit code) says why
        for proc, res_r, _, _ in launched:
            chunks = []
            while chunk := os.read(res_r, 65536):
                chunks.append(chunk)
            proc.wait()
            reports.append((proc.returncode, b"".join(chunks).decode(errors="replace")))
    except BaseException:
        for _, go_w, err_r, _ in pipes:  # children already cloned see EOF on go and exit
            os.close(go_w)
            os.close(err_r)
        raise
    finally:
        for _, res_r, _, _ in launched:
            os.close(res_r)
        for proc, _, _, _ in launched:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
        for go_r, _, _, err_w in pipes:
            os.close(go_r)
            os.close(err_w)
    children: list[Child] = []
    failure = ""
    # Not even "!error": it never reached its main (dynamic loader, wrong machine).
    broken = program is not None and any(not report for _, report in reports)
    for (_, _, lo, hi), (code, report) in zip(launched, reports, strict=True):
        # "pid pid ...", then "!error" if it stopped early (the C program
        # reports the children it made before the error: they are aborted).
        cloned, _, error = report.partition("!")
        try:
            pids = [int(x) for x in cloned.split()]
        except ValueError:
            pids, error = [], report
        children += [
            Child(pid, go_w, err_r)
            for pid, (_, go_w, err_r, _) in zip(pids, pipes[lo:hi], strict=False)
        ]
        for _, go_w, err_r, _ in pipes[lo + len(pids) : hi]:
            os.close(go_w)
            os.close(err_r)
        if (code != 0 or len(pids) != hi - lo) and not failure:
            failure = error[:300] or str(code)
    if failure or broken:
        for child in children:
            child.abort()
        if broken:
            raise _NativeBroken(f"netlens-spawn failed without a report: {failure}")
        raise OSError(f"container spawner failed: {failure}")
    return children


def encode_job(
    work: list[tuple[Plan, int, int, str | None]], tini_fd: int, template_fd: int
) -> bytes:
    """The job for ``netlens-spawn`` (layout documented in spawn_helper.c).

    Native byte order ("="): the C program reads the integers as they lie in memory.
    """
    import struct

    def text(value: str | bytes) -> bytes:
        raw = value.encode() if isinstance(value, str) else value
        return struct.pack("=I", len(raw)) + raw

    def requests(reqs: Any) -> bytes:
        msgs = [msg for _, msg, _ in reqs.queue] if reqs is not None else []
        return text(b"".join(msgs)) + struct.pack("=I", len(msgs))

    from netlens_runtime.errors import RuntimeFailure

    out = [struct.pack("=Iii", len(work), tini_fd, template_fd)]
    for plan, go_r, err_w, cgroup in work:
        strings = [plan.hostname, *plan.argv, *plan.env, *plan.env.values()]
        if any("\0" in x for x in strings):  # C strings would silently end there
            raise RuntimeFailure(f"{plan.name}: embedded null byte in the command or environment")
        if plan.netns_path is not None:  # joining a held namespace is the Python child's
            raise RuntimeFailure(f"{plan.name}: a held network namespace cannot be batched")
        soft, hard = plan.nofile if plan.nofile is not None else (-1, -1)
        half = max(plan.log_max // 2, 1)
        out.append(struct.pack("=iiQqqq", go_r, err_w, plan.caps, soft, hard, half))
        out += [text(plan.name), text(plan.hostname), text(plan.log_path or ""), text(cgroup or "")]
        out.append(struct.pack("=II", FS_PRIVILEGED if plan.privileged else 0, len(plan.volumes)))
        for host, target, read_only, create in plan.volumes:
            flags = (VOL_RDONLY if read_only else 0) | _VOL_CREATE[create]
            out += [text(host), text(target), struct.pack("=I", flags)]
        out += [requests(plan.nl_pre), requests(plan.nl_post)]
        out.append(struct.pack("=I", len(plan.sysctls)))
        out += [text(x) for pair in plan.sysctls for x in pair]
        out.append(struct.pack("=I", len(plan.argv)))
        out += [text(arg) for arg in plan.argv]
        out.append(struct.pack("=I", len(plan.env)))
        out += [text(f"{k}={v}") for k, v in plan.env.items()]
        out.append(struct.pack("=I", 1 if plan.privileged else 0))
        out.append(text(plan.seccomp or b""))
    return b"".join(out)
