"""A tiny ASGI app the integration tests deploy as a replica's container.

GET/POST /            -> {"replica", "version" ($APP_VERSION), "method", "path", "query", "body"}
GET /slow?s=0.5       -> sleeps, then answers like /
GET /stream?n=3       -> n chunks, 0.2 s apart
GET /healthz          -> 200 (503 while the file named by $APP_UNHEALTHY_FILE exists)
anything else         -> echoes like /
Environment: APP_RECORD_FILE (append each request's path to it), APP_FAIL_ALL=1 (answer 500 to
everything but /healthz), APP_DELAY_S (sleep before answering anything but /healthz),
APP_PLAIN_TEXT=1 (answer text/plain instead of JSON).
Run: python -m uvicorn echo_server:app --port $(CORTEX_PORT)
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

print(
    json.dumps({"event": "echo server started", "port": os.environ.get("CORTEX_PORT")}), flush=True
)


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send_json(send: Send, status: int, payload: object) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _stream(send: Send, n: int) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(n):
        await send(
            {"type": "http.response.body", "body": f"chunk {i}\n".encode(), "more_body": True}
        )
        await asyncio.sleep(0.2)
    await send({"type": "http.response.body", "body": b""})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    body = await _read_body(receive)
    if path == "/healthz":
        unhealthy = os.environ.get("APP_UNHEALTHY_FILE", "")
        ok = not (unhealthy and os.path.exists(unhealthy))
        await _send_json(send, 200 if ok else 503, {"ok": ok})
        return
    if os.environ.get("APP_RECORD_FILE"):
        with open(os.environ["APP_RECORD_FILE"], "a") as record:
            record.write(path + "\n")
    await asyncio.sleep(float(os.environ.get("APP_DELAY_S", "0")))
    if os.environ.get("APP_FAIL_ALL") == "1":
        await _send_json(send, 500, {"error": "APP_FAIL_ALL is set"})
        return
    if os.environ.get("APP_PLAIN_TEXT") == "1":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain text, not JSON"})
        return
    if path == "/stream":
        await _stream(send, int(query.get("n", ["3"])[0]))
        return
    if path == "/slow":
        await asyncio.sleep(float(query.get("s", ["0.5"])[0]))
    if path == "/fail":
        await _send_json(send, 500, {"error": "asked to fail"})
        return
    await _send_json(
        send,
        200,
        {
            "replica": os.environ.get("CORTEX_PORT"),
            "version": os.environ.get("APP_VERSION", ""),
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode(),
            "body": body.decode(errors="replace"),
        },
    )
