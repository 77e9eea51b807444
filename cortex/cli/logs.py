"""``cortex logs API_NAME [JOB_ID]``: stream ``GET /streamlogs/<api>`` to stdout.

Each line the operator sends is one JSON log record (``{"time", "stream", "message", "labels",
...}``); we print its ``message`` (what the container printed) and fall back to the raw line for
anything else. ``-f`` keeps following until Ctrl-C.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cortex.cli.common import EnvOption, OutputOption, environment, operator
from cortex.cli.output import OutputFormat


def log_message(line: str) -> str:
    """The container's own text from one JSON log record (the raw line if it is not one)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    message = record.get("message") if isinstance(record, dict) else None
    return message if isinstance(message, str) else line


def logs(
    api_name: Annotated[str, typer.Argument(help="an API's name")],
    job_id: Annotated[str | None, typer.Argument(help="a BatchAPI or TaskAPI job id")] = None,
    env: EnvOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep streaming new lines")
    ] = False,
    output: OutputOption = OutputFormat.PRETTY,
) -> None:
    """Print an API's (or a job's) logs (``-o json``: the whole records, with their labels)."""
    target, _ = environment(env)
    params = {"jobID": job_id, "follow": follow}
    try:
        with operator(target) as http:
            for line in http.stream_lines(f"/streamlogs/{api_name}", params=params):
                typer.echo(line if output == OutputFormat.JSON else log_message(line))
    except KeyboardInterrupt:
        return
