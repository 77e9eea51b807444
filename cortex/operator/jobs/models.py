"""Job statuses and the job record the operator keeps for every BatchAPI and TaskAPI job.

:class:`JobStatus` values are the wire codes of SPEC 7.4 (``enqueue_failed``, ``worker_oom``,
...); :attr:`JobStatus.message` is the human text the CLI prints (``failed while enqueuing``,
``out of memory``, ...). A :class:`JobRecord` is what the job store persists: the job spec the
user submitted (resolved), where the job is in its life cycle, and, once it has ended, its final
metrics, so a finished job stays readable after its workers and queues are gone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cortex.spec.kinds import Kind

MAX_BATCH_BYTES = 256_000  # SPEC 6: one queue message (a batch) at most
MAX_REQUEST_BYTES = 10 * 2**20  # SPEC 6/8.2: a submission request body at most


class JobStatus(StrEnum):
    """A job's status; the value is the wire code (SPEC 7.4's table)."""

    PENDING = "pending"
    ENQUEUING = "enqueuing"
    RUNNING = "running"
    ENQUEUE_FAILED = "enqueue_failed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    SUCCEEDED = "succeeded"
    UNEXPECTED_ERROR = "unexpected_error"
    WORKER_ERROR = "worker_error"
    WORKER_OOM = "worker_oom"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    UNKNOWN = "unknown"

    @property
    def message(self) -> str:
        """What the CLI shows for this status."""
        return _MESSAGES[self]

    @property
    def in_progress(self) -> bool:
        return self in (JobStatus.ENQUEUING, JobStatus.RUNNING)

    @property
    def completed(self) -> bool:
        """A terminal status: the job will not change any more."""
        return self not in (
            JobStatus.PENDING,
            JobStatus.ENQUEUING,
            JobStatus.RUNNING,
            JobStatus.UNKNOWN,
        )

    @classmethod
    def parse(cls, value: str) -> JobStatus:
        """Any unrecognised string is ``unknown`` (SPEC 7.4)."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


_MESSAGES = {
    JobStatus.PENDING: "pending",
    JobStatus.ENQUEUING: "enqueuing",
    JobStatus.RUNNING: "running",
    JobStatus.ENQUEUE_FAILED: "failed while enqueuing",
    JobStatus.COMPLETED_WITH_FAILURES: "completed with failures",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.UNEXPECTED_ERROR: "unexpected error",
    JobStatus.WORKER_ERROR: "worker error",
    JobStatus.WORKER_OOM: "out of memory",
    JobStatus.TIMED_OUT: "timed out",
    JobStatus.STOPPED: "stopped",
    JobStatus.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class DeadLetterPolicy:
    """Redeliver a failed batch until it was received ``max_receive_count`` times, then
    dead-letter it. ``arn`` keeps the original's ``sqs_dead_letter_queue.arn`` (unused here)."""

    max_receive_count: int
    arn: str = ""


@dataclass(frozen=True)
class JobMetrics:
    """Batch counts summed over the job's workers; ``time_sum_s`` covers succeeded batches."""

    succeeded: int = 0
    failed: int = 0
    time_sum_s: float = 0.0

    def __add__(self, other: JobMetrics) -> JobMetrics:
        return JobMetrics(
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.time_sum_s + other.time_sum_s,
        )

    def with_dead_letters(self, dead_lettered: int) -> JobMetrics:
        """These counts with ``dead_lettered`` batches (the size of the job's dead-letter
        queue) accounted as failed. Every batch that failed for good in a job with a
        dead-letter queue ends there, but the dequeuers only count the failures they saw
        (a batch whose worker crashed is dead-lettered by the queue when its lease expired
        once too often, and nobody counts it); a batch a dequeuer counted on its last attempt
        is moved there on the next receive. So the failed count is the larger of the two."""
        return dataclasses.replace(self, failed=max(self.failed, dead_lettered))

    def to_json(self) -> dict[str, Any]:
        """SPEC 7.5's ``metrics``: the average is over succeeded batches, null when none."""
        average = self.time_sum_s / self.succeeded if self.succeeded else None
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "average_time_per_batch": average,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobMetrics:
        return cls(
            succeeded=int(data.get("succeeded") or 0),
            failed=int(data.get("failed") or 0),
            time_sum_s=float(data.get("time_sum_s") or 0.0),
        )


@dataclass(frozen=True)
class JobRecord:
    """One job as the operator stores it.

    ``start_time``/``end_time`` are unix seconds (``end_time`` None until the job ends);
    ``total_batch_count`` is known once enqueuing finished; ``message`` says why a job failed
    (an enqueuing error, which worker failed); ``metrics`` is frozen when the job ends (None
    before: live metrics are read from the workers' files).
    """

    job_id: str
    api_name: str
    kind: Kind
    api_id: str
    workers: int
    start_time: float
    status: JobStatus = JobStatus.PENDING
    timeout_s: int | None = None
    config: dict[str, Any] | None = None
    dead_letter: DeadLetterPolicy | None = None
    spec_id: str = ""
    pod_id: str = ""
    queue_name: str = ""
    total_batch_count: int = 0
    end_time: float | None = None
    message: str = ""
    metrics: JobMetrics | None = None

    def replace(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    def spec_json(self) -> dict[str, Any]:
        """The job spec (SPEC 7.5 / 8.2): the submit response, ``job.json`` and the base of
        ``job_status``."""
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "api_name": self.api_name,
            "kind": str(self.kind),
            "workers": self.workers,
            "config": self.config,
            "timeout": self.timeout_s,
            "api_id": self.api_id,
        }
        if self.kind == Kind.BATCH_API:
            dlq = self.dead_letter
            data["sqs_dead_letter_queue"] = (
                None
                if dlq is None
                else {"arn": dlq.arn, "max_receive_count": dlq.max_receive_count}
            )
            data["dead_letter_queue"] = (
                None if dlq is None else {"max_receive_count": dlq.max_receive_count}
            )
            data["sqs_url"] = ""
            data["queue_name"] = self.queue_name
            if self.total_batch_count:
                data["total_batch_count"] = self.total_batch_count
        else:
            data["spec_id"] = self.spec_id
            data["pod_id"] = self.pod_id
        data["start_time"] = rfc3339(self.start_time)
        return data

    def to_json(self) -> dict[str, Any]:
        """Everything, for the job store."""
        data = dataclasses.asdict(self)
        data["kind"] = str(self.kind)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        dlq = data.get("dead_letter")
        metrics = data.get("metrics")
        return cls(
            **{
                **data,
                "kind": Kind(data["kind"]),
                "status": JobStatus.parse(str(data["status"])),
                "dead_letter": None if dlq is None else DeadLetterPolicy(**dlq),
                "metrics": None if metrics is None else JobMetrics.from_json(metrics),
            }
        )


def rfc3339(ts: float) -> str:
    """Unix seconds as RFC 3339 in UTC with nanoseconds (Go's RFC3339Nano shape)."""
    whole = int(ts)
    nanos = round((ts - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    moment = datetime.fromtimestamp(whole, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
