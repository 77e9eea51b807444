"""Realtime data-plane benchmark: the gateway vs. hitting the upstream directly.

    .venv/bin/python bench/realtime.py [--duration-s 5] [--connections 32,1]
        [--upstream asyncio,uvloop,uvicorn] [--placement none,split,wrk-apart,gw-apart]

Starts a trivial upstream answering ``200 ok`` and the real gateway (``python -m
cortex.dataplane.gateway``, serving a cached route table, no operator), each in its own
subprocess. Upstreams: ``asyncio`` / ``uvloop`` are a raw ``asyncio.Protocol`` + httptools server
on that loop (the cheapest possible server: the headline rows); ``uvicorn`` is a one-line ASGI
app under uvicorn (uvloop + httptools), closer to what a model server costs. For each placement,
upstream and connection count it measures the upstream directly and then through the gateway
(same placement of the load generator and upstream in both runs), and prints throughput, p50,
p99, the ratios, and the CPU time each process spent per request.

Fairness, and why the CPU columns matter:

* Load: ``wrk -t1`` (one thread; it is never the bottleneck here: direct runs reach several
  times the gateway's rate), HTTP/1.1 keep-alive on every connection; the gateway keeps pooled
  keep-alive connections to the upstream (up to max_queue_length = 1000 idle, so all 32 stay
  warm after the warm-up run). A 1 s warm-up precedes every measured run.
* Placement (``taskset``; ``--placement``, several allowed): ``none`` lets the scheduler place
  everything; ``split`` pins the gateway to CPU 0 and the upstream to the last CPU, wrk free;
  ``wrk-apart`` gives wrk CPU 0 and puts gateway and upstream on the last CPU; ``gw-apart``
  gives the gateway CPU 0 and puts wrk and upstream on the last CPU (the direct run then has
  one CPU for wrk and upstream while the gateway's CPU idles: flattering, shown for
  completeness).
* A direct run has two processes on the cores, a gateway run three, and a proxy does about
  the socket work of its upstream twice (it serves one connection and is the client of another).
  With an upstream as cheap as a proxy's half, the ratio is bounded by the CPU budget, not by
  the gateway's code; the ``ceiling`` line says what the measured CPU costs allow on this
  machine's cores (min of the all-cores bound and each single-threaded process's bound),
  so a low ratio can be told apart from a slow gateway.
* Other load on the machine moves every figure; the load average is printed with each block.

Uses ``wrk`` when it is installed, otherwise a built-in asyncio load generator (much weaker: it
shares the CPUs; its CPU column is then this process's).

Targets on a 2-core box: throughput ratio >= 0.6 at 32 connections; added p50 <= 0.1 ms at 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

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
(asyncio.run if sys.argv[2] == "asyncio" else uvloop.run)(main())
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: dict[str, float] = field(default_factory=dict)  # role -> CPU us per request


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


PLACEMENTS: dict[str, dict[str, int]] = {
    "none": {},
    "split": {"gateway": 0, "upstream": -1},
    "wrk-apart": {"wrk": 0, "gateway": -1, "upstream": -1},
    "gw-apart": {"gateway": 0, "upstream": -1, "wrk": -1},
}
PLACEMENT: dict[str, int] = {}  # the one in use (role -> cpu; -1: the last cpu)


def pin(role: str) -> list[str]:
    """The ``taskset`` prefix placing ``role`` (gateway, upstream, wrk) on its CPU, if any."""
    ncpu = os.cpu_count() or 1
    cpu = PLACEMENT.get(role)
    if cpu is None or ncpu < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu % ncpu)]


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
    src = UVICORN_SRC if kind == "uvicorn" else UPSTREAM_SRC
    cmd = [*pin("upstream"), sys.executable, "-c", src, str(port), kind]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc


def start_gateway(port: int, upstream_port: int, state_dir: Path) -> subprocess.Popen[bytes]:
    """The gateway serving one RealtimeAPI ``/bench`` over the upstream (capacity 1000+1000)."""
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
    return launch_gateway(port, state_dir, table, pin("gateway"))


def launch_gateway(
    port: int, state_dir: Path, table: dict[str, object], prefix: list[str]
) -> subprocess.Popen[bytes]:
    """``python -m cortex.dataplane.gateway`` (after ``prefix``, e.g. taskset) serving ``table``
    from its route cache, no operator, on ``port``; returns once it listens."""
    (state_dir / "routes.json").write_text(json.dumps(table))
    env = {
        **os.environ,
        "CORTEX_API_PORT": str(port),
        "CORTEX_STATE_DIR": str(state_dir),
        "CORTEX_OPERATOR_URL": "",
        "CORTEX_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [*prefix, sys.executable, "-m", "cortex.dataplane.gateway"]
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
        *pin("wrk"),
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


def _cpu_s(proc: psutil.Process | None) -> float:
    if proc is None:  # the load generator: wrk (a waited child) or this process (fallback)
        usages = [resource.getrusage(who) for who in _LOADGEN_RUSAGE]
        return sum(u.ru_utime + u.ru_stime for u in usages)
    t = proc.cpu_times()
    return float(t.user + t.system)


_LOADGEN_RUSAGE = (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)


def measure(
    url: str, conns: int, duration_s: float, use_wrk: bool, procs: dict[str, int]
) -> Result:
    """Warm up, then one measured run; ``procs`` (role -> pid) get their CPU per request."""
    run = run_wrk if use_wrk else run_fallback
    run(url, conns, min(1.0, duration_s))  # warm-up: pools, caches, CPU frequency
    watched: dict[str, psutil.Process | None] = {"load": None}
    watched.update({role: psutil.Process(pid) for role, pid in procs.items()})
    before = {role: _cpu_s(p) for role, p in watched.items()}
    t0 = time.perf_counter()
    result = run(url, conns, duration_s)
    n = result.rps * (time.perf_counter() - t0)
    result.cpu_us = {role: (_cpu_s(p) - before[role]) / n * 1e6 for role, p in watched.items()}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration-s", type=float, default=5.0)
    ap.add_argument("--connections", default="32,1")
    ap.add_argument(
        "--upstream",
        default="asyncio,uvloop,uvicorn",
        help="trivial upstream(s), comma-separated: asyncio, uvloop (raw protocol), uvicorn",
    )
    ap.add_argument(
        "--placement",
        default="none,split",
        help=f"CPU placement(s), comma-separated: {', '.join(PLACEMENTS)} (see the docstring)",
    )
    args = ap.parse_args()
    use_wrk = shutil.which("wrk") is not None
    print(f"load generator: {'wrk -t1' if use_wrk else 'built-in asyncio client (wrk not found)'}")
    print(f"cpus: {os.cpu_count()}; CPU columns: microseconds of CPU per request")
    conns_list = [int(c) for c in args.connections.split(",")]
    for placement in args.placement.split(","):
        PLACEMENT.clear()
        PLACEMENT.update(PLACEMENTS[placement])
        for kind in args.upstream.split(","):
            bench_one(placement, kind, conns_list, args.duration_s, use_wrk)


def bench_one(
    placement: str, kind: str, conns_list: list[int], duration_s: float, use_wrk: bool
) -> None:
    """One trivial upstream of ``kind`` and one gateway; direct vs gateway per connection count."""
    title = "ASGI app on uvicorn" if kind == "uvicorn" else f"raw protocol + httptools on {kind}"
    where = ", ".join(f"{r} cpu {c % (os.cpu_count() or 1)}" for r, c in PLACEMENT.items())
    print(f"\n=== upstream: {title}; placement {placement} ({where or 'scheduler'}) ===")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    up_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        upstream = start_upstream(up_port, kind)
        gateway = start_gateway(gw_port, up_port, Path(tmp))
        try:
            for conns in conns_list:
                direct = measure(
                    f"http://127.0.0.1:{up_port}/",
                    conns,
                    duration_s,
                    use_wrk,
                    {"upstream": upstream.pid},
                )
                via = measure(
                    f"http://127.0.0.1:{gw_port}/bench",
                    conns,
                    duration_s,
                    use_wrk,
                    {"upstream": upstream.pid, "gateway": gateway.pid},
                )
                report(conns, direct, via)
        finally:
            for proc in (gateway, upstream):
                proc.terminate()
                proc.wait(10)
    print("load average at end:   {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def ceiling(r: Result, ncpu: int) -> float:
    """Requests/s the measured CPU costs allow on ``ncpu`` idle cores: each process is
    single-threaded (one core at most) and together they cannot use more than ``ncpu``."""
    costs = [c for c in r.cpu_us.values() if c > 0]
    return min([ncpu / sum(costs) * 1e6] + [1e6 / c for c in costs])


def report(conns: int, direct: Result, via: Result) -> None:
    print(f"\n{conns} connection(s):")
    print(
        f"  {'':8} {'req/s':>10}   {'p50 ms':>7}   {'p99 ms':>7}   "
        "cpu us/req: load upstream gateway"
    )
    for name, r in (("direct", direct), ("gateway", via)):
        cpu = r.cpu_us
        gw = f"{cpu['gateway']:7.1f}" if "gateway" in cpu else f"{'-':>7}"
        print(
            f"  {name:8} {r.rps:10.0f}   {r.p50_ms:7.3f}   {r.p99_ms:7.3f}   "
            f"{cpu['load']:19.1f} {cpu['upstream']:8.1f} {gw}"
        )
    print(
        f"  ratio    throughput {via.rps / direct.rps:.2f}x   "
        f"added p50 {via.p50_ms - direct.p50_ms:+.3f} ms   "
        f"added p99 {via.p99_ms - direct.p99_ms:+.3f} ms"
    )
    if conns == 32:
        print(f"  target   throughput >= 0.6x: {_verdict(via.rps / direct.rps >= 0.6)}")
    elif conns == 1:
        print(f"  target   added p50 <= 0.1 ms: {_verdict(via.p50_ms - direct.p50_ms <= 0.1)}")
    ncpu = os.cpu_count() or 1
    top_direct, top_via = ceiling(direct, ncpu), ceiling(via, ncpu)
    print(
        f"  ceiling  from CPU costs on {ncpu} idle cores: direct {top_direct:.0f}/s, "
        f"gateway {top_via:.0f}/s, ratio {top_via / top_direct:.2f}x"
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


if __name__ == "__main__":
    main()
