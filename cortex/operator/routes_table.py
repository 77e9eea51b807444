"""Building the gateway's routes from the stored APIs and their replicas (pure functions).

A RealtimeAPI's route lists its Ready replicas of every version as upstreams: during a rolling
update old and new versions both serve until an old replica is chosen for deletion (the
caller leaves draining replicas out). A TrafficSplitter's route lists its targets. An AsyncAPI's
route names its queue: the gateway stores and enqueues submissions itself, so it needs no
upstreams (the replicas' dequeuers pull from the queue). Routes and
upstreams are sorted, so equal content compares equal and the table's version moves only when
something changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from cortex.backends.base import ReplicaInfo
from cortex.dataplane.table import (
    AsyncRoute,
    JobRoute,
    RealtimeRoute,
    RouteTable,
    SplitTarget,
    SplitterRoute,
    Upstream,
)
from cortex.spec.models import ApiSpec
from cortex.spec.resolved import endpoint


def upstreams_of(replicas: Iterable[ReplicaInfo]) -> tuple[Upstream, ...]:
    """The Ready replicas that listen on a port, sorted by id."""
    return tuple(
        Upstream(replica_id=r.replica_id, host=r.host, port=r.port)
        for r in sorted(replicas, key=lambda r: r.replica_id)
        if r.ready and r.port is not None
    )


def realtime_route(
    api: ApiSpec, replicas: Iterable[ReplicaInfo], *, requested: int
) -> RealtimeRoute:
    if api.pod is None:
        raise ValueError(f"{api.name} ({api.kind}) has no pod")
    return RealtimeRoute(
        api_name=api.name,
        endpoint=endpoint(api),
        max_concurrency=api.pod.max_concurrency,
        max_queue_length=api.pod.max_queue_length,
        upstreams=upstreams_of(replicas),
        scaled_to_zero=requested == 0,
    )


def splitter_route(api: ApiSpec) -> SplitterRoute:
    targets = tuple(
        SplitTarget(api_name=t.name, weight=t.weight, shadow=t.shadow) for t in api.apis or ()
    )
    return SplitterRoute(api_name=api.name, endpoint=endpoint(api), targets=targets)


def async_route(api: ApiSpec, *, queue_name: str) -> AsyncRoute:
    """An AsyncAPI's route: where submissions to its endpoint are enqueued."""
    return AsyncRoute(api_name=api.name, endpoint=endpoint(api), queue_name=queue_name)


def job_route(api: ApiSpec) -> JobRoute:
    """A BatchAPI's or TaskAPI's route: the gateway forwards its endpoint to the operator's
    ``/batch/<name>`` or ``/tasks/<name>``."""
    return JobRoute(api_name=api.name, endpoint=endpoint(api), kind=str(api.kind))


def route_table(
    realtime: Iterable[RealtimeRoute],
    splitters: Iterable[SplitterRoute],
    *,
    async_routes: Iterable[AsyncRoute] = (),
    jobs: Iterable[JobRoute] = (),
    version: int = 0,
) -> RouteTable:
    """A table with the routes sorted by API name."""
    return RouteTable(
        version=version,
        realtime=tuple(sorted(realtime, key=lambda r: r.api_name)),
        splitters=tuple(sorted(splitters, key=lambda s: s.api_name)),
        async_routes=tuple(sorted(async_routes, key=lambda a: a.api_name)),
        jobs=tuple(sorted(jobs, key=lambda j: j.api_name)),
    )
