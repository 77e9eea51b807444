"""AsyncAPI submit and poll through the gateway, with a real SQLite queue and a local store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from cortex.dataplane.gateway import Gateway
from cortex.dataplane.table import AsyncRoute, RouteTable
from cortex.queue import QueueBroker, open_broker
from cortex.storage import ObjectStore, open_store, paths
from tests.integration.test_gateway_support import run_gateway

pytestmark = pytest.mark.integration

QUEUE = "async-q-123"
TABLE = RouteTable(1, async_routes=(AsyncRoute("q", "/q", QUEUE),))


def _urls(tmp_path: Path) -> dict[str, str]:
    return {
        "queue_url": f"sqlite:///{tmp_path}/queues.db",
        "storage_url": str(tmp_path / "storage"),
    }


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[QueueBroker]:
    b = open_broker(f"sqlite:///{tmp_path}/queues.db")
    await b.create_queue(QUEUE)
    yield b
    await b.close()


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return open_store(str(tmp_path / "storage"))


@pytest.fixture
async def gw(tmp_path: Path, broker: QueueBroker) -> AsyncIterator[Gateway]:
    urls = {
        "queue_url": f"sqlite:///{tmp_path}/queues.db",
        "storage_url": str(tmp_path / "storage"),
    }
    async with run_gateway(TABLE, **urls) as g:
        yield g


async def test_submit_stores_marks_in_queue_and_enqueues(
    gw: Gateway, broker: QueueBroker, store: ObjectStore
) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(
            f"http://127.0.0.1:{gw.port}/q",
            content=b'{"x": 1}',
            headers={"content-type": "application/json", "x-custom": "v"},
        )
        assert r.status_code == 200
        rid = r.json()["id"]
        assert uuid.UUID(rid).version == 7
        headers = store.get_json(paths.workload_headers_key("q", rid))
        assert headers["Content-Type"] == ["application/json"] and headers["X-Custom"] == ["v"]
        assert "Host" not in headers and "Content-Length" not in headers
        assert store.get(paths.workload_payload_key("q", rid)) == b'{"x": 1}'
        assert store.get_json(paths.workload_status_key("q", rid))["status"] == "in_queue"
        msgs = await broker.receive(QUEUE)
        assert [m.body for m in msgs] == [rid.encode()]
        poll = await c.get(f"http://127.0.0.1:{gw.port}/q/{rid}")
        assert poll.status_code == 200
        assert poll.json() == {"id": rid, "status": "in_queue"}


async def test_poll_completed_failed_and_unknown(gw: Gateway, store: ObjectStore) -> None:
    base = f"http://127.0.0.1:{gw.port}/q"
    async with httpx.AsyncClient() as c:
        done = (await c.post(base, content=b"a")).json()["id"]
        bad = (await c.post(base, content=b"b")).json()["id"]
        store.put_json(paths.workload_result_key("q", done), [1, "two"])  # any JSON value
        store.put_json(paths.workload_status_key("q", done), paths.status_record("completed", 1))
        failed = {**paths.status_record("failed", 1), "reason": "user server answered 500"}
        store.put_json(paths.workload_status_key("q", bad), failed)
        r = await c.get(f"{base}/{done}")
        assert r.status_code == 200
        body = r.json()
        assert (body["id"], body["status"], body["result"]) == (done, "completed", [1, "two"])
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        r = await c.get(f"{base}/{bad}")
        assert r.json() == {"id": bad, "status": "failed", "reason": "user server answered 500"}
        r = await c.get(f"{base}/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "async.not_found"
        assert (await c.get(f"{base}/..")).status_code == 404


async def test_poll_in_progress_failed_without_reason_and_invalid_status(
    gw: Gateway, store: ObjectStore
) -> None:
    base = f"http://127.0.0.1:{gw.port}/q"
    async with httpx.AsyncClient() as c:
        ids = [(await c.post(base, content=b"x")).json()["id"] for _ in range(3)]
        for rid, status in zip(ids, ("in_progress", "failed", "exploded"), strict=True):
            store.put_json(paths.workload_status_key("q", rid), paths.status_record(status, 1))
        assert (await c.get(f"{base}/{ids[0]}")).json() == {"id": ids[0], "status": "in_progress"}
        assert (await c.get(f"{base}/{ids[1]}")).json() == {"id": ids[1], "status": "failed"}
        r = await c.get(f"{base}/{ids[2]}")
        assert r.status_code == 500
        assert "invalid workload status" in r.json()["error"]["message"]


async def test_methods_paths_and_empty_body(gw: Gateway, broker: QueueBroker) -> None:
    base = f"http://127.0.0.1:{gw.port}/q"
    async with httpx.AsyncClient() as c:
        r = await c.get(base)
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert (await c.post(f"{base}/abc")).status_code == 405
        assert (await c.get(f"{base}/a/b")).status_code == 404
        ids = [(await c.post(base)).json()["id"] for _ in range(3)]  # empty bodies are accepted
    assert ids == sorted(ids) and len(set(ids)) == 3  # time-sortable, unique
    assert (await broker.counts(QUEUE)).visible == 3


async def test_missing_queue_answers_503_and_keeps_nothing(
    tmp_path: Path, store: ObjectStore
) -> None:
    table = RouteTable(1, async_routes=(AsyncRoute("q", "/q", "not-created"),))
    urls = {
        "queue_url": f"sqlite:///{tmp_path}/queues.db",
        "storage_url": str(tmp_path / "storage"),
    }
    async with run_gateway(table, **urls) as gw, httpx.AsyncClient() as c:
        r = await c.post(f"http://127.0.0.1:{gw.port}/q", content=b"x")
    assert r.status_code == 503 and r.json()["error"]["code"] == "api.unavailable"
    assert store.list(paths.workloads_prefix("q")) == []


async def test_no_storage_configured_answers_503() -> None:
    async with run_gateway(TABLE) as gw, httpx.AsyncClient() as c:
        r = await c.post(f"http://127.0.0.1:{gw.port}/q", content=b"x")
        assert r.status_code == 503
        assert (await c.get(f"http://127.0.0.1:{gw.port}/q/x")).status_code == 503
