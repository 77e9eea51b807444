"""AsyncAPI message handling (SPEC 5.4, with the storage layout of :mod:`cortex.storage.paths`).

A message's body is the request id. For each one::

    payload missing          -> ack: the request was already handled (a worker finished it and
                                died before its ack); its status must not be overwritten
    headers.json missing     -> status failed ("request headers not found"), delete payload, ack
    status in_progress
    POST http://127.0.0.1:$CORTEX_PORT/ with the payload, the stored headers (hop-by-hop ones
    dropped) and X-Cortex-Request-ID: <id>; no client timeout (SPEC: the user's work takes
    what it takes; the lease is renewed meanwhile)
        2xx and a JSON body  -> result.json = the decoded value (any JSON), then completed
        other status         -> failed "user server answered <code>: <first 200 chars>"
        2xx, not JSON        -> failed "user server answered non-JSON: <first 200 chars>"
        connection failure   -> failed "user server unreachable: <error>"
    delete the payload, ack
    ...unless the attempt failed because the dequeuer is stopping (:class:`~.worker.StopGuard`):
    status back to in_queue, payload kept, release (delivered again after the restart)

``result.json`` is written before ``completed``, so a poll that sees ``completed`` finds the
result. Storage errors propagate: the worker leaves the message to its lease and it is
delivered again (never lost). Storage calls run in threads (the store is synchronous).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from cortex.dataplane.dequeuer.metrics import AsyncMetrics
from cortex.dataplane.dequeuer.user_client import UserPoster, UserServerUnreachable
from cortex.dataplane.dequeuer.worker import Outcome, StopGuard
from cortex.queue import Received
from cortex.storage import ObjectNotFoundError, ObjectStore, paths

log = logging.getLogger("cortex.dequeuer.async")

REQUEST_ID_HEADER = "X-Cortex-Request-ID"
REASON_CHARS = 200
# Headers that describe one hop, not the request: the client sets its own.
HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-cortex-request-id",
    }
)


def forwarded_headers(stored: dict[str, Any], request_id: str) -> list[tuple[str, str]]:
    """The stored ``{"Name": ["v1", ...]}`` headers minus hop-by-hop ones, plus the request id."""
    out: list[tuple[str, str]] = []
    for name, values in stored.items():
        if name.lower() in HOP_HEADERS:
            continue
        for value in values if isinstance(values, list) else [values]:
            out.append((name, str(value)))
    out.append((REQUEST_ID_HEADER, request_id))
    return out


def judge_response(status_code: int, body: bytes) -> tuple[Any, str | None]:
    """``(result, None)`` for a 2xx JSON answer, else ``(None, reason)``."""
    text = body[:REASON_CHARS].decode("utf-8", errors="replace")
    if not 200 <= status_code < 300:
        return None, f"user server answered {status_code}: {text}"
    try:
        return json.loads(body), None
    except ValueError:
        return None, f"user server answered non-JSON: {text}"


class AsyncHandler:
    """Handles one AsyncAPI request message; see the module docstring."""

    def __init__(
        self,
        *,
        api_name: str,
        store: ObjectStore,
        client: UserPoster,
        metrics: AsyncMetrics | None = None,
        clock: Any = time.time,
        stop_guard: StopGuard | None = None,
    ) -> None:
        self._api = api_name
        self._store = store
        self._client = client
        self._metrics = metrics
        self._clock = clock
        self._stop_guard = stop_guard or StopGuard(None)

    async def handle(self, message: Received) -> Outcome:
        request_id = message.body.decode("utf-8", errors="replace").strip()
        if not request_id:
            log.error("message %s has an empty body; dropped", message.message_id)
            return Outcome.ACK
        try:
            payload = await self._get(paths.workload_payload_key(self._api, request_id))
        except ObjectNotFoundError:
            log.info("request %s has no payload (already handled); acked", request_id)
            return Outcome.ACK
        try:
            stored = await self._get_json(paths.workload_headers_key(self._api, request_id))
        except ObjectNotFoundError:
            await self._finish(request_id, None, "request headers not found")
            return Outcome.ACK
        await self._set_status(request_id, "in_progress")
        result, reason, unreachable = await self._call_user(request_id, payload, stored)
        if reason is not None and await self._stop_guard.interrupted(unreachable=unreachable):
            log.warning("request %s interrupted by shutdown (%s); released", request_id, reason)
            await self._set_status(request_id, "in_queue")
            return Outcome.RELEASE
        await self._finish(request_id, result, reason)
        return Outcome.ACK

    async def _call_user(
        self, request_id: str, payload: bytes, stored: dict[str, Any]
    ) -> tuple[Any, str | None, bool]:
        """(result, why it failed or None, whether the user server was unreachable)."""
        headers = forwarded_headers(stored, request_id)
        start = time.monotonic()
        try:
            response = await self._client.post("/", content=payload, headers=headers)
        except UserServerUnreachable as exc:
            return None, f"user server unreachable: {exc}", True
        if self._metrics is not None:
            self._metrics.observe(response.status_code, time.monotonic() - start)
        return (*judge_response(response.status_code, response.content), False)

    async def _finish(self, request_id: str, result: Any, reason: str | None) -> None:
        """Store the outcome (result before ``completed``), then remove the payload."""
        if reason is None:
            await asyncio.to_thread(
                self._store.put_json, paths.workload_result_key(self._api, request_id), result
            )
            await self._set_status(request_id, "completed")
            log.info("request %s completed", request_id)
        else:
            await self._set_status(request_id, "failed", reason=reason)
            log.warning("request %s failed: %s", request_id, reason)
        await asyncio.to_thread(
            self._store.delete, paths.workload_payload_key(self._api, request_id)
        )

    async def _set_status(self, request_id: str, status: str, *, reason: str | None = None) -> None:
        record = paths.status_record(status, self._clock())
        if reason is not None:
            record["reason"] = reason
        key = paths.workload_status_key(self._api, request_id)
        await asyncio.to_thread(self._store.put_json, key, record)

    async def _get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._store.get, key)

    async def _get_json(self, key: str) -> Any:
        return await asyncio.to_thread(self._store.get_json, key)
