"""``cortex deploy [CONFIG_FILE]``: validate locally (fast feedback), then ``POST /deploy``.

The operator validates again and is the authority; the local pass only saves a round trip on a
typo. The project folder sent along (``projectDir``) is the absolute folder of the file: the
local backend starts containers there. Deploying from the home folder or ``/`` is refused, as in
the original (the folder is the project).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cortex.cli.common import EnvOption, ForceOption, OutputOption, announce, environment, operator
from cortex.cli.output import OutputFormat, console, print_error, print_json
from cortex.errors import InvalidRequestError

DEFAULT_FILE = "cortex.yaml"


def config_file_path(config_file: Path | None) -> Path:
    """The file to deploy: the argument (a folder means its cortex.yaml) or ./cortex.yaml."""
    path = (config_file or Path(DEFAULT_FILE)).expanduser().absolute()
    if path.is_dir():
        path = path / DEFAULT_FILE
    if not path.is_file():
        raise InvalidRequestError(f"{path} does not exist; pass the path of your cortex.yaml")
    if path.parent in (Path.home().absolute(), Path("/")):
        raise InvalidRequestError(
            f"cannot deploy from {path.parent} (it would be the project folder); "
            f"move {path.name} into a folder of its own"
        )
    return path


def validate_locally(data: bytes, file_name: str) -> None:
    """Parse the file as the operator will, raising ``SpecError`` with its message."""
    from cortex.spec.parse import load_apis  # imported here: the models load on demand

    load_apis(data, file_name=file_name)


def print_results(results: list[dict[str, Any]]) -> bool:
    """Messages of the successes, then the errors (stderr); True when every API succeeded."""
    errors = [str(r["error"]) for r in results if r.get("error")]
    for result in results:
        if not result.get("error"):
            console().print(str(result.get("message", "")))
    for error in errors:
        print_error(error.removeprefix("error: "))
    return not errors


def deploy(
    config_file: Annotated[
        Path | None, typer.Argument(help="path to a cortex.yaml (default: ./cortex.yaml)")
    ] = None,
    env: EnvOption = None,
    force: ForceOption = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="skip prompts (deploy has none; kept for scripts)")
    ] = False,
    output: OutputOption = OutputFormat.PRETTY,
) -> None:
    """Create or update the APIs of a configuration file."""
    path = config_file_path(config_file)
    data = path.read_bytes()
    validate_locally(data, path.name)
    target, needed = environment(env)
    announce(target, needed, output)
    with operator(target) as http:
        results = http.deploy(data, file_name=path.name, project_dir=str(path.parent), force=force)
    if output == OutputFormat.JSON:
        print_json(results)
        ok = not any(r.get("error") for r in results)
    else:
        ok = print_results(results)
    if not ok:
        raise typer.Exit(1)
