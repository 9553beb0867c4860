"""Every command has help text and a section in README.md (the CLI is documented where users look)."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from llmsim.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group, prefix="llmsim"):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", cmd


def test_every_command_has_help_and_is_in_the_readme():
    commands = dict(_commands(get_command(app)))
    assert {"llmsim run", "llmsim estimate", "llmsim sweep", "llmsim calibrate fit", "llmsim validate"} <= set(commands)
    for name, cmd in commands.items():
        assert (cmd.help or "").strip(), f"{name} has no help text"
        assert f"`{name}" in README or f"{name} " in README, f"{name} is not documented in README.md"
