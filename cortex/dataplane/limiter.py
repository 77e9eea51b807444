"""Per-replica concurrency limiter (SPEC 2.3, Cortex's "breaker").

Algorithm, on one event loop (no locks needed):

* ``total_slots = max_concurrency + max_queue_length``; ``in_flight`` counts queued + running.
* :meth:`Limiter.acquire`: if ``in_flight >= total_slots`` raise :class:`QueueFullError` at once
  (the gateway answers 503 ``pending request queue full``); otherwise ``in_flight += 1`` and, if
  fewer than ``max_concurrency`` are running, run now; else wait (FIFO) for a running request to
  call :meth:`Limiter.release`, which hands its slot straight to the oldest waiter.
* Cancellation while waiting gives the queue place back; cancellation after the slot was handed
  over (the race between ``release`` and ``cancel``) releases the slot, so nothing leaks.
* :meth:`Limiter.resize` applies new table values: more concurrency wakes waiters at once; less
  lets the excess drain (nobody is pre-empted); fewer total slots only affects new arrivals.

The fast path (a free slot, nobody waiting) allocates nothing and never yields to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class QueueFullError(Exception):
    """Raised by :meth:`Limiter.acquire` when queued + running already equals total slots."""


class Limiter:
    __slots__ = ("_max_concurrency", "_max_queue_length", "_running", "_waiters", "in_flight")

    def __init__(self, max_concurrency: int, max_queue_length: int) -> None:
        self._max_concurrency = max_concurrency
        self._max_queue_length = max_queue_length
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.in_flight = 0  # queued + running; read by metrics and the operator sync

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    @property
    def max_queue_length(self) -> int:
        return self._max_queue_length

    @property
    def total_slots(self) -> int:
        return self._max_concurrency + self._max_queue_length

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return self.in_flight - self._running

    def try_acquire(self) -> bool | None:
        """Synchronous fast path: True if a running slot was taken, None if the caller must
        ``await acquire()`` instead; raises QueueFullError when every slot is taken."""
        if self.in_flight >= self._max_concurrency + self._max_queue_length:
            raise QueueFullError
        if self._running < self._max_concurrency and not self._waiters:
            self._running += 1
            self.in_flight += 1
            return True
        return None

    async def acquire(self) -> None:
        """Take a running slot, waiting in the queue if needed; pair with :meth:`release`."""
        if self.try_acquire():
            return
        self.in_flight += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just before the cancel landed
            else:
                self.in_flight -= 1
                self._remove_waiter(fut)
                self._wake()
            raise

    def release(self) -> None:
        """Give back a running slot (exactly once per successful acquire)."""
        self._running -= 1
        self.in_flight -= 1
        self._wake()

    def resize(self, max_concurrency: int, max_queue_length: int) -> None:
        """Apply new capacity values without touching current in-flight requests."""
        self._max_concurrency = max_concurrency
        self._max_queue_length = max_queue_length
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._running < self._max_concurrency:
            fut = self._waiters.popleft()
            if not fut.done():
                self._running += 1
                fut.set_result(None)

    def _remove_waiter(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)
