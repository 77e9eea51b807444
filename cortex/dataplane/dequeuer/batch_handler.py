"""BatchAPI message handling (SPEC 5.5 with the preface's fix) and the on-job-complete hook.

A batch message's body is a JSON array (SPEC 6). It is POSTed to the user's ``/`` with
``Content-Type: application/json`` and ``X-Cortex-Job-ID``. Success iff the answer is 200
(body ignored): counted succeeded with its time, acked. Anything else (another status, a
connection error) is a failed attempt:

* the job has a dead-letter queue: the message is released, so it is delivered again at once
  and the queue dead-letters it when a receive would exceed ``max_receive_count``; it is
  counted failed only on its last allowed attempt (a batch that fails once and then succeeds
  is a success, not a failure);
* no dead-letter queue: counted failed and acked (no retry);
* the dequeuer is stopping (:class:`~.worker.StopGuard`): released, not counted, whatever the
  queue has (the user server was stopped under it; it is delivered again after the restart).

Completion (exactly once, :class:`JobCompletion`): the enqueuer puts ONE message on the job's
completion queue after all batches. A worker whose receive loop found the job queue drained
(visible + in_flight == 0 for a few polls in a row) looks at the completion queue: empty means
another worker already ran the hook; a visible message is received (a lease: only one worker
holds it), the hook is POSTed (``/on-job-complete``, body = the message's body; 2xx and 404
are fine, other answers are logged, never retried, SPEC 5.5) and the message acked; a message
in flight elsewhere is waited for, so the hook still runs if its holder dies before acking.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cortex.dataplane.dequeuer.metrics import BatchCounts
from cortex.dataplane.dequeuer.user_client import UserPoster, UserServerUnreachable
from cortex.dataplane.dequeuer.worker import Outcome, StopGuard, renewing
from cortex.queue import QueueBroker, QueueNotFoundError, Received

log = logging.getLogger("cortex.dequeuer.batch")

JOB_ID_HEADER = "X-Cortex-Job-ID"
ON_JOB_COMPLETE_PATH = "/on-job-complete"


class BatchHandler:
    """Handles one batch message; see the module docstring."""

    def __init__(
        self,
        *,
        job_id: str,
        client: UserPoster,
        counts: BatchCounts,
        max_receive_count: int | None,
        stop_guard: StopGuard | None = None,
    ) -> None:
        self._job_id = job_id
        self._client = client
        self._counts = counts
        self._max_receive_count = max_receive_count
        self._stop_guard = stop_guard or StopGuard(None)

    async def handle(self, message: Received) -> Outcome:
        start = time.monotonic()
        error, unreachable = await self._post(message.body)
        if error is None:
            self._counts.record_success(time.monotonic() - start)
            return Outcome.ACK
        if await self._stop_guard.interrupted(unreachable=unreachable):
            log.warning(
                "batch %s interrupted by shutdown (%s); released", message.message_id, error
            )
            return Outcome.RELEASE
        if self._max_receive_count is None:
            log.warning("batch %s failed (%s); counted failed", message.message_id, error)
            self._counts.record_failure()
            return Outcome.ACK
        last = message.receive_count >= self._max_receive_count
        log.warning(
            "batch %s failed (%s), attempt %d of %d%s",
            message.message_id,
            error,
            message.receive_count,
            self._max_receive_count,
            "; it goes to the dead-letter queue" if last else "; it will be retried",
        )
        if last:
            self._counts.record_failure()
        return Outcome.RELEASE

    async def _post(self, body: bytes) -> tuple[str | None, bool]:
        """(None on a 200 answer, else what went wrong; whether the server was unreachable)."""
        headers = (("Content-Type", "application/json"), (JOB_ID_HEADER, self._job_id))
        try:
            response = await self._client.post("/", content=body, headers=headers)
        except UserServerUnreachable as exc:
            return f"user server unreachable: {exc}", True
        if response.status_code != 200:
            text = response.content[:200].decode("utf-8", errors="replace")
            return f"user server answered {response.status_code}: {text}", False
        return None, False


class JobCompletion:
    """Runs the job's ``/on-job-complete`` hook at most once per completion message."""

    def __init__(
        self,
        broker: QueueBroker,
        *,
        queue_name: str,
        job_id: str,
        client: UserPoster,
        visibility_timeout_s: float,
        poll_s: float,
        stopping: asyncio.Event,
    ) -> None:
        self._broker = broker
        self._queue = queue_name
        self._job_id = job_id
        self._client = client
        self._visibility_timeout_s = visibility_timeout_s
        self._poll_s = poll_s
        self._stopping = stopping

    async def run(self) -> bool:
        """Take and run the completion message if it is still there: True if this worker ran
        the hook. Returns when no completion message is left (or on stopping)."""
        while not self._stopping.is_set():
            try:
                counts = await self._broker.counts(self._queue)
            except QueueNotFoundError:
                log.warning("completion queue %s does not exist; no hook to run", self._queue)
                return False
            if counts.total == 0:
                return False
            got = await self._broker.receive(
                self._queue, visibility_timeout_s=self._visibility_timeout_s
            )
            if got:
                await self._run_hook(got[0])
                return True
            await asyncio.sleep(self._poll_s)  # held by another worker: wait in case it dies
        return False

    async def _run_hook(self, message: Received) -> None:
        async with renewing(
            self._broker,
            self._queue,
            message.receipt,
            visibility_timeout_s=self._visibility_timeout_s,
        ):
            await self._post(message.body)
        if not await self._broker.ack(self._queue, message.receipt):
            log.warning("completion message lease had moved on; the hook may run again")

    async def _post(self, body: bytes) -> None:
        headers = (("Content-Type", "application/json"), (JOB_ID_HEADER, self._job_id))
        try:
            response = await self._client.post(ON_JOB_COMPLETE_PATH, content=body, headers=headers)
        except UserServerUnreachable as exc:
            log.error("on-job-complete failed: user server unreachable: %s", exc)
            return
        if response.status_code == 404:
            log.info("the user server has no %s; skipped", ON_JOB_COMPLETE_PATH)
        elif 200 <= response.status_code < 300:
            log.info("on-job-complete done (%d)", response.status_code)
        else:
            log.error("on-job-complete answered %d; not retried", response.status_code)
