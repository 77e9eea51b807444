"""One client connection of the gateway: HTTP/1.1 parsing, request order, local answers.

:class:`ClientConnection` is the ``asyncio.Protocol`` half of the gateway that knows nothing
about routes: it parses requests with httptools, answers them one at a time in order
(pipelined requests wait in a short queue, reading pauses when it is full), answers the
reserved paths ``/_cortex/healthz`` and ``/_cortex/metrics`` itself, writes local answers
(:meth:`reply`), keeps the per-request state a forward needs, records the request's metrics
when it ends (:meth:`_finish`) and starts the next one. What a request is routed to is
:meth:`_dispatch`'s job, which :class:`~cortex.dataplane.proxy.ProxyProtocol` overrides.

A client that goes away cancels the request's task (a queue wait, a held request, a connect),
aborts its upstream connection and releases its limiter slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

from cortex.dataplane.activator import Activator
from cortex.dataplane.answers import JSON, STATUS_LINES, TEXT, error_body, not_found_body
from cortex.dataplane.async_gateway import AsyncGateway
from cortex.dataplane.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cortex.dataplane.metrics import GatewayMetrics
from cortex.dataplane.router import Replica, Router
from cortex.dataplane.shadow import ShadowSender
from cortex.dataplane.upstream import Headers, UpstreamConnection, UpstreamPool

log = logging.getLogger(__name__)

_MAX_PIPELINED = 16


@dataclass
class ProxyContext:
    """State shared by every client connection of one gateway."""

    router: Router
    metrics: GatewayMetrics
    shadow: ShadowSender
    activator: Activator
    async_gateway: AsyncGateway
    operator_pool: UpstreamPool | None = None  # for job routes; None: no operator configured
    connections: set[ClientConnection] = field(default_factory=set)
    closing: bool = False  # shutting down: answer what is in flight, keep nothing alive

    def busy_count(self) -> int:
        return sum(1 for c in self.connections if c.busy)


class Request:
    """One parsed request (the body is read whole)."""

    __slots__ = ("body", "has_body", "headers", "http10", "keep_alive", "method", "url")

    def __init__(self, method: bytes, url: bytes, headers: Headers, body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.has_body = False
        self.keep_alive = True
        self.http10 = False


class ClientConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self.client_ip = b"127.0.0.1"
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._pending: deque[Request] = deque()
        self._lost = False  # the connection is gone or closing: no further requests on it
        self._read_error = False  # the parser failed: answer what is in progress, then close
        self._reset_response()
        self._current: Request | None = None

    def _reset_response(self) -> None:
        self._replica: Replica | None = None  # the replica whose limiter slot may be held
        self._pool: UpstreamPool | None = None
        self._holding = False  # a limiter slot is held
        self._conn: UpstreamConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._data = b""  # the request as sent upstream
        self.api = ""  # the API the request is for ("": none, no metrics)
        self._status = 0
        self._head: bytes = b""
        self._started = False
        self._chunked = False
        self._keep = True
        self._retried = False
        self._t0 = 0.0

    @property
    def busy(self) -> bool:
        return self._current is not None

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0]).encode()
        self.ctx.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad_request(b"upgrades are not supported\n")
        except httptools.HttpParserError:
            if self._current is None:
                self._bad_request(b"bad request\n")
            elif self.transport is not None:
                # e.g. bytes after "Connection: close": answer what was read whole, then close
                self._read_error = True
                self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.ctx.connections.discard(self)
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
        if self._conn is not None:
            self._conn.abort()
        self._release()
        self._current = None

    # --- httptools request callbacks ------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(name) == 6 and name.lower() == b"expect":
            self._expect(value)

    def _expect(self, value: bytes) -> None:
        """Answer ``Expect: 100-continue`` at once: the client waits for it before sending the
        body (its whole head is sent by then, so answering before the head is parsed is fine);
        the body is then read whole as usual."""
        http11 = self._parser.get_http_version() == "1.1"
        if http11 and value.lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(self._parser.get_method(), self._url, self._headers, body)
        req.keep_alive = self._parser.should_keep_alive()
        req.http10 = self._parser.get_http_version() == "1.0"
        self._url = b""  # ready for the next message (no on_message_begin: one call less)
        self._headers = []
        self._body = []
        if self._lost:  # closed by us (e.g. after "Connection: close"); ignore what follows
            return
        if self._current is None:
            self._start(req)
        else:
            self._pending.append(req)
            if len(self._pending) >= _MAX_PIPELINED and self.transport is not None:
                self.transport.pause_reading()

    # --- one request ------------------------------------------------------------------------
    def _start(self, req: Request) -> None:
        self._reset_response()
        self._current = req
        self._t0 = time.perf_counter()
        if req.url.startswith(b"/_cortex/"):
            self._reserved(req)
        else:
            self._dispatch(req)

    def _dispatch(self, req: Request) -> None:
        """Answer a request for an API; here: none is deployed (subclasses route)."""
        self.reply(404, JSON, not_found_body(req.url))

    def _reserved(self, req: Request) -> None:
        path = req.url.split(b"?", 1)[0]
        if path == b"/_cortex/healthz":
            self.reply(200, TEXT, b"ok")
        elif path == b"/_cortex/metrics":
            self.reply(200, METRICS_CONTENT_TYPE.encode(), self.ctx.metrics.render())
        else:
            self.reply(404, JSON, not_found_body(req.url))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the rest of this request in a task (cancelled if the client goes away). The
        task calls :meth:`detach_task` before it answers."""
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_task_error)
        self._task = task

    def detach_task(self) -> None:
        """The request's task is about to answer: the next request may start its own."""
        self._task = None

    def unavailable(self, api_name: str) -> None:
        """503 ``api.unavailable``: the API has no Ready replica."""
        msg = f"api {api_name} has no ready replica"
        self.reply(503, JSON, error_body("api.unavailable", msg))

    def reply(self, status: int, content_type: bytes, body: bytes, extra: bytes = b"") -> None:
        """Answer the current request locally (``extra``: more header lines) and end it."""
        req = self._current
        assert req is not None and self.transport is not None
        self._status = status
        self._keep = req.keep_alive and not self.ctx.closing
        head = STATUS_LINES[status] + b"Content-Type: %b\r\nContent-Length: %d\r\n" % (
            content_type,
            len(body),
        )
        conn = b"Connection: close\r\n" if not self._keep else b""
        tail = b"" if req.method == b"HEAD" else body
        self.transport.write(head + extra + conn + b"\r\n" + tail)
        self._finish()

    def _bad_request(self, body: bytes) -> None:
        if self.transport is not None and self._current is None:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
            )
        if self.transport is not None:
            self._lost = True
            self.transport.close()

    def _release(self) -> None:
        if self._holding and self._replica is not None:
            self._holding = False
            self._replica.limiter.release()

    def _finish(self) -> None:
        """The current request is answered: release, record, then start the next or close."""
        self._release()
        if self.api:
            self.ctx.metrics.observe(self.api, self._status, time.perf_counter() - self._t0)
        self._current = None
        transport = self.transport
        if transport is None or self._lost:
            return
        if not self._keep:
            self._lost = True
            transport.close()
        elif self._pending:
            if len(self._pending) == _MAX_PIPELINED:
                transport.resume_reading()
            self._start(self._pending.popleft())
        elif self.ctx.closing or self._read_error:
            self._lost = True
            transport.close()

    # --- shutdown ---------------------------------------------------------------------------
    def close_if_idle(self) -> None:
        """Shutdown helper: close a keep-alive connection that has no request in progress."""
        if self._current is None and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("request task failed", exc_info=task.exception())
