"""The gateway's routes on the operator (authenticated like every other route):

- ``POST /internal/gateway/sync``: the gateway's long poll for the route table. Its body
  (``cortex.dataplane.table.SyncRequest``) acks the table version the gateway holds and reports
  its per-replica in-flight counts, the requests its activator holds per API and its cumulative
  request counters per API; the operator samples the first two into the autoscaler's signal and
  the last into the request-metrics window before answering.
- ``POST /internal/awaken/{api_name}``: the activator's wake-up call for an API whose route is
  ``scaled_to_zero``; answers ``{"requested": n}`` (404 ``api.not_deployed`` for an unknown API).
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cortex.dataplane.table import RequestStats, SyncRequest
from cortex.operator.endpoints._common import OperatorState, operator_state

MAX_WAIT_S = 30.0

log = logging.getLogger(__name__)

router = APIRouter()
State = Annotated[OperatorState, Depends(operator_state)]


class RequestStatsBody(BaseModel):
    count_2xx: int = Field(default=0, ge=0)
    count_4xx: int = Field(default=0, ge=0)
    count_5xx: int = Field(default=0, ge=0)
    latency_sum_s: float = Field(default=0.0, ge=0)
    latency_count: int = Field(default=0, ge=0)


class SyncBody(BaseModel):
    version: int
    in_flight: dict[str, int] = Field(default_factory=dict)
    wait_s: float = Field(default=1.0, ge=0, le=MAX_WAIT_S)
    gateway_id: str = ""
    held: dict[str, int] = Field(default_factory=dict)
    requests: dict[str, RequestStatsBody] = Field(default_factory=dict)

    def to_request(self) -> SyncRequest:
        return SyncRequest(
            version=self.version,
            in_flight=self.in_flight,
            wait_s=self.wait_s,
            gateway_id=self.gateway_id,
            held=self.held,
            requests={name: RequestStats(**s.model_dump()) for name, s in self.requests.items()},
        )


def record_reports(state: OperatorState, req: SyncRequest) -> None:
    """Feed a sync's reports to the autoscaler and the request-metrics window (which forgets
    deleted APIs). A failure here is logged and never fails the sync: the gateway's table
    matters more than one sample."""
    try:
        state.autoscaling.observe(req)
        window = state.request_window
        window.observe(req.gateway_id, req.requests, now=time.time())
        window.forget(rec.name for rec in state.store.list_apis())
    except Exception:
        log.exception("recording the gateway's reports failed")


@router.post("/internal/gateway/sync")
async def gateway_sync(body: Annotated[SyncBody, Body()], state: State) -> JSONResponse:
    req = body.to_request()
    record_reports(state, req)
    table = await state.reconciler.sync_gateway(req)
    return JSONResponse(table.to_json())


@router.post("/internal/awaken/{api_name}")
async def awaken(api_name: str, state: State) -> JSONResponse:
    return JSONResponse({"requested": state.autoscaling.awaken(api_name)})
