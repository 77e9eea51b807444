"""Helpers for the gateway integration tests: a real upstream (uvicorn, port 0), raw servers that
misbehave, a gateway in-process, and a tiny raw HTTP/1.1 client for keep-alive checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from cortex.dataplane.gateway import Gateway
from cortex.dataplane.settings import GatewaySettings
from cortex.dataplane.table import RealtimeRoute, RouteTable, SplitTarget, SplitterRoute, Upstream

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The whole request body of an ASGI request."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


class UpstreamApp:
    """ASGI app: ``/echo...`` answers what it got; ``/stream`` sends a chunk, then waits for
    ``release`` before the second; ``/hang`` never answers; ``/fail`` answers 500;
    ``/status/<n>`` answers n with no body. ``mode`` "hang" or "fail" does that on every path."""

    def __init__(self, name: str = "up", *, mode: str = "") -> None:
        self.name = name
        self.mode = mode
        self.release = asyncio.Event()
        self.hits = 0
        self.peers: set[tuple[str, int]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        self.peers.add(tuple(scope["client"]))
        body = await read_body(receive)
        path: str = f"/{self.mode}" if self.mode else scope["path"]
        if path == "/stream":
            await self._stream(send)
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif path == "/fail":
            await _reply(send, 500, b"boom")
        elif path.startswith("/status/"):
            await send({"type": "http.response.start", "status": int(path[8:]), "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await self._echo(scope, body, send)

    async def _echo(self, scope: Scope, body: bytes, send: Send) -> None:
        data = {
            "upstream": self.name,
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body": body.decode(),
        }
        await _reply(send, 200, json.dumps(data).encode(), b"application/json")

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        await self.release.wait()
        await send({"type": "http.response.body", "body": b"second"})


async def _reply(send: Send, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def run_upstream(app: UpstreamApp) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1:0; yields the port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 5)


@asynccontextmanager
async def run_raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A raw TCP server (for upstreams that misbehave at the socket level); every connection's
    writer is closed when its handler ends, however it ends."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def realtime(
    name: str,
    ports: list[int],
    *,
    endpoint: str | None = None,
    max_concurrency: int = 8,
    max_queue_length: int = 8,
) -> RealtimeRoute:
    ups = tuple(Upstream(f"{name}-{i}", "127.0.0.1", p) for i, p in enumerate(ports))
    return RealtimeRoute(
        api_name=name,
        endpoint=endpoint or f"/{name}",
        max_concurrency=max_concurrency,
        max_queue_length=max_queue_length,
        upstreams=ups,
    )


def splitter(name: str, targets: list[tuple[str, int, bool]]) -> SplitterRoute:
    return SplitterRoute(
        api_name=name,
        endpoint=f"/{name}",
        targets=tuple(SplitTarget(n, w, s) for n, w, s in targets),
    )


@asynccontextmanager
async def run_gateway(table: RouteTable, **settings: Any) -> AsyncIterator[Gateway]:
    """The gateway in-process on a free port, no operator; stopped afterwards."""
    gw = Gateway(GatewaySettings(port=0, **settings), table=table)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop(drain_timeout_s=1.0)


async def raw_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send one request on an open connection and read a Content-Length response."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


class FakeOperator:
    """ASGI stand-in for the operator routes the gateway calls:

    * ``POST /internal/gateway/sync``: records the body, answers ``table`` (after a short wait
      when the gateway already has its version: a short long poll);
    * ``POST /internal/awaken/<api>``: records the api and headers, answers ``{"requested": 1}``
      (or ``awaken_status``);
    * anything under ``/batch/`` or ``/tasks/``: echoes method, path, query, body and headers
      as JSON (status ``job_status``), sent in two body pieces (a streamed response).
    """

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.syncs: list[dict[str, Any]] = []
        self.awakened: list[tuple[str, dict[str, str]]] = []
        self.awaken_status = 200
        self.job_status = 200
        self.jobs: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path: str = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if path == "/internal/gateway/sync":
            await self._sync(json.loads(body), send)
        elif path.startswith("/internal/awaken/"):
            self.awakened.append((path.rsplit("/", 1)[1], headers))
            out = json.dumps({"requested": 1}).encode()
            await _reply(send, self.awaken_status, out, b"application/json")
        else:
            await self._job(scope, headers, body, send)

    async def _sync(self, req: dict[str, Any], send: Send) -> None:
        self.syncs.append(req)
        if req["version"] == self.table.version:
            await asyncio.sleep(0.05)
        out = json.dumps(self.table.to_json()).encode()
        await _reply(send, 200, out, b"application/json")

    async def _job(self, scope: Scope, headers: dict[str, str], body: bytes, send: Send) -> None:
        record = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "body": body.decode(),
            "headers": headers,
        }
        self.jobs.append(record)
        data = json.dumps(record).encode()
        hdrs = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.job_status, "headers": hdrs})
        half = len(data) // 2
        await send({"type": "http.response.body", "body": data[:half], "more_body": True})
        await send({"type": "http.response.body", "body": data[half:]})


async def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``cond`` every 10 ms until it holds (fails the test after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)
