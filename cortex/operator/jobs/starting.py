"""Submitting a job (SPEC 7.2, 8.2): check the body, store the job row and start it.

A BatchAPI submission is stored (``payload.json``) and its job row written ``enqueuing``
before its enqueue starts (:mod:`.enqueue_tasks`); a dry run lists the matching files instead.
A TaskAPI job has no queue: its single worker is created at once and it is ``running`` from
submission. Job ids are strictly increasing (:func:`new_job`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from cortex.operator.jobs.ending import finish
from cortex.operator.jobs.enqueue_tasks import ensure_enqueuing
from cortex.operator.jobs.launching import launch
from cortex.operator.jobs.models import JobRecord, JobStatus
from cortex.operator.jobs.runtime import JobRuntime
from cortex.operator.jobs.submit import (
    BatchSubmission,
    FileSource,
    check_files_exist,
    parse_batch,
    parse_body,
    parse_task,
)
from cortex.operator.jobs.views import deployed
from cortex.operator.store import ApiRecord
from cortex.queue.names import batch_queue_name
from cortex.spec import resolved
from cortex.spec.kinds import Kind
from cortex.storage import paths
from cortex.storage.listing import list_files

log = logging.getLogger(__name__)


async def submit(
    rt: JobRuntime, kind: Kind, api_name: str, raw: bytes, *, dry_run: bool = False
) -> dict[str, Any] | str:
    """Check and start a job; the job spec JSON (SPEC 7.5), or the dry run's text."""
    rec = deployed(rt, kind, api_name)
    data = parse_body(raw)
    if kind == Kind.TASK_API:
        task = parse_task(data)
        if dry_run:
            return "validations passed\n"
        return await _start_task(rt, rec, task.timeout_s, task.config)
    submission = parse_batch(data)
    if isinstance(submission.source, FileSource):
        await asyncio.to_thread(check_files_exist, submission.source)
    if dry_run:
        return await _dry_run(submission)
    return await _start_batch(rt, rec, submission, data)


async def _dry_run(submission: BatchSubmission) -> str:
    """SPEC 7.2: the matching files, one per line, then ``validations passed``."""
    source = submission.source
    lines: list[str] = []
    if isinstance(source, FileSource):
        lines = await asyncio.to_thread(
            list_files, source.paths, includes=source.includes, excludes=source.excludes
        )
    return "".join(f"{line}\n" for line in [*lines, "validations passed"])


def new_job(rt: JobRuntime, rec: ApiRecord, **fields: Any) -> JobRecord:
    """A job row of the API, its id from the time, later than any id handed out before."""
    now_ns = max(time.time_ns(), rt.last_ns + 1)
    rt.last_ns = now_ns
    job_id = resolved.monotonic_id(now_ns)
    return JobRecord(
        job_id=job_id,
        api_name=rec.name,
        kind=Kind(rec.kind),
        api_id=rec.api_id,
        spec_id=rec.spec_id,
        pod_id=rec.pod_id,
        start_time=rt.clock(),
        **fields,
    )


async def _start_batch(
    rt: JobRuntime, rec: ApiRecord, submission: BatchSubmission, data: dict[str, Any]
) -> dict[str, Any]:
    job = new_job(
        rt,
        rec,
        workers=submission.workers,
        timeout_s=submission.timeout_s,
        config=submission.config,
        dead_letter=submission.dead_letter,
        status=JobStatus.ENQUEUING,
    )
    job = job.replace(queue_name=batch_queue_name(job.api_name, job.job_id))
    key = paths.job_payload_key(job.api_name, job.job_id)
    await asyncio.to_thread(rt.objects.put_json, key, data)
    async with rt.lock:
        rt.jobs.put(job)
        ensure_enqueuing(rt, job, restart=False)
    log.info("submitted job %s of %s (%d workers)", job.job_id, job.api_name, job.workers)
    return job.spec_json()


async def _start_task(
    rt: JobRuntime, rec: ApiRecord, timeout_s: int | None, config: dict[str, Any] | None
) -> dict[str, Any]:
    job = new_job(rt, rec, workers=1, timeout_s=timeout_s, config=config, status=JobStatus.RUNNING)
    async with rt.lock:
        rt.jobs.put(job)
        try:
            await launch(rt, rec, job)
        except Exception as exc:
            log.exception("starting task %s of %s failed", job.job_id, job.api_name)
            await finish(rt, job, JobStatus.UNEXPECTED_ERROR, f"cannot start: {exc}")
    log.info("submitted task %s of %s", job.job_id, job.api_name)
    return job.spec_json()
