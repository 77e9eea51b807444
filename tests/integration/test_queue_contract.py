"""The queue contract (cortex.queue.base), run against every broker.

Each test runs on the embedded SQLite broker (a file under tmp_path) and on the Redis broker
(a real ``redis-server`` on a free loopback port; skipped only when scripts/ensure-redis cannot
provide a binary). Leases are a few hundred milliseconds so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from cortex.queue import (
    QueueBroker,
    QueueConfigError,
    QueueCounts,
    QueueNotFoundError,
    ReceiptError,
    open_broker,
)
from cortex.queue.redis_broker import RedisBroker
from tests.integration.redis_server import REPO_ROOT, find_redis_server, running_redis_server

pytestmark = pytest.mark.integration

LEASE_S = 0.3
MakeBroker = Callable[[], QueueBroker]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server: scripts/ensure-redis could not provide one")
    with running_redis_server(binary, tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
async def make_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeBroker]:
    """A factory of brokers on one store (a fresh file, or a fresh key prefix in Redis)."""
    opened: list[QueueBroker] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"t{uuid.uuid4().hex[:8]}:"

        def make() -> QueueBroker:
            opened.append(RedisBroker(url, prefix=prefix, poll_interval_s=0.02))
            return opened[-1]
    else:

        def make() -> QueueBroker:
            opened.append(open_broker(f"sqlite:///{tmp_path}/q.db", poll_interval_s=0.02))
            return opened[-1]

    yield make
    for broker in opened:
        await broker.close()


@pytest.fixture
async def broker(make_broker: MakeBroker) -> QueueBroker:
    b = make_broker()
    await b.create_queue("q", visibility_timeout_s=LEASE_S)
    return b


async def test_fifo_order_and_batches(broker: QueueBroker) -> None:
    first = await broker.send("q", b"m0")
    rest = await broker.send_batch("q", [b"m1", b"m2", b"m3"])
    assert await broker.send_batch("q", []) == []
    ids = [first, *rest]
    assert len(set(ids)) == 4
    got = await broker.receive("q", max_messages=3)
    assert [m.body for m in got] == [b"m0", b"m1", b"m2"]
    assert [m.message_id for m in got] == ids[:3]
    assert all(m.receive_count == 1 for m in got)
    assert abs(got[0].sent_at - time.time()) < 5
    assert [m.body for m in await broker.receive("q", max_messages=10)] == [b"m3"]
    assert await broker.receive("q") == []


async def test_visibility_expiry_redelivers_with_count_plus_one(broker: QueueBroker) -> None:
    await broker.send_batch("q", [b"a", b"b"])
    [a] = await broker.receive("q")
    await asyncio.sleep(LEASE_S + 0.1)
    # The expired message goes back to its place: before b.
    again = await broker.receive("q", max_messages=2)
    assert [m.body for m in again] == [b"a", b"b"]
    assert again[0].message_id == a.message_id
    assert again[0].receive_count == 2
    assert again[0].receipt != a.receipt
    assert await broker.ack("q", a.receipt) is False  # the lease moved on
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=2)


async def test_receive_visibility_override(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    await broker.receive("q", visibility_timeout_s=0.05)
    await asyncio.sleep(0.15)
    [m] = await broker.receive("q", visibility_timeout_s=5)
    assert m.receive_count == 2
    await asyncio.sleep(LEASE_S + 0.1)
    assert await broker.receive("q") == []


async def test_extend_keeps_message_hidden(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    [m] = await broker.receive("q")
    await broker.extend("q", m.receipt, visibility_timeout_s=2.0)
    await asyncio.sleep(LEASE_S + 0.1)
    assert await broker.receive("q") == []
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=1)
    await broker.extend("q", m.receipt, visibility_timeout_s=0)
    [again] = await broker.receive("q")
    assert again.receive_count == 2


async def test_extend_with_stale_receipt_raises(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    [m] = await broker.receive("q", visibility_timeout_s=0.05)
    await asyncio.sleep(0.15)
    [again] = await broker.receive("q")
    with pytest.raises(ReceiptError):
        await broker.extend("q", m.receipt, visibility_timeout_s=10)
    with pytest.raises(ReceiptError):
        await broker.extend("q", "not-a-receipt", visibility_timeout_s=10)
    await broker.extend("q", again.receipt, visibility_timeout_s=10)
    assert await broker.ack("q", again.receipt) is True
    with pytest.raises(ReceiptError):
        await broker.extend("q", again.receipt, visibility_timeout_s=10)


async def test_ack_deletes(broker: QueueBroker) -> None:
    await broker.send_batch("q", [b"a", b"b"])
    [a] = await broker.receive("q")
    assert await broker.ack("q", a.receipt) is True
    assert await broker.ack("q", a.receipt) is False
    assert await broker.ack("q", "garbage") is False
    assert await broker.counts("q") == QueueCounts(visible=1, in_flight=0)
    await asyncio.sleep(LEASE_S + 0.1)
    assert [m.body for m in await broker.receive("q", max_messages=5)] == [b"b"]


async def test_ack_after_expiry_before_redelivery_still_deletes(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    [m] = await broker.receive("q", visibility_timeout_s=0.05)
    await asyncio.sleep(0.15)
    assert await broker.ack("q", m.receipt) is True
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=0)


async def test_release_makes_visible_now_and_counts_attempt(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    [m] = await broker.receive("q", visibility_timeout_s=30)
    assert await broker.release("q", m.receipt) is True
    assert await broker.counts("q") == QueueCounts(visible=1, in_flight=0)
    [again] = await broker.receive("q")
    assert again.receive_count == 2
    assert await broker.release("q", m.receipt) is False


async def test_dead_letter_after_max_receive_count(broker: QueueBroker) -> None:
    await broker.create_queue(
        "work", visibility_timeout_s=LEASE_S, max_receive_count=2, dead_letter_queue="work-dlq"
    )
    assert await broker.queue_exists("work-dlq")
    mid = await broker.send("work", b"poison")
    for attempt in (1, 2):
        [m] = await broker.receive("work")
        assert m.receive_count == attempt
        assert await broker.release("work", m.receipt)
    assert await broker.receive("work") == []
    assert await broker.counts("work") == QueueCounts(visible=0, in_flight=0)
    assert await broker.counts("work-dlq") == QueueCounts(visible=1, in_flight=0)
    [dead] = await broker.list_messages("work-dlq")
    assert (dead.message_id, dead.body, dead.receive_count) == (mid, b"poison", 2)
    assert await broker.release("work", m.receipt) is False


async def test_dead_letter_skips_to_next_message(broker: QueueBroker) -> None:
    await broker.create_queue("work", max_receive_count=1, dead_letter_queue="dlq")
    await broker.send("work", b"a")
    [a] = await broker.receive("work")
    await broker.release("work", a.receipt)
    await broker.send_batch("work", [b"b", b"c"])
    got = await broker.receive("work", max_messages=2)
    assert [m.body for m in got] == [b"b", b"c"]
    assert [m.body for m in await broker.list_messages("dlq")] == [b"a"]
    [from_dlq] = await broker.receive("dlq")
    assert from_dlq.body == b"a"


async def test_expired_lease_counts_toward_dead_lettering(broker: QueueBroker) -> None:
    await broker.create_queue(
        "work", visibility_timeout_s=0.05, max_receive_count=1, dead_letter_queue="dlq"
    )
    await broker.send("work", b"a")
    await broker.receive("work")
    await asyncio.sleep(0.15)
    assert await broker.receive("work") == []
    assert await broker.counts("dlq") == QueueCounts(visible=1, in_flight=0)


async def test_counts_and_peek(broker: QueueBroker) -> None:
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=0)
    await broker.send_batch("q", [b"a", b"b", b"c"])
    await broker.receive("q", max_messages=2)
    assert await broker.counts("q") == QueueCounts(visible=1, in_flight=2)
    peek = await broker.list_messages("q")
    assert [(m.body, m.receive_count, m.receipt) for m in peek] == [
        (b"a", 1, ""),
        (b"b", 1, ""),
        (b"c", 0, ""),
    ]
    assert [m.body for m in await broker.list_messages("q", limit=1)] == [b"a"]
    assert await broker.counts("q") == QueueCounts(visible=1, in_flight=2)
    await asyncio.sleep(LEASE_S + 0.1)
    assert await broker.counts("q") == QueueCounts(visible=3, in_flight=0)


async def test_purge_keeps_queue(broker: QueueBroker) -> None:
    await broker.send_batch("q", [b"a", b"b"])
    [m] = await broker.receive("q")
    await broker.purge("q")
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=0)
    assert await broker.ack("q", m.receipt) is False
    assert await broker.queue_exists("q")
    await broker.send("q", b"c")
    assert [m.body for m in await broker.receive("q")] == [b"c"]


async def test_delete_queue_and_missing_queue_errors(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    assert await broker.delete_queue("q") is True
    assert await broker.delete_queue("q") is False
    assert not await broker.queue_exists("q")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: broker.send("q", b"x"),
        lambda: broker.send_batch("q", [b"x"]),
        lambda: broker.receive("q"),
        lambda: broker.receive("q", wait_s=0.05),
        lambda: broker.ack("q", "1.1"),
        lambda: broker.release("q", "1.1"),
        lambda: broker.extend("q", "1.1", visibility_timeout_s=1),
        lambda: broker.counts("q"),
        lambda: broker.purge("q"),
        lambda: broker.list_messages("q"),
    ]
    for call in calls:
        with pytest.raises(QueueNotFoundError):
            await call()
    # Re-created, it starts empty.
    await broker.create_queue("q")
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=0)


async def test_create_queue_is_idempotent_and_updates_attributes(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    await broker.create_queue("q", visibility_timeout_s=0.05)
    assert await broker.counts("q") == QueueCounts(visible=1, in_flight=0)
    await broker.receive("q")
    await asyncio.sleep(0.15)
    assert len(await broker.receive("q")) == 1
    await broker.create_queue("other")
    assert {"q", "other"} <= set(await broker.list_queues())


async def test_invalid_arguments(broker: QueueBroker) -> None:
    with pytest.raises(QueueConfigError):
        await broker.create_queue("bad name!")
    with pytest.raises(QueueConfigError):
        await broker.create_queue("w", max_receive_count=3)
    with pytest.raises(QueueConfigError):
        await broker.create_queue("w", max_receive_count=0, dead_letter_queue="d")
    with pytest.raises(QueueConfigError):
        await broker.create_queue("w", max_receive_count=1, dead_letter_queue="w")
    with pytest.raises(QueueConfigError):
        await broker.receive("q", max_messages=0)
    with pytest.raises(QueueConfigError):
        await broker.receive("q", wait_s=-1)


async def test_long_poll_wakes_on_send(make_broker: MakeBroker) -> None:
    consumer, producer = make_broker(), make_broker()
    await consumer.create_queue("q")
    for sender in (consumer, producer):  # same connection (event) and another (poll)
        waiter = asyncio.create_task(consumer.receive("q", wait_s=5.0))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        start = time.monotonic()
        await sender.send("q", b"hello")
        [m] = await asyncio.wait_for(waiter, timeout=2.0)
        assert m.body == b"hello"
        assert time.monotonic() - start < 1.0


async def test_long_poll_times_out_empty(broker: QueueBroker) -> None:
    start = time.monotonic()
    assert await broker.receive("q", wait_s=0.2) == []
    assert 0.2 <= time.monotonic() - start < 2.0


async def test_long_poll_sees_expired_lease(broker: QueueBroker) -> None:
    await broker.send("q", b"a")
    await broker.receive("q", visibility_timeout_s=0.1)
    [m] = await broker.receive("q", wait_s=3.0)
    assert m.receive_count == 2


async def _drain(broker: QueueBroker, name: str) -> list[str]:
    got: list[str] = []
    while batch := await broker.receive(name, max_messages=3, visibility_timeout_s=30):
        got += [m.message_id for m in batch]
        await asyncio.sleep(0)
    return got


async def test_concurrent_consumers_never_double_claim(make_broker: MakeBroker) -> None:
    a, b = make_broker(), make_broker()
    await a.create_queue("q")
    ids = await a.send_batch("q", [f"m{i}".encode() for i in range(300)])
    got_a, got_b = await asyncio.gather(_drain(a, "q"), _drain(b, "q"))
    assert not set(got_a) & set(got_b)
    assert sorted(got_a + got_b) == sorted(ids)
    assert len(got_a) + len(got_b) == len(ids)


_CONSUMER = """
import asyncio, json, os, sys, time
from cortex.queue import open_broker

async def main(url, go, out):
    broker = open_broker(url)
    while not os.path.exists(go):
        time.sleep(0.005)
    got = []
    while batch := await broker.receive("q", max_messages=2, visibility_timeout_s=60):
        got += [m.message_id for m in batch]
    await broker.close()
    with open(out, "w") as f:
        json.dump(got, f)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_sqlite_two_processes_never_double_claim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    broker = open_broker(url)
    await broker.create_queue("q")
    ids = await broker.send_batch("q", [b"x"] * 600)
    go = tmp_path / "go"
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", _CONSUMER, url, str(go), str(out)], cwd=REPO_ROOT)
        for out in outs
    ]
    try:
        await asyncio.sleep(0.3)
        go.touch()
        for p in procs:
            assert await asyncio.to_thread(p.wait, 60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    got = [json.loads(out.read_text()) for out in outs]
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(ids), [len(g) for g in got]
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=600)
    await broker.close()


async def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    broker = open_broker(url)
    await broker.create_queue(
        "q", visibility_timeout_s=30, max_receive_count=5, dead_letter_queue="d"
    )
    ids = await broker.send_batch("q", [b"a", b"b"])
    [a] = await broker.receive("q")
    await broker.close()

    reopened = open_broker(url)
    assert await reopened.counts("q") == QueueCounts(visible=1, in_flight=1)
    assert [m.message_id for m in await reopened.list_messages("q")] == ids
    assert await reopened.ack("q", a.receipt) is True  # leases survive the restart too
    [b] = await reopened.receive("q")
    assert (b.body, b.receive_count) == (b"b", 1)
    assert set(await reopened.list_queues()) == {"q", "d"}
    await reopened.close()
