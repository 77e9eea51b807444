"""The dequeuer as a container of a replica (SPEC 5.1): what the operator adds to AsyncAPI
replicas and BatchAPI worker replicas."""

from __future__ import annotations

import sys

from cortex.dataplane.dequeuer.settings import PORT_VAR, DequeuerSettings
from cortex.spec.models import Compute, ContainerSpec
from cortex.spec.quantity import Quantity

CONTAINER_NAME = "dequeuer"
IMAGE = "cortex/dequeuer"
CPU = "100m"  # SPEC 0: the sidecar's request
MEM = "100Mi"


def dequeuer_container(settings: DequeuerSettings) -> ContainerSpec:
    """The sidecar container: ``python -m cortex.dataplane.dequeuer`` with the settings as env.

    ``CORTEX_PORT`` is left out even when ``settings.user_port`` is set: the backend gives every
    container the replica's real port, and a container's own env would override it.
    """
    env = {k: v for k, v in settings.to_env().items() if k != PORT_VAR}
    return ContainerSpec(
        name=CONTAINER_NAME,
        image=IMAGE,
        env=env,
        command=[sys.executable, "-m", "cortex.dataplane.dequeuer"],
        compute=Compute(cpu=Quantity.parse(CPU), mem=Quantity.parse(MEM)),
    )
