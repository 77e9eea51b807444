"""The in-memory backend the reconciler and job manager tests step."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cortex.backends.base import NodeCapacity, ReplicaStatus, ReplicaTemplate
from cortex.backends.fake import FakeBackend
from cortex.spec.models import Compute, ContainerSpec, PodSpec
from cortex.spec.quantity import Quantity


def template(api_name: str = "iris", *, port: int | None = 8080, job_id: str | None = None):
    compute = Compute(cpu=Quantity.parse("500m"), mem=Quantity.parse("1Gi"), gpu=1)
    pod = PodSpec(port=port, containers=[ContainerSpec(name="api", image="x", compute=compute)])
    return ReplicaTemplate(
        api_name=api_name,
        api_kind="RealtimeAPI",
        api_id="id-1",
        pod_id="pod-1",
        deployment_id="dep-1",
        pod=pod,
        project_dir=Path("/tmp"),
        job_id=job_id,
    )


def test_ids_are_deterministic_and_sorted_by_creation() -> None:
    backend = FakeBackend(clock=lambda: 5.0)
    ids = [backend.create_replica(template()).replica_id for _ in range(3)]
    assert ids == ["iris-0001", "iris-0002", "iris-0003"]
    assert [r.replica_id for r in backend.list_replicas()] == ids
    first = backend.list_replicas()[0]
    assert (first.status, first.created_at, first.port, first.pod_id) == (
        ReplicaStatus.CREATING,
        5.0,
        20001,
        "pod-1",
    )


def test_replica_without_port() -> None:
    backend = FakeBackend()
    assert backend.create_replica(template(port=None)).port is None


def test_lifecycle_controls() -> None:
    backend = FakeBackend()
    a = backend.create_replica(template("a")).replica_id
    b = backend.create_replica(template("b")).replica_id
    backend.make_ready("a")
    assert [r.status for r in backend.list_replicas()] == [
        ReplicaStatus.READY,
        ReplicaStatus.CREATING,
    ]
    backend.delete_replica(a)
    backend.delete_replica("nope")  # unknown ids: no-op
    assert backend.deleted == [a]
    backend.make_ready()  # a Terminating replica stays Terminating
    assert backend.list_replicas("a")[0].status == ReplicaStatus.TERMINATING
    assert backend.finish_terminations() == [a]
    assert [r.replica_id for r in backend.list_replicas()] == [b]
    backend.set_status(b, ReplicaStatus.FAILED, exit_code=1, message="boom")
    info = backend.list_replicas("b")[0]
    assert (info.status, info.exit_code, info.message) == (ReplicaStatus.FAILED, 1, "boom")
    assert [t.api_name for t in backend.created] == ["a", "b"]
    with pytest.raises(KeyError):
        backend.set_status("nope", ReplicaStatus.READY)


def test_capacity_counts_replicas_until_they_are_gone() -> None:
    backend = FakeBackend(node=NodeCapacity(cpu_millis=4000, mem_bytes=8 * 2**30, gpus=2))
    rid = backend.create_replica(template()).replica_id
    backend.create_replica(template())
    cap = backend.capacity()
    assert (cap.cpu_millis, cap.requested_cpu_millis, cap.requested_mem_bytes) == (
        4000,
        1000,
        2 * 2**30,
    )
    assert cap.requested_gpus == 2
    backend.delete_replica(rid)
    assert backend.capacity().requested_cpu_millis == 1000  # Terminating still holds it
    backend.finish_terminations()
    assert backend.capacity().requested_cpu_millis == 500


async def test_logs_follow_until_close() -> None:
    backend = FakeBackend()
    await backend.start()
    backend.add_log("iris", "one")
    backend.add_log("other", "x")
    backend.add_log("iris", "job line", job_id="j1")
    assert [line async for line in backend.stream_logs("iris")] == ["one", "job line"]
    assert [line async for line in backend.stream_logs("iris", job_id="j1")] == ["job line"]

    async def follow() -> list[str]:
        return [line async for line in backend.stream_logs("iris", follow=True)]

    task = asyncio.create_task(follow(), name="follow-logs")
    await asyncio.sleep(0)
    backend.add_log("iris", "two")
    await asyncio.sleep(0)
    await backend.close()
    assert await asyncio.wait_for(task, 1) == ["one", "job line", "two"]
    assert backend.list_replicas() == []
