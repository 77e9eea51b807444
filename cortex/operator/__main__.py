"""``python -m cortex.operator``: run the local operator until SIGTERM/SIGINT.

Settings come from ``CORTEX_*`` variables (:class:`OperatorSettings`). The state lives in
``<state_dir>/state.db``; replicas run on the :class:`LocalBackend`. The process opens ONE queue
broker and ONE object store here and hands them to both users (the AsyncAPI services and the job
manager), which never close them. Shutdown order: uvicorn stops accepting and waits up to
``shutdown_timeout_s`` for open requests (log streams, gateway long polls), the app's lifespan
cancels its loops, closes the job manager and the backend (stopping every replica), then the
broker is closed (on the server's loop, after the lifespan), then the store. A second signal
makes uvicorn exit at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import socket
import sys
from types import FrameType

import uvicorn

from cortex.backends.base import Backend, NodeCapacity
from cortex.backends.local.backend import LocalBackend
from cortex.backends.local.capacity import detect_node
from cortex.operator.app import create_app
from cortex.operator.async_apis import AsyncApis, AsyncSettings, AsyncSidecar
from cortex.operator.jobs.job_store import JobStore
from cortex.operator.jobs.manager import JobManager
from cortex.operator.jobs.routes import router as jobs_router
from cortex.operator.jobs.workers import Infra
from cortex.operator.reconciler import Reconciler
from cortex.operator.settings import OperatorSettings, SettingsError
from cortex.operator.store import StateStore
from cortex.queue import QueueBroker, open_broker
from cortex.storage import ObjectStore, open_store

log = logging.getLogger("cortex.operator")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def node_capacity(settings: OperatorSettings) -> NodeCapacity | None:
    """The node the backend schedules on: detected, with the settings' overrides applied;
    None (the backend detects it) when nothing is overridden."""
    overrides = {
        "cpu_millis": settings.node_cpu_millis,
        "mem_bytes": settings.node_mem_bytes,
        "gpus": settings.node_gpus,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return None
    return dataclasses.replace(detect_node(), **given)


class OperatorServer(uvicorn.Server):
    """uvicorn's server, which also tells the app (``stopping``) the moment shutdown begins, so
    followed log streams end instead of holding the drain until its timeout, and closes the
    process's queue broker once the app's lifespan has ended (on the loop that used it)."""

    def __init__(
        self, config: uvicorn.Config, *, stopping: asyncio.Event, broker: QueueBroker
    ) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._broker = broker
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await super().serve(sockets)
        finally:
            await self._broker.close()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:  # called from a signal handler: hand over to the loop
            self._loop.call_soon_threadsafe(self._stopping.set)
        super().handle_exit(sig, frame)


def job_manager(
    settings: OperatorSettings,
    store: StateStore,
    backend: Backend,
    broker: QueueBroker,
    objects: ObjectStore,
) -> JobManager:
    """BatchAPI/TaskAPI jobs: their rows in the state database, their queues in the broker."""
    return JobManager(
        store,
        JobStore(settings.state_db),
        backend,
        broker,
        objects,
        infra=Infra(settings.queue_url, settings.storage_url, settings.state_dir),
        api_url=settings.api_url,
        settings=settings.jobs,
    )


def build_server(settings: OperatorSettings, store: StateStore) -> uvicorn.Server:
    """The server and everything it runs; the one broker and object store are opened here."""
    broker = open_broker(settings.queue_url)
    objects = open_store(settings.storage_url)
    backend = LocalBackend(
        settings.state_dir,
        cli_config_dir=settings.cli_config_dir,
        node=node_capacity(settings),
        log_level=settings.log_level,
        stalled_after_s=settings.stalled_after_s,
    )
    reconciler = Reconciler(
        store,
        backend,
        period_s=settings.reconcile_period_s,
        drain_timeout_s=settings.drain_timeout_s,
        async_pod=AsyncSidecar(AsyncSettings.from_operator(settings)).pod,
        gateway_required=True,  # "ready" means the gateway routes to it
    )
    async_apis = AsyncApis(
        store, AsyncSettings.from_operator(settings), broker=broker, objects=objects
    )
    jobs = job_manager(settings, store, backend, broker, objects)
    app = create_app(
        settings,
        store,
        backend,
        reconciler,
        public_routers=[jobs_router],
        jobs=jobs,
        async_apis=async_apis,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=settings.log_level == "DEBUG",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )
    return OperatorServer(config, stopping=app.state.cortex.stopping, broker=broker)


def main() -> int:
    try:
        settings = OperatorSettings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = StateStore(settings.state_db)
    try:
        server = build_server(settings, store)
        log.info(
            "operator listening on %s (state in %s)", settings.operator_url, settings.state_dir
        )
        server.run()
    finally:
        store.close()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
