"""The activator's bookkeeping with a fake clock: hold rules, bounds, awaken once per burst."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from cortex.dataplane.activator import Activator
from cortex.dataplane.limiter import QueueFullError
from cortex.dataplane.router import Router
from cortex.dataplane.table import RealtimeRoute, RouteTable, Upstream

ZERO = RealtimeRoute("a", "/a", 1, 2, (), scaled_to_zero=True)
STARTING = replace(ZERO, scaled_to_zero=False)
READY = replace(STARTING, upstreams=(Upstream("a-0", "127.0.0.1", 1),))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_hold_rules_waking_window_and_awaken_once_per_burst() -> None:
    clock = Clock()
    calls: list[str] = []

    async def awaken(api: str) -> None:
        calls.append(api)

    act = Activator(timeout_s=10, awaken=awaken, clock=clock)
    assert act.should_hold(ZERO) and not act.should_hold(STARTING)
    act.enter(ZERO)
    act.enter(ZERO)
    await asyncio.sleep(0)
    assert calls == ["a"]  # the second request of the burst sends nothing
    assert act.should_hold(STARTING)  # waking: requested 1, replica not Ready yet
    act.leave("a")
    act.leave("a")
    assert act.held() == {}
    clock.now += 10  # waking ends with the timeout
    assert not act.should_hold(STARTING)
    act.enter(ZERO)  # a new burst awakens again
    await asyncio.sleep(0)
    assert calls == ["a", "a"]
    act.leave("a")
    await act.close()


async def test_bound_is_concurrency_plus_queue() -> None:
    act = Activator(timeout_s=10)
    for _ in range(3):  # max_concurrency 1 + max_queue_length 2
        act.enter(ZERO)
    with pytest.raises(QueueFullError):
        act.enter(ZERO)
    assert act.held() == {"a": 3}


async def test_table_update_wakes_waiters_and_clears_waking() -> None:
    clock = Clock()
    act = Activator(timeout_s=10, clock=clock)
    router = Router(RouteTable(1, (ZERO,)))
    act.enter(ZERO)
    waiter = asyncio.create_task(act.wait("a", act.deadline()))
    await asyncio.sleep(0)
    router.update(RouteTable(2, (STARTING,)))
    act.table_updated(router)
    await asyncio.sleep(0)
    assert not waiter.done()  # still no Ready replica
    router.update(RouteTable(3, (READY,)))
    act.table_updated(router)
    await asyncio.wait_for(waiter, 1)
    act.leave("a")
    assert not act.should_hold(STARTING)  # a replica appeared: no longer waking
    router.close()


async def test_wait_past_the_deadline_raises_timeout() -> None:
    clock = Clock()
    act = Activator(timeout_s=0.05, clock=clock)
    act.enter(ZERO)
    with pytest.raises(TimeoutError):
        await act.wait("a", clock.now - 1)
    with pytest.raises(TimeoutError):
        await act.wait("a", clock.now + 0.02)
    act.leave("a")
