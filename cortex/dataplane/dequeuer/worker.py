"""The receive loop (SPEC 5.3): lease messages, hand them to a handler, settle them.

Algorithm (one loop per process, up to ``workers`` messages at once)::

    until stopping:
        wait for the user container to be ready            (probes.ReadinessGate)
        take a worker slot                                  (asyncio.Semaphore(workers))
        receive 1 message, long-polling receive_wait_s, lease = visibility_timeout_s
        none: release the slot; stop_when_empty (batch) and nothing running here and the
              queue's visible + in_flight == 0 for empty_checks polls in a row -> DRAINED
        one:  run it as a task: renew its lease every visibility/3 while the handler runs,
              then ack or release it as the handler says, free the slot

A handler that raises leaves the message to its lease: it stops being renewed and is delivered
again after the visibility timeout (a storage outage must not lose an accepted request; a batch
with a dead-letter queue still ends there after ``max_receive_count`` deliveries).

Shutdown (SIGTERM, the ``stopping`` event): a message whose attempt fails while stopping is
released uncounted by its handler (:class:`StopGuard`: the user server was stopped under it);
no new receive starts (one already waiting ends
within ``receive_wait_s`` and whatever it got is released), in-flight messages get
``drain_timeout_s`` to finish, the rest are cancelled and released so another replica takes
them at once. A receive is never cancelled mid-call: a message claimed by a cancelled call
would stay hidden for a whole lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from cortex.dataplane.dequeuer.probes import ReadinessGate
from cortex.queue import QueueBroker, QueueError, QueueNotFoundError, ReceiptError, Received

log = logging.getLogger("cortex.dequeuer.worker")

RECEIVE_ERROR_BACKOFF_S = 1.0
# How long a failed connection to the user server waits for our own SIGTERM: the backend signals
# every container of a replica at once, so the user server may die before our handler runs.
STOP_GRACE_S = 1.0


class Outcome(StrEnum):
    ACK = "ack"  # done with it (success, or a failure that is not retried)
    RELEASE = "release"  # a failed attempt: visible again at once, counts towards dead-lettering


class LoopEnd(StrEnum):
    STOPPED = "stopped"  # the stopping event was set
    DRAINED = "drained"  # stop_when_empty and the queue stayed empty


class Handler(Protocol):
    async def handle(self, message: Received) -> Outcome: ...


class StopGuard:
    """Tells a handler whether a failed attempt is the dequeuer's own shutdown: the user
    server stopped under a request because the replica is stopping (cluster down, scale
    down), not because the request is bad. Such an attempt is released to the queue, neither
    counted nor failed, and is delivered again (after a restart, or to another replica).

    An answer that came while stopping is interrupted; an unreachable user server waits up to
    ``grace_s`` for the stop signal (it may be on its way). Without an event, never."""

    def __init__(self, stopping: asyncio.Event | None, *, grace_s: float = STOP_GRACE_S) -> None:
        self._stopping = stopping
        self._grace_s = grace_s

    async def interrupted(self, *, unreachable: bool) -> bool:
        if self._stopping is None:
            return False
        if self._stopping.is_set() or not unreachable:
            return self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._grace_s)
        return self._stopping.is_set()


@dataclass(frozen=True)
class LoopConfig:
    queue_name: str
    workers: int = 1
    visibility_timeout_s: float = 60.0
    receive_wait_s: float = 1.0
    drain_timeout_s: float = 30.0
    stop_when_empty: bool = False
    empty_checks: int = 3


@contextlib.asynccontextmanager
async def renewing(
    broker: QueueBroker, queue_name: str, receipt: str, *, visibility_timeout_s: float
) -> AsyncIterator[None]:
    """Keep a lease alive while the body runs: every third of the visibility timeout, hide the
    message for another ``visibility_timeout_s`` from now. Renewal failures are logged only
    (SPEC 5.3); a lease lost to a receipt error is not renewed again."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(visibility_timeout_s / 3)
            try:
                await broker.extend(queue_name, receipt, visibility_timeout_s=visibility_timeout_s)
            except ReceiptError:
                log.warning("lease lost on %s; the message may be delivered again", queue_name)
                return
            except Exception:
                log.exception("could not renew a lease on %s", queue_name)

    task = asyncio.create_task(renew(), name=f"renew lease {queue_name}")
    try:
        yield
    finally:
        await cancel_and_wait(task)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if it swallowed one (a
    library that catches CancelledError must not hang our shutdown). Its own failure is its
    owner's to log (a done callback); here it is only marked retrieved."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled():
        task.exception()


async def settle(broker: QueueBroker, queue_name: str, message: Received, outcome: Outcome) -> None:
    """Ack or release; a stale receipt (the lease moved on) is logged, not raised."""
    try:
        if outcome is Outcome.ACK:
            done = await broker.ack(queue_name, message.receipt)
        else:
            done = await broker.release(queue_name, message.receipt)
    except QueueError:
        log.exception("could not %s message %s", outcome, message.message_id)
        return
    if not done:
        log.warning("message %s: lease had moved on before %s", message.message_id, outcome)


class ReceiveLoop:
    """One dequeuer's receive loop; :meth:`run` returns why it ended."""

    def __init__(
        self,
        broker: QueueBroker,
        handler: Handler,
        config: LoopConfig,
        *,
        readiness: ReadinessGate,
        stopping: asyncio.Event,
    ) -> None:
        self._broker = broker
        self._handler = handler
        self._config = config
        self._readiness = readiness
        self._stopping = stopping
        self._slots = asyncio.Semaphore(max(config.workers, 1))
        self._tasks: set[asyncio.Task[None]] = set()
        self._empty_polls = 0

    async def run(self) -> LoopEnd:
        try:
            return await self._receive_until_done()
        finally:
            await self._drain()

    async def _receive_until_done(self) -> LoopEnd:
        while not self._stopping.is_set():
            if not await self._wait_turn():
                break
            message = await self._receive_one()
            if message is not None:
                self._start(message)
            else:
                self._slots.release()
                if await self._drained():
                    return LoopEnd.DRAINED
        return LoopEnd.STOPPED

    async def _wait_turn(self) -> bool:
        """Wait for readiness and a free slot (taken); False if stopping came first. The
        common case (ready, a slot free) takes no task switch."""
        if not self._readiness.ready and not await self._until_stopped(
            self._readiness.wait_ready()
        ):
            return False
        if self._slots.locked():
            if not await self._until_stopped(self._slots.acquire()):
                return False
        else:
            await self._slots.acquire()
        if self._stopping.is_set():
            self._slots.release()
            return False
        return True

    async def _until_stopped(self, waiting: Coroutine[Any, Any, object]) -> bool:
        """Await ``waiting`` unless stopping comes first (then cancel it): True if it finished."""
        wait_task = asyncio.ensure_future(waiting)
        stop_task = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({wait_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if not wait_task.done():
            wait_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wait_task
            return False
        if not wait_task.cancelled():
            wait_task.result()
            return True
        return False

    async def _receive_one(self) -> Received | None:
        cfg = self._config
        try:
            got = await self._broker.receive(
                cfg.queue_name,
                visibility_timeout_s=cfg.visibility_timeout_s,
                wait_s=cfg.receive_wait_s,
            )
        except QueueNotFoundError:
            raise
        except QueueError:
            log.exception("receive from %s failed; retrying", cfg.queue_name)
            await asyncio.sleep(RECEIVE_ERROR_BACKOFF_S)
            return None
        if got and self._stopping.is_set():
            await settle(self._broker, cfg.queue_name, got[0], Outcome.RELEASE)
            return None
        return got[0] if got else None

    async def _drained(self) -> bool:
        """Batch end test: ``empty_checks`` consecutive empty polls with nothing anywhere."""
        cfg = self._config
        if not cfg.stop_when_empty or self._tasks or self._stopping.is_set():
            return False
        counts = await self._broker.counts(cfg.queue_name)
        self._empty_polls = self._empty_polls + 1 if counts.total == 0 else 0
        return self._empty_polls >= cfg.empty_checks

    def _start(self, message: Received) -> None:
        self._empty_polls = 0
        task = asyncio.create_task(self._process(message), name=f"message {message.message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, message: Received) -> None:
        cfg = self._config
        try:
            async with renewing(
                self._broker,
                cfg.queue_name,
                message.receipt,
                visibility_timeout_s=cfg.visibility_timeout_s,
            ):
                outcome = await self._handler.handle(message)
            await settle(self._broker, cfg.queue_name, message, outcome)
        except asyncio.CancelledError:
            log.warning("message %s unfinished at shutdown; released", message.message_id)
            await settle(self._broker, cfg.queue_name, message, Outcome.RELEASE)
            raise
        except Exception:
            log.exception(
                "message %s: handler failed; it will be delivered again after its lease",
                message.message_id,
            )
        finally:
            self._slots.release()

    async def _drain(self) -> None:
        """Give in-flight messages ``drain_timeout_s``, then cancel (and release) the rest."""
        if not self._tasks:
            return
        log.info("draining %d in-flight message(s)", len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._config.drain_timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
