"""Every ``starburst-dask`` command line the documentation shows names commands and options
the command has: the docs change when the command does."""

from __future__ import annotations

import re
from pathlib import Path

import click

from starburst_dask.cli import main

ROOT = Path(__file__).parents[2]
PAGES = sorted(ROOT.glob("docs/**/*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"```(?:bash|console|sh)?\n(.*?)```", re.S)
SPAN = re.compile(r"`[^`\n]*?(starburst-dask [^`\n]*)`")
WORD = re.compile(r"[a-z][a-z-]*")


def command_lines(text: str) -> list[str]:
    """The command lines of shell blocks and of inline code, comments left out."""
    lines = [
        line.split("#")[0].strip()
        for block in BLOCK.findall(text)
        for line in block.splitlines()
        if line.strip().startswith("starburst-dask ")
    ]
    return lines + SPAN.findall(BLOCK.sub("", text))


def unknown(line: str) -> list[str]:
    """The subcommands and options of ``line`` that the command does not have."""
    command: click.Command = main
    problems = []
    for word in line.split()[1:]:
        if word.startswith("--"):
            name = word.split("=")[0]
            known = {o for p in command.params for o in p.opts + p.secondary_opts}
            if name not in known | {"--help"}:
                problems.append(f"{command.name} has no option {name}")
        elif isinstance(command, click.Group):
            if word in command.commands:
                command = command.commands[word]
            elif WORD.fullmatch(word):
                problems.append(f"no command {word}")
                break
    return problems


def test_command_lines_in_the_docs_exist():
    checked, problems = 0, []
    for page in PAGES:
        for line in command_lines(page.read_text()):
            checked += 1
            problems += [f"{page.relative_to(ROOT)}: `{line}`: {p}" for p in unknown(line)]
    assert problems == []
    assert checked > 40  # the docs' many command lines were found and read


def test_a_wrong_option_or_command_is_found():
    assert unknown("starburst-dask cleanup --older 2h") == ["cleanup has no option --older"]
    assert unknown("starburst-dask image bild x") == ["no command bild"]
    assert unknown("starburst-dask --debug image build --platform linux-64 env.yml") == []
