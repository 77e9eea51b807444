"""Helpers of the dequeuer integration tests: a scripted user server and dequeuer processes.

The user server runs in the test's event loop (uvicorn on 127.0.0.1, port 0) so tests read
what it saw directly; dequeuers run in-process (``run_dequeuer``) or as real
``python -m cortex.dataplane.dequeuer`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from cortex.dataplane.dequeuer.settings import DequeuerSettings
from cortex.storage import ObjectStore, paths

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class UserApp:
    """The user's server. ``POST /`` with an async payload ``{"action": ...}``: ``ok`` (answers
    ``{"echo": payload}``), ``fail`` (500 ``kaput``), ``text`` (200 text/plain), ``sleep``
    (sleeps ``s`` seconds first). A batch (a JSON array of ``{"id", "fail"?, "sleep"?}``):
    sleeps the longest ``sleep``, then 500 if any item fails, else 200.
    ``POST /on-job-complete``: counted."""

    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    hook_calls: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:  # repeated headers joined, as HTTP allows
            name = key.decode().lower()
            headers[name] = (
                f"{headers[name]}, {value.decode()}" if name in headers else value.decode()
            )
        seen = Seen(scope["path"], headers, body)
        if scope["path"] == "/on-job-complete":
            self.hook_calls.append(seen)
            await _answer(send, 200, b"{}")
            return
        self.seen.append(seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, answer, ctype = await _behave(json.loads(body))
        finally:
            self.in_flight -= 1
        await _answer(send, status, answer, ctype)

    def items(self) -> list[int]:
        """Item ids of every batch this server answered 200."""
        out: list[int] = []
        for s in self.seen:
            batch = json.loads(s.body)
            if isinstance(batch, list) and not any(i.get("fail") for i in batch):
                out.extend(i["id"] for i in batch)
        return out


async def _behave(payload: Any) -> tuple[int, bytes, str]:
    if isinstance(payload, list):
        await asyncio.sleep(max((item.get("sleep", 0) for item in payload), default=0))
        failed = any(item.get("fail") for item in payload)
        return (500 if failed else 200), b"{}", "application/json"
    action = payload.get("action", "ok")
    if action == "sleep":
        await asyncio.sleep(payload["s"])
    if action == "fail":
        return 500, b"kaput", "text/plain"
    if action == "text":
        return 200, b"just text", "text/plain"
    return 200, json.dumps({"echo": payload}).encode(), "application/json"


async def _answer(send: Send, status: int, body: bytes, ctype: str = "application/json") -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def user_server(app: UserApp) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 (a free port, yielded) until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stalls (40 ms)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, lifespan="off", ws="none", http="h11", log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="user server")
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


def submit(store: ObjectStore, api: str, request_id: str, payload: Any) -> None:
    """What the async gateway stores for a request (SPEC 4.2), minus the enqueue."""
    headers = {"Content-Type": ["application/json"], "X-Custom": ["one", "two"]}
    store.put_json(paths.workload_headers_key(api, request_id), headers)
    store.put(paths.workload_payload_key(api, request_id), json.dumps(payload).encode())
    store.put_json(paths.workload_status_key(api, request_id), paths.status_record("in_queue", 0))


class DequeuerProcess:
    """``python -m cortex.dataplane.dequeuer`` with ``settings`` as its environment."""

    def __init__(self, settings: DequeuerSettings, log_path: Path) -> None:
        env = {
            **os.environ,
            **settings.to_env(),
            "CORTEX_LOG_LEVEL": os.environ.get("DEQ_TEST_LOG_LEVEL", "INFO"),
        }
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cortex.dataplane.dequeuer"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait(self, timeout_s: float) -> int:
        """Exit code, polling without blocking the loop (the user server lives on it)."""
        for _ in range(int(timeout_s / 0.05)):
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        raise TimeoutError(f"dequeuer still running; log:\n{self.log_path.read_text()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


@contextlib.contextmanager
def dequeuers(*procs: DequeuerProcess) -> Iterator[tuple[DequeuerProcess, ...]]:
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout_s)
