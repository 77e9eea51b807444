"""The in-flight signal (SPEC 1.2): 1 s samples, 10 s reports, the window query."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.operator.inflight import (
    ACTIVATOR_SERIES,
    InFlightSignal,
    Report,
    average_in_flight,
    record_value,
    sample,
)


def feed(
    signal: InFlightSignal,
    counts: Callable[[int], Mapping[str, float]],
    seconds: range,
    *,
    keep_s: float = 60.0,
) -> InFlightSignal:
    """Sample ``counts(t)`` once a second, at t + 0.5 (clear of the slot boundaries)."""
    for t in seconds:
        signal = sample(signal, counts(t), now=t + 0.5, keep_s=keep_s)
    return signal


def test_reports_are_the_mean_of_the_samples_of_their_period():
    # samples 0, 1, ..., 9 during [0, 10) -> one report at 10 with mean 4.5, once t = 10 is seen
    signal = feed(InFlightSignal(), lambda t: {"r1": t}, range(11))
    assert signal.reports == (Report("r1", 10.0, 4.5),)


def test_one_sample_per_sample_slot():
    # three observations in slot [3, 4): only the first counts; mean of 2 and 6 = 4
    signal = InFlightSignal()
    for now, value in [(3.0, 2), (3.4, 100), (3.9, 100), (4.1, 6)]:
        signal = sample(signal, {"r1": value}, now=now, keep_s=60)
    signal = sample(signal, {}, now=10.0, keep_s=60)
    assert signal.reports == (Report("r1", 10.0, 4.0),)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # one replica at 3 for 60 s: six reports of 3 -> 18 / 6 = 3
        (lambda t: {"a": 3}, 3.0),
        # two replicas at 2 and 5 -> (6 * 2 + 6 * 5) / 6 = 7: the total, not the mean
        (lambda t: {"a": 2, "b": 5}, 7.0),
        # b joins for the last 30 s: (6 * 4 + 3 * 4) / max(6, 3) = 6, the time-averaged total
        (lambda t: {"a": 4, "b": 4} if t >= 30 else {"a": 4}, 6.0),
        # a alternates 0 and 2 each second: every report means 1 -> 6 / 6 = 1
        (lambda t: {"a": 2 * (t % 2)}, 1.0),
    ],
)
def test_window_average_of_the_total(counts, expected):
    # samples at 0.5 .. 60.5; reports at 10, 20, ..., 60 all within (0.5, 60.5]
    signal = feed(InFlightSignal(), counts, range(61))
    assert average_in_flight(signal, now=60.5, window_s=60) == pytest.approx(expected)


def test_window_is_open_at_the_start_and_closed_at_the_end():
    signal = InFlightSignal(reports=(Report("a", 40.0, 1.0), Report("a", 100.0, 3.0)))
    # (40, 100]: the report at 40 is out, the one at 100 in -> 3 / 1
    assert average_in_flight(signal, now=100.0, window_s=60) == 3.0
    # (39.9, 99.9]: only the report at 40 -> 1 / 1
    assert average_in_flight(signal, now=99.9, window_s=60) == 1.0


def test_no_reports_means_no_metrics():
    assert average_in_flight(InFlightSignal(), now=100.0, window_s=60) is None
    # samples taken but no report period ended yet: still no metrics
    signal = feed(InFlightSignal(), lambda t: {"a": 5}, range(5))
    assert average_in_flight(signal, now=5.0, window_s=60) is None


def test_activator_adds_to_the_sum_but_not_the_count():
    signal = InFlightSignal()
    for t in range(21):
        signal = sample(signal, {"a": 2}, now=t + 0.5, keep_s=60, activator=1)
    # reports at 10, 20: a = 2, 2 and activator = 1, 1 -> (4 + 2) / max(a's 2) = 3
    assert average_in_flight(signal, now=20.5, window_s=60) == 3.0
    assert {r.series for r in signal.reports if r.activator} == {ACTIVATOR_SERIES}


def test_activator_alone_means_no_metrics():
    signal = InFlightSignal()
    for t in range(11):
        signal = sample(signal, {}, now=t + 0.5, keep_s=60, activator=4)
    assert average_in_flight(signal, now=10.5, window_s=60) is None


def test_a_gone_replica_reports_its_last_period_then_nothing():
    # a sampled during [0, 5) only: reported (mean 3) at the boundary 10, never again
    signal = feed(InFlightSignal(), lambda t: {"a": 3, "b": 1} if t < 5 else {"b": 1}, range(31))
    assert [r for r in signal.reports if r.series == "a"] == [Report("a", 10.0, 3.0)]
    assert [r.at for r in signal.reports if r.series == "b"] == [10.0, 20.0, 30.0]


def test_reports_older_than_keep_s_are_forgotten():
    # keep 20 s at now 40.5: reports at 30 and 40 stay, 10 and 20 go
    signal = feed(InFlightSignal(), lambda t: {"a": 1}, range(41), keep_s=20)
    assert [r.at for r in signal.reports] == [30.0, 40.0]


def test_record_adds_an_averaged_value_for_async_queues():
    # queue length polled every 10 s: 0, 6, 12 at 10, 20, 30 -> 18 / 3 = 6
    signal = InFlightSignal()
    for now, depth in [(10.0, 0), (20.0, 6), (30.0, 12)]:
        signal = record_value(signal, "queue", depth, now=now, keep_s=60)
    assert average_in_flight(signal, now=30.0, window_s=60) == 6.0
    # window 15 s at 30: (15, 30] holds 6 and 12 -> 9
    assert average_in_flight(signal, now=30.0, window_s=15) == 9.0


def test_fast_periods_for_tests_and_the_operator():
    # sample every 10 ms, report every 100 ms: one replica at 2 for 0.6 s -> 2
    signal = InFlightSignal(sample_period_s=0.01, report_period_s=0.1)
    for i in range(61):
        signal = sample(signal, {"a": 2}, now=i * 0.01 + 0.005, keep_s=0.6)
    assert len(signal.reports) == 6
    assert average_in_flight(signal, now=0.605, window_s=0.6) == pytest.approx(2.0)


@pytest.mark.parametrize(("sample_s", "report_s"), [(0, 10), (2, 1), (-1, 10)])
def test_periods_must_nest(sample_s, report_s):
    with pytest.raises(ValueError):
        InFlightSignal(sample_period_s=sample_s, report_period_s=report_s)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 50), min_size=1, max_size=8),
    st.sampled_from([10, 30, 60]),
)
def test_steady_load_averages_to_its_total(loads, window_s):
    # every replica holds a constant count for the whole window: the signal is their sum
    signal = feed(InFlightSignal(), lambda t: loads, range(window_s + 1), keep_s=window_s)
    average = average_in_flight(signal, now=window_s + 0.5, window_s=window_s)
    assert average == pytest.approx(sum(loads.values()))
