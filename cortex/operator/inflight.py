"""The autoscaler's in-flight signal (SPEC 1.2) as a pure accumulator: no I/O, explicit ``now``.

RealtimeAPI, as the original's proxies and Prometheus compute it:

* **Samples.** Each replica's in-flight count (queued + running) is sampled once per
  ``sample_period_s`` (1 s): :func:`sample` takes at most one sample per series per sample slot
  (``floor(now / sample_period_s)``), so a caller may feed it more often (on every gateway sync)
  without skewing the mean.
* **Reports.** Once per ``report_period_s`` (10 s) each series publishes the mean of its samples
  since its previous report, as a :class:`Report` stamped with the end of its report slot
  (``floor(now / report_period_s)``). A series that stops being sampled publishes what it had at
  the next boundary and then nothing; a report period therefore always holds at least one sample
  (the original's "0 if no samples" cannot arise).
* **Window.** :func:`average_in_flight` is the Prometheus query
  ``sum(sum_over_time(x[W])) / max(count_over_time(x{container!="activator"}[W]))``: the sum of
  every report with ``now - W < at <= now`` over all series, divided by the largest number of
  such reports of one non-activator series; ``None`` (no metrics: the tick does nothing) when no
  non-activator series has one. That is the time-averaged *total* in flight across replicas.

The activator's held requests, if the caller reports them (``activator=`` of :func:`sample`),
add to the numerator but not the denominator, as in the original's query.

AsyncAPI: the operator reads the queue length (queued + in progress) every 10 s and adds it
directly with :func:`record_value`; the same :func:`average_in_flight` then gives the mean
queue length over the window.

Callers feed only fresh observations: replaying a stale count would be read as a live replica.
Reports older than ``keep_s`` (the API's current window) are forgotten on every update.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "ACTIVATOR_SERIES",
    "InFlightSignal",
    "Report",
    "average_in_flight",
    "record_value",
    "sample",
]

ACTIVATOR_SERIES = "activator"


@dataclass(frozen=True, slots=True)
class Report:
    """One published value: the mean in-flight of ``series`` over the report period ending at
    ``at``. ``activator`` series count in the sum, not in the sample count."""

    series: str
    at: float
    value: float
    activator: bool = False


@dataclass(frozen=True, slots=True)
class _Open:
    """The report period a series is filling: its slot, its last sample slot and the samples."""

    report_slot: int
    sample_slot: int
    total: float
    count: int
    activator: bool


@dataclass(frozen=True, slots=True)
class InFlightSignal:
    """One API's signal: the open report periods per series and the published reports.

    Treat as immutable: every function returns a new one.
    """

    sample_period_s: float = 1.0
    report_period_s: float = 10.0
    open_periods: Mapping[str, _Open] = field(default_factory=dict)
    reports: tuple[Report, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.sample_period_s <= self.report_period_s:
            raise ValueError(
                "need 0 < sample_period_s <= report_period_s "
                f"({self.sample_period_s}, {self.report_period_s})"
            )


def _close_due(signal: InFlightSignal, report_slot: int) -> tuple[dict[str, _Open], list[Report]]:
    """Split the open periods into those still current and reports for those that ended."""
    still_open: dict[str, _Open] = {}
    reports: list[Report] = []
    for series, period in signal.open_periods.items():
        if period.report_slot < report_slot:
            at = (period.report_slot + 1) * signal.report_period_s
            mean = period.total / period.count
            reports.append(Report(series, at, mean, period.activator))
        else:
            still_open[series] = period
    return still_open, reports


def _add_sample(
    period: _Open | None, value: float, report_slot: int, sample_slot: int, activator: bool
) -> _Open:
    if period is None:
        return _Open(report_slot, sample_slot, value, 1, activator)
    if period.sample_slot >= sample_slot:
        return period  # this series was already sampled in this slot
    return replace(
        period, sample_slot=sample_slot, total=period.total + value, count=period.count + 1
    )


def _pruned(reports: tuple[Report, ...], now: float, keep_s: float) -> tuple[Report, ...]:
    return tuple(r for r in reports if now - r.at < keep_s)


def sample(
    signal: InFlightSignal,
    in_flight: Mapping[str, float],
    *,
    now: float,
    keep_s: float,
    activator: float | None = None,
) -> InFlightSignal:
    """Publish the report periods that ended before ``now``, then sample ``in_flight``
    (series id, e.g. replica id -> queued + running) and, if given, the activator's count."""
    report_slot = math.floor(now / signal.report_period_s)
    sample_slot = math.floor(now / signal.sample_period_s)
    open_periods, reports = _close_due(signal, report_slot)
    observed = [(s, v, False) for s, v in in_flight.items()]
    if activator is not None:
        observed.append((ACTIVATOR_SERIES, activator, True))
    for series, value, is_activator in observed:
        period = open_periods.get(series)
        open_periods[series] = _add_sample(period, value, report_slot, sample_slot, is_activator)
    return replace(
        signal, open_periods=open_periods, reports=_pruned((*signal.reports, *reports), now, keep_s)
    )


def record_value(
    signal: InFlightSignal, series: str, value: float, *, now: float, keep_s: float
) -> InFlightSignal:
    """Add an already averaged value (AsyncAPI: the queue length polled every 10 s) at ``now``."""
    reports = (*signal.reports, Report(series, now, value))
    return replace(signal, reports=_pruned(reports, now, keep_s))


def average_in_flight(signal: InFlightSignal, *, now: float, window_s: float) -> float | None:
    """Σ reports in ``(now - window_s, now]`` ÷ the most such reports of one non-activator
    series; ``None`` when there are none (no metrics)."""
    in_window = [r for r in signal.reports if now - window_s < r.at <= now]
    counts = Counter(r.series for r in in_window if not r.activator)
    if not counts:
        return None
    return sum(r.value for r in in_window) / max(counts.values())
