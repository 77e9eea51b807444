"""The gateway's Prometheus metrics, on their own registry (SPEC 13.1, local placement).

* ``cortex_in_flight_requests{api_name,replica}`` (gauge): queued + running per replica, read
  from the limiters when scraped.
* ``cortex_requests_total{api_name,status_code}`` (counter).
* ``cortex_request_duration_seconds{api_name}`` (histogram, prometheus-client's default buckets).

Why a custom collector instead of prometheus-client's ``Counter``/``Histogram`` children: the
gateway runs on one event loop, so the thread-safe children (a lock per update, several calls
per observation) are pure overhead on the hot path. :meth:`GatewayMetrics.observe` does a dict
lookup, a bisect and three integer/float additions on per-API plain objects; the Prometheus
families are built from them only when ``/_cortex/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cortex.dataplane.table import RequestStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

InFlightSource = Callable[[], Iterable[tuple[str, str, int]]]  # (api_name, replica_id, in_flight)


class ApiStats:
    """Counts for one API: requests per status, and a duration histogram (non-cumulative)."""

    __slots__ = ("buckets", "by_status", "count", "sum_s")

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS_S) + 1)  # last one is +Inf
        self.sum_s = 0.0
        self.count = 0


class _GatewayCollector(Collector):
    def __init__(self, stats: dict[str, ApiStats], in_flight: InFlightSource) -> None:
        self._stats = stats
        self._in_flight = in_flight

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "cortex_in_flight_requests",
            "The number of in-flight requests for a cortex API",
            labels=["api_name", "replica"],
        )
        for api_name, replica, value in self._in_flight():
            gauge.add_metric([api_name, replica], value)
        yield gauge
        counter = CounterMetricFamily(
            "cortex_requests",
            "Requests answered by the gateway, per API and status code",
            labels=["api_name", "status_code"],
        )
        hist = HistogramMetricFamily(
            "cortex_request_duration_seconds",
            "Time from the complete request to the end of the response, per API",
            labels=["api_name"],
        )
        for api_name, s in sorted(self._stats.items()):
            for status, n in sorted(s.by_status.items()):
                counter.add_metric([api_name, str(status)], n)
            cumulative, acc = [], 0
            for bound, n in zip((*map(str, BUCKETS_S), "+Inf"), s.buckets, strict=True):
                acc += n
                cumulative.append((bound, float(acc)))
            hist.add_metric([api_name], cumulative, s.sum_s)
        yield counter
        yield hist


class GatewayMetrics:
    """Owns the registry; :meth:`observe` is the one call on the request path."""

    def __init__(self, in_flight_source: InFlightSource) -> None:
        self._stats: dict[str, ApiStats] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_GatewayCollector(self._stats, in_flight_source))

    def observe(self, api_name: str, status_code: int, duration_s: float) -> None:
        s = self._stats.get(api_name)
        if s is None:
            s = self._stats[api_name] = ApiStats()
        s.by_status[status_code] = s.by_status.get(status_code, 0) + 1
        s.buckets[bisect_left(BUCKETS_S, duration_s)] += 1
        s.sum_s += duration_s
        s.count += 1

    def stats(self, api_name: str) -> ApiStats | None:
        return self._stats.get(api_name)

    def request_stats(self) -> dict[str, RequestStats]:
        """Cumulative per-API counters for the operator sync (``SyncRequest.requests``), derived
        from the same objects :meth:`observe` updates, so the hot path pays nothing extra."""
        out: dict[str, RequestStats] = {}
        for api_name, s in self._stats.items():
            r = RequestStats(latency_sum_s=s.sum_s, latency_count=s.count)
            for status, n in s.by_status.items():
                if 200 <= status < 300:
                    r.count_2xx += n
                elif 400 <= status < 500:
                    r.count_4xx += n
                elif status >= 500:
                    r.count_5xx += n
            out[api_name] = r
        return out

    def render(self) -> bytes:
        """The exposition text for ``GET /_cortex/metrics``."""
        return generate_latest(self.registry)
