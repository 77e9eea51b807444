"""``GET /get``, ``/get/{name}``, ``/get/{name}/{api_id}`` (SPEC 10.5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from cortex.operator.endpoints._common import OperatorState, operator_state

router = APIRouter()
State = Annotated[OperatorState, Depends(operator_state)]


@router.get("/get")
async def get_all(state: State) -> JSONResponse:
    return JSONResponse(state.responses.get_all())


@router.get("/get/{name}")
async def get_one(name: str, state: State) -> JSONResponse:
    return JSONResponse(state.responses.get_one(name))


@router.get("/get/{name}/{api_id}")
async def get_version(name: str, api_id: str, state: State) -> JSONResponse:
    return JSONResponse(state.responses.get_version(name, api_id))
