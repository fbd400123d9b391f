"""Shell completion for bash and zsh, generated from netlens's own argparse tree.

Why a generator of our own rather than argcomplete: argcomplete completes by
running Python on every TAB (the interpreter plus netlens's whole parser,
about 0.1 s here, more on a busy host) and is one more dependency. The script
made here carries commands, flags, choices and help texts as shell data, and
takes container, network and lab names straight from the state directory
(``$NETLENS_STATE_DIR/{containers,networks,labs}/*.json``, the files the runtime
writes, one per name) with a glob: a TAB starts no process at all, and nothing
goes stale when a flag is added, because the script is regenerated from the
parser (the tests compare the two).

What completes where, beyond flags and choices, is one table (:data:`KINDS`)
keyed by command and argparse ``dest``; a new argument without an entry gets
its flag completed and no value.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

# (command path, argparse dest) -> what completes there, in the shell functions'
# words: containers, networks, labs (names from the state directory), netns
# (/run/netns names and "host"), nodes (of the lab named by the first positional,
# from its containers' files), themes (user themes), files, dirs, yaml, json,
# commands (a command line follows), filters (ps --filter KEY=VALUE).
KINDS: dict[tuple[str, str], str] = {
    ("", "theme"): "themes",
    ("view", "theme"): "themes",
    ("view", "dump_file"): "json",
    ("dump", "input"): "json",
    ("dump", "output"): "files",
    ("dump", "netns"): "netns",
    ("dump", "container"): "containers",
    ("demo", "file"): "yaml",
    ("run", "network"): "networks",
    ("run", "rootfs"): "dirs",
    ("run", "cmd"): "commands",
    ("ps", "filter"): "filters",
    ("stop", "names"): "containers",
    ("rm", "names"): "containers",
    ("exec", "name"): "containers",
    ("exec", "cmd"): "commands",
    ("logs", "name"): "containers",
    ("inspect", "name"): "containers networks",
    ("network rm", "names"): "networks",
    ("network allow", "name"): "networks",
    ("network allow", "sources"): "networks",
    ("network disallow", "name"): "networks",
    ("network disallow", "sources"): "networks",
    ("network create", "allow_from"): "networks",
    ("lab up", "file"): "yaml",
    ("lab check", "file"): "yaml",
    ("lab down", "lab"): "labs yaml",
    **{(f"lab {verb}", "lab"): "labs" for verb in ("stop", "start", "restart")},
    **{(f"lab {verb}", "nodes"): "nodes" for verb in ("stop", "start", "restart")},
    ("lab exec", "lab"): "labs",
    ("lab exec", "node"): "nodes",
    ("lab exec", "cmd"): "commands",
}


@dataclass
class Command:
    """One node of the argparse tree, flattened for the shell scripts."""

    key: str  # "netlens", "netlens_run", "netlens_network_rm"
    path: str  # "", "run", "network rm" (the KINDS key)
    help: str
    subs: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # every option string
    takes_value: list[str] = field(default_factory=list)  # those that take a value
    values: dict[str, tuple[str, str]] = field(default_factory=dict)  # slot -> (kinds, words)
    help_of: dict[str, str] = field(default_factory=dict)  # option string -> help
    positionals: int = 0  # how many; "@n" in values: any beyond them (nargs * + ...)


def _extra_words(path: str, dest: str) -> str:
    """Fixed words offered beside a kind: 'none' for --network, bundled labs and themes."""
    if (path, dest) == ("run", "network"):
        return "none"
    if dest == "theme":
        return " ".join(_bundled_themes())
    if (path, dest) in (("lab up", "file"), ("lab check", "file")):
        return " ".join(_bundled_labs())
    return ""


def _bundled_themes() -> list[str]:
    try:
        from netlens.tui.themes import theme_dirs

        bundled = theme_dirs()[0]
        return sorted(p.stem for p in bundled.glob("*.toml"))
    except Exception:  # a theme list is a nicety, never a failure
        return []


def _bundled_labs() -> list[str]:
    try:
        from netlens_runtime.lab_bundled import bundled_lab

        labs = os.path.dirname(bundled_lab("x"))
        return sorted(f[:-5] for f in os.listdir(labs) if f.endswith(".yaml"))
    except Exception:  # as above
        return []


def walk(parser: argparse.ArgumentParser) -> Iterator[Command]:
    """Every command of the tree, parents first."""
    yield from _walk(parser, "netlens", "", parser.description or "")


def _walk(parser: argparse.ArgumentParser, key: str, path: str, help_: str) -> Iterator[Command]:
    cmd = Command(key=key, path=path, help=help_)
    children: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                cmd.subs.append(name)
                children.append((name, sub, helps.get(name, "")))
            continue
        if action.help == argparse.SUPPRESS:
            continue
        kinds = KINDS.get((path, action.dest), "")
        words = " ".join(action.choices) if action.choices else _extra_words(path, action.dest)
        if action.option_strings:
            cmd.options += action.option_strings
            for opt in action.option_strings:
                cmd.help_of[opt] = action.help or ""
            if action.nargs != 0:
                cmd.takes_value += action.option_strings
                for opt in action.option_strings:
                    cmd.values[opt] = (kinds, words)
            continue
        cmd.positionals += 1
        cmd.values[f"@{cmd.positionals}"] = (kinds, words)
        if action.nargs in ("*", "+", argparse.REMAINDER):
            cmd.values["@n"] = (kinds, words)
    yield cmd
    for name, sub, sub_help in children:
        yield from _walk(sub, f"{key}_{name}", f"{path} {name}".strip(), sub_help)


def _q(text: str) -> str:
    """Single-quoted for both shells."""
    return "'" + text.replace("'", "'\\''") + "'"


def data_lines(parser: argparse.ArgumentParser) -> list[str]:
    """The tree as assignments to associative arrays (same syntax in bash and zsh)."""
    lines: list[str] = []
    for cmd in walk(parser):
        k = cmd.key
        lines.append(f"_netlens_help[{k}]={_q(' '.join(cmd.help.split()))}")
        if cmd.subs:
            lines.append(f"_netlens_subs[{k}]={_q(' '.join(cmd.subs))}")
        lines.append(f"_netlens_opts[{k}]={_q(' '.join(cmd.options))}")
        lines.append(f"_netlens_vopts[{k}]={_q(' '.join(cmd.takes_value))}")
        if cmd.positionals:
            lines.append(f"_netlens_npos[{k}]={cmd.positionals}")
        for opt, text in cmd.help_of.items():
            lines.append(f"_netlens_help[{k}:{opt}]={_q(' '.join(text.split()))}")
        for slot, (kinds, words) in cmd.values.items():
            if kinds:
                lines.append(f"_netlens_kind[{k}:{slot}]={_q(kinds)}")
            if words:
                lines.append(f"_netlens_words[{k}:{slot}]={_q(words)}")
    return lines


ARRAYS: tuple[str, ...] = ("_netlens_help", "_netlens_subs", "_netlens_opts", "_netlens_vopts")
ARRAYS += ("_netlens_npos", "_netlens_kind", "_netlens_words")


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (bash or zsh)."""
    from netlens import shellcomp_scripts as scripts

    head = scripts.BASH_HEAD if shell == "bash" else scripts.ZSH_HEAD
    body = scripts.BASH_BODY if shell == "bash" else scripts.ZSH_BODY
    decl = f"{'declare' if shell == 'bash' else 'typeset'} -gA {' '.join(ARRAYS)}"
    return "\n".join([head.strip(), decl, *data_lines(parser), body.strip(), ""])
