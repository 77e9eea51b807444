"""``DELETE /delete/{name}?keepCache=``: forget an API; the reconciler stops its replicas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from cortex.operator.endpoints._common import OperatorState, operator_state, query_bool

router = APIRouter()


@router.delete("/delete/{name}")
async def delete(
    name: str,
    state: Annotated[OperatorState, Depends(operator_state)],
    keep_cache: Annotated[str | None, Query(alias="keepCache")] = None,
) -> JSONResponse:
    message = state.deployer.delete(name, keep_cache=query_bool(keep_cache))
    return JSONResponse({"message": message})
