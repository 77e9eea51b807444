"""Durable queues with SQS-like semantics: see :mod:`cortex.queue.base` for the contract.

``open_broker(url)`` picks the implementation from the URL:

* ``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` too), a plain filesystem path, or
  ``:memory:`` -> :class:`~cortex.queue.sqlite_broker.SqliteBroker` (embedded default);
* ``redis://host:port/db`` or ``rediss://...`` -> :class:`~cortex.queue.redis_broker.RedisBroker`
  (imported only when asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cortex.queue.base import QueueBroker, QueueCounts, Received
from cortex.queue.errors import (
    QueueBusyError,
    QueueConfigError,
    QueueError,
    QueueNotFoundError,
    ReceiptError,
)

__all__ = [
    "QueueBroker",
    "QueueBusyError",
    "QueueConfigError",
    "QueueCounts",
    "QueueError",
    "QueueNotFoundError",
    "ReceiptError",
    "Received",
    "default_queue_url",
    "open_broker",
    "sqlite_path_from_url",
]


def default_queue_url(state_dir: str | Path) -> str:
    """The embedded default broker of a deployment: ``sqlite:///<state_dir>/queues.db``
    (operator and gateway settings fall back to it when ``CORTEX_QUEUE_URL`` is unset)."""
    return f"sqlite:///{Path(state_dir).expanduser().resolve() / 'queues.db'}"


def sqlite_path_from_url(url: str) -> str:
    """The database path an ``open_broker`` URL names for SQLite (raises QueueConfigError)."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's absolute form)
            path = path[1:]
        if path in ("", "/"):
            raise QueueConfigError(f"queue URL {url!r} names no database file")
        return ":memory:" if path == "/:memory:" else path
    if "://" in url:
        raise QueueConfigError(
            f"unsupported queue URL {url!r}: use sqlite:///<path>, a path, or redis://host:port/db"
        )
    if not url:
        raise QueueConfigError("empty queue URL")
    return url if url == ":memory:" else str(Path(url).expanduser())


def open_broker(url: str, **options: Any) -> QueueBroker:
    """Open the broker ``url`` names; ``options`` go to its constructor (e.g. poll_interval_s)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from cortex.queue.redis_broker import RedisBroker

        return RedisBroker(url, **options)
    from cortex.queue.sqlite_broker import SqliteBroker

    return SqliteBroker(sqlite_path_from_url(url), **options)
