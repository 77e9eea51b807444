"""An AsyncAPI's routes on a client connection: ``POST <endpoint>`` submits, ``GET
<endpoint>/<id>`` polls (the work is :class:`~cortex.dataplane.async_gateway.AsyncGateway`'s).

Other methods on those two paths: 405 JSON ``request.method_not_allowed`` with ``Allow``;
deeper paths: 404 JSON ``api.not_found``.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from cortex.dataplane.answers import JSON, error_body, not_found_body
from cortex.dataplane.async_gateway import Answer
from cortex.dataplane.connection import ClientConnection, Request
from cortex.dataplane.table import AsyncRoute


def answer_async(conn: ClientConnection, req: Request, route: AsyncRoute, sub: bytes) -> None:
    """Answer ``req`` for ``route``; ``sub`` is the path below the endpoint, with the query."""
    conn.api = route.api_name
    path = sub.split(b"?", 1)[0]
    gw = conn.ctx.async_gateway
    if path == b"/":
        if req.method != b"POST":
            _not_allowed(conn, req, b"POST")
            return
        conn.spawn(_answer(conn, gw.submit(route, req.headers, req.body)))
    elif path.count(b"/") == 1:
        if req.method not in (b"GET", b"HEAD"):
            _not_allowed(conn, req, b"GET, HEAD")
            return
        conn.spawn(_answer(conn, gw.poll(route, path[1:].decode("latin-1"))))
    else:
        conn.reply(404, JSON, not_found_body(req.url))


async def _answer(conn: ClientConnection, answer: Coroutine[Any, Any, Answer]) -> None:
    status, body = await answer
    conn.detach_task()
    conn.reply(status, JSON, body)


def _not_allowed(conn: ClientConnection, req: Request, allow: bytes) -> None:
    msg = f"method {req.method.decode('latin-1')} is not allowed"
    body = error_body("request.method_not_allowed", msg)
    conn.reply(405, JSON, body, extra=b"Allow: %b\r\n" % allow)
