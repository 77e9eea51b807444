"""``cortex get [API_NAME] [JOB_ID]`` (SPEC 12.1).

- no argument, no ``--env``: every configured environment, one ``env`` column per table, and
  JSON ``[{"env_name", "apis", "error"}]``; an environment that fails does not hide the others
  (SPEC's ``unable to detect apis from the <env> environment`` line), but when every one fails
  the command fails: each environment's error on stderr (after the JSON with ``-o json``), exit 1;
- no argument with ``--env``: that environment's APIs (JSON: the operator's answer);
- an API name: its detail (jobs for Batch/Task, endpoint, history; ``-v`` adds its configuration);
- an API name and a job id: the job (``GET /batch|tasks/<api>?jobID=``).

``-w`` reprints every 2 s until Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cortex.cli.common import EnvOption, OutputOption, announce, environment, operator
from cortex.cli.output import OutputFormat, console, print_blocks, print_json, print_text
from cortex.cli.views import EnvApis, api_detail, api_list_tables, job_blocks
from cortex.client.config import Environment, load_config
from cortex.client.http import first_item, job_route
from cortex.errors import CortexError, NotFoundError

WATCH_PERIOD_S = 2.0
WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="re-run every 2 seconds")]


def watch_loop(render: Callable[[], None], *, period_s: float = WATCH_PERIOD_S) -> None:
    """Clear the screen and render, every ``period_s``, until Ctrl-C (which exits 0)."""
    out = console()
    try:
        while True:
            out.clear()
            render()
            time.sleep(period_s)
    except KeyboardInterrupt:
        return


def fetch_all_envs(envs: list[Environment]) -> list[EnvApis]:
    results = []
    for env in envs:
        try:
            with operator(env) as http:
                body = http.get("/get")
            results.append(EnvApis(env.name, list(body) if isinstance(body, list) else []))
        except CortexError as exc:
            results.append(EnvApis(env.name, error=exc.message))
    return results


def print_api_lists(results: list[EnvApis], *, show_env: bool) -> None:
    tables = api_list_tables(results, show_env=show_env, now=time.time())
    if tables:
        print_blocks(tables)
    elif not any(r.error for r in results):
        print_text("no apis are deployed", bold=True)
    for result in results:
        if result.error:
            print_text(
                f"unable to detect apis from the {result.env_name} environment; "
                f"run `cortex get --env {result.env_name}` if this is unexpected"
            )


def get_all_envs(output: OutputFormat) -> None:
    envs = load_config().environments
    if not envs:
        raise NotFoundError(
            "no environment is configured; run `cortex cluster up` to start a local cluster, "
            "or `cortex env configure NAME --operator-endpoint URL` to use a running one"
        )
    results = fetch_all_envs(envs)
    if output == OutputFormat.JSON:
        print_json([{"env_name": r.env_name, "apis": r.apis, "error": r.error} for r in results])
    if all(r.error for r in results):
        raise CortexError("\n".join(f"{r.env_name} environment: {r.error}" for r in results))
    if output == OutputFormat.PRETTY:
        print_api_lists(results, show_env=True)


def get_env(env_name: str, output: OutputFormat) -> None:
    env, _ = environment(env_name)
    with operator(env) as http:
        body = http.get("/get")
    if output == OutputFormat.JSON:
        print_json(body)
    else:
        print_api_lists([EnvApis(env.name, list(body))], show_env=False)


def get_api(env_name: str | None, api_name: str, job_id: str | None, **flags: Any) -> None:
    output: OutputFormat = flags["output"]
    env, needed = environment(env_name)
    with operator(env) as http:
        body = http.get(f"/get/{api_name}")
        api = first_item(body, api_name)
        if job_id is not None:
            kind, route = job_route(api)
            body = http.get(f"{route}/{api_name}", params={"jobID": job_id})
    if output == OutputFormat.JSON:
        print_json(body)
        return
    announce(env, needed, output)
    if job_id is not None:
        print_blocks(job_blocks(kind, body, time.time()))
    else:
        print_blocks(api_detail(api, time.time(), verbose=flags["verbose"]))


def get(
    api_name: Annotated[str | None, typer.Argument(help="an API's name")] = None,
    job_id: Annotated[str | None, typer.Argument(help="a BatchAPI or TaskAPI job id")] = None,
    env: EnvOption = None,
    watch: WatchOption = False,
    output: OutputOption = OutputFormat.PRETTY,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show the configuration")
    ] = False,
) -> None:
    """Show the deployed APIs, one API, or one job."""

    def render() -> None:
        if api_name:
            get_api(env, api_name, job_id, output=output, verbose=verbose)
        elif env:
            get_env(env, output)
        else:
            get_all_envs(output)

    if watch:
        watch_loop(render)
    else:
        render()
