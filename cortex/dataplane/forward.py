"""Realtime forwarding: a request to a replica over a pooled connection, the answer streamed back.

:class:`ForwardingConnection` adds to a client connection the hot path of the gateway:

1. The router picks the replica with the fewest in-flight (:meth:`_route`); with none Ready,
   :meth:`_no_replica` answers (503 here; the proxy may hold the request, see :mod:`.hold`).
2. The replica's limiter admits, queues or rejects (503 text ``pending request queue full``).
   Requests whose User-Agent starts with ``kube-probe/`` bypass it (SPEC 2.3).
3. The request (:func:`build_upstream_request`: hop-by-hop headers removed,
   ``X-Forwarded-For`` appended, body re-framed with Content-Length) goes out on a pooled
   keep-alive connection; the answer streams back as it arrives (the connection is the
   upstream's :class:`~cortex.dataplane.upstream.ResponseSink`): byte for byte when it is a
   plain Content-Length response, else re-chunked when the upstream gave no Content-Length,
   so server-sent events pass through unbuffered. Back-pressure from a slow client pauses
   reading from the upstream.
4. An upstream failure before the answer started is a 502 JSON ``api.upstream_error`` (after
   one resend on a fresh connection when a reused one was found closed); after it started the
   client connection is aborted.

The common case (a free slot and an idle pooled connection) runs synchronously inside the
parser callbacks, with no task and no future; only a queue wait or a new connection uses a task.
"""

from __future__ import annotations

import logging

from cortex.dataplane.answers import JSON, QUEUE_FULL_BODY, STATUS_LINES, TEXT, error_body
from cortex.dataplane.connection import ClientConnection, Request
from cortex.dataplane.limiter import QueueFullError
from cortex.dataplane.router import RealtimeTarget, Replica
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


def build_upstream_request(
    req: Request, path: bytes, client_ip: bytes, upstream_host: bytes
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


class ForwardingConnection(ClientConnection):
    """A client connection that forwards requests to replicas (see the module docstring)."""

    # --- asyncio.Protocol: back-pressure from the client ---------------------------------------
    def pause_writing(self) -> None:
        if self._conn is not None:
            self._conn.pause_reading()

    def resume_writing(self) -> None:
        if self._conn is not None:
            self._conn.resume_reading()

    # --- request ------------------------------------------------------------------------------
    def route(
        self, req: Request, target: RealtimeTarget, path: bytes, shadow: RealtimeTarget | None
    ) -> None:
        """Forward to a replica of ``target`` (and a copy to ``shadow``, answer dropped)."""
        self.api = target.api_name
        replica = self.ctx.router.pick_replica(target)
        if replica is None:
            self._no_replica(req, target, path, shadow)
            return
        self._data, probe = build_upstream_request(
            req, path, self.client_ip, replica.pool.host_header
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
            self.reply(503, TEXT, QUEUE_FULL_BODY)
            return
        if got:
            self._holding = True
            self._go()
        else:
            self.spawn(self._wait_then_send(replica))

    def _no_replica(
        self, req: Request, target: RealtimeTarget, path: bytes, shadow: RealtimeTarget | None
    ) -> None:
        """``target`` has no Ready replica: 503 ``api.unavailable``."""
        self.unavailable(target.api_name)

    def forward_to(self, pool: UpstreamPool, data: bytes) -> None:
        """Send ``data`` (a whole request) on ``pool`` and stream the answer back; no limiter."""
        self._data = data
        self._pool = pool
        self._go()

    def _go(self) -> None:
        assert self._pool is not None
        conn = self._pool.take()
        if conn is not None:
            self._send(conn)
        else:
            self.spawn(self._connect_then_send(self._pool))

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

    # --- ResponseSink -------------------------------------------------------------------------
    def on_response_head(self, status: int, headers: Headers, framed: bool) -> None:
        req = self._current
        assert req is not None
        self._status = status
        self._started = True
        no_body = req.method == b"HEAD" or status in (204, 304)
        parts = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        has_length = False
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                continue
            if lname == b"content-length":
                has_length = True
            parts += (name, b": ", value, b"\r\n")
        self._keep = req.keep_alive and not self.ctx.closing
        if not (no_body or has_length):
            if req.http10:
                self._keep = False
            else:
                self._chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
        parts.append(_connection_header(self._keep, req.http10))
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
            self.spawn(self._connect_then_send(self._pool, fresh=True))
            return
        if self._started:
            log.warning("upstream %s failed mid-response: %r", self.api, exc)
            self._release()
            if self.transport is not None:
                self.transport.abort()
            return
        self._upstream_error(exc)

    def _upstream_error(self, exc: BaseException | None) -> None:
        log.warning("upstream of %s failed: %r", self.api, exc)
        msg = f"the upstream of api {self.api} failed: {exc!r}"
        self.reply(502, JSON, error_body("api.upstream_error", msg))


def _connection_header(keep: bool, http10: bool) -> bytes:
    """The end of a forwarded head: a Connection header when the default does not hold."""
    if not keep:
        return b"Connection: close\r\n\r\n"
    return b"Connection: keep-alive\r\n\r\n" if http10 else b"\r\n"
