"""AsyncAPI end-to-end benchmark: completions per second on a real local cluster, beside the
raw SQLite queue's send + receive + ack cycle rate, in the same run.

    .venv/bin/python bench/async_e2e.py [--requests 2000] [--connections 16]
                                        [--replicas 2] [--max-concurrency 8]

1. **raw queue**: one coroutine doing ``send``, ``receive``, ``ack`` of one message on a fresh
   SQLite queue file (``bench/queue_rates.py``'s ``cycle``), before the cluster starts and after
   it stops; the two are averaged (the shared disk's speed drifts).
2. **cluster**: ``cortex cluster up`` in a temporary config dir on free ports
   (``tests/integration/cluster.LocalCluster`` with ``CORTEX_LOG_LEVEL=WARNING``, the default
   visibility timeout), an AsyncAPI running ``tests/integration/apps/echo_server.py`` (a raw
   ASGI app under uvicorn answering a small JSON object) with ``--replicas`` replicas
   (``min_replicas = max_replicas``, so no autoscaling) and ``pod.max_concurrency``
   ``--max-concurrency`` (the dequeuer's worker count). A few warm-up requests complete first.
3. **submit**: ``--requests`` POSTs of a small JSON body through the gateway from an asyncio
   client on ``--connections`` kept-alive raw HTTP/1.1 connections (no HTTP library: the client
   shares the 2 CPUs with the cluster), each answer's ``id`` kept. Submit rate = requests over
   first submit -> last answer.
4. **completion**: read from the stored ``status.json`` files (``ObjectStore.get_json`` of
   ``workloads/<api>/<id>/status.json``), not by HTTP polling, once submitting is done. A scan
   walks the pending ids in submission order and stops at the first one not yet done, then
   sleeps 0.2 s: about one file read per request in all, so watching costs almost nothing.
   Each completed status carries the dequeuer's clock at completion (``timestamp``, written
   after ``result.json``, just before the payload delete and the ack), so the completion
   rate is exact whatever the watcher's period: requests over first submit -> latest
   completion timestamp.

Printed: the submit rate, the end-to-end completion rate, the completion span's own rate
(first -> last completion), the raw queue cycle rate and the ratio completions / raw cycles
(each completion costs one send + one receive + one ack, plus 5 storage writes, 2 reads and a
delete, and two HTTP exchanges), and the CPU seconds of the gateway, operator, dequeuers, user
servers and this client over first submit -> all seen completed (psutil, two snapshots), the
same roles' CPU over 2 s of idling just before (what the receive long-polls cost with nothing
queued), and the messages left on the API's queue afterwards (0: every completion was acked).
A run takes about 20 s; the temporary folder is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

# Keep bench/ itself off the path (its scripts are not modules) and import from the repository
# root, as bench/queue_rates.py does.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from cortex.queue import open_broker  # noqa: E402
from cortex.storage import ObjectNotFoundError, default_storage_url, open_store  # noqa: E402
from cortex.storage import paths as storage_paths  # noqa: E402
from tests.integration.cluster import LocalCluster, echo_api, to_yaml, wait_for  # noqa: E402

API = "e2e-async"
IDLE_S = 2.0
DONE = ("completed", "failed")


class BenchCluster(LocalCluster):
    """The tests' local cluster with quiet logs and the operator's default async timers."""

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
        env.update(
            CORTEX_CLI_CONFIG_DIR=str(self.config_dir),
            CORTEX_RECONCILE_PERIOD_S="0.2",
            CORTEX_DRAIN_TIMEOUT_S="10",
            CORTEX_LOG_LEVEL="WARNING",
        )
        return env


def api_spec(replicas: int, max_concurrency: int) -> dict[str, Any]:
    """An AsyncAPI of the echo server with a fixed replica count."""
    api = echo_api(API, kind="AsyncAPI", replicas=replicas, max_concurrency=max_concurrency)
    del api["pod"]["max_queue_length"]  # a RealtimeAPI-only field
    api["autoscaling"] = {"min_replicas": replicas, "max_replicas": replicas}
    return api


# raw queue


async def raw_cycle_rate(url: str, duration_s: float) -> float:
    """send + receive + ack cycles per second, one coroutine, on a fresh queue."""
    broker = open_broker(url)
    try:
        name = f"raw-{uuid.uuid4().hex[:8]}"
        await broker.create_queue(name)
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < duration_s:
            await broker.send(name, b"0190c0de-0000-7000-8000-000000000000")
            [message] = await broker.receive(name)
            await broker.ack(name, message.receipt)
            done += 1
        await broker.delete_queue(name)
        return done / elapsed
    finally:
        await broker.close()


def raw_rate(root: Path, duration_s: float) -> float:
    """The cycle rate on a fresh SQLite file under ``root``."""
    folder = Path(tempfile.mkdtemp(prefix="raw-queue-", dir=root))
    try:
        return asyncio.run(raw_cycle_rate(f"sqlite:///{folder}/queues.db", duration_s))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# submit


_LENGTH = re.compile(rb"(?i)content-length:\s*(\d+)")


async def _connection(port: int, bodies: Iterator[tuple[int, bytes]], ids: list[str]) -> None:
    """One kept-alive connection POSTing bodies until the shared iterator is exhausted."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, body in bodies:
            writer.write(
                b"POST /%b HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (API.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if length is None:
                raise RuntimeError(f"answer without Content-Length: {head!r}")
            answer = await reader.readexactly(int(length.group(1)))
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"submit answered {head.splitlines()[0]!r}: {answer!r}")
            ids[index] = str(json.loads(answer)["id"])
    finally:
        writer.close()


def submit_all(port: int, requests: int, connections: int) -> tuple[list[str], float, float]:
    """(request ids in submission order, wall-clock time of the first submit, seconds)."""
    ids = [""] * requests
    bodies = ((i, b'{"n": %d}' % i) for i in range(requests))

    async def go() -> None:
        await asyncio.gather(*(_connection(port, bodies, ids) for _ in range(connections)))

    started, t0 = time.time(), time.perf_counter()
    asyncio.run(go())
    return ids, started, time.perf_counter() - t0


# completion


@dataclass
class Completion:
    times: list[float]  # the dequeuers' completion timestamps
    failed: int
    seen_at: float  # wall clock when the watcher saw the last one done


def watch(state_dir: Path, ids: list[str], timeout_s: float) -> Completion:
    """Wait until every id's stored status is done; see the module docstring (step 4)."""
    store = open_store(default_storage_url(state_dir))
    times: list[float] = []
    failed, position = 0, 0
    deadline = time.monotonic() + timeout_s
    while position < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids) - position} requests not done after {timeout_s}s")
        while position < len(ids):
            key = storage_paths.workload_status_key(API, ids[position])
            try:
                status = store.get_json(key)
            except ObjectNotFoundError:
                status = {"status": "missing"}
            if status["status"] not in DONE:
                break
            times.append(float(status["timestamp"]))
            failed += status["status"] == "failed"
            position += 1
        else:
            break
        time.sleep(0.2)
    return Completion(times, failed, time.time())


def check_sample(cluster: LocalCluster, ids: list[str]) -> None:
    """GET a few results through the gateway: the stored status is what a poll answers."""
    for index in (0, len(ids) // 2, len(ids) - 1):
        answer = cluster.request(f"/{API}/{ids[index]}").json()
        if answer["status"] != "completed" or answer["result"]["body"] != f'{{"n": {index}}}':
            raise RuntimeError(f"request {index}: unexpected answer {answer}")


async def queue_left(state_dir: Path) -> int:
    """Messages still on the API's queue (visible + in flight) in the cluster's SQLite file:
    0 once every completed request was acked."""
    broker = open_broker(f"sqlite:///{state_dir}/queues.db")
    try:
        names = [name for name in await broker.list_queues() if API in name]
        return sum([(await broker.counts(name)).total for name in names])
    finally:
        await broker.close()


# CPU


def cluster_processes(cluster: LocalCluster) -> dict[str, list[psutil.Process]]:
    """The cluster's processes by role: gateway and operator (their pid files, plus the
    gateway's children), dequeuers and user servers (this API's replica processes)."""
    roles: dict[str, list[psutil.Process]] = {}
    for name, pid in cluster.pids().items():
        proc = psutil.Process(pid)
        roles[name] = [proc, *(proc.children(recursive=True) if name == "gateway" else [])]
    for proc in psutil.process_iter():
        try:
            env, cmdline = proc.environ(), " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if env.get("CORTEX_CLI_CONFIG_DIR") != str(cluster.config_dir):
            continue
        if env.get("CORTEX_API_NAME") != API:
            continue
        if "cortex.dataplane.dequeuer" in cmdline:
            roles.setdefault("dequeuers", []).append(proc)
        elif "echo_server:app" in cmdline:
            roles.setdefault("user servers", []).append(proc)
    return roles


def cpu_seconds(roles: dict[str, list[psutil.Process]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for role, procs in roles.items():
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


@contextmanager
def measured(roles: dict[str, list[psutil.Process]], into: dict[str, float]) -> Iterator[None]:
    """CPU seconds each role (and this process: ``bench client``) used inside the block."""
    before, client = cpu_seconds(roles), time.process_time()
    yield
    after = cpu_seconds(roles)
    into.update({role: after[role] - before.get(role, 0.0) for role in after})
    into["bench client"] = time.process_time() - client


# the run


def warm_up(cluster: LocalCluster) -> None:
    """Until the gateway routes the API, then 10 requests submitted and completed."""

    def accepted() -> str | None:
        response = httpx.post(f"{cluster.api_url}/{API}", content=b"{}", timeout=10)
        return str(response.json()["id"]) if response.status_code == 200 else None

    ids = [wait_for(accepted, timeout_s=30, what="the async route")]
    ids += [accepted() or "" for _ in range(9)]
    watch(cluster.state_dir, ids, timeout_s=60)


@dataclass
class Run:
    ids: list[str]
    first_submit: float
    submit_s: float
    completion: Completion
    cpu: dict[str, float]
    idle_cpu: dict[str, float]
    procs: dict[str, int]
    queue_left: int


def run_cluster(root: Path, args: argparse.Namespace) -> Run:
    cluster = BenchCluster(root / "cortex-config")
    try:
        cluster.up()
        deployed = cluster.deploy(to_yaml(api_spec(args.replicas, args.max_concurrency)))
        if deployed.returncode != 0:
            raise RuntimeError(f"deploy failed:\n{deployed.stderr}{deployed.stdout}")
        cluster.wait_live(API, replicas=args.replicas)
        warm_up(cluster)
        roles = cluster_processes(cluster)
        idle: dict[str, float] = {}
        with measured(roles, idle):
            time.sleep(IDLE_S)
        cpu: dict[str, float] = {}
        with measured(roles, cpu):
            ids, first, submit_s = submit_all(cluster.api_port, args.requests, args.connections)
            completion = watch(cluster.state_dir, ids, timeout_s=args.timeout_s)
        check_sample(cluster, ids)
        left = asyncio.run(queue_left(cluster.state_dir))
        procs = {role: len(found) for role, found in roles.items()}
        return Run(ids, first, submit_s, completion, cpu, idle, procs, left)
    finally:
        cluster.down()


def report(args: argparse.Namespace, run: Run, raw_before: float, raw_after: float) -> None:
    n, done = len(run.ids), run.completion
    last, first_done = max(done.times), min(done.times)
    e2e_s = last - run.first_submit
    e2e = n / e2e_s
    raw = (raw_before + raw_after) / 2
    print(
        f"AsyncAPI end to end: {n} requests, {args.replicas} replicas, pod.max_concurrency "
        f"{args.max_concurrency}, echo_server (raw ASGI, uvicorn); client: asyncio raw HTTP/1.1, "
        f"{args.connections} connections; {os.cpu_count()} CPUs, load average before "
        f"{args.load:.2f}; completion read from stored status.json files (0.2 s scans)"
    )
    print(f"  (a) submit rate            {n / run.submit_s:8.0f} requests/s ({run.submit_s:.2f}s)")
    print(
        f"  (b) completion rate        {e2e:8.0f} requests/s (first submit -> last completed "
        f"{e2e_s:.2f}s; failed: {done.failed})"
    )
    span = last - first_done
    span_rate = f"{(n - 1) / span:8.0f}" if span > 0 else "       -"
    print(
        f"      completion span rate   {span_rate} requests/s (first -> last completion "
        f"{span:.2f}s; first completion {first_done - run.first_submit:.3f}s after first submit)"
    )
    print(
        f"  (c) raw queue cycles       {raw:8.0f} send+receive+ack/s (SQLite, one coroutine, "
        f"fresh file; {raw_before:.0f} before, {raw_after:.0f} after)"
    )
    print(f"  completions / raw queue cycles: {e2e / raw:.3f}x")
    window = done.seen_at - run.first_submit
    parts = ", ".join(
        f"{role} ({run.procs.get(role, 1)}) {cpu:.2f}s = {cpu * 1000 / n:.2f} ms/req"
        for role, cpu in sorted(run.cpu.items(), key=lambda item: -item[1])
    )
    total = sum(run.cpu.values())
    print(
        f"  CPU over first submit -> all seen completed ({window:.2f}s): {parts}; "
        f"total {total:.2f}s = {total / window:.2f} CPUs busy"
    )
    idle = ", ".join(f"{role} {cpu / IDLE_S:.3f}" for role, cpu in sorted(run.idle_cpu.items()))
    print(f"  CPUs busy while idle ({IDLE_S:g}s before submitting): {idle}")
    print(f"  messages left on the API's queue afterwards: {run.queue_left}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--raw-s", type=float, default=2.0, help="each raw queue measurement")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="completion wait")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="cortex-bench-async-e2e-"))
    try:
        args.load = os.getloadavg()[0]
        raw_before = raw_rate(root, args.raw_s)
        run = run_cluster(root, args)
        raw_after = raw_rate(root, args.raw_s)
        report(args, run, raw_before, raw_after)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
