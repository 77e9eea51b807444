"""A BatchAPI job's enqueue, run as a named asyncio task per job.

:func:`ensure_enqueuing` starts the task unless one runs. The task reads the stored
submission (``payload.json``), creates the job's queues (purging them first when the enqueue
starts over after a restart: a half-sent data set would otherwise be sent twice) and sends the
batches (:func:`.enqueuer.enqueue`). Then, under ``runtime.lock``, the job either ends
``failed while enqueuing`` or becomes ``running``: ``job.json`` and the batch count are
written, the submission removed and the workers created.
"""

from __future__ import annotations

import asyncio
import logging

from cortex.operator.jobs import workers
from cortex.operator.jobs.ending import finish
from cortex.operator.jobs.enqueuer import enqueue
from cortex.operator.jobs.launching import create_workers
from cortex.operator.jobs.models import JobRecord, JobStatus
from cortex.operator.jobs.runtime import JobRuntime
from cortex.operator.jobs.submit import parse_batch
from cortex.queue.names import batch_completion_queue_name, batch_dead_letter_queue_name
from cortex.storage import paths

log = logging.getLogger(__name__)


def ensure_enqueuing(rt: JobRuntime, job: JobRecord, *, restart: bool) -> None:
    """Start the job's enqueue task unless one is running (``restart``: purge first)."""
    task = rt.enqueuers.get(job.job_id)
    if task is not None and not task.done():
        return
    name = f"cortex-enqueue-{job.api_name}-{job.job_id}"
    task = asyncio.create_task(_enqueue(rt, job, purge=restart), name=name)
    task.add_done_callback(lambda done: _enqueue_done(rt, done))
    rt.enqueuers[job.job_id] = task


def _enqueue_done(rt: JobRuntime, task: asyncio.Task[None]) -> None:
    """Forget the finished task; log it if it died of an unexpected error."""
    for job_id, known in list(rt.enqueuers.items()):
        if known is task:
            del rt.enqueuers[job_id]
            rt.enqueued.pop(job_id, None)
    if not task.cancelled() and task.exception() is not None:
        log.error("enqueue task %s died", task.get_name(), exc_info=task.exception())


async def _create_queues(rt: JobRuntime, job: JobRecord, *, purge: bool) -> str:
    """Create the job's queue, completion queue and dead-letter queue; the completion's name."""
    completion = batch_completion_queue_name(job.api_name, job.job_id)
    dlq = job.dead_letter
    dlq_name = batch_dead_letter_queue_name(job.api_name, job.job_id)
    if dlq is not None:
        await rt.broker.create_queue(dlq_name)
    await rt.broker.create_queue(
        job.queue_name,
        visibility_timeout_s=rt.settings.visibility_timeout_s,
        max_receive_count=None if dlq is None else dlq.max_receive_count,
        dead_letter_queue=None if dlq is None else dlq_name,
    )
    await rt.broker.create_queue(completion, visibility_timeout_s=rt.settings.visibility_timeout_s)
    if purge:
        for name in (job.queue_name, completion):
            await rt.broker.purge(name)
    return completion


async def _enqueue(rt: JobRuntime, job: JobRecord, *, purge: bool) -> None:
    def progress(total: int) -> None:
        rt.enqueued[job.job_id] = total

    try:
        key = paths.job_payload_key(job.api_name, job.job_id)
        data = await asyncio.to_thread(rt.objects.get_json, key)
        submission = parse_batch(data)
        completion = await _create_queues(rt, job, purge=purge)
        total = await enqueue(
            rt.broker,
            submission,
            queue_name=job.queue_name,
            completion_queue=completion,
            progress=progress,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("enqueuing job %s of %s failed: %s", job.job_id, job.api_name, exc)
        async with rt.lock:
            await _enqueue_failed(rt, job, exc)
        return
    async with rt.lock:
        await _enqueued_all(rt, job, total)


async def _enqueue_failed(rt: JobRuntime, job: JobRecord, exc: Exception) -> None:
    current = rt.jobs.get(job.api_name, job.job_id)
    if current is not None and current.status == JobStatus.ENQUEUING:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        await finish(rt, current, JobStatus.ENQUEUE_FAILED, str(message))


async def _enqueued_all(rt: JobRuntime, job: JobRecord, total: int) -> None:
    current = rt.jobs.get(job.api_name, job.job_id)
    rec = rt.store.get_api(job.api_name)
    if current is None or current.status != JobStatus.ENQUEUING or rec is None:
        return
    current = current.replace(status=JobStatus.RUNNING, total_batch_count=total)
    await asyncio.to_thread(_after_enqueue, rt, current)
    rt.jobs.put(current)  # running, and its workers, with no await in between
    log.info("enqueued %d batches of job %s of %s", total, job.job_id, job.api_name)
    create_workers(rt, rec, current)


def _after_enqueue(rt: JobRuntime, job: JobRecord) -> None:
    """The job spec file, the batch count in storage, the submission removed (blocking)."""
    workers.write_job_spec(rt.infra.state_dir, job)
    rt.objects.put(
        paths.job_max_batch_count_key(job.api_name, job.job_id),
        str(job.total_batch_count).encode(),
    )
    rt.objects.delete(paths.job_payload_key(job.api_name, job.job_id))
