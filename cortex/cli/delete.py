"""``cortex delete API_NAME [JOB_ID]``: delete an API, or stop one of its jobs.

Without ``--force``, deleting an API that serves more than 2 ready replicas asks first (SPEC
12.1). With a job id the API's kind picks the route: ``DELETE /batch|tasks/<api>?jobID=``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cortex.cli.common import EnvOption, OutputOption, environment, operator, print_message
from cortex.cli.output import OutputFormat
from cortex.client.http import OperatorClient, first_item, job_route
from cortex.errors import NotDeployedError, NotFoundError

CONFIRM_ABOVE_READY = 2


def confirm_delete(http: OperatorClient, api_name: str) -> None:
    """Ask before deleting an API with more than 2 ready replicas (aborts, exit 1, on "no")."""
    try:
        api = first_item(http.get(f"/get/{api_name}"), api_name)
    except (NotDeployedError, NotFoundError):
        return  # the delete call reports it (and cleans up what is left)
    ready = int((api.get("status") or {}).get("ready", 0))
    if ready > CONFIRM_ABOVE_READY:
        typer.confirm(
            f"are you sure you want to delete {api_name} (which has {ready} live replicas)?",
            abort=True,
        )


def delete(
    api_name: Annotated[str, typer.Argument(help="an API's name")],
    job_id: Annotated[str | None, typer.Argument(help="a job to stop instead")] = None,
    env: EnvOption = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="delete without asking")] = False,
    keep_cache: Annotated[
        bool, typer.Option("--keep-cache", "-c", help="keep the API's stored files")
    ] = False,
    output: OutputOption = OutputFormat.PRETTY,
) -> None:
    """Delete an API, or stop a job."""
    target, needed = environment(env)
    with operator(target) as http:
        body: Any
        if job_id is not None:
            _, route = job_route(first_item(http.get(f"/get/{api_name}"), api_name))
            body = http.delete(f"{route}/{api_name}", params={"jobID": job_id})
        else:
            if not force and output == OutputFormat.PRETTY:
                confirm_delete(http, api_name)
            body = http.delete(f"/delete/{api_name}", params={"keepCache": keep_cache})
    print_message(body, target, needed, output)
