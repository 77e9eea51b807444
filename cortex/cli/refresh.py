"""``cortex refresh API_NAME``: restart every replica with the same spec (a new deployment id)."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex.cli.common import (
    EnvOption,
    ForceOption,
    OutputOption,
    environment,
    operator,
    print_message,
)
from cortex.cli.output import OutputFormat


def refresh(
    api_name: Annotated[str, typer.Argument(help="a RealtimeAPI or AsyncAPI name")],
    env: EnvOption = None,
    force: ForceOption = False,
    output: OutputOption = OutputFormat.PRETTY,
) -> None:
    """Restart all replicas of an API (rolling)."""
    target, needed = environment(env)
    with operator(target) as http:
        body = http.post(f"/refresh/{api_name}", params={"force": force})
    print_message(body, target, needed, output)
