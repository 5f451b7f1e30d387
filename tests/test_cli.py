"""The command line explains itself: every argument of every command has a help text, and an option's
default is shown in it."""
from __future__ import annotations

import argparse

import pytest

from poselive.cli import build_parser, main


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_argument_of_every_command_has_a_help_text():
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in commands().items() for a in p._actions
               if not a.help]
    assert missing == []


@pytest.mark.parametrize("command,shown", [("run", "(default: body)"), ("cameras", "(default: 8)"),
                                           ("serve", "(default: 0)"), ("predict", "(default: body)"),
                                           ("train", "(default: 32)")])
def test_help_shows_the_defaults(command, shown, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert shown in text and "(default: None)" not in text and "(default: False)" not in text
