"""The receive loop on a real SQLite broker (one file in tmp_path) with scripted handlers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cortex.dataplane.dequeuer.probes import ProbeTiming, ReadinessGate, build_check, tcp_connect
from cortex.dataplane.dequeuer.user_client import Headers, UserResponse
from cortex.dataplane.dequeuer.worker import LoopConfig, LoopEnd, Outcome, ReceiveLoop
from cortex.queue import QueueBroker, Received, open_broker
from cortex.spec.models import ExecAction, HTTPGetAction, Probe

Q = "q"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[QueueBroker]:
    b = open_broker(str(tmp_path / "queues.db"), poll_interval_s=0.01)
    await b.create_queue(Q, visibility_timeout_s=30)
    yield b
    await b.close()


def ready_gate() -> ReadinessGate:
    gate = ReadinessGate(_always_ok, ProbeTiming(period_s=0.01))
    gate._ready.set()
    return gate


async def _always_ok() -> bool:
    return True


class Recorder:
    """A handler that records messages, runs ``delay_s`` each and tracks concurrency."""

    def __init__(self, *, delay_s: float = 0.0, outcome: Outcome = Outcome.ACK) -> None:
        self.delay_s = delay_s
        self.outcome = outcome
        self.bodies: list[bytes] = []
        self.running = 0
        self.max_running = 0

    async def handle(self, message: Received) -> Outcome:
        self.bodies.append(message.body)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.running -= 1
        return self.outcome


def _loop(
    broker: QueueBroker, handler: Recorder, stopping: asyncio.Event, **config: Any
) -> ReceiveLoop:
    cfg = LoopConfig(queue_name=Q, receive_wait_s=0.05, **config)
    return ReceiveLoop(broker, handler, cfg, readiness=ready_gate(), stopping=stopping)


async def _wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


async def test_runs_workers_messages_at_once_and_acks_them(broker: QueueBroker) -> None:
    await broker.send_batch(Q, [b"%d" % i for i in range(9)])
    handler = Recorder(delay_s=0.15)
    stopping = asyncio.Event()
    task = asyncio.create_task(_loop(broker, handler, stopping, workers=3).run())
    await _wait_for(lambda: len(handler.bodies) == 9 and handler.running == 0)
    await _wait_for(lambda: handler.running == 0)
    stopping.set()
    assert await task is LoopEnd.STOPPED
    assert handler.max_running == 3
    assert sorted(handler.bodies) == sorted(b"%d" % i for i in range(9))
    assert (await broker.counts(Q)).total == 0


async def test_lease_is_renewed_while_a_slow_message_runs(broker: QueueBroker) -> None:
    await broker.send(Q, b"slow")
    handler = Recorder(delay_s=1.0)
    stopping = asyncio.Event()
    task = asyncio.create_task(_loop(broker, handler, stopping, visibility_timeout_s=0.3).run())
    await _wait_for(lambda: handler.running == 1)
    # the lease (0.3 s) would have lapsed three times over without renewal
    for _ in range(8):
        await asyncio.sleep(0.1)
        assert await broker.receive(Q) == []
        assert (await broker.counts(Q)).in_flight == 1
    await _wait_for(lambda: handler.running == 0)
    stopping.set()
    await task
    assert handler.bodies == [b"slow"]
    assert (await broker.counts(Q)).total == 0


async def test_stop_drains_within_the_grace_and_releases_the_rest(broker: QueueBroker) -> None:
    await broker.send_batch(Q, [b"quick", b"stuck"])
    quick, stuck = Recorder(delay_s=0.1), Recorder(delay_s=60)

    class Router:
        async def handle(self, message: Received) -> Outcome:
            return await (quick if message.body == b"quick" else stuck).handle(message)

    stopping = asyncio.Event()
    cfg = LoopConfig(queue_name=Q, workers=2, receive_wait_s=0.05, drain_timeout_s=0.4)
    loop = ReceiveLoop(broker, Router(), cfg, readiness=ready_gate(), stopping=stopping)
    task = asyncio.create_task(loop.run())
    await _wait_for(lambda: quick.running == 1 and stuck.running == 1)
    stopping.set()
    assert await asyncio.wait_for(task, 3) is LoopEnd.STOPPED
    assert quick.bodies == [b"quick"] and quick.running == 0  # finished in the grace
    counts = await broker.counts(Q)
    assert (counts.visible, counts.in_flight) == (1, 0)  # "stuck" was released at once
    (again,) = await broker.receive(Q)
    assert again.body == b"stuck" and again.receive_count == 2


async def test_release_outcome_makes_the_message_visible_again(broker: QueueBroker) -> None:
    await broker.send(Q, b"m")
    handler = Recorder(outcome=Outcome.RELEASE)
    stopping = asyncio.Event()
    task = asyncio.create_task(_loop(broker, handler, stopping).run())
    await _wait_for(lambda: len(handler.bodies) >= 3)
    stopping.set()
    await task


async def test_a_handler_error_leaves_the_message_to_its_lease(broker: QueueBroker) -> None:
    await broker.send(Q, b"bad")

    class Broken:
        calls = 0

        async def handle(self, message: Received) -> Outcome:
            self.calls += 1
            raise RuntimeError("storage is down")

    broken = Broken()
    stopping = asyncio.Event()
    cfg = LoopConfig(queue_name=Q, receive_wait_s=0.05, visibility_timeout_s=0.5)
    task = asyncio.create_task(
        ReceiveLoop(broker, broken, cfg, readiness=ready_gate(), stopping=stopping).run()
    )
    await _wait_for(lambda: broken.calls == 1)
    await asyncio.sleep(0.2)
    assert broken.calls == 1
    assert (await broker.counts(Q)).in_flight == 1  # neither acked nor released
    await _wait_for(lambda: broken.calls == 2)  # delivered again after the lease
    stopping.set()
    await task


async def test_batch_mode_ends_drained_after_the_queue_stays_empty(broker: QueueBroker) -> None:
    await broker.send_batch(Q, [b"a", b"b"])
    handler = Recorder(delay_s=0.05)
    end = await asyncio.wait_for(
        _loop(broker, handler, asyncio.Event(), stop_when_empty=True, empty_checks=2).run(), 5
    )
    assert end is LoopEnd.DRAINED
    assert handler.bodies == [b"a", b"b"]


async def test_no_receive_before_the_user_container_is_ready(broker: QueueBroker) -> None:
    await broker.send(Q, b"m")
    healthy = asyncio.Event()

    async def check() -> bool:
        return healthy.is_set()

    gate = ReadinessGate(check, ProbeTiming(period_s=0.02))
    handler = Recorder()
    stopping = asyncio.Event()
    cfg = LoopConfig(queue_name=Q, receive_wait_s=0.05)
    loop = ReceiveLoop(broker, handler, cfg, readiness=gate, stopping=stopping)
    probe = asyncio.create_task(gate.run())
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)
    assert handler.bodies == [] and (await broker.counts(Q)).visible == 1
    healthy.set()
    await _wait_for(lambda: handler.bodies == [b"m"])
    stopping.set()
    await task
    probe.cancel()


async def test_readiness_gate_thresholds() -> None:
    results = [False, True, True, False, False, True, True]
    seen: list[bool] = []  # the gate's state when each check starts
    done = asyncio.Event()

    async def check() -> bool:
        seen.append(gate.ready)
        if len(seen) == len(results):
            done.set()
        return results[min(len(seen), len(results)) - 1]

    gate = ReadinessGate(check, ProbeTiming(period_s=0, success_threshold=2, failure_threshold=2))
    task = asyncio.create_task(gate.run())
    await asyncio.wait_for(done.wait(), 2)
    task.cancel()
    # starts not ready; ready after 2 successes in a row; not ready after 2 failures in a row
    assert seen[:7] == [False, False, False, True, True, False, False]


async def test_probe_on_pod_port_goes_to_the_replica_port_and_exec_falls_back_to_tcp() -> None:
    urls: list[str] = []

    class Getter:
        async def get(self, url: str, *, timeout_s: float, headers: Headers = ()) -> UserResponse:
            urls.append(url)
            assert ("User-Agent", "kube-probe/cortex") in list(headers)
            return UserResponse(503 if "bad" in url else 200, b"")

    client = Getter()
    probe = Probe(http_get=HTTPGetAction(path="ready", port=8080), period_seconds=3)
    check, timing = build_check(probe, user_port=41000, pod_port=8080, client=client)
    assert await check() is True
    other = Probe(http_get=HTTPGetAction(path="/bad", port=9000))
    bad, _ = build_check(other, user_port=41000, pod_port=8080, client=client)
    assert await bad() is False
    exec_probe = Probe(exec=ExecAction(command=["true"]))
    _, fallback = build_check(
        exec_probe, user_port=41000, pod_port=8080, client=client, default_period_s=0.25
    )
    assert urls == ["http://127.0.0.1:41000/ready", "http://127.0.0.1:9000/bad"]
    assert timing.period_s == 3
    assert fallback == ProbeTiming(period_s=0.25)


async def test_tcp_connect() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert await tcp_connect(port, 1.0) is True
    assert await tcp_connect(port, 1.0) is False
