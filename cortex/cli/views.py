"""What ``cortex get`` and ``cortex describe`` print (SPEC 12.1), built from the operator's JSON.

Every function here is pure: JSON in, ``Table`` / text out, with ``now`` (unix seconds) passed
in so ages are testable. The commands only fetch and print.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from rich.text import Text

from cortex.cli.tables import (
    Table,
    format_age,
    format_start_time,
    go_duration,
    go_duration_ms,
    parse_time,
)

Api = dict[str, Any]

JOB_STATUS_MESSAGES = {
    "pending": "pending",
    "enqueuing": "enqueuing",
    "running": "running",
    "enqueue_failed": "failed while enqueuing",
    "completed_with_failures": "completed with failures",
    "succeeded": "succeeded",
    "unexpected_error": "unexpected error",
    "worker_error": "worker error",
    "worker_oom": "out of memory",
    "timed_out": "timed out",
    "stopped": "stopped",
    "unknown": "unknown",
}
IN_PROGRESS = frozenset({"enqueuing", "running"})
COMPLETED = frozenset(JOB_STATUS_MESSAGES) - IN_PROGRESS - {"pending", "unknown"}

# describe's rows: (label, replica_counts key, shown when zero)
REPLICA_ROWS = (
    ("Requested", "requested", True),
    ("Pending", "pending", True),
    ("Creating", "creating", True),
    ("NotReady", "not_ready", True),
    ("Ready", "ready", True),
    ("ReadyOutOfDate", "ready_out_of_date", True),
    ("ErrImagePull", "err_image_pull", False),
    ("Terminating", "terminating", True),
    ("Failed", "failed", False),
    ("Killed", "killed", False),
    ("KilledOOM", "killed_oom", False),
    ("Stalled", "stalled", False),
    ("Unknown", "unknown", False),
)
# worker stats columns: (header, worker_counts key, shown when zero)
WORKER_COLUMNS = (
    ("Pending", "pending", True),
    ("Creating", "creating", True),
    ("Ready", "ready", True),
    ("NotReady", "not_ready", True),
    ("ErrImagePull", "err_image_pull", False),
    ("Terminating", "terminating", False),
    ("Failed", "failed", False),
    ("Killed", "killed", False),
    ("KilledOOM", "killed_oom", False),
    ("Stalled", "stalled", False),
    ("Unknown", "unknown", False),
    ("Succeeded", "succeeded", True),
)


def status_message(code: Any) -> str:
    return JOB_STATUS_MESSAGES.get(str(code), str(code) if code else "unknown")


def _meta(api: Api) -> dict[str, Any]:
    return dict(api.get("metadata") or {})


def _status(api: Api) -> dict[str, Any]:
    return dict(api.get("status") or {})


def _last_update(api: Api, now: float) -> str:
    updated = _meta(api).get("last_updated")
    return format_age(now - float(updated)) if updated is not None else "-"


def _jobs(api: Api) -> list[dict[str, Any]]:
    return list(api.get("batch_job_statuses") or api.get("task_job_statuses") or [])


def _start_ts(job: dict[str, Any]) -> float:
    moment = parse_time(job.get("start_time"))
    return moment.timestamp() if moment else 0.0


def _latest_job(api: Api, now: float) -> str:
    jobs = _jobs(api)
    if not jobs:
        return "-"
    latest = max(jobs, key=_start_ts)
    return f"{latest.get('job_id', '-')} (submitted {format_age(now - _start_ts(latest))} ago)"


def _running_jobs(api: Api) -> str:
    return str(sum(1 for job in _jobs(api) if job.get("status") in IN_PROGRESS))


def _live(api: Api) -> str:
    status = _status(api)
    return f"{status.get('ready', 0)}/{status.get('requested', 0)}"


def format_latency(ms: Any) -> str:
    """``12.3 ms``; ``-`` when there were no requests (``None``)."""
    return f"{float(ms):.1f} ms" if isinstance(ms, int | float) else "-"


def request_cells(api: Api) -> list[str]:
    """``avg request | 2XX | 4XX | 5XX`` from the operator's ``metrics`` (``-`` when absent)."""
    metrics = api.get("metrics")
    if not isinstance(metrics, dict):
        return ["-"] * 4
    counts = [str(metrics.get(key, 0)) for key in ("count_2xx", "count_4xx", "count_5xx")]
    return [format_latency(metrics.get("avg_latency_ms")), *counts]


def _replica_cells(api: Api) -> list[str]:
    """``<name> | status | live | up-to-date``, the start of a Realtime or Async row."""
    status = _status(api)
    return [
        _meta(api).get("name", ""),
        str(status.get("status") or "-"),
        _live(api),
        str(status.get("up_to_date", 0)),
    ]


def _realtime_row(api: Api, now: float) -> list[str]:
    return [*_replica_cells(api), *request_cells(api), _last_update(api, now)]


def queue_cells(api: Api) -> list[str]:
    """``queued | in progress`` from an AsyncAPI's ``queue`` (``-`` before the operator has
    read its queue)."""
    queue = api.get("queue")
    if not isinstance(queue, dict):
        return ["-", "-"]
    return [str(queue.get("queued", 0)), str(queue.get("in_progress", 0))]


def _async_row(api: Api, now: float) -> list[str]:
    return [*_replica_cells(api), *queue_cells(api), _last_update(api, now)]


def _job_row(api: Api, now: float) -> list[str]:
    name = _meta(api).get("name", "")
    return [name, _running_jobs(api), _latest_job(api, now), _last_update(api, now)]


def _splitter_row(api: Api, now: float) -> list[str]:
    targets = str(api.get("num_traffic_splitter_targets", 0))
    return [_meta(api).get("name", ""), targets, _last_update(api, now)]


@dataclass(frozen=True)
class _KindTable:
    kind: str
    headers: tuple[str, ...]
    row: Callable[[Api, float], list[str]]


# SPEC 12.1's order of the tables in `cortex get`
KIND_TABLES = (
    _KindTable("BatchAPI", ("batch api", "running jobs", "latest job id", "last update"), _job_row),
    _KindTable("TaskAPI", ("task api", "running jobs", "latest job id", "last update"), _job_row),
    _KindTable(
        "RealtimeAPI",
        (
            "realtime api",
            "status",
            "live",
            "up-to-date",
            "avg request",
            "2XX",
            "4XX",
            "5XX",
            "last update",
        ),
        _realtime_row,
    ),
    _KindTable(
        "AsyncAPI",
        (
            "async api",
            "status",
            "live",
            "up-to-date",
            "queued",
            "in progress",
            "last update",
        ),
        _async_row,
    ),
    _KindTable("TrafficSplitter", ("traffic splitter", "apis", "last update"), _splitter_row),
)
_BY_KIND = {t.kind: t for t in KIND_TABLES}


@dataclass
class EnvApis:
    """One environment's answer to ``GET /get`` (or the error that prevented it)."""

    env_name: str
    apis: list[Api] = field(default_factory=list)
    error: str = ""


def api_list_tables(results: Sequence[EnvApis], *, show_env: bool, now: float) -> list[Table]:
    """The non-empty per-kind tables of ``cortex get`` (``env`` column when ``show_env``)."""
    tables = []
    for spec in KIND_TABLES:
        rows = [
            ([env.env_name] if show_env else []) + spec.row(api, now)
            for env in results
            for api in env.apis
            if _meta(api).get("kind") == spec.kind
        ]
        if rows:
            headers = (("env",) if show_env else ()) + spec.headers
            tables.append(Table(headers, rows))
    return tables


def single_api_table(api: Api, now: float) -> Table:
    """The one-row table of ``get <api>`` / ``describe <api>``."""
    spec = _BY_KIND.get(str(_meta(api).get("kind")), _BY_KIND["RealtimeAPI"])
    return Table(spec.headers, [spec.row(api, now)])


def links(api: Api) -> str:
    lines = []
    if api.get("dashboard_url"):
        lines.append(f"metrics dashboard: {api['dashboard_url']}")
    if api.get("endpoint"):
        lines.append(f"endpoint: {api['endpoint']}")
    return "\n".join(lines)


def history_table(api: Api, now: float) -> Table | None:
    """``api id | last deployed``, newest first as the operator sent it (not sorted)."""
    versions = api.get("api_versions") or []
    if not versions:
        return None
    rows = [
        [str(v.get("api_id", "")), format_age(now - float(v.get("last_updated", now))) + " ago"]
        for v in versions
    ]
    return Table(("api id", "last deployed"), rows, sort=False)


def _duration(job: dict[str, Any], now: float) -> str:
    start = parse_time(job.get("start_time"))
    if start is None:
        return "-"
    end = parse_time(job.get("end_time"))
    return go_duration((end.timestamp() if end else now) - start.timestamp())


def jobs_table(api: Api, now: float) -> Table | str:
    """Batch: ``job id | status | total batches | start time | duration``; Task without batches."""
    jobs = _jobs(api)
    batch = _meta(api).get("kind") == "BatchAPI"
    if not jobs:
        return "no submitted batch jobs" if batch else "no submitted task jobs"
    rows = []
    for job in jobs:
        row = [str(job.get("job_id", "")), status_message(job.get("status"))]
        if batch:
            row.append(str(job.get("total_batch_count", 0)))
        rows.append([*row, format_start_time(job.get("start_time")), _duration(job, now)])
    if batch:
        return Table(("job id", "status", "total batches", "start time", "duration"), rows)
    return Table(("task job id", "status", "start time", "duration"), rows)


def replica_table(api: Api) -> Table:
    """``replica status | replica count`` (first column 32 wide), rows sorted as SPEC says."""
    counts = _status(api).get("replica_counts") or {}
    rows = [
        [label, str(counts.get(key, 0))]
        for label, key, always in REPLICA_ROWS
        if always or counts.get(key)
    ]
    return Table(("replica status", "replica count"), rows, first_width=32)


def splitter_targets_table(api: Api) -> Table | None:
    targets = (api.get("spec") or {}).get("apis") or []
    if not targets:
        return None
    rows = [
        [str(t.get("name", "")), str(t.get("weight", "")), "true" if t.get("shadow") else "false"]
        for t in targets
    ]
    return Table(("api name", "traffic weight", "shadow"), rows)


def configuration(api: Api) -> str:
    """``-v``: the API's configuration as the user wrote it (the stored spec when absent)."""
    spec = api.get("spec") or {}
    submitted = spec.get("submitted_api_spec") or spec
    return "configuration\n\n" + yaml.safe_dump(submitted, sort_keys=False).rstrip()


def api_detail(api: Api, now: float, *, verbose: bool) -> list[Table | str]:
    """``cortex get <api>``: blocks printed one after the other with blank lines between."""
    kind = _meta(api).get("kind")
    blocks: list[Table | str | None] = []
    if kind in ("BatchAPI", "TaskAPI"):
        blocks.append(jobs_table(api, now))
    else:
        blocks.append(single_api_table(api, now))
    if kind == "TrafficSplitter":
        blocks.append(splitter_targets_table(api))
    blocks += [links(api), history_table(api, now)]
    if verbose:
        blocks.append(configuration(api))
    return [b for b in blocks if b]


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return "-" if value is None else str(value)


def autoscaler_block(api: Api, now: float) -> str | None:
    """``describe``'s autoscaler section: requested and ready replicas, the averaged in-flight
    value and the latest recommendation, the bounds, and the age of the latest tick."""
    scaler = api.get("autoscaler")
    if not isinstance(scaler, dict):
        return None
    last_tick = scaler.get("last_tick")
    lines = [
        ("requested replicas", _number(scaler.get("requested"))),
        ("ready replicas", _number(_status(api).get("ready"))),
        ("in flight (averaged)", _number(scaler.get("in_flight"))),
        ("recommendation", _number(scaler.get("recommendation"))),
        ("min replicas", _number(scaler.get("min_replicas"))),
        ("max replicas", _number(scaler.get("max_replicas"))),
        ("target in flight", _number(scaler.get("target_in_flight"))),
        (
            "last tick",
            "-" if last_tick is None else format_age(max(now - float(last_tick), 0)) + " ago",
        ),
    ]
    return "autoscaler\n\n" + "\n".join(f"{k}: {v}" for k, v in lines)


def describe_blocks(api: Api, now: float) -> list[Table | str]:
    blocks: list[Table | str] = [single_api_table(api, now)]
    if links(api):
        blocks.append(links(api))
    blocks.append(replica_table(api))
    scaler = autoscaler_block(api, now)
    if scaler:
        blocks.append(scaler)
    return blocks


def _titled(title: str, body: Table | str) -> Text:
    """``title``, a blank line, then ``body`` (a table keeps its bold header)."""
    text = Text(title + "\n\n")
    text.append_text(body.render() if isinstance(body, Table) else Text(body))
    return text


def batch_stats(job: dict[str, Any], metrics: dict[str, Any]) -> Text:
    """``batch stats``: ``total | succeeded | failed attempts | avg time per batch`` (the
    average as a Go duration truncated to milliseconds, ``-`` while unknown)."""
    avg = metrics.get("average_time_per_batch")
    cells = [
        str(job.get("total_batch_count", "-")),
        str(metrics.get("succeeded", "-")),
        str(metrics.get("failed", "-")),
        go_duration_ms(avg) if isinstance(avg, int | float) else "-",
    ]
    table = Table(("total", "succeeded", "failed attempts", "avg time per batch"), [cells])
    return _titled("batch stats", table)


def worker_stats(job: dict[str, Any]) -> Text:
    """``worker stats``: requested workers, then their counts by status (rare ones only when
    non-zero), or ``unable to get worker stats``."""
    counts = job.get("worker_counts")
    if not isinstance(counts, dict):
        return _titled("worker stats", "unable to get worker stats")
    columns = [(h, k) for h, k, always in WORKER_COLUMNS if always or counts.get(k)]
    headers = ["Requested"] + [h for h, _ in columns]
    row = [str(job.get("workers", 1))] + [str(counts.get(k, 0)) for _, k in columns]
    return _titled("worker stats", Table(headers, [row], sort=False))


def job_blocks(kind: str, body: dict[str, Any], now: float) -> list[Table | Text | str]:
    """``cortex get <api> <job id>`` (BatchAPI and TaskAPI)."""
    job = dict(body.get("job_status") or {})
    status = str(job.get("status", "unknown"))
    end = job.get("end_time")
    summary = [
        ("job id", str(job.get("job_id", "-"))),
        ("status", status_message(status)),
        ("start time", format_start_time(job.get("start_time"))),
        ("end time", format_start_time(end) if end else "-"),
        ("duration", _duration(job, now)),
    ]
    blocks: list[Table | Text | str] = ["\n".join(f"{k}: {v}" for k, v in summary)]
    if kind == "BatchAPI":
        blocks.append(batch_stats(job, dict(body.get("metrics") or {})))
    if kind == "BatchAPI" and status == "enqueuing":
        blocks.append("still enqueuing, workers have not been allocated for this job yet")
    elif status in COMPLETED:
        blocks.append("worker stats are not available because this job is not currently running")
    else:
        blocks.append(worker_stats(job))
    if body.get("endpoint"):
        blocks.append(f"job endpoint: {body['endpoint']}")
    blocks.append("job configuration\n\n" + json.dumps(job, indent=2))
    return blocks
