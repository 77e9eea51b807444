"""The rolling-update planner: one step of a Kubernetes Deployment controller, as a pure function.

Input: the desired replica count, the current version (``pod_id``, ``deployment_id``), the
API's replicas as the backend lists them, and ``max_surge`` / ``max_unavailable`` already
rounded (:func:`cortex.spec.resolved.surge_and_unavailable`). Output: which replicas to delete
and how many new ones to create now. The caller acts, waits, and calls again with what it then
observes (level-triggered), so a rollout is a sequence of steps.

Classification (what Kubernetes' ReplicaSet controller sees):

- *Terminating* replicas are on their way out; they count toward nothing.
- *Ended* replicas (Succeeded, or a failure status with an exit code: every process is gone
  and will not restart) are deleted and replaced, as the ReplicaSet controller replaces pods in
  phase Failed/Succeeded. A crash-looping replica (Failed without an exit code) is left to
  the backend's restart back-off, as in Kubernetes.
- The others are *active*: *new* (pod_id and deployment_id match) or *old*.

One step:

1. No old replicas (steady state): create ``desired - len(new)`` or delete the excess,
   choosing not-Ready ones first, then the newest (the ReplicaSet's scale-down ranking).
2. Old replicas and no Ready replica of any version (a deployment that never became Ready):
   delete every old one at once and create the new ones (SPEC 10.6: delete and re-create).
3. Rolling update (Deployment ``RollingUpdate``):
   - scale up the new version to at most ``desired`` while active replicas stay
     ``<= desired + max_surge``;
   - with ``min_available = desired - max_unavailable``, delete old not-Ready replicas while
     ``active - min_available - new_not_ready`` allows (they serve nothing), then old Ready
     ones while ``ready - min_available`` allows.

Guarantees of every step (checked by property tests): a step creates replicas only if
afterwards active ``<= desired + max_surge``; the Ready count after its deletions is
``>= min(Ready before, min_available)``; repeated steps with replicas becoming Ready converge
to exactly ``desired`` Ready replicas of the new version and no others.
``max_surge == max_unavailable == 0`` (which validation forbids) is treated as
``max_unavailable = 1``, so a rollout can always make progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cortex.backends.base import FAILED_STATUSES, ReplicaInfo, ReplicaStatus


@dataclass(frozen=True)
class RolloutPlan:
    delete: tuple[str, ...] = ()  # replica ids, in the order chosen
    create: int = 0  # new replicas of the current version


@dataclass(frozen=True)
class _Groups:
    new: list[ReplicaInfo]
    old: list[ReplicaInfo]
    ended: list[ReplicaInfo]


def is_ended(replica: ReplicaInfo) -> bool:
    """True when every process of the replica is gone for good (it will never serve again)."""
    if replica.status == ReplicaStatus.SUCCEEDED:
        return True
    return replica.status in FAILED_STATUSES and replica.exit_code is not None


def _group(replicas: Sequence[ReplicaInfo], pod_id: str, deployment_id: str) -> _Groups:
    groups = _Groups(new=[], old=[], ended=[])
    for replica in replicas:
        if replica.status == ReplicaStatus.TERMINATING:
            continue
        if is_ended(replica):
            groups.ended.append(replica)
        elif replica.pod_id == pod_id and replica.deployment_id == deployment_id:
            groups.new.append(replica)
        else:
            groups.old.append(replica)
    return groups


def scale_down_order(replicas: Sequence[ReplicaInfo]) -> list[ReplicaInfo]:
    """Who goes first when scaling down: not-Ready before Ready, then the newest first."""
    newest_first = sorted(replicas, key=lambda r: (r.created_at, r.replica_id), reverse=True)
    return sorted(newest_first, key=lambda r: r.ready)


def _ready(replicas: Sequence[ReplicaInfo]) -> int:
    return sum(1 for r in replicas if r.ready)


def _steady(desired: int, new: list[ReplicaInfo]) -> tuple[list[str], int]:
    if len(new) >= desired:
        return [r.replica_id for r in scale_down_order(new)[: len(new) - desired]], 0
    return [], desired - len(new)


def _rolling(
    desired: int, g: _Groups, max_surge: int, max_unavailable: int
) -> tuple[list[str], int]:
    active = len(g.new) + len(g.old)
    create = max(0, min(desired + max_surge - active, desired - len(g.new)))
    min_available = max(desired - max_unavailable, 0)
    new_not_ready = len(g.new) - _ready(g.new)
    old_order = scale_down_order(g.old)
    old_not_ready = [r for r in old_order if not r.ready]
    old_ready = [r for r in old_order if r.ready]
    unhealthy_budget = max(active - min_available - new_not_ready, 0)
    delete = old_not_ready[:unhealthy_budget]
    ready_budget = max(_ready(g.new) + len(old_ready) - min_available, 0)
    delete += old_ready[:ready_budget]
    return [r.replica_id for r in delete], create


def plan_rollout(
    *,
    desired: int,
    pod_id: str,
    deployment_id: str,
    replicas: Sequence[ReplicaInfo],
    max_surge: int,
    max_unavailable: int,
) -> RolloutPlan:
    """One step toward ``desired`` Ready replicas of the current version (module docstring)."""
    if max_surge <= 0 and max_unavailable <= 0:
        max_unavailable = 1
    g = _group(replicas, pod_id, deployment_id)
    ended = [r.replica_id for r in g.ended]
    if not g.old:
        delete, create = _steady(desired, g.new)
    elif _ready(g.new) + _ready(g.old) == 0:
        delete, create = [r.replica_id for r in g.old], max(desired - len(g.new), 0)
    else:
        delete, create = _rolling(desired, g, max(max_surge, 0), max(max_unavailable, 0))
    return RolloutPlan(delete=tuple(ended + delete), create=create)
