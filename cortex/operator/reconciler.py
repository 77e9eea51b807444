"""The reconciler: drives every RealtimeAPI / AsyncAPI toward its stored replica count and
version, drains replicas before deleting them, and publishes the gateway's route table.

One :meth:`Reconciler.step` is a level-triggered pass: it reads the target (the store) and
what runs (the backend) and acts on the difference, so running it twice in a row does nothing
the second time. Per API it asks :func:`~cortex.operator.rollout.plan_rollout` for one step of
the rolling update, creates the new replicas at once, and *drains* the ones to delete:

1. a replica chosen for deletion leaves the route table at once (the table's version goes
   up) and from then on is treated as Terminating (counts and plans ignore it);
2. it is deleted from the backend when the gateway has acked a table version without it and
   reports nothing in flight on it, or when ``drain_timeout_s`` has passed, or at once when no
   gateway has synced recently (there is nothing to drain from).

Replicas of RealtimeAPI/AsyncAPI kinds whose API is no longer stored are drained and deleted
the same way. BatchAPI/TaskAPI replicas belong to the job manager and are never touched here.

Errors are caught and logged per API (one broken API does not stop the others) and per step
in :meth:`Reconciler.run`, which never returns except by cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cortex.backends.base import Backend, ReplicaInfo, ReplicaStatus, ReplicaTemplate
from cortex.dataplane.table import (
    AsyncRoute,
    JobRoute,
    RealtimeRoute,
    RouteTable,
    SplitterRoute,
    SyncRequest,
)
from cortex.errors import NotDeployedError
from cortex.operator.gateway_sync import GatewaySync
from cortex.operator.replica_counts import ReplicaCounts, count_replicas
from cortex.operator.rollout import plan_rollout
from cortex.operator.routes_table import (
    async_route,
    job_route,
    realtime_route,
    route_table,
    splitter_route,
)
from cortex.operator.store import ApiRecord, StateStore
from cortex.queue.names import async_queue_name
from cortex.spec.kinds import SCALED_KINDS, Kind
from cortex.spec.models import ApiSpec, PodSpec
from cortex.spec.parse import parse_api
from cortex.spec.resolved import surge_and_unavailable

log = logging.getLogger(__name__)

# The pod an AsyncAPI replica runs: the user's containers plus the dequeuer sidecar
# (cortex.operator.async_apis.AsyncSidecar.pod).
AsyncPod = Callable[[ApiRecord, ApiSpec], PodSpec]


@dataclass
class _Routes:
    """The routes of one table, gathered per kind while walking the stored APIs."""

    realtime: list[RealtimeRoute] = field(default_factory=list)
    splitters: list[SplitterRoute] = field(default_factory=list)
    async_routes: list[AsyncRoute] = field(default_factory=list)
    jobs: list[JobRoute] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        store: StateStore,
        backend: Backend,
        *,
        period_s: float = 1.0,
        drain_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        initial_version: int | None = None,
        async_pod: AsyncPod | None = None,
        gateway_required: bool = False,
    ) -> None:
        """``initial_version`` (default: wall-clock milliseconds) is the route table's first
        version; starting from the clock keeps versions increasing across operator restarts,
        so a gateway's cached table never looks current to a new operator. ``async_pod`` builds
        an AsyncAPI replica's pod (user containers + dequeuer); without it the user's pod runs
        as written (tests of the rollout machinery)."""
        self.period_s = period_s
        self.drain_timeout_s = drain_timeout_s
        self._store = store
        self._backend = backend
        self._clock = clock
        if initial_version is None:
            initial_version = time.time_ns() // 1_000_000
        self._gateway = GatewaySync(clock=clock, initial_version=initial_version)
        self._wake = asyncio.Event()
        self._draining: dict[str, float] = {}  # replica id -> when its drain started
        self._removed_in: dict[str, int | None] = {}  # replica id -> first version without it
        self._routed_in: dict[str, int] = {}  # replica id -> first version that routes to it
        self._replica_api: dict[str, str] = {}  # replica id -> API name, as of the last step
        self._specs: dict[str, tuple[str, ApiSpec]] = {}  # API name -> (api_id, parsed spec)
        self._gateway_required = gateway_required
        backend.add_listener(self.notify)  # a replica changed state: step now, not next period
        self._async_pod = async_pod

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Step every ``period_s`` or sooner when notified; survives any error of a step."""
        while True:
            self._wake.clear()
            try:
                self.step()
            except Exception:
                log.exception("reconcile step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.period_s)

    def notify(self) -> None:
        """Ask :meth:`run` for a step now (after a deploy, delete, scale or gateway ack)."""
        self._wake.set()

    def step(self) -> None:
        """One level-triggered pass over every stored API (see the module docstring)."""
        now = self._clock()
        records = {rec.name: rec for rec in self._store.list_apis()}
        replicas = self._backend.list_replicas()
        self._replica_api = {r.replica_id: r.api_name for r in replicas}
        owned, orphans = self._owned_by_api(replicas, records)
        for rec in records.values():
            try:
                self._reconcile_api(rec, owned.get(rec.name, []), now)
            except Exception:
                log.exception("reconciling %s failed", rec.name)
        for replica in orphans:
            self._start_drain(replica, now)
        self._publish_routes(records, replicas)
        self._finish_drains(replicas, now)
        self._forget_specs(records)

    # --- what others read --------------------------------------------------------------------

    def route_table(self) -> RouteTable:
        return self._gateway.table

    async def sync_gateway(self, req: SyncRequest) -> RouteTable:
        """The gateway's long poll (see :mod:`cortex.operator.gateway_sync`); an ack while
        replicas drain wakes the loop so their deletion does not wait for the next period."""
        if self._draining:
            self.notify()
        return await self._gateway.sync(req)

    def in_flight(self, api_name: str) -> float:
        """The API's in-flight requests (queued + running), summed over its replicas, as the
        gateway last reported them."""
        ids = [rid for rid, name in self._replica_api.items() if name == api_name]
        return self._gateway.in_flight(ids)

    def replica_counts(self, api_name: str) -> ReplicaCounts:
        """SPEC 12.2 counts of a deployed API; draining replicas count as Terminating."""
        rec = self._store.get_api(api_name)
        if rec is None:
            raise NotDeployedError(f"{api_name} is not deployed")
        replicas = [
            self._as_seen(r)
            for r in self._backend.list_replicas(api_name)
            if r.job_id is None and r.api_kind == rec.kind
        ]
        return count_replicas(
            replicas, pod_id=rec.pod_id, deployment_id=rec.deployment_id, requested=rec.requested
        )

    # --- one API -----------------------------------------------------------------------------

    @staticmethod
    def _owned_by_api(
        replicas: Iterable[ReplicaInfo], records: dict[str, ApiRecord]
    ) -> tuple[dict[str, list[ReplicaInfo]], list[ReplicaInfo]]:
        """Replicas this reconciler manages (scaled kinds, not jobs) by API name, and the
        orphans among them: their API is gone or was redeployed as another kind."""
        owned: dict[str, list[ReplicaInfo]] = defaultdict(list)
        orphans: list[ReplicaInfo] = []
        for replica in replicas:
            if replica.job_id is not None or replica.api_kind not in SCALED_KINDS:
                continue
            rec = records.get(replica.api_name)
            if rec is not None and rec.kind == replica.api_kind:
                owned[replica.api_name].append(replica)
            else:
                orphans.append(replica)
        return owned, orphans

    def _reconcile_api(self, rec: ApiRecord, replicas: list[ReplicaInfo], now: float) -> None:
        if rec.kind not in SCALED_KINDS:
            return
        api = self._spec(rec)
        if api.update_strategy is None or api.pod is None:
            raise ValueError(f"{rec.name} ({rec.kind}) has no pod or update_strategy")
        desired = max(rec.requested, 0)
        surge, unavailable = surge_and_unavailable(api.update_strategy, desired)
        plan = plan_rollout(
            desired=desired,
            pod_id=rec.pod_id,
            deployment_id=rec.deployment_id,
            replicas=[self._as_seen(r) for r in replicas],
            max_surge=surge,
            max_unavailable=unavailable,
        )
        by_id = {r.replica_id: r for r in replicas}
        for replica_id in plan.delete:
            self._start_drain(by_id[replica_id], now)
        if plan.create:
            template = ReplicaTemplate(
                api_name=rec.name,
                api_kind=rec.kind,
                api_id=rec.api_id,
                pod_id=rec.pod_id,
                deployment_id=rec.deployment_id,
                pod=self._pod(rec, api),
                project_dir=Path(rec.project_dir),
            )
            for _ in range(plan.create):
                created = self._backend.create_replica(template)
                log.info("created replica %s of %s", created.replica_id, rec.name)

    def _pod(self, rec: ApiRecord, api: ApiSpec) -> PodSpec:
        """The pod a new replica runs: AsyncAPI replicas get the dequeuer sidecar."""
        if rec.kind == Kind.ASYNC_API and self._async_pod is not None:
            return self._async_pod(rec, api)
        if api.pod is None:
            raise ValueError(f"{rec.name} ({rec.kind}) has no pod")
        return api.pod

    def _spec(self, rec: ApiRecord) -> ApiSpec:
        """The record's spec, parsed once per api_id."""
        cached = self._specs.get(rec.name)
        if cached is not None and cached[0] == rec.api_id:
            return cached[1]
        api = parse_api(rec.submitted, file_name=rec.file_name, index=rec.index)
        self._specs[rec.name] = (rec.api_id, api)
        return api

    def _forget_specs(self, records: dict[str, ApiRecord]) -> None:
        for name in [n for n in self._specs if n not in records]:
            del self._specs[name]

    # --- draining ----------------------------------------------------------------------------

    def _as_seen(self, replica: ReplicaInfo) -> ReplicaInfo:
        """A draining replica is already on its way out: show it as Terminating. A Ready
        RealtimeAPI replica the gateway does not route to yet shows as NotReady, so "ready"
        (in counts, ``wait=True`` and rollouts) means "answering requests through the
        gateway". Without a gateway to ask, the backend's word stands."""
        if replica.replica_id in self._draining and replica.status != ReplicaStatus.TERMINATING:
            return dataclasses.replace(replica, status=ReplicaStatus.TERMINATING)
        if replica.status == ReplicaStatus.READY and not self._routed(replica):
            return dataclasses.replace(replica, status=ReplicaStatus.NOT_READY)
        return replica

    def _routed(self, replica: ReplicaInfo) -> bool:
        """Whether the gateway serves from a table that routes to this replica. Without a
        gateway in touch, the answer is ``gateway_required``'s opposite: a real cluster always
        has one (a gateway that has not synced since this operator started, e.g. right after an
        operator restart, still routes by its old table), unit tests of the reconciler don't."""
        if replica.api_kind != Kind.REALTIME_API:
            return True
        if not self._gateway.gateway_present():
            return not self._gateway_required
        routed_in = self._routed_in.get(replica.replica_id)
        acked = self._gateway.acked_version
        return routed_in is not None and acked is not None and acked >= routed_in

    def _start_drain(self, replica: ReplicaInfo, now: float) -> None:
        if replica.replica_id in self._draining or replica.status == ReplicaStatus.TERMINATING:
            return
        log.info("draining replica %s of %s", replica.replica_id, replica.api_name)
        self._draining[replica.replica_id] = now

    def _drained(self, replica_id: str, started: float, now: float) -> bool:
        if not self._gateway.gateway_present():
            return True
        if now - started >= self.drain_timeout_s:
            log.warning("replica %s did not drain in %.0f s", replica_id, self.drain_timeout_s)
            return True
        # Never routed by this operator: the gateway only has to serve the current table.
        removed_in = self._removed_in.get(replica_id, self._gateway.table.version)
        return removed_in is not None and self._gateway.released(replica_id, removed_in)

    def _finish_drains(self, replicas: Iterable[ReplicaInfo], now: float) -> None:
        listed = {r.replica_id for r in replicas}
        for replica_id, started in list(self._draining.items()):
            if replica_id not in listed:
                del self._draining[replica_id]
            elif self._drained(replica_id, started, now):
                self._delete(replica_id)
        for replica_id in [r for r in self._removed_in if r not in listed]:
            del self._removed_in[replica_id]

    def _delete(self, replica_id: str) -> None:
        """Delete a drained replica; on failure it stays draining and the next step retries."""
        try:
            self._backend.delete_replica(replica_id)
        except Exception:
            log.exception("deleting replica %s failed", replica_id)
            return
        log.info("deleted replica %s", replica_id)
        del self._draining[replica_id]

    # --- routes ------------------------------------------------------------------------------

    def _publish_routes(self, records: dict[str, ApiRecord], replicas: list[ReplicaInfo]) -> None:
        """Rebuild the table; its version goes up only when its content changed."""
        serving = defaultdict(list)
        for replica in replicas:
            if replica.replica_id not in self._draining and replica.job_id is None:
                serving[replica.api_name].append(replica)
        routes = _Routes()
        for rec in records.values():
            try:
                self._add_route(rec, serving.get(rec.name, []), routes)
            except Exception:
                log.exception("building the route of %s failed", rec.name)
        table = self._gateway.publish(
            route_table(
                routes.realtime,
                routes.splitters,
                async_routes=routes.async_routes,
                jobs=routes.jobs,
            )
        )
        self._track_routed(table)

    def _add_route(self, rec: ApiRecord, replicas: list[ReplicaInfo], routes: _Routes) -> None:
        if rec.kind == Kind.REALTIME_API:
            mine = [r for r in replicas if r.api_kind == rec.kind]
            routes.realtime.append(realtime_route(self._spec(rec), mine, requested=rec.requested))
        elif rec.kind == Kind.TRAFFIC_SPLITTER:
            routes.splitters.append(splitter_route(self._spec(rec)))
        elif rec.kind == Kind.ASYNC_API:
            queue = async_queue_name(rec.name, rec.initial_deployment_time_ns)
            routes.async_routes.append(async_route(self._spec(rec), queue_name=queue))
        elif rec.kind in (Kind.BATCH_API, Kind.TASK_API):
            routes.jobs.append(job_route(self._spec(rec)))

    def _track_routed(self, table: RouteTable) -> None:
        """Remember, per replica, the first table version that no longer routes to it."""
        routed = {u.replica_id for route in table.realtime for u in route.upstreams}
        for replica_id in routed:
            self._removed_in[replica_id] = None
            self._routed_in.setdefault(replica_id, table.version)
        for replica_id in [r for r in self._routed_in if r not in routed]:
            del self._routed_in[replica_id]
        for replica_id, removed_in in self._removed_in.items():
            if removed_in is None and replica_id not in routed:
                self._removed_in[replica_id] = table.version
