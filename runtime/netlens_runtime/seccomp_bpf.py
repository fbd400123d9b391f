"""A compact classic-BPF program for the default seccomp profile on a 64-bit machine.

Why not libseccomp's program: every container's PID 1 loads the filter, and
the kernel's work there (checking the program, converting and JIT-compiling
it, and emulating it once per system call number for its allow cache) grows
with the program's length. libseccomp spends one comparison per named call:
508 instructions for the default profile on x86_64. An allowlist is mostly
long runs of consecutive call numbers with the same outcome, so this program
compares against run boundaries in a binary search (~60 runs on x86_64):
183 instructions, loaded in about half the time.

It is used only for the default profile with the machine's own ABI (x86_64 or
aarch64), whose rules use no argument comparisons but ``SCMP_CMP_EQ`` and
``SCMP_CMP_MASKED_EQ``; anything else (a user's profile, 32-bit ABIs) is
compiled by libseccomp (:mod:`netlens_runtime.seccomp`). Its decisions are
tested against libseccomp's program for every call number and the arguments
that matter (tests/unit/test_seccomp_profile.py), so the two may differ in
length only.

Layout: the architecture check (a foreign ABI kills the process, as
libseccomp's does; on x86_64 so does an x32 call number), then the tree over
call numbers; a leaf returns an action, or for a call with argument rules
checks them (most restrictive action first) and falls back to the default.
"""

from __future__ import annotations

import struct

from netlens_runtime.seccomp_profile import ACTIONS, OPS, Resolved, Rule

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_BIT = 0x40000000
MAX_INSNS = 4096  # BPF_MAXINSNS

# classic BPF opcodes (linux/bpf_common.h)
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_JA = 0x05  # BPF_JMP | BPF_JA
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_NR, _ARCH, _ARGS = 0, 4, 16  # struct seccomp_data offsets

# Most restrictive first, as the kernel ranks actions.
_RANK = [
    ACTIONS["SCMP_ACT_KILL_PROCESS"],
    ACTIONS["SCMP_ACT_KILL_THREAD"],
    ACTIONS["SCMP_ACT_TRAP"],
    ACTIONS["SCMP_ACT_ERRNO"],
    ACTIONS["SCMP_ACT_TRACE"],
    ACTIONS["SCMP_ACT_LOG"],
    ACTIONS["SCMP_ACT_ALLOW"],
]


class Unsupported(Exception):
    """This profile is for libseccomp (foreign ABIs, comparisons not handled here)."""


def _rank(action: int) -> int:
    return _RANK.index(action & 0xFFFF0000)  # the low 16 bits are the action's data


class _Asm:
    """Instructions with symbolic jump targets, resolved to offsets at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, object, object, object]] = []
        self.at: dict[object, int] = {}

    def label(self) -> object:
        return object()

    def place(self, label: object) -> None:
        self.at[label] = len(self.code)

    def emit(self, op: int, k: object = 0, jt: object = 0, jf: object = 0) -> None:
        self.code.append((op, jt, jf, k))

    def assemble(self) -> bytes:
        out = []
        for i, (op, jt, jf, k) in enumerate(self.code):

            def rel(target: object, i: int = i) -> int:
                return target if isinstance(target, int) else self.at[target] - (i + 1)

            if op == _JA:
                out.append(struct.pack("=HBBI", op, 0, 0, rel(k)))
                continue
            t, f = rel(jt), rel(jf)
            if not (0 <= t <= 255 and 0 <= f <= 255):
                raise Unsupported("a jump longer than 255 instructions")
            assert isinstance(k, int)
            out.append(struct.pack("=HBBI", op, t, f, k))
        if len(out) > MAX_INSNS:
            raise Unsupported(f"{len(out)} instructions")
        return b"".join(out)


def build(plan: Resolved, numbers: dict[str, int], machine: str) -> bytes:
    """The program for ``plan`` (one ABI: ``machine``'s), with ``numbers`` from libseccomp."""
    if plan.arches != (machine,) or machine not in AUDIT_ARCH:
        raise Unsupported("only the machine's own ABI")
    per_nr: dict[int, list[Rule]] = {}
    for rule in plan.rules:
        nr = numbers.get(rule.name)
        if nr is None:
            continue  # not a call of this ABI (or unknown to libseccomp)
        for arg in rule.args:
            if arg.op not in (OPS["SCMP_CMP_EQ"], OPS["SCMP_CMP_MASKED_EQ"]):
                raise Unsupported("an argument comparison other than EQ and MASKED_EQ")
        per_nr.setdefault(nr, []).append(rule)
    # Two names for one number: the first rule without conditions decides, as in resolve().
    for nr, rules in per_nr.items():
        plain = [r for r in rules if not r.args]
        if plain:
            per_nr[nr] = plain[:1]
    # Consecutive numbers with the same outcome (no rule: the default) form one run;
    # a call with argument rules is a run of its own. The last run goes on for ever.
    runs: list[tuple[int, tuple[Rule, ...]]] = []  # (first number, rules)
    last: object = None
    for nr in range(0, max(per_nr, default=-1) + 2):
        here = tuple(per_nr.get(nr, ()))
        outcome = None if any(r.args for r in here) else tuple(r.action for r in here)
        if outcome is None or outcome != last:
            runs.append((nr, here))
        last = outcome
    asm = _Asm()
    bad = ACTIONS["SCMP_ACT_KILL_PROCESS"]
    kill, tree = asm.label(), asm.label()
    asm.emit(_LD_ABS, _ARCH)
    asm.emit(_JEQ, AUDIT_ARCH[machine], 0, kill)
    asm.emit(_LD_ABS, _NR)
    if machine == "x86_64":  # x32 numbers: not filtered here, so refused like a foreign ABI
        asm.emit(_JGE, X32_BIT, 0, tree)
        asm.emit(_JEQ, 0xFFFFFFFF, 0, kill)
        asm.emit(_RET, plan.default)  # -1: a tracer skipped the call
    asm.place(tree)
    _tree(asm, runs, plan.default)
    asm.place(kill)
    asm.emit(_RET, bad)
    return asm.assemble()


def _tree(asm: _Asm, runs: list[tuple[int, tuple[Rule, ...]]], default: int) -> None:
    """Binary search over the runs' first numbers (the accumulator holds the number)."""
    if len(runs) == 1:
        _leaf(asm, runs[0][1], default)
        return
    mid = len(runs) // 2
    right = asm.label()
    asm.emit(_JGE, runs[mid][0], right, 0)
    _tree(asm, runs[:mid], default)
    asm.place(right)
    _tree(asm, runs[mid:], default)


def _leaf(asm: _Asm, rules: tuple[Rule, ...], default: int) -> None:
    if not rules:
        asm.emit(_RET, default)
        return
    if not any(r.args for r in rules):
        asm.emit(_RET, rules[0].action)
        return
    # Argument rules (an unconditional one never sits beside them: see resolve()).
    for rule in sorted(rules, key=lambda r: _rank(r.action)):
        checks = []  # (offset of a 32-bit half, mask, expected value)
        for arg in rule.args:
            if arg.op == OPS["SCMP_CMP_EQ"]:
                mask, value = 0xFFFFFFFFFFFFFFFF, arg.a
            else:  # MASKED_EQ: value is the mask, valueTwo the expected bits
                mask, value = arg.a, arg.b
            for off, shift in ((_ARGS + 8 * arg.index + 4, 32), (_ARGS + 8 * arg.index, 0)):
                checks.append((off, mask >> shift & 0xFFFFFFFF, value >> shift & 0xFFFFFFFF))
        if any(m == 0 and v != 0 for _, m, v in checks):
            continue  # (x & 0) == v != 0: the rule can never match
        nxt = asm.label()
        for off, m, v in checks:
            if m == 0:
                continue  # (x & 0) == 0: always true
            asm.emit(_LD_ABS, off)
            if m != 0xFFFFFFFF:
                asm.emit(_AND_K, m)
            asm.emit(_JEQ, v, 0, nxt)
        asm.emit(_RET, rule.action)
        asm.place(nxt)
    asm.emit(_RET, default)
