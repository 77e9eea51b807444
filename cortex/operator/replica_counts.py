"""Replica counts of a RealtimeAPI / AsyncAPI (SPEC 12.2), as ``cortex describe`` shows them.

Counting rule, over the API's replicas: a replica is *latest* when its ``pod_id`` and
``deployment_id`` both equal the API's current ones.

- latest and Ready -> ``ready``; not latest and Ready -> ``ready_out_of_date``;
- otherwise Terminating (any version) -> ``terminating``;
- otherwise a replica that is not latest is ignored (an old replica on its way out);
- otherwise by its status: pending, stalled, creating, not_ready, err_image_pull, failed,
  killed, killed_oom, unknown (Succeeded is not counted: a serving replica never succeeds).

``requested`` is the desired replica count (the Deployment's ``spec.replicas``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from cortex.backends.base import ReplicaInfo, ReplicaStatus

_FIELD_OF_STATUS = {
    ReplicaStatus.PENDING: "pending",
    ReplicaStatus.STALLED: "stalled",
    ReplicaStatus.CREATING: "creating",
    ReplicaStatus.NOT_READY: "not_ready",
    ReplicaStatus.READY: "ready",
    ReplicaStatus.ERR_IMAGE_PULL: "err_image_pull",
    ReplicaStatus.FAILED: "failed",
    ReplicaStatus.KILLED: "killed",
    ReplicaStatus.KILLED_OOM: "killed_oom",
    ReplicaStatus.UNKNOWN: "unknown",
}


@dataclass
class ReplicaCounts:
    requested: int = 0
    pending: int = 0
    stalled: int = 0
    creating: int = 0
    not_ready: int = 0
    ready: int = 0
    ready_out_of_date: int = 0
    err_image_pull: int = 0
    terminating: int = 0
    failed: int = 0
    killed: int = 0
    killed_oom: int = 0
    unknown: int = 0

    @property
    def total_failed(self) -> int:
        """ErrImagePull + Failed + Killed + KilledOOM + Unknown (the deploy guard's input)."""
        return self.err_image_pull + self.failed + self.killed + self.killed_oom + self.unknown

    @property
    def up_to_date(self) -> int:
        """Latest-version replicas that are not Terminating (the Deployment's
        ``status.updatedReplicas``, APIResponse ``status.up_to_date``)."""
        return (
            self.pending
            + self.stalled
            + self.creating
            + self.not_ready
            + self.ready
            + self.total_failed
        )

    @property
    def all_ready(self) -> int:
        """Ready replicas of any version (APIResponse ``status.ready``)."""
        return self.ready + self.ready_out_of_date

    def to_json(self) -> dict[str, Any]:
        """SPEC's keys, as the original client consumed them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def count_replicas(
    replicas: Iterable[ReplicaInfo], *, pod_id: str, deployment_id: str, requested: int
) -> ReplicaCounts:
    """Count ``replicas`` (those of one API) by SPEC 12.2's rule; see the module docstring."""
    counts = ReplicaCounts(requested=requested)
    for replica in replicas:
        latest = replica.pod_id == pod_id and replica.deployment_id == deployment_id
        if replica.status == ReplicaStatus.READY:
            name = "ready" if latest else "ready_out_of_date"
        elif replica.status == ReplicaStatus.TERMINATING:
            name = "terminating"
        elif not latest or replica.status not in _FIELD_OF_STATUS:
            continue
        else:
            name = _FIELD_OF_STATUS[replica.status]
        setattr(counts, name, getattr(counts, name) + 1)
    return counts
