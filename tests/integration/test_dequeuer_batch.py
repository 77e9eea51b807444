"""BatchAPI workers end to end: real dequeuer processes, a SQLite queue file, a local store."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cortex.dataplane.dequeuer import DequeuerMode, DequeuerSettings
from cortex.queue import QueueBroker, open_broker
from cortex.spec.kinds import Kind
from cortex.storage import ObjectStore, open_store, paths
from tests.integration.dequeuer_support import (
    DequeuerProcess,
    UserApp,
    dequeuers,
    eventually,
    user_server,
)

pytestmark = pytest.mark.integration

API = "batchapi"
JOB = "job1"
QUEUE = f"batch-{API}-{JOB}"
DLQ = f"{QUEUE}-dlq"
COMPLETE = f"{QUEUE}-complete"


async def _enqueue(broker: QueueBroker, batches: list[list[dict[str, Any]]]) -> None:
    """What the enqueuer does: the batches, then ONE completion message."""
    await broker.send_batch(QUEUE, [json.dumps(b).encode() for b in batches])
    await broker.create_queue(COMPLETE, visibility_timeout_s=60)
    await broker.send(COMPLETE, b'{"message":"job_complete"}')


def _settings(tmp_path: Path, port: int, **changes: Any) -> DequeuerSettings:
    base = DequeuerSettings(
        mode=DequeuerMode.BATCH,
        queue_url=f"sqlite:///{tmp_path}/queues.db",
        queue_name=QUEUE,
        storage_url=str(tmp_path / "storage"),
        api_name=API,
        api_kind=Kind.BATCH_API,
        user_port=port,
        job_id=JOB,
        visibility_timeout_s=3,
        receive_wait_s=0.1,
        probe_period_s=0.1,
        empty_checks=3,
        metrics_period_s=0.2,
    )
    return replace(base, **changes)


def _metric_totals(store: ObjectStore) -> dict[str, float]:
    key = paths.job_worker_metrics_key(API, JOB, "x")
    folder = key.rsplit("/", 1)[0]
    totals = {"succeeded": 0.0, "failed": 0.0, "time_sum_s": 0.0, "files": 0.0}
    for k in store.list(folder):
        got = store.get_json(k)
        for name in ("succeeded", "failed", "time_sum_s"):
            totals[name] += got[name]
        totals["files"] += 1
    return totals


async def test_three_workers_process_every_batch_and_complete_once(tmp_path: Path) -> None:
    app = UserApp()
    broker = open_broker(f"sqlite:///{tmp_path}/queues.db")
    await broker.create_queue(QUEUE, visibility_timeout_s=60)
    batches = [[{"id": i * 5 + j} for j in range(5)] for i in range(40)]
    await _enqueue(broker, batches)
    store = open_store(str(tmp_path / "storage"))
    async with user_server(app) as port:
        settings = _settings(tmp_path, port)
        procs = [DequeuerProcess(settings, tmp_path / f"w{i}.log") for i in range(3)]
        with dequeuers(*procs):
            codes = [await p.wait(60) for p in procs]
    assert codes == [0, 0, 0]
    assert sorted(app.items()) == list(range(200))
    assert len(app.hook_calls) == 1
    hook = app.hook_calls[0]
    assert hook.headers["x-cortex-job-id"] == JOB
    assert json.loads(hook.body) == {"message": "job_complete"}
    assert all(s.headers["x-cortex-job-id"] == JOB for s in app.seen)
    totals = _metric_totals(store)
    assert (totals["succeeded"], totals["failed"], totals["files"]) == (40, 0, 3)
    assert totals["time_sum_s"] > 0
    assert (await broker.counts(QUEUE)).total == 0
    assert (await broker.counts(COMPLETE)).total == 0
    await broker.close()


async def test_failing_batches_end_dead_lettered_after_max_receive_count(tmp_path: Path) -> None:
    app = UserApp()
    broker = open_broker(f"sqlite:///{tmp_path}/queues.db")
    await broker.create_queue(
        QUEUE, visibility_timeout_s=60, max_receive_count=2, dead_letter_queue=DLQ
    )
    batches = [[{"id": i, "fail": i % 4 == 0}] for i in range(12)]  # 0, 4, 8 fail
    await _enqueue(broker, batches)
    store = open_store(str(tmp_path / "storage"))
    async with user_server(app) as port:
        settings = _settings(tmp_path, port, max_receive_count=2)
        procs = [DequeuerProcess(settings, tmp_path / f"w{i}.log") for i in range(2)]
        with dequeuers(*procs):
            codes = [await p.wait(60) for p in procs]
    assert codes == [0, 0]
    assert sorted(app.items()) == [i for i in range(12) if i % 4]
    attempts = [json.loads(s.body)[0]["id"] for s in app.seen if json.loads(s.body)[0]["fail"]]
    assert sorted(attempts) == [0, 0, 4, 4, 8, 8]  # max_receive_count attempts each
    dead = await broker.list_messages(DLQ)
    assert sorted(json.loads(m.body)[0]["id"] for m in dead) == [0, 4, 8]
    totals = _metric_totals(store)
    assert (totals["succeeded"], totals["failed"]) == (9, 3)
    assert len(app.hook_calls) == 1
    await broker.close()


async def test_without_dead_letter_queue_a_failed_batch_is_counted_once(tmp_path: Path) -> None:
    app = UserApp()
    broker = open_broker(f"sqlite:///{tmp_path}/queues.db")
    await broker.create_queue(QUEUE, visibility_timeout_s=60)
    await _enqueue(broker, [[{"id": 1, "fail": True}], [{"id": 2}]])
    store = open_store(str(tmp_path / "storage"))
    async with user_server(app) as port:
        with dequeuers(DequeuerProcess(_settings(tmp_path, port), tmp_path / "w.log")) as (p,):
            assert await p.wait(30) == 0
    assert len(app.seen) == 2  # no retry
    totals = _metric_totals(store)
    assert (totals["succeeded"], totals["failed"]) == (1, 1)
    assert len(app.hook_calls) == 1
    await broker.close()


@pytest.mark.slow
async def test_batch_of_a_killed_worker_is_delivered_again(tmp_path: Path) -> None:
    app = UserApp()
    broker = open_broker(f"sqlite:///{tmp_path}/queues.db")
    await broker.create_queue(QUEUE, visibility_timeout_s=60)
    await _enqueue(broker, [[{"id": 0, "sleep": 0.5}], *([{"id": i}] for i in range(1, 10))])
    store = open_store(str(tmp_path / "storage"))
    async with user_server(app) as port:
        settings = _settings(tmp_path, port, visibility_timeout_s=1.0)
        with dequeuers(DequeuerProcess(settings, tmp_path / "a.log")) as (a,):
            await eventually(lambda: app.in_flight == 1, 15)  # batch 0 is being worked on
            a.signal(signal.SIGKILL)
            await a.wait(5)
        procs = [DequeuerProcess(settings, tmp_path / f"w{i}.log") for i in range(2)]
        with dequeuers(*procs):
            codes = [await p.wait(60) for p in procs]
    assert codes == [0, 0]
    # batch 0 ran twice: the killed worker's call (answered to nobody) and the redelivery
    assert sorted(app.items()) == [0, *range(10)]
    assert len(app.hook_calls) == 1
    assert _metric_totals(store)["succeeded"] == 10
    await broker.close()
