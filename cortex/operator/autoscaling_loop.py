"""The operator's autoscaler loop: feeds the in-flight signal, ticks the policy, scales the APIs.

The policy itself is pure (:mod:`cortex.operator.autoscaler`, :mod:`cortex.operator.inflight`);
this module owns the per-API state and the I/O around it:

* **Signal.** On every gateway sync (:meth:`AutoscalingLoop.observe`) each RealtimeAPI gets one
  in-flight sample per replica the gateway reports (``SyncRequest.in_flight``, mapped to APIs
  through the backend's replica list) plus the requests the gateway's activator holds for it
  (``SyncRequest.held``) as the activator series. :func:`inflight.sample` keeps at most one
  sample per series per ``sample_s``, so syncs that come faster do not skew the means.
  AsyncAPI feeds its queue length (queued + in progress) through
  :meth:`AutoscalingLoop.record_value` once per report period
  (:class:`cortex.operator.async_apis.AsyncApis`), whether or not it has replicas, and is
  ticked by the same loop: a queue with messages scales an AsyncAPI at zero replicas up on a
  normal tick (SPEC 1.4), once the upscale stabilization period allows it.
* **Tick.** Every ``tick_s`` (:meth:`AutoscalingLoop.run`: once at once, then ``tick_s`` after
  each pass ends, as SPEC 1.1's cron) every API of a scaled kind is ticked with its stored
  ``requested`` count; a changed decision is written with ``store.set_requested`` and the
  reconciler is notified, which creates or drains replicas. Errors are logged per API and per
  pass; the loop never ends except by cancellation.
* **Awaken.** :meth:`AutoscalingLoop.awaken` (``POST /internal/awaken/{api}``, called by the
  gateway's activator) applies :func:`autoscaler.awaken`: 0 requested replicas become 1 at once.

State per API (:class:`_ApiScaling`): the resolved parameters (re-resolved when the API's
``api_id`` changes), the :class:`~cortex.operator.autoscaler.AutoscalerState` (reset when the
resolved autoscaling parameters change, so new bounds or periods start a fresh stabilization
clock), the in-flight signal, and the latest tick's figures for ``cortex describe`` and
``/metrics``. It lives in memory only: an operator restart starts the stabilization clock
again (SPEC 1.3: no upscale during the first upscale period, no downscale during the first
downscale period after the autoscaler starts tracking an API), which errs on the side of not
scaling. A deleted API's state is dropped at the next tick.

Bounds: the tick's recommendation is clamped to ``[min_replicas, max_replicas]``, and a deploy
with new bounds clamps ``requested`` itself (:func:`autoscaler.deploy_replicas`); a decision is
written only if the record has not changed (redeployed or rescaled) since it was read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from cortex.backends.base import ReplicaInfo
from cortex.dataplane.table import SyncRequest
from cortex.errors import NotDeployedError, UnsupportedOperationError
from cortex.operator import autoscaler, inflight
from cortex.operator.autoscaler import AutoscalerState, AutoscalingParams, Decision
from cortex.operator.deploy import spec_of
from cortex.operator.inflight import InFlightSignal
from cortex.operator.store import ApiRecord, StateStore
from cortex.spec.kinds import Kind

__all__ = ["AutoscalingLoop", "ReplicaLister", "params_of"]

log = logging.getLogger(__name__)


class ReplicaLister(Protocol):
    """What the loop needs of the backend: which API each replica belongs to."""

    def list_replicas(self, api_name: str | None = None) -> list[ReplicaInfo]: ...


def params_of(rec: ApiRecord) -> AutoscalingParams:
    """The resolved autoscaling parameters of a stored RealtimeAPI/AsyncAPI."""
    api = spec_of(rec)
    if api.autoscaling is None or api.pod is None:
        raise ValueError(f"{rec.name} ({rec.kind}) has no autoscaling section")
    return AutoscalingParams.from_spec(api.autoscaling, api.pod.max_concurrency)


@dataclass
class _ApiScaling:
    api_id: str
    created_ns: int  # the API's initial deployment time: another value means it was re-created
    params: AutoscalingParams
    signal: InFlightSignal
    state: AutoscalerState = field(default_factory=AutoscalerState)
    avg_in_flight: float | None = None  # the latest tick's
    recommendation: int | None = None  # the latest tick's, before stabilization
    last_tick: float | None = None  # unix seconds


class AutoscalingLoop:
    """Per-API autoscaling (see the module docstring). Not thread-safe: call it from the
    operator's event loop only."""

    def __init__(
        self,
        store: StateStore,
        replicas: ReplicaLister,
        notify: Callable[[], None],
        *,
        tick_s: float = 10.0,
        sample_s: float = 1.0,
        report_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        kinds: Collection[Kind] = (Kind.REALTIME_API, Kind.ASYNC_API),
    ) -> None:
        """``notify`` wakes the reconciler; ``clock`` drives the policy (monotonic seconds);
        ``wall_clock`` stamps ``last_tick``; ``kinds`` are the kinds ticked."""
        InFlightSignal(sample_period_s=sample_s, report_period_s=report_s)  # validates
        self.tick_s = tick_s
        self._store = store
        self._replicas = replicas
        self._notify = notify
        self._sample_s = sample_s
        self._report_s = report_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._kinds = frozenset(str(k) for k in kinds)
        self._apis: dict[str, _ApiScaling] = {}

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every API now, then ``tick_s`` after each pass ends; survives any error."""
        while True:
            try:
                self.tick_all()
            except Exception:
                log.exception("autoscaler pass failed")
            await asyncio.sleep(self.tick_s)

    def tick_all(self) -> None:
        """One pass: tick every stored API of a scaled kind; forget deleted APIs."""
        now = self._clock()
        records = [rec for rec in self._store.list_apis() if rec.kind in self._kinds]
        names = {rec.name for rec in records}
        for name in [n for n in self._apis if n not in names]:
            del self._apis[name]
        for rec in records:
            try:
                self.tick_api(rec, now=now)
            except Exception:
                log.exception("autoscaling %s failed", rec.name)

    def tick_api(self, rec: ApiRecord, *, now: float) -> Decision:
        """Tick one API with its stored ``requested`` count; scale it if the decision says so."""
        scaling = self._scaling(rec)
        params = scaling.params
        avg = inflight.average_in_flight(scaling.signal, now=now, window_s=params.window_s)
        decision = autoscaler.tick(
            scaling.state, params, current=rec.requested, avg_in_flight=avg, now=now
        )
        scaling.state = decision.state
        scaling.avg_in_flight = avg
        scaling.recommendation = decision.recommendation
        scaling.last_tick = self._wall_clock()
        if decision.changed:
            self._scale(rec, decision)
        return decision

    # --- inputs ------------------------------------------------------------------------------

    def observe(self, req: SyncRequest) -> None:
        """Sample a gateway sync's in-flight counts (per replica) and held requests (per API)
        into every RealtimeAPI's signal."""
        now = self._clock()
        api_of = {r.replica_id: r.api_name for r in self._replicas.list_replicas()}
        by_api: dict[str, dict[str, float]] = defaultdict(dict)
        for replica_id, count in req.in_flight.items():
            name = api_of.get(replica_id)
            if name is not None:
                by_api[name][replica_id] = float(count)
        for rec in self._store.list_apis():
            if rec.kind != Kind.REALTIME_API or rec.kind not in self._kinds:
                continue
            try:
                scaling = self._scaling(rec)
                scaling.signal = inflight.sample(
                    scaling.signal,
                    by_api.get(rec.name, {}),
                    now=now,
                    keep_s=scaling.params.window_s,
                    activator=float(req.held.get(rec.name, 0)),
                )
            except Exception:
                log.exception("sampling the in-flight requests of %s failed", rec.name)

    def record_value(self, api_name: str, series: str, value: float) -> None:
        """Add an already averaged value (an AsyncAPI's queue length) to an API's signal."""
        rec = self._store.get_api(api_name)
        if rec is None or rec.kind not in self._kinds:
            return
        scaling = self._scaling(rec)
        scaling.signal = inflight.record_value(
            scaling.signal, series, value, now=self._clock(), keep_s=scaling.params.window_s
        )

    def awaken(self, api_name: str) -> int:
        """The activator's wake-up (SPEC 1.4): a RealtimeAPI at 0 requested replicas gets 1 now
        and a recommendation of 1 that holds off the next scale to zero for a whole downscale
        stabilization period. Returns the requested replicas after the call.

        Raises :class:`NotDeployedError` for an unknown API and
        :class:`UnsupportedOperationError` for another kind."""
        rec = self._store.get_api(api_name)
        if rec is None:
            raise NotDeployedError(f"{api_name} is not deployed")
        if rec.kind != Kind.REALTIME_API:
            raise UnsupportedOperationError(
                f"{api_name} is a {rec.kind}; only a RealtimeAPI is woken by the activator"
            )
        scaling = self._scaling(rec)
        decision = autoscaler.awaken(scaling.state, current=rec.requested, now=self._clock())
        scaling.state = decision.state
        if decision.changed:
            self._scale(rec, decision)
        return decision.request

    # --- outputs -----------------------------------------------------------------------------

    def describe(self, rec: ApiRecord) -> dict[str, Any]:
        """``/describe``'s ``autoscaler`` section: the latest tick's averaged in-flight value
        and recommendation (None before the first tick with metrics), the requested replicas,
        the bounds and target, and when the latest tick ran (unix seconds, or None)."""
        scaling = self._apis.get(rec.name)
        params = scaling.params if scaling is not None else params_of(rec)
        return {
            "in_flight": None if scaling is None else scaling.avg_in_flight,
            "recommendation": None if scaling is None else scaling.recommendation,
            "requested": rec.requested,
            "min_replicas": params.min_replicas,
            "max_replicas": params.max_replicas,
            "target_in_flight": params.target_in_flight,
            "last_tick": None if scaling is None else scaling.last_tick,
        }

    def figures(self) -> dict[str, tuple[float | None, int | None]]:
        """API name -> (averaged in-flight, recommendation) of the latest tick, for /metrics."""
        return {
            name: (scaling.avg_in_flight, scaling.recommendation)
            for name, scaling in sorted(self._apis.items())
        }

    # --- state -------------------------------------------------------------------------------

    def _scaling(self, rec: ApiRecord) -> _ApiScaling:
        """The API's state, created on first use (and anew for an API deleted and deployed
        again); a new ``api_id`` re-resolves the parameters and, if they changed, starts a fresh
        :class:`AutoscalerState`."""
        scaling = self._apis.get(rec.name)
        if scaling is not None and scaling.api_id == rec.api_id:
            return scaling
        params = params_of(rec)
        if scaling is None or scaling.created_ns != rec.initial_deployment_time_ns:
            signal = InFlightSignal(sample_period_s=self._sample_s, report_period_s=self._report_s)
            scaling = _ApiScaling(
                api_id=rec.api_id,
                created_ns=rec.initial_deployment_time_ns,
                params=params,
                signal=signal,
            )
            self._apis[rec.name] = scaling
            return scaling
        if params != scaling.params:
            log.info("autoscaling of %s changed: its stabilization starts again", rec.name)
            scaling.state = AutoscalerState()
            scaling.avg_in_flight = scaling.recommendation = None
        scaling.api_id = rec.api_id
        scaling.params = params
        return scaling

    def _scale(self, rec: ApiRecord, decision: Decision) -> None:
        """Write the decision unless the record changed since it was read."""
        latest = self._store.get_api(rec.name)
        if latest is None or latest.api_id != rec.api_id or latest.requested != rec.requested:
            log.info("%s changed during its autoscaler tick; scaling skipped", rec.name)
            return
        log.info(
            "autoscaling event for %s: %d -> %d (in flight %s, recommendation %s)",
            rec.name,
            decision.current,
            decision.request,
            decision.avg_in_flight,
            decision.recommendation,
        )
        self._store.set_requested(rec.name, decision.request)
        self._notify()
