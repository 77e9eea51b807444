"""SPEC 12.2's replica counting rule."""

from __future__ import annotations

import pytest

from cortex.backends.base import ReplicaInfo, ReplicaStatus
from cortex.operator.replica_counts import ReplicaCounts, count_replicas

LATEST = ("pod-b", "dep-2")


def replica(status: ReplicaStatus, version: tuple[str, str] = LATEST) -> ReplicaInfo:
    return ReplicaInfo(
        replica_id="r",
        api_name="api",
        api_kind="RealtimeAPI",
        api_id="id",
        pod_id=version[0],
        deployment_id=version[1],
        job_id=None,
        status=status,
        host="127.0.0.1",
        port=1,
        created_at=0.0,
    )


def count(*replicas: ReplicaInfo, requested: int = 3) -> ReplicaCounts:
    return count_replicas(replicas, pod_id=LATEST[0], deployment_id=LATEST[1], requested=requested)


@pytest.mark.parametrize(
    ("status", "field"),
    [
        (ReplicaStatus.PENDING, "pending"),
        (ReplicaStatus.STALLED, "stalled"),
        (ReplicaStatus.CREATING, "creating"),
        (ReplicaStatus.NOT_READY, "not_ready"),
        (ReplicaStatus.READY, "ready"),
        (ReplicaStatus.ERR_IMAGE_PULL, "err_image_pull"),
        (ReplicaStatus.TERMINATING, "terminating"),
        (ReplicaStatus.FAILED, "failed"),
        (ReplicaStatus.KILLED, "killed"),
        (ReplicaStatus.KILLED_OOM, "killed_oom"),
        (ReplicaStatus.UNKNOWN, "unknown"),
    ],
)
def test_latest_replicas_count_by_status(status: ReplicaStatus, field: str) -> None:
    counts = count(replica(status))
    assert counts.to_json() == {**ReplicaCounts(requested=3).to_json(), field: 1}


@pytest.mark.parametrize("old", [("pod-a", "dep-2"), ("pod-b", "dep-1")])
def test_old_version_ready_is_out_of_date_terminating_counts_rest_ignored(
    old: tuple[str, str],
) -> None:
    counts = count(
        replica(ReplicaStatus.READY, old),
        replica(ReplicaStatus.TERMINATING, old),
        replica(ReplicaStatus.CREATING, old),
        replica(ReplicaStatus.FAILED, old),
    )
    assert (counts.ready, counts.ready_out_of_date, counts.terminating) == (0, 1, 1)
    assert counts.creating == counts.failed == 0


def test_succeeded_is_not_counted() -> None:
    assert count(replica(ReplicaStatus.SUCCEEDED)) == ReplicaCounts(requested=3)


def test_totals() -> None:
    counts = count(
        replica(ReplicaStatus.READY),
        replica(ReplicaStatus.READY, ("old", "dep-2")),
        replica(ReplicaStatus.ERR_IMAGE_PULL),
        replica(ReplicaStatus.KILLED_OOM),
        replica(ReplicaStatus.UNKNOWN),
        replica(ReplicaStatus.CREATING),
        replica(ReplicaStatus.TERMINATING),
    )
    assert counts.total_failed == 3  # ErrImagePull + KilledOOM + Unknown
    assert counts.all_ready == 2  # ready + ready_out_of_date
    assert counts.up_to_date == 5  # latest, not Terminating: Ready, 3 failed, Creating


def test_to_json_keys() -> None:
    assert set(ReplicaCounts().to_json()) == {
        "requested",
        "pending",
        "creating",
        "ready",
        "not_ready",
        "ready_out_of_date",
        "err_image_pull",
        "terminating",
        "failed",
        "killed",
        "killed_oom",
        "stalled",
        "unknown",
    }
