"""The job manager: BatchAPI and TaskAPI jobs from submission to their final status.

Life of a BatchAPI job (SPEC 7, with the preface's fixes)::

    submit -> enqueuing -> running -> succeeded | completed with failures | worker error
                 |            |       | out of memory
                 v            +-----> timed out (from submission) | stopped (DELETE, API gone)
          failed while enqueuing

* **submit** (:mod:`.starting`) checks the body, stores the submission (``payload.json``) and
  the job row, and starts the enqueue as a named asyncio task (:mod:`.enqueue_tasks`).
* when enqueuing ends, ``job.json`` is written and ``workers`` worker replicas are created
  (:mod:`.launching`); the job is ``running``.
* every ``period_s`` :meth:`JobManager.step` looks at each unfinished job's workers
  (:mod:`.status`, pure) and ends the job when they have all ended, or when its timeout passed.
* ending a job (:mod:`.ending`) deletes its remaining workers, freezes its metrics, copies its
  dead letters to storage and deletes its queues; the job row keeps the final status for
  ``cortex get`` (:mod:`.views`).

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
from collections.abc import Callable
from typing import Any

from cortex.backends.base import Backend, ReplicaInfo
from cortex.operator.jobs import starting, views
from cortex.operator.jobs import status as job_status
from cortex.operator.jobs.ending import delete_workers, finish, job_metrics
from cortex.operator.jobs.enqueue_tasks import ensure_enqueuing
from cortex.operator.jobs.job_store import JobStore
from cortex.operator.jobs.launching import launch
from cortex.operator.jobs.models import JobRecord, JobStatus
from cortex.operator.jobs.runtime import JobRuntime
from cortex.operator.jobs.workers import Infra
from cortex.operator.settings import JobSettings
from cortex.operator.store import ApiRecord, StateStore
from cortex.queue import QueueBroker
from cortex.spec.kinds import Kind
from cortex.storage import ObjectStore

log = logging.getLogger(__name__)


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
        infra: Infra,
        api_url: str,
        settings: JobSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = JobRuntime(
            store=store,
            jobs=jobs,
            backend=backend,
            broker=broker,
            objects=objects,
            infra=infra,
            api_url=api_url,
            settings=settings or JobSettings(),
            clock=clock,
        )
        self._wake = asyncio.Event()
        backend.add_listener(self._wake.set)  # a worker changed state: step now

    # --- what it was built with (read-only) ---------------------------------------------------

    @property
    def store(self) -> StateStore:
        return self.runtime.store

    @property
    def jobs(self) -> JobStore:
        """The job table (owned by the manager: :meth:`close` closes it)."""
        return self.runtime.jobs

    @property
    def backend(self) -> Backend:
        return self.runtime.backend

    @property
    def broker(self) -> QueueBroker:
        return self.runtime.broker

    @property
    def objects(self) -> ObjectStore:
        return self.runtime.objects

    @property
    def infra(self) -> Infra:
        return self.runtime.infra

    @property
    def api_url(self) -> str:
        return self.runtime.api_url

    @property
    def settings(self) -> JobSettings:
        return self.runtime.settings

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
        tasks = list(self.runtime.enqueuers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.jobs.close()

    async def step(self) -> None:
        """One pass over every unfinished job, then stop workers no unfinished job owns."""
        rt = self.runtime
        async with rt.lock:
            by_job: dict[str, list[ReplicaInfo]] = defaultdict(list)
            for replica in rt.backend.list_replicas():
                if replica.job_id is not None:
                    by_job[replica.job_id].append(replica)
            active = rt.jobs.list_active()
            for job in active:
                try:
                    await self._step_job(job, by_job.get(job.job_id, []))
                except Exception:
                    log.exception("checking job %s of %s failed", job.job_id, job.api_name)
            owned = {job.job_id for job in active}
            for job_id, mine in by_job.items():
                if job_id not in owned:
                    delete_workers(rt.backend, mine)

    async def _step_job(self, job: JobRecord, replicas: list[ReplicaInfo]) -> None:
        rt = self.runtime
        rec = rt.store.get_api(job.api_name)
        if rec is None or rec.kind != job.kind:
            await finish(rt, job, JobStatus.STOPPED, "the API was deleted", replicas)
        elif job_status.timed_out(job, rt.clock()):
            message = f"the job did not finish within its timeout of {job.timeout_s}s"
            await finish(rt, job, JobStatus.TIMED_OUT, message, replicas)
        elif job.status in (JobStatus.PENDING, JobStatus.ENQUEUING):
            ensure_enqueuing(rt, job, restart=True)
        elif job.status == JobStatus.RUNNING:
            await self._check_running(rec, job, replicas)

    async def _check_running(
        self, rec: ApiRecord, job: JobRecord, replicas: list[ReplicaInfo]
    ) -> None:
        rt = self.runtime
        if not replicas:
            await self._workers_gone(rec, job)
            return
        rt.launched.add(job.job_id)
        rt.worker_counts[job.job_id] = job_status.worker_counts(replicas)
        if not job_status.all_ended(replicas):
            return
        metrics = await job_metrics(rt, job)
        final = job_status.outcome(job, replicas, metrics)
        if final is not None:
            message = "" if final == JobStatus.SUCCEEDED else job_status.failure_message(replicas)
            await finish(rt, job, final, message, replicas)

    async def _workers_gone(self, rec: ApiRecord, job: JobRecord) -> None:
        """A running job without workers: they ended unseen, or the operator restarted."""
        rt = self.runtime
        if job.job_id in rt.launched:
            await finish(rt, job, JobStatus.UNEXPECTED_ERROR, "the job's workers are gone")
        elif job.kind == Kind.BATCH_API:
            log.info("job %s of %s has no workers: starting them", job.job_id, job.api_name)
            await launch(rt, rec, job)
        else:
            message = "the task's worker is gone (the operator restarted while it ran)"
            await finish(rt, job, JobStatus.UNEXPECTED_ERROR, message)

    # --- the routes' entry points --------------------------------------------------------------

    async def submit(
        self, kind: Kind, api_name: str, raw: bytes, *, dry_run: bool = False
    ) -> dict[str, Any] | str:
        """Check and start a job; the job spec JSON (SPEC 7.5), or the dry run's text."""
        return await starting.submit(self.runtime, kind, api_name, raw, dry_run=dry_run)

    async def get_job(self, kind: Kind, api_name: str, job_id: str | None) -> dict[str, Any]:
        """``GET /batch|tasks/<api>?jobID=`` (SPEC 7.5 / 8.4)."""
        return await views.get_job(self.runtime, kind, api_name, job_id)

    async def stop_job(self, kind: Kind, api_name: str, job_id: str | None) -> dict[str, Any]:
        """``DELETE /batch|tasks/<api>?jobID=``: end a job that has not ended."""
        return await views.stop_job(self.runtime, kind, api_name, job_id)

    def job_statuses(self, rec: ApiRecord, *, limit: int) -> list[dict[str, Any]]:
        """The API's latest jobs, newest first (``/get`` and ``/get/<api>``)."""
        return views.job_statuses(self.runtime, rec, limit=limit)
