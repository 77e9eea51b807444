"""Deploy, refresh and delete: how a submitted ``cortex.yaml`` becomes stored targets (SPEC 10.6).

The operator only records what it wants here; the reconciler acts on it in the background, so
every call returns at once.

Deploy algorithm:

1. Parse the whole file (:func:`cortex.spec.parse.load_apis`), then validate it against the
   cluster (:func:`validate_cluster`: endpoint collisions with deployed APIs, TrafficSplitter
   targets, compute fit on the local node). Any error fails the whole request and stores nothing.
2. Process non-TrafficSplitter APIs first (file order), then TrafficSplitters, so a splitter's
   targets from the same file exist before it does. Per API: a kind change is refused; a new API
   is created; a changed spec (``spec_id``) is updated, unless the API is still *updating*
   (SPEC 12.2: fewer Ready replicas of the latest version than ``min_replicas`` and none failed)
   and ``force`` is off; an unchanged spec is reported up to date (or already updating).
   A per-API error goes into that API's outcome and the others continue.
3. If anything was stored, wake the reconciler.

Identity (SPEC 0.6): RealtimeAPI/AsyncAPI keep their ``deployment_id`` and initial deployment
time across updates; only :meth:`Deployer.refresh` draws a new ``deployment_id``, which changes
the pod template and so rolls every replica. Every stored change gets a new ``api_id``
(``<monotonic>-<deployment_id>-<spec_id>``), newest sorting first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from cortex.backends.base import NodeCapacity
from cortex.backends.requests import Request, total_request
from cortex.dataplane.dequeuer import sidecar
from cortex.errors import (
    ConflictError,
    CortexError,
    NotDeployedError,
    SpecError,
    UnsupportedOperationError,
)
from cortex.operator.autoscaler import AutoscalingParams, deploy_replicas
from cortex.operator.replica_counts import ReplicaCounts
from cortex.operator.store import ApiRecord, StateStore
from cortex.spec import resolved
from cortex.spec.kinds import SCALED_KINDS, Kind
from cortex.spec.models import ApiSpec
from cortex.spec.parse import SCHEMA_SUFFIX, load_apis, parse_api
from cortex.spec.quantity import Quantity


class ReplicaView(Protocol):
    """What deploy needs of the reconciler: live replica counts, and a wake-up call."""

    def replica_counts(self, api_name: str) -> ReplicaCounts: ...

    def notify(self) -> None: ...


class CapacitySource(Protocol):
    def capacity(self) -> NodeCapacity: ...


@dataclass(frozen=True)
class DeployOutcome:
    """One API's result: the stored record (None on error), the message, the error text."""

    name: str
    record: ApiRecord | None
    message: str = ""
    error: str = ""
    changed: bool = False


def spec_of(rec: ApiRecord) -> ApiSpec:
    """The typed spec of a stored record (its submitted map, parsed again)."""
    return parse_api(rec.submitted, file_name=rec.file_name, index=rec.index)


def identify(api: ApiSpec) -> str:
    """SPEC 11.1's error prefix for an API: ``<file>: <name> (<Kind>)``."""
    return f"{api.file_name}: {api.name} ({api.kind})"


def _plural(word: str, names: Sequence[str]) -> str:
    return word if len(names) == 1 else f"{word}s"


def _and_list(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b, and c``."""
    if len(names) <= 2:
        return " and ".join(names)
    return f"{', '.join(names[:-1])}, and {names[-1]}"


# --- cluster-level validation (SPEC 11.4) -------------------------------------------------------


def validate_cluster(
    apis: Sequence[ApiSpec], *, deployed: Iterable[ApiRecord], node: NodeCapacity
) -> None:
    """Check what needs the cluster's state; raise :class:`SpecError` on the first problem.

    ``deployed`` is every stored API. An API named in the file is compared as the file has it,
    so redeploying an API (or moving two endpoints at once) is not a collision with itself.
    """
    in_file = {api.name for api in apis}
    others = [(rec, spec_of(rec)) for rec in deployed if rec.name not in in_file]
    realtime = {a.name for a in apis if a.kind == Kind.REALTIME_API} | {
        rec.name for rec, _ in others if rec.kind == Kind.REALTIME_API
    }
    taken = {_endpoint_key(resolved.endpoint(spec)): rec.name for rec, spec in others}
    for api in apis:
        _check_endpoint(api, taken)
        if api.kind == Kind.TRAFFIC_SPLITTER:
            _check_split_targets(api, realtime)
        else:
            _check_compute_fit(api, node)


def _invalid(message: str) -> SpecError:
    """A cluster-level validation error, with the schema hint as SPEC 10.6 appends it."""
    return SpecError(message + SCHEMA_SUFFIX)


def _endpoint_key(endpoint: str) -> str:
    # SPEC 11.4: endpoints are compared with a trailing "/" appended ("/a" and "/a/" collide).
    return endpoint.rstrip("/") + "/"


def _check_endpoint(api: ApiSpec, taken: dict[str, str]) -> None:
    endpoint = resolved.endpoint(api)
    other = taken.get(_endpoint_key(endpoint))
    if other is not None:
        raise _invalid(
            f"{identify(api)}: networking: endpoint: {endpoint}: "
            f"endpoint is already being used by {other}"
        )


def _check_split_targets(api: ApiSpec, realtime: set[str]) -> None:
    missing = [t.name for t in api.apis or () if t.name not in realtime]
    if len(missing) == 1:
        raise _invalid(
            f"{identify(api)}: api {missing[0]} was either not found or is not a RealtimeAPI"
        )
    if missing:
        raise _invalid(
            f"{identify(api)}: apis {_and_list(missing)} were either not found "
            "or are not RealtimeAPIs"
        )


# Kinds whose replicas also run the dequeuer sidecar (SPEC 5.1), which requests its own share.
SIDECAR_KINDS = frozenset({Kind.ASYNC_API, Kind.BATCH_API})


def pod_requests(api: ApiSpec) -> Request:
    """What one replica of ``api`` requests: its containers plus, for an AsyncAPI or a BatchAPI
    worker, the dequeuer sidecar (100m / 100Mi), as the backend will count it (SPEC 11.4)."""
    computes = [container.compute for container in api.pod.containers] if api.pod else []
    if api.kind in SIDECAR_KINDS:
        computes.append(sidecar.COMPUTE)
    return total_request(computes)


def _check_compute_fit(api: ApiSpec, node: NodeCapacity) -> None:
    """One replica must fit on the local node when it is empty (SPEC 11.4 item 4, with one node
    and no system reservations); the node has no Inferentia chips."""
    want = pod_requests(api)
    if (
        want.cpu_millis <= node.cpu_millis
        and want.mem_bytes <= node.mem_bytes
        and want.gpus <= node.gpus
        and want.inf == 0
    ):
        return
    requested = _compute_text(want.cpu_millis, want.mem_bytes, want.gpus)
    raise _invalid(
        f"{identify(api)}: the local node is not large enough to satisfy the requested resources "
        f"for your pod (requested: {requested}, inf {want.inf}; node capacity: "
        f"{_compute_text(node.cpu_millis, node.mem_bytes, node.gpus)}, inf 0)"
    )


def _compute_text(cpu_millis: int, mem_bytes: int, gpus: int) -> str:
    cpu = Quantity.parse(f"{cpu_millis}m")
    mem = Quantity.parse(f"{mem_bytes / 2**20:.0f}Mi") if mem_bytes else Quantity.parse(0)
    return f"cpu {cpu}, mem {mem}, gpu {gpus}"


# --- the deployer ------------------------------------------------------------------------------


@dataclass
class Deployer:
    """Deploy / refresh / delete against the store; see the module docstring for the algorithm.

    ``clock_ns`` gives unix nanoseconds (ids and timestamps); tests inject a fixed one.
    """

    store: StateStore
    replicas: ReplicaView
    node: CapacitySource
    clock_ns: Callable[[], int] = time.time_ns

    def deploy(
        self, data: str | bytes, *, file_name: str, project_dir: str | Path, force: bool = False
    ) -> list[DeployOutcome]:
        """Deploy every API of one file; SpecError (nothing stored) when the file is invalid."""
        apis = load_apis(data, file_name=file_name)
        validate_cluster(apis, deployed=self.store.list_apis(), node=self.node.capacity())
        ordered = [a for a in apis if a.kind != Kind.TRAFFIC_SPLITTER] + [
            a for a in apis if a.kind == Kind.TRAFFIC_SPLITTER
        ]
        outcomes = [self._deploy_one(api, str(project_dir), force=force) for api in ordered]
        if any(o.changed for o in outcomes):
            self.replicas.notify()
        return outcomes

    def refresh(self, name: str, *, force: bool = False) -> DeployOutcome:
        """Roll every replica of a RealtimeAPI/AsyncAPI: same spec, new ``deployment_id``."""
        rec = self._deployed(name)
        if rec.kind not in SCALED_KINDS:
            raise UnsupportedOperationError(
                "this operation is only allowed for RealtimeAPI or AsyncAPI kinds and is not "
                f"supported for {name} of kind {rec.kind}"
            )
        if not force and self.is_updating(rec):
            raise ConflictError(f"{name} is updating (override with --force)")
        now = self.clock_ns()
        deployment_id = resolved.new_deployment_id()
        new = replace(
            rec,
            deployment_id=deployment_id,
            api_id=resolved.api_id(rec.spec_id, deployment_id, now),
            last_updated=now / 1e9,
        )
        self.store.put_api(new)
        self.replicas.notify()
        return DeployOutcome(name, new, f"updating {name} ({rec.kind})", changed=True)

    def delete(self, name: str, *, keep_cache: bool = False) -> str:
        """Forget the API (the reconciler then stops its replicas); refuse while a
        TrafficSplitter routes to it. ``keep_cache`` keeps its version history."""
        self._deployed(name)
        users = self.splitters_using(name)
        if users:
            raise ConflictError(
                "cannot delete api because it is used by the following "
                f"{_plural('TrafficSplitter', users)}: {', '.join(users)}"
            )
        self.store.delete_api(name, keep_versions=keep_cache)
        self.replicas.notify()
        return f"deleting {name}"

    def splitters_using(self, name: str) -> list[str]:
        """Names of deployed TrafficSplitters that have ``name`` among their targets, sorted."""
        return [
            rec.name
            for rec in self.store.list_apis()
            if rec.kind == Kind.TRAFFIC_SPLITTER
            and any(t.name == name for t in spec_of(rec).apis or ())
        ]

    def is_updating(self, rec: ApiRecord) -> bool:
        """SPEC 12.2: fewer latest-version Ready replicas than ``min_replicas``, none failed."""
        autoscaling = spec_of(rec).autoscaling
        min_replicas = autoscaling.min_replicas if autoscaling else 0
        counts = self.replicas.replica_counts(rec.name)
        return counts.ready < min_replicas and counts.total_failed == 0

    # --- per API -------------------------------------------------------------------------------

    def _deployed(self, name: str) -> ApiRecord:
        rec = self.store.get_api(name)
        if rec is None:
            raise NotDeployedError(f"{name} is not deployed")
        return rec

    def _deploy_one(self, api: ApiSpec, project_dir: str, *, force: bool) -> DeployOutcome:
        existing = self.store.get_api(api.name)
        try:
            if existing is not None and existing.kind != api.kind:
                raise ConflictError(
                    f"cannot change the kind of {api.name} to {api.kind} because it has already "
                    f"been deployed with kind {existing.kind}; please delete it with `cortex "
                    f"delete {api.name}` and redeploy after updating the api configuration "
                    "appropriately"
                )
            if api.kind in SCALED_KINDS:
                return self._deploy_scaled(api, existing, project_dir, force=force)
            return self._deploy_unscaled(api, existing, project_dir)
        except CortexError as exc:
            return DeployOutcome(api.name, None, error=f"error: {exc.message}")

    def _deploy_scaled(
        self, api: ApiSpec, existing: ApiRecord | None, project_dir: str, *, force: bool
    ) -> DeployOutcome:
        label = f"{api.name} ({api.kind})"
        if existing is None:
            rec = self._record(api, project_dir, resolved.new_deployment_id(), None)
            rec = replace(rec, requested=_requested(api, None))
            return self._store(rec, f"creating {label}")
        updating = self.is_updating(existing)
        if existing.spec_id == resolved.spec_id(api):
            message = f"{label} is already updating" if updating else f"{label} is up to date"
            return DeployOutcome(api.name, existing, message)
        if updating and not force:
            raise ConflictError(f"{api.name} is updating (override with --force)")
        rec = self._record(api, project_dir, existing.deployment_id, existing)
        rec = replace(rec, requested=_requested(api, existing.requested))
        return self._store(rec, f"updating {label}")

    def _deploy_unscaled(
        self, api: ApiSpec, existing: ApiRecord | None, project_dir: str
    ) -> DeployOutcome:
        label = f"{api.name} ({api.kind})"
        if existing is None:
            return self._store(self._record(api, project_dir, "", None), f"created {label}")
        if existing.spec_id == resolved.spec_id(api):
            return DeployOutcome(api.name, existing, f"{label} is up to date")
        return self._store(self._record(api, project_dir, "", existing), f"updated {label}")

    def _record(
        self, api: ApiSpec, project_dir: str, deployment_id: str, existing: ApiRecord | None
    ) -> ApiRecord:
        """A new version of ``api``: fresh api_id; initial time kept from ``existing``."""
        now = self.clock_ns()
        spec_id = resolved.spec_id(api)
        return ApiRecord(
            name=api.name,
            kind=str(api.kind),
            api_id=resolved.api_id(spec_id, deployment_id, now),
            spec_id=spec_id,
            pod_id=resolved.pod_id(api),
            deployment_id=deployment_id,
            initial_deployment_time_ns=existing.initial_deployment_time_ns if existing else now,
            last_updated=now / 1e9,
            submitted=api.submitted_api_spec,
            file_name=api.file_name,
            project_dir=project_dir,
            requested=0,
            index=api.index,
        )

    def _store(self, rec: ApiRecord, message: str) -> DeployOutcome:
        self.store.put_api(rec)
        return DeployOutcome(rec.name, rec, message, changed=True)


def _requested(api: ApiSpec, existing: int | None) -> int:
    """Desired replicas after a deploy (SPEC 1.5, :func:`autoscaler.deploy_replicas`):
    ``init_replicas`` on create; on update the current count (a RealtimeAPI at 0 gets
    ``init_replicas``), clamped to the new ``[min_replicas, max_replicas]``."""
    if api.autoscaling is None or api.pod is None:  # never for Realtime/Async after parsing
        return 0
    params = AutoscalingParams.from_spec(api.autoscaling, api.pod.max_concurrency)
    return deploy_replicas(api.kind, params, existing=existing)
