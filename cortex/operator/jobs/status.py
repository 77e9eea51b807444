"""How a running job's workers decide its status (SPEC 7.4 and 8.3, with the preface's fixes).

Pure functions of the job, its worker replicas (as the backend lists them), the batch metrics
and ``now``; the manager does the I/O.

BatchAPI, once enqueued: the job runs while any worker is still active. A worker exits 0 only
after it saw the queue drained, so once every worker has ended:

* some worker succeeded -> ``succeeded``, or ``completed with failures`` when any batch failed
  for good: counted by a dequeuer, or in the dead-letter queue (the manager's metrics account
  for it). A worker that crashed mid-batch does not fail the job by itself: its batch is
  delivered again and the others drain the queue, unless that was its last allowed delivery;
* none succeeded -> ``out of memory`` if a worker was OOM-killed, else ``worker error``.

TaskAPI: the single worker's end decides: exit 0 ``succeeded``, OOM-killed ``out of memory``,
anything else ``worker error``.

Both: ``timeout`` counts from submission (``start_time``); past it the job is ``timed out``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cortex.backends.base import FAILED_STATUSES, ReplicaInfo, ReplicaStatus
from cortex.operator.jobs.models import JobMetrics, JobRecord, JobStatus
from cortex.spec.kinds import Kind

ENDED = FAILED_STATUSES | {ReplicaStatus.SUCCEEDED}

# SPEC 7.5 worker_counts keys, by replica status
_COUNT_KEYS = {
    ReplicaStatus.PENDING: "pending",
    ReplicaStatus.CREATING: "creating",
    ReplicaStatus.NOT_READY: "not_ready",
    ReplicaStatus.READY: "ready",
    ReplicaStatus.SUCCEEDED: "succeeded",
    ReplicaStatus.ERR_IMAGE_PULL: "err_image_pull",
    ReplicaStatus.TERMINATING: "terminating",
    ReplicaStatus.FAILED: "failed",
    ReplicaStatus.KILLED: "killed",
    ReplicaStatus.KILLED_OOM: "killed_oom",
    ReplicaStatus.STALLED: "stalled",
    ReplicaStatus.UNKNOWN: "unknown",
}


def worker_counts(replicas: Iterable[ReplicaInfo]) -> dict[str, int]:
    """Workers per SPEC 7.5 key; keys with 0 workers are left out (``omitempty``)."""
    counts: dict[str, int] = {}
    for replica in replicas:
        key = _COUNT_KEYS[replica.status]
        counts[key] = counts.get(key, 0) + 1
    return counts


def timed_out(job: JobRecord, now: float) -> bool:
    return job.timeout_s is not None and now - job.start_time >= job.timeout_s


def all_ended(replicas: Sequence[ReplicaInfo]) -> bool:
    return bool(replicas) and all(r.status in ENDED for r in replicas)


def batch_outcome(replicas: Sequence[ReplicaInfo], metrics: JobMetrics) -> JobStatus | None:
    """The final status of a batch job whose workers all ended, else None (still running)."""
    if not all_ended(replicas):
        return None
    if any(r.status == ReplicaStatus.SUCCEEDED for r in replicas):
        return JobStatus.COMPLETED_WITH_FAILURES if metrics.failed else JobStatus.SUCCEEDED
    return _failure(replicas)


def task_outcome(replicas: Sequence[ReplicaInfo]) -> JobStatus | None:
    """The final status of a task whose worker ended, else None (still running)."""
    if not all_ended(replicas):
        return None
    if all(r.status == ReplicaStatus.SUCCEEDED for r in replicas):
        return JobStatus.SUCCEEDED
    return _failure(replicas)


def _failure(replicas: Sequence[ReplicaInfo]) -> JobStatus:
    if any(r.status == ReplicaStatus.KILLED_OOM for r in replicas):
        return JobStatus.WORKER_OOM
    return JobStatus.WORKER_ERROR


def failure_message(replicas: Sequence[ReplicaInfo]) -> str:
    """Why the workers failed, from the backend's messages (empty when none says)."""
    parts = [
        f"{r.replica_id}: {r.status}"
        + (f" ({r.message})" if r.message else "")
        + ("" if r.exit_code is None else f", exit code {r.exit_code}")
        for r in replicas
        if r.status != ReplicaStatus.SUCCEEDED
    ]
    return "; ".join(parts)


def outcome(
    job: JobRecord, replicas: Sequence[ReplicaInfo], metrics: JobMetrics
) -> JobStatus | None:
    if job.kind == Kind.BATCH_API:
        return batch_outcome(replicas, metrics)
    return task_outcome(replicas)
