"""The operator's REST API (SPEC 10): routes, authentication, and one error table.

Every error reaches the caller as ``{"error": {"code", "message", "details"}}`` with the status
of its class (``cortex.errors``): :class:`~cortex.errors.CortexError` as raised, request
validation as ``request.invalid`` naming the field, HTTP errors (unknown route, wrong method)
with a code for their status, and anything unexpected as a 500 ``cortex`` (the server logs the
traceback).

Authenticated routes (all but ``/verifycortex``, ``/metrics`` and the unauthenticated job
routes passed in ``public_routers``) check the bearer token, then ``CortexAPIVersion``.

The app's lifespan (when ``run_services``) starts the backend, opens the AsyncAPI queue broker
and object store unless they were given (:class:`~cortex.operator.async_apis.AsyncApis`; the
operator process gives its one broker and store, shared with the job manager), then runs the
reconciler loop, the autoscaler loop, the AsyncAPI queue loop and the retention sweeper as
named, guarded tasks; on shutdown (after the server has stopped accepting and drained its
requests) it cancels the loops, closes the job manager and a broker the AsyncApis opened, and
closes the backend, which stops every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cortex.backends.base import Backend
from cortex.errors import CortexError
from cortex.operator.async_apis import AsyncApis, AsyncSettings
from cortex.operator.autoscaling_loop import AutoscalingLoop
from cortex.operator.deploy import Deployer
from cortex.operator.endpoints import delete, deploy, describe, get, info, internal, logs, refresh
from cortex.operator.endpoints._common import (
    OperatorReconciler,
    OperatorState,
    authenticated,
    authenticated_any_version,
)
from cortex.operator.metrics import operator_registry
from cortex.operator.request_stats import RequestWindow
from cortex.operator.responses import JobStatuses, Responses
from cortex.operator.settings import OperatorSettings
from cortex.operator.store import StateStore
from cortex.version import __version__

log = logging.getLogger(__name__)

_HTTP_CODES = {401: "auth.missing", 403: "auth.forbidden", 404: "resource.not_found"}


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


async def _cortex_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CortexError)
    return JSONResponse(exc.to_wire(), status_code=exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 becomes SPEC's 400 ``request.invalid``; the message names the field."""
    assert isinstance(exc, RequestValidationError)
    locs = [[str(part) for part in err.get("loc", ())] for err in exc.errors()]
    msgs = [str(err.get("msg", "")) for err in exc.errors()]
    message = "; ".join(": ".join([*loc, msg]) for loc, msg in zip(locs, msgs, strict=True))
    problems = [{"loc": loc, "msg": msg} for loc, msg in zip(locs, msgs, strict=True)]
    return JSONResponse(
        _body("request.invalid", message or "invalid request", problems), status_code=400
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(
        exc.status_code, "request.invalid" if exc.status_code < 500 else "cortex"
    )
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return JSONResponse(_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        _body("cortex", f"internal error: {type(exc).__name__}: {exc}"), status_code=500
    )


@runtime_checkable
class JobService(JobStatuses, Protocol):
    """A ``jobs`` object the lifespan also runs: a loop, closed on shutdown (the job manager;
    a plain :class:`JobStatuses` is only asked for statuses)."""

    async def run(self) -> None: ...

    async def close(self) -> None: ...


def _log_unexpected_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s died", task.get_name(), exc_info=exc)
    else:
        log.error("background task %s ended unexpectedly", task.get_name())


@contextlib.asynccontextmanager
async def _services(app: FastAPI) -> AsyncIterator[None]:
    state: OperatorState = app.state.cortex
    async_apis: AsyncApis = app.state.async_apis
    await state.backend.start()
    await async_apis.start()
    tasks = [
        asyncio.create_task(state.reconciler.run(), name="cortex-reconciler"),
        asyncio.create_task(state.autoscaling.run(), name="cortex-autoscaler"),
        asyncio.create_task(async_apis.run_queues(), name="cortex-async-queues"),
        asyncio.create_task(async_apis.run_sweeper(), name="cortex-async-sweeper"),
    ]
    jobs = app.state.jobs if isinstance(app.state.jobs, JobService) else None
    if jobs is not None:
        tasks.append(asyncio.create_task(jobs.run(), name="cortex-jobs"))
    for task in tasks:
        task.add_done_callback(_log_unexpected_end)
    try:
        yield
    finally:
        state.stopping.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if jobs is not None:
            await jobs.close()
        await async_apis.close()
        await state.backend.close()


@contextlib.asynccontextmanager
async def _no_services(app: FastAPI) -> AsyncIterator[None]:
    yield


def _operator_state(
    settings: OperatorSettings,
    store: StateStore,
    backend: Backend,
    reconciler: OperatorReconciler,
    *,
    jobs: JobStatuses | None,
    autoscaling: AutoscalingLoop,
    async_apis: AsyncApis,
) -> OperatorState:
    """The objects the routes share (``app.state.cortex``)."""
    request_window = RequestWindow(settings.request_metrics_window_s)
    return OperatorState(
        settings=settings,
        store=store,
        backend=backend,
        reconciler=reconciler,
        deployer=Deployer(store=store, replicas=reconciler, node=backend),
        responses=Responses(
            store=store,
            replica_counts=reconciler.replica_counts,
            api_url=settings.api_url,
            jobs=jobs,
            request_metrics=lambda name: request_window.to_json(name, now=time.time()),
            autoscaler=autoscaling.describe,
            async_queue=async_apis.queue_json,
        ),
        metrics=operator_registry(store, backend, autoscaling, queues=async_apis.all_counts),
        autoscaling=autoscaling,
        request_window=request_window,
    )


def create_app(
    settings: OperatorSettings,
    store: StateStore,
    backend: Backend,
    reconciler: OperatorReconciler,
    *,
    run_services: bool = True,
    public_routers: Sequence[APIRouter] = (),
    routers: Sequence[APIRouter] = (),
    jobs: JobStatuses | None = None,
    autoscaling: AutoscalingLoop | None = None,
    async_apis: AsyncApis | None = None,
) -> FastAPI:
    """The operator app; ``app.state.cortex`` (:class:`OperatorState`) holds its objects.

    ``public_routers`` / ``routers`` add unauthenticated / authenticated routes, and ``jobs``
    the job manager (``app.state.jobs``): the job statuses of ``/get``, and a loop the
    lifespan runs (the job routes of SPEC 10.3 come with it, in ``public_routers``).
    ``run_services=False`` leaves starting the backend and the loops to the caller.
    ``autoscaling`` replaces the autoscaler loop built from ``settings`` (tests inject clocks),
    ``async_apis`` the AsyncAPI services (tests inject a broker and store; without
    ``run_services`` the caller starts them). The app's AsyncApis is ``app.state.async_apis``.
    """
    app = FastAPI(
        title="cortex operator",
        version=__version__,
        lifespan=_services if run_services else _no_services,
        exception_handlers={
            CortexError: _cortex_error,
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
    if autoscaling is None:
        autoscaling = AutoscalingLoop(
            store,
            backend,
            reconciler.notify,
            tick_s=settings.autoscaler_tick_s,
            sample_s=settings.inflight_sample_s,
            report_s=settings.inflight_report_s,
        )
    if async_apis is None:
        async_apis = AsyncApis(store, AsyncSettings.from_operator(settings))
    if async_apis.record_value is None:
        async_apis.record_value = autoscaling.record_value
    app.state.async_apis = async_apis
    app.state.jobs = jobs
    app.state.cortex = _operator_state(
        settings,
        store,
        backend,
        reconciler,
        jobs=jobs,
        autoscaling=autoscaling,
        async_apis=async_apis,
    )
    for router in (info.public_router, *public_routers):
        app.include_router(router)
    app.include_router(info.router, dependencies=[Depends(authenticated_any_version)])
    authed = [deploy, get, describe, delete, refresh, logs, internal]
    for router in [*(m.router for m in authed), *routers]:
        app.include_router(router, dependencies=[Depends(authenticated)])
    return app
