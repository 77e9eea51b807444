"""The async gateway (SPEC 4, with the preface's fixes and our storage layout).

Routes of an :class:`~cortex.dataplane.table.AsyncRoute` at ``<endpoint>``:

* ``POST <endpoint>`` (submit): make a request id (:func:`new_request_id`), store
  ``headers.json`` (``{"Header-Name": ["v1", ...]}``: the request's headers in canonical casing,
  without hop-by-hop ones, ``Host`` and ``Content-Length``) and ``payload`` (the raw body, which
  may be empty, as in the original), then the status ``in_queue``, then send the id on the
  route's queue, and answer 200 ``{"id": "<id>"}``. The status is written *before* the send, so
  a worker that receives the id at once always finds it (``cortex.storage.paths``: writers keep
  a causal order). If the send fails the request's objects are removed and the answer is 503
  JSON ``api.unavailable`` (nothing was accepted); a storage failure answers 500 JSON.
* ``GET <endpoint>/<id>`` (poll): ``status.json`` decides. Missing: 404 JSON
  ``async.not_found``. Otherwise 200 ``{"id", "status"}``; ``completed`` adds ``"result"`` (any
  JSON value, the preface's fix) and ``"timestamp"`` (RFC 3339, UTC, of result.json's
  modification time); ``failed`` adds ``"reason"`` when the worker stored one in status.json
  (its ``reason`` field).
* Other methods on those paths: 405 JSON; deeper paths: 404 JSON.

Storage calls are synchronous (:mod:`cortex.storage.base`): the three writes of a submit run in
one hop to the gateway's own storage threads (``storage_threads``: a write mostly waits on the
disk or on S3, so a few more threads than cores overlap those waits; many more only add GIL
contention, measured), and a slow disk never stalls the event loop; the queue send runs on the
loop (the SQLite broker's calls are short inline transactions, see its module docstring).
``bench/async_submit.py`` measures the result against the raw rates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from cortex.dataplane.answers import error_body
from cortex.dataplane.table import AsyncRoute
from cortex.errors import CortexError
from cortex.queue import QueueBroker, QueueError, open_broker
from cortex.storage import ObjectNotFoundError, ObjectStore, open_store, paths
from cortex.storage.base import InvalidKeyError

log = logging.getLogger(__name__)
T = TypeVar("T")

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, bytes]  # status code, JSON body

IN_QUEUE = "in_queue"
COMPLETED = "completed"
FAILED = "failed"
IN_PROGRESS = "in_progress"
_STATUSES = frozenset({IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED})
_SKIP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)

_id_lock = threading.Lock()
_last_id_time = 0


def new_request_id(now_ns: int | None = None) -> str:
    """A UUIDv7 (RFC 9562) string: unique and sortable by creation time, oldest first.

    48 bits of unix milliseconds, then 12 bits of sub-millisecond fraction (RFC 9562 method 3),
    then 62 random bits. Within one process ids are strictly increasing even when the clock
    stands still or steps back (the 60-bit time field is bumped past the last one issued);
    across processes the random bits keep them unique. Lexicographic order of the strings is
    time order, so a storage listing of request folders comes oldest first (the sweeper's order).
    """
    global _last_id_time
    t60 = time_field(time.time_ns() if now_ns is None else now_ns)
    with _id_lock:
        if t60 <= _last_id_time:
            t60 = _last_id_time + 1
        _last_id_time = t60
    return uuid7(t60, secrets.randbits(62))


def time_field(now_ns: int) -> int:
    """The 60-bit time of a UUIDv7: unix milliseconds, then 12 bits of the millisecond."""
    return (now_ns // 1_000_000) << 12 | ((now_ns % 1_000_000) * 4096) // 1_000_000


def uuid7(t60: int, rand62: int) -> str:
    """The UUIDv7 string of a :func:`time_field` value and 62 random bits."""
    value = (t60 >> 12) << 80 | 0x7 << 76 | (t60 & 0xFFF) << 64 | 0b10 << 62 | rand62
    return str(uuid.UUID(int=value))


def canonical_header(name: str) -> str:
    """Go's canonical MIME header casing: ``content-type`` -> ``Content-Type``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def headers_record(headers: Headers) -> dict[str, list[str]]:
    """The ``headers.json`` object of a submit (see the module docstring)."""
    out: dict[str, list[str]] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        if name.lower() in _SKIP_HEADERS:
            continue
        out.setdefault(canonical_header(name), []).append(raw_value.decode("latin-1"))
    return out


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat().replace("+00:00", "Z")


class AsyncGateway:
    """Submit and poll for AsyncAPIs; the store and broker are opened on first use."""

    def __init__(
        self, *, queue_url: str | None, storage_url: str | None, storage_threads: int = 6
    ) -> None:
        self.queue_url = queue_url
        self.storage_url = storage_url
        self._storage_threads = storage_threads
        self._executor: ThreadPoolExecutor | None = None
        self._store: ObjectStore | None = None
        self._broker: QueueBroker | None = None
        self._tasks: set[asyncio.Task[Answer]] = set()

    def _open(self) -> tuple[ObjectStore, QueueBroker]:
        if self.queue_url is None or self.storage_url is None:
            raise CortexError("the gateway has no queue or storage configured (CORTEX_STATE_DIR)")
        if self._store is None:
            self._store = open_store(self.storage_url)
        if self._broker is None:
            self._broker = open_broker(self.queue_url)
        return self._store, self._broker

    async def submit(self, route: AsyncRoute, headers: Headers, body: bytes) -> Answer:
        """Store, mark ``in_queue``, enqueue; answer ``{"id": ...}`` (see the module docstring).

        The work runs in its own task, shielded: a client that goes away mid-submit cannot
        leave a request stored but never enqueued."""
        task = asyncio.get_running_loop().create_task(
            self._submit(route, headers, body), name=f"async-submit:{route.api_name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[Answer]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async submit failed", exc_info=task.exception())

    async def _submit(self, route: AsyncRoute, headers: Headers, body: bytes) -> Answer:
        try:
            store, broker = self._open()
        except CortexError as exc:
            return 503, error_body("api.unavailable", str(exc))
        request_id = new_request_id()
        api = route.api_name
        try:
            await self._in_thread(_store_request, store, api, request_id, headers, body)
        except CortexError as exc:
            log.error("async submit to %s: storage failed: %s", api, exc)
            return 500, error_body("storage.error", f"cannot store the request: {exc}")
        try:
            await broker.send(route.queue_name, request_id.encode())
        except QueueError as exc:
            log.error("async submit to %s: queue %s failed: %s", api, route.queue_name, exc)
            await self._in_thread(_forget, store, api, request_id)
            msg = f"api {api} cannot accept requests now: {exc}"
            return 503, error_body("api.unavailable", msg)
        return 200, b'{"id": "%s"}' % request_id.encode()

    async def poll(self, route: AsyncRoute, request_id: str) -> Answer:
        """The request's status (and result) as SPEC 4.3 answers it."""
        try:
            store, _ = self._open()
        except CortexError as exc:
            return 503, error_body("api.unavailable", str(exc))
        try:
            found = await self._in_thread(_read_status, store, route.api_name, request_id)
        except InvalidKeyError:
            found = None
        except (CortexError, ValueError) as exc:
            return 500, error_body("storage.error", f"cannot read request {request_id}: {exc}")
        if found is None:
            msg = f"request {request_id} of api {route.api_name} was not found"
            return 404, error_body("async.not_found", msg)
        return 200, json.dumps({"id": request_id, **found}).encode()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call on the gateway's storage threads."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._storage_threads, thread_name_prefix="cortex-storage"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Finish the submits in progress, then close the broker."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._broker is not None:
            await self._broker.close()
            self._broker = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _store_request(
    store: ObjectStore, api: str, request_id: str, headers: Headers, body: bytes
) -> None:
    store.put_json(paths.workload_headers_key(api, request_id), headers_record(headers))
    store.put(paths.workload_payload_key(api, request_id), body)
    record = paths.status_record(IN_QUEUE, time.time())
    store.put_json(paths.workload_status_key(api, request_id), record)


def _forget(store: ObjectStore, api: str, request_id: str) -> None:
    try:
        store.delete_prefix(paths.workload_prefix(api, request_id))
    except CortexError as exc:
        log.error("cannot remove unqueued request %s of %s: %s", request_id, api, exc)


def _read_status(store: ObjectStore, api: str, request_id: str) -> dict[str, Any] | None:
    """``{"status", ...}`` for the poll answer, or None when the id is unknown.

    SPEC 4.3's shapes: ``in_queue`` and ``in_progress`` give the status alone; ``completed``
    adds ``result`` and ``timestamp``; ``failed`` adds ``reason`` when the worker stored one.
    A status outside those four raises ValueError (500, as SPEC's ``invalid workload status``).
    """
    try:
        record = store.get_json(paths.workload_status_key(api, request_id))
    except ObjectNotFoundError:
        return None
    status = record.get("status") if isinstance(record, dict) else None
    if status not in _STATUSES:
        raise ValueError(f"invalid workload status: {status!r}")
    out: dict[str, Any] = {"status": status}
    if status == COMPLETED:
        key = paths.workload_result_key(api, request_id)
        out["result"] = json.loads(store.get(key))
        out["timestamp"] = rfc3339(store.modified(key))
    elif status == FAILED and isinstance(record, dict) and record.get("reason") is not None:
        out["reason"] = record["reason"]
    return out
