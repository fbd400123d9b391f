"""Shell completion: the generated bash and zsh scripts, run by the real shells.

bash: the script is sourced and ``_netlens`` called with COMP_WORDS split the way
bash splits them (``=`` and ``:`` are words of their own), then COMPREPLY is
read back. zsh: the completion system's builtins (compadd, _describe, _files)
are stubbed to print what they were given, so the test sees what ``_netlens``
offers; a second test loads the script under the real ``compinit``, both
sourced and from ``$fpath``. Names come from a fake state directory.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netlens.cli import build_parser
from netlens.shellcomp import KINDS, script, walk

pytestmark = pytest.mark.unit

SEP = "\x1f"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A state dir (3 containers, 1 network, 1 lab), a user theme and a cwd with files."""
    state = tmp_path / "state"
    for kind, names in (("containers", ["web1", "web2", "db"]), ("networks", ["lan"]),
                        ("labs", ["mylab"])):  # fmt: skip
        (state / kind).mkdir(parents=True)
        for name in names:
            (state / kind / f"{name}.json").write_text("{}")
    (state / "containers" / "web1.json.tmp123").write_text("")  # a write in progress
    themes = tmp_path / "xdg" / "netlens" / "themes"
    themes.mkdir(parents=True)
    (themes / "mine.toml").write_text("")
    cwd = tmp_path / "cwd"
    (cwd / "sub").mkdir(parents=True)
    for name in ("lab.yaml", "notes.txt", "host.json", "look.toml"):
        (cwd / name).write_text("")
    return tmp_path


def bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash makes them: split at blanks, '=' and ':' runs on their own."""
    words = [t for w in line.split() for t in re.findall(r"[=:]+|[^=:]+", w)]
    return [*words, ""] if line.endswith(" ") else words


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "NETLENS_STATE_DIR": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "xdg"),
    }


def bash_complete(home: Path, lines: list[str]) -> list[set[str]]:
    """COMPREPLY of ``_netlens`` for each command line (cursor at its end)."""
    path = home / "netlens.bash"
    path.write_text(script("bash", build_parser()))
    calls = [f"source {path}", "IFS=:"]  # a user's odd IFS must not matter
    for line in lines:
        words = " ".join("'" + w + "'" for w in bash_words(line))
        calls.append(
            f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
            f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=(); _netlens; "
            f"printf '%s{SEP}' \"${{COMPREPLY[@]}}\"; echo"
        )
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(calls)],
        cwd=home / "cwd", env=_env(home), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0 and res.stderr == "", res.stderr
    out = res.stdout.split("\n")[: len(lines)]
    return [set(o.split(SEP)) - {""} for o in out]


BASH_CASES: list[tuple[str, set[str]]] = [
    ("netlens r", {"run", "rm"}),
    ("netlens rm ", {"web1", "web2", "db"}),
    ("netlens rm -f w", {"web1", "web2"}),
    ("netlens stop -t 3 ", {"web1", "web2", "db"}),  # -t's value is skipped
    ("netlens exec ", {"web1", "web2", "db"}),
    ("netlens inspect ", {"web1", "web2", "db", "lan"}),
    ("netlens ps --fo", {"--format"}),
    (
        "netlens ps -",
        {"-h", "--help", "-a", "--all", "-q", "--quiet", "--format", "--filter", "-f", "--json"},
    ),
    ("netlens ps --format ", {"table", "json"}),
    ("netlens ps -a --format=j", {"json"}),
    ("netlens ps --filter ", {"label=", "name=", "network=", "status="}),
    ("netlens ps --filter st", {"status="}),
    ("netlens ps --filter status=ex", {"exited"}),
    ("netlens ps -f network=", {"=lan"}),  # bash replaces only the '=' piece
    ("netlens ps --filter name=we", {"web1", "web2"}),
    ("netlens run --network ", {"lan", "none"}),
    ("netlens run --network=l", {"lan"}),
    ("netlens run --name x --rootfs s", {"sub"}),
    ("netlens exec web1 -- ip no", {"notes.txt"}),  # the command's arguments: files
    ("netlens network ", {"allow", "create", "disallow", "ls", "rm"}),
    ("netlens network rm ", {"lan"}),
    ("netlens network allow ", {"lan"}),
    ("netlens network disallow lan --from ", {"lan"}),
    ("netlens network create x --subnet ", set()),  # free text: nothing to offer
    (
        "netlens lab ",
        {"up", "down", "ls", "check", "save", "export", "stop", "start", "restart", "exec"},
    ),
    ("netlens link ", {"set", "show", "reset", "down", "up"}),
    ("netlens link set x --direction ", {"both", "egress", "ingress"}),
    ("netlens lab down ", {"mylab", "lab.yaml", "sub"}),
    ("netlens lab up ", {"demo", "example", "lab.yaml", "sub"}),
    ("netlens view ", {"host.json", "sub"}),
    ("netlens dump --netns ho", {"host"}),
    ("netlens dump --container d", {"db"}),
    (
        "netlens --theme ",
        {"netlens-dark", "netlens-light", "netlens-contrast", "mine", "look.toml", "sub"},
    ),
    ("netlens completion ", {"bash", "zsh"}),
    ("netlens --interval 2 -v r", {"run", "rm"}),  # top-level flags before the command
    ("netlens rm -- w", {"web1", "web2"}),  # '--' ends flags, names follow
    ("netlens view --theme=net", {"netlens-dark", "netlens-light", "netlens-contrast"}),
    ("netlens dump --input=h", {"host.json"}),
    ("netlens network create n --no-n", {"--no-nat"}),
]


def test_bash_completes_commands_flags_and_names(home: Path) -> None:
    got = bash_complete(home, [line for line, _ in BASH_CASES])
    for (line, want), have in zip(BASH_CASES, got, strict=True):
        assert have == want, line


def test_bash_run_command_line_offers_commands(home: Path) -> None:
    """After ``run ... --`` (or the first word of a command) come commands, then files."""
    got = bash_complete(home, ["netlens run --network lan -- slee", "netlens run slee",
                               "netlens run sleep no"])  # fmt: skip
    assert "sleep" in got[0] and "sleep" in got[1]
    assert got[2] == {"notes.txt"}


def test_bash_without_state_dir_offers_nothing_and_says_nothing(home: Path) -> None:
    shutil.rmtree(home / "state")
    assert bash_complete(home, ["netlens rm ", "netlens network rm "]) == [set(), set()]


def test_bash_script_registers_and_installs_as_documented(home: Path) -> None:
    cmd = f'eval "$({sys.executable} -m netlens completion bash)"; complete -p netlens'
    res = subprocess.run(["bash", "--norc", "-c", cmd], capture_output=True, text=True,
                         env={**_env(home), "NETLENS_NO_LOG": "1"}, timeout=60)  # fmt: skip
    assert res.stdout.strip() == "complete -F _netlens netlens", res.stderr


ZSH_STUBS = r"""
compadd() { print -r -- "add ${(j:,:)@}"; }
_describe() { local -a a; a=("${(@P)4}"); print -r -- "describe ${(j:,:)${(@)a%%:*}}"; }
_files() { print -r -- "files ${(j:,:)@}"; }
_command_names() { print -r -- "commands"; }
compset() { :; }
compdef() { :; }
"""


def _verbs() -> list[str]:
    """The top-level verbs as the parser declares them."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


ZSH_CASES: list[tuple[str, list[str]]] = [
    # every verb, in the parser's order (a new verb must show up here by itself)
    ("netlens r", ["describe " + ",".join(_verbs())]),
    ("netlens rm ", ["add --,db,web1,web2"]),
    ("netlens rm --f", ["describe -h,--help,-f,--force"]),
    ("netlens ps --filter ", ["add -S,,--,label=,name=,network=,status="]),
    ("netlens ps --filter network=", ["add --,network=lan"]),
    ("netlens run --network ", ["add --,lan,none"]),
    ("netlens run --network=l", ["add --,lan,none"]),
    ("netlens run --network lan -- ", ["commands"]),
    ("netlens exec web1 -- ip ", ["files "]),
    ("netlens lab down ", ["add --,mylab", "files -g,*.(yaml|yml)"]),
    (
        "netlens --theme ",
        ["add --,mine,netlens-contrast,netlens-dark,netlens-light", "files -g,*.toml"],
    ),
    ("netlens network create x --subnet ", []),
]


def test_zsh_offers_the_same_as_bash(home: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh missing: install Debian zsh (bash .ci/setup.sh)")
    path = home / "netlens.zsh"
    path.write_text(script("zsh", build_parser()))
    body = [ZSH_STUBS, f"source {path}"]
    for line, _ in ZSH_CASES:
        body.append(f"words=(${{(s: :)\"$(print -r -- '{line}')\"}})")
        if line.endswith(" "):
            body.append("words+=('')")
        body.append('CURRENT=${#words}; _netlens; print -r -- "--end--"')
    res = subprocess.run(["zsh", "-f", "-c", "\n".join(body)], cwd=home / "cwd",
                         env=_env(home), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.stderr == "", res.stderr
    blocks = res.stdout.split("--end--\n")
    assert blocks[-1] == "" and len(blocks) == len(ZSH_CASES) + 1, res.stdout
    for (line, want), have in zip(ZSH_CASES, blocks, strict=False):
        assert have.splitlines() == want, line


def test_zsh_loads_under_compinit_sourced_and_from_fpath(home: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh missing: install Debian zsh (bash .ci/setup.sh)")
    fdir = home / "fpath"
    fdir.mkdir()
    (fdir / "_netlens").write_text(script("zsh", build_parser()))
    init = f"autoload -U compinit && compinit -u -d {home}/zcompdump"
    sourced = f"{init}; source {fdir}/_netlens; print -r -- $_comps[netlens]"
    autoloaded = f"fpath=({fdir} $fpath); {init}; print -r -- $_comps[netlens]"
    for code in (sourced, autoloaded):
        res = subprocess.run(["zsh", "-f", "-c", code], env=_env(home), capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert res.stdout.strip() == "_netlens" and res.stderr == "", res.stderr


NODE_CASES: list[tuple[str, set[str], list[str]]] = [
    ("netlens lab stop ", {"mylab"}, ["add --,mylab"]),
    ("netlens lab stop mylab ", {"r1", "r2"}, ["add --,r1,r2"]),
    ("netlens lab restart -t 2 mylab r1 r", {"r1", "r2"}, ["add --,r1,r2"]),
    ("netlens lab start my-lab ", set(), []),  # another lab's containers are not its nodes
    ("netlens lab start nolab ", set(), []),
    ("netlens lab exec mylab r", {"r1", "r2"}, ["add --,r1,r2"]),
]


def test_lab_nodes_complete_after_their_lab(home: Path) -> None:
    """``lab stop|start|restart LAB NODE...``: the nodes of the lab typed before, from
    its containers' files (``<lab>-<node>.json``), without the lab's prefix."""
    for name in ("mylab-r1", "mylab-r2", "other-r3", "my-lab"):
        (home / "state" / "containers" / f"{name}.json").write_text("{}")
    got = bash_complete(home, [line for line, _, _ in NODE_CASES])
    for (line, want, _), have in zip(NODE_CASES, got, strict=True):
        assert have == want, line
    if shutil.which("zsh") is None:
        pytest.skip("zsh missing: install Debian zsh (bash .ci/setup.sh)")
    path = home / "netlens.zsh"
    path.write_text(script("zsh", build_parser()))
    body = [ZSH_STUBS, f"source {path}"]
    for line, _, _ in NODE_CASES:
        body.append(f"words=(${{(s: :)\"$(print -r -- '{line}')\"}})")
        if line.endswith(" "):
            body.append("words+=('')")
        body.append('CURRENT=${#words}; _netlens; print -r -- "--end--"')
    res = subprocess.run(["zsh", "-f", "-c", "\n".join(body)], cwd=home / "cwd",
                         env=_env(home), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.stderr == "", res.stderr
    blocks = res.stdout.split("--end--\n")
    for (line, _, want), have in zip(NODE_CASES, blocks, strict=False):
        assert have.splitlines() == want, line


def test_every_kind_names_a_real_argument() -> None:
    """A renamed flag or positional must not leave its completion behind silently."""
    known = {
        (cmd.path, a.dest) for cmd in walk(build_parser()) for a in _parser_of(cmd.path)._actions
    }
    assert set(KINDS) <= known, set(KINDS) - known


def _parser_of(path: str) -> object:
    import argparse

    parser = build_parser()
    for word in path.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser
