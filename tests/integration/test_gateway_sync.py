"""Route sync with a fake operator, the routes.json cache, settings and the process entry point."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortex.dataplane.gateway import Gateway
from cortex.dataplane.settings import GatewaySettings
from cortex.dataplane.table import RouteTable
from cortex.version import __version__
from tests.integration.test_gateway_support import (
    Receive,
    Scope,
    Send,
    UpstreamApp,
    read_body,
    realtime,
    run_upstream,
)

pytestmark = pytest.mark.integration


class FakeOperator:
    """ASGI stand-in for ``POST /internal/gateway/sync``: checks auth, records requests,
    answers ``table`` (or ``fail_with`` as status code)."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_with = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        self.requests.append(json.loads(body))
        status = self.fail_with or 200
        out = json.dumps(self.table.to_json() if status == 200 else {"error": {}}).encode()
        if status == 200 and self.requests[-1]["version"] == self.table.version:
            await asyncio.sleep(0.05)  # a (short) long poll
        hdrs = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": out})


async def _wait_for(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_sync_applies_tables_reports_in_flight_and_caches(tmp_path: Path) -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up:
        op = FakeOperator(RouteTable(3, (realtime("a", [up]),)))
        async with run_upstream(op) as op_port:  # type: ignore[arg-type]
            settings = GatewaySettings(
                port=0,
                operator_url=f"http://127.0.0.1:{op_port}",
                token="s3cret",
                state_dir=tmp_path,
                sync_wait_s=0.1,
            )
            gw = Gateway(settings)
            port = await gw.start()
            try:
                await _wait_for(lambda: gw.router.table.version == 3)
                assert op.headers[0]["authorization"] == "Bearer s3cret"
                assert op.headers[0]["cortexapiversion"] == __version__
                assert op.requests[0]["version"] == 0
                async with httpx.AsyncClient() as c:
                    assert (await c.get(f"http://127.0.0.1:{port}/a")).status_code == 200
                    # hold a request in flight and watch it reach the operator
                    task = asyncio.create_task(c.get(f"http://127.0.0.1:{port}/a/stream"))
                    await _wait_for(lambda: op.requests[-1]["in_flight"] == {"a-0": 1})
                    app.release.set()
                    await task
                cached = json.loads((tmp_path / "routes.json").read_text())
                assert RouteTable.from_json(cached) == op.table
                # operator failures: keep serving the current table, keep retrying
                op.fail_with = 500
                n = len(op.requests)
                await _wait_for(lambda: len(op.requests) >= n + 2)
                assert gw.router.table.version == 3
                op.fail_with = 0
                op.table = RouteTable(4, ())
                await _wait_for(lambda: gw.router.table.version == 4)
            finally:
                await gw.stop(drain_timeout_s=1.0)


async def test_cached_table_is_served_without_operator(tmp_path: Path) -> None:
    app = UpstreamApp()
    async with run_upstream(app) as up:
        table = RouteTable(7, (realtime("c", [up]),))
        (tmp_path / "routes.json").write_text(json.dumps(table.to_json()))
        gw = Gateway(GatewaySettings(port=0, state_dir=tmp_path))
        port = await gw.start()
        try:
            assert gw.router.table == table
            async with httpx.AsyncClient() as c:
                assert (await c.get(f"http://127.0.0.1:{port}/c/x")).json()["path"] == "/x"
        finally:
            await gw.stop(drain_timeout_s=1.0)


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "routes.json").write_text("{not json")
    gw = Gateway(GatewaySettings(port=0, state_dir=tmp_path))
    assert gw.router.table == RouteTable()


def test_settings_from_env(tmp_path: Path) -> None:
    s = GatewaySettings.from_env(
        {
            "CORTEX_API_PORT": "9999",
            "CORTEX_OPERATOR_URL": "http://127.0.0.1:8888/",
            "CORTEX_OPERATOR_TOKEN": "t",
            "CORTEX_STATE_DIR": str(tmp_path),
        }
    )
    assert (s.port, s.operator_url, s.token) == (9999, "http://127.0.0.1:8888", "t")
    assert s.routes_path == tmp_path / "routes.json"
    assert s.queue_url == f"sqlite:///{tmp_path.resolve()}/queues.db"
    assert s.storage_url == str(tmp_path.resolve() / "storage")
    assert s.activator_timeout_s == 300
    d = GatewaySettings.from_env({})
    assert (d.port, d.operator_url, d.state_dir) == (8889, None, None)
    assert (d.queue_url, d.storage_url) == (None, None)
    o = GatewaySettings.from_env(
        {
            "CORTEX_QUEUE_URL": "redis://h:1/0",
            "CORTEX_STORAGE_URL": "s3://b/c",
            "CORTEX_ACTIVATOR_TIMEOUT_S": "2.5",
        }
    )
    assert (o.queue_url, o.storage_url, o.activator_timeout_s) == ("redis://h:1/0", "s3://b/c", 2.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_module_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "CORTEX_API_PORT": str(port),
        "CORTEX_STATE_DIR": str(tmp_path),
        "CORTEX_OPERATOR_URL": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cortex.dataplane.gateway"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/_cortex/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert (r.status_code, r.text) == (200, "ok")
        assert httpx.get(f"http://127.0.0.1:{port}/nope").status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
