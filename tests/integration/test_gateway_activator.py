"""The activator through real sockets: held requests, awaken, timeout, queue full, sync fields."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
import pytest

from cortex.dataplane.gateway import Gateway
from cortex.dataplane.settings import GatewaySettings
from cortex.dataplane.table import RealtimeRoute, RouteTable
from cortex.version import __version__
from tests.integration.test_gateway_support import (
    FakeOperator,
    UpstreamApp,
    realtime,
    run_gateway,
    run_upstream,
    splitter,
    wait_for,
)

pytestmark = pytest.mark.integration


def at_zero(name: str, *, max_concurrency: int = 8, max_queue_length: int = 8) -> RealtimeRoute:
    route = realtime(name, [], max_concurrency=max_concurrency, max_queue_length=max_queue_length)
    return replace(route, scaled_to_zero=True)


async def test_held_request_is_forwarded_once_an_upstream_appears() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up, run_gateway(RouteTable(1, (at_zero("a"),))) as gw:
        async with httpx.AsyncClient() as c:
            task = asyncio.create_task(c.post(f"http://127.0.0.1:{gw.port}/a/x?q=1", content=b"hi"))
            await wait_for(lambda: gw.activator.held() == {"a": 1})
            assert app.hits == 0 and not task.done()
            t0 = time.perf_counter()
            gw.update_table(RouteTable(2, (realtime("a", [up]),)))
            r = await task
            woke_s = time.perf_counter() - t0
        assert r.status_code == 200
        assert (r.json()["path"], r.json()["query"], r.json()["body"]) == ("/x", "q=1", "hi")
        assert gw.activator.held() == {}
        assert woke_s < 0.5  # woken by the table update, not by a polling period


async def test_awaken_once_per_burst_with_auth_and_sync_reports_held() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up:
        op = FakeOperator(RouteTable(1, (at_zero("a"),)))
        async with run_upstream(op) as op_port:  # type: ignore[arg-type]
            url = f"http://127.0.0.1:{op_port}"
            async with run_gateway(
                RouteTable(), operator_url=url, token="tok", sync_wait_s=0.05
            ) as gw:
                await wait_for(lambda: gw.router.table.version == 1)
                async with httpx.AsyncClient() as c:
                    base = f"http://127.0.0.1:{gw.port}/a"
                    tasks = [asyncio.create_task(c.get(f"{base}/{i}")) for i in range(5)]
                    await wait_for(lambda: any(s["held"] == {"a": 5} for s in op.syncs))
                    assert [a for a, _ in op.awakened] == ["a"]
                    headers = op.awakened[0][1]
                    assert headers["authorization"] == "Bearer tok"
                    assert headers["cortexapiversion"] == __version__
                    # the operator scales up: requested 1, the replica starting (no upstream)
                    op.table = RouteTable(2, (realtime("a", []),))
                    await wait_for(lambda: gw.router.table.version == 2)
                    late = asyncio.create_task(c.get(f"{base}/late"))  # waking: held too
                    await wait_for(lambda: gw.activator.held() == {"a": 6})
                    op.table = RouteTable(3, (realtime("a", [up]),))
                    answers = await asyncio.gather(*tasks, late)
                assert [r.status_code for r in answers] == [200] * 6
                assert len(op.awakened) == 1  # one burst, one awaken
                await wait_for(lambda: bool(op.syncs[-1]["requests"].get("a")))
                last = op.syncs[-1]
                assert last["gateway_id"] == gw.gateway_id and len(gw.gateway_id) == 32
                assert last["held"] == {}


async def test_held_past_the_timeout_gets_503_with_retry_after() -> None:
    table = RouteTable(1, (at_zero("a"),))
    async with run_gateway(table, activator_timeout_s=0.2) as gw, httpx.AsyncClient() as c:
        t0 = time.perf_counter()
        r = await c.get(f"http://127.0.0.1:{gw.port}/a")
        waited_s = time.perf_counter() - t0
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json()["error"]["code"] == "api.unavailable"
    assert 0.2 <= waited_s < 2.0
    assert gw.activator.held() == {}


async def test_held_requests_are_bounded_by_the_api_limiter() -> None:
    table = RouteTable(1, (at_zero("a", max_concurrency=1, max_queue_length=1),))
    async with run_gateway(table, activator_timeout_s=5.0) as gw:
        async with httpx.AsyncClient() as c:
            url = f"http://127.0.0.1:{gw.port}/a"
            held = [asyncio.create_task(c.get(url)) for _ in range(2)]
            await wait_for(lambda: gw.activator.held() == {"a": 2})
            r = await c.get(url)
            assert (r.status_code, r.text) == (503, "pending request queue full\n")
            metrics = (await c.get(f"http://127.0.0.1:{gw.port}/_cortex/metrics")).text
            assert 'cortex_in_flight_requests{api_name="a",replica="activator"} 2.0' in metrics
            for t in held:
                t.cancel()
            await asyncio.gather(*held, return_exceptions=True)
        # a client that goes away gives its held place back
        await wait_for(lambda: gw.activator.held() == {})


async def test_requested_but_not_ready_answers_503_at_once() -> None:
    async with run_gateway(RouteTable(1, (realtime("a", []),))) as gw, httpx.AsyncClient() as c:
        t0 = time.perf_counter()
        r = await c.get(f"http://127.0.0.1:{gw.port}/a")
    assert r.status_code == 503 and r.json()["error"]["code"] == "api.unavailable"
    assert "retry-after" not in r.headers
    assert time.perf_counter() - t0 < 1.0
    assert gw.activator.awakened == 0


async def test_splitter_target_at_zero_is_held_and_woken() -> None:
    app = UpstreamApp()
    table = RouteTable(1, (at_zero("a"),), (splitter("s", [("a", 100, False)]),))
    async with run_upstream(app) as up, run_gateway(table) as gw, httpx.AsyncClient() as c:
        task = asyncio.create_task(c.get(f"http://127.0.0.1:{gw.port}/s"))
        await wait_for(lambda: gw.activator.held() == {"a": 1})
        gw.update_table(replace(table, version=2, realtime=(realtime("a", [up]),)))
        r = await task
    assert r.status_code == 200 and r.json()["path"] == "/"


async def test_api_deleted_while_held_answers_503() -> None:
    async with run_gateway(RouteTable(1, (at_zero("a"),))) as gw, httpx.AsyncClient() as c:
        task = asyncio.create_task(c.get(f"http://127.0.0.1:{gw.port}/a"))
        await wait_for(lambda: gw.activator.held() == {"a": 1})
        gw.update_table(RouteTable(2))
        r = await task
    assert r.status_code == 503 and "retry-after" not in r.headers


async def test_sync_carries_request_counters() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up:
        op = FakeOperator(RouteTable(1, (realtime("a", [up]),)))
        async with run_upstream(op) as op_port:  # type: ignore[arg-type]
            settings = GatewaySettings(
                port=0, operator_url=f"http://127.0.0.1:{op_port}", sync_wait_s=0.05
            )
            gw = Gateway(settings)
            await gw.start()
            try:
                await wait_for(lambda: gw.router.table.version == 1)
                async with httpx.AsyncClient() as c:
                    base = f"http://127.0.0.1:{gw.port}/a"
                    for path in ("/x", "/y", "/status/404", "/fail"):
                        await c.get(base + path)
                n = len(op.syncs)
                await wait_for(lambda: len(op.syncs) > n)
                stats = op.syncs[-1]["requests"]["a"]
            finally:
                await gw.stop(drain_timeout_s=1.0)
    assert (stats["count_2xx"], stats["count_4xx"], stats["count_5xx"]) == (2, 1, 1)
    assert stats["latency_count"] == 4 and 0 < stats["latency_sum_s"] < 5


async def test_failed_awaken_is_retried_while_requests_are_held() -> None:
    op = FakeOperator(RouteTable(1, (at_zero("a"),)))
    op.awaken_status = 500
    async with run_upstream(op) as op_port:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{op_port}"
        settings = {"operator_url": url, "sync_wait_s": 0.05, "sync_backoff_max_s": 0.2}
        async with run_gateway(RouteTable(), **settings) as gw:
            await wait_for(lambda: gw.router.table.version == 1)
            async with httpx.AsyncClient() as c:
                task = asyncio.create_task(c.get(f"http://127.0.0.1:{gw.port}/a"))
                await wait_for(lambda: len(op.awakened) >= 3)  # retried
                op.awaken_status = 200
                n = len(op.awakened)
                await wait_for(lambda: len(op.awakened) == n + 1)
                await asyncio.sleep(0.6)  # 3 retry periods
                assert len(op.awakened) == n + 1  # no retry after a success
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
