"""``GET /streamlogs/{name}`` (the log lines, streamed) and ``GET /logs/{name}`` (where to get
them). Locally the lines are chunked ``text/plain``, one JSON log line per line, instead of the
original's websocket; with ``follow=true`` the stream stays open for new lines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cortex.errors import (
    InvalidRequestError,
    NotDeployedError,
    NotFoundError,
    UnsupportedOperationError,
)
from cortex.operator.endpoints._common import OperatorState, operator_state, query_bool
from cortex.spec.kinds import Kind

router = APIRouter()
State = Annotated[OperatorState, Depends(operator_state)]
JobID = Annotated[str | None, Query(alias="jobID")]
_JOB_KINDS = frozenset({Kind.BATCH_API, Kind.TASK_API})


def _check_target(request: Request, state: OperatorState, name: str, job_id: str | None) -> None:
    rec = state.store.get_api(name)
    if rec is None:
        raise NotDeployedError(f"{name} is not deployed; run `cortex get` to list deployed APIs")
    if rec.kind == Kind.TRAFFIC_SPLITTER:
        raise UnsupportedOperationError(
            f"{name} is a TrafficSplitter, which has no replicas and so no logs; "
            f"read the logs of the APIs it routes to (`cortex get {name}` lists them)"
        )
    if rec.kind not in _JOB_KINDS:
        return
    if not job_id:
        raise InvalidRequestError(
            f"job id is required for {name} ({rec.kind}); you can get a list of latest job ids "
            f"with `cortex get {name}` and use `cortex logs {name} JOB_ID` to get the logs"
        )
    jobs = getattr(getattr(request.app.state, "jobs", None), "jobs", None)
    if jobs is not None and jobs.get(name, job_id) is None:
        raise NotFoundError(
            f"{name} has no job with id {job_id}; `cortex get {name}` lists its latest jobs"
        )


async def _lines(source: AsyncIterator[str], stopping: asyncio.Event) -> AsyncIterator[bytes]:
    """Each line newline-terminated, until the source ends or the operator starts shutting down
    (``stopping``), so a followed stream does not hold up the server's drain; the source is
    closed however the stream ends."""
    iterator = aiter(source)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            step = asyncio.ensure_future(anext(iterator))
            await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
                return
            try:
                line = step.result()
            except StopAsyncIteration:
                return
            yield (line if line.endswith("\n") else line + "\n").encode()
    finally:
        stop.cancel()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


@router.get("/streamlogs/{name}")
async def stream_logs(
    request: Request, name: str, state: State, job_id: JobID = None, follow: str | None = None
) -> StreamingResponse:
    job_id = job_id or None  # an empty jobID (as clients send for "none") means every replica
    _check_target(request, state, name, job_id)
    source = state.backend.stream_logs(name, job_id=job_id, follow=query_bool(follow))
    return StreamingResponse(_lines(source, state.stopping), media_type="text/plain; charset=utf-8")


@router.get("/logs/{name}")
async def log_url(request: Request, name: str, state: State, job_id: JobID = None) -> JSONResponse:
    _check_target(request, state, name, job_id or None)
    url = f"{state.settings.operator_url}/streamlogs/{quote(name)}"
    if job_id:
        url += "?" + urlencode({"jobID": job_id})
    return JSONResponse({"log_url": url})
