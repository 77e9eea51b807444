"""The unauthenticated job routes (SPEC 10.3): ``POST|GET|DELETE /batch/{api}`` and
``/tasks/{api}``, reached directly or through the gateway at the API's endpoint.

``POST`` submits (``?dryRun=true`` only checks, answering ``text/plain``); ``GET ?jobID=``
reports; ``DELETE ?jobID=`` stops. A request body over 10 MiB is refused while it is read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from cortex.errors import CortexError, UnsupportedOperationError
from cortex.operator.jobs.manager import JobManager
from cortex.operator.jobs.models import MAX_REQUEST_BYTES
from cortex.spec.kinds import Kind

router = APIRouter()
JobID = Annotated[str | None, Query(alias="jobID")]
DryRun = Annotated[str | None, Query(alias="dryRun")]
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_ROUTES = {"batch": Kind.BATCH_API, "tasks": Kind.TASK_API}


class PayloadTooLargeError(CortexError):
    code = "request.too_large"
    status_code = 413


def job_manager(request: Request) -> JobManager:
    """The app's job manager (``create_app(..., jobs=manager)``)."""
    manager = getattr(request.app.state, "jobs", None)
    if not isinstance(manager, JobManager):
        raise UnsupportedOperationError("this operator runs no job manager")
    return manager


Manager = Annotated[JobManager, Depends(job_manager)]


async def read_limited(request: Request, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(_too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(_too_large(size, limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return f"the request body ({size} bytes or more) exceeds the limit of {limit} bytes (10 MiB)"


def _kind(route: str) -> Kind:
    return _ROUTES[route]


async def _submit(
    route: str, api_name: str, request: Request, jobs: JobManager, dry_run: str | None
) -> Response:
    raw = await read_limited(request)
    result = await jobs.submit(_kind(route), api_name, raw, dry_run=dry_run in _TRUE)
    if isinstance(result, str):
        return PlainTextResponse(result)
    return JSONResponse(result)


for _route in _ROUTES:

    def _register(route: str) -> None:
        @router.post(f"/{route}/{{api_name}}")
        async def submit(
            api_name: str, request: Request, jobs: Manager, dry_run: DryRun = None
        ) -> Response:
            return await _submit(route, api_name, request, jobs, dry_run)

        @router.get(f"/{route}/{{api_name}}")
        async def get(api_name: str, jobs: Manager, job_id: JobID = None) -> JSONResponse:
            return JSONResponse(await jobs.get_job(_kind(route), api_name, job_id))

        @router.delete(f"/{route}/{{api_name}}")
        async def stop(api_name: str, jobs: Manager, job_id: JobID = None) -> JSONResponse:
            return JSONResponse(await jobs.stop_job(_kind(route), api_name, job_id))

    _register(_route)
