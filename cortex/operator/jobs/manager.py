"""The job manager: BatchAPI and TaskAPI jobs from submission to their final status.

Life of a BatchAPI job (SPEC 7, with the preface's fixes)::

    submit -> enqueuing -> running -> succeeded | completed with failures | worker error
                 |            |       | out of memory
                 v            +-----> timed out (from submission) | stopped (DELETE, API gone)
          failed while enqueuing

* **submit** checks the body, stores the submission (``payload.json``) and the job row, and
  starts the enqueuer as a named asyncio task (:mod:`.enqueuer`).
* when enqueuing ends, ``job.json`` is written and ``workers`` worker replicas are created
  (:func:`.workers.worker_template`); the job is ``running``.
* every ``period_s`` :meth:`JobManager.step` looks at each unfinished job's workers
  (:mod:`.status`) and ends the job when they have all ended, or when its timeout passed.
* ending a job deletes its remaining workers, freezes its metrics, copies its dead letters to
  storage and deletes its queues; the job row keeps the final status for ``cortex get``.

A TaskAPI job has no queue: one worker runs the pod once; it is ``running`` from submission.

Restarts: job rows live in SQLite, queues in the broker, so a new operator picks up where the
old one stopped. A job caught ``enqueuing`` starts its enqueue over after purging its queues
(a half-sent data set would otherwise be sent twice). A ``running`` batch job whose workers
are gone (the local backend stops every replica when the operator exits) gets new workers,
which go on with the batches still queued. A ``running`` task whose worker is gone ends
``unexpected error``: re-running a task that may have had effects would not be truthful.

The step, stops and the end of an enqueue hold one lock, so a job is never ended twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from cortex.backends.base import Backend, ReplicaInfo, ReplicaStatus
from cortex.errors import (
    InvalidRequestError,
    NotDeployedError,
    NotFoundError,
    UnsupportedOperationError,
)
from cortex.operator.deploy import spec_of
from cortex.operator.jobs import status as job_status
from cortex.operator.jobs import workers
from cortex.operator.jobs.enqueuer import enqueue
from cortex.operator.jobs.job_store import JobStore
from cortex.operator.jobs.models import JobMetrics, JobRecord, JobStatus, rfc3339
from cortex.operator.jobs.submit import (
    BatchSubmission,
    FileSource,
    check_files_exist,
    parse_batch,
    parse_body,
    parse_task,
)
from cortex.operator.responses import spec_json
from cortex.operator.settings import JobSettings
from cortex.operator.store import ApiRecord, StateStore
from cortex.queue import QueueBroker
from cortex.queue.names import (
    batch_completion_queue_name,
    batch_dead_letter_queue_name,
    batch_queue_name,
)
from cortex.spec import resolved
from cortex.spec.kinds import Kind
from cortex.storage import ObjectStore, paths
from cortex.storage.listing import list_files

log = logging.getLogger(__name__)

JOB_KINDS = (Kind.BATCH_API, Kind.TASK_API)


class JobManager:
    """Submits, watches, stops and reports jobs; see the module docstring.

    ``clock`` gives unix seconds (job start and end times, timeouts).
    """

    def __init__(
        self,
        store: StateStore,
        jobs: JobStore,
        backend: Backend,
        broker: QueueBroker,
        objects: ObjectStore,
        *,
        infra: workers.Infra,
        api_url: str,
        settings: JobSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.backend = backend
        self.broker = broker
        self.objects = objects
        self.infra = infra
        self.api_url = api_url
        self.settings = settings or JobSettings()
        self._clock = clock
        self._lock = asyncio.Lock()
        self._enqueuers: dict[str, asyncio.Task[None]] = {}
        self._enqueued: dict[str, int] = {}  # job id -> batches sent so far (while enqueuing)
        self._launched: set[str] = set()  # jobs whose workers this process created or saw
        self._worker_counts: dict[str, dict[str, int]] = {}  # job id -> last seen (SPEC 7.5)
        self._last_ns = 0
        self._wake = asyncio.Event()
        backend.add_listener(self._wake.set)  # a worker changed state: step now

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Step every ``period_s``, or at once when a worker changed state; survives any error
        of a step."""
        while True:
            self._wake.clear()
            try:
                await self.step()
            except Exception:
                log.exception("job step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.period_s)

    async def close(self) -> None:
        """Cancel the running enqueues (their jobs start over on the next start), then close
        the job store, which the manager owns. The broker and the object store are the
        caller's (the process shares one of each): closed by whoever opened them."""
        tasks = list(self._enqueuers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.jobs.close()

    async def step(self) -> None:
        """One pass over every unfinished job, then stop workers no unfinished job owns."""
        async with self._lock:
            replicas = self.backend.list_replicas()
            by_job: dict[str, list[ReplicaInfo]] = defaultdict(list)
            for replica in replicas:
                if replica.job_id is not None:
                    by_job[replica.job_id].append(replica)
            active = self.jobs.list_active()
            for job in active:
                try:
                    await self._step_job(job, by_job.get(job.job_id, []))
                except Exception:
                    log.exception("checking job %s of %s failed", job.job_id, job.api_name)
            owned = {job.job_id for job in active}
            for job_id, mine in by_job.items():
                if job_id not in owned:
                    self._delete_workers(mine)

    async def _step_job(self, job: JobRecord, replicas: list[ReplicaInfo]) -> None:
        rec = self.store.get_api(job.api_name)
        if rec is None or rec.kind != job.kind:
            await self._finish(job, JobStatus.STOPPED, "the API was deleted", replicas)
        elif job_status.timed_out(job, self._clock()):
            message = f"the job did not finish within its timeout of {job.timeout_s}s"
            await self._finish(job, JobStatus.TIMED_OUT, message, replicas)
        elif job.status in (JobStatus.PENDING, JobStatus.ENQUEUING):
            self._ensure_enqueuing(job, restart=True)
        elif job.status == JobStatus.RUNNING:
            await self._check_running(rec, job, replicas)

    async def _check_running(
        self, rec: ApiRecord, job: JobRecord, replicas: list[ReplicaInfo]
    ) -> None:
        if not replicas:
            if job.job_id in self._launched:
                await self._finish(job, JobStatus.UNEXPECTED_ERROR, "the job's workers are gone")
            elif job.kind == Kind.BATCH_API:
                log.info("job %s of %s has no workers: starting them", job.job_id, job.api_name)
                await self._launch(rec, job)
            else:
                message = "the task's worker is gone (the operator restarted while it ran)"
                await self._finish(job, JobStatus.UNEXPECTED_ERROR, message)
            return
        self._launched.add(job.job_id)
        self._worker_counts[job.job_id] = job_status.worker_counts(replicas)
        if not job_status.all_ended(replicas):
            return
        metrics = await self._metrics(job)
        final = job_status.outcome(job, replicas, metrics)
        if final is not None:
            message = "" if final == JobStatus.SUCCEEDED else job_status.failure_message(replicas)
            await self._finish(job, final, message, replicas)

    # --- submission --------------------------------------------------------------------------

    async def submit(
        self, kind: Kind, api_name: str, raw: bytes, *, dry_run: bool = False
    ) -> dict[str, Any] | str:
        """Check and start a job; the job spec JSON (SPEC 7.5), or the dry run's text."""
        rec = self.deployed(kind, api_name)
        data = parse_body(raw)
        if kind == Kind.TASK_API:
            task = parse_task(data)
            if dry_run:
                return "validations passed\n"
            return await self._start_task(rec, task.timeout_s, task.config)
        submission = parse_batch(data)
        if isinstance(submission.source, FileSource):
            await asyncio.to_thread(check_files_exist, submission.source)
        if dry_run:
            return await self._dry_run(submission)
        return await self._start_batch(rec, submission, data)

    async def _dry_run(self, submission: BatchSubmission) -> str:
        """SPEC 7.2: the matching files, one per line, then ``validations passed``."""
        source = submission.source
        lines: list[str] = []
        if isinstance(source, FileSource):
            lines = await asyncio.to_thread(
                list_files, source.paths, includes=source.includes, excludes=source.excludes
            )
        return "".join(f"{line}\n" for line in [*lines, "validations passed"])

    def _new_job(self, rec: ApiRecord, **fields: Any) -> JobRecord:
        now_ns = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = now_ns
        job_id = resolved.monotonic_id(now_ns)
        return JobRecord(
            job_id=job_id,
            api_name=rec.name,
            kind=Kind(rec.kind),
            api_id=rec.api_id,
            spec_id=rec.spec_id,
            pod_id=rec.pod_id,
            start_time=self._clock(),
            **fields,
        )

    async def _start_batch(
        self, rec: ApiRecord, submission: BatchSubmission, data: dict[str, Any]
    ) -> dict[str, Any]:
        job = self._new_job(
            rec,
            workers=submission.workers,
            timeout_s=submission.timeout_s,
            config=submission.config,
            dead_letter=submission.dead_letter,
            status=JobStatus.ENQUEUING,
        )
        job = job.replace(queue_name=batch_queue_name(job.api_name, job.job_id))
        key = paths.job_payload_key(job.api_name, job.job_id)
        await asyncio.to_thread(self.objects.put_json, key, data)
        async with self._lock:
            self.jobs.put(job)
            self._ensure_enqueuing(job, restart=False)
        log.info("submitted job %s of %s (%d workers)", job.job_id, job.api_name, job.workers)
        return job.spec_json()

    async def _start_task(
        self, rec: ApiRecord, timeout_s: int | None, config: dict[str, Any] | None
    ) -> dict[str, Any]:
        job = self._new_job(
            rec, workers=1, timeout_s=timeout_s, config=config, status=JobStatus.RUNNING
        )
        async with self._lock:
            self.jobs.put(job)
            try:
                await self._launch(rec, job)
            except Exception as exc:
                log.exception("starting task %s of %s failed", job.job_id, job.api_name)
                await self._finish(job, JobStatus.UNEXPECTED_ERROR, f"cannot start: {exc}")
        log.info("submitted task %s of %s", job.job_id, job.api_name)
        return job.spec_json()

    async def _launch(self, rec: ApiRecord, job: JobRecord) -> None:
        """Write the job spec file (in a thread: this runs in request handlers) and create
        the job's workers."""
        await asyncio.to_thread(workers.write_job_spec, self.infra.state_dir, job)
        self._create_workers(rec, job)

    def _create_workers(self, rec: ApiRecord, job: JobRecord) -> None:
        template = workers.worker_template(rec, spec_of(rec), job, self.infra, self.settings)
        for _ in range(job.workers):
            created = self.backend.create_replica(template)
            log.info("created worker %s of job %s", created.replica_id, job.job_id)
        self._launched.add(job.job_id)

    # --- enqueuing ---------------------------------------------------------------------------

    def _ensure_enqueuing(self, job: JobRecord, *, restart: bool) -> None:
        """Start the job's enqueue task unless one is running (``restart``: purge first)."""
        task = self._enqueuers.get(job.job_id)
        if task is not None and not task.done():
            return
        name = f"cortex-enqueue-{job.api_name}-{job.job_id}"
        task = asyncio.create_task(self._enqueue(job, purge=restart), name=name)
        task.add_done_callback(self._enqueue_done)
        self._enqueuers[job.job_id] = task

    def _enqueue_done(self, task: asyncio.Task[None]) -> None:
        for job_id, known in list(self._enqueuers.items()):
            if known is task:
                del self._enqueuers[job_id]
                self._enqueued.pop(job_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("enqueue task %s died", task.get_name(), exc_info=task.exception())

    async def _create_queues(self, job: JobRecord, *, purge: bool) -> str:
        completion = batch_completion_queue_name(job.api_name, job.job_id)
        dlq = job.dead_letter
        dlq_name = batch_dead_letter_queue_name(job.api_name, job.job_id)
        if dlq is not None:
            await self.broker.create_queue(dlq_name)
        await self.broker.create_queue(
            job.queue_name,
            visibility_timeout_s=self.settings.visibility_timeout_s,
            max_receive_count=None if dlq is None else dlq.max_receive_count,
            dead_letter_queue=None if dlq is None else dlq_name,
        )
        await self.broker.create_queue(
            completion, visibility_timeout_s=self.settings.visibility_timeout_s
        )
        if purge:
            for name in (job.queue_name, completion):
                await self.broker.purge(name)
        return completion

    async def _enqueue(self, job: JobRecord, *, purge: bool) -> None:
        def progress(total: int) -> None:
            self._enqueued[job.job_id] = total

        try:
            key = paths.job_payload_key(job.api_name, job.job_id)
            data = await asyncio.to_thread(self.objects.get_json, key)
            submission = parse_batch(data)
            completion = await self._create_queues(job, purge=purge)
            total = await enqueue(
                self.broker,
                submission,
                queue_name=job.queue_name,
                completion_queue=completion,
                progress=progress,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("enqueuing job %s of %s failed: %s", job.job_id, job.api_name, exc)
            async with self._lock:
                await self._enqueue_failed(job, exc)
            return
        async with self._lock:
            await self._enqueued_all(job, total)

    async def _enqueue_failed(self, job: JobRecord, exc: Exception) -> None:
        current = self.jobs.get(job.api_name, job.job_id)
        if current is not None and current.status == JobStatus.ENQUEUING:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            await self._finish(current, JobStatus.ENQUEUE_FAILED, str(message))

    async def _enqueued_all(self, job: JobRecord, total: int) -> None:
        current = self.jobs.get(job.api_name, job.job_id)
        rec = self.store.get_api(job.api_name)
        if current is None or current.status != JobStatus.ENQUEUING or rec is None:
            return
        current = current.replace(status=JobStatus.RUNNING, total_batch_count=total)
        await asyncio.to_thread(self._after_enqueue, current)
        self.jobs.put(current)  # running, and its workers, with no await in between
        log.info("enqueued %d batches of job %s of %s", total, job.job_id, job.api_name)
        self._create_workers(rec, current)

    def _after_enqueue(self, job: JobRecord) -> None:
        """The job spec file, the batch count in storage, the submission removed (blocking)."""
        workers.write_job_spec(self.infra.state_dir, job)
        self.objects.put(
            paths.job_max_batch_count_key(job.api_name, job.job_id),
            str(job.total_batch_count).encode(),
        )
        self.objects.delete(paths.job_payload_key(job.api_name, job.job_id))

    # --- ending ------------------------------------------------------------------------------

    async def _finish(
        self,
        job: JobRecord,
        final: JobStatus,
        message: str = "",
        replicas: Sequence[ReplicaInfo] | None = None,
    ) -> JobRecord:
        """End the job with ``final``: stop what is left of it and keep its results."""
        task = self._enqueuers.get(job.job_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if replicas is None:
            replicas = [
                r for r in self.backend.list_replicas(job.api_name) if r.job_id == job.job_id
            ]
        self._delete_workers(replicas)
        metrics = None
        if job.kind == Kind.BATCH_API:
            metrics = await self._metrics(job)
            await self._drop_queues(job, metrics)
        ended = job.replace(status=final, end_time=self._clock(), message=message, metrics=metrics)
        self.jobs.put(ended)
        self._launched.discard(job.job_id)
        self._worker_counts.pop(job.job_id, None)
        log.info("job %s of %s ended: %s %s", job.job_id, job.api_name, final.message, message)
        return ended

    async def _drop_queues(self, job: JobRecord, metrics: JobMetrics) -> None:
        """Keep the dead letters and metrics in storage, then delete the job's queues."""
        try:
            await workers.save_dead_letters(self.broker, self.objects, job)
            key = paths.job_metrics_key(job.api_name, job.job_id)
            await asyncio.to_thread(self.objects.put_json, key, metrics.to_json())
        except Exception:
            log.exception("saving the results of job %s failed", job.job_id)
        for name in (
            job.queue_name or batch_queue_name(job.api_name, job.job_id),
            batch_completion_queue_name(job.api_name, job.job_id),
            batch_dead_letter_queue_name(job.api_name, job.job_id),
        ):
            try:
                await self.broker.delete_queue(name)
            except Exception:
                log.exception("deleting queue %s failed", name)

    def _delete_workers(self, replicas: Sequence[ReplicaInfo]) -> None:
        for replica in replicas:
            if replica.status != ReplicaStatus.TERMINATING:
                try:
                    self.backend.delete_replica(replica.replica_id)
                except Exception:
                    log.exception("deleting worker %s failed", replica.replica_id)

    async def _metrics(self, job: JobRecord) -> JobMetrics:
        """Frozen metrics of an ended job; else the workers' counts, with the batches in the
        dead-letter queue accounted as failed (:meth:`JobMetrics.with_dead_letters`)."""
        if job.metrics is not None:
            return job.metrics
        if job.kind != Kind.BATCH_API:
            return JobMetrics()
        counted = await asyncio.to_thread(
            workers.read_metrics, self.objects, job.api_name, job.job_id
        )
        try:
            dead_lettered = await workers.dead_letter_count(self.broker, job)
        except Exception:
            log.exception("counting the dead letters of job %s failed", job.job_id)
            dead_lettered = 0
        return counted.with_dead_letters(dead_lettered)

    # --- reading and stopping ----------------------------------------------------------------

    def deployed(self, kind: Kind, api_name: str) -> ApiRecord:
        """The API, which must be deployed with ``kind``."""
        rec = self.store.get_api(api_name)
        if rec is None:
            raise NotDeployedError(f"{api_name} is not deployed")
        if rec.kind != kind:
            raise UnsupportedOperationError(
                f"this operation is only allowed for {kind} kind and is not supported for "
                f"{api_name} of kind {rec.kind}"
            )
        return rec

    def job(self, kind: Kind, api_name: str, job_id: str | None) -> tuple[ApiRecord, JobRecord]:
        if not job_id:
            raise InvalidRequestError("query param required: jobID")
        rec = self.deployed(kind, api_name)
        job = self.jobs.get(api_name, job_id)
        if job is None or job.kind != kind:
            raise NotFoundError(f"{api_name} has no job with id {job_id}")
        return rec, job

    async def get_job(self, kind: Kind, api_name: str, job_id: str | None) -> dict[str, Any]:
        """``GET /batch|tasks/<api>?jobID=`` (SPEC 7.5 / 8.4)."""
        rec, job = self.job(kind, api_name, job_id)
        body: dict[str, Any] = {
            "api_spec": spec_json(rec),
            "job_status": await self._status_json(job),
            "endpoint": f"{self.endpoint_url(rec)}?jobID={job.job_id}",
        }
        if kind == Kind.BATCH_API:
            metrics = await self._metrics(job)
            body["metrics"] = metrics.to_json()
            body["dead_letter_batches"] = await self._dead_letters(job)
        return body

    async def _dead_letters(self, job: JobRecord) -> list[dict[str, Any]]:
        if job.dead_letter is None:
            return []
        if job.status.completed:
            return await asyncio.to_thread(workers.stored_dead_letters, self.objects, job)
        return await workers.live_dead_letters(self.broker, job)

    async def _status_json(self, job: JobRecord) -> dict[str, Any]:
        data = self.status_json(job)
        if job.kind == Kind.BATCH_API and not job.status.completed:
            data["batches_in_queue"] = await self._queued(job)
        return data

    async def _queued(self, job: JobRecord) -> int:
        try:
            if await self.broker.queue_exists(job.queue_name):
                return (await self.broker.counts(job.queue_name)).total
        except Exception:
            log.exception("counting the batches of job %s failed", job.job_id)
        return 0

    def status_json(self, job: JobRecord) -> dict[str, Any]:
        """SPEC 7.5 ``job_status``; an unfinished batch job's ``batches_in_queue`` (a queue
        count) is only in :meth:`get_job`, not in the API listings."""
        data = job.spec_json()
        data["status"] = str(job.status)
        if job.status == JobStatus.ENQUEUING:
            data["total_batch_count"] = self._enqueued.get(job.job_id, 0)
        if job.end_time is not None:
            data["end_time"] = rfc3339(job.end_time)
        if job.kind == Kind.BATCH_API and job.status.completed:
            data["batches_in_queue"] = 0  # its queues are gone
        if job.message:
            data["message"] = job.message
        counts = self._worker_counts.get(job.job_id)
        if counts is not None and job.status.in_progress:
            data["worker_counts"] = counts
        return data

    def endpoint_url(self, rec: ApiRecord) -> str:
        return self.api_url + resolved.endpoint(spec_of(rec))

    async def stop_job(self, kind: Kind, api_name: str, job_id: str | None) -> dict[str, Any]:
        """``DELETE /batch|tasks/<api>?jobID=``: end a job that has not ended."""
        async with self._lock:
            _, job = self.job(kind, api_name, job_id)
            if job.status.completed:
                raise InvalidRequestError(
                    f"cannot stop {kind} job {job.job_id} because it is not in progress "
                    f"(it ended: {job.status.message})"
                )
            await self._finish(job, JobStatus.STOPPED, "stopped by request")
        return {"message": f"stopped job {job.job_id}"}

    def job_statuses(self, rec: ApiRecord, *, limit: int) -> list[dict[str, Any]]:
        """The API's latest jobs, newest first (``/get`` and ``/get/<api>``)."""
        if rec.kind not in JOB_KINDS:
            return []
        return [self.status_json(job) for job in self.jobs.list_api(rec.name, limit=limit)]
