"""SqliteBroker specifics: leases on an injected clock, lock handling, the long-poll helper."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from cortex.queue import QueueCounts, Received
from cortex.queue._poll import Wakeups, long_poll
from cortex.queue.errors import QueueBusyError, QueueError, ReceiptError
from cortex.queue.sqlite_broker import SqliteBroker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake_time_broker() -> tuple[SqliteBroker, FakeClock]:
    clock = FakeClock()
    broker = SqliteBroker(":memory:", clock=clock)
    await broker.create_queue(
        "q", visibility_timeout_s=30, max_receive_count=3, dead_letter_queue="d"
    )
    return broker, clock


async def test_lease_boundaries_on_fake_clock(
    fake_time_broker: tuple[SqliteBroker, FakeClock],
) -> None:
    broker, clock = fake_time_broker
    await broker.send("q", b"a")
    [m] = await broker.receive("q")
    assert m.sent_at == clock.now
    clock.now += 29.5  # lease ends at +30: still hidden
    assert await broker.receive("q") == []
    assert await broker.counts("q") == QueueCounts(visible=0, in_flight=1)
    clock.now += 0.5  # exactly at the deadline it is visible again
    assert await broker.counts("q") == QueueCounts(visible=1, in_flight=0)
    await broker.extend("q", m.receipt, visibility_timeout_s=100)  # not yet re-received: holds
    clock.now += 99
    assert await broker.receive("q") == []
    clock.now += 1
    [again] = await broker.receive("q")
    assert again.receive_count == 2
    with pytest.raises(ReceiptError):
        await broker.extend("q", m.receipt, visibility_timeout_s=1)


async def test_third_expiry_dead_letters(fake_time_broker: tuple[SqliteBroker, FakeClock]) -> None:
    # max_receive_count=3: deliveries 1, 2, 3 happen; the 4th receive moves it to "d".
    broker, clock = fake_time_broker
    mid = await broker.send("q", b"a")
    for attempt in (1, 2, 3):
        [m] = await broker.receive("q")
        assert m.receive_count == attempt
        clock.now += 30
    assert await broker.receive("q") == []
    [dead] = await broker.list_messages("d")
    assert (dead.message_id, dead.receive_count) == (mid, 3)


async def test_closed_broker_raises() -> None:
    broker = SqliteBroker(":memory:")
    await broker.close()
    await broker.close()  # idempotent
    with pytest.raises(QueueError, match="closed"):
        await broker.counts("q")


async def test_waits_for_a_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    broker = SqliteBroker(db, lock_retry_s=5.0)
    await broker.create_queue("q")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def unlock_later() -> None:
        await asyncio.sleep(0.3)
        other.execute("COMMIT")

    tick_task = asyncio.create_task(ticker())
    unlock_task = asyncio.create_task(unlock_later())
    start = time.monotonic()
    await broker.send("q", b"a")
    waited = time.monotonic() - start
    tick_task.cancel()
    await unlock_task
    other.close()
    assert waited >= 0.25
    assert ticks >= 10  # the loop kept running (30 ticks if never stalled)
    assert (await broker.counts("q")).visible == 1
    await broker.close()


async def test_gives_up_after_lock_retry_budget(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    broker = SqliteBroker(db, lock_retry_s=0.2)
    await broker.create_queue("q")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(QueueBusyError, match="stayed locked"):
            await broker.receive("q")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await broker.receive("q") == []  # the failed attempt left no open transaction
    await broker.close()


async def test_long_poll_wakes_early_on_notify() -> None:
    wakeups = Wakeups()
    calls = 0
    message = Received("id", b"x", "r", 1, 0.0)

    async def claim() -> list[Received]:
        nonlocal calls
        calls += 1
        return [message] if calls == 2 else []

    async def notify_soon() -> None:
        await asyncio.sleep(0.05)
        wakeups.notify("q")

    notifier = asyncio.create_task(notify_soon())
    start = time.monotonic()
    got = await long_poll(claim, name="q", wait_s=5.0, poll_interval_s=10.0, wakeups=wakeups)
    await notifier
    assert got == [message]
    assert time.monotonic() - start < 1.0  # woken by the event, not the 10 s poll


async def test_long_poll_gives_up_after_wait() -> None:
    calls = 0

    async def claim() -> list[Received]:
        nonlocal calls
        calls += 1
        return []

    start = time.monotonic()
    got = await long_poll(claim, name="q", wait_s=0.1, poll_interval_s=0.02, wakeups=Wakeups())
    assert got == []
    assert time.monotonic() - start >= 0.1
    assert calls >= 3
