"""What the dequeuer measures (SPEC 13.1).

* Batch: :class:`BatchCounts` (``cortex_batch_succeeded``, ``cortex_batch_failed`` and
  ``cortex_time_per_batch``'s sum, successful batches only) written as JSON
  ``{"succeeded", "failed", "time_sum_s"}`` to this worker's key
  (:func:`cortex.storage.paths.job_worker_metrics_key`); the job's totals are the sums over its
  workers' files. :class:`MetricsWriter` writes when something changed, at most once per period
  (one small object write per second instead of one per batch), and once more at the end, so the
  file is exact once the worker exits; a worker killed hard loses at most one period of counts.
* Async: :class:`AsyncMetrics`, a Prometheus registry with ``cortex_async_request_count`` and
  ``cortex_async_latency`` by ``status_code``, served on the admin port when one is set.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from cortex.storage.base import ObjectStore

log = logging.getLogger("cortex.dequeuer.metrics")


@dataclass
class BatchCounts:
    succeeded: int = 0
    failed: int = 0
    time_sum_s: float = 0.0

    def record_success(self, elapsed_s: float) -> None:
        self.succeeded += 1
        self.time_sum_s += elapsed_s

    def record_failure(self) -> None:
        self.failed += 1

    def to_json(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "failed": self.failed, "time_sum_s": self.time_sum_s}


class MetricsWriter:
    """Writes ``counts`` to ``key`` when they changed: every ``period_s`` while :meth:`run`
    runs, and on :meth:`flush`. Storage errors are logged; the next write repeats the totals."""

    def __init__(
        self, store: ObjectStore, key: str, counts: BatchCounts, *, period_s: float
    ) -> None:
        self._store = store
        self._key = key
        self._counts = counts
        self._period_s = period_s
        self._written: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def flush(self) -> None:
        async with self._lock:
            snapshot = self._counts.to_json()
            if snapshot == self._written:
                return
            try:
                await asyncio.to_thread(self._store.put_json, self._key, snapshot)
            except Exception:
                log.exception("could not write batch metrics to %s", self._key)
                return
            self._written = snapshot

    async def run(self) -> None:
        """Flush every period forever (the caller owns and cancels this task)."""
        while True:
            await asyncio.sleep(self._period_s)
            await self.flush()


class AsyncMetrics:
    """Per-response request metrics of an AsyncAPI replica (SPEC 5.4)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cortex_async_request_count",
            "Responses of the user container, by status code",
            ["status_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cortex_async_latency",
            "Seconds the user container took to answer, by status code",
            ["status_code"],
            registry=self.registry,
        )

    def observe(self, status_code: int, elapsed_s: float) -> None:
        self.requests.labels(status_code=str(status_code)).inc()
        self.latency.labels(status_code=str(status_code)).observe(elapsed_s)

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on 127.0.0.1:``port`` (a daemon thread of prometheus_client)."""
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
