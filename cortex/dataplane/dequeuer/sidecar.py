"""The dequeuer as a container of a replica (SPEC 5.1): what the operator adds to AsyncAPI
replicas and BatchAPI worker replicas. :func:`with_dequeuer` is the one place a user's pod gets
its sidecar, for both kinds; :func:`readiness_probe` is the user probe the dequeuer waits on."""

from __future__ import annotations

import sys

from cortex.dataplane.dequeuer.settings import PORT_VAR, DequeuerMode, DequeuerSettings
from cortex.spec.models import Compute, ContainerSpec, PodSpec, Probe
from cortex.spec.quantity import Quantity

CONTAINER_NAME = "dequeuer"
IMAGE = "cortex/dequeuer"
CPU = "100m"  # SPEC 0: the sidecar's request
MEM = "100Mi"
COMPUTE = Compute(cpu=Quantity.parse(CPU), mem=Quantity.parse(MEM))


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
        compute=COMPUTE,
    )


def readiness_probe(pod: PodSpec) -> Probe | None:
    """The readiness probe the dequeuer waits on (SPEC 5.2): the first user container's HTTP or
    TCP readiness probe; None means the dequeuer's default TCP probe on the user's port (an exec
    probe cannot run from the sidecar)."""
    for container in pod.containers:
        probe = container.readiness_probe
        if probe is not None and (probe.http_get is not None or probe.tcp_socket is not None):
            return probe
    return None


def with_dequeuer(pod: PodSpec, settings: DequeuerSettings) -> PodSpec:
    """The user's pod with the dequeuer added (SPEC 5.1): a BatchAPI worker's first container,
    an AsyncAPI replica's last."""
    dequeuer = dequeuer_container(settings)
    if settings.mode is DequeuerMode.BATCH:
        containers = [dequeuer, *pod.containers]
    else:
        containers = [*pod.containers, dequeuer]
    return pod.model_copy(update={"containers": containers})
