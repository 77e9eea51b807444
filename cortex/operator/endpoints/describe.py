"""``GET /describe/{name}``: a RealtimeAPI/AsyncAPI with its replica counts (SPEC 10.5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from cortex.operator.endpoints._common import OperatorState, operator_state

router = APIRouter()


@router.get("/describe/{name}")
async def describe(
    name: str, state: Annotated[OperatorState, Depends(operator_state)]
) -> JSONResponse:
    return JSONResponse(state.responses.describe(name))
