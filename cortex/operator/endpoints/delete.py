"""``DELETE /delete/{name}?keepCache=``: forget an API; the reconciler stops its replicas.

An AsyncAPI's queue goes with it, and its stored workloads too unless ``keepCache``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from cortex.operator.async_apis import async_apis_of
from cortex.operator.endpoints._common import OperatorState, operator_state, query_bool

router = APIRouter()


@router.delete("/delete/{name}")
async def delete(
    name: str,
    request: Request,
    state: Annotated[OperatorState, Depends(operator_state)],
    keep_cache: Annotated[str | None, Query(alias="keepCache")] = None,
) -> JSONResponse:
    rec = state.store.get_api(name)
    message = state.deployer.delete(name, keep_cache=query_bool(keep_cache))
    async_apis = async_apis_of(request.app)
    if rec is not None and async_apis is not None:
        await async_apis.remove(rec, keep_cache=query_bool(keep_cache))
    return JSONResponse({"message": message})
