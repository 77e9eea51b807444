"""BatchAPI throughput benchmark: a real job with 2 workers beside the ideal, in the same run.

    .venv/bin/python bench/batch.py [--items 20000] [--batch-size 10] [--workers 2]

The user server is a trivial handler: a raw ASGI app under uvicorn (uvloop + httptools) that
parses each batch (a JSON array) and answers 200 ``{}``; it appends one line per batch
(``<unix time> <items>``) to a file of its own, so the same record exists whether a job's
worker or the benchmark's client called it.

1. **ideal**: the server started directly (``CORTEX_PORT`` set, no cluster), one client
   (``httpx.AsyncClient``, the dequeuer's client) POSTing every batch of the job in turn on a
   kept-alive connection. Measured before and after the job and averaged, as the machine's
   speed drifts.
2. **job**: ``cortex cluster up`` in a temporary config dir on free ports; the BatchAPI
   deployed; the job submitted through the gateway with ``item_list`` (``workers`` workers);
   its status polled until it ends. Printed: the **processing rate** (items over the span from
   the first batch any worker's server saw to the last one, i.e. the workers' steady state) and
   the **end-to-end rate** (items over submit -> the job seen succeeded), with that span broken
   down into enqueuing (the job's ``start_time`` to its batches' total being known),
   start-up (submit -> first batch), processing, and the tail (last batch -> job succeeded:
   drain detection, on-job-complete and the job status loop).

The job timers are the operator's ``CORTEX_JOB_*`` variables; this script sets only those
(``--receive-wait-s``, ``--empty-checks``, ``--job-period-s``, ``--metrics-period-s``).

Target (issue 5): processing rate >= 0.8x the ideal with 2 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realtime import free_port, wait_port  # noqa: E402
from cortex.operator.jobs.models import JobStatus  # noqa: E402

CLI = str(Path(sys.executable).with_name("cortex"))

SERVER_SRC = r"""
import json, os, time

LOG = open(os.path.join(os.environ["BENCH_OUT"], f"batches-{os.getpid()}.log"), "a", buffering=1)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/" and scope["method"] == "POST":
        LOG.write(f"{time.time():.6f} {len(json.loads(body))}\n")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})
"""

ENDED = {status.value for status in JobStatus if status.completed}


def server_command(port: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_batch_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--log-level",
        "warning",
        "--lifespan",
        "off",
    ]


def batches(items: int, batch_size: int) -> list[bytes]:
    """The job's batches as the enqueuer makes them: JSON arrays of consecutive items."""
    return [
        json.dumps(list(range(i, min(i + batch_size, items)))).encode()
        for i in range(0, items, batch_size)
    ]


@dataclass
class Span:
    first: float
    last: float
    items: int
    batches: int


def read_span(out: Path) -> Span:
    """The first and last batch any server recorded under ``out`` and the items seen."""
    times: list[float] = []
    items = 0
    for log in out.glob("batches-*.log"):
        for line in log.read_text().splitlines():
            stamp, count = line.split()
            times.append(float(stamp))
            items += int(count)
    if not times:
        raise RuntimeError(f"no batch was recorded under {out}")
    return Span(min(times), max(times), items, len(times))


async def post_all(port: int, bodies: list[bytes]) -> float:
    """POST every batch in turn to one server; returns the elapsed seconds."""
    headers = {"Content-Type": "application/json", "X-Cortex-Job-ID": "ideal"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        await client.post("/", content=b"[]", headers=headers)  # connect before timing
        start = time.perf_counter()
        for body in bodies:
            response = await client.post("/", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"direct POST answered {response.status_code}")
        return time.perf_counter() - start


@dataclass
class Ideal:
    rate: float  # items/s
    client_cpu_s: float  # this process while POSTing (user + system)
    server_cpu_s: float  # the server process while answering


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def ideal_rate(project: Path, bodies: list[bytes], items: int) -> Ideal:
    """One client POSTing every batch straight to one directly started server."""
    out = Path(tempfile.mkdtemp(prefix="ideal-", dir=project))
    port = free_port()
    env = {**os.environ, "BENCH_OUT": str(out), "CORTEX_PORT": str(port)}
    proc = subprocess.Popen(server_command(str(port)), cwd=project, env=env)
    try:
        wait_port(port)
        server = psutil.Process(proc.pid)
        server_before, client_before = cpu_s(server), time.process_time()
        elapsed = asyncio.run(post_all(port, bodies))
        client_cpu = time.process_time() - client_before
        server_cpu = cpu_s(server) - server_before
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return Ideal(items / elapsed, client_cpu, server_cpu)


@dataclass
class CpuSampler:
    """Samples, every ``period_s``, the CPU seconds of the job's processes (user servers,
    dequeuers) and of the cluster's operator and gateway, so the processing window's CPU can
    be split by component afterwards (:meth:`used`)."""

    state_dir: Path
    out: Path
    period_s: float = 0.1
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        seen: set[int] = set()
        procs: dict[int, psutil.Process] = {}
        while not self._stop.wait(self.period_s):
            for proc in psutil.process_iter():
                if proc.pid not in seen:
                    seen.add(proc.pid)
                    kind = self._kind(proc)
                    if kind is not None:
                        self.kinds[proc.pid] = kind
                        procs[proc.pid] = proc
            now = time.time()
            for pid, proc in list(procs.items()):
                try:
                    self.samples.setdefault(pid, []).append((now, cpu_s(proc)))
                except psutil.Error:
                    del procs[pid]

    def _kind(self, proc: psutil.Process) -> str | None:
        try:
            env, cmdline = proc.environ(), " ".join(proc.cmdline())
        except psutil.Error:
            return None
        if env.get("BENCH_OUT") == str(self.out):
            return "user servers"
        if env.get("CORTEX_JOB_SPEC_PATH", "").startswith(str(self.state_dir)):
            return "dequeuers" if "cortex.dataplane.dequeuer" in cmdline else None
        if env.get("CORTEX_STATE_DIR") == str(self.state_dir):
            if "cortex.operator" in cmdline:
                return "operator"
            if "cortex.dataplane.gateway" in cmdline:
                return "gateway"
        return None

    def used(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per kind between two wall-clock times (nearest samples)."""
        totals: dict[str, float] = {}
        for pid, series in self.samples.items():
            inside = [cpu for t, cpu in series if start <= t <= end]
            if len(inside) >= 2:
                kind = self.kinds[pid]
                totals[kind] = totals.get(kind, 0.0) + inside[-1] - inside[0]
        return totals


class Cluster:
    """A local cluster in a temporary config dir, driven through the real CLI."""

    def __init__(self, root: Path, job_env: dict[str, str]) -> None:
        self.config_dir = root / "cortex-config"
        self.operator_port = free_port()
        self.api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
        self.env.update(
            CORTEX_CLI_CONFIG_DIR=str(self.config_dir),
            CORTEX_RECONCILE_PERIOD_S="0.2",
            **job_env,
        )

    def cli(self, *args: str) -> str:
        proc = subprocess.run(
            [CLI, *args], env=self.env, capture_output=True, text=True, timeout=150, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cortex {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    def up(self) -> None:
        ports = ["--operator-port", str(self.operator_port), "--api-port", str(self.api_port)]
        self.cli("cluster", "up", "-y", *ports)

    def down(self) -> None:
        subprocess.run(
            [CLI, "cluster", "down", "-y"], env=self.env, capture_output=True, timeout=150
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"


def api_yaml(out: Path) -> str:
    api = {
        "name": "bench",
        "kind": "BatchAPI",
        "pod": {
            "containers": [
                {
                    "name": "api",
                    "image": "example.com/bench:latest",
                    "command": server_command("$(CORTEX_PORT)"),
                    "env": {"BENCH_OUT": str(out)},
                    "compute": {"cpu": "100m"},
                }
            ]
        },
    }
    return yaml.safe_dump([api], sort_keys=False)


def submit(cluster: Cluster, body: dict[str, Any]) -> tuple[str, float]:
    """POST the job through the gateway (retrying until its route is there); returns the job
    id and the submit's wall-clock time."""
    deadline = time.monotonic() + 30
    while True:
        submitted = time.time()
        r = httpx.post(cluster.url("/bench"), json=body, timeout=60)
        if r.status_code == 200:
            return str(r.json()["job_id"]), submitted
        if r.status_code not in (404, 503) or time.monotonic() > deadline:
            raise RuntimeError(f"submit answered {r.status_code}: {r.text}")
        time.sleep(0.1)


def wait_ended(cluster: Cluster, job_id: str) -> tuple[dict[str, Any], float]:
    """Poll the job every 100 ms; returns its last status and when it was first seen ended."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        body = httpx.get(cluster.url("/bench"), params={"jobID": job_id}, timeout=30).json()
        if body["job_status"]["status"] in ENDED:
            return body, time.time()
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not end")


def run_job(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = root / "job-out"
    out.mkdir()
    project = root / "project"
    cluster = Cluster(root, job_env(args))
    sampler = CpuSampler(cluster.config_dir / "local", out)
    cluster.up()
    sampler.start()
    try:
        config = project / "cortex.yaml"
        config.write_text(api_yaml(out))
        cluster.cli("deploy", str(config), "-y")
        items = {"items": list(range(args.items)), "batch_size": args.batch_size}
        job_id, submitted = submit(cluster, {"workers": args.workers, "item_list": items})
        status, ended = wait_ended(cluster, job_id)
    finally:
        sampler.stop()
        cluster.down()
    if status["job_status"]["status"] != "succeeded":
        raise RuntimeError(f"job ended {status['job_status']['status']}: {status}")
    span = read_span(out)
    cpu = sampler.used(span.first, span.last)
    return {"submitted": submitted, "ended": ended, "span": span, "status": status, "cpu": cpu}


def job_env(args: argparse.Namespace) -> dict[str, str]:
    """The timers given on the command line; the operator's defaults for the others."""
    given = {
        "CORTEX_JOB_RECEIVE_WAIT_S": args.receive_wait_s,
        "CORTEX_JOB_EMPTY_CHECKS": args.empty_checks,
        "CORTEX_JOB_PERIOD_S": args.job_period_s,
        "CORTEX_JOB_METRICS_PERIOD_S": args.metrics_period_s,
    }
    env = {name: str(value) for name, value in given.items() if value is not None}
    env["CORTEX_LOG_LEVEL"] = args.log_level
    return env


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--receive-wait-s", type=float, default=None)
    parser.add_argument("--empty-checks", type=int, default=None)
    parser.add_argument("--job-period-s", type=float, default=None)
    parser.add_argument("--metrics-period-s", type=float, default=None)
    parser.add_argument("--log-level", default="WARNING", help="the cluster's CORTEX_LOG_LEVEL")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args()


def report(args: argparse.Namespace, ideal: list[Ideal], job: dict[str, Any]) -> None:
    span: Span = job["span"]
    ideal_avg = sum(i.rate for i in ideal) / len(ideal)
    processing = span.last - span.first
    processing_rate = args.items / processing if processing > 0 else float("inf")
    end_to_end = job["ended"] - job["submitted"]
    print(
        f"batch throughput: {args.items} items in batches of {args.batch_size} "
        f"({span.batches} batches), {args.workers} workers; "
        f"load average before: {job['load']:.2f} on {os.cpu_count()} CPUs"
    )
    runs = ", ".join(f"{i.rate:.0f}" for i in ideal)
    print(f"  ideal (1 client -> 1 server)  {ideal_avg:10.0f} items/s  (runs: {runs})")
    print(
        f"  job, processing               {processing_rate:10.0f} items/s  "
        f"ratio {processing_rate / ideal_avg:.2f}x (target >= 0.80x)"
    )
    print(
        f"  job, end to end               {args.items / end_to_end:10.0f} items/s  "
        f"ratio {args.items / end_to_end / ideal_avg:.2f}x"
    )
    print(
        f"  end to end {end_to_end:.2f}s = submit -> first batch "
        f"{span.first - job['submitted']:.2f}s (enqueue + worker start-up) + processing "
        f"{processing:.2f}s + last batch -> seen succeeded {job['ended'] - span.last:.2f}s "
        f"(drain checks, on-job-complete, exit, job status loop)"
    )
    report_cpu(ideal, job["cpu"], span.batches, processing)
    status = job["status"]
    print(
        f"  job: {status['job_status']['status']}, {span.items} items recorded "
        f"(redelivered: {span.items - args.items}), metrics {status.get('metrics')}"
    )


def report_cpu(ideal: list[Ideal], cpu: dict[str, float], batches: int, window: float) -> None:
    """CPU milliseconds per batch by component: where the job's time goes beside the ideal's."""
    n = len(ideal) * batches
    client = sum(i.client_cpu_s for i in ideal) * 1000 / n
    server = sum(i.server_cpu_s for i in ideal) * 1000 / n
    print(f"  CPU ms/batch, ideal: client {client:.2f} + server {server:.2f}")
    parts = " + ".join(f"{k} {v * 1000 / batches:.2f}" for k, v in sorted(cpu.items()))
    busy = sum(cpu.values()) / window if window > 0 else 0.0
    print(f"  CPU ms/batch, job:   {parts}  ({busy:.2f} CPUs busy over the window)")


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="cortex-bench-batch-"))
    project = root / "project"
    project.mkdir()
    (project / "bench_batch_server.py").write_text(SERVER_SRC)
    bodies = batches(args.items, args.batch_size)
    try:
        ideal = [ideal_rate(project, bodies, args.items)]
        load = os.getloadavg()[0]
        job = run_job(root, args)
        job["load"] = load
        ideal.append(ideal_rate(project, bodies, args.items))
        report(args, ideal, job)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
