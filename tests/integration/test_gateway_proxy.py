"""The gateway through real sockets: a real upstream (uvicorn, port 0), the gateway in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from cortex.dataplane.gateway import Gateway
from cortex.dataplane.table import RouteTable
from tests.integration.test_gateway_support import (
    UpstreamApp,
    close_writer,
    raw_request,
    realtime,
    run_gateway,
    run_raw_server,
    run_upstream,
    splitter,
)

pytestmark = pytest.mark.integration


async def _wait_for(cond, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _client(gw: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=5.0)


@asynccontextmanager
async def _serving(app: UpstreamApp, name: str) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A real upstream serving ``app``, a gateway routing ``/<name>`` to it, and a client."""
    async with (
        run_upstream(app) as up,
        run_gateway(RouteTable(1, (realtime(name, [up]),))) as gw,
        _client(gw) as c,
    ):
        yield gw, c


async def test_forwards_method_path_query_headers_and_body() -> None:
    app = UpstreamApp()
    async with _serving(app, "iris") as (_gw, c):
        r = await c.post(
            "/iris/v1/predict?x=1&y=a%20b",
            content=b'{"sepal": 1}',
            headers={
                "X-Custom": "yes",
                "X-Forwarded-For": "10.0.0.1",
                "Connection": "keep-alive, X-Drop",
                "X-Drop": "hop",
                "Keep-Alive": "timeout=5",
            },
        )
        assert r.status_code == 200
        got = r.json()
        assert (got["method"], got["path"], got["query"]) == (
            "POST",
            "/v1/predict",
            "x=1&y=a%20b",
        )
        assert got["body"] == '{"sepal": 1}'
        headers = dict(got["headers"])
        assert headers["x-custom"] == "yes"
        assert headers["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
        assert headers["content-length"] == "12"
        assert "x-drop" not in headers and "keep-alive" not in headers
        r = await c.get("/iris")
        assert (r.json()["method"], r.json()["path"], r.json()["body"]) == ("GET", "/", "")
        big = b"x" * 300_000  # arrives in many reads
        r = await c.put("/iris/", content=big)
        assert r.json()["path"] == "/" and len(r.json()["body"]) == len(big)


async def test_chunked_response_streams_before_upstream_finishes() -> None:
    app = UpstreamApp()
    async with _serving(app, "s") as (_, c), c.stream("GET", "/s/stream") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        chunks = r.aiter_raw()
        first = await asyncio.wait_for(chunks.__anext__(), 2.0)
        assert first == b"first;"  # the upstream is still waiting on `release`
        app.release.set()
        rest = b"".join([part async for part in chunks])
        assert rest == b"second"


async def test_head_and_204_have_no_body_and_keep_the_connection() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up, run_gateway(RouteTable(1, (realtime("a", [up]),))) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"content-length" in head.lower()
        status, _, body = await raw_request(
            reader, writer, b"GET /a/status/204 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (status, body) == (204, b"")
        status, _, body = await raw_request(reader, writer, b"GET /a/q HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and json.loads(body)["path"] == "/q"
        await close_writer(writer)


async def test_keep_alive_reuses_client_and_upstream_connections() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up, run_gateway(RouteTable(1, (realtime("a", [up]),))) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        for i in range(5):
            req = b"GET /a?i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
            status, headers, body = await raw_request(reader, writer, req)
            assert status == 200 and json.loads(body)["query"] == f"i={i}"
            assert headers.get("connection") != "close"
        await close_writer(writer)
        assert app.hits == 5
        assert len(app.peers) == 1  # one pooled upstream connection served all five


async def test_pipelined_requests_are_answered_in_order() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up, run_gateway(RouteTable(1, (realtime("a", [up]),))) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"".join(b"GET /a/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
        for i in range(3):
            status, _, body = await raw_request(reader, writer, b"")
            assert status == 200 and json.loads(body)["path"] == f"/{i}"
        await close_writer(writer)


async def test_unknown_endpoint_404_and_no_replica_503() -> None:
    table = RouteTable(1, (realtime("empty", []),))
    async with run_gateway(table) as gw, _client(gw) as c:
        r = await c.get("/nope/x")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "api.not_found"
        assert r.json()["error"]["message"] == "no API is deployed at /nope/x"
        r = await c.post("/empty", content=b"{}")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "api.unavailable"


async def test_reserved_health_and_metrics() -> None:
    app = UpstreamApp()
    async with _serving(app, "m") as (_gw, c):
        r = await c.get("/_cortex/healthz")
        assert (r.status_code, r.text) == (200, "ok")
        await c.get("/m")
        await c.get("/m")
        text = (await c.get("/_cortex/metrics")).text
        assert 'cortex_requests_total{api_name="m",status_code="200"} 2.0' in text
        assert 'cortex_request_duration_seconds_count{api_name="m"} 2.0' in text
        assert 'cortex_in_flight_requests{api_name="m",replica="m-0"} 0.0' in text


async def test_queue_full_503_and_queued_request_runs_later() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up:
        table = RouteTable(1, (realtime("q", [up], max_concurrency=1, max_queue_length=1),))
        async with run_gateway(table) as gw, _client(gw) as c:
            rep = gw.router.replicas()[0]
            running = asyncio.create_task(c.get("/q/stream"))  # holds the one slot
            await _wait_for(lambda: rep.limiter.running == 1)
            queued = asyncio.create_task(c.get("/q/echo"))
            await _wait_for(lambda: rep.limiter.queued == 1)
            r = await c.get("/q/echo")
            assert r.status_code == 503
            assert r.text == "pending request queue full\n"
            assert r.headers["content-type"].startswith("text/plain")
            assert not queued.done()
            app.release.set()
            assert (await running).text == "first;second"
            assert (await queued).json()["path"] == "/echo"
            assert rep.limiter.in_flight == 0


async def test_upstream_dying_mid_request_gives_502_and_frees_the_slot() -> None:
    async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await close_writer(writer)

    async with run_raw_server(die) as up:
        table = RouteTable(1, (realtime("d", [up], max_concurrency=1, max_queue_length=0),))
        async with run_gateway(table) as gw, _client(gw) as c:
            for _ in range(3):  # a leaked slot would turn the 2nd into "queue full"
                r = await c.get("/d")
                assert r.status_code == 502
                assert r.json()["error"]["code"] == "api.upstream_error"
            assert gw.router.in_flight() == {"d-0": 0}


async def test_upstream_dying_after_headers_aborts_the_client() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await close_writer(writer)

    async with run_raw_server(half) as up, run_gateway(RouteTable(1, (realtime("h", [up]),))) as gw:
        async with _client(gw) as c:
            with pytest.raises(httpx.HTTPError):
                await c.get("/h")
        assert gw.router.in_flight() == {"h-0": 0}


async def test_connection_refused_gives_502() -> None:
    async with run_raw_server(lambda r, w: asyncio.sleep(0)) as port:
        pass  # the port is now closed
    async with run_gateway(RouteTable(1, (realtime("x", [port]),))) as gw, _client(gw) as c:
        r = await c.get("/x")
        assert r.status_code == 502
        assert gw.router.in_flight() == {"x-0": 0}


async def test_client_disconnect_releases_slot_and_closes_upstream() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up:
        table = RouteTable(1, (realtime("c", [up], max_concurrency=1, max_queue_length=1),))
        async with run_gateway(table) as gw:
            rep = gw.router.replicas()[0]
            _, w1 = await asyncio.open_connection("127.0.0.1", gw.port)
            w1.write(b"GET /c/hang HTTP/1.1\r\nHost: x\r\n\r\n")  # running
            await _wait_for(lambda: rep.limiter.running == 1 and app.hits == 1)
            _, w2 = await asyncio.open_connection("127.0.0.1", gw.port)
            w2.write(b"GET /c/echo HTTP/1.1\r\nHost: x\r\n\r\n")  # queued
            await _wait_for(lambda: rep.limiter.queued == 1)
            await close_writer(w2)
            await _wait_for(lambda: rep.limiter.in_flight == 1)
            await close_writer(w1)
            await _wait_for(lambda: rep.limiter.in_flight == 0)
            assert rep.pool.idle_count == 0  # the hung upstream connection was closed, not pooled
            async with _client(gw) as c:
                assert (await c.get("/c/ok")).status_code == 200


async def test_shadow_that_hangs_or_fails_never_affects_callers() -> None:
    main = UpstreamApp("main")
    hang, fail = UpstreamApp("hang", mode="hang"), UpstreamApp("fail", mode="fail")
    async with run_upstream(main) as p1, run_upstream(hang) as p2, run_upstream(fail) as p3:
        table = RouteTable(
            1,
            (
                realtime("main", [p1]),
                realtime("slow", [p2], endpoint="/hang"),
                realtime("bad", [p3]),
            ),
            (
                splitter("s1", [("main", 100, False), ("slow", 100, True)]),
                splitter("s2", [("main", 100, False), ("bad", 100, True)]),
            ),
        )
        async with run_gateway(table, max_shadow_outstanding=4) as gw:
            async with _client(gw) as c:
                for i in range(10):
                    r = await c.post("/s2", content=b"%d" % i, timeout=1.0)
                    assert r.status_code == 200 and r.json()["upstream"] == "main"
                await _wait_for(lambda: fail.hits + gw.shadow.dropped == 10)
                assert fail.hits >= 5  # failing copies were really sent
                dropped_before = gw.shadow.dropped
                for i in range(10):
                    r = await c.post("/s1", content=b"%d" % i, timeout=1.0)
                    assert r.status_code == 200 and r.json()["upstream"] == "main"
            assert gw.shadow.outstanding == 4  # hung copies are bounded...
            assert gw.shadow.dropped - dropped_before == 6  # ...the rest were dropped
            assert hang.hits == 4


async def test_shadow_copy_reaches_the_shadow_upstream_path() -> None:
    main, shadow = UpstreamApp("main"), UpstreamApp("shadow")
    async with run_upstream(main) as p1, run_upstream(shadow) as p2:
        table = RouteTable(
            1,
            (realtime("main", [p1]), realtime("sh", [p2])),
            (splitter("s", [("main", 100, False), ("sh", 100, True)]),),
        )
        async with run_gateway(table) as gw, _client(gw) as c:
            r = await c.post("/s/fail", content=b"x")  # splitters match the exact path only
            assert r.status_code == 404
            r = await c.post("/s?k=v", content=b"x")
            assert r.json()["path"] == "/" and r.json()["query"] == "k=v"
            await _wait_for(lambda: shadow.hits == 1)


async def test_stop_drains_in_flight_requests() -> None:
    app = UpstreamApp()
    async with _serving(app, "g") as (gw, c):
        pending = asyncio.create_task(c.get("/g/stream"))
        await _wait_for(lambda: gw.router.in_flight()["g-0"] == 1)
        stopping = asyncio.create_task(gw.stop(drain_timeout_s=5.0))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # waiting for the in-flight request
        app.release.set()
        r = await pending
        assert r.text == "first;second"
        await stopping


async def test_expect_100_continue_and_http10_client() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up, run_gateway(RouteTable(1, (realtime("e", [up]),))) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        status, _, body = await raw_request(reader, writer, b"hello")
        assert status == 200 and json.loads(body)["body"] == "hello"
        assert "expect" not in dict(json.loads(body)["headers"])
        await close_writer(writer)
        # HTTP/1.0 without keep-alive, to a chunked upstream answer: close-delimited body
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        app.release.set()
        writer.write(b"GET /e/stream HTTP/1.0\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 2.0)  # until the gateway closes
        head, _, rest = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
        assert rest == b"first;second"
        await close_writer(writer)


async def test_hung_shadow_copies_time_out_and_free_their_slots() -> None:
    main, hang = UpstreamApp("main"), UpstreamApp("hang", mode="hang")
    async with run_upstream(main) as p1, run_upstream(hang) as p2:
        table = RouteTable(
            1,
            (realtime("main", [p1]), realtime("slow", [p2])),
            (splitter("s", [("main", 100, False), ("slow", 100, True)]),),
        )
        async with run_gateway(table, shadow_timeout_s=0.2) as gw, _client(gw) as c:
            for _ in range(3):
                assert (await c.get("/s")).status_code == 200
            await _wait_for(lambda: hang.hits == 3)
            assert gw.router.in_flight()["slow-0"] == 3
            await _wait_for(lambda: gw.shadow.outstanding == 0)
            assert gw.router.in_flight()["slow-0"] == 0


async def test_reused_connection_closed_by_upstream_is_retried_once() -> None:
    connections = 0

    async def one_per_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # answers the first request of each connection, then drops it at the next request
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        await close_writer(writer)

    async with (
        run_raw_server(one_per_conn) as up,
        run_gateway(RouteTable(1, (realtime("r", [up]),))) as gw,
        _client(gw) as c,
    ):
        for _ in range(3):
            r = await c.get("/r")
            assert (r.status_code, r.text) == (200, "ok")
        assert connections == 3
        assert gw.router.in_flight() == {"r-0": 0}


async def test_responses_split_across_reads_both_paths() -> None:
    async def pieces(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # 1: whole head first, body in two reads
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\n\r\nhello")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"world")
        await reader.readuntil(b"\r\n\r\n")  # 2: head split in the middle of a header
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Le")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"ngth: 3\r\nConnection: keep-alive\r\n\r\nabc")
        await reader.readuntil(b"\r\n\r\n")  # 3: the head alone, then the body
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"tail")
        await reader.readuntil(b"\r\n\r\n")

    async with (
        run_raw_server(pieces) as up,
        run_gateway(RouteTable(1, (realtime("p", [up]),))) as gw,
        _client(gw) as c,
    ):
        r = await c.get("/p")
        assert (r.status_code, r.text, r.headers["x-a"]) == (200, "helloworld", "1")
        r = await c.get("/p")
        assert (r.status_code, r.text) == (201, "abc")
        assert "keep-alive" not in r.headers.get("connection", "")  # hop-by-hop, dropped
        r = await c.get("/p")
        assert (r.status_code, r.text) == (200, "tail")


async def test_bad_request_400_and_connection_close_honoured() -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up, run_gateway(RouteTable(1, (realtime("b", [up]),))) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 2.0)
        assert raw.startswith(b"HTTP/1.1 400 Bad Request")
        await close_writer(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(
            b"GET /b/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET /b/2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        raw = await asyncio.wait_for(reader.read(), 2.0)  # one answer, then the gateway closes
        assert raw.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in raw
        assert b'"path": "/1"' in raw
        await close_writer(writer)
        assert app.hits == 1
