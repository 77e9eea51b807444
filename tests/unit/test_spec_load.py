"""File-level parsing of cortex.yaml (SPEC 11.1, 11.4 step 5): shape, all-or-nothing, uniqueness."""

from __future__ import annotations

import pytest

from cortex.errors import SpecError
from cortex.spec.kinds import Kind
from cortex.spec.parse import SCHEMA_SUFFIX, load_apis

FILE = "cortex.yaml"
HINT = "(see docs/cortex-yaml.md for api configuration schema)"
REALTIME = """
- name: iris
  kind: RealtimeAPI
  pod:
    containers:
      - name: api
        image: python:3.11
        command: [python, serve.py]
"""
BATCH = """
- name: batch
  kind: BatchAPI
  pod:
    containers: [{name: w, image: python, command: [python, w.py]}]
"""
SPLITTER = """
- name: split
  kind: TrafficSplitter
  apis: [{name: iris, weight: 100}]
"""


def load_error(text: str | bytes) -> str:
    with pytest.raises(SpecError) as info:
        load_apis(text, file_name=FILE)
    return info.value.message


def test_loads_every_kind_in_file_order() -> None:
    text = (
        REALTIME
        + BATCH
        + SPLITTER
        + """
- {name: task, kind: TaskAPI, pod: {containers: [{name: t, image: busybox, command: [date]}]}}
- {name: async, kind: AsyncAPI, pod: {containers: [{name: a, image: python}]}}
"""
    )
    apis = load_apis(text.encode(), file_name=FILE)
    assert [(a.name, a.kind, a.index) for a in apis] == [
        ("iris", Kind.REALTIME_API, 0),
        ("batch", Kind.BATCH_API, 1),
        ("split", Kind.TRAFFIC_SPLITTER, 2),
        ("task", Kind.TASK_API, 3),
        ("async", Kind.ASYNC_API, 4),
    ]
    assert all(a.file_name == FILE for a in apis)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nkind: RealtimeAPI\n",
            f"{FILE}: cortex YAML configuration files must contain a list of maps {HINT}",
        ),
        (
            "- x\n- y\n",
            f"{FILE}: cortex YAML configuration files must contain a list of maps {HINT}",
        ),
        ("", f"{FILE}: cortex YAML configuration files must contain a list of maps {HINT}"),
        ("[]", f"{FILE}: at least one API must be configured {HINT}"),
    ],
)
def test_file_shape(text: str, expected: str) -> None:
    assert load_error(text) == expected


def test_invalid_yaml() -> None:
    message = load_error("- name: [x\n")
    assert message.startswith(f"{FILE}: invalid yaml: ")
    assert "line" in message


def test_one_invalid_api_rejects_the_whole_file() -> None:
    text = REALTIME + "- {name: bad, kind: RealtimeAPI, pod: {containers: []}}\n"
    assert load_error(text) == (
        f"{FILE}: bad (RealtimeAPI): pod: containers: must contain at least 1 elements"
        + SCHEMA_SUFFIX
    )


def test_first_error_in_file_order_is_reported() -> None:
    text = "- {name: a, kind: Nope}\n- {kind: RealtimeAPI}\n"
    assert load_error(text).startswith(f"{FILE}: a: kind: invalid value")
    assert load_error("- {kind: RealtimeAPI}\n- {name: a, kind: Nope}\n") == (
        f"{FILE}: resource at index 0 (RealtimeAPI): name: must be defined" + SCHEMA_SUFFIX
    )


def test_names_must_be_unique_in_a_file() -> None:
    text = REALTIME + BATCH + REALTIME.replace("iris\n", "iris\n  networking: {endpoint: other}\n")
    assert load_error(text) == (
        f'{FILE}: name "iris" must be unique across apis (defined in {FILE} at index 0 and '
        f"index 2){SCHEMA_SUFFIX}"
    )


def test_endpoints_must_be_unique_in_a_file() -> None:
    # batch's explicit endpoint "/iris/" canonicalises to iris's default "/iris"
    text = REALTIME + BATCH.replace(
        "kind: BatchAPI", "kind: BatchAPI\n  networking: {endpoint: iris/}"
    )
    assert load_error(text) == (
        f'{FILE}: endpoint "/iris" must be unique across apis (defined in iris and batch)'
        + SCHEMA_SUFFIX
    )


def test_distinct_endpoints_load() -> None:
    text = REALTIME + BATCH.replace(
        "kind: BatchAPI", "kind: BatchAPI\n  networking: {endpoint: iris/b}"
    )
    assert [a.networking.endpoint for a in load_apis(text, file_name=FILE)] == [None, "/iris/b"]
