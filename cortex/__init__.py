"""Cortex: deploy, run and autoscale machine-learning workloads.

The public Python client (SPEC 14.3)::

    import cortex
    cx = cortex.client("local")
    cx.deploy({"name": "iris", "kind": "RealtimeAPI", "pod": {...}}, wait=True)
"""

from cortex.client.python_client import (
    Client,
    CortexException,
    NotFound,
    client,
    env_delete,
    env_list,
    new_client,
)
from cortex.version import __version__

__all__ = [
    "Client",
    "CortexException",
    "NotFound",
    "__version__",
    "client",
    "env_delete",
    "env_list",
    "new_client",
]
