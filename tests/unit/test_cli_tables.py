from typing import Any

import pytest
from rich.text import Text

from cortex.cli.tables import Table, format_age, go_duration, go_duration_ms, parse_time
from cortex.cli.views import (
    EnvApis,
    api_detail,
    api_list_tables,
    describe_blocks,
    job_blocks,
    jobs_table,
    replica_table,
)

NOW = 1_000_000.0


def text(block: Table | Text | str) -> str:
    return block if isinstance(block, str) else block.plain


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m0s"),
        (3599, "59m59s"),
        (3600, "1h0m"),
        (47 * 3600 + 59 * 60 + 59, "47h59m"),  # just under 48 h
        (48 * 3600, "2d0h"),
        (3 * 86400 + 5 * 3600 + 7, "3d5h"),
        (-5, "0s"),  # clock skew
    ],
)
def test_format_age(seconds, text):
    assert format_age(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45.9, "45s"), (90, "1m30s"), (7205, "2h0m5s")]
)
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_parse_time_accepts_nanoseconds_and_z():
    moment = parse_time("2024-01-02T03:04:05.123456789Z")
    assert moment is not None
    assert moment.timestamp() == pytest.approx(1704164645.123456)
    assert parse_time("") is None
    assert parse_time("not a time") is None


def test_table_three_space_columns_sorted_last_column_unpadded():
    table = Table(("name", "live"), [["zeta", "1/1"], ["a", "10/10"]])
    assert table.plain == "name   live\na      10/10\nzeta   1/1"
    spans = table.render().spans
    assert [(s.start, s.end, s.style) for s in spans] == [(0, 11, "bold")]  # the header only


def test_table_unsorted_and_fixed_first_width():
    table = Table(("k", "v"), [["b", "1"], ["a", "2"]], sort=False, first_width=5)
    assert table.plain == "k       v\nb       1\na       2"


def realtime(
    name: str,
    ready: int,
    requested: int,
    up_to_date: int,
    updated: float = NOW - 65,
    status: str = "live",
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    api: dict[str, Any] = {
        "metadata": {"name": name, "kind": "RealtimeAPI", "last_updated": updated},
        "status": {
            "status": status,
            "ready": ready,
            "requested": requested,
            "up_to_date": up_to_date,
        },
    }
    if metrics is not None:
        api["metrics"] = metrics
    return api


def metrics(avg_ms: float | None, c2: int, c4: int, c5: int) -> dict[str, Any]:
    return {
        "window_s": 900,
        "avg_latency_ms": avg_ms,
        "count_2xx": c2,
        "count_4xx": c4,
        "count_5xx": c5,
        "requests": c2 + c4 + c5,
    }


def batch(name: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "kind": "BatchAPI", "last_updated": NOW - 10},
        "batch_job_statuses": jobs,
    }


def test_get_tables_per_kind_in_spec_order_with_env_column():
    jobs = [
        {"job_id": "j2", "status": "running", "start_time": NOW - 30},
        {"job_id": "j1", "status": "succeeded", "start_time": NOW - 300},
    ]
    splitter = {
        "metadata": {"name": "s", "kind": "TrafficSplitter", "last_updated": NOW - 5},
        "num_traffic_splitter_targets": 2,
    }
    b = realtime("b", 1, 2, 2, status="updating", metrics=metrics(12.345, 40, 2, 1))
    a = realtime("a", 3, 3, 3, metrics=metrics(None, 0, 0, 0))
    results = [
        EnvApis("local", [b, splitter, batch("bt", jobs)]),
        EnvApis("prod", [a]),
    ]
    tables = api_list_tables(results, show_env=True, now=NOW)
    assert [t.plain for t in tables] == [
        "env     batch api   running jobs   latest job id            last update\n"
        "local   bt          1              j2 (submitted 30s ago)   10s",
        "env     realtime api   status     live   up-to-date   avg request   2XX   4XX   5XX"
        "   last update\n"
        "local   b              updating   1/2    2            12.3 ms       40    2     1"
        "     1m5s\n"
        "prod    a              live       3/3    3            -             0     0     0"
        "     1m5s",
        "env     traffic splitter   apis   last update\nlocal   s                  2      5s",
    ]


def test_get_tables_without_env_column_and_empty():
    tables = api_list_tables([EnvApis("x", [realtime("a", 0, 1, 1)])], show_env=False, now=NOW)
    assert tables[0].plain.splitlines()[0] == (
        "realtime api   status   live   up-to-date   avg request   2XX   4XX   5XX   last update"
    )
    # an operator that sends no status or metrics: dashes
    old = {"metadata": {"name": "a", "kind": "RealtimeAPI"}, "status": {"ready": 1}}
    [table] = api_list_tables([EnvApis("x", [old])], show_env=False, now=NOW)
    assert table.rows == [["a", "-", "1/0", "0", "-", "-", "-", "-", "-"]]
    assert api_list_tables([EnvApis("x")], show_env=False, now=NOW) == []


def test_get_one_realtime_api():
    api = realtime("a", 1, 1, 1)
    api["endpoint"] = "http://127.0.0.1:8889/a"
    api["api_versions"] = [
        {"api_id": "new", "last_updated": NOW - 5},
        {"api_id": "old", "last_updated": NOW - 7200},
    ]
    api["spec"] = {"submitted_api_spec": {"name": "a", "kind": "RealtimeAPI"}}
    blocks = api_detail(api, NOW, verbose=True)
    assert blocks[1] == "endpoint: http://127.0.0.1:8889/a"
    # history keeps the operator's order (newest first), not sorted
    assert text(blocks[2]) == "api id   last deployed\nnew      5s ago\nold      2h0m ago"
    assert blocks[3] == "configuration\n\nname: a\nkind: RealtimeAPI"


def test_jobs_tables():
    assert jobs_table(batch("b", []), NOW) == "no submitted batch jobs"
    task = {"metadata": {"name": "t", "kind": "TaskAPI"}, "task_job_statuses": []}
    assert jobs_table(task, NOW) == "no submitted task jobs"
    job = {
        "job_id": "j1",
        "status": "completed_with_failures",
        "total_batch_count": 4,
        "start_time": NOW - 90,
        "end_time": NOW - 30,
    }
    table = jobs_table(batch("b", [job]), NOW)
    assert isinstance(table, Table)
    assert table.headers == ("job id", "status", "total batches", "start time", "duration")
    row = table.rows[0]
    assert (row[0], row[1], row[2], row[4]) == ("j1", "completed with failures", "4", "1m0s")


def test_describe_replica_table_sorted_and_hides_zero_failures():
    api = realtime("a", 2, 3, 3)
    api["status"]["replica_counts"] = {
        "requested": 3,
        "ready": 2,
        "creating": 1,
        "failed": 0,
        "killed_oom": 1,
    }
    table = replica_table(api)
    labels = [line.split()[0] for line in table.plain.splitlines()[1:]]
    assert labels == [
        "Creating",
        "KilledOOM",
        "NotReady",
        "Pending",
        "Ready",
        "ReadyOutOfDate",
        "Requested",
        "Terminating",
    ]
    assert table.plain.splitlines()[0] == "replica status" + " " * 21 + "replica count"
    assert len(describe_blocks(api, NOW)) == 2  # no endpoint: row table + replica table


def test_describe_autoscaler_section():
    api = realtime("a", 2, 3, 3, status="updating", metrics=metrics(1.0, 1, 0, 0))
    api["status"]["replica_counts"] = {"requested": 3, "ready": 2, "creating": 1}
    api["autoscaler"] = {
        "in_flight": 2.6666666,
        "recommendation": 3,
        "requested": 3,
        "min_replicas": 1,
        "max_replicas": 10,
        "target_in_flight": 1.0,
        "last_tick": NOW - 4,
    }
    blocks = describe_blocks(api, NOW)
    assert text(blocks[0]).splitlines()[1].split()[:6] == ["a", "updating", "2/3", "3", "1.0", "ms"]
    assert blocks[-1] == (
        "autoscaler\n\n"
        "requested replicas: 3\n"
        "ready replicas: 2\n"
        "in flight (averaged): 2.67\n"
        "recommendation: 3\n"
        "min replicas: 1\n"
        "max replicas: 10\n"
        "target in flight: 1\n"
        "last tick: 4s ago"
    )
    api["autoscaler"].update(in_flight=None, recommendation=None, last_tick=None)
    last = str(describe_blocks(api, NOW)[-1])
    assert "in flight (averaged): -\nrecommendation: -\n" in last
    assert last.endswith("last tick: -")


def test_job_detail_batch_running_and_completed():
    body: dict[str, Any] = {
        "job_status": {
            "job_id": "j1",
            "status": "running",
            "workers": 2,
            "start_time": NOW - 61,
            "total_batch_count": 10,
            "worker_counts": {"ready": 2},
        },
        "metrics": {"succeeded": 4, "failed": 1, "average_time_per_batch": 0.12345},
        "endpoint": "http://x/b?jobID=j1",
    }
    blocks = job_blocks("BatchAPI", body, NOW)
    assert "status: running" in text(blocks[0])
    assert "end time: -" in text(blocks[0])
    assert "duration: 1m1s" in text(blocks[0])
    stats = text(blocks[1]).splitlines()
    assert stats[:2] == ["batch stats", ""]
    assert stats[3].split() == ["10", "4", "1", "123ms"]
    workers = text(blocks[2]).splitlines()
    assert workers[:2] == ["worker stats", ""]
    assert workers[2] == "Requested   Pending   Creating   Ready   NotReady   Succeeded"
    assert workers[3].split() == ["2", "0", "0", "2", "0", "0"]
    assert blocks[3] == "job endpoint: http://x/b?jobID=j1"
    body["job_status"]["status"] = "succeeded"
    done = job_blocks("BatchAPI", body, NOW)
    assert done[2] == "worker stats are not available because this job is not currently running"
    body["job_status"]["status"] = "enqueuing"
    assert "still enqueuing" in text(job_blocks("BatchAPI", body, NOW)[2])
    body["job_status"].update(status="running", worker_counts=None)
    body["metrics"] = {}
    unknown = job_blocks("BatchAPI", body, NOW)
    assert text(unknown[1]).splitlines()[3].split() == ["10", "-", "-", "-"]
    assert text(unknown[2]) == "worker stats\n\nunable to get worker stats"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (0.0004, "0s"), (0.57, "570ms"), (1, "1s"), (1.5, "1.5s"), (123.25, "2m3.25s")],
)
def test_go_duration_ms(seconds: float, shown: str):
    assert go_duration_ms(seconds) == shown
