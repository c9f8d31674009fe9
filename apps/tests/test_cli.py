"""The `dedup` command itself: its version, a bad command, and the help of every
sub-command (each option explained, with its default)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from importlib import import_module

import pytest

from apps import cli
from dedup.clitools import dedup_version


def test_version_comes_from_the_package_metadata() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"dedup {dedup_version()}\n", "")


def test_an_unknown_command_is_named_with_the_list_of_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bogus"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("dedup: unknown command 'bogus'\n")
    assert all(f"  {name} " in err for name in cli.COMMANDS)
    assert cli.main(["sacn"]) == 2
    assert "unknown command 'sacn' (did you mean 'scan'?)" in capsys.readouterr().err
    assert cli.main(["\x1b[2J"]) == 2
    assert "unknown command '\\x1b[2J'" in capsys.readouterr().err


def test_no_command_is_a_usage_error_and_help_is_not(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "commands:" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "commands:" in out and "--version" in out


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser, and each of its sub-commands'."""
    for name, (module, _) in cli.COMMANDS.items():
        todo = [(name, import_module(module).parser())]
        while todo:
            prog, p = todo.pop()
            yield prog, p
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    todo += [(f"{prog} {n}", sub) for n, sub in action.choices.items()]


PARSERS = dict(parsers())


def test_every_command_and_sub_command_has_a_parser() -> None:
    assert {"scan", "report", "act", "demo", "ingest", "ingest eventhub", "ingest watch"} <= set(
        PARSERS
    )


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_every_option_has_help_and_shows_its_default(prog: str) -> None:
    p = PARSERS[prog]
    assert p.description, f"dedup {prog} --help has no description"
    text = "".join(p.format_help().split())  # argparse wraps lines at spaces and hyphens
    for action in p._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        assert action.help, f"dedup {prog}: {action.dest} has no help"
        if action.option_strings and not action.required:
            helped = p._get_formatter()._expand_help(action)
            assert "(default" in helped, (prog, action.dest, helped)
            assert "".join(helped.split()) in text, (prog, action.dest, helped)


def test_ingest_eventhub_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["ingest", "eventhub", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "Event Hub" in out and "DEDUP_INGEST_EVENTHUB_NAME" in out


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    # `dedup --help | true`: the pipe is closed before the first line.
    command = [sys.executable, "-c", "import sys; from apps.cli import main; sys.exit(main())"]
    with subprocess.Popen(
        [*command, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        errors = proc.stderr.read().decode()
        assert proc.wait() == cli.CLOSED_PIPE
    assert errors == ""
