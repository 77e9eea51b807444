"""The gateway's HTTP/1.1 server: a raw ``asyncio.Protocol`` on httptools that forwards requests.

Per client connection, requests are answered one at a time, in order (pipelined requests wait
in a short queue). For each request:

1. ``/_cortex/healthz`` and ``/_cortex/metrics`` are answered locally.
2. The router finds the API (404 JSON if none); a TrafficSplitter picks a target and maybe a
   shadow; the router picks the replica with the fewest in-flight. With no Ready replica, an
   API scaled to zero (or waking from zero) is held by the activator (:mod:`.activator`) until
   one appears; otherwise the answer is 503 JSON ``api.unavailable``.
3. The replica's limiter admits, queues or rejects (503 text ``pending request queue full``).
   Requests whose User-Agent starts with ``kube-probe/`` bypass it (SPEC 2.3).
4. The request (hop-by-hop headers removed, ``X-Forwarded-For`` appended, body re-framed with
   Content-Length: the body is read whole before forwarding) goes out on a pooled keep-alive
   connection; the response streams back as it arrives (re-chunked when the upstream gave no
   Content-Length), so server-sent events pass through unbuffered. Back-pressure from a slow
   client pauses reading from the upstream.
5. AsyncAPI routes are answered by :class:`~cortex.dataplane.async_gateway.AsyncGateway`
   (submit and poll); BatchAPI/TaskAPI routes are forwarded like a replica request, to the
   operator's ``/batch/<api>`` or ``/tasks/<api>`` (query string kept, response streamed).
6. An upstream failure before the response started is a 502 JSON ``api.upstream_error``; after
   it started the client connection is aborted. A client that goes away cancels the wait or
   aborts the upstream connection, and its limiter slot is released.

The common case (a free slot and an idle pooled connection) runs synchronously inside the
parser callbacks, with no task and no future; only a queue wait or a new connection uses a task.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

from cortex.dataplane.activator import Activator
from cortex.dataplane.async_gateway import Answer, AsyncGateway
from cortex.dataplane.limiter import QueueFullError
from cortex.dataplane.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cortex.dataplane.metrics import GatewayMetrics
from cortex.dataplane.router import RealtimeTarget, Replica, Router, SplitterTarget
from cortex.dataplane.shadow import ShadowSender
from cortex.dataplane.table import AsyncRoute, JobRoute
from cortex.dataplane.upstream import Headers, UpstreamConnection, UpstreamPool

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_STRIP_REQUEST = HOP_BY_HOP | {b"content-length", b"x-forwarded-for", b"expect"}
_PLAIN_CONNECTION_TOKENS = frozenset({b"keep-alive", b"close", b""})
_MAX_PIPELINED = 16
QUEUE_FULL_BODY = b"pending request queue full\n"
RETRY_AFTER = b"Retry-After: 5\r\n"
_JOB_PATHS = {"BatchAPI": b"/batch/", "TaskAPI": b"/tasks/"}


@dataclass
class ProxyContext:
    """State shared by every client connection of one gateway."""

    router: Router
    metrics: GatewayMetrics
    shadow: ShadowSender
    activator: Activator
    async_gateway: AsyncGateway
    operator_pool: UpstreamPool | None = None  # for job routes; None: no operator configured
    connections: set[ProxyProtocol] = field(default_factory=set)
    closing: bool = False  # shutting down: answer what is in flight, keep nothing alive

    def busy_count(self) -> int:
        return sum(1 for c in self.connections if c.busy)


class _Request:
    __slots__ = ("body", "has_body", "headers", "http10", "keep_alive", "method", "url")

    def __init__(self, method: bytes, url: bytes, headers: Headers, body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.has_body = False
        self.keep_alive = True
        self.http10 = False


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()


def build_upstream_request(
    req: _Request, path: bytes, client_ip: bytes, upstream_host: bytes
) -> tuple[bytes, bool]:
    """The bytes to send upstream and whether the request bypasses the limiter (kube-probe).

    Drops hop-by-hop headers (and those the Connection header names), appends the client to
    X-Forwarded-For, and frames the (whole) body with Content-Length."""
    parts = [req.method, b" ", path, b" HTTP/1.1\r\n"]
    xff = b""
    has_host = probe = False
    named: set[bytes] = set()  # header names listed in Connection: also hop-by-hop
    for name, value in req.headers:
        lname = name.lower()
        if lname in _STRIP_REQUEST:
            if lname == b"x-forwarded-for":
                xff = value + b", "
            elif lname == b"connection":
                named.update(t.strip().lower() for t in value.split(b","))
            elif lname == b"content-length" or lname == b"transfer-encoding":
                req.has_body = True
            continue
        if lname == b"host":
            has_host = True
        elif lname == b"user-agent":
            probe = value.startswith(b"kube-probe/")
        parts += (name, b": ", value, b"\r\n")
    if named - _PLAIN_CONNECTION_TOKENS:  # rare: drop the named headers too, then redo
        req.headers = [(n, v) for n, v in req.headers if n.lower() not in named | {b"connection"}]
        return build_upstream_request(req, path, client_ip, upstream_host)
    if not has_host:
        parts += (b"Host: ", upstream_host, b"\r\n")
    parts += (b"X-Forwarded-For: ", xff, client_ip, b"\r\n")
    if req.has_body or req.body:
        parts += (b"Content-Length: ", str(len(req.body)).encode(), b"\r\n")
    parts += (b"\r\n", req.body)
    return b"".join(parts), probe


class ProxyProtocol(asyncio.Protocol):
    """One client connection (see the module docstring for the request flow)."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._client_ip = b"127.0.0.1"
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._pending: deque[_Request] = deque()
        self._lost = False  # the connection is gone or closing: no further requests on it
        self._read_error = False  # the parser failed: answer what is in progress, then close
        self._reset_response()
        self._current: _Request | None = None

    def _reset_response(self) -> None:
        self._replica: Replica | None = None
        self._pool: UpstreamPool | None = None
        self._holding = False
        self._conn: UpstreamConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._data = b""
        self._api = ""
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
            self._client_ip = str(peer[0]).encode()
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

    def pause_writing(self) -> None:
        if self._conn is not None:
            self._conn.pause_reading()

    def resume_writing(self) -> None:
        if self._conn is not None:
            self._conn.resume_reading()

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
        req = _Request(self._parser.get_method(), self._url, self._headers, body)
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

    # --- request flow -----------------------------------------------------------------------
    def _start(self, req: _Request) -> None:
        self._reset_response()
        self._current = req
        self._t0 = time.perf_counter()
        if req.url.startswith(b"/_cortex/"):
            self._reserved(req)
            return
        m = self.ctx.router.match(req.url)
        if m is None:
            path = req.url.split(b"?", 1)[0].decode("latin-1")
            msg = f"no API is deployed at {path}"
            self._local(404, b"application/json", error_body("api.not_found", msg))
            return
        target = m.target
        if type(target) is RealtimeTarget:
            self._route(req, target, m.upstream_path, None)
        elif isinstance(target, SplitterTarget):
            chosen, shadow = self.ctx.router.pick_split(target)
            if chosen is None:
                self._api = target.api_name
                self._unavailable(target.api_name)
                return
            self._route(req, chosen, m.upstream_path, shadow)
        elif isinstance(target, AsyncRoute):
            self._async(req, target, m.upstream_path)
        elif isinstance(target, JobRoute):
            self._job(req, target, m.upstream_path)

    def _route(
        self, req: _Request, target: RealtimeTarget, path: bytes, shadow: RealtimeTarget | None
    ) -> None:
        self._api = target.api_name
        replica = self.ctx.router.pick_replica(target)
        if replica is None:
            if self.ctx.activator.should_hold(target.route):
                self._hold(req, target, path, shadow)
            else:
                self._unavailable(target.api_name)
            return
        self._data, probe = build_upstream_request(
            req, path, self._client_ip, replica.pool.host_header
        )
        if shadow is not None:
            self.ctx.shadow.submit(shadow, self._data, head_only=req.method == b"HEAD")
        self._replica = replica
        self._pool = replica.pool
        if probe:
            self._go()
            return
        try:
            got = replica.limiter.try_acquire()
        except QueueFullError:
            self._local(503, b"text/plain; charset=utf-8", QUEUE_FULL_BODY)
            return
        if got:
            self._holding = True
            self._go()
        else:
            self._spawn(self._wait_then_send(replica))

    def _go(self) -> None:
        assert self._pool is not None
        conn = self._pool.take()
        if conn is not None:
            self._send(conn)
        else:
            self._spawn(self._connect_then_send(self._pool))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_task_error)
        self._task = task

    async def _wait_then_send(self, replica: Replica) -> None:
        await replica.limiter.acquire()
        self._holding = True
        await self._connect_then_send(replica.pool)

    async def _connect_then_send(self, pool: UpstreamPool, *, fresh: bool = False) -> None:
        try:
            conn = (None if fresh else pool.take()) or await pool.connect()
        except (OSError, TimeoutError) as exc:
            self._task = None
            self._upstream_error(exc)
            return
        self._task = None
        self._send(conn)

    def _send(self, conn: UpstreamConnection) -> None:
        req = self._current
        assert req is not None
        self._conn = conn
        head_only = req.method == b"HEAD"
        conn.send(self._data, self, head_only=head_only, raw_ok=req.keep_alive and not req.http10)

    # --- activator ------------------------------------------------------------------------------
    def _hold(
        self, req: _Request, target: RealtimeTarget, path: bytes, shadow: RealtimeTarget | None
    ) -> None:
        try:
            self.ctx.activator.enter(target.route)
        except QueueFullError:
            self._local(503, b"text/plain; charset=utf-8", QUEUE_FULL_BODY)
            return
        self._spawn(self._held_then_route(req, target.api_name, path, shadow))

    async def _held_then_route(
        self, req: _Request, api_name: str, path: bytes, shadow: RealtimeTarget | None
    ) -> None:
        """Wait (held) until the API has a Ready replica, then route as usual."""
        activator = self.ctx.activator
        target: RealtimeTarget | None = None
        try:
            deadline = activator.deadline()
            while target is None or not target.replicas:
                await activator.wait(api_name, deadline)
                target = self.ctx.router.target_by_name(api_name)
                if target is None:
                    break
        except TimeoutError:
            self._task = None
            msg = f"api {api_name} has no ready replica after {activator.timeout_s:g}s"
            body = error_body("api.unavailable", msg)
            self._local(503, b"application/json", body, extra=RETRY_AFTER)
            return
        finally:
            activator.leave(api_name)
        self._task = None
        if target is None:
            self._unavailable(api_name)
        else:
            self._route(req, target, path, shadow)

    # --- AsyncAPI and job routes -----------------------------------------------------------------
    def _async(self, req: _Request, route: AsyncRoute, sub: bytes) -> None:
        self._api = route.api_name
        path = sub.split(b"?", 1)[0]
        gw = self.ctx.async_gateway
        if path == b"/":
            if req.method != b"POST":
                self._not_allowed(b"POST")
                return
            self._spawn(self._answer(gw.submit(route, req.headers, req.body)))
        elif path.count(b"/") == 1:
            if req.method not in (b"GET", b"HEAD"):
                self._not_allowed(b"GET, HEAD")
                return
            self._spawn(self._answer(gw.poll(route, path[1:].decode("latin-1"))))
        else:
            msg = f"no API is deployed at {req.url.split(b'?', 1)[0].decode('latin-1')}"
            self._local(404, b"application/json", error_body("api.not_found", msg))

    async def _answer(self, answer: Coroutine[Any, Any, Answer]) -> None:
        status, body = await answer
        self._task = None
        self._local(status, b"application/json", body)

    def _not_allowed(self, allow: bytes) -> None:
        msg = f"method {self._current.method.decode() if self._current else ''} is not allowed"
        body = error_body("request.method_not_allowed", msg)
        self._local(405, b"application/json", body, extra=b"Allow: %b\r\n" % allow)

    def _job(self, req: _Request, route: JobRoute, sub: bytes) -> None:
        """Forward to the operator's ``/batch/<api>`` or ``/tasks/<api>`` (query kept)."""
        self._api = route.api_name
        pool = self.ctx.operator_pool
        prefix = _JOB_PATHS.get(route.kind)
        if pool is None or prefix is None:
            msg = f"api {route.api_name} cannot take jobs: no operator is configured"
            self._local(503, b"application/json", error_body("api.unavailable", msg))
            return
        query = sub[1:]  # sub is "/" plus the query string, if any
        path = prefix + route.api_name.encode() + query
        self._data, _ = build_upstream_request(req, path, self._client_ip, pool.host_header)
        self._pool = pool
        self._go()

    # --- ResponseSink -------------------------------------------------------------------------
    def on_response_head(self, status: int, headers: Headers, framed: bool) -> None:
        req = self._current
        assert req is not None
        self._status = status
        self._started = True
        no_body = req.method == b"HEAD" or status in (204, 304)
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        has_length = False
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                continue
            if lname == b"content-length":
                has_length = True
            parts += (name, b": ", value, b"\r\n")
        keep = req.keep_alive and not self.ctx.closing
        if not (no_body or has_length):
            if req.http10:
                keep = False
            else:
                self._chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
        if not keep:
            parts.append(b"Connection: close\r\n")
        elif req.http10:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self._keep = keep
        self._head = b"".join(parts)

    def on_response_raw_start(self, status: int) -> None:
        self._status = status
        self._started = True
        self._keep = not self.ctx.closing

    def on_response_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def on_response_body(self, data: bytes) -> None:
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self._head:
            data = self._head + data
            self._head = b""
        assert self.transport is not None
        self.transport.write(data)

    def on_response_flush(self) -> None:
        if self._head and self.transport is not None:
            self.transport.write(self._head)
            self._head = b""

    def on_response_end(self) -> None:
        self._conn = None
        tail = self._head + (b"0\r\n\r\n" if self._chunked else b"")
        if tail and self.transport is not None:
            self.transport.write(tail)
        self._finish()

    def on_response_failed(self, exc: BaseException | None, retryable: bool) -> None:
        self._conn = None
        if retryable and not self._retried and self._pool is not None:
            self._retried = True
            self._spawn(self._connect_then_send(self._pool, fresh=True))
            return
        if self._started:
            log.warning("upstream %s failed mid-response: %r", self._api, exc)
            self._release()
            if self.transport is not None:
                self.transport.abort()
            return
        self._upstream_error(exc)

    # --- local answers and the end of a request -------------------------------------------------
    def _upstream_error(self, exc: BaseException | None) -> None:
        log.warning("upstream of %s failed: %r", self._api, exc)
        msg = f"the upstream of api {self._api} failed: {exc!r}"
        self._local(502, b"application/json", error_body("api.upstream_error", msg))

    def _unavailable(self, api_name: str) -> None:
        msg = f"api {api_name} has no ready replica"
        self._local(503, b"application/json", error_body("api.unavailable", msg))

    def _reserved(self, req: _Request) -> None:
        path = req.url.split(b"?", 1)[0]
        if path == b"/_cortex/healthz":
            self._local(200, b"text/plain; charset=utf-8", b"ok")
        elif path == b"/_cortex/metrics":
            self._local(200, METRICS_CONTENT_TYPE.encode(), self.ctx.metrics.render())
        else:
            msg = f"no API is deployed at {path.decode('latin-1')}"
            self._local(404, b"application/json", error_body("api.not_found", msg))

    def _local(self, status: int, content_type: bytes, body: bytes, extra: bytes = b"") -> None:
        req = self._current
        assert req is not None and self.transport is not None
        self._status = status
        self._keep = req.keep_alive and not self.ctx.closing
        head = _STATUS_LINES[status] + b"Content-Type: %b\r\nContent-Length: %d\r\n" % (
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
        self._release()
        if self._api:
            self.ctx.metrics.observe(self._api, self._status, time.perf_counter() - self._t0)
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


_STATUS_LINES = {
    int(st): b"HTTP/1.1 %d %b\r\n" % (st, st.phrase.encode()) for st in http.HTTPStatus
}
