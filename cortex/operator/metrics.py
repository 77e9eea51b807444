"""The operator's Prometheus metrics (``GET /metrics``), read from the store and the backend at
scrape time, so they cannot drift from what ``cortex get`` shows.

- ``cortex_apis{kind}``: deployed APIs per kind (every kind present, 0 included);
- ``cortex_replicas{api_name, status}``: replicas per API and status (SPEC 12.2 statuses);
- ``cortex_requested_replicas{api_name}``: desired replicas of RealtimeAPI/AsyncAPI;
- ``cortex_in_flight_requests{api_name}``: the in-flight average (SPEC 1.2) of the latest
  autoscaler tick, and ``cortex_autoscaler_recommendation{api_name}`` that tick's
  recommendation (before stabilization); APIs without metrics yet have no sample;
- ``cortex_async_queued{api_name, api_kind}`` (visible messages), ``cortex_async_active``
  (messages being processed) and ``cortex_async_in_flight`` (their sum, the AsyncAPI
  autoscaling signal), per AsyncAPI, ``api_kind="AsyncAPI"`` (SPEC 13.1), as last read;
- ``cortex_node_capacity{resource}`` / ``cortex_node_requested{resource}``: the local node's
  allocatable resources and what replicas hold (cpu in cores, mem in bytes, gpu in devices).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cortex.backends.base import Backend
from cortex.operator.autoscaling_loop import AutoscalingLoop
from cortex.operator.store import StateStore
from cortex.queue import QueueCounts
from cortex.spec.kinds import SCALED_KINDS, Kind

# API name -> the latest counts of its queue (AsyncApis.all_counts)
QueueFigures = Callable[[], Mapping[str, QueueCounts]]


class OperatorCollector(Collector):
    def __init__(
        self,
        store: StateStore,
        backend: Backend,
        autoscaling: AutoscalingLoop | None = None,
        queues: QueueFigures | None = None,
    ) -> None:
        self._store = store
        self._backend = backend
        self._autoscaling = autoscaling
        self._queues = queues

    def collect(self) -> Iterator[Metric]:
        records = self._store.list_apis()
        apis = GaugeMetricFamily("cortex_apis", "Deployed APIs by kind", labels=["kind"])
        kinds = Counter(rec.kind for rec in records)
        for kind in Kind:
            apis.add_metric([kind.value], kinds.get(kind.value, 0))
        yield apis

        requested = GaugeMetricFamily(
            "cortex_requested_replicas", "Desired replicas", labels=["api_name"]
        )
        for rec in records:
            if rec.kind in SCALED_KINDS:
                requested.add_metric([rec.name], rec.requested)
        yield requested

        replicas = GaugeMetricFamily(
            "cortex_replicas", "Replicas by API and status", labels=["api_name", "status"]
        )
        statuses = Counter((r.api_name, r.status.value) for r in self._backend.list_replicas())
        for (api_name, status), count in sorted(statuses.items()):
            replicas.add_metric([api_name, status], count)
        yield replicas
        yield from self._autoscaler()
        yield from self._async_queues()
        yield from self._node()

    def _autoscaler(self) -> Iterator[Metric]:
        if self._autoscaling is None:
            return
        in_flight = GaugeMetricFamily(
            "cortex_in_flight_requests",
            "In-flight requests averaged over the autoscaling window",
            labels=["api_name"],
        )
        recommendation = GaugeMetricFamily(
            "cortex_autoscaler_recommendation",
            "The autoscaler's latest recommendation",
            labels=["api_name"],
        )
        for name, (avg, rec) in self._autoscaling.figures().items():
            if avg is not None:
                in_flight.add_metric([name], avg)
            if rec is not None:
                recommendation.add_metric([name], rec)
        yield in_flight
        yield recommendation

    def _async_queues(self) -> Iterator[Metric]:
        if self._queues is None:
            return
        labels = ["api_name", "api_kind"]
        queued = GaugeMetricFamily(
            "cortex_async_queued", "Messages waiting in an AsyncAPI's queue", labels=labels
        )
        active = GaugeMetricFamily(
            "cortex_async_active", "Messages of an AsyncAPI being processed", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "cortex_async_in_flight",
            "Queued plus active messages of an AsyncAPI (its autoscaling signal)",
            labels=labels,
        )
        for name, counts in sorted(self._queues().items()):
            key = [name, Kind.ASYNC_API.value]
            queued.add_metric(key, counts.visible)
            active.add_metric(key, counts.in_flight)
            in_flight.add_metric(key, counts.total)
        yield queued
        yield active
        yield in_flight

    def _node(self) -> Iterator[Metric]:
        node = self._backend.capacity()
        capacity = GaugeMetricFamily(
            "cortex_node_capacity", "Allocatable resources of the node", labels=["resource"]
        )
        held = GaugeMetricFamily(
            "cortex_node_requested", "Resources requested by replicas", labels=["resource"]
        )
        capacity.add_metric(["cpu"], node.cpu_millis / 1000)
        capacity.add_metric(["mem"], node.mem_bytes)
        capacity.add_metric(["gpu"], node.gpus)
        held.add_metric(["cpu"], node.requested_cpu_millis / 1000)
        held.add_metric(["mem"], node.requested_mem_bytes)
        held.add_metric(["gpu"], node.requested_gpus)
        yield capacity
        yield held


def operator_registry(
    store: StateStore,
    backend: Backend,
    autoscaling: AutoscalingLoop | None = None,
    *,
    queues: QueueFigures | None = None,
) -> CollectorRegistry:
    """A registry of its own (not the process-global one), holding the operator's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OperatorCollector(store, backend, autoscaling, queues))
    return registry
