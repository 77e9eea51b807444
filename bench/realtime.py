"""Realtime data-plane benchmark: the gateway vs. hitting the upstream directly.

    .venv/bin/python bench/realtime.py [--duration-s 5] [--connections 32,1]
        [--upstream asyncio,uvloop,uvicorn] [--no-pin]

Starts a trivial upstream answering ``200 ok`` and the real gateway (``python -m
cortex.dataplane.gateway``, serving a cached route table, no operator), each in its own
subprocess. Upstreams: ``asyncio`` / ``uvloop`` are a raw ``asyncio.Protocol`` + httptools server
on that loop (the cheapest possible server); ``uvicorn`` is a one-line ASGI app under uvicorn
(uvloop + httptools), closer to what a model server costs. The upstream is pinned to the last
CPU and the gateway to the first; the load generator is left free. For each connection count it
measures the upstream directly and then through the gateway, and prints throughput, p50 and p99
and the ratios (throughput gateway/direct, added p50 latency). Uses ``wrk`` when it is
installed, otherwise a built-in asyncio load generator (much weaker: it shares the CPUs).

Targets on a 2-core box: throughput ratio >= 0.6 at 32 connections; added p50 <= 0.1 ms at 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

UPSTREAM_SRC = r"""
import asyncio, sys, httptools, uvloop
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
        self.p = httptools.HttpRequestParser(self)
    def data_received(self, d):
        self.p.feed_data(d)
    def on_message_complete(self):
        self.t.write(RESP)
async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=2048)
    print("ready", flush=True)
    await srv.serve_forever()
uvloop.run(main())
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


PINNING = True  # --no-pin turns it off


def pin(cpu: int) -> list[str]:
    ncpu = os.cpu_count() or 1
    usable = PINNING and shutil.which("taskset") and ncpu > 1
    return ["taskset", "-c", str(cpu % ncpu)] if usable else []


UVICORN_SRC = r"""
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    hdrs = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": hdrs})
    await send({"type": "http.response.body", "body": b"ok"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            loop="uvloop", http="httptools", lifespan="off", access_log=False)
"""


def start_upstream(port: int, kind: str) -> subprocess.Popen[bytes]:
    cpu = (os.cpu_count() or 1) - 1
    if kind == "uvicorn":
        cmd = [*pin(cpu), sys.executable, "-c", UVICORN_SRC, str(port)]
    else:
        cmd = [*pin(cpu), sys.executable, "-c", UPSTREAM_SRC, str(port), kind]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc


def start_gateway(port: int, upstream_port: int, state_dir: Path) -> subprocess.Popen[bytes]:
    table = {
        "version": 1,
        "realtime": [
            {
                "api_name": "bench",
                "endpoint": "/bench",
                "max_concurrency": 1000,
                "max_queue_length": 1000,
                "upstreams": [{"replica_id": "r0", "host": "127.0.0.1", "port": upstream_port}],
                "scaled_to_zero": False,
            }
        ],
        "splitters": [],
    }
    (state_dir / "routes.json").write_text(json.dumps(table))
    env = {
        **os.environ,
        "CORTEX_API_PORT": str(port),
        "CORTEX_STATE_DIR": str(state_dir),
        "CORTEX_OPERATOR_URL": "",
        "CORTEX_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [*pin(0), sys.executable, "-m", "cortex.dataplane.gateway"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    wait_port(port)
    return proc


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def run_wrk(url: str, connections: int, duration_s: float) -> Result:
    threads = 1
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, p50, p99)


async def _client(port: int, path: bytes, stop_at: float, lat: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    req = b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n"
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(n)
        lat.append(time.perf_counter() - t0)
    writer.close()


def run_fallback(url: str, connections: int, duration_s: float) -> Result:
    m = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
    assert m is not None
    port, path = int(m.group(1)), m.group(2).encode()
    lat: list[float] = []

    async def go() -> None:
        stop_at = time.perf_counter() + duration_s
        await asyncio.gather(*(_client(port, path, stop_at, lat) for _ in range(connections)))

    t0 = time.perf_counter()
    asyncio.run(go())
    elapsed = time.perf_counter() - t0
    lat.sort()
    return Result(len(lat) / elapsed, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3)


def measure(url: str, connections: int, duration_s: float, use_wrk: bool) -> Result:
    run = run_wrk if use_wrk else run_fallback
    run(url, connections, min(1.0, duration_s))  # warm-up: pools, caches, CPU frequency
    return run(url, connections, duration_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration-s", type=float, default=5.0)
    ap.add_argument("--connections", default="32,1")
    ap.add_argument(
        "--upstream",
        default="asyncio,uvloop,uvicorn",
        help="trivial upstream(s), comma-separated: asyncio, uvloop (raw protocol), uvicorn",
    )
    ap.add_argument("--no-pin", action="store_true", help="let the scheduler place processes")
    args = ap.parse_args()
    global PINNING
    PINNING = not args.no_pin
    use_wrk = shutil.which("wrk") is not None
    print(f"load generator: {'wrk -t1' if use_wrk else 'built-in asyncio client (wrk not found)'}")
    print(
        f"cpus: {os.cpu_count()}; pinning: "
        + ("gateway cpu 0, upstream last cpu, load generator free" if pin(0) else "none")
    )
    for kind in args.upstream.split(","):
        bench_one(kind, [int(c) for c in args.connections.split(",")], args.duration_s, use_wrk)


def bench_one(kind: str, conns_list: list[int], duration_s: float, use_wrk: bool) -> None:
    """One trivial upstream of ``kind`` and one gateway; direct vs gateway per connection count."""
    title = "ASGI app on uvicorn" if kind == "uvicorn" else f"raw protocol + httptools on {kind}"
    print(f"\n=== upstream: {title} ===")
    up_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        upstream = start_upstream(up_port, kind)
        gateway = start_gateway(gw_port, up_port, Path(tmp))
        try:
            for conns in conns_list:
                direct = measure(f"http://127.0.0.1:{up_port}/", conns, duration_s, use_wrk)
                via = measure(f"http://127.0.0.1:{gw_port}/bench", conns, duration_s, use_wrk)
                report(conns, direct, via)
        finally:
            for proc in (gateway, upstream):
                proc.terminate()
                proc.wait(10)


def report(conns: int, direct: Result, via: Result) -> None:
    print(f"\n{conns} connection(s):")
    for name, r in (("direct", direct), ("gateway", via)):
        print(f"  {name:8} {r.rps:10.0f} req/s   p50 {r.p50_ms:7.3f} ms   p99 {r.p99_ms:7.3f} ms")
    print(
        f"  ratio    throughput {via.rps / direct.rps:.2f}x   "
        f"added p50 {via.p50_ms - direct.p50_ms:+.3f} ms   "
        f"added p99 {via.p99_ms - direct.p99_ms:+.3f} ms"
    )


if __name__ == "__main__":
    main()
