"""The reconciler stepped tick by tick against the FakeBackend, with an injected clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cortex.backends.base import ReplicaStatus, ReplicaTemplate
from cortex.backends.fake import FakeBackend
from cortex.dataplane.table import RouteTable, SplitTarget, SyncRequest
from cortex.errors import NotDeployedError
from cortex.operator.reconciler import Reconciler
from cortex.operator.store import ApiRecord, StateStore
from cortex.spec.parse import parse_api
from cortex.spec.resolved import pod_id, spec_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def submitted(
    name: str, *, image: str = "v1", surge: str = "1", unavailable: str = "0"
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "RealtimeAPI",
        "pod": {
            "max_concurrency": 2,
            "max_queue_length": 5,
            "containers": [{"name": "api", "image": image}],
        },
        "update_strategy": {"max_surge": surge, "max_unavailable": unavailable},
    }


def record(item: dict[str, Any], *, requested: int = 0, deployment_id: str = "dep1") -> ApiRecord:
    api = parse_api(item, file_name="cortex.yaml", index=0)
    return ApiRecord(
        name=api.name,
        kind=str(api.kind),
        api_id=f"id-{deployment_id}-{spec_id(api)}",
        spec_id=spec_id(api),
        pod_id=pod_id(api) if api.pod else "",
        deployment_id=deployment_id,
        initial_deployment_time_ns=1,
        last_updated=1.0,
        submitted=item,
        file_name="cortex.yaml",
        project_dir="/tmp",
        requested=requested,
    )


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.store = StateStore(tmp_path / "s.db")
        self.backend = FakeBackend(clock=self.clock)
        self.rec = Reconciler(
            self.store, self.backend, drain_timeout_s=30.0, clock=self.clock, initial_version=1
        )

    def deploy(self, name: str = "iris", *, requested: int = 2, **kw: Any) -> ApiRecord:
        deployment_id = kw.pop("deployment_id", "dep1")
        rec = record(submitted(name, **kw), requested=requested, deployment_id=deployment_id)
        self.store.put_api(rec)
        return rec

    def live(self, name: str = "iris") -> list[Any]:
        return [
            r for r in self.backend.list_replicas(name) if r.status != ReplicaStatus.TERMINATING
        ]

    def tick(self) -> None:
        """One step, then every replica gets Ready and every termination finishes."""
        self.rec.step()
        self.backend.make_ready()
        self.backend.finish_terminations()

    async def ack(self, in_flight: dict[str, int] | None = None) -> RouteTable:
        """The gateway syncs, acking the current table (returns at once: wait_s 0)."""
        req = SyncRequest(version=self.rec.route_table().version, in_flight=in_flight or {})
        req.wait_s = 0
        return await self.rec.sync_gateway(req)


@pytest.fixture
def h(tmp_path: Path):
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


def test_create_then_ready_then_routed(h: Harness) -> None:
    rec = h.deploy(requested=2)
    h.rec.step()
    assert [r.status for r in h.backend.list_replicas()] == [ReplicaStatus.CREATING] * 2
    template = h.backend.created[0]
    assert (template.api_id, template.pod_id, template.deployment_id) == (
        rec.api_id,
        rec.pod_id,
        "dep1",
    )
    assert template.project_dir == Path("/tmp")
    (route,) = h.rec.route_table().realtime
    assert (route.endpoint, route.max_concurrency, route.max_queue_length) == ("/iris", 2, 5)
    assert route.upstreams == ()
    version = h.rec.route_table().version
    h.backend.make_ready()
    h.rec.step()
    assert [u.replica_id for u in h.rec.route_table().realtime[0].upstreams] == [
        "iris-0001",
        "iris-0002",
    ]
    assert h.rec.route_table().version == version + 1
    counts = h.rec.replica_counts("iris")
    assert (counts.requested, counts.ready, counts.creating) == (2, 2, 0)
    h.rec.step()  # level-triggered: nothing left to do
    assert len(h.backend.created) == 2 and h.backend.deleted == []


def test_rolling_update_surge_one_keeps_ready_at_desired(h: Harness) -> None:
    h.deploy(requested=3)
    h.tick()
    new = h.deploy(requested=3, image="v2")
    for _ in range(12):
        h.rec.step()
        live = h.live()
        assert sum(r.ready for r in live) >= 3  # max_unavailable 0
        assert len(live) <= 4  # desired 3 + max_surge 1
        h.backend.make_ready()
        h.backend.finish_terminations()
    replicas = h.backend.list_replicas()
    assert len(replicas) == 3
    assert all(r.pod_id == new.pod_id and r.ready for r in replicas)
    assert len(h.backend.created) == 6 and len(h.backend.deleted) == 3


def test_rolling_update_old_and_new_both_serve(h: Harness) -> None:
    h.deploy(requested=1)
    h.tick()
    h.deploy(requested=1, image="v2")
    h.rec.step()  # surge: a new replica, not Ready yet
    h.backend.make_ready()
    h.rec.step()  # the new one is Ready and routed; the old one leaves the route to drain
    upstreams = [u.replica_id for u in h.rec.route_table().realtime[0].upstreams]
    assert upstreams == ["iris-0002"]
    assert h.rec.replica_counts("iris").terminating == 1


def test_max_surge_zero_terminates_old_first(h: Harness) -> None:
    h.deploy(requested=2, surge="0", unavailable="1")
    h.tick()
    created = len(h.backend.created)
    h.deploy(requested=2, image="v2", surge="0", unavailable="1")
    h.rec.step()
    assert len(h.backend.created) == created  # nothing new before an old one goes
    assert len(h.backend.deleted) == 1
    for _ in range(8):
        h.tick()
        assert len(h.live()) <= 2
    assert len(h.live()) == 2 and len(h.backend.created) == 4


def test_never_ready_deployment_is_replaced_at_once(h: Harness) -> None:
    h.deploy(requested=2)
    h.rec.step()  # two replicas that never become Ready
    h.deploy(requested=2, image="v2")
    h.rec.step()
    assert h.backend.deleted == ["iris-0001", "iris-0002"]
    assert [r.replica_id for r in h.live()] == ["iris-0003", "iris-0004"]


def test_refresh_rolls_every_replica(h: Harness) -> None:
    old = h.deploy(requested=2)
    h.tick()
    new = h.deploy(requested=2, deployment_id="dep2")
    assert new.pod_id == old.pod_id
    for _ in range(8):
        h.tick()
    assert {r.deployment_id for r in h.backend.list_replicas()} == {"dep2"}
    assert len(h.backend.list_replicas()) == 2


def test_scale_up_and_down(h: Harness) -> None:
    h.deploy(requested=2)
    h.tick()
    h.store.set_requested("iris", 4)
    h.tick()
    assert len(h.live()) == 4
    h.store.set_requested("iris", 1)
    h.backend.set_status("iris-0001", ReplicaStatus.NOT_READY)
    h.rec.step()
    # not-Ready first, then the newest
    assert h.backend.deleted == ["iris-0001", "iris-0004", "iris-0003"]
    assert h.rec.replica_counts("iris").terminating == 3


def test_ended_replica_is_replaced(h: Harness) -> None:
    h.deploy(requested=1)
    h.tick()
    h.backend.set_status("iris-0001", ReplicaStatus.KILLED_OOM, exit_code=137)
    h.rec.step()
    assert h.backend.deleted == ["iris-0001"]
    assert [r.replica_id for r in h.live()] == ["iris-0002"]


def test_delete_removes_all_replicas_and_the_route(h: Harness) -> None:
    h.deploy(requested=2)
    h.tick()
    version = h.rec.route_table().version
    h.store.delete_api("iris")
    h.rec.step()  # no gateway: nothing to drain from
    assert sorted(h.backend.deleted) == ["iris-0001", "iris-0002"]
    assert h.rec.route_table() == RouteTable(version=version + 1)
    with pytest.raises(NotDeployedError):
        h.rec.replica_counts("iris")


def test_other_kinds_replicas_are_left_alone(h: Harness) -> None:
    pod = parse_api(submitted("iris"), file_name="f", index=0).pod
    assert pod is not None
    job = ReplicaTemplate(
        api_name="batch",
        api_kind="BatchAPI",
        api_id="b",
        pod_id="p",
        deployment_id="",
        pod=pod,
        project_dir=Path("/tmp"),
        job_id="j1",
    )
    h.backend.create_replica(job)
    h.rec.step()
    assert h.backend.deleted == []


async def test_drain_waits_for_ack_and_no_in_flight(h: Harness) -> None:
    h.deploy(requested=2)
    h.tick()
    await h.ack()
    h.store.set_requested("iris", 1)
    h.rec.step()
    table = h.rec.route_table()
    assert [u.replica_id for u in table.realtime[0].upstreams] == ["iris-0001"]
    assert h.backend.deleted == []  # the gateway still has the old table
    assert h.rec.replica_counts("iris").terminating == 1  # draining shows as Terminating
    h.rec.step()
    assert h.backend.deleted == []
    await h.ack({"iris-0002": 2})  # acked, but requests still running on it
    assert h.rec.in_flight("iris") == 2.0
    h.rec.step()
    assert h.backend.deleted == []
    await h.ack({"iris-0002": 0})
    h.rec.step()
    assert h.backend.deleted == ["iris-0002"]
    h.rec.step()
    assert h.backend.deleted == ["iris-0002"]  # once


async def test_delete_drains_through_the_gateway(h: Harness) -> None:
    h.deploy(requested=2)
    h.tick()
    await h.ack()
    h.store.delete_api("iris")
    h.rec.step()
    assert h.rec.route_table().realtime == ()
    assert h.backend.deleted == []
    await h.ack()
    h.rec.step()
    assert sorted(h.backend.deleted) == ["iris-0001", "iris-0002"]


async def test_never_routed_replica_goes_once_the_gateway_is_current(h: Harness) -> None:
    h.deploy(requested=2)
    h.rec.step()
    h.backend.make_ready("iris")
    h.rec.step()
    await h.ack()
    h.store.set_requested("iris", 3)
    h.rec.step()  # iris-0003 is Creating: never in a route
    h.store.set_requested("iris", 2)
    h.rec.step()
    assert h.backend.deleted == ["iris-0003"]


async def test_drain_times_out(h: Harness) -> None:
    h.deploy(requested=2)
    h.tick()
    await h.ack()
    h.store.set_requested("iris", 1)
    h.rec.step()
    h.clock.now += 29
    await h.ack({"iris-0002": 1})
    h.rec.step()
    assert h.backend.deleted == []
    h.clock.now += 1
    await h.ack({"iris-0002": 1})
    h.rec.step()
    assert h.backend.deleted == ["iris-0002"]


async def test_drain_without_a_recent_gateway_is_immediate(h: Harness) -> None:
    h.deploy(requested=2)
    h.tick()
    await h.ack()
    h.store.set_requested("iris", 1)
    h.rec.step()
    assert h.backend.deleted == []
    h.clock.now += 5  # the gateway has gone quiet
    h.rec.step()
    assert h.backend.deleted == ["iris-0002"]


def test_route_table_versions_only_on_change_and_splitters(h: Harness) -> None:
    h.deploy(requested=1)
    splitter = {
        "name": "split",
        "kind": "TrafficSplitter",
        "networking": {"endpoint": "/s"},
        "apis": [{"name": "iris", "weight": 100}, {"name": "iris2", "weight": 30, "shadow": True}],
    }
    h.store.put_api(record(splitter))
    h.rec.step()
    first = h.rec.route_table()
    assert first.version == 2
    (route,) = first.splitters
    assert (route.endpoint, route.targets) == (
        "/s",
        (SplitTarget("iris", 100), SplitTarget("iris2", 30, shadow=True)),
    )
    h.rec.step()
    assert h.rec.route_table() is first
    h.store.set_requested("iris", 0)
    h.rec.step()
    assert h.rec.route_table().realtime[0].scaled_to_zero
    assert h.rec.route_table().version == 3


def test_one_broken_api_does_not_stop_the_others(h: Harness) -> None:
    broken = record(submitted("bad"), requested=1)
    h.store.put_api(ApiRecord(**{**broken.to_json(), "submitted": {"name": "bad"}}))
    h.deploy("good", requested=1)
    h.rec.step()
    assert [t.api_name for t in h.backend.created] == ["good"]
    assert [r.api_name for r in h.rec.route_table().realtime] == ["good"]


async def test_sync_answers_at_once_when_versions_differ(h: Harness) -> None:
    h.deploy(requested=1)
    h.rec.step()
    start = time.monotonic()
    table = await h.rec.sync_gateway(SyncRequest(version=0, wait_s=5))
    assert time.monotonic() - start < 1
    assert table == h.rec.route_table()


async def test_sync_long_poll_returns_early_on_change(h: Harness) -> None:
    h.deploy(requested=1)
    h.rec.step()
    current = h.rec.route_table().version
    poll = asyncio.create_task(
        h.rec.sync_gateway(SyncRequest(version=current, wait_s=5)), name="gateway-poll"
    )
    await asyncio.sleep(0.01)
    assert not poll.done()
    h.backend.make_ready()
    start = time.monotonic()
    h.rec.step()
    table = await asyncio.wait_for(poll, 1)
    assert time.monotonic() - start < 1
    assert table.version == current + 1 and table.realtime[0].upstreams


async def test_sync_long_poll_times_out_with_the_same_table(h: Harness) -> None:
    h.rec.step()
    current = h.rec.route_table()
    table = await h.rec.sync_gateway(SyncRequest(version=current.version, wait_s=0.05))
    assert table == current


async def test_run_steps_on_notify_and_survives_errors(h: Harness) -> None:
    h.rec.period_s = 60
    calls = 0
    real_step = h.rec.step

    def flaky_step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        real_step()

    h.rec.step = flaky_step  # type: ignore[method-assign]
    task = asyncio.create_task(h.rec.run(), name="reconciler")
    try:
        await asyncio.sleep(0.01)
        assert calls == 1
        h.deploy(requested=1)
        h.rec.notify()
        await asyncio.sleep(0.01)
        assert calls == 2
        assert len(h.backend.created) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_ready_counts_only_once_the_gateway_routes_the_replica(h: Harness) -> None:
    h.deploy(requested=1)
    await h.ack()  # a gateway is present and current
    h.rec.step()
    h.backend.make_ready()
    # The backend says Ready, but the gateway has not acked a table routing to it yet.
    h.rec.step()
    counts = h.rec.replica_counts("iris")
    assert (counts.ready, counts.not_ready) == (0, 1)
    await h.ack()
    counts = h.rec.replica_counts("iris")
    assert (counts.ready, counts.not_ready) == (1, 0)


def test_with_a_required_gateway_nothing_is_ready_before_it_syncs(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    backend = FakeBackend()
    rec = Reconciler(store, backend, gateway_required=True, initial_version=1)
    store.put_api(record(submitted("iris"), requested=1, deployment_id="dep1"))
    rec.step()
    backend.make_ready()
    rec.step()
    # The backend says Ready, but no gateway has synced with this operator yet (e.g. it
    # still backs off after an operator restart), so requests would not reach the replica.
    assert rec.replica_counts("iris").ready == 0
    store.close()
