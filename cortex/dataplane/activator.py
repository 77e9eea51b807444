"""The activator: scale from zero (SPEC 3, with the preface's fixes).

A request for a RealtimeAPI with no Ready replica is *held* instead of answered 503 when the
API is scaled to zero (its route says ``scaled_to_zero``) or is waking from zero (an awaken was
sent less than ``timeout_s`` ago and no replica has appeared since). Otherwise (replicas are
requested but starting, or all crashed) the gateway keeps answering 503 at once.

Algorithm, per API, on the gateway's one event loop (no locks):

* :meth:`Activator.enter` admits a request: if the API already holds ``max_concurrency +
  max_queue_length`` requests (the bound of the API's limiter, SPEC 2.3) it raises
  :class:`~cortex.dataplane.limiter.QueueFullError` (503 ``pending request queue full``).
  The first request of a burst (held count 0 -> 1) of a scaled-to-zero API sends
  ``POST {operator}/internal/awaken/{api}`` in a tracked background task (errors are logged by
  the caller's ``awaken`` function) and marks the API as waking until ``now + timeout_s``.
* :meth:`Activator.wait` blocks on the API's :class:`asyncio.Event` until the deadline (each
  request's own, ``timeout_s`` after it arrived); :class:`TimeoutError` then means 503
  ``api.unavailable`` with ``Retry-After: 5``.
* :meth:`Activator.table_updated` is called after every route-table swap: each held API that
  now has a Ready upstream (or that left the table) gets its event set, which wakes every
  waiter at once (no polling), and a fresh event for the next burst; its waking mark is cleared.
* :meth:`Activator.leave` gives the place back (always, in a ``finally``).

The held counts are reported to the operator on every sync (``SyncRequest.held``), where they
feed the autoscaler as the activator's in-flight series.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cortex.dataplane.limiter import QueueFullError
from cortex.dataplane.router import Router
from cortex.dataplane.table import RealtimeRoute

log = logging.getLogger(__name__)

AwakenFn = Callable[[str], Coroutine[Any, Any, None]]


class _Held:
    __slots__ = ("count", "event")

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()


class Activator:
    """Holds requests for APIs without a Ready replica (see the module docstring)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        awaken: AwakenFn | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._awaken = awaken
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._waking_until: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.awakened = 0  # awaken calls started (for metrics and tests)

    def should_hold(self, route: RealtimeRoute) -> bool:
        """Whether a request for ``route`` (which has no Ready replica now) is held."""
        if route.scaled_to_zero:
            return True
        until = self._waking_until.get(route.api_name)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._waking_until[route.api_name]
        return False

    def enter(self, route: RealtimeRoute) -> None:
        """Take a held place for one request (raises QueueFullError); pair with :meth:`leave`."""
        api = route.api_name
        held = self._held.get(api)
        if held is None:
            held = self._held[api] = _Held()
        if held.count >= route.max_concurrency + route.max_queue_length:
            raise QueueFullError
        held.count += 1
        if held.count == 1 and route.scaled_to_zero:
            self._waking_until[api] = self._clock() + self.timeout_s
            self._start_awaken(api)

    def deadline(self) -> float:
        """The give-up time of a request held from now (a :attr:`clock` time)."""
        return self._clock() + self.timeout_s

    async def wait(self, api_name: str, deadline: float) -> None:
        """Wait until :meth:`table_updated` wakes ``api_name``; TimeoutError past ``deadline``
        (a :attr:`clock` time)."""
        held = self._held[api_name]
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise TimeoutError
        async with asyncio.timeout(remaining):
            await held.event.wait()

    def leave(self, api_name: str) -> None:
        held = self._held.get(api_name)
        if held is None:
            return
        held.count -= 1
        if held.count <= 0:
            del self._held[api_name]
            held.event.set()  # nobody waits on it any more; a stale reference must not block

    def table_updated(self, router: Router) -> None:
        """Wake the held requests of every API that now has a Ready replica or is gone."""
        for api, held in list(self._held.items()):
            target = router.target_by_name(api)
            if target is None or target.replicas:
                self._waking_until.pop(api, None)
                old, held.event = held.event, asyncio.Event()
                old.set()
        for api in [a for a in self._waking_until if _has_replicas(router, a)]:
            del self._waking_until[api]

    def held(self) -> dict[str, int]:
        """api_name -> requests held now (for the operator sync and metrics)."""
        return {api: h.count for api, h in self._held.items() if h.count > 0}

    def _start_awaken(self, api_name: str) -> None:
        if self._awaken is None:
            log.warning("api %s is scaled to zero and no operator is configured", api_name)
            return
        self.awakened += 1
        task = asyncio.get_running_loop().create_task(
            self._awaken(api_name), name=f"awaken:{api_name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("awaken task failed", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel awaken calls still running (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _has_replicas(router: Router, api_name: str) -> bool:
    target = router.target_by_name(api_name)
    return target is not None and bool(target.replicas)
