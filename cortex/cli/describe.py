"""``cortex describe API_NAME``: the API's row, endpoint and replica status table.

RealtimeAPI and AsyncAPI only (the operator refuses the other kinds).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cortex.cli.common import EnvOption, OutputOption, announce, environment, operator
from cortex.cli.get import WatchOption, watch_loop
from cortex.cli.output import OutputFormat, print_blocks, print_json
from cortex.cli.views import describe_blocks
from cortex.client.http import first_item


def describe(
    api_name: Annotated[str, typer.Argument(help="a RealtimeAPI or AsyncAPI name")],
    env: EnvOption = None,
    watch: WatchOption = False,
    output: OutputOption = OutputFormat.PRETTY,
) -> None:
    """Show an API's replicas by status."""

    def render() -> None:
        target, needed = environment(env)
        with operator(target) as http:
            body = http.get(f"/describe/{api_name}")
        if output == OutputFormat.JSON:
            print_json(body)
            return
        announce(target, needed, output)
        print_blocks(describe_blocks(first_item(body, api_name), time.time()))

    if watch:
        watch_loop(render)
    else:
        render()
