"""``POST /refresh/{name}?force=``: restart every replica with the same spec (SPEC 10.5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from cortex.operator.endpoints._common import OperatorState, operator_state, query_bool

router = APIRouter()


@router.post("/refresh/{name}")
async def refresh(
    name: str,
    state: Annotated[OperatorState, Depends(operator_state)],
    force: str | None = None,
) -> JSONResponse:
    outcome = state.deployer.refresh(name, force=query_bool(force))
    return JSONResponse({"message": outcome.message})
