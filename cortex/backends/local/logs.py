"""Container output as JSON lines, one file per replica, and reading them back.

Layout: ``<state_dir>/logs/<api_name>/<job_id or "api">/<replica_id>.log``. Each line printed by a
container becomes ``{"time", "stream", "message", "labels": {"apiName", "apiKind", "replica",
"container", "jobID"?}}``. When the printed line is itself a JSON object, its fields are merged
in: they never replace ``time``, ``stream`` or ``labels``; the app's own ``message`` (if it has
one) is the message, else the raw line is kept as the message.

Pipes are read with asyncio stream readers (never blocking the loop); a line longer than the
reader's limit is written in pieces rather than lost.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

API_FOLDER = "api"  # the folder of an API's replicas that belong to no job


def log_dir(state_dir: Path, api_name: str, job_id: str | None) -> Path:
    return state_dir / "logs" / api_name / (job_id or API_FOLDER)


def log_record(line: str, *, stream: str, labels: dict[str, str], now: datetime) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "stream": stream,
        "message": line,
    }
    app = _json_object(line)
    if app is not None:
        for key, value in app.items():
            if key not in ("time", "stream", "labels"):
                record[key] = value
    record["labels"] = labels
    return record


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class LogSink:
    """One replica's log file; every container of the replica writes through it."""

    def __init__(self, path: Path, labels: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._labels = labels
        self._file: TextIO | None = path.open("a", encoding="utf-8")

    def write(self, container: str, stream: str, line: str) -> None:
        if self._file is None:
            return
        labels = {**self._labels, "container": container}
        record = log_record(line, stream=stream, labels=labels, now=datetime.now(UTC))
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def pump(self, reader: asyncio.StreamReader, container: str, stream: str) -> None:
        """Copy ``reader`` into the file line by line until EOF."""
        while True:
            chunk = await _next_line(reader)
            if not chunk:
                return
            text = chunk.decode("utf-8", errors="replace").rstrip("\r\n")
            self.write(container, stream, text)


async def _next_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError as exc:
        return await reader.read(max(exc.consumed, 1))


def _sort_key(line: str) -> str:
    try:
        value = json.loads(line)
    except ValueError:
        return ""
    return str(value.get("time", "")) if isinstance(value, dict) else ""


class _Tail:
    """Offsets into every ``*.log`` file of one folder; returns the complete new lines."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}

    def read_new(self) -> list[list[str]]:
        """New complete lines, one list per file (blocking: run it in a thread)."""
        if not self.folder.is_dir():
            return []
        out: list[list[str]] = []
        for path in sorted(self.folder.glob("*.log")):
            lines = self._read_file(path)
            if lines:
                out.append(lines)
        return out

    def _read_file(self, path: Path) -> list[str]:
        try:
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
        except OSError:
            return []
        self._offsets[path] = self._offsets.get(path, 0) + len(data)
        data = self._partial.pop(path, b"") + data
        *complete, rest = data.split(b"\n")
        if rest:
            self._partial[path] = rest
        return [line.decode("utf-8", errors="replace") for line in complete if line]


async def stream_log_folder(
    folder: Path, *, follow: bool, poll_s: float = 0.2
) -> AsyncIterator[str]:
    """What is there now, merged across replicas by time; then, when following, new lines
    as they arrive (new replicas' files included) until the caller stops iterating."""
    tail = _Tail(folder)
    per_file = await asyncio.to_thread(tail.read_new)
    for line in heapq.merge(*per_file, key=_sort_key):
        yield line
    while follow:
        await asyncio.sleep(poll_s)
        for lines in await asyncio.to_thread(tail.read_new):
            for line in lines:
                yield line
