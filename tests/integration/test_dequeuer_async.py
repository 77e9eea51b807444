"""AsyncAPI dequeuing end to end: a real user server, a SQLite queue file, a local store."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from cortex.dataplane.dequeuer import DequeuerMode, DequeuerSettings
from cortex.dataplane.dequeuer.runner import run_dequeuer
from cortex.queue import QueueBroker, open_broker
from cortex.spec.kinds import Kind
from cortex.storage import ObjectStore, open_store, paths
from tests.integration.dequeuer_support import (
    DequeuerProcess,
    UserApp,
    dequeuers,
    eventually,
    submit,
    user_server,
)

pytestmark = pytest.mark.integration

API = "api"
QUEUE = "async-api-1"


@dataclass
class Env:
    app: UserApp
    broker: QueueBroker
    store: ObjectStore
    settings: DequeuerSettings
    tmp: Path

    async def submit(self, request_id: str, payload: object) -> None:
        submit(self.store, API, request_id, payload)
        await self.broker.send(QUEUE, request_id.encode())

    def status(self, request_id: str) -> dict[str, object]:
        got: dict[str, object] = self.store.get_json(paths.workload_status_key(API, request_id))
        return got

    def result(self, request_id: str) -> object:
        return self.store.get_json(paths.workload_result_key(API, request_id))

    def process(self, name: str, **changes: Any) -> DequeuerProcess:
        return DequeuerProcess(replace(self.settings, **changes), self.tmp / f"{name}.log")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    app = UserApp()
    queue_url = f"sqlite:///{tmp_path}/queues.db"
    broker = open_broker(queue_url, poll_interval_s=0.01)
    await broker.create_queue(QUEUE, visibility_timeout_s=60)
    store = open_store(str(tmp_path / "storage"))
    async with user_server(app) as port:
        settings = DequeuerSettings(
            mode=DequeuerMode.ASYNC,
            queue_url=queue_url,
            queue_name=QUEUE,
            storage_url=str(tmp_path / "storage"),
            api_name=API,
            api_kind=Kind.ASYNC_API,
            user_port=port,
            workers=2,
            visibility_timeout_s=5,
            receive_wait_s=0.1,
            probe_period_s=0.1,
            drain_timeout_s=5,
        )
        yield Env(app, broker, store, settings, tmp_path)
    await broker.close()


@pytest.fixture
async def running(env: Env) -> AsyncIterator[Env]:
    """``env`` with an in-process dequeuer running (3 workers)."""
    stopping = asyncio.Event()
    settings = replace(env.settings, workers=3)
    task = asyncio.create_task(run_dequeuer(settings, stopping=stopping))
    yield env
    stopping.set()
    assert await asyncio.wait_for(task, 10) == 0


async def test_results_failures_and_forwarded_headers(running: Env) -> None:
    env = running
    await env.submit("ok1", {"action": "ok", "n": 1})
    await env.submit("fail1", {"action": "fail"})
    await env.submit("text1", {"action": "text"})
    done = ("completed", "failed")
    await eventually(
        lambda: all(env.status(r)["status"] in done for r in ("ok1", "fail1", "text1"))
    )

    assert env.status("ok1")["status"] == "completed"
    assert env.result("ok1") == {"echo": {"action": "ok", "n": 1}}
    assert env.status("fail1")["reason"] == "user server answered 500: kaput"
    assert env.status("text1")["reason"] == "user server answered non-JSON: just text"

    by_id = {s.headers["x-cortex-request-id"]: s for s in env.app.seen}
    assert set(by_id) == {"ok1", "fail1", "text1"}
    headers = by_id["ok1"].headers
    assert headers["content-type"] == "application/json"
    assert headers["x-custom"] == "one, two"
    assert by_id["ok1"].path == "/"
    await queue_empty(env.broker)  # acked after the payload is deleted
    for request_id in ("ok1", "fail1", "text1"):
        assert not env.store.exists(paths.workload_payload_key(API, request_id))


async def test_runs_workers_requests_at_once(running: Env) -> None:
    env = running
    for i in range(6):
        await env.submit(f"r{i}", {"action": "sleep", "s": 0.4})
    await eventually(lambda: all(env.status(f"r{i}")["status"] == "completed" for i in range(6)))
    assert env.app.max_in_flight == 3


async def test_waits_for_the_user_server_before_receiving(env: Env, tmp_path: Path) -> None:
    # a port nobody listens on: the default TCP probe never succeeds, nothing is received
    settings = replace(env.settings, user_port=_free_port())
    stopping = asyncio.Event()
    await env.submit("early", {"action": "ok"})
    task = asyncio.create_task(run_dequeuer(settings, stopping=stopping))
    await asyncio.sleep(0.5)
    assert (await env.broker.counts(QUEUE)).visible == 1
    assert env.status("early")["status"] == "in_queue"
    stopping.set()
    assert await asyncio.wait_for(task, 5) == 0


async def test_lease_renewed_while_a_slow_request_runs(env: Env) -> None:
    stopping = asyncio.Event()
    settings = replace(env.settings, visibility_timeout_s=0.3, workers=2)
    task = asyncio.create_task(run_dequeuer(settings, stopping=stopping))
    await env.submit("slow", {"action": "sleep", "s": 1.5})
    await eventually(lambda: env.app.in_flight == 1)
    await eventually(lambda: env.status("slow")["status"] == "completed", 5)
    stopping.set()
    assert await asyncio.wait_for(task, 5) == 0
    # with a free worker slot and a 0.3 s lease, a lapsed lease would have meant a second call
    assert len(env.app.seen) == 1


@pytest.mark.slow
async def test_request_of_a_killed_dequeuer_is_completed_by_another(env: Env) -> None:
    await env.submit("k1", {"action": "sleep", "s": 1.0})
    with dequeuers(env.process("a", visibility_timeout_s=1.0)) as (a,):
        await eventually(lambda: env.app.in_flight == 1, 15)
        a.signal(signal.SIGKILL)
        await a.wait(5)
    assert env.status("k1")["status"] == "in_progress"
    with dequeuers(env.process("b", visibility_timeout_s=1.0)) as (b,):
        await eventually(lambda: env.status("k1")["status"] == "completed", 20)
        b.signal(signal.SIGTERM)
        assert await b.wait(10) == 0
    assert env.result("k1") == {"echo": {"action": "sleep", "s": 1.0}}
    assert [s.headers["x-cortex-request-id"] for s in env.app.seen] == ["k1", "k1"]
    await queue_empty(env.broker)


@pytest.mark.slow
async def test_sigterm_finishes_in_flight_requests_then_exits(env: Env) -> None:
    await env.submit("d1", {"action": "sleep", "s": 1.0})
    with dequeuers(env.process("a")) as (a,):
        await eventually(lambda: env.app.in_flight == 1, 15)
        a.signal(signal.SIGTERM)
        assert await a.wait(10) == 0
    assert env.status("d1")["status"] == "completed"
    assert any("draining" in line["message"] for line in a.log_lines())


@pytest.mark.slow
async def test_sigterm_releases_what_outlives_the_grace(env: Env) -> None:
    await env.submit("d2", {"action": "sleep", "s": 30})
    with dequeuers(env.process("a", drain_timeout_s=0.3)) as (a,):
        await eventually(lambda: env.app.in_flight == 1, 15)
        a.signal(signal.SIGTERM)
        assert await a.wait(5) == 0
    counts = await env.broker.counts(QUEUE)
    assert (counts.visible, counts.in_flight) == (1, 0)  # another replica can take it at once
    assert env.status("d2")["status"] == "in_progress"


async def queue_empty(broker: QueueBroker) -> None:
    """The acks land just after the statuses: wait for them."""
    for _ in range(100):
        if (await broker.counts(QUEUE)).total == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"queue not empty: {await broker.counts(QUEUE)}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
