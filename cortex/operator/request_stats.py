"""Request metrics per API over a sliding window (``cortex get``'s avg request and 2XX/4XX/5XX),
built from the gateway's cumulative counters: pure, explicit ``now``, in memory only.

Input. On every sync the gateway sends, per API, :class:`~cortex.dataplane.table.RequestStats`:
cumulative counters since *that gateway process* started, identified by ``gateway_id``.
:meth:`RequestWindow.observe` turns successive snapshots into increments:

* same gateway, every counter >= the last snapshot's: the increment is the difference;
* a gateway (or an API at a gateway) not seen before, or a counter that went down (the
  gateway restarted under an id we had seen): its counters began at zero, so the whole
  snapshot is the increment;
* except for the gateways heard from in the first observation this object ever makes (the
  operator just started while a gateway kept running): their snapshots only set the baseline,
  since their counters hold traffic from before the operator's memory began.

Storage. Increments go into buckets of ``bucket_s`` seconds (60 s for the default 15 minute
window; ``window_s / 15`` for shorter windows, so a short window set for tests still slides
smoothly). A view at ``now`` sums the buckets that start after ``now - window_s``: the current,
partial bucket plus the whole ones before it, i.e. the last ``window_s`` seconds to within one
bucket. Older buckets are dropped on every update. Snapshots of a gateway not heard from for a
whole window are forgotten. Everything is lost on an operator restart, by design (the figures
are a glance, not an audit; Prometheus on the gateway has the durable counters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cortex.dataplane.table import RequestStats

__all__ = ["Counts", "RequestWindow", "bucket_seconds", "increment"]

DEFAULT_BUCKET_S = 60.0
MIN_BUCKETS = 15


def bucket_seconds(window_s: float) -> float:
    """60 s, or ``window_s / 15`` when that is shorter."""
    return min(DEFAULT_BUCKET_S, window_s / MIN_BUCKETS)


@dataclass(frozen=True, slots=True)
class Counts:
    """Request counts and latency total of one API over some span."""

    count_2xx: int = 0
    count_4xx: int = 0
    count_5xx: int = 0
    latency_sum_s: float = 0.0
    latency_count: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def empty(self) -> bool:
        return self == Counts()

    def to_json(self, window_s: float) -> dict[str, Any]:
        """APIResponse ``metrics``: ``avg_latency_ms`` is None without answered requests;
        ``requests`` counts every answered request (2XX + 4XX + 5XX and any other class)."""
        avg = None
        if self.latency_count > 0:
            avg = round(self.latency_sum_s / self.latency_count * 1000.0, 3)
        return {
            "window_s": window_s,
            "avg_latency_ms": avg,
            "count_2xx": self.count_2xx,
            "count_4xx": self.count_4xx,
            "count_5xx": self.count_5xx,
            "requests": max(self.latency_count, self.count_2xx + self.count_4xx + self.count_5xx),
        }


def _as_counts(stats: RequestStats) -> Counts:
    return Counts(
        count_2xx=stats.count_2xx,
        count_4xx=stats.count_4xx,
        count_5xx=stats.count_5xx,
        latency_sum_s=stats.latency_sum_s,
        latency_count=stats.latency_count,
    )


def increment(previous: Counts | None, current: Counts) -> Counts:
    """What happened between two cumulative snapshots of one gateway (see the module
    docstring): the difference, or all of ``current`` when there is no previous snapshot or a
    counter went down (the counters restarted)."""
    if previous is None:
        return current
    pairs = [(getattr(previous, f.name), getattr(current, f.name)) for f in fields(Counts)]
    if any(now < before for before, now in pairs):
        return current
    return Counts(*(now - before for before, now in pairs))


@dataclass
class _Gateway:
    last_seen: float
    snapshots: dict[str, Counts] = field(default_factory=dict)  # api_name -> cumulative


class RequestWindow:
    """Every API's request counts over the last ``window_s`` seconds (see the module docstring).

    Not thread-safe; the operator calls it from its event loop only.
    """

    def __init__(self, window_s: float = 900.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 ({window_s})")
        self.window_s = window_s
        self.bucket_s = bucket_seconds(window_s)
        self._gateways: dict[str, _Gateway] = {}
        self._buckets: dict[str, dict[int, Counts]] = {}  # api_name -> bucket index -> counts
        self._observed = False

    def observe(self, gateway_id: str, requests: Mapping[str, RequestStats], *, now: float) -> None:
        """Record one sync's cumulative counters from ``gateway_id`` at ``now``."""
        baseline_only = not self._observed and gateway_id not in self._gateways
        self._observed = True
        gateway = self._gateways.setdefault(gateway_id, _Gateway(last_seen=now))
        gateway.last_seen = now
        for api_name, stats in requests.items():
            current = _as_counts(stats)
            delta = increment(gateway.snapshots.get(api_name), current)
            gateway.snapshots[api_name] = current
            if not baseline_only and not delta.empty:
                self._add(api_name, delta, now)
        self._prune(now)

    def _add(self, api_name: str, delta: Counts, now: float) -> None:
        buckets = self._buckets.setdefault(api_name, {})
        index = math.floor(now / self.bucket_s)
        buckets[index] = buckets.get(index, Counts()) + delta

    def _first_bucket(self, now: float) -> int:
        """The oldest bucket index inside the window at ``now``: buckets start after
        ``now - window_s``."""
        return math.floor((now - self.window_s) / self.bucket_s) + 1

    def _prune(self, now: float) -> None:
        first = self._first_bucket(now)
        for api_name, buckets in list(self._buckets.items()):
            for index in [i for i in buckets if i < first]:
                del buckets[index]
            if not buckets:
                del self._buckets[api_name]
        for gateway_id, gateway in list(self._gateways.items()):
            if now - gateway.last_seen > self.window_s:
                del self._gateways[gateway_id]

    def counts(self, api_name: str, *, now: float) -> Counts:
        """The API's counts over the window ending at ``now``."""
        first = self._first_bucket(now)
        total = Counts()
        for index, counts in self._buckets.get(api_name, {}).items():
            if index >= first:
                total = total + counts
        return total

    def to_json(self, api_name: str, *, now: float) -> dict[str, Any]:
        """APIResponse ``metrics`` of ``api_name`` (see :meth:`Counts.to_json`)."""
        return self.counts(api_name, now=now).to_json(self.window_s)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the counts of every API not in ``keep`` (deleted APIs). The gateways' snapshots
        stay: a gateway's counters for a name go on from where they were, and an API deployed
        again under that name must only get what happens from then on."""
        kept = set(keep)
        for api_name in [n for n in self._buckets if n not in kept]:
            del self._buckets[api_name]
