"""Long polling shared by the brokers: retry a non-blocking claim until it yields or time runs out.

Neither backend can block a claim inside the database (SQLite has no notifications; a Redis
claim is a Lua script, which must not block). So a waiting ``receive`` alternates the claim
with an asyncio wait of at most ``poll_interval_s``, which ends early when this broker sends to
the same queue (:meth:`Wakeups.notify`). Messages sent by other processes, or leases that
expire, are seen at the next poll: latency <= ``poll_interval_s``, cost one sub-millisecond
query per interval per waiting consumer. Nothing blocks the event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from cortex.queue.base import Received


class Wakeups:
    """Per-queue events that in-process senders set to wake in-process long pollers."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        ev = self._events.get(name)
        if ev is None:
            ev = self._events[name] = asyncio.Event()
        return ev

    def notify(self, name: str) -> None:
        ev = self._events.pop(name, None)
        if ev is not None:
            ev.set()


async def long_poll(
    claim: Callable[[], Awaitable[list[Received]]],
    *,
    name: str,
    wait_s: float,
    poll_interval_s: float,
    wakeups: Wakeups,
) -> list[Received]:
    """Call ``claim`` until it returns messages or ``wait_s`` has passed (then ``[]``)."""
    deadline = time.monotonic() + wait_s
    while True:
        event = wakeups.event(name)  # taken before the claim, so a send in between wakes us
        got = await claim()
        remaining = deadline - time.monotonic()
        if got or remaining <= 0:
            return got
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(poll_interval_s, remaining))
