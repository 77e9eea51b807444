"""The node's capacity and what replicas hold of it, as the Kubernetes scheduler counts it.

A replica's request is the sum of its containers' ``compute`` (:mod:`cortex.backends.requests`;
cpu defaults to 200m when the container says nothing, an explicit null requests none). It is
scheduled when the request fits in allocatable minus what scheduled, unfinished replicas hold.
GPUs are real device indices handed to exactly one replica at a time (CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

import psutil

from cortex.backends.base import NodeCapacity
from cortex.backends.requests import Request


def detect_gpus() -> int:
    """GPUs ``nvidia-smi -L`` lists; 0 without the tool or when it fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def detect_node() -> NodeCapacity:
    return NodeCapacity(
        cpu_millis=(psutil.cpu_count() or 1) * 1000,
        mem_bytes=psutil.virtual_memory().total,
        gpus=detect_gpus(),
    )


class Ledger:
    """Who holds what: allocatable minus the requests of scheduled replicas, GPUs by index."""

    def __init__(self, node: NodeCapacity) -> None:
        self.node = node
        self._held: dict[str, tuple[Request, tuple[int, ...]]] = {}

    def used(self) -> Request:
        total = Request()
        for request, _ in self._held.values():
            total = total + request
        return total

    def free(self) -> Request:
        used = self.used()
        return Request(
            self.node.cpu_millis - used.cpu_millis,
            self.node.mem_bytes - used.mem_bytes,
            self.node.gpus - used.gpus,
        )

    def fits(self, request: Request) -> bool:
        free = self.free()
        return (
            request.cpu_millis <= free.cpu_millis
            and request.mem_bytes <= free.mem_bytes
            and request.gpus <= free.gpus
        )

    def take(self, owner: str, request: Request) -> tuple[int, ...] | None:
        """Reserve ``request`` for ``owner``; the GPU indices it got, or None if it does not fit."""
        if owner in self._held:
            return self._held[owner][1]
        if not self.fits(request):
            return None
        taken = {i for _, gpus in self._held.values() for i in gpus}
        gpus = tuple(i for i in range(self.node.gpus) if i not in taken)[: request.gpus]
        self._held[owner] = (request, gpus)
        return gpus

    def release(self, owner: str) -> None:
        self._held.pop(owner, None)

    def snapshot(self) -> NodeCapacity:
        used = self.used()
        return NodeCapacity(
            cpu_millis=self.node.cpu_millis,
            mem_bytes=self.node.mem_bytes,
            gpus=self.node.gpus,
            requested_cpu_millis=used.cpu_millis,
            requested_mem_bytes=used.mem_bytes,
            requested_gpus=used.gpus,
        )


def split_gpus(gpus: tuple[int, ...], counts: Iterable[int]) -> list[tuple[int, ...]]:
    """Hand each container its own ``count`` of the replica's GPUs, in container order."""
    out: list[tuple[int, ...]] = []
    start = 0
    for count in counts:
        out.append(gpus[start : start + count])
        start += count
    return out
