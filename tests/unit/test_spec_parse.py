"""Every validation rule of SPEC 11.1-11.3 and 9, with the exact message a user reads."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from cortex.errors import SpecError
from cortex.spec.kinds import Kind
from cortex.spec.parse import SCHEMA_SUFFIX, parse_api

FILE = "cortex.yaml"
ALL_HANDLERS = '"http_get", "tcp_socket", or "exec"'
STRATEGY_TAIL = (
    "is not a valid value - must be an integer percentage (e.g. 25%, to denote a percentage of "
    "desired replicas) or a positive integer (e.g. 5, to denote a number of replicas)"
)
NULL_HINT = "cannot be null (specify a value, or remove the key to use the default value)"
BOTH = "(both cannot be specified at the same time)"
BAD_PATH = 'is not a valid path (it may contain only letters, numbers, "-", "_", "." and "/")'
BAD_DURATION = 'is not a valid duration (e.g. "10s", "1m30s" or "5m")'
TIF = "target_in_flight cannot be greater than max_concurrency + max_queue_length"
DNS = (
    "must contain only lower case letters, numbers, and dashes, start with a letter, "
    "and cannot end with a dash"
)


def container(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "api", "image": "python:3.11", "command": ["python", "s.py"]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def api(kind: Any = "RealtimeAPI", **fields: Any) -> dict[str, Any]:
    """A valid item of ``kind``; ``fields`` override top-level keys (``...`` deletes one)."""
    item: dict[str, Any] = {"name": "x", "kind": kind}
    if kind == "TrafficSplitter":
        item["apis"] = [{"name": "a", "weight": 100}]
    else:
        item["pod"] = {"containers": [container()]}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not ...}


def pod(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"containers": list(containers) or [container()], **fields}


def error_of(item: Any) -> str:
    """The message for ``item``, without the schema suffix (checked once below)."""
    with pytest.raises(SpecError) as info:
        parse_api(item, file_name=FILE, index=0)
    message = info.value.message
    assert message.endswith(SCHEMA_SUFFIX)
    return message.removesuffix(SCHEMA_SUFFIX)


def test_error_has_file_name_kind_path_and_docs_suffix() -> None:
    with pytest.raises(SpecError) as info:
        parse_api(api(pod=pod(port=8888)), file_name="apis/cortex.yaml", index=3)
    assert info.value.message == (
        "apis/cortex.yaml: x (RealtimeAPI): pod: port: 8888 is not allowed, please use a "
        "different value\n\napi configuration schema: see docs/cortex-yaml.md"
    )
    assert info.value.code == "spec.invalid"
    assert info.value.status_code == 400
    assert info.value.details == {
        "file_name": "apis/cortex.yaml",
        "index": 3,
        "path": ["pod", "port"],
    }


# --- name and kind (pass 1) -------------------------------------------------------------------

NAME_AND_KIND = [
    (api(name="Foo"), f'Foo (RealtimeAPI): name: "Foo" {DNS}'),
    (api(name="a-"), f'a- (RealtimeAPI): name: "a-" {DNS}'),
    (api(name="a_b"), f'a_b (RealtimeAPI): name: "a_b" {DNS}'),
    (api(name="1a"), f'1a (RealtimeAPI): name: "1a" {DNS}'),
    (
        api(name="a" * 43),
        f'{"a" * 43} (RealtimeAPI): name: "{"a" * 43}" must be no more than 42 characters',
    ),
    (api(name="b-x"), 'b-x (RealtimeAPI): name: "b-x" cannot start with "b-"'),
    (api(name=...), "resource at index 0 (RealtimeAPI): name: must be defined"),
    (api(name=None), "resource at index 0 (RealtimeAPI): name: cannot be null"),
    (api(name=""), "resource at index 0 (RealtimeAPI): name: cannot be empty"),
    (api(name=5), "resource at index 0 (RealtimeAPI): name: 5: invalid type (expected string)"),
    (api(kind=...), "x: kind: must be defined"),
    (
        api(kind="Foo"),
        'x: kind: invalid value (got "Foo", must be "RealtimeAPI", "BatchAPI", '
        '"TrafficSplitter", "TaskAPI", or "AsyncAPI")',
    ),
    ({"kind": 3}, "resource at index 0: name: must be defined"),
]


@pytest.mark.parametrize(("item", "expected"), NAME_AND_KIND)
def test_name_and_kind(item: dict[str, Any], expected: str) -> None:
    assert error_of(item) == f"{FILE}: {expected}"


def test_name_of_exactly_42_characters_is_valid() -> None:
    assert parse_api(api(name="a" * 42), file_name=FILE, index=0).name == "a" * 42


# --- unsupported keys -------------------------------------------------------------------------

UNSUPPORTED = [
    ("RealtimeAPI", {"podd": {}}, 'key "podd" is not supported (did you mean "pod"?)'),
    ("RealtimeAPI", {"zzz": 1}, 'key "zzz" is not supported'),
    ("RealtimeAPI", {"apis": []}, 'key "apis" is not supported for RealtimeAPI kind'),
    ("BatchAPI", {"autoscaling": {}}, 'key "autoscaling" is not supported for BatchAPI kind'),
    ("TaskAPI", {"update_strategy": {}}, 'key "update_strategy" is not supported for TaskAPI kind'),
    ("TrafficSplitter", {"pod": {}}, 'key "pod" is not supported for TrafficSplitter kind'),
    (
        "TrafficSplitter",
        {"autoscaling": {}},
        'key "autoscaling" is not supported for TrafficSplitter kind',
    ),
    (
        "TrafficSplitter",
        {"node_groups": ["a"]},
        'key "node_groups" is not supported for TrafficSplitter kind',
    ),
    (
        "RealtimeAPI",
        {"pod": {"containres": []}},
        'pod: key "containres" is not supported (did you mean "containers"?)',
    ),
    (
        "AsyncAPI",
        {"pod": pod(max_queue_length=5)},
        'pod: key "max_queue_length" is not supported for AsyncAPI kind',
    ),
    (
        "BatchAPI",
        {"pod": pod(max_concurrency=2)},
        'pod: key "max_concurrency" is not supported for BatchAPI kind',
    ),
    (
        "TaskAPI",
        {"pod": pod(max_concurrency=2)},
        'pod: key "max_concurrency" is not supported for TaskAPI kind',
    ),
    (
        "RealtimeAPI",
        {"pod": pod(container(comand=["a"]))},
        'pod: containers: index 0: key "comand" is not supported (did you mean "command"?)',
    ),
    (
        "BatchAPI",
        {"pod": pod(container(pre_stop={"exec": {"command": ["a"]}}))},
        'pod: containers: index 0: key "pre_stop" is not supported for BatchAPI kind',
    ),
    (
        "TaskAPI",
        {"pod": pod(container(readiness_probe={"tcp_socket": {"port": 1}}))},
        'pod: containers: index 0: key "readiness_probe" is not supported for TaskAPI kind',
    ),
    (
        "RealtimeAPI",
        {"pod": pod(container(compute={"memory": "1Gi"}))},
        'pod: containers: index 0: compute: key "memory" is not supported (did you mean "mem"?)',
    ),
    (
        "RealtimeAPI",
        {"networking": {"endpiont": "/a"}},
        'networking: key "endpiont" is not supported (did you mean "endpoint"?)',
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"min_replica": 1}},
        'autoscaling: key "min_replica" is not supported (did you mean "min_replicas"?)',
    ),
    (
        "RealtimeAPI",
        {"update_strategy": {"surge": 1}},
        'update_strategy: key "surge" is not supported (did you mean "max_surge"?)',
    ),
    (
        "TrafficSplitter",
        {"apis": [{"name": "a", "wieght": 100}]},
        'apis: index 0: key "wieght" is not supported (did you mean "weight"?)',
    ),
]


@pytest.mark.parametrize(("kind", "fields", "expected"), UNSUPPORTED)
def test_unsupported_keys(kind: str, fields: dict[str, Any], expected: str) -> None:
    assert error_of(api(kind, **fields)) == f"{FILE}: x ({kind}): {expected}"


# --- pod --------------------------------------------------------------------------------------

POD_RULES = [
    ("RealtimeAPI", {"pod": ...}, "pod: containers: must be defined"),
    ("RealtimeAPI", {"pod": None}, "pod: cannot be empty or null"),
    ("RealtimeAPI", {"pod": []}, "pod: []: invalid type (expected map)"),
    (
        "RealtimeAPI",
        {"pod": {"containers": []}},
        "pod: containers: must contain at least 1 elements",
    ),
    (
        "RealtimeAPI",
        {"pod": {"containers": None}},
        "pod: containers: must contain at least 1 elements",
    ),
    (
        "RealtimeAPI",
        {"pod": {"containers": "api"}},
        'pod: containers: "api": invalid type (expected list)',
    ),
    (
        "RealtimeAPI",
        {"pod": {"containers": ["api"]}},
        'pod: containers: index 0: "api": invalid type (expected map)',
    ),
    (
        "RealtimeAPI",
        {"pod": pod(port=8888)},
        "pod: port: 8888 is not allowed, please use a different value",
    ),
    (
        "AsyncAPI",
        {"pod": pod(port=15000)},
        "pod: port: 15000 is not allowed, please use a different value",
    ),
    ("BatchAPI", {"pod": pod(port=0)}, "pod: port: must be greater than 0 (got 0)"),
    (
        "RealtimeAPI",
        {"pod": pod(port=70000)},
        "pod: port: must be less than or equal to 65535 (got 70000)",
    ),
    ("RealtimeAPI", {"pod": pod(port="80")}, 'pod: port: "80": invalid type (expected integer)'),
    ("TaskAPI", {"pod": pod(port=8080)}, "pod: port is not supported for TaskAPI kind"),
    (
        "RealtimeAPI",
        {"pod": pod(max_concurrency=0)},
        "pod: max_concurrency: must be greater than 0 (got 0)",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(max_concurrency=30001)},
        "pod: max_concurrency: must be less than or equal to 30000 (got 30001)",
    ),
    (
        "AsyncAPI",
        {"pod": pod(max_concurrency=101)},
        "pod: max_concurrency: must be less than or equal to 100 (got 101)",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(max_concurrency=True)},
        "pod: max_concurrency: true: invalid type (expected integer)",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(max_concurrency=1.5)},
        "pod: max_concurrency: 1.5: invalid type (expected integer)",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(max_concurrency=None)},
        f"pod: max_concurrency: {NULL_HINT}",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(max_queue_length=0)},
        "pod: max_queue_length: must be greater than 0 (got 0)",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(max_queue_length=30001)},
        "pod: max_queue_length: must be less than or equal to 30000 (got 30001)",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(container(), container())},
        "pod: containers: container name api must be unique",
    ),
    (
        "RealtimeAPI",
        {"pod": pod(container(compute={"gpu": 1}), container(name="b", compute={"inf": 1}))},
        "pod: gpu and inf resources cannot be used together",
    ),
]


@pytest.mark.parametrize(("kind", "fields", "expected"), POD_RULES)
def test_pod_rules(kind: str, fields: dict[str, Any], expected: str) -> None:
    assert error_of(api(kind, **fields)) == f"{FILE}: x ({kind}): {expected}"


# --- containers -------------------------------------------------------------------------------

C0 = "pod: containers: index 0"
CONTAINER_RULES = [
    ("RealtimeAPI", container(name=...), f"{C0}: name: must be defined"),
    ("RealtimeAPI", container(name=""), f"{C0}: name: cannot be empty"),
    ("RealtimeAPI", container(name="Api"), f'{C0}: name: "Api" {DNS}'),
    (
        "RealtimeAPI",
        container(name="a" * 64),
        f'{C0}: name: "{"a" * 64}" must be no more than 63 characters',
    ),
    (
        "RealtimeAPI",
        container(name="proxy"),
        f'{C0}: name: "proxy" is not allowed, please use a different value',
    ),
    (
        "AsyncAPI",
        container(name="dequeuer"),
        f'{C0}: name: "dequeuer" is not allowed, please use a different value',
    ),
    ("RealtimeAPI", container(image=...), f"{C0}: image: must be defined"),
    (
        "RealtimeAPI",
        container(image="Not Valid"),
        f'{C0}: image: "Not Valid" is not a valid docker image path',
    ),
    (
        "RealtimeAPI",
        container(image="org/Ubuntu"),
        f'{C0}: image: "org/Ubuntu" is not a valid docker image path',
    ),
    (
        "RealtimeAPI",
        container(image="img:" + "t" * 129),
        f'{C0}: image: "img:{"t" * 129}" is not a valid docker image path',
    ),
    (
        "RealtimeAPI",
        container(env={"CORTEX_X": "1"}),
        f"{C0}: env: environment variables starting with CORTEX_ or KUBEXIT_ are reserved",
    ),
    (
        "TaskAPI",
        container(env={"KUBEXIT_NAME": "a"}),
        f"{C0}: env: environment variables starting with CORTEX_ or KUBEXIT_ are reserved",
    ),
    (
        "RealtimeAPI",
        container(env=["A=1"]),
        f'{C0}: env: ["A=1"]: invalid type (expected map of strings to strings)',
    ),
    (
        "RealtimeAPI",
        container(env=None),
        f"{C0}: env: {NULL_HINT}",
    ),
    ("BatchAPI", container(command=...), f"{C0}: command must be specified for BatchAPI kind"),
    ("TaskAPI", container(command=None), f"{C0}: command must be specified for TaskAPI kind"),
    (
        "RealtimeAPI",
        container(command="python s.py"),
        f'{C0}: command: "python s.py": invalid type (expected list of strings)',
    ),
    (
        "RealtimeAPI",
        container(args=[1]),
        f"{C0}: args: [1]: invalid type (expected list of strings)",
    ),
]


@pytest.mark.parametrize(("kind", "item", "expected"), CONTAINER_RULES)
def test_container_rules(kind: str, item: dict[str, Any], expected: str) -> None:
    assert error_of(api(kind, pod=pod(item))) == f"{FILE}: x ({kind}): {expected}"


@pytest.mark.parametrize(
    "image",
    [
        "ubuntu",
        "python:3.11-slim",
        "localhost:5000/org/img:tag",
        "quay.io/cortexlabs/python-predictor-cpu:0.42.0",
        "123.dkr.ecr.us-west-2.amazonaws.com/my_repo/img__x:v1.2",
        "img@sha256:" + "a" * 64,
    ],
)
def test_valid_docker_images(image: str) -> None:
    spec = parse_api(api(pod=pod(container(image=image))), file_name=FILE, index=0)
    assert spec.pod is not None
    assert spec.pod.containers[0].image == image


# --- compute ----------------------------------------------------------------------------------

QUANTITY_HINT = (
    "invalid kubernetes quantity, some valid examples are 1, 200m, 500Mi, 2G "
    "(see docs/cortex-yaml.md)"
)
COMPUTE_RULES = [
    ({"cpu": "10m"}, 'cpu: must be greater than or equal to 20m (got "10m")'),
    ({"cpu": 0.01}, 'cpu: must be greater than or equal to 20m (got "0.01")'),
    ({"cpu": "abc"}, f'cpu: "abc": {QUANTITY_HINT}'),
    ({"cpu": "1 Gi"}, f'cpu: "1 Gi": {QUANTITY_HINT}'),
    ({"cpu": [1]}, "cpu: [1]: invalid type (expected string or number)"),
    ({"mem": "10Mi"}, 'mem: must be greater than or equal to 20Mi (got "10Mi")'),
    ({"mem": 1000000000}, "mem: 1000000000: invalid type (expected string)"),
    ({"mem": "1Gb"}, f'mem: "1Gb": {QUANTITY_HINT}'),
    ({"shm": "1x"}, f'shm: "1x": {QUANTITY_HINT}'),
    ({"gpu": -1}, "gpu: must be greater than or equal to 0 (got -1)"),
    ({"inf": -2}, "inf: must be greater than or equal to 0 (got -2)"),
    ({"gpu": 0.5}, "gpu: 0.5: invalid type (expected integer)"),
    ({"mem": "1Gi", "shm": "2Gi"}, "shm (2Gi) cannot exceed total compute mem (1Gi)"),
]


@pytest.mark.parametrize(("compute", "expected"), COMPUTE_RULES)
def test_compute_rules(compute: dict[str, Any], expected: str) -> None:
    where = "shm (" if expected.startswith("shm (") else ""
    message = error_of(api(pod=pod(container(compute=compute))))
    assert (
        message == f"{FILE}: x (RealtimeAPI): {C0}: compute: {where}{expected.removeprefix(where)}"
    )


def test_null_compute_is_refused() -> None:
    message = error_of(api(pod=pod(container(compute=None))))
    assert message == f"{FILE}: x (RealtimeAPI): {C0}: compute: cannot be empty or null"


# --- probes and pre_stop ----------------------------------------------------------------------

R0 = f"{C0}: readiness_probe"
PROBE_RULES = [
    (
        "RealtimeAPI",
        {"readiness_probe": {}},
        f"{R0}: please specify one of the following fields: {ALL_HANDLERS}",
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"exec": {"command": ["a"]}, "tcp_socket": {"port": 1}}},
        f"{R0}: please specify only one of the following fields: {ALL_HANDLERS}",
    ),
    (
        "TaskAPI",
        {"liveness_probe": {"period_seconds": 5}},
        f"{C0}: liveness_probe: please specify one of the following fields: {ALL_HANDLERS}",
    ),
    (
        "AsyncAPI",
        {"readiness_probe": {}},
        f'{R0}: please specify either "http_get" or "tcp_socket"',
    ),
    (
        "BatchAPI",
        {"readiness_probe": {"http_get": {"port": 1}, "tcp_socket": {"port": 1}}},
        f'{R0}: please specify either "http_get" or "tcp_socket" {BOTH}',
    ),
    (
        "AsyncAPI",
        {"readiness_probe": {"exec": {"command": ["a"]}}},
        f'{R0}: key "exec" is not supported for AsyncAPI kind',
    ),
    (
        "BatchAPI",
        {"readiness_probe": {"exec": {"command": ["a"]}}},
        f'{R0}: key "exec" is not supported for BatchAPI kind',
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"http_get": {"path": None, "port": 1}}},
        f"{R0}: http_get: path: {NULL_HINT}",
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"http_get": {}}},
        f"{R0}: http_get: port: must be defined",
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"http_get": {"port": 15000}}},
        f"{R0}: http_get: port: 15000 is not allowed, please use a different value",
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"http_get": {"port": "http"}}},
        f'{R0}: http_get: port: "http": invalid type (expected integer)',
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"tcp_socket": {"port": 0}}},
        f"{R0}: tcp_socket: port: must be greater than 0 (got 0)",
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"http_get": {"port": 1, "path": "a b"}}},
        f'{R0}: http_get: path: "a b" {BAD_PATH}',
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"http_get": {"port": 1, "path": "/a//b"}}},
        f'{R0}: http_get: path: "/a//b" cannot contain adjacent slashes',
    ),
    ("RealtimeAPI", {"readiness_probe": {"exec": {}}}, f"{R0}: exec: command: must be defined"),
    (
        "RealtimeAPI",
        {"readiness_probe": {"exec": None, "tcp_socket": "x"}},
        f'{R0}: tcp_socket: "x": invalid type (expected map)',
    ),
    (
        "RealtimeAPI",
        {"readiness_probe": {"tcp_socket": {"port": 1}, "period_seconds": -1}},
        f"{R0}: period_seconds: must be greater than or equal to 0 (got -1)",
    ),
    (
        "RealtimeAPI",
        {"liveness_probe": {"tcp_socket": {"port": 1}, "failure_threshold": "3"}},
        f'{C0}: liveness_probe: failure_threshold: "3": invalid type (expected integer)',
    ),
    (
        "RealtimeAPI",
        {"pre_stop": {}},
        f'{C0}: pre_stop: please specify either "http_get" or "exec"',
    ),
    (
        "AsyncAPI",
        {"pre_stop": {"http_get": {"port": 1}, "exec": {"command": []}}},
        f'{C0}: pre_stop: please specify either "http_get" or "exec" {BOTH}',
    ),
    (
        "RealtimeAPI",
        {"pre_stop": {"tcp_socket": {"port": 1}}},
        f'{C0}: pre_stop: key "tcp_socket" is not supported',
    ),
]


@pytest.mark.parametrize(("kind", "fields", "expected"), PROBE_RULES)
def test_probe_rules(kind: str, fields: dict[str, Any], expected: str) -> None:
    assert error_of(api(kind, pod=pod(container(**fields)))) == f"{FILE}: x ({kind}): {expected}"


# --- networking, autoscaling, update_strategy, node_groups ------------------------------------

API_RULES = [
    (
        "RealtimeAPI",
        {"networking": {"endpoint": "/"}},
        'networking: endpoint: "/" is not allowed (a path must be specified)',
    ),
    (
        "TrafficSplitter",
        {"networking": {"endpoint": "//"}},
        'networking: endpoint: "//" cannot contain adjacent slashes',
    ),
    (
        "BatchAPI",
        {"networking": {"endpoint": "a//b"}},
        'networking: endpoint: "a//b" cannot contain adjacent slashes',
    ),
    ("TaskAPI", {"networking": {"endpoint": ""}}, "networking: endpoint: cannot be empty"),
    (
        "AsyncAPI",
        {"networking": {"endpoint": "x?y"}},
        f'networking: endpoint: "x?y" {BAD_PATH}',
    ),
    (
        "RealtimeAPI",
        {"networking": {"endpoint": "a" * 1001}},
        f'networking: endpoint: "{"a" * 1001}" must be no more than 1000 characters',
    ),
    ("RealtimeAPI", {"networking": None}, "networking: cannot be empty or null"),
    (
        "RealtimeAPI",
        {"autoscaling": {"min_replicas": -1}},
        "autoscaling: min_replicas: must be greater than or equal to 0 (got -1)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"max_replicas": 0}},
        "autoscaling: max_replicas: must be greater than 0 (got 0)",
    ),
    (
        "AsyncAPI",
        {"autoscaling": {"init_replicas": -1}},
        "autoscaling: init_replicas: must be greater than or equal to 0 (got -1)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"target_in_flight": 0}},
        "autoscaling: target_in_flight: must be greater than 0 (got 0)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"target_in_flight": "1"}},
        'autoscaling: target_in_flight: "1": invalid type (expected float)',
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"window": "5s"}},
        'autoscaling: window: must be greater than or equal to 10s (got "5s")',
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"window": "15s"}},
        "autoscaling: window: 15s is not a multiple of 10s",
    ),
    (
        "AsyncAPI",
        {"autoscaling": {"window": "1m5s"}},
        "autoscaling: window: 1m5s is not a multiple of 10s",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"window": "abc"}},
        f'autoscaling: window: "abc" {BAD_DURATION}',
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"window": 60}},
        "autoscaling: window: 60: invalid type (expected string)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"downscale_stabilization_period": "-1s"}},
        "autoscaling: downscale_stabilization_period: "
        'must be greater than or equal to 0s (got "-1s")',
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"upscale_stabilization_period": "1d"}},
        f'autoscaling: upscale_stabilization_period: "1d" {BAD_DURATION}',
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"max_downscale_factor": 1}},
        "autoscaling: max_downscale_factor: must be less than 1 (got 1)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"max_downscale_factor": -0.1}},
        "autoscaling: max_downscale_factor: must be greater than or equal to 0 (got -0.1)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"max_upscale_factor": 1}},
        "autoscaling: max_upscale_factor: must be greater than 1 (got 1)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"downscale_tolerance": 1.5}},
        "autoscaling: downscale_tolerance: must be less than 1 (got 1.5)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"upscale_tolerance": -1}},
        "autoscaling: upscale_tolerance: must be greater than or equal to 0 (got -1)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"min_replicas": 5, "max_replicas": 2}},
        "autoscaling: min_replicas cannot be greater than max_replicas (5 > 2)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"init_replicas": 200}},
        "autoscaling: init_replicas cannot be greater than max_replicas (200 > 100)",
    ),
    (
        "AsyncAPI",
        {"autoscaling": {"min_replicas": 2, "init_replicas": 1}},
        "autoscaling: init_replicas cannot be less than min_replicas (1 < 2)",
    ),
    (
        "RealtimeAPI",
        {"autoscaling": {"target_in_flight": 102}},
        f"autoscaling: {TIF} (102.000000 > 1 + 100)",
    ),
    (
        "RealtimeAPI",
        {
            "pod": pod(max_concurrency=4, max_queue_length=2),
            "autoscaling": {"target_in_flight": 6.5},
        },
        f"autoscaling: {TIF} (6.500000 > 4 + 2)",
    ),
    ("RealtimeAPI", {"autoscaling": None}, "autoscaling: cannot be empty or null"),
    ("RealtimeAPI", {"autoscaling": {"window": None}}, f"autoscaling: window: {NULL_HINT}"),
    (
        "RealtimeAPI",
        {"update_strategy": {"max_surge": "150%"}},
        f'update_strategy: max_surge: "150%" {STRATEGY_TAIL}',
    ),
    (
        "RealtimeAPI",
        {"update_strategy": {"max_unavailable": -1}},
        f'update_strategy: max_unavailable: "-1" {STRATEGY_TAIL}',
    ),
    (
        "AsyncAPI",
        {"update_strategy": {"max_surge": "abc"}},
        f'update_strategy: max_surge: "abc" {STRATEGY_TAIL}',
    ),
    (
        "RealtimeAPI",
        {"update_strategy": {"max_surge": 1.5}},
        "update_strategy: max_surge: 1.5: invalid type (expected string or integer)",
    ),
    (
        "RealtimeAPI",
        {"update_strategy": {"max_surge": None}},
        f"update_strategy: max_surge: {NULL_HINT}",
    ),
    (
        "RealtimeAPI",
        {"update_strategy": {"max_surge": 0, "max_unavailable": "0%"}},
        "update_strategy: max_surge and max_unavailable cannot both be zero",
    ),
    (
        "AsyncAPI",
        {"update_strategy": {"max_surge": "0%", "max_unavailable": "0"}},
        "update_strategy: max_surge and max_unavailable cannot both be zero",
    ),
    ("RealtimeAPI", {"node_groups": []}, "node_groups: must contain at least 1 elements"),
    (
        "BatchAPI",
        {"node_groups": ["a b"]},
        'node_groups: index 0: "a b" must contain only letters, numbers, underscores and dashes',
    ),
    (
        "TaskAPI",
        {"node_groups": "gpu"},
        'node_groups: "gpu": invalid type (expected list of strings)',
    ),
]


@pytest.mark.parametrize(("kind", "fields", "expected"), API_RULES)
def test_api_rules(kind: str, fields: dict[str, Any], expected: str) -> None:
    assert error_of(api(kind, **fields)) == f"{FILE}: x ({kind}): {expected}"


# --- traffic splitter -------------------------------------------------------------------------

SPLITTER_RULES = [
    ({"apis": ...}, "apis: must be defined"),
    ({"apis": {"a": 100}}, 'apis: {"a": 100}: invalid type (expected list)'),
    ({"apis": []}, "apis: expected weights of all non-shadow apis to sum to 100 but found 0"),
    (
        {"apis": [{"name": "a", "weight": 60}, {"name": "b", "weight": 30}]},
        "apis: expected weights of all non-shadow apis to sum to 100 but found 90",
    ),
    (
        {"apis": [{"name": "a", "weight": 100}, {"name": "b", "weight": 10, "shadow": False}]},
        "apis: expected weights of all non-shadow apis to sum to 100 but found 110",
    ),
    (
        {"apis": [{"name": "a", "weight": 50}, {"name": "a", "weight": 50}]},
        'apis: api not unique: "a"',
    ),
    (
        {
            "apis": [
                {"name": "a", "weight": 25},
                {"name": "a", "weight": 25},
                {"name": "b", "weight": 25},
                {"name": "b", "weight": 25},
            ]
        },
        'apis: apis not unique: "a" and "b"',
    ),
    (
        {
            "apis": [
                {"name": "a", "weight": 100},
                {"name": "b", "weight": 5, "shadow": True},
                {"name": "c", "weight": 5, "shadow": True},
            ]
        },
        "apis: multiple shadow apis detected; only one api is allowed to be marked as a shadow",
    ),
    (
        {"apis": [{"name": "a", "weight": 101}]},
        "apis: index 0: weight: must be less than or equal to 100 (got 101)",
    ),
    (
        {"apis": [{"name": "a", "weight": -1}]},
        "apis: index 0: weight: must be greater than or equal to 0 (got -1)",
    ),
    (
        {"apis": [{"name": "a", "weight": 100}, {"weight": 0}]},
        "apis: index 1: name: must be defined",
    ),
    ({"apis": [{"name": "a"}]}, "apis: index 0: weight: must be defined"),
    (
        {"apis": [{"name": "a", "weight": 100, "shadow": "yes"}]},
        'apis: index 0: shadow: "yes": invalid type (expected boolean)',
    ),
]


@pytest.mark.parametrize(("fields", "expected"), SPLITTER_RULES)
def test_splitter_rules(fields: dict[str, Any], expected: str) -> None:
    message = error_of(api("TrafficSplitter", **fields))
    assert message == f"{FILE}: x (TrafficSplitter): {expected}"


def test_splitter_shadow_weight_is_not_counted() -> None:
    targets = [{"name": "a", "weight": 70}, {"name": "b", "weight": 30}]
    targets.append({"name": "c", "weight": 100, "shadow": True})
    spec = parse_api(api("TrafficSplitter", apis=targets), file_name=FILE, index=0)
    assert spec.apis is not None
    assert [(t.name, t.weight, t.shadow) for t in spec.apis] == [
        ("a", 70, False),
        ("b", 30, False),
        ("c", 100, True),
    ]
    assert spec.pod is None
    assert spec.autoscaling is None
    assert spec.update_strategy is None


# --- defaults and canonical values ------------------------------------------------------------


def test_realtime_defaults() -> None:
    spec = parse_api(api(), file_name=FILE, index=2)
    assert spec.kind is Kind.REALTIME_API
    assert spec.index == 2
    assert spec.file_name == FILE
    assert spec.pod is not None
    assert (spec.pod.port, spec.pod.max_concurrency, spec.pod.max_queue_length) == (8080, 1, 100)
    c = spec.pod.containers[0]
    assert c.env == {}
    assert c.args is None
    assert c.readiness_probe is None and c.liveness_probe is None and c.pre_stop is None
    assert str(c.compute.cpu) == "200m"
    assert (c.compute.mem, c.compute.gpu, c.compute.inf, c.compute.shm) == (None, 0, 0, None)
    assert spec.networking.endpoint is None
    assert spec.node_groups is None
    assert spec.apis is None
    a = spec.autoscaling
    assert a is not None
    assert (a.min_replicas, a.max_replicas, a.init_replicas, a.target_in_flight) == (
        1,
        100,
        None,
        None,
    )
    assert [a.window.total_seconds(), a.downscale_stabilization_period.total_seconds()] == [60, 300]
    assert a.upscale_stabilization_period.total_seconds() == 60
    assert (a.max_downscale_factor, a.max_upscale_factor) == (0.75, 1.5)
    assert (a.downscale_tolerance, a.upscale_tolerance) == (0.05, 0.05)
    assert spec.update_strategy is not None
    assert (spec.update_strategy.max_surge, spec.update_strategy.max_unavailable) == ("25%", "25%")


@pytest.mark.parametrize("kind", ["BatchAPI", "TaskAPI"])
def test_job_kinds_have_no_autoscaling(kind: str) -> None:
    spec = parse_api(api(kind), file_name=FILE, index=0)
    assert spec.autoscaling is None
    assert spec.update_strategy is None
    assert spec.pod is not None
    assert spec.pod.port == (None if kind == "TaskAPI" else 8080)


def test_task_port_null_is_allowed() -> None:
    spec = parse_api(api("TaskAPI", pod=pod(port=None)), file_name=FILE, index=0)
    assert spec.pod is not None and spec.pod.port is None


def test_explicit_null_port_means_default() -> None:
    spec = parse_api(api(pod=pod(port=None)), file_name=FILE, index=0)
    assert spec.pod is not None and spec.pod.port == 8080


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [(1, "1"), (0.5, "500m"), ("1.5", "1500m"), ("250m", "250m"), (None, None), (2.0, "2")],
)
def test_cpu_accepts_strings_and_numbers(cpu: Any, expected: str | None) -> None:
    spec = parse_api(api(pod=pod(container(compute={"cpu": cpu}))), file_name=FILE, index=0)
    assert spec.pod is not None
    got = spec.pod.containers[0].compute.cpu
    assert (None if got is None else str(got)) == expected


def test_compute_accepts_mem_shm_gpu() -> None:
    compute = {"mem": "2Gi", "shm": "1Gi", "gpu": 2, "cpu": "20m"}
    spec = parse_api(api(pod=pod(container(compute=compute))), file_name=FILE, index=0)
    assert spec.pod is not None
    c = spec.pod.containers[0].compute
    assert (str(c.mem), str(c.shm), c.gpu, str(c.cpu)) == ("2Gi", "1Gi", 2, "20m")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("x/y/", "/x/y"), ("/x", "/x"), ("x", "/x"), ("/a.b/c-d_e/", "/a.b/c-d_e")],
)
def test_endpoint_is_canonicalised(raw: str, expected: str) -> None:
    spec = parse_api(api(networking={"endpoint": raw}), file_name=FILE, index=0)
    assert spec.networking.endpoint == expected


@pytest.mark.parametrize(("raw", "expected"), [(..., "/"), ("healthz/", "/healthz"), ("/", "/")])
def test_probe_path_is_canonicalised(raw: Any, expected: str) -> None:
    http_get = {"port": 8080, "path": raw}
    probe = {"http_get": {k: v for k, v in http_get.items() if v is not ...}}
    spec = parse_api(api(pod=pod(container(readiness_probe=probe))), file_name=FILE, index=0)
    assert spec.pod is not None
    readiness = spec.pod.containers[0].readiness_probe
    assert readiness is not None and readiness.http_get is not None
    assert readiness.http_get.path == expected
    assert (readiness.timeout_seconds, readiness.period_seconds) == (1, 10)
    assert (readiness.success_threshold, readiness.failure_threshold) == (1, 3)
    assert readiness.initial_delay_seconds == 0


def test_probes_and_pre_stop_accepted() -> None:
    item = container(
        liveness_probe={"exec": {"command": ["true"]}, "period_seconds": 2},
        pre_stop={"http_get": {"port": 9000, "path": "stop"}},
        readiness_probe={"tcp_socket": {"port": 8080}, "initial_delay_seconds": 3},
    )
    spec = parse_api(api("AsyncAPI", pod=pod(item)), file_name=FILE, index=0)
    assert spec.pod is not None
    c = spec.pod.containers[0]
    assert c.liveness_probe is not None and c.liveness_probe.exec is not None
    assert (c.liveness_probe.exec.command, c.liveness_probe.period_seconds) == (["true"], 2)
    assert c.pre_stop is not None and c.pre_stop.http_get is not None
    assert (c.pre_stop.http_get.path, c.pre_stop.http_get.port) == ("/stop", 9000)
    assert c.readiness_probe is not None and c.readiness_probe.tcp_socket is not None
    assert c.readiness_probe.initial_delay_seconds == 3


def test_autoscaling_values_and_update_strategy_numbers() -> None:
    fields: dict[str, Any] = {
        "autoscaling": {
            "min_replicas": 0,
            "max_replicas": 5,
            "init_replicas": 2,
            "target_in_flight": 101,
            "window": "1m30s",
            "downscale_stabilization_period": "0s",
        },
        "update_strategy": {"max_surge": 2, "max_unavailable": "0"},
    }
    spec = parse_api(api(**fields), file_name=FILE, index=0)
    a = spec.autoscaling
    assert a is not None
    assert (a.min_replicas, a.max_replicas, a.init_replicas, a.target_in_flight) == (0, 5, 2, 101.0)
    assert (a.window.total_seconds(), a.downscale_stabilization_period.total_seconds()) == (90, 0)
    assert spec.update_strategy is not None
    assert (spec.update_strategy.max_surge, spec.update_strategy.max_unavailable) == ("2", "0")


def test_async_target_in_flight_has_no_queue_bound() -> None:
    spec = parse_api(
        api("AsyncAPI", autoscaling={"target_in_flight": 500}), file_name=FILE, index=0
    )
    assert spec.autoscaling is not None and spec.autoscaling.target_in_flight == 500


def test_env_scalars_become_strings() -> None:
    env = {"A": 1, "B": True, "C": "x"}
    spec = parse_api(api(pod=pod(container(env=env))), file_name=FILE, index=0)
    assert spec.pod is not None
    assert spec.pod.containers[0].env == {"A": "1", "B": "true", "C": "x"}


def test_node_groups_kept() -> None:
    spec = parse_api(api("BatchAPI", node_groups=["cpu-ng", "gpu_2"]), file_name=FILE, index=0)
    assert spec.node_groups == ["cpu-ng", "gpu_2"]


def test_submitted_spec_is_a_copy_of_the_raw_item() -> None:
    item = api(autoscaling={"window": "20s"})
    spec = parse_api(item, file_name=FILE, index=0)
    assert spec.submitted_api_spec == item
    item["autoscaling"]["window"] = "30s"
    assert spec.submitted_api_spec["autoscaling"]["window"] == "20s"


def test_stored_item_reparses_to_an_equal_model() -> None:
    item = api("AsyncAPI", networking={"endpoint": "a/b/"}, node_groups=["ng"])
    first = parse_api(item, file_name=FILE, index=1)
    again = parse_api(copy.deepcopy(first.submitted_api_spec), file_name=FILE, index=1)
    assert again == first


def test_yaml_integral_float_is_an_int() -> None:
    item = yaml.safe_load(
        "{name: x, kind: RealtimeAPI, pod: {port: 9000.0, containers: [{name: a, image: b}]}}"
    )
    spec = parse_api(item, file_name=FILE, index=0)
    assert spec.pod is not None and spec.pod.port == 9000
