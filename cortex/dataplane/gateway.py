"""The gateway process: HTTP server, routing-table sync with the operator, graceful shutdown.

Run with ``python -m cortex.dataplane.gateway`` (settings from ``CORTEX_*``, see
:class:`GatewaySettings`). In tests, ``Gateway(settings, table=...)`` with ``operator_url=None``
and ``port=0`` serves a fixed table: ``port = await gw.start()`` ... ``await gw.stop()``.

Sync: ``POST {operator}/internal/gateway/sync`` (long poll) with the table version held, the
in-flight count of every replica, this process's random ``gateway_id``, the requests the
activator holds per API and the cumulative request counters per API; the answer replaces the
table when its version differs and is cached in ``<state_dir>/routes.json``, which is loaded at
start, so a restarted gateway serves while the operator is down. Operator errors keep the
current table and retry with back-off. Every table swap also wakes the activator's held
requests whose API now has a Ready replica.

Awaken: the activator's ``POST {operator}/internal/awaken/{api}`` goes out with the same auth
headers as the sync; a failure is logged and retried with back-off while requests for the API
are still held.

Shutdown order (first SIGTERM/SIGINT): stop accepting, close idle keep-alive connections,
answer in-flight requests for up to ``drain_timeout_s`` (their responses carry
``Connection: close``), then abort the rest, stop the sync and shadow tasks, close pools.
A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from cortex.dataplane.activator import Activator
from cortex.dataplane.async_gateway import AsyncGateway
from cortex.dataplane.metrics import GatewayMetrics
from cortex.dataplane.proxy import ProxyContext, ProxyProtocol
from cortex.dataplane.router import Router
from cortex.dataplane.settings import GatewaySettings
from cortex.dataplane.shadow import ShadowSender
from cortex.dataplane.table import RouteTable, SyncRequest
from cortex.dataplane.upstream import UpstreamPool
from cortex.version import __version__

log = logging.getLogger("cortex.gateway")

_MIN_SYNC_INTERVAL_S = 0.2  # guards against an operator that answers long polls at once


def load_cached_table(path: Path | None) -> RouteTable | None:
    """The table cached at ``path``, or None if missing or unreadable."""
    if path is None or not path.exists():
        return None
    try:
        return RouteTable.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable route cache %s: %r", path, exc)
        return None


def save_cached_table(path: Path, table: RouteTable) -> None:
    """Write atomically (temp file + rename), so a crash never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table.to_json()))
    tmp.replace(path)


class Gateway:
    """One gateway: a listening server, a router, metrics and (with an operator) the sync task."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        table: RouteTable | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.gateway_id = uuid.uuid4().hex
        self.router = Router(rng=rng)
        initial = table if table is not None else load_cached_table(settings.routes_path)
        if initial is not None:
            self.router.update(initial)
        self.metrics = GatewayMetrics(self._in_flight_rows)
        self.shadow = ShadowSender(
            self.router,
            max_outstanding=settings.max_shadow_outstanding,
            timeout_s=settings.shadow_timeout_s,
        )
        self.activator = Activator(
            timeout_s=settings.activator_timeout_s,
            awaken=self._awaken if settings.operator_url else None,
        )
        self.async_gateway = AsyncGateway(
            queue_url=settings.queue_url,
            storage_url=settings.storage_url,
            storage_threads=settings.async_storage_threads,
        )
        self._ctx = ProxyContext(
            self.router,
            self.metrics,
            self.shadow,
            self.activator,
            self.async_gateway,
            operator_pool(settings.operator_url),
        )
        self._client: httpx.AsyncClient | None = None
        self._server: asyncio.Server | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.synced = asyncio.Event()  # set after the first successful sync

    def _in_flight_rows(self) -> list[tuple[str, str, int]]:
        """Per replica, plus the activator's held requests per API (replica ``activator``)."""
        rows = [(r.api_name, r.replica_id, r.limiter.in_flight) for r in self.router.replicas()]
        rows += [(api, "activator", n) for api, n in self.activator.held().items()]
        return rows

    def update_table(self, table: RouteTable) -> None:
        """Serve ``table`` from now on, and cache it when a state dir is set."""
        self.router.update(table)
        self.activator.table_updated(self.router)
        path = self.settings.routes_path
        if path is not None:
            try:
                save_cached_table(path, table)
            except OSError as exc:
                log.warning("cannot cache the route table in %s: %r", path, exc)
        log.info("serving route table version %d", table.version)

    async def start(self) -> int:
        """Listen (and start syncing if an operator is set); returns the bound port."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        self._server = await loop.create_server(
            lambda: ProxyProtocol(ctx),
            self.settings.host,
            self.settings.port,
            reuse_address=True,
            backlog=2048,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        if self.settings.operator_url:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
            self._sync_task = loop.create_task(self._sync_loop(), name="gateway-sync")
            self._sync_task.add_done_callback(_log_unexpected_end)
        log.info("gateway listening on %s:%d", self.settings.host, self.port)
        return self.port

    async def stop(self, *, drain_timeout_s: float | None = None) -> None:
        """Graceful shutdown in the order of the module docstring."""
        timeout_s = self.settings.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        ctx = self._ctx
        ctx.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(ctx.connections):
            conn.close_if_idle()
        deadline = time.monotonic() + timeout_s
        while ctx.busy_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(ctx.connections):
            conn.abort()
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
        await self.shadow.close()
        await self.activator.close()
        await self.async_gateway.close()
        if self._client is not None:
            await self._client.aclose()
        if self._ctx.operator_pool is not None:
            self._ctx.operator_pool.close()
        self.router.close()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("gateway stopped")

    # --- sync with the operator -------------------------------------------------------------
    async def _sync_loop(self) -> None:
        s = self.settings
        backoff_s = 0.1
        timeout = httpx.Timeout(s.sync_wait_s + 10.0, connect=5.0)
        async with httpx.AsyncClient(timeout=timeout) as client:
            while True:
                t0 = time.monotonic()
                try:
                    table = await self.sync_once(client)
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    log.warning("route sync failed (retrying in %.1fs): %r", backoff_s, exc)
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, s.sync_backoff_max_s)
                    continue
                backoff_s = 0.1
                self.synced.set()
                if table.version != self.router.table.version:
                    self.update_table(table)
                elif time.monotonic() - t0 < _MIN_SYNC_INTERVAL_S:
                    await asyncio.sleep(_MIN_SYNC_INTERVAL_S)

    async def sync_once(self, client: httpx.AsyncClient) -> RouteTable:
        """One sync call; returns the operator's table (raises on any failure)."""
        s = self.settings
        body = SyncRequest(
            version=self.router.table.version,
            in_flight=self.router.in_flight(),
            wait_s=s.sync_wait_s,
            gateway_id=self.gateway_id,
            held=self.activator.held(),
            requests=self.metrics.request_stats(),
        )
        resp = await client.post(
            f"{s.operator_url}/internal/gateway/sync",
            json=asdict(body),
            headers=self._auth_headers(),
        )
        resp.raise_for_status()
        return RouteTable.from_json(resp.json())

    def _auth_headers(self) -> dict[str, str]:
        """The operator's auth headers (no Authorization without a token: "Bearer " alone is
        not a legal header value)."""
        headers = {"CortexAPIVersion": __version__}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return headers

    async def _awaken(self, api_name: str) -> None:
        """``POST /internal/awaken/{api}``; a failure is logged and retried with back-off
        (0.2 s doubling to ``sync_backoff_max_s``) while requests for the API are still held."""
        backoff_s = 0.2
        while not await self._awaken_once(api_name):
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self.settings.sync_backoff_max_s)
            if not self.activator.held().get(api_name):
                return

    async def _awaken_once(self, api_name: str) -> bool:
        if self._client is None:
            log.warning("cannot awaken %s: the gateway is not started", api_name)
            return True
        url = f"{self.settings.operator_url}/internal/awaken/{api_name}"
        try:
            resp = await self._client.post(url, headers=self._auth_headers())
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            log.error("awaken of api %s failed: %r", api_name, exc)
            return False
        log.info("awakened api %s: %s", api_name, resp.text)
        return True


def operator_pool(operator_url: str | None) -> UpstreamPool | None:
    """A keep-alive pool to the operator (job routes are forwarded through it), or None.

    Only ``http://`` operators are reachable this way (the gateway's raw HTTP/1.1 client
    speaks no TLS); another scheme logs a warning and job routes answer 503."""
    if not operator_url:
        return None
    parts = urlsplit(operator_url)
    if parts.scheme != "http" or parts.hostname is None:
        log.warning("job routes need an http:// operator URL, not %s", operator_url)
        return None
    return UpstreamPool(parts.hostname, parts.port or 80, max_idle=8)


def _log_unexpected_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the route sync stopped", exc_info=task.exception())


async def serve(settings: GatewaySettings) -> None:
    """Run a gateway until SIGTERM/SIGINT, then shut down gracefully."""
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        log.info("signal received: draining")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    await gateway.stop()


def main() -> None:
    settings = GatewaySettings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
