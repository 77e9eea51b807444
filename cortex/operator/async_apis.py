"""AsyncAPI in the operator (SPEC 4, 1.2, 10.6): queues, stored workloads, the queue signal.

The gateway stores and enqueues submissions and the replicas' dequeuers work them off; the
operator owns the rest:

* **Queues.** An AsyncAPI's queue is named by :func:`cortex.queue.names.async_queue_name` from
  its initial deployment time, so a re-created API gets a fresh queue. A deploy creates it
  (:meth:`AsyncApis.after_deploy`, idempotent, with the visibility timeout of the settings)
  before the operator answers; a delete removes it and, unless ``keepCache``, the API's stored
  workloads (:meth:`AsyncApis.remove`). Queues are durable, so an operator restart keeps them.
  :meth:`AsyncApis.reconcile_queues` is the level-triggered safety net, run every report
  period: it creates a missing queue of a stored AsyncAPI and deletes ``async-*`` queues that
  no stored AsyncAPI owns (left by a crash between a delete and its queue deletion). It lists
  the queues *before* the APIs, and deploy stores an API before creating its queue, so a queue
  that is being created is never mistaken for an orphan.
* **Signal** (SPEC 1.2). Every ``sample_s`` the queue's counts are read (``queued`` = visible,
  ``in_progress`` = in flight; shown by ``cortex get``, ``describe`` and ``/metrics``). Once per
  ``report_s`` slot their sum, the AsyncAPI's in-flight value, goes to the autoscaler through
  ``record_value``; the autoscaler's tick averages it over the window like a replica's report.
  The signal exists without replicas, so an AsyncAPI at zero replicas scales up through the
  normal tick once its queue holds messages (SPEC 1.4), after the upscale stabilization period.
* **Retention** (SPEC 4.4). :meth:`AsyncApis.sweep` removes every stored request (payload,
  headers, result, status) whose status timestamp, or else newest object, is older than
  ``retention_s``, for every API folder under ``workloads/`` (deleted APIs kept with
  ``keepCache`` included). :meth:`AsyncApis.run_sweeper` runs it every ``sweep_period_s`` in a
  worker thread (storage calls block).
* **Replicas.** :meth:`AsyncSidecar.pod` is the pod an AsyncAPI replica runs: the user's
  containers plus the dequeuer (mode async, ``workers = pod.max_concurrency``).

The queue broker belongs to the operator's event loop: :meth:`AsyncApis.start` opens it (and the
object store) unless they were given, :meth:`AsyncApis.close` closes what it opened.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from cortex.dataplane.dequeuer.settings import DequeuerMode, DequeuerSettings
from cortex.dataplane.dequeuer.sidecar import readiness_probe, with_dequeuer
from cortex.errors import CortexError
from cortex.operator.settings import OperatorSettings
from cortex.operator.store import ApiRecord, StateStore
from cortex.queue import QueueBroker, QueueCounts, open_broker
from cortex.queue.names import async_queue_name, is_async_queue
from cortex.spec.kinds import Kind
from cortex.spec.models import ApiSpec, PodSpec
from cortex.storage import ObjectNotFoundError, ObjectStore, open_store, paths

__all__ = [
    "QUEUE_SERIES",
    "AsyncApis",
    "AsyncSettings",
    "AsyncSidecar",
    "async_apis_of",
    "queue_name_of",
]

log = logging.getLogger(__name__)

QUEUE_SERIES = "queue"  # the autoscaler series an AsyncAPI's queue length is recorded under

RecordValue = Callable[[str, str, float], None]


@dataclass(frozen=True)
class AsyncSettings:
    """What the AsyncAPI machinery is configured with (seconds throughout)."""

    queue_url: str
    storage_url: str
    visibility_timeout_s: float = 30.0  # the queue's, and the dequeuer's lease
    retention_s: float = 7 * 24 * 3600.0
    sweep_period_s: float = 300.0
    sample_s: float = 1.0  # queue counts refresh period
    report_s: float = 10.0  # autoscaler report period of the queue length

    @classmethod
    def from_operator(cls, settings: OperatorSettings) -> AsyncSettings:
        return cls(
            queue_url=settings.queue_url,
            storage_url=settings.storage_url,
            visibility_timeout_s=settings.async_visibility_timeout_s,
            retention_s=settings.async_retention_s,
            sweep_period_s=settings.async_sweep_period_s,
            sample_s=settings.inflight_sample_s,
            report_s=settings.inflight_report_s,
        )


def queue_name_of(rec: ApiRecord) -> str:
    """The queue of a stored AsyncAPI."""
    return async_queue_name(rec.name, rec.initial_deployment_time_ns)


@dataclass(frozen=True)
class AsyncSidecar:
    """Builds AsyncAPI replica pods (the reconciler's ``async_pod``)."""

    settings: AsyncSettings

    def dequeuer_settings(self, rec: ApiRecord, api: ApiSpec) -> DequeuerSettings:
        if api.pod is None:
            raise ValueError(f"{rec.name} ({rec.kind}) has no pod")
        return DequeuerSettings(
            mode=DequeuerMode.ASYNC,
            queue_url=self.settings.queue_url,
            queue_name=queue_name_of(rec),
            storage_url=self.settings.storage_url,
            api_name=rec.name,
            api_kind=Kind.ASYNC_API,
            pod_port=api.pod.port,
            workers=api.pod.max_concurrency,
            probe=readiness_probe(api.pod),
            visibility_timeout_s=self.settings.visibility_timeout_s,
        )

    def pod(self, rec: ApiRecord, api: ApiSpec) -> PodSpec:
        """The user's pod with the dequeuer appended as its last container (SPEC 5.1)."""
        if api.pod is None:
            raise ValueError(f"{rec.name} ({rec.kind}) has no pod")
        return with_dequeuer(api.pod, self.dequeuer_settings(rec, api))


class AsyncApis:
    """The operator's AsyncAPI services (see the module docstring). Call it from the operator's
    event loop only; ``clock`` (monotonic s) stamps autoscaler reports, ``wall_clock`` (unix s)
    ages stored workloads."""

    def __init__(
        self,
        store: StateStore,
        settings: AsyncSettings,
        *,
        broker: QueueBroker | None = None,
        objects: ObjectStore | None = None,
        record_value: RecordValue | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = store
        self._broker = broker
        self._objects = objects
        self._owns_broker = False
        self._record_value = record_value
        self._clock = clock
        self._wall_clock = wall_clock
        self._counts: dict[str, QueueCounts] = {}  # API name -> latest counts
        self._reported: dict[str, int] = {}  # API name -> report slot last recorded

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the broker and the object store (unless given)."""
        if self._broker is None:
            self._broker = open_broker(self.settings.queue_url)
            self._owns_broker = True
        if self._objects is None:
            self._objects = await asyncio.to_thread(open_store, self.settings.storage_url)

    async def close(self) -> None:
        """Close the broker if :meth:`start` opened it."""
        if self._owns_broker and self._broker is not None:
            await self._broker.close()
            self._broker = None
            self._owns_broker = False

    @property
    def broker(self) -> QueueBroker:
        if self._broker is None:
            raise RuntimeError("AsyncApis.start() has not run: no queue broker")
        return self._broker

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            raise RuntimeError("AsyncApis.start() has not run: no object store")
        return self._objects

    @property
    def record_value(self) -> RecordValue | None:
        """Where queue lengths go (the autoscaling loop's ``record_value``)."""
        return self._record_value

    @record_value.setter
    def record_value(self, record_value: RecordValue | None) -> None:
        self._record_value = record_value

    def _started(self, api_name: str) -> bool:
        """Whether :meth:`start` ran (an app built without its services has no broker: its
        queue work is left to the queue loop of a started operator)."""
        if self._broker is None or self._objects is None:
            log.warning("AsyncAPI services are not started: queue of %s left as is", api_name)
            return False
        return True

    # --- queues --------------------------------------------------------------------------------

    async def ensure_queue(self, rec: ApiRecord) -> str:
        """Create the AsyncAPI's queue (idempotent: an existing one keeps its messages)."""
        name = queue_name_of(rec)
        await self.broker.create_queue(
            name, visibility_timeout_s=self.settings.visibility_timeout_s
        )
        return name

    async def after_deploy(self, records: Iterable[ApiRecord | None]) -> None:
        """Create the queues of the deployed AsyncAPIs. A failure is logged, not raised: the
        API is stored, and :meth:`reconcile_queues` creates the queue on its next pass."""
        for rec in records:
            if rec is None or rec.kind != Kind.ASYNC_API or not self._started(rec.name):
                continue
            try:
                await self.ensure_queue(rec)
            except Exception:
                log.exception("creating the queue of %s failed; it will be retried", rec.name)

    async def remove(self, rec: ApiRecord, *, keep_cache: bool) -> None:
        """After ``rec`` was deleted from the store: delete its queue and, unless
        ``keep_cache``, its stored workloads and API objects."""
        if rec.kind != Kind.ASYNC_API or not self._started(rec.name):
            return
        self._counts.pop(rec.name, None)
        self._reported.pop(rec.name, None)
        await self.broker.delete_queue(queue_name_of(rec))
        if not keep_cache:
            removed = await asyncio.to_thread(self._delete_objects, rec.name)
            log.info("deleted %d stored objects of %s", removed, rec.name)

    def _delete_objects(self, api_name: str) -> int:
        prefixes = (paths.workloads_prefix(api_name), paths.api_prefix(api_name))
        return sum(self.objects.delete_prefix(prefix) for prefix in prefixes)

    async def reconcile_queues(self) -> None:
        """Create missing queues of stored AsyncAPIs; delete orphaned AsyncAPI queues."""
        existing = set(await self.broker.list_queues())  # before the APIs: see the docstring
        wanted = {queue_name_of(rec): rec for rec in self._async_records()}
        for name, rec in wanted.items():
            if name not in existing:
                log.info("creating the missing queue %s of %s", name, rec.name)
                await self.ensure_queue(rec)
        for name in sorted(existing - set(wanted)):
            if is_async_queue(name):
                log.info("deleting the orphaned queue %s", name)
                await self.broker.delete_queue(name)

    def _async_records(self) -> list[ApiRecord]:
        return [rec for rec in self._store.list_apis() if rec.kind == Kind.ASYNC_API]

    # --- the signal ----------------------------------------------------------------------------

    async def poll(self) -> dict[str, QueueCounts]:
        """Read every AsyncAPI's queue counts; once per report slot, record each queue length
        (queued + in progress) with the autoscaler. Returns the counts read."""
        now = self._clock()
        slot = math.floor(now / self.settings.report_s)
        records = self._async_records()
        names = {rec.name for rec in records}
        for gone in [n for n in self._counts if n not in names]:
            self._counts.pop(gone, None)
            self._reported.pop(gone, None)
        for rec in records:
            try:
                counts = await self.broker.counts(queue_name_of(rec))
            except Exception:
                log.exception("reading the queue of %s failed", rec.name)
                continue
            self._counts[rec.name] = counts
            if self._reported.get(rec.name) != slot and self._record_value is not None:
                self._reported[rec.name] = slot
                self._record_value(rec.name, QUEUE_SERIES, float(counts.total))
        return dict(self._counts)

    def queue_counts(self, api_name: str) -> QueueCounts | None:
        """The latest counts read of the API's queue (None before the first read)."""
        return self._counts.get(api_name)

    def all_counts(self) -> dict[str, QueueCounts]:
        """API name -> latest counts, sorted by name (``/metrics``)."""
        return dict(sorted(self._counts.items()))

    def queue_json(self, rec: ApiRecord) -> dict[str, int] | None:
        """APIResponse's ``queue`` of an AsyncAPI: ``{"queued", "in_progress"}``."""
        counts = self._counts.get(rec.name)
        if rec.kind != Kind.ASYNC_API or counts is None:
            return None
        return {"queued": counts.visible, "in_progress": counts.in_flight}

    async def run_queues(self) -> None:
        """Keep the queues in line and their counts fresh, every ``sample_s``; never dies."""
        next_reconcile = 0.0
        while True:
            try:
                if self._clock() >= next_reconcile:
                    await self.reconcile_queues()
                    next_reconcile = self._clock() + self.settings.report_s
                await self.poll()
            except Exception:
                log.exception("AsyncAPI queue pass failed")
            await asyncio.sleep(self.settings.sample_s)

    # --- retention -----------------------------------------------------------------------------

    def sweep(self, now: float) -> int:
        """Remove the stored requests older than ``retention_s`` at ``now`` (unix s); returns
        how many. Blocking: run it in a thread."""
        removed = 0
        for api_name in self.objects.list_dirs(paths.WORKLOADS):
            for request_id in self.objects.list_dirs(paths.workloads_prefix(api_name)):
                try:
                    removed += self._sweep_one(api_name, request_id, now)
                except CortexError:
                    log.exception("retention of %s request %s failed", api_name, request_id)
        return removed

    def _sweep_one(self, api_name: str, request_id: str, now: float) -> int:
        last = self._last_change(api_name, request_id)
        if last is None or now - last <= self.settings.retention_s:
            return 0
        self.objects.delete_prefix(paths.workload_prefix(api_name, request_id))
        return 1

    def _last_change(self, api_name: str, request_id: str) -> float | None:
        """When the request last changed: its status timestamp, else its newest object's
        modification time; None when nothing is left under it."""
        try:
            status: Any = self.objects.get_json(paths.workload_status_key(api_name, request_id))
            return float(status["timestamp"])
        except (ObjectNotFoundError, ValueError, TypeError, KeyError):
            pass
        times = []
        for key in self.objects.list(paths.workload_prefix(api_name, request_id)):
            try:
                times.append(self.objects.modified(key))
            except ObjectNotFoundError:
                continue
        return max(times) if times else None

    async def run_sweeper(self) -> None:
        """:meth:`sweep` now, then every ``sweep_period_s``; never dies."""
        while True:
            try:
                removed = await asyncio.to_thread(self.sweep, self._wall_clock())
                if removed:
                    log.info("retention: removed %d expired AsyncAPI requests", removed)
            except Exception:
                log.exception("AsyncAPI retention sweep failed")
            await asyncio.sleep(self.settings.sweep_period_s)


def async_apis_of(app: FastAPI) -> AsyncApis | None:
    """The app's :class:`AsyncApis` (``app.state.async_apis``), if it has one."""
    found = getattr(app.state, "async_apis", None)
    return found if isinstance(found, AsyncApis) else None
