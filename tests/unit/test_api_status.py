"""The one-word API status of ``cortex get``."""

from __future__ import annotations

import pytest

from cortex.operator.api_status import ApiStatus, api_status
from cortex.operator.replica_counts import ReplicaCounts


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        (ReplicaCounts(requested=2, ready=2), ApiStatus.LIVE),
        (ReplicaCounts(requested=1, ready=1), ApiStatus.LIVE),
        (ReplicaCounts(requested=0), ApiStatus.SCALED_TO_ZERO),
        (ReplicaCounts(requested=0, terminating=1), ApiStatus.SCALED_TO_ZERO),  # draining
        (ReplicaCounts(requested=0, ready=1), ApiStatus.UPDATING),  # scaling down to zero
        (ReplicaCounts(requested=1, creating=1), ApiStatus.UPDATING),  # woken, starting
        (ReplicaCounts(requested=3, ready=2, pending=1), ApiStatus.UPDATING),  # scaling up
        (ReplicaCounts(requested=2, ready=2, ready_out_of_date=1), ApiStatus.UPDATING),  # rollout
        (ReplicaCounts(requested=2, ready=1, ready_out_of_date=1), ApiStatus.UPDATING),
        (ReplicaCounts(requested=2, ready=3), ApiStatus.UPDATING),  # scaling down
        (ReplicaCounts(requested=1, failed=1), ApiStatus.ERROR),
        (ReplicaCounts(requested=1, err_image_pull=1), ApiStatus.ERROR),
        (ReplicaCounts(requested=2, stalled=2), ApiStatus.ERROR),  # no room on the node
        (ReplicaCounts(requested=2, ready_out_of_date=1, killed_oom=1), ApiStatus.DEGRADED),
        (ReplicaCounts(requested=2, ready=1, killed=1), ApiStatus.DEGRADED),
    ],
)
def test_api_status(counts: ReplicaCounts, status: ApiStatus) -> None:
    assert api_status(counts) == status


def test_status_strings() -> None:
    assert [s.value for s in ApiStatus] == [
        "live",
        "updating",
        "scaled to zero",
        "degraded",
        "error",
    ]
