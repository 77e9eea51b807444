"""Keep-alive HTTP/1.1 client connections to replicas, pooled per replica.

An :class:`UpstreamConnection` is an ``asyncio.Protocol`` driving an ``httptools`` response parser;
it pushes the response to a :class:`ResponseSink` as it arrives (head, body pieces, end), so the
gateway streams chunked and server-sent-event bodies without waiting for the whole body. After a
complete response that allows keep-alive the connection goes back to its :class:`UpstreamPool`
(LIFO, so the warmest connection is reused first); otherwise it is closed.

A failure is *retryable* when the connection had been used before and no byte of the response
arrived: the usual race with a server closing an idle keep-alive connection. The request was
not processed, so the caller may resend it once on a fresh connection (as Go's transport does).
"""

from __future__ import annotations

import asyncio
import re
from typing import Protocol, cast

import httptools

Headers = list[tuple[bytes, bytes]]


class ResponseSink(Protocol):
    """Receives one upstream response; every method is called on the event loop."""

    def on_response_head(self, status: int, headers: Headers, framed: bool) -> None:
        """Status and headers (reason phrases are not kept: the gateway writes the standard
        one); ``framed`` is False for a body delimited by connection close."""

    def on_response_body(self, data: bytes) -> None:
        """One piece of the (de-chunked) body."""

    def on_response_flush(self) -> None:
        """End of one read from the socket: a good moment to write out what was gathered."""

    def on_response_end(self) -> None:
        """The response is complete (the connection is already back in its pool or closed)."""

    def on_response_failed(self, exc: BaseException | None, retryable: bool) -> None:
        """The connection failed before the response was complete."""

    def on_response_raw_start(self, status: int) -> None:
        """Fast path: the response is forwarded byte for byte; the head is in the next raw."""

    def on_response_raw(self, data: bytes) -> None:
        """Fast path: bytes to forward unchanged (head and/or body)."""


class UpstreamConnection(asyncio.Protocol):
    """One client connection to a replica; sends one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._sink: ResponseSink | None = None
        self._head_only = False
        self._stale_parser = False
        self._got_bytes = False
        self._informational = False
        self._close_delimited = False
        self._framed = False
        self._headers: Headers = []
        self._raw_ok = False  # this request's response may go out byte for byte
        self._at_start = False  # no byte of this response seen yet
        self._raw_left = 0  # body bytes still expected on the fast path
        self._held = b""  # a head waiting for the first body bytes (fast path)

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self._raw_left:
            self._raw_body(data)
            return
        if self._at_start:
            self._at_start = False
            if self._raw_ok and self._raw_head(data):
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc, retryable=False)
            return
        sink = self._sink
        if sink is not None:
            sink.on_response_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        sink, self._sink = self._sink, None
        if sink is None:
            return
        if self._close_delimited:
            sink.on_response_end()
        else:
            sink.on_response_failed(exc, self.reused and not self._got_bytes)

    # --- fast path ----------------------------------------------------------------------------
    def _raw_head(self, data: bytes) -> bool:
        """Forward a plain response unchanged, without the parser, when the first read holds
        its whole head and it is HTTP/1.1, keep-alive, Content-Length framed and free of
        hop-by-hop headers (the usual answer of a model server). False: use the parser.

        A replica answers most requests with the same head, so the pool remembers the last
        plain head and its (status, Content-Length): a byte comparison then replaces the scan."""
        pool = self.pool
        known = pool.plain_head
        if known and data.startswith(known):
            status, length = pool.plain_verdict
            end = len(known) - 4
        else:
            verdict = _plain_head(data)
            if verdict is None:
                return False
            end, status, length = verdict
            pool.plain_head, pool.plain_verdict = data[: end + 4], (status, length)
        left = length - (len(data) - end - 4)
        sink = self._sink
        if left < 0 or sink is None:
            return False  # more than the body: let the parser reject it
        sink.on_response_raw_start(status)
        self._raw_left = left
        if left and len(data) == end + 4:
            self._held = data  # head alone (servers often write it apart): send it with the body
            return True
        sink.on_response_raw(data)
        if not left:
            self._complete(keep_alive=True)
        return True

    def _raw_body(self, data: bytes) -> None:
        left = self._raw_left - len(data)
        sink = self._sink
        if left < 0 or sink is None:
            self._raw_left = 0
            self._fail(ValueError("upstream sent more than its Content-Length"), retryable=False)
            return
        self._raw_left = left
        if self._held:
            data, self._held = self._held + data, b""
        sink.on_response_raw(data)
        if not left:
            self._complete(keep_alive=True)

    # --- httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(name) in (14, 17) and name.lower() in _FRAMING:
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and friends: skip, the real response follows
            self._informational = True
            self._headers = []
            self._framed = False
            return
        framed = self._framed or self._head_only or status in (204, 304)
        self._close_delimited = not framed
        sink = self._sink
        if sink is not None:
            sink.on_response_head(status, self._headers, framed)
        if self._head_only:
            # httptools cannot be told "no body follows"; finish here and use a fresh parser next.
            self._stale_parser = True
            self._complete(keep_alive=self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink.on_response_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._sink is not None:
            self._complete(keep_alive=self._parser.should_keep_alive())

    # --- use ----------------------------------------------------------------------------------
    def send(
        self, data: bytes, sink: ResponseSink, *, head_only: bool = False, raw_ok: bool = False
    ) -> None:
        """Write one whole request; the response goes to ``sink``. ``raw_ok``: the sink accepts
        a plain response byte for byte (see :meth:`_raw_head`)."""
        if self._stale_parser:
            self._parser = httptools.HttpResponseParser(self)
            self._stale_parser = False
        self._sink = sink
        self._head_only = head_only
        self._got_bytes = False
        self._close_delimited = False
        self._framed = False
        self._headers = []
        self._raw_ok = raw_ok and not head_only
        self._at_start = True
        self._raw_left = 0
        self._held = b""
        assert self.transport is not None
        self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection now, telling nobody (the caller gave up on the response)."""
        self._sink = None
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.discard(self)
            if self.transport is not None:
                self.transport.abort()

    def _complete(self, *, keep_alive: bool) -> None:
        sink, self._sink = self._sink, None
        self._close_delimited = False
        self.reused = True
        if keep_alive and not self.closed:
            self.pool.put(self)
        else:
            self.close()
        if sink is not None:
            sink.on_response_end()

    def _fail(self, exc: BaseException, *, retryable: bool) -> None:
        sink, self._sink = self._sink, None
        self.close()
        if sink is not None:
            sink.on_response_failed(exc, retryable)


_FRAMING = (b"content-length", b"transfer-encoding")  # lengths 14 and 17
_NOT_PLAIN = re.compile(
    rb"\r\n(?:connection|keep-alive|transfer-encoding|trailer|upgrade|te|proxy-[a-z-]*):"
)  # hop-by-hop headers: a response holding any of them takes the parser path


def _plain_head(data: bytes) -> tuple[int, int, int] | None:
    """(end of the head, status, Content-Length) when ``data`` starts with a whole plain head
    (see :meth:`UpstreamConnection._raw_head`), else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"HTTP/1.1 ") or not data[9:12].isdigit():
        return None
    status = int(data[9:12])
    head = data[: end + 2].lower()
    if status < 200 or status in (204, 304) or _NOT_PLAIN.search(head):
        return None
    i = head.find(b"\r\ncontent-length:")
    if i < 0 or head.find(b"\r\ncontent-length:", i + 2) >= 0:
        return None
    value = head[i + 17 : head.find(b"\r\n", i + 2)].strip()
    if not value.isdigit():
        return None
    return end, status, int(value)


class UpstreamPool:
    """Idle keep-alive connections to one replica (at most ``max_idle`` kept)."""

    def __init__(self, host: str, port: int, *, max_idle: int, connect_timeout_s: float = 30.0):
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}".encode()  # for requests that came without Host
        self._max_idle = max_idle
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[UpstreamConnection] = []
        self._closed = False
        self.plain_head = b""  # the last plain response head seen, and its (status, length)
        self.plain_verdict = (0, 0)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def take(self) -> UpstreamConnection | None:
        """An idle open connection, or None (then :meth:`connect`)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        """A new connection; raises OSError or TimeoutError when the replica cannot be reached."""
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
            self._connect_timeout_s,
        )
        return conn

    def put(self, conn: UpstreamConnection) -> None:
        if self._closed or len(self._idle) >= self._max_idle:
            conn.close()
        else:
            self._idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)

    def close(self) -> None:
        """Close idle connections now and those in use when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _DiscardSink:
    """Sink that throws the response away and resolves a future with the status (or None)."""

    def __init__(self, fut: asyncio.Future[int | None]) -> None:
        self._fut = fut
        self._status: int | None = None

    def on_response_head(self, status: int, headers: Headers, framed: bool) -> None:
        self._status = status

    def on_response_body(self, data: bytes) -> None:
        pass

    def on_response_flush(self) -> None:
        pass

    def on_response_end(self) -> None:
        if not self._fut.done():
            self._fut.set_result(self._status)

    def on_response_failed(self, exc: BaseException | None, retryable: bool) -> None:
        if not self._fut.done():
            self._fut.set_result(None)

    def on_response_raw_start(self, status: int) -> None:
        self._status = status

    def on_response_raw(self, data: bytes) -> None:
        pass


async def send_and_discard(
    pool: UpstreamPool, data: bytes, *, head_only: bool = False
) -> int | None:
    """Send one request and drop the answer (shadow traffic); the status, or None on failure.

    Cancelling it (e.g. on a timeout) aborts the connection."""
    conn = pool.take() or await pool.connect()
    fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    conn.send(data, _DiscardSink(fut), head_only=head_only)
    try:
        return await fut
    except asyncio.CancelledError:
        conn.abort()
        raise
