"""Route lookup and replica choice over the current :class:`RouteTable`.

Matching (as Cortex's VirtualService does): a RealtimeAPI at ``/e`` serves ``/e`` and ``/e/<sub>``;
the upstream sees ``/`` or ``/<sub>`` (the endpoint prefix is stripped) plus the query. The longest
matching endpoint wins (``/a/b`` beats ``/a`` for ``/a/b/c``). An AsyncAPI matches the same way
(``/e`` submits, ``/e/<id>`` polls); a BatchAPI or TaskAPI (a :class:`JobRoute`) and a
TrafficSplitter match their exact endpoint only. Per request a TrafficSplitter picks one
non-shadow target at random in proportion to the weights, and with probability
``shadow.weight / 100`` also mirrors the request to the shadow target.

Replica choice: the Ready upstream with the fewest in-flight requests (queued + running in its
limiter), ties broken at random. Every replica id keeps one :class:`Replica` (limiter and connection
pool) across table updates, so a new table never resets in-flight counts; a replica that leaves
the table is kept as *draining* until its in-flight count reaches zero, so the operator still sees
it in the sync request while it drains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cortex.dataplane.limiter import Limiter
from cortex.dataplane.table import (
    AsyncRoute,
    JobRoute,
    RealtimeRoute,
    RouteTable,
    SplitterRoute,
    Upstream,
)
from cortex.dataplane.upstream import UpstreamPool


class Replica:
    """One upstream replica: its address, its limiter and its pool of keep-alive connections."""

    __slots__ = ("api_name", "limiter", "pool", "replica_id")

    def __init__(self, api_name: str, upstream: Upstream, route: RealtimeRoute) -> None:
        self.api_name = api_name
        self.replica_id = upstream.replica_id
        self.limiter = Limiter(route.max_concurrency, route.max_queue_length)
        self.pool = UpstreamPool(
            upstream.host, upstream.port, max_idle=max(route.max_queue_length, 8)
        )


class RealtimeTarget:
    """A RealtimeAPI as the router serves it: the route and its Ready replicas."""

    __slots__ = ("api_name", "endpoint", "replicas", "route")

    def __init__(self, route: RealtimeRoute, replicas: list[Replica]) -> None:
        self.route = route
        self.api_name = route.api_name
        self.endpoint = route.endpoint
        self.replicas = replicas


class SplitterTarget:
    """A TrafficSplitter: cumulative weights over its non-shadow targets, and the shadow if any."""

    __slots__ = ("api_name", "cumulative", "endpoint", "names", "shadow", "shadow_weight", "total")

    def __init__(self, route: SplitterRoute) -> None:
        self.api_name = route.api_name
        self.endpoint = route.endpoint
        self.names: list[str] = []
        self.cumulative: list[int] = []
        total = 0
        self.shadow: str | None = None
        self.shadow_weight = 0
        for t in route.targets:
            if t.shadow:
                self.shadow, self.shadow_weight = t.api_name, t.weight
            elif t.weight > 0:
                total += t.weight
                self.names.append(t.api_name)
                self.cumulative.append(total)
        self.total = total


@dataclass(slots=True)
class Match:
    """Result of :meth:`Router.match`: the API (realtime or splitter) and the upstream path."""

    target: RealtimeTarget | SplitterTarget | AsyncRoute | JobRoute
    upstream_path: bytes  # "/" or "/<subpath>", plus "?query" when present


class Router:
    """Holds the current table; :meth:`update` swaps it in place, keeping replicas by id."""

    def __init__(
        self, table: RouteTable | None = None, *, rng: random.Random | None = None
    ) -> None:
        self._rng = rng or random.Random()
        self._replicas: dict[str, Replica] = {}
        self._draining: dict[str, Replica] = {}
        self._exact: dict[str, RealtimeTarget | SplitterTarget | AsyncRoute | JobRoute] = {}
        self._prefix: dict[str, RealtimeTarget | AsyncRoute] = {}
        self._by_name: dict[str, RealtimeTarget] = {}
        self.table = RouteTable()
        self.update(table or RouteTable())

    def update(self, table: RouteTable) -> None:
        """Serve ``table`` from now on; replicas still present keep their limiter and pool."""
        old = self._replicas
        replicas: dict[str, Replica] = {}
        by_name: dict[str, RealtimeTarget] = {}
        for route in table.realtime:
            members = [self._keep_replica(old, replicas, route, u) for u in route.upstreams]
            by_name[route.api_name] = RealtimeTarget(route, members)
        for rid, rep in old.items():
            if rid not in replicas:
                rep.pool.close()
                self._draining[rid] = rep
        self._replicas = replicas
        self._by_name = by_name
        prefix: dict[str, RealtimeTarget | AsyncRoute] = {t.endpoint: t for t in by_name.values()}
        for a in table.async_routes:
            prefix[a.endpoint] = a
        exact: dict[str, RealtimeTarget | SplitterTarget | AsyncRoute | JobRoute] = dict(prefix)
        for s in table.splitters:
            exact[s.endpoint] = SplitterTarget(s)
        for j in table.jobs:
            exact[j.endpoint] = j
        self._prefix = prefix
        self._exact = exact
        self.table = table
        self._prune_draining()

    def _keep_replica(
        self, old: dict[str, Replica], new: dict[str, Replica], route: RealtimeRoute, up: Upstream
    ) -> Replica:
        rep = old.get(up.replica_id) or self._draining.pop(up.replica_id, None)
        if rep is None or (rep.pool.host, rep.pool.port) != (up.host, up.port):
            fresh = Replica(route.api_name, up, route)
            if rep is not None:  # same id, new address: carry the in-flight count over
                fresh.limiter = rep.limiter
                rep.pool.close()
            rep = fresh
        rep.limiter.resize(route.max_concurrency, route.max_queue_length)
        new[up.replica_id] = rep
        return rep

    def _prune_draining(self) -> None:
        for rid in [r for r, rep in self._draining.items() if rep.limiter.in_flight == 0]:
            self._draining.pop(rid).pool.close()

    def match(self, path: bytes) -> Match | None:
        """Find the API for a request target (``path[?query]``, bytes as received)."""
        q = path.find(b"?")
        if q >= 0:
            route_path, query = path[:q].decode("latin-1"), path[q:]
        else:
            route_path, query = path.decode("latin-1"), b""
        hit = self._exact.get(route_path)
        if hit is not None:
            return Match(hit, b"/" + query)
        cut = route_path.rfind("/")
        while cut >= 0:
            prefix = route_path[:cut] or "/"
            rt = self._prefix.get(prefix)
            if rt is not None:
                sub = route_path[cut:] if prefix != "/" else route_path
                return Match(rt, sub.encode("latin-1") + query)
            if cut == 0:
                break
            cut = route_path.rfind("/", 0, cut)
        return None

    def pick_split(
        self, target: SplitterTarget
    ) -> tuple[RealtimeTarget | None, RealtimeTarget | None]:
        """(chosen target, shadow target or None) for one request through a splitter.

        The chosen one is None when the chosen API is not in the table (not deployed yet)."""
        chosen: RealtimeTarget | None = None
        if target.total > 0:
            x = self._rng.random() * target.total
            for name, bound in zip(target.names, target.cumulative, strict=True):
                if x < bound:
                    chosen = self._by_name.get(name)
                    break
        shadow: RealtimeTarget | None = None
        if target.shadow is not None and self._rng.random() * 100 < target.shadow_weight:
            shadow = self._by_name.get(target.shadow)
        return chosen, shadow

    def pick_replica(self, target: RealtimeTarget) -> Replica | None:
        """The replica with the fewest in-flight requests (random tie-break); None if none."""
        reps = target.replicas
        if len(reps) <= 1:
            return reps[0] if reps else None
        best = min(r.limiter.in_flight for r in reps)
        ties = [r for r in reps if r.limiter.in_flight == best]
        return ties[0] if len(ties) == 1 else self._rng.choice(ties)

    def target_by_name(self, api_name: str) -> RealtimeTarget | None:
        return self._by_name.get(api_name)

    def in_flight(self) -> dict[str, int]:
        """replica_id -> queued + running, for every current and still-draining replica."""
        self._prune_draining()
        counts = {rid: rep.limiter.in_flight for rid, rep in self._replicas.items()}
        for rid, rep in self._draining.items():
            counts[rid] = rep.limiter.in_flight
        return counts

    def replicas(self) -> list[Replica]:
        """Current and draining replicas (for metrics and shutdown)."""
        return [*self._replicas.values(), *self._draining.values()]

    def close(self) -> None:
        """Close every idle upstream connection (shutdown)."""
        for rep in self.replicas():
            rep.pool.close()
