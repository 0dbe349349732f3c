"""Every command and subcommand of `jixiao` has `--help` (the README's claim), found by walking the
argparse tree rather than listing commands by hand, so a new command is covered the day it is added."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from cli.main import build_parser, main


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `parser` (e.g. ("project", "load")), parents before children."""
    paths = []
    for action in parser._actions:  # argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                path = (*prefix, name)
                assert helps.get(name), f"`jixiao {' '.join(path)}` has no one-line help in its parent's list"
                paths.append(path)
                paths.extend(command_paths(sub, path))
    return paths


PATHS = command_paths(build_parser())


def test_the_walk_finds_the_commands_the_readme_names() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"serve", "score", "project", "project load", "project validate"} <= names
    assert len(PATHS) >= 20, f"only {len(PATHS)} commands found: {sorted(names)}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p))
def test_every_command_prints_its_help_and_exits_0(path: tuple[str, ...]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0, err.getvalue()
    text = out.getvalue()
    assert text.startswith(f"usage: jixiao {' '.join(path)}"), text[:200]
    assert "-h, --help" in text
