"""The routing table the operator publishes and the gateway serves from.

The gateway keeps its own copy and goes on serving from it while the operator is down. It
fetches it with ``POST /internal/gateway/sync`` (a long poll, see :class:`SyncRequest`), which
also carries the gateway's per-replica in-flight counts back to the operator (for draining during
rolling updates, and for the autoscaler).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Upstream:
    replica_id: str
    host: str
    port: int


@dataclass(frozen=True)
class RealtimeRoute:
    api_name: str
    endpoint: str  # canonical, e.g. "/iris"
    max_concurrency: int
    max_queue_length: int
    upstreams: tuple[Upstream, ...] = ()  # Ready replicas only
    scaled_to_zero: bool = False  # True while the API has 0 requested replicas (activator waits)


@dataclass(frozen=True)
class SplitTarget:
    api_name: str
    weight: int
    shadow: bool = False


@dataclass(frozen=True)
class SplitterRoute:
    api_name: str
    endpoint: str
    targets: tuple[SplitTarget, ...]


@dataclass(frozen=True)
class AsyncRoute:
    """An AsyncAPI: the gateway stores and enqueues submissions itself (SPEC 4)."""

    api_name: str
    endpoint: str
    queue_name: str


@dataclass(frozen=True)
class JobRoute:
    """A BatchAPI or TaskAPI: the gateway forwards ``<endpoint>`` (exact path, any method, with
    the query string) to the operator's ``/batch/<api_name>`` or ``/tasks/<api_name>``."""

    api_name: str
    endpoint: str
    kind: str  # "BatchAPI" or "TaskAPI"


@dataclass(frozen=True)
class RouteTable:
    version: int = 0
    realtime: tuple[RealtimeRoute, ...] = ()
    splitters: tuple[SplitterRoute, ...] = ()
    async_routes: tuple[AsyncRoute, ...] = ()
    jobs: tuple[JobRoute, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RouteTable:
        realtime = tuple(
            RealtimeRoute(
                **{k: v for k, v in r.items() if k != "upstreams"},
                upstreams=tuple(Upstream(**u) for u in r.get("upstreams", ())),
            )
            for r in data.get("realtime", ())
        )
        splitters = tuple(
            SplitterRoute(
                api_name=s["api_name"],
                endpoint=s["endpoint"],
                targets=tuple(SplitTarget(**t) for t in s["targets"]),
            )
            for s in data.get("splitters", ())
        )
        return cls(
            version=int(data.get("version", 0)),
            realtime=realtime,
            splitters=splitters,
            async_routes=tuple(AsyncRoute(**a) for a in data.get("async_routes", ())),
            jobs=tuple(JobRoute(**j) for j in data.get("jobs", ())),
        )


@dataclass
class RequestStats:
    """Cumulative request counters of one API at one gateway since ``gateway_id`` started.

    The operator turns successive snapshots into windowed figures (``cortex get``); a new
    ``gateway_id`` means the gateway restarted and its counters began again at zero.
    """

    count_2xx: int = 0
    count_4xx: int = 0
    count_5xx: int = 0
    latency_sum_s: float = 0.0  # over every answered request
    latency_count: int = 0


@dataclass
class SyncRequest:
    """Body of ``POST /internal/gateway/sync``.

    The operator answers at once with the table if its version differs from ``version``,
    otherwise it waits up to ``wait_s`` for a change and then answers the (same) table.
    """

    version: int
    in_flight: dict[str, int] = field(default_factory=dict)  # replica_id -> queued + running
    wait_s: float = 1.0
    gateway_id: str = ""  # random per gateway process
    held: dict[str, int] = field(default_factory=dict)  # api_name -> requests the activator holds
    requests: dict[str, RequestStats] = field(default_factory=dict)  # api_name -> counters
