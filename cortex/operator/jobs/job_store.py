"""The job table, in the operator's SQLite database (its own connection and table).

One row per job: the key columns the queries need (``api_name``, ``job_id``, ``status``) and
the whole :class:`~cortex.operator.jobs.models.JobRecord` as JSON. Job ids are monotonically
decreasing (SPEC 0.5), so ascending ``job_id`` order is newest first. Rows outlive their
workers and queues; they go when the API is deleted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from cortex.operator.jobs.models import JobRecord, JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    api_name TEXT NOT NULL,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (api_name, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
"""

_ACTIVE = tuple(str(s) for s in JobStatus if not s.completed)


class JobStore:
    """Jobs in SQLite (WAL; one connection guarded by a lock, usable from threads)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, job: JobRecord) -> None:
        """Insert or replace the job's row."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (api_name, job_id, kind, status, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (job.api_name, job.job_id, str(job.kind), str(job.status), _dump(job)),
            )

    def get(self, api_name: str, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM jobs WHERE api_name = ? AND job_id = ?", (api_name, job_id)
            ).fetchone()
        return None if row is None else _load(row[0])

    def list_api(self, api_name: str, *, limit: int | None = None) -> list[JobRecord]:
        """The API's jobs, newest first (all of them when ``limit`` is None)."""
        sql = "SELECT record FROM jobs WHERE api_name = ? ORDER BY job_id"
        params: tuple[object, ...] = (api_name,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (api_name, limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_load(r[0]) for r in rows]

    def list_active(self) -> list[JobRecord]:
        """Every job that has not ended, newest first."""
        marks = ", ".join("?" for _ in _ACTIVE)
        with self._lock:
            rows = self._db.execute(
                f"SELECT record FROM jobs WHERE status IN ({marks}) ORDER BY job_id", _ACTIVE
            ).fetchall()
        return [_load(r[0]) for r in rows]

    def delete_api(self, api_name: str) -> int:
        """Forget every job of the API; returns how many."""
        with self._lock:
            cur = self._db.execute("DELETE FROM jobs WHERE api_name = ?", (api_name,))
        return cur.rowcount


def _dump(job: JobRecord) -> str:
    return json.dumps(job.to_json(), separators=(",", ":"))


def _load(raw: str) -> JobRecord:
    return JobRecord.from_json(json.loads(raw))
