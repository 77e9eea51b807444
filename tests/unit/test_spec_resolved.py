"""Derived values of a spec (SPEC 0.5, 0.6, 10.4, 11.3): defaults, ids, rollout counts, JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cortex.spec import resolved
from cortex.spec.models import ApiSpec, UpdateStrategy
from cortex.spec.parse import parse_api

NOW_NS = 1_700_000_000_123_456_789


def spec(**fields: Any) -> ApiSpec:
    item: dict[str, Any] = {
        "name": "iris",
        "kind": "RealtimeAPI",
        "pod": {"containers": [{"name": "api", "image": "python", "command": ["a"]}]},
    }
    item.update(fields)
    return parse_api(item, file_name="cortex.yaml", index=0)


def splitter() -> ApiSpec:
    item = {"name": "s", "kind": "TrafficSplitter", "apis": [{"name": "iris", "weight": 100}]}
    return parse_api(item, file_name="cortex.yaml", index=1)


def batch() -> ApiSpec:
    return spec(kind="BatchAPI")


def test_derived_defaults() -> None:
    api = spec(pod={"max_concurrency": 4, "containers": [{"name": "a", "image": "b"}]})
    assert resolved.endpoint(api) == "/iris"
    assert resolved.init_replicas(api) == 1  # = min_replicas
    assert resolved.target_in_flight(api) == 4.0  # = max_concurrency
    assert api.autoscaling is not None and api.autoscaling.init_replicas is None  # not written back


def test_explicit_values_win() -> None:
    api = spec(
        networking={"endpoint": "v1/iris"},
        autoscaling={"min_replicas": 2, "init_replicas": 3, "target_in_flight": 7.5},
    )
    assert resolved.endpoint(api) == "/v1/iris"
    assert resolved.init_replicas(api) == 3
    assert resolved.target_in_flight(api) == 7.5


def test_init_replicas_follows_min_replicas() -> None:
    assert resolved.init_replicas(spec(autoscaling={"min_replicas": 0})) == 0


@pytest.mark.parametrize("fn", [resolved.init_replicas, resolved.target_in_flight])
def test_autoscaling_values_need_an_autoscaled_kind(fn: Any) -> None:
    with pytest.raises(ValueError, match=r"iris \(BatchAPI\) has no autoscaling"):
        fn(batch())


# --- ids --------------------------------------------------------------------------------------


def test_id_shapes_and_stability() -> None:
    api = spec()
    assert re.fullmatch(r"[0-9a-f]{63}", resolved.pod_id(api))
    assert re.fullmatch(r"[0-9a-f]{32}", resolved.spec_id(api))
    assert resolved.spec_id(spec()) == resolved.spec_id(api)
    assert resolved.pod_id(spec()) == resolved.pod_id(api)


def test_pod_fields_change_both_ids() -> None:
    base, changed = spec(), spec(pod={"containers": [{"name": "api", "image": "python:3.12"}]})
    assert resolved.pod_id(base) != resolved.pod_id(changed)
    assert resolved.spec_id(base) != resolved.spec_id(changed)


def test_name_changes_pod_id() -> None:
    assert resolved.pod_id(spec()) != resolved.pod_id(spec(name="iris2"))


@pytest.mark.parametrize(
    "fields",
    [
        {"autoscaling": {"max_replicas": 3}},
        {"autoscaling": {"init_replicas": 2}},
        {"networking": {"endpoint": "/other"}},
        {"update_strategy": {"max_surge": 1}},
        {"node_groups": ["ng"]},
    ],
)
def test_non_pod_fields_change_only_spec_id(fields: dict[str, Any]) -> None:
    base, changed = spec(), spec(**fields)
    assert resolved.pod_id(base) == resolved.pod_id(changed)
    assert resolved.spec_id(base) != resolved.spec_id(changed)


@pytest.mark.parametrize(
    "fields",
    [
        {"networking": {"endpoint": "iris/"}},  # the default endpoint, written out
        {"autoscaling": {"init_replicas": 1, "target_in_flight": 1}},  # the derived defaults
        {"autoscaling": {"window": "60s"}, "update_strategy": {"max_surge": "25%"}},
        {
            "pod": {
                "port": 8080,
                "containers": [
                    {"name": "api", "image": "python", "command": ["a"], "compute": {"cpu": 0.2}}
                ],
            }
        },
    ],
)
def test_writing_defaults_out_changes_no_id(fields: dict[str, Any]) -> None:
    assert resolved.spec_id(spec(**fields)) == resolved.spec_id(spec())
    assert resolved.pod_id(spec(**fields)) == resolved.pod_id(spec())


def test_index_and_file_do_not_change_ids() -> None:
    item = spec().submitted_api_spec
    other = parse_api(item, file_name="elsewhere.yaml", index=5)
    assert resolved.spec_id(other) == resolved.spec_id(spec())


def test_monotonic_id_decreases_and_inverts() -> None:
    first, later = resolved.monotonic_id(NOW_NS), resolved.monotonic_id(NOW_NS + 1)
    assert later < first  # same length hex: newer sorts first
    assert int(first, 16) == 2**63 - 1 - NOW_NS
    assert resolved.time_from_id(first) == pytest.approx(NOW_NS / 1e9)


def test_api_id_format() -> None:
    deployment = resolved.new_deployment_id()
    assert re.fullmatch(r"[a-z][a-z0-9]{9}", deployment)
    api_id = resolved.api_id("s" * 32, deployment, NOW_NS)
    assert api_id == f"{resolved.monotonic_id(NOW_NS)}-{deployment}-{'s' * 32}"
    assert resolved.time_from_id(api_id) == pytest.approx(NOW_NS / 1e9)
    assert resolved.api_id("abc", "", NOW_NS) == f"{resolved.monotonic_id(NOW_NS)}--abc"


def test_deployment_ids_are_random() -> None:
    assert len({resolved.new_deployment_id() for _ in range(20)}) == 20


# --- rolling update fence posts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 1, (1, 0)),  # surge ceil(0.25) = 1, unavailable floor(0.25) = 0
        ("25%", "25%", 10, (3, 2)),  # ceil(2.5) = 3, floor(2.5) = 2
        ("30%", "30%", 5, (2, 1)),  # ceil(1.5) = 2, floor(1.5) = 1
        ("2", "1", 10, (2, 1)),
        ("0", "0", 3, (0, 1)),  # both zero: unavailable becomes 1
        ("0%", "25%", 3, (0, 1)),  # floor(0.75) = 0 -> both zero -> 1
        ("100%", "0", 3, (3, 0)),
        ("25%", "25%", 0, (0, 1)),
    ],
)
def test_surge_and_unavailable(
    surge: str, unavailable: str, desired: int, expected: tuple[int, int]
) -> None:
    strategy = UpdateStrategy(max_surge=surge, max_unavailable=unavailable)
    assert resolved.surge_and_unavailable(strategy, desired) == expected


# --- spec JSON --------------------------------------------------------------------------------


def test_spec_json_realtime() -> None:
    api = spec(
        pod={
            "containers": [
                {"name": "api", "image": "python", "compute": {"cpu": 1, "mem": "1024Mi"}}
            ]
        },
        autoscaling={"window": "1m30s"},
    )
    doc = resolved.spec_to_json(api)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert list(doc) == [
        "name",
        "kind",
        "pod",
        "networking",
        "autoscaling",
        "update_strategy",
        "node_groups",
        "apis",
        "index",
        "file_name",
        "submitted_api_spec",
        "pod_id",
        "spec_id",
    ]
    assert doc["kind"] == "RealtimeAPI"
    assert doc["networking"] == {"endpoint": "/iris"}
    assert doc["pod"]["containers"][0]["compute"] == {
        "cpu": "1",
        "mem": "1Gi",
        "gpu": 0,
        "inf": 0,
        "shm": None,
    }
    scaling = doc["autoscaling"]
    assert scaling["window"] == 90 * 10**9
    assert scaling["downscale_stabilization_period"] == 300 * 10**9
    assert scaling["upscale_stabilization_period"] == 60 * 10**9
    assert (scaling["init_replicas"], scaling["target_in_flight"]) == (1, 1.0)
    assert doc["update_strategy"] == {"max_surge": "25%", "max_unavailable": "25%"}
    assert doc["submitted_api_spec"]["autoscaling"] == {"window": "1m30s"}
    assert (doc["pod_id"], doc["spec_id"]) == (resolved.pod_id(api), resolved.spec_id(api))


def test_spec_json_splitter_and_batch() -> None:
    doc = resolved.spec_to_json(splitter())
    assert (doc["pod"], doc["autoscaling"], doc["update_strategy"]) == (None, None, None)
    assert doc["apis"] == [{"name": "iris", "weight": 100, "shadow": False}]
    assert doc["kind"] == "TrafficSplitter"
    doc = resolved.spec_to_json(batch())
    assert (doc["autoscaling"], doc["apis"], doc["pod"]["port"]) == (None, None, 8080)
