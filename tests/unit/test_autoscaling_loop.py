"""The operator's autoscaler loop against the FakeBackend, a real StateStore and Reconciler, an
injected clock and hand-made gateway syncs: the arithmetic of SPEC 1.3 played out over time."""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cortex.backends.base import ReplicaStatus
from cortex.backends.fake import FakeBackend
from cortex.dataplane.table import SyncRequest
from cortex.errors import NotDeployedError, UnsupportedOperationError
from cortex.operator.autoscaling_loop import AutoscalingLoop
from cortex.operator.reconciler import Reconciler
from cortex.operator.store import ApiRecord, StateStore
from cortex.spec.parse import parse_api
from cortex.spec.resolved import pod_id, spec_id

TICK_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.5  # off the 10 s report boundaries, so no tie decides anything

    def __call__(self) -> float:
        return self.now


def item(name: str = "iris", **autoscaling: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "RealtimeAPI",
        "pod": {"max_concurrency": 1, "containers": [{"name": "api", "image": "img"}]},
        "autoscaling": {
            "window": "10s",
            "upscale_stabilization_period": "10s",
            "downscale_stabilization_period": "30s",
            **autoscaling,
        },
    }


def record(raw: dict[str, Any], *, requested: int, created_ns: int = 1) -> ApiRecord:
    api = parse_api(raw, file_name="cortex.yaml", index=0)
    return ApiRecord(
        name=api.name,
        kind=str(api.kind),
        api_id=f"id-{spec_id(api)}",
        spec_id=spec_id(api),
        pod_id=pod_id(api),
        deployment_id="dep1",
        initial_deployment_time_ns=created_ns,
        last_updated=1.0,
        submitted=raw,
        file_name="cortex.yaml",
        project_dir="/tmp",
        requested=requested,
    )


class Harness:
    """One simulated second per :meth:`second`: the reconciler steps, replicas become Ready,
    terminations finish, the gateway syncs (reporting ``load`` requests per API, spread over
    its Ready replicas) and, every ``TICK_S``, the autoscaler ticks."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.store = StateStore(tmp_path / "s.db")
        self.backend = FakeBackend(clock=self.clock)
        self.reconciler = Reconciler(
            self.store, self.backend, drain_timeout_s=5.0, clock=self.clock, initial_version=1
        )
        self.loop = AutoscalingLoop(
            self.store,
            self.backend,
            self.reconciler.notify,
            tick_s=TICK_S,
            clock=self.clock,
            wall_clock=lambda: 5000.0,
        )
        self.load: dict[str, float] = {}
        self.held: dict[str, int] = {}
        self.history: list[int] = []  # the watched API's requested replicas after each tick
        self.watched = "iris"
        self.elapsed = 0

    def deploy(self, raw: dict[str, Any], *, requested: int = 1, created_ns: int = 1) -> None:
        self.store.put_api(record(raw, requested=requested, created_ns=created_ns))

    def requested(self, name: str = "iris") -> int:
        rec = self.store.get_api(name)
        assert rec is not None
        return rec.requested

    def ready(self, name: str = "iris") -> list[str]:
        return [
            r.replica_id
            for r in self.backend.list_replicas(name)
            if r.status == ReplicaStatus.READY
        ]

    def sync(self) -> None:
        in_flight: dict[str, int] = {}
        for name, total in self.load.items():
            ready = self.ready(name)
            for i, replica_id in enumerate(ready):
                # spread the total as evenly as whole requests allow
                share = math.floor(total * (i + 1) / len(ready)) - math.floor(
                    total * i / len(ready)
                )
                in_flight[replica_id] = share
        req = SyncRequest(version=self.reconciler.route_table().version, in_flight=in_flight)
        req.held = dict(self.held)
        self.loop.observe(req)

    def second(self) -> None:
        self.clock.now += 1.0
        self.elapsed += 1
        self.reconciler.step()
        self.backend.make_ready()
        self.backend.finish_terminations()
        self.sync()
        if self.elapsed % TICK_S == 0:
            self.loop.tick_all()
            self.history.append(self.requested(self.watched))

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.second()


@pytest.fixture
def h(tmp_path: Path):
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


def changes(history: list[int]) -> list[int]:
    """The successive distinct values of a history."""
    out: list[int] = []
    for value in history:
        if not out or out[-1] != value:
            out.append(value)
    return out


def test_held_load_scales_to_the_formula_in_factor_limited_steps(h: Harness) -> None:
    h.deploy(item(max_replicas=20), requested=1)
    h.load["iris"] = 8  # 8 requests always in flight, target_in_flight 1 (max_concurrency)
    h.run(10)
    assert h.history == [1]  # the first tick starts the clock: no upscale for 10 s
    h.run(170)
    steps = changes(h.history)
    assert steps[-1] == math.ceil(8 / 1.0) and h.history[-5:] == [8] * 5
    for before, after in itertools.pairwise(steps):
        # never further than max_upscale_factor (1.5) allows, which always allows one more
        assert before < after <= max(before + 1, math.ceil(before * 1.5))
    assert steps == [1, 2, 3, 5, 8]
    assert len(h.ready()) == 8


def test_removed_load_scales_down_only_after_the_downscale_stabilization(h: Harness) -> None:
    h.deploy(item(max_replicas=20), requested=4)
    h.load["iris"] = 4
    h.run(60)
    assert h.requested() == 4
    h.load["iris"] = 0
    h.history.clear()
    h.run(30)
    # the recommendations of 4 made in the last 30 s hold the floor for the whole period
    assert h.history == [4, 4, 4]
    h.run(90)
    steps = changes(h.history)
    assert steps[0] == 4 and steps[-1] == 1  # min_replicas
    for before, after in itertools.pairwise(steps):
        # max_downscale_factor 0.75: at most down to min(cur - 1, ceil(cur * 0.75))
        assert min(before - 1, math.ceil(before * 0.75)) <= after < before


def test_min_zero_reaches_zero_and_awaken_brings_one_back(h: Harness) -> None:
    h.deploy(item(min_replicas=0), requested=1)
    h.load["iris"] = 0
    h.run(60)
    assert h.requested() == 0
    h.run(10)  # drained and deleted
    assert h.backend.list_replicas("iris") == []
    (route,) = h.reconciler.route_table().realtime
    assert route.scaled_to_zero and route.upstreams == ()
    # held requests alone are no metrics (no replica series): nothing happens until awakened
    h.held["iris"] = 3
    h.run(20)
    assert h.requested() == 0
    assert h.loop.awaken("iris") == 1
    assert h.requested() == 1
    assert h.loop.awaken("iris") == 1  # already awake: a no-op
    h.held["iris"] = 0
    h.run(2)  # created, then Ready and routed
    (route,) = h.reconciler.route_table().realtime
    assert not route.scaled_to_zero and len(route.upstreams) == 1
    # the awaken's recommendation of 1 holds off the next scale to zero for 30 s
    h.history.clear()
    h.run(20)
    assert h.history == [1, 1]
    h.run(60)
    assert h.requested() == 0


def test_awaken_errors(h: Harness) -> None:
    with pytest.raises(NotDeployedError):
        h.loop.awaken("nope")
    h.store.put_api(replace(record(item(), requested=1), kind="AsyncAPI"))
    with pytest.raises(UnsupportedOperationError):
        h.loop.awaken("iris")


def test_new_bounds_reset_the_stabilization_and_are_respected(h: Harness) -> None:
    h.deploy(item(max_replicas=20), requested=2)
    h.load["iris"] = 6
    h.run(30)
    assert h.requested() == 3
    # redeploy with a lower max: deploy clamps requested (here by hand, as Deployer does)
    h.deploy(item(max_replicas=4), requested=3)
    h.history.clear()
    h.run(10)
    assert h.history == [3]  # a fresh stabilization clock: no upscale during the first 10 s
    h.run(60)
    assert h.requested() == 4 and max(h.history) == 4
    view = h.loop.describe(h.store.get_api("iris"))  # type: ignore[arg-type]
    assert view["max_replicas"] == 4 and view["requested"] == 4
    assert view["recommendation"] == 4 and view["in_flight"] == pytest.approx(6.0)
    assert view["last_tick"] == 5000.0


def test_deleted_api_state_is_dropped_and_a_broken_api_does_not_stop_the_others(
    h: Harness,
) -> None:
    h.deploy(item("a", max_replicas=5), requested=1)
    h.deploy(item("b"), requested=1)
    h.watched = "a"
    h.load["a"] = 3
    h.run(10)
    assert set(h.loop.figures()) == {"a", "b"}
    # b's stored spec no longer parses: its tick fails, a's goes on
    broken = {**item("b"), "bogus": 1}
    h.store.put_api(replace(record(item("b"), requested=1), api_id="new", submitted=broken))
    h.run(30)
    assert h.requested("a") > 1
    h.store.delete_api("b")
    h.run(10)
    assert set(h.loop.figures()) == {"a"}


def test_describe_before_any_tick(h: Harness) -> None:
    h.deploy(item(min_replicas=0, max_replicas=3, target_in_flight=2), requested=0)
    rec = h.store.get_api("iris")
    assert rec is not None
    assert h.loop.describe(rec) == {
        "in_flight": None,
        "recommendation": None,
        "requested": 0,
        "min_replicas": 0,
        "max_replicas": 3,
        "target_in_flight": 2.0,
        "last_tick": None,
    }


async def test_run_ticks_at_once_then_every_period_and_survives_errors(h: Harness) -> None:
    h.loop.tick_s = 0.01
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    h.loop.tick_all = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(h.loop.run())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3


async def test_scale_to_zero_drains_before_deleting(h: Harness) -> None:
    h.deploy(item(min_replicas=0), requested=2)
    h.run(2)
    first, second = h.ready()

    async def ack(in_flight: dict[str, int]) -> None:
        req = SyncRequest(version=h.reconciler.route_table().version, in_flight=in_flight)
        req.wait_s = 0
        await h.reconciler.sync_gateway(req)

    await ack({first: 0, second: 0})
    h.store.set_requested("iris", 0)
    h.reconciler.step()
    (route,) = h.reconciler.route_table().realtime
    assert route.scaled_to_zero and route.upstreams == ()
    counts = h.reconciler.replica_counts("iris")
    assert (counts.requested, counts.terminating, counts.ready) == (0, 2, 0)
    assert h.backend.deleted == []  # the gateway has not acked the table without them
    await ack({first: 1, second: 0})  # acked, one request still running on the first
    h.reconciler.step()
    assert h.backend.deleted == [second]
    await ack({first: 0})
    h.reconciler.step()
    assert sorted(h.backend.deleted) == sorted([first, second])
