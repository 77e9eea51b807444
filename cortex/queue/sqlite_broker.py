"""The embedded queue: many named queues in one SQLite file shared by processes.

Design (chosen for throughput; planning measured 14-16k send+claim+ack cycles/s with direct
calls, and a thread hop per call costs more than the statement it carries):

* **Direct calls on the event loop.** Every operation is one short write transaction of a few
  indexed statements (well under a millisecond), so it runs inline instead of in a thread.
* **Never wait for a lock inside SQLite for long.** The connection's busy timeout is tiny
  (``busy_timeout_s``, 10 ms); when another process holds the write lock longer, the call rolls
  back, ``await asyncio.sleep``-s with exponential backoff (1 ms .. 50 ms) and retries, up to
  ``lock_retry_s``, then raises :class:`~cortex.queue.errors.QueueBusyError`. The event loop
  is never stalled for more than ``busy_timeout_s`` plus one statement.
* **Claims under ``BEGIN IMMEDIATE``**: the write lock is taken before the visible messages
  are selected, and ``now`` is read after it is held, so two consumers (threads or processes)
  never claim the same message inside a lease.
* **Long polls** are asyncio waits between claims (see :mod:`cortex.queue._poll`).
* Costs that grow: a claim skips the in-flight messages ahead of the first visible one (index
  entries only), and ``counts`` scans the queue's index: about a millisecond per 10k messages.
  A WAL checkpoint (every ~1000 pages) occasionally makes one commit take a few milliseconds.
* One broker belongs to one event loop (thread); open one broker per process.
* WAL mode with ``synchronous=NORMAL``: a killed process loses nothing committed; an OS crash
  or power cut can lose the last few transactions (SQLite's documented WAL trade-off).

Schema: ``queues(name, visibility_timeout_s, max_receive_count, dead_letter_queue)`` and
``messages(seq, queue, id, body, sent_at, visible_at, receive_count)``. ``seq`` (AUTOINCREMENT,
never reused) gives FIFO order; a message is visible when ``visible_at <= now``. A receipt is
``"<seq>.<receive_count>"``: each claim increments ``receive_count``, so a receipt is valid
exactly until the next claim, the ack, or the move to the dead-letter queue (a new ``seq``).
Times are wall-clock unix seconds (``clock``), since several processes share the deadlines.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cortex.queue._poll import Wakeups, long_poll
from cortex.queue.base import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    QueueAttributes,
    QueueCounts,
    Received,
    check_attributes,
    check_name,
    check_receive,
    check_visibility,
)
from cortex.queue.errors import (
    QueueBusyError,
    QueueError,
    QueueNotFoundError,
    ReceiptError,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    visibility_timeout_s REAL NOT NULL,
    max_receive_count INTEGER,
    dead_letter_queue TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_fifo ON messages (queue, seq, visible_at);
"""
_COLUMNS = "seq, id, body, sent_at, receive_count"
_HELD = " WHERE seq = ? AND queue = ? AND receive_count = ?"
_SET_VISIBLE_AT = "UPDATE messages SET visible_at = ?" + _HELD
_DELETE = "DELETE FROM messages" + _HELD


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _parse_receipt(receipt: str) -> tuple[int, int] | None:
    seq, _, count = receipt.partition(".")
    if not (seq.isdigit() and count.isdigit()):
        return None
    return int(seq), int(count)


def _received(row: Any, receive_count: int, receipt: str) -> Received:
    return Received(row[1], bytes(row[2]), receipt, receive_count, row[3])


class SqliteBroker:
    """A :class:`~cortex.queue.base.QueueBroker` over one SQLite file (or ``":memory:"``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        poll_interval_s: float = 0.05,
        busy_timeout_s: float = 0.01,
        lock_retry_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._poll_interval_s = poll_interval_s
        self._lock_retry_s = lock_retry_s
        self._clock = clock
        self._wakeups = Wakeups()
        self._closed = False
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect(busy_timeout_s)
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open sqlite queue {self.path}: {exc}") from exc

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        # Opening may race other processes creating the schema: wait longer just for that.
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=10.0, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        conn.execute(f"PRAGMA busy_timeout={max(int(busy_timeout_s * 1000), 0)}")
        return conn

    # -- transactions ---------------------------------------------------------------------

    async def _tx(self, fn: Callable[[float], T], *, write: bool = True) -> T:
        """Run ``fn(now)`` in one transaction, retrying with asyncio sleeps while locked."""
        delay = 0.001
        deadline = time.monotonic() + self._lock_retry_s
        while True:
            try:
                return self._tx_once(fn, write)
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc):
                    raise QueueError(f"sqlite queue {self.path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise QueueBusyError(
                        f"sqlite queue {self.path} stayed locked for {self._lock_retry_s:g}s"
                    ) from exc
            except sqlite3.Error as exc:
                raise QueueError(f"sqlite queue {self.path}: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _tx_once(self, fn: Callable[[float], T], write: bool) -> T:
        if self._closed:
            raise QueueError("the queue broker is closed")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(self._clock())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _attrs(self, name: str) -> QueueAttributes:
        row = self._conn.execute(
            "SELECT visibility_timeout_s, max_receive_count, dead_letter_queue"
            " FROM queues WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise QueueNotFoundError(f"queue {name!r} does not exist")
        return QueueAttributes(row[0], row[1], row[2])

    # -- queues ---------------------------------------------------------------------------

    async def create_queue(
        self,
        name: str,
        *,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
    ) -> None:
        attrs = check_attributes(
            name,
            visibility_timeout_s=visibility_timeout_s,
            max_receive_count=max_receive_count,
            dead_letter_queue=dead_letter_queue,
        )

        def run(now: float) -> None:
            self._conn.execute(
                "INSERT INTO queues VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " visibility_timeout_s = excluded.visibility_timeout_s,"
                " max_receive_count = excluded.max_receive_count,"
                " dead_letter_queue = excluded.dead_letter_queue",
                (name, attrs.visibility_timeout_s, max_receive_count, dead_letter_queue),
            )
            if dead_letter_queue is not None:
                self._ensure_queue(dead_letter_queue)

        await self._tx(run)

    def _ensure_queue(self, name: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO queues VALUES (?, ?, NULL, NULL)",
            (name, DEFAULT_VISIBILITY_TIMEOUT_S),
        )

    async def delete_queue(self, name: str) -> bool:
        check_name(name)

        def run(now: float) -> bool:
            self._conn.execute("DELETE FROM messages WHERE queue = ?", (name,))
            return self._conn.execute("DELETE FROM queues WHERE name = ?", (name,)).rowcount > 0

        return await self._tx(run)

    async def queue_exists(self, name: str) -> bool:
        def run(now: float) -> bool:
            sql = "SELECT 1 FROM queues WHERE name = ?"
            return self._conn.execute(sql, (name,)).fetchone() is not None

        return await self._tx(run, write=False)

    async def list_queues(self) -> list[str]:
        def run(now: float) -> list[str]:
            rows = self._conn.execute("SELECT name FROM queues ORDER BY name").fetchall()
            return [r[0] for r in rows]

        return await self._tx(run, write=False)

    async def purge(self, name: str) -> None:
        def run(now: float) -> None:
            self._attrs(name)
            self._conn.execute("DELETE FROM messages WHERE queue = ?", (name,))

        await self._tx(run)

    # -- messages -------------------------------------------------------------------------

    async def send(self, name: str, body: bytes) -> str:
        return (await self.send_batch(name, (body,)))[0]

    async def send_batch(self, name: str, bodies: Sequence[bytes]) -> list[str]:
        ids = [uuid.uuid4().hex for _ in bodies]

        def run(now: float) -> None:
            self._attrs(name)
            self._conn.executemany(
                "INSERT INTO messages (queue, id, body, sent_at, visible_at, receive_count)"
                " VALUES (?, ?, ?, ?, ?, 0)",
                [(name, mid, body, now, now) for mid, body in zip(ids, bodies, strict=True)],
            )

        if ids:
            await self._tx(run)
            self._wakeups.notify(name)
        return ids

    async def receive(
        self,
        name: str,
        *,
        max_messages: int = 1,
        visibility_timeout_s: float | None = None,
        wait_s: float = 0.0,
    ) -> list[Received]:
        check_receive(max_messages, visibility_timeout_s, wait_s)

        async def claim() -> list[Received]:
            return await self._tx(
                lambda now: self._claim(name, max_messages, visibility_timeout_s, now)
            )

        if wait_s <= 0:
            return await claim()
        return await long_poll(
            claim,
            name=name,
            wait_s=wait_s,
            poll_interval_s=self._poll_interval_s,
            wakeups=self._wakeups,
        )

    def _claim(
        self, name: str, max_messages: int, visibility_s: float | None, now: float
    ) -> list[Received]:
        """Claim FIFO-first visible messages; dead-letter those past max_receive_count."""
        attrs = self._attrs(name)
        lease_until = now + (attrs.visibility_timeout_s if visibility_s is None else visibility_s)
        delivered: list[Received] = []
        while len(delivered) < max_messages:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE queue = ? AND visible_at <= ?"
                " ORDER BY seq LIMIT ?",
                (name, now, max_messages - len(delivered)),
            ).fetchall()
            if not rows:
                break
            for row in rows:
                count = row[4] + 1
                if attrs.max_receive_count is not None and count > attrs.max_receive_count:
                    self._dead_letter(row[0], str(attrs.dead_letter_queue), now)
                    continue
                self._conn.execute(
                    "UPDATE messages SET visible_at = ?, receive_count = ? WHERE seq = ?",
                    (lease_until, count, row[0]),
                )
                delivered.append(_received(row, count, f"{row[0]}.{count}"))
        return delivered

    def _dead_letter(self, seq: int, dead_letter_queue: str, now: float) -> None:
        self._ensure_queue(dead_letter_queue)
        self._conn.execute(
            "INSERT INTO messages (queue, id, body, sent_at, visible_at, receive_count)"
            " SELECT ?, id, body, sent_at, ?, receive_count FROM messages WHERE seq = ?",
            (dead_letter_queue, now, seq),
        )
        self._conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
        self._wakeups.notify(dead_letter_queue)

    def _on_receipt(self, name: str, receipt: str, sql: str, head: tuple[float, ...]) -> bool:
        """Run ``sql`` on the message ``receipt`` still holds; False when it holds none.

        ``sql`` ends with ``WHERE seq = ? AND queue = ? AND receive_count = ?``; ``head`` are
        the parameters before those three.
        """
        parsed = _parse_receipt(receipt)
        changed = 0
        if parsed is not None:
            changed = self._conn.execute(sql, (*head, parsed[0], name, parsed[1])).rowcount
        if not changed:
            self._attrs(name)  # a missing queue is an error, a stale receipt is not
        return changed > 0

    async def extend(self, name: str, receipt: str, *, visibility_timeout_s: float) -> None:
        check_visibility(visibility_timeout_s)

        def run(now: float) -> bool:
            return self._on_receipt(name, receipt, _SET_VISIBLE_AT, (now + visibility_timeout_s,))

        if not await self._tx(run):
            raise ReceiptError(f"receipt {receipt!r} of queue {name!r} no longer holds a lease")

    async def release(self, name: str, receipt: str) -> bool:
        released = await self._tx(
            lambda now: self._on_receipt(name, receipt, _SET_VISIBLE_AT, (now,))
        )
        if released:
            self._wakeups.notify(name)
        return released

    async def ack(self, name: str, receipt: str) -> bool:
        return await self._tx(lambda now: self._on_receipt(name, receipt, _DELETE, ()))

    async def counts(self, name: str) -> QueueCounts:
        def run(now: float) -> QueueCounts:
            self._attrs(name)
            row = self._conn.execute(
                "SELECT COALESCE(SUM(visible_at <= ?), 0), COALESCE(SUM(visible_at > ?), 0)"
                " FROM messages WHERE queue = ?",
                (now, now, name),
            ).fetchone()
            return QueueCounts(visible=int(row[0]), in_flight=int(row[1]))

        return await self._tx(run, write=False)

    async def list_messages(self, name: str, *, limit: int = 100) -> list[Received]:
        def run(now: float) -> list[Received]:
            self._attrs(name)
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE queue = ? ORDER BY seq LIMIT ?",
                (name, max(limit, 0)),
            ).fetchall()
            return [_received(row, row[4], "") for row in rows]

        return await self._tx(run, write=False)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()
