"""Fire-and-forget mirror copies of TrafficSplitter requests (the Istio ``mirror`` of SPEC 9).

A copy goes through the shadow replica's limiter like any request (a full queue drops it) and
its answer is thrown away. Nothing about it can reach the caller: it runs in its own task, has
its own timeout, and at most ``max_outstanding`` copies exist at once (beyond that, copies are
dropped and counted), so a shadow that hangs costs bounded memory and never slows the caller.
"""

from __future__ import annotations

import asyncio
import logging

from cortex.dataplane.limiter import QueueFullError
from cortex.dataplane.router import RealtimeTarget, Replica, Router
from cortex.dataplane.upstream import send_and_discard

log = logging.getLogger(__name__)


class ShadowSender:
    """Owns every shadow task; :meth:`close` cancels those still running."""

    def __init__(self, router: Router, *, max_outstanding: int = 64, timeout_s: float = 30.0):
        self._router = router
        self._max_outstanding = max_outstanding
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    @property
    def outstanding(self) -> int:
        return len(self._tasks)

    def submit(self, target: RealtimeTarget, data: bytes, *, head_only: bool) -> bool:
        """Start one copy of ``data`` (a complete request) to ``target``; False if dropped."""
        replica = (
            self._router.pick_replica(target) if len(self._tasks) < self._max_outstanding else None
        )
        if replica is None:
            self.dropped += 1
            return False
        try:
            holding = bool(replica.limiter.try_acquire())
        except QueueFullError:
            self.dropped += 1
            return False
        task = asyncio.get_running_loop().create_task(
            self._run(replica, data, head_only=head_only, holding=holding),
            name=f"shadow:{target.api_name}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    async def _run(self, replica: Replica, data: bytes, *, head_only: bool, holding: bool) -> None:
        if not holding:
            await replica.limiter.acquire()
        try:
            async with asyncio.timeout(self._timeout_s):
                await send_and_discard(replica.pool, data, head_only=head_only)
        except (OSError, TimeoutError) as exc:
            log.debug("shadow request to %s failed: %r", replica.replica_id, exc)
        finally:
            replica.limiter.release()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("shadow task failed", exc_info=task.exception())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
