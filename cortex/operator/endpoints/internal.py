"""``POST /internal/gateway/sync``: the gateway's long poll for the route table (it reports its
in-flight counts and the table version it holds; see ``cortex.dataplane.table.SyncRequest``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cortex.dataplane.table import SyncRequest
from cortex.operator.endpoints._common import OperatorState, operator_state

MAX_WAIT_S = 30.0

router = APIRouter()


class SyncBody(BaseModel):
    version: int
    in_flight: dict[str, int] = Field(default_factory=dict)
    wait_s: float = Field(default=1.0, ge=0, le=MAX_WAIT_S)


@router.post("/internal/gateway/sync")
async def gateway_sync(
    body: Annotated[SyncBody, Body()], state: Annotated[OperatorState, Depends(operator_state)]
) -> JSONResponse:
    req = SyncRequest(version=body.version, in_flight=body.in_flight, wait_s=body.wait_s)
    table = await state.reconciler.sync_gateway(req)
    return JSONResponse(table.to_json())
