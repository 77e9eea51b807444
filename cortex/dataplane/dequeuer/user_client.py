"""The dequeuer's HTTP client to the user's server on 127.0.0.1 (aiohttp, kept-alive).

Every async request and batch is one POST to the user container, so this client's cost is
most of the dequeuer's CPU per request: aiohttp was measured several times cheaper per call
than httpx (DESIGN.md, Dependencies). One :class:`aiohttp.ClientSession` per process, over a
:class:`aiohttp.TCPConnector` holding at most ``connections`` sockets (the receive loop's
``workers`` plus one for the readiness probe), kept alive between calls.

Contract (what the handlers rely on):

* :meth:`UserClient.post` sends ``content`` to ``http://127.0.0.1:<port><path>`` with exactly
  the given headers plus the transport's own (Host, Content-Length, Accept, Accept-Encoding,
  User-Agent); no Content-Type is invented when none is given. No timeout: the user's work
  takes what it takes (the message's lease is renewed meanwhile).
* :meth:`UserClient.get` is the readiness probe's GET of a full URL, within ``timeout_s``.
* Any answer, whatever its status, is a :class:`UserResponse` with the whole body read
  (content-length or chunked). A connection that cannot be opened, breaks, or times out
  raises :class:`UserServerUnreachable` (its message is the underlying error's ``repr``).

The session must be closed (``async with``): aiohttp warns about an unclosed one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import aiohttp
from multidict import CIMultiDict

HOST = "127.0.0.1"
# aiohttp would label a bytes body application/octet-stream; the user must see what was sent
_SKIP_AUTO = frozenset({"Content-Type"})
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None)

Headers = Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class UserResponse:
    status_code: int
    content: bytes


class UserServerUnreachable(Exception):
    """The user's server could not be reached, or the connection broke before the answer."""


class UserPoster(Protocol):
    """What the message handlers need from a client (a fake in unit tests)."""

    async def post(self, path: str, *, content: bytes, headers: Headers) -> UserResponse: ...


class UserGetter(Protocol):
    """What the readiness probe needs from a client (a fake in unit tests)."""

    async def get(self, url: str, *, timeout_s: float, headers: Headers = ()) -> UserResponse: ...


class UserClient:
    """POSTs to the user's server on ``127.0.0.1:port``; see the module docstring."""

    def __init__(self, port: int, *, connections: int) -> None:
        self._base = f"http://{HOST}:{port}"
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> UserClient:
        connector = aiohttp.TCPConnector(limit=self._connections, use_dns_cache=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=_NO_TIMEOUT,
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def post(self, path: str, *, content: bytes, headers: Headers) -> UserResponse:
        return await self._call("POST", self._base + path, content, headers, _NO_TIMEOUT)

    async def get(self, url: str, *, timeout_s: float, headers: Headers = ()) -> UserResponse:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        return await self._call("GET", url, None, headers, timeout)

    async def _call(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: Headers,
        timeout: aiohttp.ClientTimeout,
    ) -> UserResponse:
        if self._session is None:
            raise RuntimeError("UserClient used outside 'async with'")
        try:
            async with self._session.request(
                method, url, data=content, headers=CIMultiDict(headers), timeout=timeout
            ) as response:
                return UserResponse(response.status, await response.read())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise UserServerUnreachable(repr(exc)) from exc
