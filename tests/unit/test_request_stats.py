"""The request-metrics window: increments from cumulative snapshots, gateway restarts, and the
sliding window over buckets."""

from __future__ import annotations

import pytest

from cortex.dataplane.table import RequestStats
from cortex.operator.request_stats import Counts, RequestWindow, bucket_seconds, increment


def stats(c2: int = 0, c4: int = 0, c5: int = 0, lat_s: float = 0.0) -> RequestStats:
    return RequestStats(
        count_2xx=c2, count_4xx=c4, count_5xx=c5, latency_sum_s=lat_s, latency_count=c2 + c4 + c5
    )


def test_bucket_seconds() -> None:
    assert bucket_seconds(900) == 60.0
    assert bucket_seconds(3600) == 60.0
    assert bucket_seconds(15) == 1.0


def test_increment_difference_or_restart() -> None:
    before = Counts(2, 1, 0, 0.5, 3)
    assert increment(None, before) == before
    step = increment(before, Counts(5, 1, 1, 0.9, 7))
    assert (step.count_2xx, step.count_4xx, step.count_5xx, step.latency_count) == (3, 0, 1, 4)
    assert step.latency_sum_s == pytest.approx(0.4)
    # a counter went down: the gateway's counters restarted, the snapshot is all new
    assert increment(before, Counts(1, 0, 0, 0.1, 1)) == Counts(1, 0, 0, 0.1, 1)


def test_window_sums_increments_and_averages_latency() -> None:
    w = RequestWindow(900)
    w.observe("g1", {}, now=0.0)  # the operator's first sync: g1 is a baseline from now on
    w.observe("g1", {"iris": stats(c2=3, lat_s=0.03)}, now=10.0)
    w.observe("g1", {"iris": stats(c2=5, c4=1, c5=1, lat_s=0.07)}, now=70.0)
    assert w.to_json("iris", now=80.0) == {
        "window_s": 900,
        "avg_latency_ms": 10.0,  # 70 ms over 7 requests
        "count_2xx": 5,
        "count_4xx": 1,
        "count_5xx": 1,
        "requests": 7,
    }
    assert w.to_json("other", now=80.0)["avg_latency_ms"] is None
    # 15 minutes later the first bucket (0-60 s) has left the window, the second not yet
    assert w.counts("iris", now=905.0).count_2xx == 2
    assert w.counts("iris", now=965.0).empty


def test_operator_restart_takes_a_baseline_then_a_new_gateway_counts_in_full() -> None:
    w = RequestWindow(900)
    # the operator (re)started while g1 had served 100 requests: they are not "recent"
    w.observe("g1", {"iris": stats(c2=100, lat_s=1.0)}, now=0.0)
    assert w.counts("iris", now=0.0).empty
    w.observe("g1", {"iris": stats(c2=102, lat_s=1.2)}, now=5.0)
    assert w.counts("iris", now=5.0).count_2xx == 2
    # the gateway restarted (new id): its counters began at zero, all of them are new
    w.observe("g2", {"iris": stats(c2=4, c5=1, lat_s=0.5)}, now=6.0)
    got = w.counts("iris", now=6.0)
    assert (got.count_2xx, got.count_5xx, got.latency_count) == (6, 1, 7)
    # an API the gateway starts reporting later counts from zero too
    w.observe("g2", {"iris": stats(c2=4, c5=1, lat_s=0.5), "new": stats(c4=2)}, now=7.0)
    assert w.counts("new", now=7.0).count_4xx == 2
    assert w.counts("iris", now=7.0).count_2xx == 6


def test_forget_drops_deleted_apis_but_not_the_gateway_baseline() -> None:
    w = RequestWindow(60)
    w.observe("g", {"iris": stats(c2=1)}, now=0.0)
    w.observe("g", {"iris": stats(c2=3)}, now=1.0)
    assert w.counts("iris", now=1.0).count_2xx == 2
    w.forget(["other"])
    assert w.counts("iris", now=1.0).empty
    # redeployed under the same name: only what happens from now on
    w.observe("g", {"iris": stats(c2=4)}, now=2.0)
    assert w.counts("iris", now=2.0).count_2xx == 1


def test_short_window_slides_in_small_buckets() -> None:
    w = RequestWindow(15)  # 1 s buckets
    w.observe("g", {}, now=0.0)
    w.observe("g", {"a": stats(c2=1)}, now=1.5)
    w.observe("g", {"a": stats(c2=2)}, now=10.5)
    assert w.counts("a", now=15.9).count_2xx == 2
    assert w.counts("a", now=16.1).count_2xx == 1  # the 1-2 s bucket has left
    assert w.counts("a", now=26.0).empty


def test_invalid_window() -> None:
    with pytest.raises(ValueError):
        RequestWindow(0)
