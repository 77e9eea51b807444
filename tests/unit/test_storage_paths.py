"""Storage keys: the layout of cortex/storage/paths.py and its guards."""

from __future__ import annotations

import pytest

from cortex.spec.kinds import Kind
from cortex.storage import paths
from cortex.storage.base import InvalidKeyError, check_key


def test_async_workload_keys() -> None:
    assert paths.workloads_prefix("iris") == "workloads/iris"
    assert paths.workload_prefix("iris", "69a1") == "workloads/iris/69a1"
    assert paths.workload_payload_key("iris", "69a1") == "workloads/iris/69a1/payload"
    assert paths.workload_headers_key("iris", "69a1") == "workloads/iris/69a1/headers.json"
    assert paths.workload_result_key("iris", "69a1") == "workloads/iris/69a1/result.json"
    assert paths.workload_status_key("iris", "69a1") == "workloads/iris/69a1/status.json"


def test_job_keys() -> None:
    assert paths.jobs_prefix(Kind.BATCH_API, "b") == "jobs/BatchAPI/b"
    assert paths.job_prefix(Kind.TASK_API, "t", "j1") == "jobs/TaskAPI/t/j1"
    assert paths.job_spec_key(Kind.BATCH_API, "b", "j1") == "jobs/BatchAPI/b/j1/spec.json"
    assert paths.job_spec_key(Kind.TASK_API, "t", "j1") == "jobs/TaskAPI/t/j1/spec.json"
    assert paths.job_status_key(Kind.TASK_API, "t", "j1") == "jobs/TaskAPI/t/j1/status.json"
    assert paths.job_payload_key("b", "j1") == "jobs/BatchAPI/b/j1/payload.json"
    assert paths.job_max_batch_count_key("b", "j1") == "jobs/BatchAPI/b/j1/max_batch_count"
    assert paths.job_metrics_key("b", "j1") == "jobs/BatchAPI/b/j1/metrics.json"
    assert paths.job_dead_letter_prefix("b", "j1") == "jobs/BatchAPI/b/j1/dead_letter"
    assert paths.job_dead_letter_key("b", "j1", "m7") == "jobs/BatchAPI/b/j1/dead_letter/m7.json"


def test_job_kind_accepts_the_wire_string() -> None:
    assert paths.job_prefix("BatchAPI", "b", "j") == "jobs/BatchAPI/b/j"  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [Kind.REALTIME_API, Kind.ASYNC_API, Kind.TRAFFIC_SPLITTER])
def test_only_batch_and_task_have_jobs(kind: Kind) -> None:
    with pytest.raises(InvalidKeyError):
        paths.job_spec_key(kind, "a", "j")


def test_api_keys() -> None:
    assert paths.api_spec_key("iris", "69a-dep-spec") == "apis/iris/api/69a-dep-spec/spec.json"
    assert paths.api_prefixes("iris") == [
        "apis/iris",
        "workloads/iris",
        "jobs/BatchAPI/iris",
        "jobs/TaskAPI/iris",
    ]


def test_status_record() -> None:
    assert paths.status_record("in_queue", 12.5) == {"status": "in_queue", "timestamp": 12.5}


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../x", "a\\b", "x\x00", ".cortex-tmp-1"])
def test_ids_from_urls_cannot_escape_their_folder(bad: str) -> None:
    with pytest.raises(InvalidKeyError):
        paths.workload_status_key("iris", bad)
    with pytest.raises(InvalidKeyError):
        paths.job_spec_key(Kind.BATCH_API, bad, "j")


def test_every_key_is_a_valid_store_key() -> None:
    keys = [
        paths.workload_payload_key("a", "1"),
        paths.job_dead_letter_key("a", "1", "m"),
        paths.api_spec_key("a", "x"),
        *paths.api_prefixes("a"),
    ]
    assert [check_key(k) for k in keys] == keys
