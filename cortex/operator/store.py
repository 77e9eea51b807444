"""The operator's durable state: deployed APIs and every version ever deployed, in SQLite.

One connection in WAL mode, opened with ``check_same_thread=False`` and guarded by a lock, so
the event loop and worker threads may both call it; every call is one short statement or
transaction, cheap enough to make from async handlers directly. The schema is created at open.

Tables:

- ``apis``: one row per deployed API (:class:`ApiRecord`): the target the reconciler drives to.
- ``api_versions``: append-only history, one row per ``(name, api_id)`` ever stored, holding the
  record as JSON; ``seq`` orders it (newest first when read). It outlives ``delete_api`` when the
  caller keeps the cache (``cortex delete --keep-cache``), as the original kept its S3 specs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apis (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    api_id TEXT NOT NULL,
    spec_id TEXT NOT NULL,
    pod_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    initial_deployment_time_ns INTEGER NOT NULL,
    last_updated REAL NOT NULL,
    submitted TEXT NOT NULL,
    file_name TEXT NOT NULL,
    project_dir TEXT NOT NULL,
    requested INTEGER NOT NULL,
    idx INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    api_id TEXT NOT NULL,
    last_updated REAL NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (name, api_id)
);
CREATE INDEX IF NOT EXISTS api_versions_by_name ON api_versions (name, seq);
"""

_COLUMNS = (
    "name, kind, api_id, spec_id, pod_id, deployment_id, initial_deployment_time_ns, "
    "last_updated, submitted, file_name, project_dir, requested, idx"
)


@dataclass(frozen=True)
class ApiRecord:
    """A deployed API as the operator wants it to be.

    ``submitted`` is the raw map the user wrote (re-parsed with ``cortex.spec.parse.parse_api``
    whenever the typed spec is needed); ``requested`` is the desired replica count of a
    RealtimeAPI/AsyncAPI (0 for other kinds), changed by deploys and the autoscaler; ``index`` is
    the API's position in the file it was deployed from.
    """

    name: str
    kind: str
    api_id: str
    spec_id: str
    pod_id: str
    deployment_id: str
    initial_deployment_time_ns: int
    last_updated: float
    submitted: dict[str, Any]
    file_name: str
    project_dir: str
    requested: int
    index: int = field(default=0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiRecord:
        return cls(**data)


class StateStore:
    """SQLite-backed store of :class:`ApiRecord` s and their version history."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get_api(self, name: str) -> ApiRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM apis WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else _record(row)

    def list_apis(self) -> list[ApiRecord]:
        """Every deployed API, sorted by name."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM apis ORDER BY name").fetchall()
        return [_record(row) for row in rows]

    def put_api(self, rec: ApiRecord) -> None:
        """Insert or replace ``rec`` and append its version to the history (once per api_id)."""
        values = (
            rec.name,
            rec.kind,
            rec.api_id,
            rec.spec_id,
            rec.pod_id,
            rec.deployment_id,
            rec.initial_deployment_time_ns,
            rec.last_updated,
            json.dumps(rec.submitted),
            rec.file_name,
            rec.project_dir,
            rec.requested,
            rec.index,
        )
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                f"INSERT OR REPLACE INTO apis ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", values
            )
            self._conn.execute(
                "INSERT INTO api_versions (name, api_id, last_updated, record) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name, api_id) DO NOTHING",
                (rec.name, rec.api_id, rec.last_updated, json.dumps(rec.to_json())),
            )

    def delete_api(self, name: str, *, keep_versions: bool = False) -> bool:
        """Remove the API (and its history unless ``keep_versions``); False if it was absent."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            deleted = self._conn.execute("DELETE FROM apis WHERE name = ?", (name,)).rowcount
            if not keep_versions:
                self._conn.execute("DELETE FROM api_versions WHERE name = ?", (name,))
        return deleted > 0

    def set_requested(self, name: str, n: int) -> None:
        """Set the desired replica count of a deployed API (no new version); unknown: no-op."""
        with self._lock:
            self._conn.execute("UPDATE apis SET requested = ? WHERE name = ?", (n, name))

    def api_versions(self, name: str, limit: int = 10) -> list[tuple[str, float]]:
        """``(api_id, last_updated)`` of the API's stored versions, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT api_id, last_updated FROM api_versions WHERE name = ?"
                " ORDER BY seq DESC LIMIT ?",
                (name, limit),
            ).fetchall()
        return [(str(api_id), float(ts)) for api_id, ts in rows]

    def get_version(self, name: str, api_id: str) -> dict[str, Any] | None:
        """The stored record of one version as JSON (:meth:`ApiRecord.to_json`), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT record FROM api_versions WHERE name = ? AND api_id = ?", (name, api_id)
            ).fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row[0])
        return data

    def get_version_record(self, name: str, api_id: str) -> ApiRecord | None:
        data = self.get_version(name, api_id)
        return None if data is None else ApiRecord.from_json(data)


def _record(row: tuple[Any, ...]) -> ApiRecord:
    (name, kind, api_id, spec_id, pod_id, dep_id, initial_ns, updated, submitted, file_name,
     project_dir, requested, index) = row  # fmt: skip
    return ApiRecord(
        name=name,
        kind=kind,
        api_id=api_id,
        spec_id=spec_id,
        pod_id=pod_id,
        deployment_id=dep_id,
        initial_deployment_time_ns=int(initial_ns),
        last_updated=float(updated),
        submitted=json.loads(submitted),
        file_name=file_name,
        project_dir=project_dir,
        requested=int(requested),
        index=int(index),
    )
