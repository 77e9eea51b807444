"""Autoscaling policy for RealtimeAPI and AsyncAPI (SPEC 1.3-1.5): pure functions, no I/O.

One tick, given the API's :class:`AutoscalingParams` (re-read every tick), ``cur`` (the replicas
currently requested), ``avg`` (the in-flight average over the window, SPEC 1.2, see
:mod:`cortex.operator.inflight`) and ``now`` (seconds on the caller's monotonic clock):

1. The first tick starts the clock (``started_at = now``), with or without metrics.
   ``avg is None`` (no metrics yet): nothing else happens.
2. ``raw = avg / target_in_flight``; ``rec = ceil(raw)``.
3. Tolerance bands, strict, on the raw value: ``cur*(1-downscale_tolerance) < raw < cur`` or
   ``cur < raw < cur*(1+upscale_tolerance)`` keeps ``rec = cur``.
4. Factor limits per event, which always allow a change of one:
   ``rec >= min(cur-1, ceil(cur*max_downscale_factor))`` and
   ``rec <= max(cur+1, ceil(cur*max_upscale_factor))``.
5. Bounds: ``rec`` is clamped to ``[min_replicas, max_replicas]``.
6. ``rec`` is recorded at ``now`` *before* stabilization; entries older than the longer of the
   two stabilization periods are forgotten.
7. Stabilization. Downscale (``rec < cur``): none at all during the first
   ``downscale_stabilization_period`` after ``started_at``; afterwards no lower than the largest
   recommendation of the last ``downscale_stabilization_period`` (capped at ``cur``). Upscale
   (``rec > cur``): none during the first ``upscale_stabilization_period``; afterwards no higher
   than the smallest recommendation of the last ``upscale_stabilization_period`` (at least
   ``cur``). So an upscale needs a whole upscale period of high recommendations, and a scale to
   zero needs ``min_replicas == 0`` and a whole downscale period of zeros.
8. The caller scales when :attr:`Decision.changed`.

The caller (the operator's loop) owns one :class:`AutoscalerState` per API, passes it in and
keeps the one that comes back; it drops it when the API is deleted. The state lives in memory
only, as in the original: an operator restart starts the stabilization clock again, which errs
on the side of not scaling. :func:`awaken` is the activator's scale-from-zero (SPEC 1.4) and
:func:`deploy_replicas` the replicas an API gets when it is deployed (SPEC 1.5).

The ``ceil`` of ``cur * factor`` is taken on an IEEE double, as the original's Go does, so the
limits match it to the replica (``ceil(100 * 1.1)`` is 111 in both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from cortex.spec.kinds import Kind

__all__ = [
    "AutoscalerState",
    "AutoscalingLike",
    "AutoscalingParams",
    "Decision",
    "apply_tolerances",
    "awaken",
    "clamp",
    "deploy_replicas",
    "factor_limits",
    "recommend",
    "record_recommendation",
    "stabilize",
    "tick",
]


class AutoscalingLike(Protocol):
    """The fields of :class:`cortex.spec.models.Autoscaling` that the policy reads."""

    @property
    def min_replicas(self) -> int: ...
    @property
    def max_replicas(self) -> int: ...
    @property
    def init_replicas(self) -> int | None: ...
    @property
    def target_in_flight(self) -> float | None: ...
    @property
    def window(self) -> timedelta: ...
    @property
    def downscale_stabilization_period(self) -> timedelta: ...
    @property
    def upscale_stabilization_period(self) -> timedelta: ...
    @property
    def max_downscale_factor(self) -> float: ...
    @property
    def max_upscale_factor(self) -> float: ...
    @property
    def downscale_tolerance(self) -> float: ...
    @property
    def upscale_tolerance(self) -> float: ...


@dataclass(frozen=True, slots=True)
class AutoscalingParams:
    """Resolved autoscaling parameters, durations in seconds; defaults are SPEC 11.3's."""

    min_replicas: int = 1
    max_replicas: int = 100
    init_replicas: int = 1
    target_in_flight: float = 1.0
    window_s: float = 60.0
    downscale_stabilization_period_s: float = 300.0
    upscale_stabilization_period_s: float = 60.0
    max_downscale_factor: float = 0.75
    max_upscale_factor: float = 1.5
    downscale_tolerance: float = 0.05
    upscale_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"need 0 <= min_replicas <= max_replicas ({self.min_replicas}, {self.max_replicas})"
            )
        if not self.target_in_flight > 0:
            raise ValueError(f"target_in_flight must be > 0 ({self.target_in_flight})")

    @classmethod
    def from_spec(cls, autoscaling: AutoscalingLike, max_concurrency: int) -> AutoscalingParams:
        """Resolve the user's section: ``init_replicas`` defaults to ``min_replicas`` and
        ``target_in_flight`` to the pod's ``max_concurrency`` (SPEC 11.3)."""
        a = autoscaling
        init = a.init_replicas if a.init_replicas is not None else a.min_replicas
        target = a.target_in_flight if a.target_in_flight is not None else max_concurrency
        return cls(
            min_replicas=a.min_replicas,
            max_replicas=a.max_replicas,
            init_replicas=init,
            target_in_flight=float(target),
            window_s=a.window.total_seconds(),
            downscale_stabilization_period_s=a.downscale_stabilization_period.total_seconds(),
            upscale_stabilization_period_s=a.upscale_stabilization_period.total_seconds(),
            max_downscale_factor=a.max_downscale_factor,
            max_upscale_factor=a.max_upscale_factor,
            downscale_tolerance=a.downscale_tolerance,
            upscale_tolerance=a.upscale_tolerance,
        )


@dataclass(frozen=True, slots=True)
class AutoscalerState:
    """Per-API memory between ticks.

    ``started_at``: when the policy first ticked for this API (``None`` before).
    ``history``: ``(at, recommendation)`` pairs, at most one per instant.
    """

    started_at: float | None = None
    history: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What one tick (or :func:`awaken`) decided; the fields after ``request`` are for the log."""

    state: AutoscalerState
    current: int
    request: int
    avg_in_flight: float | None = None
    raw_recommendation: float | None = None
    recommendation: int | None = None

    @property
    def changed(self) -> bool:
        """The caller must scale the API to :attr:`request`."""
        return self.request != self.current


def apply_tolerances(raw: float, current: int, params: AutoscalingParams) -> int:
    """``ceil(raw)``, or ``current`` when ``raw`` lies strictly inside a tolerance band."""
    if current * (1 - params.downscale_tolerance) < raw < current:
        return current
    if current < raw < current * (1 + params.upscale_tolerance):
        return current
    return math.ceil(raw)


def factor_limits(current: int, params: AutoscalingParams) -> tuple[int, int]:
    """``(floor, ceiling)`` one event may reach from ``current``; always at least one step."""
    floor = min(current - 1, math.ceil(current * params.max_downscale_factor))
    ceiling = max(current + 1, math.ceil(current * params.max_upscale_factor))
    return floor, ceiling


def clamp(replicas: int, params: AutoscalingParams) -> int:
    return max(params.min_replicas, min(params.max_replicas, replicas))


def recommend(
    params: AutoscalingParams, *, current: int, avg_in_flight: float
) -> tuple[float, int]:
    """Steps 2-5: ``(raw, recommendation)`` before stabilization."""
    raw = avg_in_flight / params.target_in_flight
    rec = apply_tolerances(raw, current, params)
    floor, ceiling = factor_limits(current, params)
    return raw, clamp(max(floor, min(ceiling, rec)), params)


def record_recommendation(
    state: AutoscalerState, recommendation: int, *, now: float, keep_s: float
) -> AutoscalerState:
    """Add ``recommendation`` at ``now`` (replacing one recorded at the same instant) and forget
    entries older than ``keep_s``."""
    kept = tuple((t, v) for t, v in state.history if t != now and now - t <= keep_s)
    return replace(state, history=(*kept, (now, recommendation)))


def _since(state: AutoscalerState, now: float, period_s: float) -> list[int]:
    return [v for t, v in state.history if now - t <= period_s]


def stabilize(
    state: AutoscalerState,
    params: AutoscalingParams,
    *,
    current: int,
    recommendation: int,
    now: float,
) -> int:
    """Step 7: the replicas to request, given a history that already holds ``recommendation``."""
    started = now if state.started_at is None else state.started_at
    request = recommendation
    if request < current:
        period = params.downscale_stabilization_period_s
        recent = _since(state, now, period)
        if now - started < period:
            request = current
        elif recent and request < min(max(recent), current):
            request = min(max(recent), current)
    if request > current:
        period = params.upscale_stabilization_period_s
        recent = _since(state, now, period)
        if now - started < period:
            request = current
        elif recent and request > max(min(recent), current):
            request = max(min(recent), current)
    return request


def tick(
    state: AutoscalerState,
    params: AutoscalingParams,
    *,
    current: int,
    avg_in_flight: float | None,
    now: float,
) -> Decision:
    """One autoscaler tick (the whole algorithm in the module docstring)."""
    if state.started_at is None:
        state = replace(state, started_at=now)
    if avg_in_flight is None:
        return Decision(state=state, current=current, request=current)
    raw, rec = recommend(params, current=current, avg_in_flight=avg_in_flight)
    keep_s = max(params.downscale_stabilization_period_s, params.upscale_stabilization_period_s)
    state = record_recommendation(state, rec, now=now, keep_s=keep_s)
    request = stabilize(state, params, current=current, recommendation=rec, now=now)
    return Decision(
        state=state,
        current=current,
        request=request,
        avg_in_flight=avg_in_flight,
        raw_recommendation=raw,
        recommendation=rec,
    )


def awaken(state: AutoscalerState, *, current: int, now: float) -> Decision:
    """The activator's wake-up call (SPEC 1.4): from zero requested replicas scale to one and
    record a recommendation of one at ``now``, which holds off a downscale back to zero for a
    whole downscale stabilization period; with replicas already requested, nothing."""
    if current > 0:
        return Decision(state=state, current=current, request=current)
    kept = tuple((t, v) for t, v in state.history if t != now)
    return Decision(state=replace(state, history=(*kept, (now, 1))), current=0, request=1)


def deploy_replicas(kind: Kind, params: AutoscalingParams, *, existing: int | None) -> int:
    """Replicas to request when an API is deployed (SPEC 1.5).

    ``existing`` is ``None`` on create (``init_replicas``), else the replicas requested now: a
    RealtimeAPI keeps them if > 0 (else ``init_replicas``), an AsyncAPI keeps them even at 0.
    Always clamped to ``[min_replicas, max_replicas]``.
    """
    if existing is None:
        replicas = params.init_replicas
    elif kind is Kind.ASYNC_API or existing > 0:
        replicas = existing
    else:
        replicas = params.init_replicas
    return clamp(replicas, params)
