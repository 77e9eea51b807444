"""Routing: exact / subpath / longest prefix, fewest in-flight, state kept across table updates,
weighted traffic splitting and shadow sampling."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cortex.dataplane.router import RealtimeTarget, Router, SplitterTarget
from cortex.dataplane.table import (
    AsyncRoute,
    JobRoute,
    RealtimeRoute,
    RouteTable,
    SplitTarget,
    SplitterRoute,
    Upstream,
)


def rt(name: str, endpoint: str, n: int = 1, *, port0: int = 9000, mc: int = 1, mq: int = 10):
    ups = tuple(Upstream(f"{name}-{i}", "127.0.0.1", port0 + i) for i in range(n))
    return RealtimeRoute(name, endpoint, mc, mq, ups)


def table(*routes: RealtimeRoute, splitters: tuple[SplitterRoute, ...] = (), version: int = 1):
    return RouteTable(version=version, realtime=routes, splitters=splitters)


@pytest.fixture
def router() -> Router:
    return Router(
        table(rt("a", "/a"), rt("ab", "/a/b"), rt("v1", "/v1/models/iris")),
        rng=random.Random(7),
    )


@pytest.mark.parametrize(
    ("path", "api", "upstream_path"),
    [
        (b"/a", "a", b"/"),
        (b"/a?x=1&y=2", "a", b"/?x=1&y=2"),
        (b"/a/", "a", b"/"),
        (b"/a/predict", "a", b"/predict"),
        (b"/a/predict/deep?q=1", "a", b"/predict/deep?q=1"),
        (b"/a/b", "ab", b"/"),  # longest prefix wins
        (b"/a/b/c?k=v", "ab", b"/c?k=v"),
        (b"/a/bc", "a", b"/bc"),  # prefixes only at '/' boundaries
        (b"/v1/models/iris/predict", "v1", b"/predict"),
    ],
)
def test_match(router: Router, path: bytes, api: str, upstream_path: bytes) -> None:
    m = router.match(path)
    assert m is not None
    assert m.target.api_name == api
    assert m.upstream_path == upstream_path


@pytest.mark.parametrize("path", [b"/", b"/ab", b"/b", b"/v1/models", b"/x/a", b"/?a"])
def test_no_match(router: Router, path: bytes) -> None:
    assert router.match(path) is None


def test_splitter_matches_exact_endpoint_only() -> None:
    split = SplitterRoute("s", "/s", (SplitTarget("a", 100),))
    r = Router(table(rt("a", "/a"), splitters=(split,)))
    m = r.match(b"/s?x=1")
    assert m is not None and isinstance(m.target, SplitterTarget)
    assert m.upstream_path == b"/?x=1"
    assert r.match(b"/s/sub") is None


def _target(r: Router, name: str) -> RealtimeTarget:
    t = r.target_by_name(name)
    assert t is not None
    return t


def test_pick_replica_prefers_fewest_in_flight_with_random_ties() -> None:
    r = Router(table(rt("a", "/a", 3)), rng=random.Random(1))
    t = _target(r, "a")
    busy, idle1, idle2 = t.replicas
    assert busy.limiter.try_acquire()
    picks = Counter(r.pick_replica(t).replica_id for _ in range(400))  # type: ignore[union-attr]
    assert set(picks) == {idle1.replica_id, idle2.replica_id}  # never the busy one
    assert min(picks.values()) > 150  # ties are broken at random, roughly evenly
    assert idle1.limiter.try_acquire() and idle2.limiter.try_acquire()
    busy.limiter.release()  # in flight: busy 0, idle1 1, idle2 1
    assert r.pick_replica(t) is busy


def test_pick_replica_none_when_no_ready_upstream() -> None:
    r = Router(table(rt("a", "/a", 0)))
    assert r.pick_replica(_target(r, "a")) is None


def test_table_update_keeps_limiters_of_remaining_replicas() -> None:
    r = Router(table(rt("a", "/a", 2, mc=1, mq=5)))
    rep0 = _target(r, "a").replicas[0]
    assert rep0.limiter.try_acquire()
    # new version: replica a-1 is gone, a-0 stays with new capacity values, a-2 arrives
    ups = (Upstream("a-0", "127.0.0.1", 9000), Upstream("a-2", "127.0.0.1", 9002))
    r.update(RouteTable(version=2, realtime=(RealtimeRoute("a", "/a", 4, 7, ups),)))
    reps = _target(r, "a").replicas
    assert reps[0] is rep0
    assert rep0.limiter.in_flight == 1
    assert (rep0.limiter.max_concurrency, rep0.limiter.max_queue_length) == (4, 7)
    assert r.in_flight() == {"a-0": 1, "a-2": 0}
    assert r.table.version == 2


def test_removed_replica_is_reported_while_it_drains() -> None:
    r = Router(table(rt("a", "/a", 2)))
    gone = _target(r, "a").replicas[1]
    assert gone.limiter.try_acquire()
    r.update(table(rt("a", "/a", 1), version=2))
    assert r.in_flight() == {"a-0": 0, "a-1": 1}
    gone.limiter.release()
    assert r.in_flight() == {"a-0": 0}


def test_readded_replica_gets_its_limiter_back() -> None:
    r = Router(table(rt("a", "/a", 2)))
    rep1 = _target(r, "a").replicas[1]
    assert rep1.limiter.try_acquire()
    r.update(table(rt("a", "/a", 1), version=2))
    r.update(table(rt("a", "/a", 2), version=3))
    assert _target(r, "a").replicas[1] is rep1
    assert r.in_flight()["a-1"] == 1


def test_weighted_split_is_proportional() -> None:
    split = SplitterRoute("s", "/s", (SplitTarget("a", 70), SplitTarget("b", 30)))
    r = Router(table(rt("a", "/a"), rt("b", "/b"), splitters=(split,)), rng=random.Random(42))
    m = r.match(b"/s")
    assert m is not None and isinstance(m.target, SplitterTarget)
    n = 10_000
    counts = Counter(r.pick_split(m.target)[0].api_name for _ in range(n))  # type: ignore[union-attr]
    # binomial sd = sqrt(10000 * 0.7 * 0.3) ~ 46; allow ~4 sd
    assert abs(counts["a"] - 7000) < 200
    assert counts["a"] + counts["b"] == n


def test_zero_weight_target_is_never_chosen_and_shadow_is_sampled() -> None:
    targets = (SplitTarget("a", 100), SplitTarget("b", 0), SplitTarget("c", 25, shadow=True))
    r = Router(
        table(
            rt("a", "/a"),
            rt("b", "/b"),
            rt("c", "/c"),
            splitters=(SplitterRoute("s", "/s", targets),),
        ),
        rng=random.Random(3),
    )
    m = r.match(b"/s")
    assert m is not None and isinstance(m.target, SplitterTarget)
    picks = [r.pick_split(m.target) for _ in range(4000)]
    assert {c.api_name for c, _ in picks if c is not None} == {"a"}
    shadows = sum(1 for _, s in picks if s is not None)
    assert abs(shadows - 1000) < 120  # 25 % mirror; sd ~ 27
    assert all(s is None or s.api_name == "c" for _, s in picks)


def test_split_to_missing_api_yields_none() -> None:
    split = SplitterRoute("s", "/s", (SplitTarget("ghost", 100),))
    r = Router(table(splitters=(split,)))
    m = r.match(b"/s")
    assert m is not None and isinstance(m.target, SplitterTarget)
    assert r.pick_split(m.target) == (None, None)


def test_async_and_job_routes_match() -> None:
    t = RouteTable(
        1,
        (rt("a", "/a"),),
        async_routes=(AsyncRoute("q", "/a/q", "async-q-1"),),
        jobs=(JobRoute("b", "/b", "BatchAPI"),),
    )
    r = Router(t)
    q = AsyncRoute("q", "/a/q", "async-q-1")
    hit = r.match(b"/a/q?x=1")
    assert hit is not None and (hit.target, hit.upstream_path) == (q, b"/?x=1")
    hit = r.match(b"/a/q/0190-id")
    assert hit is not None and (hit.target, hit.upstream_path) == (q, b"/0190-id")
    hit = r.match(b"/b?jobID=1")
    assert hit is not None and hit.target == JobRoute("b", "/b", "BatchAPI")
    assert hit.upstream_path == b"/?jobID=1"
    assert r.match(b"/b/sub") is None  # job endpoints are exact
    hit = r.match(b"/a/x")
    assert hit is not None and isinstance(hit.target, RealtimeTarget)
