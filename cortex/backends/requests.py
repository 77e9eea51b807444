"""What a pod requests of a node: the one sum every scheduler-side check uses (the local
backend's ledger, the fake backend's capacity view, the operator's compute-fit check at deploy).

A container's ``compute`` is summed as Kubernetes sums a pod's container requests: cpu in
millicores (None requests none: the 200m default is filled in by the spec), memory in bytes,
GPUs and Inferentia chips as counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cortex.spec.models import Compute, PodSpec


@dataclass(frozen=True)
class Request:
    cpu_millis: int = 0
    mem_bytes: int = 0
    gpus: int = 0
    inf: int = 0

    def __add__(self, other: Request) -> Request:
        return Request(
            self.cpu_millis + other.cpu_millis,
            self.mem_bytes + other.mem_bytes,
            self.gpus + other.gpus,
            self.inf + other.inf,
        )

    def __str__(self) -> str:
        return f"cpu={self.cpu_millis}m, mem={self.mem_bytes}B, gpu={self.gpus}"


def compute_request(compute: Compute) -> Request:
    return Request(
        cpu_millis=compute.cpu.milli() if compute.cpu is not None else 0,
        mem_bytes=int(compute.mem) if compute.mem is not None else 0,
        gpus=compute.gpu,
        inf=compute.inf,
    )


def total_request(computes: Iterable[Compute]) -> Request:
    total = Request()
    for compute in computes:
        total = total + compute_request(compute)
    return total


def pod_request(pod: PodSpec) -> Request:
    """The sum of the pod's containers' requests."""
    return total_request(container.compute for container in pod.containers)
