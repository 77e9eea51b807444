"""``cortex completion SHELL``: print Typer's completion script for bash, zsh, fish or powershell.

Add ``eval "$(cortex completion bash)"`` to ``~/.bashrc`` (or use ``--install-completion``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from typer._completion_shared import get_completion_script


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"
    POWERSHELL = "powershell"


def completion(
    shell: Annotated[Shell, typer.Argument(help="the shell to complete in")] = Shell.BASH,
    prog_name: Annotated[str, typer.Option(help="the command to complete")] = "cortex",
) -> None:
    """Print a shell completion script."""
    complete_var = f"_{prog_name.replace('-', '_').upper()}_COMPLETE"
    typer.echo(get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell))
