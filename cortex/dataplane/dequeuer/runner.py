"""Wires one dequeuer process together: broker, store, HTTP client, readiness gate, loop.

:func:`run_dequeuer` is the whole process minus signal handling and logging set-up (see
``__main__``), so tests run it in-process. Exit codes: 0 when stopped by a signal after
draining, or (batch) when the job's queue is drained and the completion hook settled; 1 when the
queue does not exist (the API or job was deleted under us) or a setting is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from cortex.dataplane.dequeuer.async_handler import AsyncHandler
from cortex.dataplane.dequeuer.batch_handler import BatchHandler, JobCompletion
from cortex.dataplane.dequeuer.metrics import AsyncMetrics, BatchCounts, MetricsWriter
from cortex.dataplane.dequeuer.probes import ReadinessGate, build_check
from cortex.dataplane.dequeuer.settings import (
    DequeuerMode,
    DequeuerSettings,
    DequeuerSettingsError,
)
from cortex.dataplane.dequeuer.user_client import UserClient
from cortex.dataplane.dequeuer.worker import (
    LoopConfig,
    LoopEnd,
    ReceiveLoop,
    StopGuard,
    cancel_and_wait,
)
from cortex.errors import CortexError
from cortex.queue import QueueBroker, open_broker
from cortex.storage import ObjectStore, open_store, paths

log = logging.getLogger("cortex.dequeuer")


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[None]:
    """Run ``coro`` as a named task for the body's duration; an early end is logged."""

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %r died", name, exc_info=task.exception())

    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(ended)
    try:
        yield
    finally:
        await cancel_and_wait(task)


def loop_config(settings: DequeuerSettings) -> LoopConfig:
    return LoopConfig(
        queue_name=settings.queue_name,
        workers=settings.workers,
        visibility_timeout_s=settings.visibility_timeout_s,
        receive_wait_s=settings.receive_wait_s,
        drain_timeout_s=settings.drain_timeout_s,
        stop_when_empty=settings.mode is DequeuerMode.BATCH,
        empty_checks=settings.empty_checks,
    )


async def run_dequeuer(settings: DequeuerSettings, *, stopping: asyncio.Event) -> int:
    """Run until stopped (async) or until the job is done (batch); returns the exit code."""
    if settings.user_port is None:
        raise DequeuerSettingsError("CORTEX_PORT is not set: the dequeuer needs the user's port")
    broker = open_broker(settings.queue_url)
    store = open_store(settings.storage_url)
    try:
        # one connection per worker, plus one so the readiness probe never waits for a worker
        async with UserClient(settings.user_port, connections=settings.workers + 1) as client:
            check, timing = build_check(
                settings.probe,
                user_port=settings.user_port,
                pod_port=settings.pod_port,
                client=client,
                default_period_s=settings.probe_period_s,
            )
            gate = ReadinessGate(check, timing)
            async with background(gate.run(), name="readiness probe"):
                return await _run_mode(settings, broker, store, client, gate, stopping)
    except CortexError as exc:
        log.error("dequeuer stopped: %s", exc)
        return 1
    finally:
        await broker.close()


async def _run_mode(
    settings: DequeuerSettings,
    broker: QueueBroker,
    store: ObjectStore,
    client: UserClient,
    gate: ReadinessGate,
    stopping: asyncio.Event,
) -> int:
    if settings.mode is DequeuerMode.ASYNC:
        metrics = AsyncMetrics()
        if settings.admin_port is not None:
            metrics.serve(settings.admin_port)
        handler = AsyncHandler(
            api_name=settings.api_name,
            store=store,
            client=client,
            metrics=metrics,
            stop_guard=StopGuard(stopping),
        )
        await ReceiveLoop(
            broker, handler, loop_config(settings), readiness=gate, stopping=stopping
        ).run()
        return 0
    return await _run_batch(settings, broker, store, client, gate, stopping)


async def _run_batch(
    settings: DequeuerSettings,
    broker: QueueBroker,
    store: ObjectStore,
    client: UserClient,
    gate: ReadinessGate,
    stopping: asyncio.Event,
) -> int:
    if not settings.job_id:
        raise DequeuerSettingsError("batch mode needs CORTEX_DEQUEUER_JOB_ID")
    worker_id = settings.worker_id or uuid.uuid4().hex[:12]
    counts = BatchCounts()
    key = paths.job_worker_metrics_key(settings.api_name, settings.job_id, worker_id)
    writer = MetricsWriter(store, key, counts, period_s=settings.metrics_period_s)
    handler = BatchHandler(
        job_id=settings.job_id,
        client=client,
        counts=counts,
        max_receive_count=settings.max_receive_count,
        stop_guard=StopGuard(stopping),
    )
    loop = ReceiveLoop(broker, handler, loop_config(settings), readiness=gate, stopping=stopping)
    async with background(writer.run(), name="batch metrics writer"):
        try:
            end = await loop.run()
        finally:
            await writer.flush()
    log.info("job queue %s: %s (%s)", settings.queue_name, end, counts.to_json())
    if end is LoopEnd.DRAINED:
        await JobCompletion(
            broker,
            queue_name=settings.completion_queue_name,
            job_id=settings.job_id,
            client=client,
            visibility_timeout_s=settings.visibility_timeout_s,
            poll_s=settings.receive_wait_s,
            stopping=stopping,
        ).run()
    return 0
