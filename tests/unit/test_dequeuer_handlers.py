"""The async and batch message handlers against a mock user server and an in-memory store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from multidict import CIMultiDict

from cortex.dataplane.dequeuer.async_handler import (
    AsyncHandler,
    forwarded_headers,
    judge_response,
)
from cortex.dataplane.dequeuer.batch_handler import BatchHandler
from cortex.dataplane.dequeuer.metrics import AsyncMetrics, BatchCounts
from cortex.dataplane.dequeuer.user_client import Headers, UserResponse, UserServerUnreachable
from cortex.dataplane.dequeuer.worker import Outcome, StopGuard
from cortex.queue import Received
from cortex.storage import ObjectStore, open_store, paths

API = "api"


@dataclass(frozen=True)
class Sent:
    """One request the handler sent to the fake user server."""

    path: str
    content: bytes
    headers: CIMultiDict[str]


Responder = Callable[[Sent], UserResponse]


class FakeUser:
    """A :class:`~cortex.dataplane.dequeuer.user_client.UserPoster` answering from a function."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder

    async def post(self, path: str, *, content: bytes, headers: Headers) -> UserResponse:
        return self._responder(Sent(path, content, CIMultiDict(headers)))

    async def __aenter__(self) -> FakeUser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _json(status: int, value: object) -> UserResponse:
    return UserResponse(status, json.dumps(value).encode())


def _message(body: bytes, receive_count: int = 1) -> Received:
    return Received(
        message_id=uuid.uuid4().hex,
        body=body,
        receipt="r",
        receive_count=receive_count,
        sent_at=0.0,
    )


@pytest.fixture
def store() -> ObjectStore:
    return open_store(f"memory://dequeuer-{uuid.uuid4().hex}")


def _client(responder: Responder) -> FakeUser:
    return FakeUser(responder)


def _submit(store: ObjectStore, request_id: str, payload: bytes, headers: object) -> None:
    store.put_json(paths.workload_headers_key(API, request_id), headers)
    store.put(paths.workload_payload_key(API, request_id), payload)
    store.put_json(paths.workload_status_key(API, request_id), paths.status_record("in_queue", 1))


@pytest.mark.parametrize(
    ("status", "body", "result", "reason"),
    [
        (200, b'{"a": 1}', {"a": 1}, None),
        (201, b"[1, 2]", [1, 2], None),
        (200, b'"text"', "text", None),
        (500, b"boom", None, "user server answered 500: boom"),
        (200, b"<html>", None, "user server answered non-JSON: <html>"),
        (404, b"x" * 300, None, "user server answered 404: " + "x" * 200),
    ],
)
def test_judge_response(status: int, body: bytes, result: object, reason: str | None) -> None:
    assert judge_response(status, body) == (result, reason)


def test_forwarded_headers_drop_hop_by_hop_and_add_the_request_id() -> None:
    stored = {
        "Content-Type": ["application/json"],
        "X-Multi": ["a", "b"],
        "Host": ["gateway:8889"],
        "Content-Length": ["12"],
        "X-Cortex-Request-ID": ["forged"],
    }
    assert forwarded_headers(stored, "id1") == [
        ("Content-Type", "application/json"),
        ("X-Multi", "a"),
        ("X-Multi", "b"),
        ("X-Cortex-Request-ID", "id1"),
    ]


class TestAsyncHandler:
    @pytest.fixture
    def seen(self) -> list[Sent]:
        return []

    async def test_completed_result_and_forwarded_request(
        self, store: ObjectStore, seen: list[Sent]
    ) -> None:
        def responder(request: Sent) -> UserResponse:
            seen.append(request)
            return _json(200, {"echo": json.loads(request.content)})

        _submit(store, "r1", b'{"x": 1}', {"Content-Type": ["application/json"], "X-A": ["1"]})
        metrics = AsyncMetrics()
        async with _client(responder) as client:
            handler = AsyncHandler(api_name=API, store=store, client=client, metrics=metrics)
            assert await handler.handle(_message(b"r1")) is Outcome.ACK
        assert store.get_json(paths.workload_result_key(API, "r1")) == {"echo": {"x": 1}}
        status = store.get_json(paths.workload_status_key(API, "r1"))
        assert status["status"] == "completed" and status["timestamp"] > 1
        assert not store.exists(paths.workload_payload_key(API, "r1"))
        (request,) = seen
        assert request.headers["X-A"] == "1"
        assert request.headers["X-Cortex-Request-ID"] == "r1"
        assert request.path == "/"
        assert metrics.requests.labels(status_code="200")._value.get() == 1

    @pytest.mark.parametrize(
        ("response", "reason"),
        [
            (UserResponse(500, b"kaput"), "user server answered 500: kaput"),
            (UserResponse(200, b"plain"), "user server answered non-JSON: plain"),
        ],
    )
    async def test_failed_with_reason(
        self, store: ObjectStore, response: UserResponse, reason: str
    ) -> None:
        _submit(store, "r2", b"{}", {})
        async with _client(lambda _: response) as client:
            handler = AsyncHandler(api_name=API, store=store, client=client)
            assert await handler.handle(_message(b"r2")) is Outcome.ACK
        status = store.get_json(paths.workload_status_key(API, "r2"))
        assert (status["status"], status["reason"]) == ("failed", reason)
        assert not store.exists(paths.workload_result_key(API, "r2"))
        assert not store.exists(paths.workload_payload_key(API, "r2"))

    async def test_connection_failure_is_failed(self, store: ObjectStore) -> None:
        def refuse(request: Sent) -> UserResponse:
            raise UserServerUnreachable("ConnectionRefusedError()")

        _submit(store, "r3", b"{}", {})
        async with _client(refuse) as client:
            await AsyncHandler(api_name=API, store=store, client=client).handle(_message(b"r3"))
        status = store.get_json(paths.workload_status_key(API, "r3"))
        assert status["status"] == "failed"
        assert status["reason"].startswith("user server unreachable")

    async def test_missing_payload_is_acked_without_touching_the_status(
        self, store: ObjectStore, seen: list[Sent]
    ) -> None:
        done = paths.status_record("completed", 5.0)
        store.put_json(paths.workload_status_key(API, "r4"), done)

        def responder(request: Sent) -> UserResponse:
            seen.append(request)
            return _json(200, {})

        async with _client(responder) as client:
            handler = AsyncHandler(api_name=API, store=store, client=client)
            assert await handler.handle(_message(b"r4")) is Outcome.ACK
        assert seen == []
        assert store.get_json(paths.workload_status_key(API, "r4")) == done


class TestBatchHandler:
    async def _handle(
        self, status: int, *, max_receive_count: int | None, receive_count: int = 1
    ) -> tuple[Outcome, BatchCounts, list[Sent]]:
        seen: list[Sent] = []

        def responder(request: Sent) -> UserResponse:
            seen.append(request)
            return _json(status, {})

        counts = BatchCounts()
        async with _client(responder) as client:
            handler = BatchHandler(
                job_id="job1", client=client, counts=counts, max_receive_count=max_receive_count
            )
            outcome = await handler.handle(_message(b"[1,2]", receive_count))
        return outcome, counts, seen

    async def test_success_counts_and_headers(self) -> None:
        outcome, counts, (request,) = await self._handle(200, max_receive_count=None)
        assert outcome is Outcome.ACK
        assert (counts.succeeded, counts.failed) == (1, 0)
        assert counts.time_sum_s > 0
        assert request.content == b"[1,2]"
        assert request.headers["X-Cortex-Job-ID"] == "job1"
        assert request.headers["Content-Type"] == "application/json"

    async def test_failure_without_dead_letter_queue_is_counted_and_acked(self) -> None:
        outcome, counts, _ = await self._handle(201, max_receive_count=None)
        assert outcome is Outcome.ACK
        assert (counts.succeeded, counts.failed, counts.time_sum_s) == (0, 1, 0.0)

    async def test_failure_with_dead_letter_queue_is_released_and_counted_on_last_try(
        self,
    ) -> None:
        outcome, counts, _ = await self._handle(500, max_receive_count=3, receive_count=2)
        assert outcome is Outcome.RELEASE
        assert counts.failed == 0  # it will be retried
        outcome, counts, _ = await self._handle(500, max_receive_count=3, receive_count=3)
        assert outcome is Outcome.RELEASE
        assert counts.failed == 1  # its next receive dead-letters it


def _refuse(request: Sent) -> UserResponse:
    raise UserServerUnreachable("ConnectionRefusedError()")


class TestStoppingInterruptsAttempts:
    """An attempt that fails because the replica is stopping (the user server was stopped
    under it) is released, neither counted nor failed, so it is delivered again."""

    async def _batch(self, guard: StopGuard, responder: Responder) -> tuple[Outcome, BatchCounts]:
        counts = BatchCounts()
        async with _client(responder) as client:
            handler = BatchHandler(
                job_id="j", client=client, counts=counts, max_receive_count=None, stop_guard=guard
            )
            return await handler.handle(_message(b"[1]")), counts

    async def test_batch_failing_while_stopping_is_released_uncounted(self) -> None:
        stopping = asyncio.Event()
        stopping.set()
        for responder in (_refuse, lambda _: UserResponse(503, b"")):
            outcome, counts = await self._batch(StopGuard(stopping), responder)
            assert outcome is Outcome.RELEASE
            assert (counts.succeeded, counts.failed) == (0, 0)

    async def test_unreachable_server_waits_briefly_for_the_stop_signal(self) -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stopping.set)
        outcome, counts = await self._batch(StopGuard(stopping, grace_s=5.0), _refuse)
        assert (outcome, counts.failed) == (Outcome.RELEASE, 0)

    async def test_without_a_stop_a_failure_still_counts(self) -> None:
        outcome, counts = await self._batch(StopGuard(asyncio.Event(), grace_s=0.01), _refuse)
        assert (outcome, counts.failed) == (Outcome.ACK, 1)
        answered = StopGuard(asyncio.Event(), grace_s=5.0)  # an answer does not wait
        outcome, counts = await self._batch(answered, lambda _: UserResponse(500, b""))
        assert (outcome, counts.failed) == (Outcome.ACK, 1)

    async def test_async_request_failing_while_stopping_goes_back_in_queue(
        self, store: ObjectStore
    ) -> None:
        stopping = asyncio.Event()
        stopping.set()
        _submit(store, "r5", b"{}", {})
        async with _client(_refuse) as client:
            handler = AsyncHandler(
                api_name=API, store=store, client=client, stop_guard=StopGuard(stopping)
            )
            assert await handler.handle(_message(b"r5")) is Outcome.RELEASE
        assert store.get_json(paths.workload_status_key(API, "r5"))["status"] == "in_queue"
        assert store.exists(paths.workload_payload_key(API, "r5"))
