"""Reading and stopping jobs: the lookups every route starts with, the GET and DELETE
responses (SPEC 7.5, 8.4).

:func:`status_json` is pure: the job row plus what the manager remembers in memory (batches
sent while enqueuing, the last worker counts). :func:`get_job` adds the live parts: batches
still queued, metrics and dead letters.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cortex.errors import (
    InvalidRequestError,
    NotDeployedError,
    NotFoundError,
    UnsupportedOperationError,
)
from cortex.operator.deploy import spec_of
from cortex.operator.jobs import workers
from cortex.operator.jobs.ending import finish, job_metrics
from cortex.operator.jobs.models import JobRecord, JobStatus, rfc3339
from cortex.operator.jobs.runtime import JobRuntime
from cortex.operator.responses import spec_json
from cortex.operator.store import ApiRecord
from cortex.spec import resolved
from cortex.spec.kinds import Kind

log = logging.getLogger(__name__)

JOB_KINDS = (Kind.BATCH_API, Kind.TASK_API)


def deployed(rt: JobRuntime, kind: Kind, api_name: str) -> ApiRecord:
    """The API, which must be deployed with ``kind``."""
    rec = rt.store.get_api(api_name)
    if rec is None:
        raise NotDeployedError(f"{api_name} is not deployed")
    if rec.kind != kind:
        raise UnsupportedOperationError(
            f"this operation is only allowed for {kind} kind and is not supported for "
            f"{api_name} of kind {rec.kind}"
        )
    return rec


def find_job(
    rt: JobRuntime, kind: Kind, api_name: str, job_id: str | None
) -> tuple[ApiRecord, JobRecord]:
    """The API and its job ``job_id`` of ``kind``; a missing id, API or job raises."""
    if not job_id:
        raise InvalidRequestError("query param required: jobID")
    rec = deployed(rt, kind, api_name)
    job = rt.jobs.get(api_name, job_id)
    if job is None or job.kind != kind:
        raise NotFoundError(f"{api_name} has no job with id {job_id}")
    return rec, job


def status_json(
    job: JobRecord, *, enqueued: int, worker_counts: dict[str, int] | None
) -> dict[str, Any]:
    """SPEC 7.5 ``job_status``; an unfinished batch job's ``batches_in_queue`` (a queue
    count) is only in :func:`get_job`, not in the API listings.

    ``enqueued``: batches sent so far (shown while enqueuing); ``worker_counts``: the last
    seen (shown while in progress)."""
    data = job.spec_json()
    data["status"] = str(job.status)
    if job.status == JobStatus.ENQUEUING:
        data["total_batch_count"] = enqueued
    if job.end_time is not None:
        data["end_time"] = rfc3339(job.end_time)
    if job.kind == Kind.BATCH_API and job.status.completed:
        data["batches_in_queue"] = 0  # its queues are gone
    if job.message:
        data["message"] = job.message
    if worker_counts is not None and job.status.in_progress:
        data["worker_counts"] = worker_counts
    return data


def remembered_status_json(rt: JobRuntime, job: JobRecord) -> dict[str, Any]:
    """:func:`status_json` with what the runtime remembers of the job."""
    return status_json(
        job,
        enqueued=rt.enqueued.get(job.job_id, 0),
        worker_counts=rt.worker_counts.get(job.job_id),
    )


def endpoint_url(rt: JobRuntime, rec: ApiRecord) -> str:
    """The API's URL, as users reach it."""
    return rt.api_url + resolved.endpoint(spec_of(rec))


async def get_job(rt: JobRuntime, kind: Kind, api_name: str, job_id: str | None) -> dict[str, Any]:
    """``GET /batch|tasks/<api>?jobID=`` (SPEC 7.5 / 8.4)."""
    rec, job = find_job(rt, kind, api_name, job_id)
    data = remembered_status_json(rt, job)
    if job.kind == Kind.BATCH_API and not job.status.completed:
        data["batches_in_queue"] = await _queued(rt, job)
    body: dict[str, Any] = {
        "api_spec": spec_json(rec),
        "job_status": data,
        "endpoint": f"{endpoint_url(rt, rec)}?jobID={job.job_id}",
    }
    if kind == Kind.BATCH_API:
        metrics = await job_metrics(rt, job)
        body["metrics"] = metrics.to_json()
        body["dead_letter_batches"] = await _dead_letters(rt, job)
    return body


async def _dead_letters(rt: JobRuntime, job: JobRecord) -> list[dict[str, Any]]:
    if job.dead_letter is None:
        return []
    if job.status.completed:
        return await asyncio.to_thread(workers.stored_dead_letters, rt.objects, job)
    return await workers.live_dead_letters(rt.broker, job)


async def _queued(rt: JobRuntime, job: JobRecord) -> int:
    try:
        if await rt.broker.queue_exists(job.queue_name):
            return (await rt.broker.counts(job.queue_name)).total
    except Exception:
        log.exception("counting the batches of job %s failed", job.job_id)
    return 0


async def stop_job(rt: JobRuntime, kind: Kind, api_name: str, job_id: str | None) -> dict[str, Any]:
    """``DELETE /batch|tasks/<api>?jobID=``: end a job that has not ended."""
    async with rt.lock:
        _, job = find_job(rt, kind, api_name, job_id)
        if job.status.completed:
            raise InvalidRequestError(
                f"cannot stop {kind} job {job.job_id} because it is not in progress "
                f"(it ended: {job.status.message})"
            )
        await finish(rt, job, JobStatus.STOPPED, "stopped by request")
    return {"message": f"stopped job {job.job_id}"}


def job_statuses(rt: JobRuntime, rec: ApiRecord, *, limit: int) -> list[dict[str, Any]]:
    """The API's latest jobs, newest first (``/get`` and ``/get/<api>``)."""
    if rec.kind not in JOB_KINDS:
        return []
    return [remembered_status_json(rt, job) for job in rt.jobs.list_api(rec.name, limit=limit)]
