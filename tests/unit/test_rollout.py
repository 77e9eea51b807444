"""The rolling-update planner, step by step and as properties over random rollouts."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.backends.base import ReplicaInfo, ReplicaStatus
from cortex.operator.rollout import RolloutPlan, is_ended, plan_rollout, scale_down_order

NEW = ("pod-b", "dep1")
OLD = ("pod-a", "dep1")
_ids = itertools.count()


def replica(
    version: tuple[str, str] = NEW,
    status: ReplicaStatus = ReplicaStatus.READY,
    *,
    created_at: float | None = None,
    exit_code: int | None = None,
) -> ReplicaInfo:
    n = next(_ids)
    return ReplicaInfo(
        replica_id=f"r{n:05d}",
        api_name="api",
        api_kind="RealtimeAPI",
        api_id="id",
        pod_id=version[0],
        deployment_id=version[1],
        job_id=None,
        status=status,
        host="127.0.0.1",
        port=1000 + n,
        created_at=float(n) if created_at is None else created_at,
        exit_code=exit_code,
    )


def plan(desired: int, replicas: list[ReplicaInfo], surge: int = 1, unavailable: int = 0):
    return plan_rollout(
        desired=desired,
        pod_id=NEW[0],
        deployment_id=NEW[1],
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
    )


def test_create_from_nothing() -> None:
    assert plan(3, []) == RolloutPlan(delete=(), create=3)


def test_steady_state_does_nothing() -> None:
    assert plan(2, [replica(), replica()]) == RolloutPlan()


def test_scale_down_prefers_not_ready_then_newest() -> None:
    old_ready, new_ready = replica(created_at=1), replica(created_at=3)
    creating = replica(status=ReplicaStatus.CREATING, created_at=0)
    assert plan(1, [old_ready, new_ready, creating]).delete == (
        creating.replica_id,
        new_ready.replica_id,
    )


def test_scale_to_zero_deletes_all() -> None:
    a, b = replica(), replica()
    assert set(plan(0, [a, b]).delete) == {a.replica_id, b.replica_id}


def test_terminating_replicas_count_toward_nothing() -> None:
    gone = replica(status=ReplicaStatus.TERMINATING)
    assert plan(2, [gone, replica()]) == RolloutPlan(create=1)


def test_surge_one_unavailable_zero_first_step() -> None:
    # desired 3, 3 old Ready: active 3 < 3+1 -> create 1; ready 3 - min_available 3 = 0 deletions
    old = [replica(OLD) for _ in range(3)]
    assert plan(3, old, surge=1, unavailable=0) == RolloutPlan(create=1)


def test_surge_one_deletes_an_old_once_a_new_is_ready() -> None:
    # active 4 = 3+1 -> create 0; ready 4 - 3 = 1 old Ready may go (the oldest is kept last)
    old = [replica(OLD) for _ in range(3)]
    result = plan(3, [*old, replica(NEW)], surge=1, unavailable=0)
    assert result == RolloutPlan(delete=(old[-1].replica_id,), create=0)


def test_surge_zero_terminates_old_first() -> None:
    # desired 2, surge 0, unavailable 1: active 2 = 2+0 -> create 0; ready 2 - 1 = 1 delete
    old = [replica(OLD), replica(OLD)]
    result = plan(2, old, surge=0, unavailable=1)
    assert result.create == 0
    assert len(result.delete) == 1


def test_old_not_ready_replicas_go_before_ready_ones() -> None:
    # active 3 = 2+1 -> create 0; min_available 2: 3-2-0 = 1 unhealthy old may go; ready 2-2 = 0
    sick = replica(OLD, ReplicaStatus.NOT_READY)
    old = [replica(OLD), replica(OLD), sick]
    assert plan(2, old, surge=1, unavailable=0) == RolloutPlan(delete=(sick.replica_id,))


def test_never_ready_deployment_is_replaced_at_once() -> None:
    old = [replica(OLD, ReplicaStatus.CREATING), replica(OLD, ReplicaStatus.FAILED)]
    result = plan(2, old, surge=0, unavailable=1)
    assert set(result.delete) == {r.replica_id for r in old}
    assert result.create == 2


def test_ended_replicas_are_replaced() -> None:
    dead = replica(status=ReplicaStatus.FAILED, exit_code=1)
    result = plan(2, [replica(), dead])
    assert result == RolloutPlan(delete=(dead.replica_id,), create=1)


def test_crash_looping_replica_is_left_to_restart() -> None:
    # Failed without an exit code: the backend restarts it with back-off (as Kubernetes does)
    looping = replica(status=ReplicaStatus.FAILED)
    assert not is_ended(looping)
    assert plan(2, [replica(), looping]) == RolloutPlan()


def test_both_zero_is_treated_as_unavailable_one() -> None:
    old = [replica(OLD), replica(OLD)]
    assert len(plan(2, old, surge=0, unavailable=0).delete) == 1


def test_scale_down_order() -> None:
    a = replica(created_at=1)
    b = replica(status=ReplicaStatus.READY, created_at=2)
    c = replica(status=ReplicaStatus.NOT_READY, created_at=0)
    assert [r.replica_id for r in scale_down_order([a, b, c])] == [
        c.replica_id,
        b.replica_id,
        a.replica_id,
    ]


# --- properties -------------------------------------------------------------------------------

_statuses = st.sampled_from(
    [ReplicaStatus.READY, ReplicaStatus.READY, ReplicaStatus.NOT_READY, ReplicaStatus.CREATING]
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, int, list[ReplicaInfo], list[bool]]:
    desired = draw(st.integers(0, 6))
    surge = draw(st.integers(0, 3))
    unavailable = draw(st.integers(0 if surge else 1, 3))
    start = [
        replica(draw(st.sampled_from([OLD, NEW])), draw(_statuses), created_at=float(i))
        for i in range(draw(st.integers(0, 8)))
    ]
    start += [  # on their way out, or ended for good: both must be ignored or replaced
        replica(draw(st.sampled_from([OLD, NEW])), status, exit_code=code)
        for status, code in draw(
            st.lists(
                st.sampled_from([(ReplicaStatus.TERMINATING, None), (ReplicaStatus.FAILED, 1)]),
                max_size=2,
            )
        )
    ]
    become_ready = draw(st.lists(st.booleans(), min_size=40, max_size=40))
    return desired, surge, unavailable, start, become_ready


def _active(replicas: list[ReplicaInfo]) -> list[ReplicaInfo]:
    return [r for r in replicas if r.status != ReplicaStatus.TERMINATING]


def _apply(replicas: list[ReplicaInfo], result: RolloutPlan, now: float) -> list[ReplicaInfo]:
    """Deleted and Terminating ones vanish (terminations finish at once); created ones start
    Creating."""
    kept = [r for r in _active(replicas) if r.replica_id not in result.delete]
    made = [replica(NEW, ReplicaStatus.CREATING, created_at=now) for _ in range(result.create)]
    return kept + made


def _check_bounds(
    before: list[ReplicaInfo], result: RolloutPlan, desired: int, surge: int, unavailable: int
) -> None:
    assert len(set(result.delete)) == len(result.delete)
    assert set(result.delete) <= {r.replica_id for r in _active(before)}
    after_delete = [r for r in _active(before) if r.replica_id not in result.delete]
    if result.create:
        assert len(after_delete) + result.create <= desired + surge
    ready_before = sum(r.ready for r in before)
    ready_after = sum(r.ready for r in after_delete)
    assert ready_after >= min(ready_before, max(desired - unavailable, 0))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_step_respects_the_bounds_and_converges(
    scenario: tuple[int, int, int, list[ReplicaInfo], list[bool]],
) -> None:
    desired, surge, unavailable, replicas, become_ready = scenario
    for now, ready_now in enumerate(become_ready, start=100):
        result = plan(desired, replicas, surge, unavailable)
        _check_bounds(replicas, result, desired, surge, unavailable)
        replicas = _apply(replicas, result, float(now))
        if ready_now:  # some steps nothing happens; on the others every replica gets Ready
            replicas = [dataclasses.replace(r, status=ReplicaStatus.READY) for r in replicas]
    replicas = [dataclasses.replace(r, status=ReplicaStatus.READY) for r in replicas]
    for _ in range(3 * 8 + 3):  # enough steps with every replica Ready to finish
        result = plan(desired, replicas, surge, unavailable)
        _check_bounds(replicas, result, desired, surge, unavailable)
        replicas = [
            dataclasses.replace(r, status=ReplicaStatus.READY)
            for r in _apply(replicas, result, 1e6)
        ]
    assert plan(desired, replicas, surge, unavailable) == RolloutPlan()
    assert len(replicas) == desired
    assert all((r.pod_id, r.deployment_id) == NEW and r.ready for r in replicas)


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1), (2, 1), (3, 3)])
def test_tick_by_tick_rollout_keeps_availability(surge: int, unavailable: int) -> None:
    desired = 4
    replicas = [replica(OLD) for _ in range(desired)]
    for step in range(50):
        result = plan(desired, replicas, surge, unavailable)
        replicas = _apply(replicas, result, 1000.0 + step)
        assert sum(r.ready for r in replicas) >= desired - unavailable
        assert len(replicas) <= desired + surge
        replicas = [dataclasses.replace(r, status=ReplicaStatus.READY) for r in replicas]
    assert [r.pod_id for r in replicas] == [NEW[0]] * desired
