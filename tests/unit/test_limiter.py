"""Limiter semantics (SPEC 2.3): total slots, in-flight accounting, FIFO hand-over, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from cortex.dataplane.limiter import Limiter, QueueFullError


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_rejects_at_exactly_total_slots() -> None:
    lim = Limiter(2, 3)  # total slots 5
    assert lim.try_acquire() is True
    assert lim.try_acquire() is True
    waiters = [asyncio.create_task(lim.acquire()) for _ in range(3)]
    await _settle()
    assert (lim.running, lim.queued, lim.in_flight) == (2, 3, 5)
    with pytest.raises(QueueFullError):
        lim.try_acquire()
    with pytest.raises(QueueFullError):
        await lim.acquire()
    assert lim.in_flight == 5  # a rejection changes nothing
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert lim.in_flight == 2


async def test_release_hands_the_slot_to_the_oldest_waiter() -> None:
    lim = Limiter(1, 10)
    await lim.acquire()
    order: list[int] = []

    async def worker(i: int) -> None:
        await lim.acquire()
        order.append(i)

    tasks = [asyncio.create_task(worker(i)) for i in range(3)]
    await _settle()
    assert (lim.running, lim.queued) == (1, 3)
    for expected_done in (1, 2, 3):
        lim.release()
        await _settle()
        assert len(order) == expected_done
        assert lim.running == 1  # the slot moved, it was never free
    assert order == [0, 1, 2]
    await asyncio.gather(*tasks)
    lim.release()
    assert (lim.running, lim.in_flight) == (0, 0)


async def test_cancel_while_queued_gives_the_place_back() -> None:
    lim = Limiter(1, 1)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await _settle()
    assert lim.in_flight == 2
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (lim.in_flight, lim.queued) == (1, 0)
    lim.release()
    assert lim.try_acquire() is True  # nothing leaked: the slot is free


async def test_cancel_after_hand_over_releases_the_slot() -> None:
    lim = Limiter(1, 1)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await _settle()
    lim.release()  # hands the slot to the waiter (its future is now done)...
    waiter.cancel()  # ...but it is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (lim.running, lim.in_flight) == (0, 0)


async def test_fast_path_defers_to_waiters() -> None:
    lim = Limiter(1, 5)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await _settle()
    lim.release()  # slot goes to the waiter, not to a newcomer
    assert lim.try_acquire() is None
    await waiter
    assert lim.running == 1


async def test_resize_up_wakes_waiters_and_down_drains() -> None:
    lim = Limiter(1, 4)
    await lim.acquire()
    waiters = [asyncio.create_task(lim.acquire()) for _ in range(2)]
    await _settle()
    lim.resize(3, 4)
    await asyncio.gather(*waiters)
    assert (lim.running, lim.queued) == (3, 0)
    lim.resize(1, 0)  # total slots 1 < in_flight 3: nobody is pre-empted, newcomers rejected
    with pytest.raises(QueueFullError):
        lim.try_acquire()
    for _ in range(3):
        lim.release()
    assert lim.in_flight == 0
    assert lim.try_acquire() is True


async def test_zero_queue_means_reject_when_running_full() -> None:
    lim = Limiter(2, 0)
    assert lim.try_acquire() and lim.try_acquire()
    with pytest.raises(QueueFullError):
        lim.try_acquire()
    assert lim.total_slots == 2
