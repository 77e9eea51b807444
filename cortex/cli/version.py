"""``cortex version``: the CLI's version and, when an environment answers, the cluster's."""

from __future__ import annotations

from cortex.cli.common import EnvOption, environment, operator
from cortex.cli.output import console
from cortex.client.config import load_config
from cortex.version import __version__


def version(env: EnvOption = None) -> None:
    """Print the CLI version (and the cluster version of the environment)."""
    console().print(f"cli version: {__version__}")
    if env is None and not load_config().environments:
        return
    target, _ = environment(env)
    with operator(target) as http:
        info = http.info()
    cluster_version = (info.get("cluster_config") or {}).get("api_version", "unknown")
    console().print(f"cluster version: {cluster_version}")
