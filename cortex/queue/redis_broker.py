"""The cluster queue: named queues in one Redis (standalone, not Redis Cluster).

Every operation is one Lua script (:mod:`cortex.queue._redis_lua`), hence atomic and one round
trip: claims, dead-letter moves and receipt checks cannot interleave between clients. Visible
messages sit in a sorted set scored by send sequence (FIFO); received ones in a sorted set
scored by lease deadline; a claim first moves expired leases back to the visible set at their
original place. Times come from Redis's ``TIME``, so clients on other machines share one
clock. A receipt is ``"<message_id>.<receive_count>"``: valid until the next claim, the ack or
the dead-letter move. Long polls are asyncio waits between claims (:mod:`cortex.queue._poll`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from cortex.queue import _redis_lua as lua
from cortex.queue._poll import Wakeups, long_poll
from cortex.queue.base import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    QueueCounts,
    Received,
    check_attributes,
    check_name,
    check_receive,
    check_visibility,
)
from cortex.queue.errors import QueueError, QueueNotFoundError, ReceiptError

_SCRIPTS = ("CREATE", "SEND", "RECEIVE", "EXTEND", "RELEASE", "ACK", "COUNTS", "PURGE", "LIST")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _received(item: Sequence[Any]) -> Received:
    mid, body, receipt, count, sent_ms = item
    return Received(_text(mid), bytes(body), _text(receipt), int(count), int(sent_ms) / 1000)


class RedisBroker:
    """A :class:`~cortex.queue.base.QueueBroker` over redis.asyncio.

    ``url`` is ``redis://host:port/db`` (``rediss://`` for TLS); ``prefix`` namespaces the keys.
    """

    def __init__(self, url: str, *, prefix: str = "cxq:", poll_interval_s: float = 0.05) -> None:
        self.url = url
        self._prefix = prefix
        self._poll_interval_s = poll_interval_s
        self._wakeups = Wakeups()
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)
        self._scripts = {name: self._redis.register_script(getattr(lua, name)) for name in _SCRIPTS}

    async def _call(self, script: str, name: str, *args: str | int | bytes) -> Any:
        """Run one script on queue ``name``, mapping Redis errors to queue errors."""
        try:
            return await self._scripts[script](args=[self._prefix, name, *args])
        except ResponseError as exc:
            if "CXQ_NOQUEUE" in str(exc):
                raise QueueNotFoundError(f"queue {name!r} does not exist") from exc
            raise QueueError(f"redis queue {self.url}: {exc}") from exc
        except RedisError as exc:
            raise QueueError(f"redis queue {self.url}: {exc}") from exc

    # -- queues ---------------------------------------------------------------------------

    async def create_queue(
        self,
        name: str,
        *,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
    ) -> None:
        check_attributes(
            name,
            visibility_timeout_s=visibility_timeout_s,
            max_receive_count=max_receive_count,
            dead_letter_queue=dead_letter_queue,
        )
        max_rc = "" if max_receive_count is None else str(max_receive_count)
        await self._call("CREATE", name, _ms(visibility_timeout_s), max_rc, dead_letter_queue or "")

    async def delete_queue(self, name: str) -> bool:
        check_name(name)
        return bool(await self._call("PURGE", name, "1"))

    async def queue_exists(self, name: str) -> bool:
        try:
            return bool(await self._redis.exists(f"{self._prefix}{{{name}}}:meta"))
        except RedisError as exc:
            raise QueueError(f"redis queue {self.url}: {exc}") from exc

    async def list_queues(self) -> list[str]:
        try:
            names = await self._redis.smembers(f"{self._prefix}queues")
        except RedisError as exc:
            raise QueueError(f"redis queue {self.url}: {exc}") from exc
        return sorted(_text(n) for n in names)

    async def purge(self, name: str) -> None:
        await self._call("PURGE", name, "0")

    # -- messages -------------------------------------------------------------------------

    async def send(self, name: str, body: bytes) -> str:
        return (await self.send_batch(name, (body,)))[0]

    async def send_batch(self, name: str, bodies: Sequence[bytes]) -> list[str]:
        ids = [uuid.uuid4().hex for _ in bodies]
        if not ids:
            return ids
        args: list[str | bytes] = []
        for mid, body in zip(ids, bodies, strict=True):
            args += (mid, body)
        await self._call("SEND", name, *args)
        self._wakeups.notify(name)
        return ids

    async def receive(
        self,
        name: str,
        *,
        max_messages: int = 1,
        visibility_timeout_s: float | None = None,
        wait_s: float = 0.0,
    ) -> list[Received]:
        check_receive(max_messages, visibility_timeout_s, wait_s)
        vis = "" if visibility_timeout_s is None else _ms(visibility_timeout_s)

        async def claim() -> list[Received]:
            return [_received(i) for i in await self._call("RECEIVE", name, max_messages, vis)]

        if wait_s <= 0:
            return await claim()
        return await long_poll(
            claim,
            name=name,
            wait_s=wait_s,
            poll_interval_s=self._poll_interval_s,
            wakeups=self._wakeups,
        )

    async def extend(self, name: str, receipt: str, *, visibility_timeout_s: float) -> None:
        check_visibility(visibility_timeout_s)
        if not await self._call("EXTEND", name, receipt, _ms(visibility_timeout_s)):
            raise ReceiptError(f"receipt {receipt!r} of queue {name!r} no longer holds a lease")

    async def release(self, name: str, receipt: str) -> bool:
        released = bool(await self._call("RELEASE", name, receipt))
        if released:
            self._wakeups.notify(name)
        return released

    async def ack(self, name: str, receipt: str) -> bool:
        return bool(await self._call("ACK", name, receipt))

    async def counts(self, name: str) -> QueueCounts:
        visible, in_flight = await self._call("COUNTS", name)
        return QueueCounts(visible=int(visible), in_flight=int(in_flight))

    async def list_messages(self, name: str, *, limit: int = 100) -> list[Received]:
        return [_received(i) for i in await self._call("LIST", name, max(limit, 0))]

    async def close(self) -> None:
        await self._redis.aclose()
