"""The autoscaler's tick math (SPEC 1.3-1.5), case by case with the arithmetic written out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.operator.autoscaler import (
    AutoscalerState,
    AutoscalingParams,
    Decision,
    awaken,
    deploy_replicas,
    factor_limits,
    recommend,
    record_recommendation,
    stabilize,
    tick,
)
from cortex.spec.kinds import Kind
from cortex.spec.models import Autoscaling

DEFAULTS = AutoscalingParams()  # min 1, max 100, target 1, tolerances 0.05, factors 0.75 / 1.5


def run(
    params: AutoscalingParams, current: int, ticks: list[tuple[float, float | None]]
) -> list[int]:
    """Tick at each ``(now, avg_in_flight)``, scaling to each request as the operator would."""
    state = AutoscalerState()
    requests = []
    for now, avg in ticks:
        decision = tick(state, params, current=current, avg_in_flight=avg, now=now)
        state, current = decision.state, decision.request
        requests.append(current)
    return requests


def every_10s(start: int, stop: int, avg: float | None) -> list[tuple[float, float | None]]:
    return [(float(t), avg) for t in range(start, stop + 1, 10)]


# --- steps 2-5: recommendation, tolerances, factors, bounds -----------------------------------


@pytest.mark.parametrize(
    ("params", "current", "avg", "expected"),
    [
        # raw = 10 / 1 = 10 = cur -> ceil 10
        (DEFAULTS, 10, 10.0, 10),
        # raw 10.4: 10 < 10.4 < 10 * 1.05 = 10.5, inside the upscale band -> cur
        (DEFAULTS, 10, 10.4, 10),
        # raw 10.5 is not < 10.5 (strict) -> ceil 11; ceiling max(11, ceil(15.0)) = 15
        (DEFAULTS, 10, 10.5, 11),
        # raw 19.5: 20 * 0.95 = 19 < 19.5 < 20, inside the downscale band -> cur
        (DEFAULTS, 20, 19.5, 20),
        # raw 19.0 is not > 19 (strict) -> ceil 19; floor min(19, ceil(15.0)) = 15
        (DEFAULTS, 20, 19.0, 19),
        # raw 100; ceiling max(11, ceil(10 * 1.5) = 15) = 15
        (DEFAULTS, 10, 100.0, 15),
        # raw 0; floor min(9, ceil(10 * 0.75) = 8) = 8
        (DEFAULTS, 10, 0.0, 8),
        # target 4: raw 10 / 4 = 2.5 -> 3; ceiling max(3, ceil(3.0)) = 3
        (replace(DEFAULTS, target_in_flight=4.0), 2, 10.0, 3),
        # from zero: ceiling max(0 + 1, ceil(0 * 1.5) = 0) = 1 (always allow +1)
        (replace(DEFAULTS, min_replicas=0), 0, 50.0, 1),
        # floor min(2 - 1, ceil(2 * 0.75) = 2) = 1 (always allow -1); min 0 -> 1
        (replace(DEFAULTS, min_replicas=0), 2, 0.0, 1),
        # floor min(0, ceil(0.75) = 1) = 0; min_replicas 0 allows it
        (replace(DEFAULTS, min_replicas=0), 1, 0.0, 0),
        # same, but min_replicas 1 clamps 0 -> 1: no scale to zero
        (DEFAULTS, 1, 0.0, 1),
        # max_downscale_factor 0: floor min(9, ceil(0)) = 0 -> straight to 0
        (replace(DEFAULTS, min_replicas=0, max_downscale_factor=0.0), 10, 0.0, 0),
        # floor 8 (as above), then min_replicas 9 clamps up -> 9
        (replace(DEFAULTS, min_replicas=9), 10, 0.0, 9),
        # raw 14 <= ceiling 15, then max_replicas 12 clamps down -> 12
        (replace(DEFAULTS, max_replicas=12), 10, 14.0, 12),
        # bounds beat factors: ceiling 2 from cur 1, min_replicas 5 lifts it -> 5
        (replace(DEFAULTS, min_replicas=5), 1, 0.0, 5),
    ],
)
def test_recommend(params, current, avg, expected):
    raw, rec = recommend(params, current=current, avg_in_flight=avg)
    assert raw == avg / params.target_in_flight
    assert rec == expected


@pytest.mark.parametrize(
    ("current", "down", "up", "expected"),
    [
        (10, 0.75, 1.5, (8, 15)),  # min(9, ceil(7.5)=8), max(11, ceil(15)=15)
        (1, 0.75, 1.5, (0, 2)),  # min(0, ceil(0.75)=1), max(2, ceil(1.5)=2)
        (0, 0.75, 1.5, (-1, 1)),  # min(-1, 0), max(1, 0): from zero only +1
        (100, 0.99, 1.01, (99, 101)),  # min(99, 99), max(101, 101): at least one step
        # min(99, ceil(0)); ceil(100 * 1.1 = 110.00000000000001) = 111 (an IEEE double, as in Go)
        (100, 0.0, 1.1, (0, 111)),
    ],
)
def test_factor_limits(current, down, up, expected):
    params = replace(DEFAULTS, max_downscale_factor=down, max_upscale_factor=up)
    assert factor_limits(current, params) == expected


# --- steps 1, 6, 7: the clock, the history, stabilization ------------------------------------


def test_no_metrics_starts_the_clock_and_does_nothing():
    decision = tick(AutoscalerState(), DEFAULTS, current=3, avg_in_flight=None, now=42.0)
    assert decision == Decision(state=AutoscalerState(started_at=42.0), current=3, request=3)
    assert not decision.changed


def test_no_upscale_during_the_first_upscale_period():
    # avg 20 from cur 10: rec = ceiling 15 every tick. now - start < 60 holds the request at
    # 10 for t = 0..50; at t = 60 the min of recs in [0, 60] is 15 -> 15.
    requests = run(DEFAULTS, 10, every_10s(0, 60, 20.0))
    assert requests == [10, 10, 10, 10, 10, 10, 15]


def test_upscale_only_to_the_min_of_the_upscale_window():
    # t = 0..60: avg 10 = cur -> rec 10. From t = 70 avg 20 -> rec 15, but the min of recs
    # within 60 s still holds a 10 until t = 130, when [70, 130] are all 15.
    ticks = every_10s(0, 60, 10.0) + every_10s(70, 130, 20.0)
    requests = run(DEFAULTS, 10, ticks)
    assert requests[7:] == [10, 10, 10, 10, 10, 10, 15]


def test_no_downscale_during_the_first_downscale_period():
    # down period 30 s: avg 0 from cur 10 -> rec = floor 8 each tick; now - start < 30 holds 10
    # for t = 0..20; at t = 30 the max of recs in [0, 30] is 8 -> 8.
    params = replace(
        DEFAULTS, downscale_stabilization_period_s=30.0, upscale_stabilization_period_s=0
    )
    assert run(params, 10, every_10s(0, 30, 0.0)) == [10, 10, 10, 8]


def test_downscale_only_to_the_max_of_the_downscale_window():
    # down period 30 s. t = 0..30: avg 10 -> rec 10. t = 40..: avg 5 -> raw 5 < floor 8 -> rec 8;
    # the max of recs in [now - 30, now] holds a 10 until t = 70 -> 8. From cur 8: floor
    # min(7, ceil(6.0)) = 6 -> rec 6, but the recs of t = 50..70 were 8 too (computed from cur
    # 10), so the max over [now - 30, now] holds an 8 until t = 110 -> 6.
    params = replace(
        DEFAULTS, downscale_stabilization_period_s=30.0, upscale_stabilization_period_s=0
    )
    requests = run(params, 10, every_10s(0, 30, 10.0) + every_10s(40, 110, 5.0))
    assert requests == [10, 10, 10, 10, 10, 10, 10, 8, 8, 8, 8, 6]


@pytest.mark.parametrize(
    ("min_replicas", "expected"),
    [
        # floor min(0, ceil(0.75)) = 0, rec 0; held at 1 while now - start < 20; at t = 20 the
        # max of recs in [0, 20] is 0 -> scale to zero
        (0, [1, 1, 0, 0]),
        # rec clamped to min_replicas 1 every tick: never zero
        (1, [1, 1, 1, 1]),
    ],
)
def test_scale_to_zero_only_with_min_replicas_zero(min_replicas, expected):
    params = AutoscalingParams(
        min_replicas=min_replicas,
        downscale_stabilization_period_s=20.0,
        upscale_stabilization_period_s=0.0,
    )
    assert run(params, 1, every_10s(0, 30, 0.0)) == expected


def test_async_scale_from_zero_needs_a_whole_upscale_period():
    # AsyncAPI at 0 replicas, queue empty for t = 0..60 (rec 0). From t = 70 the queue holds 5:
    # raw 5, ceiling max(1, 0) = 1 -> rec 1; the min over the last 60 s holds a 0 until t = 130.
    params = replace(DEFAULTS, min_replicas=0)
    requests = run(params, 0, every_10s(0, 60, 0.0) + every_10s(70, 130, 5.0))
    assert requests == [0] * 13 + [1]


def test_stabilization_cannot_cross_current():
    # history max 10 but cur 6: a downscale floor is capped at cur -> request 6, not 10
    state = AutoscalerState(started_at=0.0, history=((900.0, 10), (1000.0, 3)))
    assert stabilize(state, DEFAULTS, current=6, recommendation=3, now=1000.0) == 6
    # history min 2 but cur 6: an upscale ceiling is at least cur -> request 6, not 2
    state = AutoscalerState(started_at=0.0, history=((990.0, 2), (1000.0, 9)))
    assert stabilize(state, DEFAULTS, current=6, recommendation=9, now=1000.0) == 6


def test_record_replaces_the_same_instant_and_forgets_old_entries():
    state = AutoscalerState(history=((0.0, 1), (5.0, 2), (10.0, 3)))
    # keep 5 s at now 10: t = 0 is 10 s old (dropped), t = 5 is 5 s old (kept), t = 10 replaced
    assert record_recommendation(state, 7, now=10.0, keep_s=5.0).history == ((5.0, 2), (10.0, 7))


def test_tick_keeps_history_for_the_longer_period():
    # periods 300 and 60: a rec 301 s old is dropped, one 300 s old is kept
    state = AutoscalerState(started_at=0.0, history=((99.0, 4), (100.0, 5)))
    decision = tick(state, DEFAULTS, current=5, avg_in_flight=5.0, now=400.0)
    assert decision.state.history == ((100.0, 5), (400.0, 5))


def test_awaken_from_zero_records_one_and_holds_off_downscale():
    params = replace(DEFAULTS, min_replicas=0)
    state = tick(AutoscalerState(), params, current=0, avg_in_flight=0.0, now=0.0).state
    woken = awaken(state, current=0, now=1000.0)
    assert (woken.request, woken.changed) == (1, True)
    assert woken.state.history[-1] == (1000.0, 1)
    # 10 s later the queue looks empty: rec 0 from cur 1, but the awaken's 1 is the max of the
    # last 300 s -> stay at 1; 301 s after the awaken only zeros remain -> 0
    later = tick(woken.state, params, current=1, avg_in_flight=0.0, now=1010.0)
    assert later.request == 1
    last = tick(later.state, params, current=1, avg_in_flight=0.0, now=1301.0)
    assert last.request == 0


def test_awaken_with_replicas_does_nothing():
    state = AutoscalerState(started_at=0.0)
    decision = awaken(state, current=2, now=5.0)
    assert decision == Decision(state=state, current=2, request=2)


# --- SPEC 1.5 and the spec bridge --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "min_replicas", "init_replicas", "existing", "expected"),
    [
        (Kind.REALTIME_API, 1, 3, None, 3),  # create: init_replicas
        (Kind.REALTIME_API, 0, 0, None, 0),  # create at zero (routed to the activator)
        (Kind.REALTIME_API, 1, 3, 7, 7),  # update: keep the autoscaled count
        (Kind.REALTIME_API, 0, 2, 0, 2),  # update from 0: realtime takes init_replicas
        (Kind.ASYNC_API, 0, 2, 0, 0),  # update from 0: async keeps 0
        (Kind.ASYNC_API, 1, 2, 0, 1),  # ... clamped to min_replicas 1
        (Kind.REALTIME_API, 1, 1, 150, 100),  # clamped to max_replicas 100
    ],
)
def test_deploy_replicas(kind, min_replicas, init_replicas, existing, expected):
    params = AutoscalingParams(min_replicas=min_replicas, init_replicas=init_replicas)
    assert deploy_replicas(kind, params, existing=existing) == expected


def test_from_spec_resolves_defaults():
    params = AutoscalingParams.from_spec(Autoscaling(min_replicas=2), max_concurrency=4)
    assert params == AutoscalingParams(min_replicas=2, init_replicas=2, target_in_flight=4.0)


def test_from_spec_converts_durations():
    spec = Autoscaling(
        min_replicas=0,
        init_replicas=1,
        target_in_flight=2.5,
        window=timedelta(seconds=30),
        downscale_stabilization_period=timedelta(minutes=2),
        upscale_stabilization_period=timedelta(seconds=0),
    )
    params = AutoscalingParams.from_spec(spec, max_concurrency=8)
    assert (params.min_replicas, params.init_replicas, params.target_in_flight) == (0, 1, 2.5)
    assert params.window_s == 30.0
    assert params.downscale_stabilization_period_s == 120.0
    assert params.upscale_stabilization_period_s == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_replicas": 3, "max_replicas": 2}, {"min_replicas": -1}, {"target_in_flight": 0}],
)
def test_params_reject_impossible_values(kwargs):
    with pytest.raises(ValueError):
        AutoscalingParams(**kwargs)


# --- properties ------------------------------------------------------------------------------


@st.composite
def params_and_current(draw):
    lo = draw(st.integers(0, 20))
    hi = draw(st.integers(max(lo, 1), 60))
    params = AutoscalingParams(
        min_replicas=lo,
        max_replicas=hi,
        init_replicas=lo,
        target_in_flight=draw(st.floats(0.1, 10)),
        downscale_stabilization_period_s=draw(st.sampled_from([0.0, 10.0, 30.0, 300.0])),
        upscale_stabilization_period_s=draw(st.sampled_from([0.0, 10.0, 60.0])),
        max_downscale_factor=draw(st.floats(0, 0.99)),
        max_upscale_factor=draw(st.floats(1.01, 5)),
        downscale_tolerance=draw(st.floats(0, 0.99)),
        upscale_tolerance=draw(st.floats(0, 2)),
    )
    return params, draw(st.integers(lo, hi))


avgs = st.one_of(st.none(), st.floats(0, 1000))
steps = st.lists(st.tuples(st.floats(0.5, 40), avgs), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(params_and_current(), steps)
def test_every_tick_respects_bounds_factors_and_stabilization(pc, ticks):
    params, current = pc
    state, now = AutoscalerState(), 0.0
    for dt, avg in ticks:
        now += dt
        d = tick(state, params, current=current, avg_in_flight=avg, now=now)
        since_start = now - d.state.started_at
        floor, ceiling = factor_limits(current, params)
        assert params.min_replicas <= d.request <= params.max_replicas
        # factor limits (each already allows a step of one); bounds never push further
        # because current lies within them
        assert floor <= d.request <= ceiling
        if d.recommendation is not None:
            # stabilization only ever holds back: the request lies between cur and rec
            assert min(current, d.recommendation) <= d.request <= max(current, d.recommendation)
        else:
            assert d.request == current
        if d.request > current:
            assert since_start >= params.upscale_stabilization_period_s
            recent = [
                v for t, v in d.state.history if now - t <= params.upscale_stabilization_period_s
            ]
            assert d.request <= min(recent)
        if d.request < current:
            assert since_start >= params.downscale_stabilization_period_s
            recent = [
                v for t, v in d.state.history if now - t <= params.downscale_stabilization_period_s
            ]
            assert d.request >= max(recent)
        if d.request == 0:
            assert params.min_replicas == 0
        state, current = d.state, d.request


@settings(max_examples=200, deadline=None)
@given(params_and_current(), st.floats(0, 1000), st.floats(0, 1000))
def test_recommendation_grows_with_load(pc, a, b):
    # more in flight never recommends fewer replicas (the bands only snap to cur, which lies
    # between the ceilings of the raw values on either side of them)
    params, current = pc
    low, high = sorted((a, b))
    assert (
        recommend(params, current=current, avg_in_flight=low)[1]
        <= recommend(params, current=current, avg_in_flight=high)[1]
    )
