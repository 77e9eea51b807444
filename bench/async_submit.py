"""AsyncAPI submit benchmark: requests the gateway accepts per second, beside the raw rates.

    .venv/bin/python bench/async_submit.py [--duration-s 5] [--connections 32] [--no-pin]

Starts the real gateway (``python -m cortex.dataplane.gateway``, a cached route table with one
AsyncRoute, no operator) over a fresh state dir: the default SQLite queue
(``<state_dir>/queues.db``) and local store (``<state_dir>/storage``). Then, in the same run:

1. **gateway submit rate**: ``wrk`` with a Lua script POSTing a small JSON body to the async
   endpoint (each accepted request = 3 storage writes + 1 queue send + the HTTP exchange);
   without ``wrk``, a built-in asyncio load generator (weaker: it shares the CPUs). The queue
   is then checked to hold exactly one message per 200 answer.
2. **raw queue send rate**: ``QueueBroker.send`` in a loop, one process, same SQLite file
   (measured before and after the gateway run, averaged: the disk's speed drifts).
3. **raw storage put rate**: ``ObjectStore.put`` of a small object in a loop, same store; and
   the rate of whole requests' writes (3 puts each).

The gateway is pinned to CPU 0 and wrk to the last CPU when ``taskset`` exists and there are 2+
CPUs. Target (issue 4): the gateway accepts >= 2,000 requests/s on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realtime import free_port, launch_gateway  # noqa: E402
from cortex.queue import open_broker  # noqa: E402
from cortex.storage import open_store  # noqa: E402

QUEUE = "async-bench-1"
BODY = b'{"text": "a small request payload of the usual size"}'
LUA = f"""
wrk.method = "POST"
wrk.body = '{BODY.decode()}'
wrk.headers["Content-Type"] = "application/json"
"""
PINNING = True


def pin(cpu: int) -> list[str]:
    ncpu = os.cpu_count() or 1
    usable = PINNING and shutil.which("taskset") and ncpu > 1
    return ["taskset", "-c", str(cpu % ncpu)] if usable else []


def start_gateway(port: int, state_dir: Path) -> subprocess.Popen[bytes]:
    table = {
        "version": 1,
        "async_routes": [{"api_name": "bench", "endpoint": "/bench", "queue_name": QUEUE}],
    }
    return launch_gateway(port, state_dir, table, pin(0))


def run_wrk(url: str, connections: int, duration_s: float, state_dir: Path) -> tuple[int, float]:
    """(2xx answers, seconds) of a wrk run POSTing ``BODY``."""
    script = state_dir / "post.lua"
    script.write_text(LUA)
    cmd = [
        *pin((os.cpu_count() or 1) - 1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert m is not None, out
    total, secs = int(m.group(1)), float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        print(f"  wrk: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}")
    return total - (int(bad.group(1)) if bad else 0), secs


async def _client(port: int, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    req = (
        b"POST /bench HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
    )
    while time.perf_counter() < stop_at:
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(n)
        counts[0] += head.startswith(b"HTTP/1.1 200")
    writer.close()


def run_fallback(port: int, connections: int, duration_s: float) -> tuple[int, float]:
    counts = [0]

    async def go() -> None:
        stop_at = time.perf_counter() + duration_s
        await asyncio.gather(*(_client(port, stop_at, counts) for _ in range(connections)))

    t0 = time.perf_counter()
    asyncio.run(go())
    return counts[0], time.perf_counter() - t0


async def raw_queue_rate(url: str, duration_s: float) -> tuple[float, int]:
    """(sends/s on a scratch queue, messages on the bench queue)."""
    broker = open_broker(url)
    try:
        queued = (await broker.counts(QUEUE)).visible
        await broker.create_queue("raw-bench")
        n, t0 = 0, time.perf_counter()
        stop_at = t0 + duration_s
        while time.perf_counter() < stop_at:
            for _ in range(100):
                await broker.send("raw-bench", b"0190c0de-0000-7000-8000-000000000000")
            n += 100
        return n / (time.perf_counter() - t0), queued
    finally:
        await broker.close()


def raw_storage_rate(root: Path, duration_s: float) -> float:
    """Small-object puts per second into the local store at ``root``."""
    store = open_store(str(root))
    n, t0 = 0, time.perf_counter()
    stop_at = t0 + duration_s
    while time.perf_counter() < stop_at:
        for _ in range(50):
            store.put(f"rawbench/{n:08d}/payload", BODY)
            n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    global PINNING
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration-s", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-pin", action="store_true")
    args = ap.parse_args()
    PINNING = not args.no_pin
    with tempfile.TemporaryDirectory(prefix="cortex-async-bench-") as tmp:
        state_dir = Path(tmp)
        queue_url = f"sqlite:///{state_dir}/queues.db"

        async def setup() -> None:
            broker = open_broker(queue_url)
            await broker.create_queue(QUEUE)
            await broker.close()

        asyncio.run(setup())
        # raw rates before and after the gateway run: the disk's speed drifts on a shared box
        send_before, _ = asyncio.run(raw_queue_rate(queue_url, args.duration_s / 4))
        put_before = raw_storage_rate(state_dir / "storage", args.duration_s / 4)
        ok, secs = gateway_rate(state_dir, args.connections, args.duration_s)
        send_after, queued = asyncio.run(raw_queue_rate(queue_url, args.duration_s / 4))
        put_after = raw_storage_rate(state_dir / "storage", args.duration_s / 4)
        send_rate, put_rate = (send_before + send_after) / 2, (put_before + put_after) / 2
        print(f"gateway submit rate : {ok / secs:9.0f} requests/s accepted ({ok} in {secs:.1f}s)")
        print(
            f"raw queue send rate : {send_rate:9.0f} sends/s (SQLite, one process;"
            f" {send_before:.0f} before, {send_after:.0f} after)"
        )
        print(
            f"raw storage put rate: {put_rate:9.0f} puts/s  (local store;"
            f" {put_before:.0f} before, {put_after:.0f} after; 3 puts/request:"
        )
        print(f"                      {put_rate / 3:9.0f} requests/s of writes alone)")
        verdict(ok / secs, send_rate, put_rate, ok <= queued <= ok + args.connections, queued, ok)


def gateway_rate(state_dir: Path, connections: int, duration_s: float) -> tuple[int, float]:
    """(accepted submits, seconds) of one load run against a fresh gateway."""
    port = free_port()
    gateway = start_gateway(port, state_dir)
    try:
        use_wrk = shutil.which("wrk") is not None
        gen = "wrk (Lua POST script)" if use_wrk else "built-in asyncio load generator"
        print(f"load generator: {gen}; {connections} connections, {duration_s:g}s")
        if use_wrk:
            url = f"http://127.0.0.1:{port}/bench"
            return run_wrk(url, connections, duration_s, state_dir)
        return run_fallback(port, connections, duration_s)
    finally:
        gateway.terminate()
        gateway.wait(10)


def verdict(
    submit_rate: float, send_rate: float, put_rate: float, match: bool, queued: int, ok: int
) -> None:
    """The bound, the consistency check (wrk stops counting with up to one request per
    connection still being answered) and the target's verdict."""
    limit = 1 / (1 / send_rate + 3 / put_rate)
    print(f"serial raw bound    : {limit:9.0f} requests/s (3 puts + 1 send, one thread)")
    print(f"gateway / serial raw bound: {submit_rate / limit:.2f}x")
    print(f"queue holds {queued} messages for {ok} counted 200s", end="")
    print(" (consistent)" if match else " (MISMATCH)")
    print(f"target >= 2,000 requests/s: {'meets' if submit_rate >= 2000 else 'misses'}")


if __name__ == "__main__":
    main()
