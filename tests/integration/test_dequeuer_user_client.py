"""The dequeuer's aiohttp client against a raw HTTP/1.1 server on 127.0.0.1 (exact bytes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from cortex.dataplane.dequeuer.user_client import UserClient, UserServerUnreachable

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    line: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class RawServer:
    """Answers each request with the next scripted raw response (None: never answers, until
    the client hangs up); ``hang_up`` closes the connection after each answer."""

    answers: list[bytes | None]
    hang_up: bool = False
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                self.seen.append(await _read_request(reader))
                answer = self.answers.pop(0)
                if answer is None:
                    await reader.read()  # until the client hangs up
                    break
                writer.write(answer)
                await writer.drain()
                if self.hang_up:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Seen:
    head = await reader.readuntil(b"\r\n\r\n")
    line, *rest = head.decode("latin-1").split("\r\n")
    headers = [(name, value) for name, _, value in (h.partition(": ") for h in rest if h)]
    size = sum(int(v) for k, v in headers if k.lower() == "content-length")
    return Seen(line, headers, await reader.readexactly(size))


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    state = RawServer([])
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        server.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_bodies_headers_and_one_kept_alive_connection(raw: RawServer) -> None:
    raw.answers = [
        b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"a": 1}',
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nkap\r\n2\r\nut\r\n0\r\n\r\n",
    ]
    async with UserClient(raw.port, connections=2) as client:
        first = await client.post(
            "/", content=b"[1]", headers=[("X-Multi", "a"), ("X-Multi", "b"), ("X-Id", "r1")]
        )
        second = await client.post(
            "/on-job-complete", content=b"{}", headers=[("Content-Type", "application/json")]
        )
    assert (first.status_code, first.content) == (200, b'{"a": 1}')
    assert (second.status_code, second.content) == (500, b"kaput")
    assert raw.connections == 1
    one, two = raw.seen
    assert (one.line, one.body) == ("POST / HTTP/1.1", b"[1]")
    assert [v for k, v in one.headers if k == "X-Multi"] == ["a", "b"]
    assert ("X-Id", "r1") in one.headers
    assert ("Host", f"127.0.0.1:{raw.port}") in one.headers
    assert not any(k.lower() == "content-type" for k, _ in one.headers)  # none invented
    assert two.line == "POST /on-job-complete HTTP/1.1"
    assert ("Content-Type", "application/json") in two.headers


async def test_refused_and_broken_connections_are_unreachable(raw: RawServer) -> None:
    async with UserClient(_free_port(), connections=1) as client:
        with pytest.raises(UserServerUnreachable, match="Connect"):
            await client.post("/", content=b"{}", headers=())
    raw.answers, raw.hang_up = [b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"cut'], True
    async with UserClient(raw.port, connections=1) as client:
        with pytest.raises(UserServerUnreachable):
            await client.post("/", content=b"{}", headers=())


async def test_probe_get_times_out_and_post_has_no_timeout(raw: RawServer) -> None:
    raw.answers = [None]
    async with UserClient(raw.port, connections=2) as client:
        with pytest.raises(UserServerUnreachable, match="Timeout"):
            await client.get(f"http://127.0.0.1:{raw.port}/ready", timeout_s=0.2)
        raw.answers = [None]
        post = asyncio.create_task(client.post("/", content=b"{}", headers=()))
        await asyncio.sleep(0.3)
        assert not post.done()  # still waiting on the user's work
        post.cancel()
        with pytest.raises(asyncio.CancelledError):
            await post
    assert raw.seen[0].line == "GET /ready HTTP/1.1"


async def test_use_outside_async_with_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await UserClient(1, connections=1).post("/", content=b"", headers=())
