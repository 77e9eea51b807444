"""What most commands share: the ``-e`` / ``-o`` options and reaching an environment's operator."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cortex.cli.output import OutputFormat, console, print_json
from cortex.client.config import Environment, config_dir, load_config, resolve_environment
from cortex.client.http import OperatorClient

EnvOption = Annotated[
    str | None, typer.Option("--env", "-e", help="environment to use (default: the default one)")
]
OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="output format: pretty or json")
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="override an in-progress update")]


def environment(env_name: str | None) -> tuple[Environment, bool]:
    """The environment to use, and whether to announce it (several exist, none was named)."""
    directory = config_dir()
    config = load_config(directory)
    env = resolve_environment(config, env_name, directory=directory)
    return env, env_name is None and len(config.environments) > 1


def operator(env: Environment) -> OperatorClient:
    return OperatorClient(env.operator_endpoint, token=env.token)


def announce(env: Environment, needed: bool, output: OutputFormat) -> None:
    """SPEC 14.1: ``using <env> environment`` before pretty output when it is not obvious."""
    if needed and output == OutputFormat.PRETTY:
        console().print(f"using {env.name} environment\n")


def print_message(body: Any, env: Environment, needed: bool, output: OutputFormat) -> None:
    """An operator answer ``{"message": ...}``: as JSON with ``-o json``, else the message."""
    if output == OutputFormat.JSON:
        print_json(body)
        return
    announce(env, needed, output)
    console().print(str(body.get("message", "")))
