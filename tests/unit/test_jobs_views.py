"""The pure job_status view (SPEC 7.5): what a job row plus the manager's memory shows."""

from __future__ import annotations

from typing import Any

from cortex.operator.jobs.models import JobRecord, JobStatus
from cortex.operator.jobs.views import status_json
from cortex.spec.kinds import Kind

START = 1_700_000_000.0


def batch(status: JobStatus, **fields: Any) -> JobRecord:
    return JobRecord(
        job_id="j1",
        api_name="classify",
        kind=Kind.BATCH_API,
        api_id="a1",
        workers=2,
        start_time=START,
        status=status,
        queue_name="q",
        **fields,
    )


def test_enqueuing_shows_batches_sent_so_far_and_worker_counts() -> None:
    data = status_json(batch(JobStatus.ENQUEUING), enqueued=7, worker_counts={"ready": 2})
    assert data["status"] == "enqueuing"
    assert data["total_batch_count"] == 7
    assert data["worker_counts"] == {"ready": 2}
    assert "end_time" not in data and "batches_in_queue" not in data and "message" not in data


def test_ended_batch_job_has_no_queue_left_and_no_worker_counts() -> None:
    job = batch(JobStatus.WORKER_ERROR, end_time=START + 60, message="worker 1 failed")
    data = status_json(job, enqueued=0, worker_counts={"failed": 2})
    assert data["status"] == "worker_error"
    assert data["batches_in_queue"] == 0
    assert data["message"] == "worker 1 failed"
    assert data["end_time"].startswith("2023-11-14T22:")
    assert "worker_counts" not in data


def test_running_task_without_counts_seen_yet() -> None:
    job = batch(JobStatus.RUNNING).replace(kind=Kind.TASK_API)
    data = status_json(job, enqueued=3, worker_counts=None)
    assert data["status"] == "running"
    assert "worker_counts" not in data and "batches_in_queue" not in data
    assert "total_batch_count" not in data
