"""``cortex cluster up|down|info``: the local cluster (operator + gateway on this machine).

The mechanics are in :mod:`cortex.cli.local_cluster`; this module asks, prints and maps the
flags. ``CORTEX_CLI_CONFIG_DIR`` picks the config folder, so tests run a private cluster with a
temporary folder and free ports (``cortex cluster up --operator-port P --api-port Q -y``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cortex.cli.common import OutputOption
from cortex.cli.local_cluster import (
    DEFAULT_API_PORT,
    DEFAULT_OPERATOR_PORT,
    LOCAL_ENV_NAME,
    ClusterSettings,
    LocalCluster,
)
from cortex.cli.output import OutputFormat, console, print_blocks, print_json
from cortex.cli.tables import Table
from cortex.client.config import config_dir
from cortex.client.http import OperatorClient
from cortex.errors import CortexError

app = typer.Typer(help="Start, stop and inspect the local cluster.", no_args_is_help=True)

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="skip the confirmation prompt")]


def local_cluster() -> LocalCluster:
    return LocalCluster(config_dir())


def _where(settings: ClusterSettings) -> str:
    return f"operator {settings.operator_url}, APIs {settings.api_url}"


@app.command()
def up(
    operator_port: Annotated[
        int | None,
        typer.Option(
            help=f"the operator's port (default: the last one, else {DEFAULT_OPERATOR_PORT})"
        ),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(help=f"the APIs' port (default: the last one, else {DEFAULT_API_PORT})"),
    ] = None,
    yes: YesOption = False,
) -> None:
    """Start the local cluster (or what is missing of it) and make `local` the default env."""
    cluster = local_cluster()
    running = cluster.running()
    settings = cluster.read_settings()
    if settings and len(running) == 2 and cluster.is_healthy(settings):
        cluster.configure_env(settings)
        console().print(f"the local cluster is already running ({_where(settings)})")
        return
    if not yes:
        typer.confirm(
            f"start the local cluster (state in {cluster.state_dir})?", default=True, abort=True
        )
    result = cluster.up(operator_port=operator_port, api_port=api_port)
    console().print(f"the local cluster is running ({_where(result.settings)})")
    console().print(f"the {LOCAL_ENV_NAME} environment is configured and is the default")


@app.command()
def down(yes: YesOption = False) -> None:
    """Stop the local cluster; its APIs come back with the next `cortex cluster up`."""
    cluster = local_cluster()
    if not cluster.running():
        cluster.down()  # removes stale pid files
        console().print("the local cluster is not running")
        return
    if not yes:
        typer.confirm(
            "stop the local cluster? its APIs stop serving until `cortex cluster up`",
            abort=True,
        )
    console().print("stopping the local cluster (replicas are stopped gracefully)...")
    cluster.down()
    console().print("the local cluster is stopped")


def _compute(node: dict[str, Any], key: str, resource: str) -> str:
    return str((node.get(key) or {}).get(resource, "-"))


def node_table(info: dict[str, Any]) -> Table:
    """One row per node: replicas and ``requested / capacity`` per resource."""
    rows = []
    for node in info.get("worker_node_infos") or []:
        cells = [
            f"{_compute(node, 'compute_user_requested', r)} / "
            f"{_compute(node, 'compute_user_capacity', r)}"
            for r in ("cpu", "mem", "gpu")
        ]
        rows.append([str(node.get("name", "-")), str(node.get("num_replicas", 0)), *cells])
    return Table(("node", "replicas", "cpu requested", "mem requested", "gpu requested"), rows)


def info_blocks(settings: ClusterSettings, info: dict[str, Any]) -> list[Table | str]:
    version = (info.get("cluster_config") or {}).get("api_version", "unknown")
    summary = (
        f"operator endpoint: {settings.operator_url}\n"
        f"api endpoint: {settings.api_url}\n"
        f"cluster version: {version}\n"
        f"pending replicas: {info.get('num_pending_replicas', 0)}"
    )
    return [summary, node_table(info)]


@app.command()
def info(output: OutputOption = OutputFormat.PRETTY) -> None:
    """Show the local cluster's endpoints, version and node capacity."""
    cluster = local_cluster()
    settings = cluster.read_settings()
    if settings is None or "operator" not in cluster.running():
        raise CortexError("the local cluster is not running; start it with `cortex cluster up`")
    with OperatorClient(settings.operator_url, token=settings.token) as http:
        body = http.info()
    if output == OutputFormat.JSON:
        print_json(
            {"operator_endpoint": settings.operator_url, "api_endpoint": settings.api_url, **body}
        )
    else:
        print_blocks(info_blocks(settings, body))
