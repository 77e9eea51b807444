"""Raw queue rates: send + receive + ack cycles per second, SQLite and Redis brokers.

    .venv/bin/python bench/queue_rates.py [--duration-s 3] [--backends sqlite,redis] [--json]

For each broker it measures, each for ``--duration-s``:

* ``cycle``: one coroutine doing send, receive, ack of one message (a lone dequeuer's cost);
* ``batch10``: send_batch of 10, receive up to 10, ack each (messages per second);
* ``concurrent16``: 16 coroutines on one broker doing cycles at once (what one process gets
  when it overlaps round trips; for SQLite it is the same work serialised on the loop).

For reference it also times the same cycle as direct ``sqlite3`` statements with no broker
(the 14-16k/s planning baseline), in the same run. Redis runs against a throwaway
``redis-server`` from ``scripts/ensure-redis`` on a free loopback port (skipped if none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

# Keep bench/ itself off the path (its scripts are not modules), so that the standard library's
# ``queue`` (which redis-py imports) is not shadowed, and import from the repository root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from cortex.queue import QueueBroker, open_broker  # noqa: E402
from tests.integration.redis_server import find_redis_server, running_redis_server  # noqa: E402


async def _timed(step: Callable[[], Awaitable[int]], duration_s: float) -> float:
    """Run ``step`` (returns messages done) repeatedly for ``duration_s``; messages per second."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration_s:
        done += await step()
    return done / elapsed


async def _cycle(broker: QueueBroker) -> int:
    await broker.send("bench", b"payload-0123456789")
    [m] = await broker.receive("bench")
    await broker.ack("bench", m.receipt)
    return 1


async def _batch10(broker: QueueBroker) -> int:
    await broker.send_batch("bench", [b"payload-0123456789"] * 10)
    got = await broker.receive("bench", max_messages=10)
    for m in got:
        await broker.ack("bench", m.receipt)
    return len(got)


async def _concurrent(broker: QueueBroker, duration_s: float, workers: int = 16) -> float:
    async def worker() -> int:
        done = 0
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            await broker.send("bench", b"payload-0123456789")
            for m in await broker.receive("bench"):
                await broker.ack("bench", m.receipt)
                done += 1
        return done

    start = time.perf_counter()
    counts = await asyncio.gather(*(worker() for _ in range(workers)))
    return sum(counts) / (time.perf_counter() - start)


async def bench_broker(url: str, duration_s: float) -> dict[str, float]:
    broker = open_broker(url)
    try:
        await broker.create_queue("bench", visibility_timeout_s=60)
        rates = {
            "cycle": await _timed(lambda: _cycle(broker), duration_s),
            "batch10": await _timed(lambda: _batch10(broker), duration_s),
            "concurrent16": await _concurrent(broker, duration_s),
        }
        await broker.delete_queue("bench")
    finally:
        await broker.close()
    return rates


def bench_raw_sqlite(path: Path, duration_s: float) -> float:
    """The same cycle as bare sqlite3 statements: the ceiling the broker is compared with."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE m (seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, id TEXT, body BLOB,"
        " sent_at REAL, visible_at REAL, rc INTEGER)"
    )
    conn.execute("CREATE INDEX m_fifo ON m (queue, seq, visible_at)")
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration_s:
        now = time.time()
        conn.execute(
            "INSERT INTO m (queue, id, body, sent_at, visible_at, rc) VALUES (?, ?, ?, ?, ?, 0)",
            ("bench", uuid.uuid4().hex, b"payload-0123456789", now, now),
        )
        conn.execute("BEGIN IMMEDIATE")
        seq, rc = conn.execute(
            "SELECT seq, rc FROM m WHERE queue = ? AND visible_at <= ? ORDER BY seq LIMIT 1",
            ("bench", now),
        ).fetchone()
        conn.execute("UPDATE m SET visible_at = ?, rc = ? WHERE seq = ?", (now + 60, rc + 1, seq))
        conn.execute("COMMIT")
        conn.execute("DELETE FROM m WHERE seq = ?", (seq,))
        done += 1
    conn.close()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    backends = args.backends.split(",")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        if "sqlite" in backends:
            results["raw-sqlite3"] = {
                "cycle": bench_raw_sqlite(tmp_dir / "raw.db", args.duration_s)
            }
            url = f"sqlite:///{tmp_dir}/bench.db"
            results["sqlite"] = asyncio.run(bench_broker(url, args.duration_s))
        binary = find_redis_server() if "redis" in backends else None
        if binary is not None:
            with running_redis_server(binary, tmp_dir / "redis") as url:
                results["redis"] = asyncio.run(bench_broker(url, args.duration_s))
        elif "redis" in backends:
            print("redis: skipped (scripts/ensure-redis provided no redis-server)", file=sys.stderr)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'broker':<12} {'cycle/s':>10} {'batch10 msg/s':>14} {'concurrent16/s':>15}")
    for name, r in results.items():
        cells = [f"{r[k]:>10,.0f}" if k in r else f"{'-':>10}" for k in ("cycle",)]
        cells += [f"{r[k]:>14,.0f}" if k in r else f"{'-':>14}" for k in ("batch10",)]
        cells += [f"{r[k]:>15,.0f}" if k in r else f"{'-':>15}" for k in ("concurrent16",)]
        print(f"{name:<12} " + " ".join(cells))


if __name__ == "__main__":
    main()
