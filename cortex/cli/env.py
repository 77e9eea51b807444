"""``cortex env configure|list|default|rename|delete`` over ``cli.yaml`` (SPEC 14.1)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cortex.cli.common import OutputOption
from cortex.cli.output import OutputFormat, console, print_blocks, print_json
from cortex.client.config import (
    CliConfig,
    Environment,
    config_dir,
    load_config,
    normalize_endpoint,
    save_config,
)
from cortex.client.http import OperatorClient

app = typer.Typer(help="Manage the environments (clusters) the CLI talks to.", no_args_is_help=True)

NameArgument = Annotated[str | None, typer.Argument(help="environment name")]


def _edit() -> tuple[CliConfig, Path]:
    directory = config_dir()
    return load_config(directory), directory


@app.command()
def configure(
    name: NameArgument = None,
    operator_endpoint: Annotated[
        str | None,
        typer.Option("--operator-endpoint", "-o", help="the operator's URL"),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="the operator's token")] = None,
) -> None:
    """Add or replace an environment, after checking that its operator answers."""
    env_name = name or typer.prompt("environment name")
    endpoint = operator_endpoint or os.environ.get("CORTEX_OPERATOR_ENDPOINT")
    endpoint = normalize_endpoint(endpoint or typer.prompt("operator endpoint"))
    with OperatorClient(endpoint, token=token) as http:
        http.check_access()
    config, directory = _edit()
    config.upsert(Environment(env_name, endpoint, token))
    if config.default_environment is None:
        config.default_environment = env_name
    save_config(config, directory)
    console().print(f"configured {env_name} environment")


def render_env_list(config: CliConfig) -> list[Text]:
    """Each environment: its name (bold, ``(default)`` marked) and its endpoint."""
    blocks = []
    for env in config.environments:
        title = f"{env.name} (default)" if env.name == config.default_environment else env.name
        block = Text()
        block.append(title, style="bold")
        block.append(f"\ncortex operator endpoint: {env.operator_endpoint}")
        blocks.append(block)
    return blocks


@app.command("list")
def list_envs(output: OutputOption = OutputFormat.PRETTY) -> None:
    """List the environments (tokens are not printed)."""
    config = load_config()
    if output == OutputFormat.JSON:
        print_json(config.to_dict(with_tokens=False))
        return
    blocks = render_env_list(config)
    if not blocks:
        console().print("no environments are configured")
    print_blocks(blocks)


def _change(name: str | None, change: Callable[[CliConfig, str], None], done: str) -> None:
    """Apply ``change`` to the named (else prompted) environment, save, print ``done``."""
    config, directory = _edit()
    env_name = name or typer.prompt("environment name")
    change(config, env_name)
    save_config(config, directory)
    console().print(done.format(env_name))


@app.command()
def default(name: NameArgument = None) -> None:
    """Set the environment used when ``--env`` is not given."""
    _change(name, CliConfig.set_default, "set the default environment to {}")


@app.command()
def rename(
    old: Annotated[str, typer.Argument(help="current name")],
    new: Annotated[str, typer.Argument(help="new name")],
) -> None:
    """Rename an environment (the default follows it)."""
    config, directory = _edit()
    config.rename(old, new)
    save_config(config, directory)
    console().print(f"renamed the {old} environment to {new}")


@app.command()
def delete(name: NameArgument = None) -> None:
    """Remove an environment (its cluster keeps running)."""
    _change(name, CliConfig.delete, "deleted the {} environment")
