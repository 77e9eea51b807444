"""``GET /info`` (the local cluster and its node), ``GET /verifycortex``, ``GET /metrics``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cortex.backends.base import ReplicaStatus
from cortex.operator.endpoints._common import OperatorState, operator_state
from cortex.spec.quantity import Quantity
from cortex.version import __version__

router = APIRouter()  # authenticated
public_router = APIRouter()
State = Annotated[OperatorState, Depends(operator_state)]
_PENDING = frozenset({ReplicaStatus.PENDING, ReplicaStatus.STALLED})


def compute_json(cpu_millis: int, mem_bytes: int, gpus: int) -> dict[str, Any]:
    """A ``compute`` map with canonical quantities (``{"cpu": "2", "mem": "8Gi", "gpu": 0}``)."""
    return {
        "cpu": str(Quantity(Decimal(cpu_millis) / 1000)),
        "mem": str(Quantity(Decimal(mem_bytes), binary=True)),
        "gpu": gpus,
    }


def info_json(state: OperatorState) -> dict[str, Any]:
    settings = state.settings
    node = state.backend.capacity()
    replicas = [r for r in state.backend.list_replicas() if r.status != ReplicaStatus.TERMINATING]
    return {
        "cluster_config": {
            "cluster_name": "local",
            "backend": "local",
            "api_version": __version__,
            "operator_endpoint": settings.operator_url,
            "api_endpoint": settings.api_url,
        },
        "worker_node_infos": [
            {
                "name": "local",
                "nodegroup_name": "local",
                "num_replicas": len(replicas),
                "compute_user_capacity": compute_json(node.cpu_millis, node.mem_bytes, node.gpus),
                "compute_user_requested": compute_json(
                    node.requested_cpu_millis, node.requested_mem_bytes, node.requested_gpus
                ),
                "compute_available": compute_json(
                    max(node.cpu_millis - node.requested_cpu_millis, 0),
                    max(node.mem_bytes - node.requested_mem_bytes, 0),
                    max(node.gpus - node.requested_gpus, 0),
                ),
            }
        ],
        "num_pending_replicas": sum(1 for r in replicas if r.status in _PENDING),
    }


@router.get("/info")
async def info(state: State) -> JSONResponse:
    return JSONResponse(info_json(state))


@public_router.get("/verifycortex")
async def verify_cortex() -> JSONResponse:
    return JSONResponse({})


@public_router.get("/metrics")
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)
