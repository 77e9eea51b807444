"""Ending a job: stop what is left of it and keep its results (SPEC 7.4).

:func:`finish` cancels the job's enqueue, deletes its remaining workers, freezes its metrics,
copies its dead letters to storage, deletes its queues and stores the final status, which the
job row keeps for ``cortex get``. Callers hold ``runtime.lock``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from cortex.backends.base import Backend, ReplicaInfo, ReplicaStatus
from cortex.operator.jobs import workers
from cortex.operator.jobs.models import JobMetrics, JobRecord, JobStatus
from cortex.operator.jobs.runtime import JobRuntime
from cortex.queue.names import (
    batch_completion_queue_name,
    batch_dead_letter_queue_name,
    batch_queue_name,
)
from cortex.spec.kinds import Kind
from cortex.storage import paths

log = logging.getLogger(__name__)


async def finish(
    rt: JobRuntime,
    job: JobRecord,
    final: JobStatus,
    message: str = "",
    replicas: Sequence[ReplicaInfo] | None = None,
) -> JobRecord:
    """End the job with ``final``: stop what is left of it and keep its results.

    ``replicas``: the job's workers when the caller has listed them, else listed here."""
    task = rt.enqueuers.get(job.job_id)
    if task is not None and task is not asyncio.current_task():
        task.cancel()
    if replicas is None:
        replicas = [r for r in rt.backend.list_replicas(job.api_name) if r.job_id == job.job_id]
    delete_workers(rt.backend, replicas)
    metrics = None
    if job.kind == Kind.BATCH_API:
        metrics = await job_metrics(rt, job)
        await _drop_queues(rt, job, metrics)
    ended = job.replace(status=final, end_time=rt.clock(), message=message, metrics=metrics)
    rt.jobs.put(ended)
    rt.launched.discard(job.job_id)
    rt.worker_counts.pop(job.job_id, None)
    log.info("job %s of %s ended: %s %s", job.job_id, job.api_name, final.message, message)
    return ended


async def _drop_queues(rt: JobRuntime, job: JobRecord, metrics: JobMetrics) -> None:
    """Keep the dead letters and metrics in storage, then delete the job's queues."""
    try:
        await workers.save_dead_letters(rt.broker, rt.objects, job)
        key = paths.job_metrics_key(job.api_name, job.job_id)
        await asyncio.to_thread(rt.objects.put_json, key, metrics.to_json())
    except Exception:
        log.exception("saving the results of job %s failed", job.job_id)
    for name in (
        job.queue_name or batch_queue_name(job.api_name, job.job_id),
        batch_completion_queue_name(job.api_name, job.job_id),
        batch_dead_letter_queue_name(job.api_name, job.job_id),
    ):
        try:
            await rt.broker.delete_queue(name)
        except Exception:
            log.exception("deleting queue %s failed", name)


def delete_workers(backend: Backend, replicas: Sequence[ReplicaInfo]) -> None:
    """Delete every worker not already terminating; a failed delete is logged, not raised."""
    for replica in replicas:
        if replica.status != ReplicaStatus.TERMINATING:
            try:
                backend.delete_replica(replica.replica_id)
            except Exception:
                log.exception("deleting worker %s failed", replica.replica_id)


async def job_metrics(rt: JobRuntime, job: JobRecord) -> JobMetrics:
    """Frozen metrics of an ended job; else the workers' counts, with the batches in the
    dead-letter queue accounted as failed (:meth:`JobMetrics.with_dead_letters`)."""
    if job.metrics is not None:
        return job.metrics
    if job.kind != Kind.BATCH_API:
        return JobMetrics()
    counted = await asyncio.to_thread(workers.read_metrics, rt.objects, job.api_name, job.job_id)
    try:
        dead_lettered = await workers.dead_letter_count(rt.broker, job)
    except Exception:
        log.exception("counting the dead letters of job %s failed", job.job_id)
        dead_lettered = 0
    return counted.with_dead_letters(dead_lettered)
