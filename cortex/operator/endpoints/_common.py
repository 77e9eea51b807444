"""What every endpoint module shares: the operator's objects (held on ``app.state``), the
authentication dependencies, and SPEC 10.3's boolean query parameters."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request
from prometheus_client import CollectorRegistry

from cortex.backends.base import Backend
from cortex.dataplane.table import RouteTable, SyncRequest
from cortex.errors import AuthForbiddenError, AuthMissingError, VersionMismatchError
from cortex.operator.autoscaling_loop import AutoscalingLoop
from cortex.operator.deploy import Deployer, ReplicaView
from cortex.operator.request_stats import RequestWindow
from cortex.operator.responses import Responses
from cortex.operator.settings import OperatorSettings
from cortex.operator.store import StateStore
from cortex.version import __version__


class OperatorReconciler(ReplicaView, Protocol):
    """The reconciler as the REST API uses it (``cortex.operator.reconciler.Reconciler``)."""

    async def run(self) -> None: ...

    async def sync_gateway(self, req: SyncRequest) -> RouteTable: ...


@dataclass(frozen=True)
class OperatorState:
    """Everything a handler may use; one per app, at ``app.state.cortex``."""

    settings: OperatorSettings
    store: StateStore
    backend: Backend
    reconciler: OperatorReconciler
    deployer: Deployer
    responses: Responses
    metrics: CollectorRegistry
    autoscaling: AutoscalingLoop
    request_window: RequestWindow
    # Set when the server begins shutting down: followed log streams end at once.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def operator_state(request: Request) -> OperatorState:
    state: OperatorState = request.app.state.cortex
    return state


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def query_bool(value: str | None) -> bool:
    """SPEC 10.3 (Go's ``strconv.ParseBool``): true for 1/t/T/TRUE/true/True; anything else,
    including a value that does not parse, is false."""
    return value in _TRUE


def check_token(request: Request) -> None:
    """``Authorization: Bearer <token>``: absent or not a bearer token -> 401, wrong -> 403."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthMissingError(
            'missing operator token: send the header "Authorization: Bearer <token>" (the CLI '
            "sends the token of its environment; run `cortex cluster up` or `cortex env "
            "configure` to set it)"
        )
    expected = operator_state(request).settings.token
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthForbiddenError(
            "the operator token of your environment does not match this cluster's token; "
            "run `cortex cluster up` (local) or `cortex env configure` to update it"
        )


def check_version(request: Request) -> None:
    """SPEC 10.2: the ``CortexAPIVersion`` header must equal the operator's version."""
    version = request.headers.get("cortexapiversion")
    if version is None:
        raise VersionMismatchError("missing CortexAPIVersion header")
    if version != __version__:
        raise VersionMismatchError(
            f"your CLI version ({version}) doesn't match your Cortex operator version "
            f"({__version__}); please update your cluster (`cortex cluster down`, then `cortex "
            f"cluster up` with the new version), or update your CLI (pip install "
            f"cortex=={__version__})"
        )


async def authenticated(request: Request) -> None:
    """Dependency of every authenticated route: the token first (so an unauthenticated caller
    learns nothing, not even the version), then the version."""
    check_token(request)
    check_version(request)


async def authenticated_any_version(request: Request) -> None:
    """``/info`` skips the version check (SPEC 10.2) so ``cortex version`` can report both."""
    check_token(request)
