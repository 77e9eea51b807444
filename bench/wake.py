"""Wake-from-zero benchmark: the first request to a RealtimeAPI at zero replicas, beyond the
replica's own start-up time.

    .venv/bin/python bench/wake.py [--app trivial|iris] [--runs 3] [--reconcile-period-s S]

Two measurements of the same user server, in the same run:

1. **start-up, direct**: the server's command started by hand (``CORTEX_PORT`` set), asked
   every 5 ms until it first answers 200: spawn -> first answer. The least any wake can take.
2. **wake through the gateway**: ``cortex cluster up`` in a temporary config dir on free ports;
   ``--runs`` RealtimeAPIs deployed with ``min_replicas: 0`` and ``init_replicas: 0`` (so each
   starts at zero, no scale-down wait); once the gateway's route table marks each
   ``scaled_to_zero``, one request per API: send -> answer. The gateway's activator holds the
   request, asks the operator to awaken the API, the reconciler starts a replica, its
   readiness check passes, the gateway's next route table carries it, and the held request is
   forwarded.

Printed: the median of each and the difference, the wake's overhead beyond start-up.
Apps: ``trivial`` (a raw ASGI app under uvicorn answering ``ok``; no readiness probe, so the
local backend's default TCP check decides readiness) and ``iris`` (examples/realtime as it is,
with its ``/healthz`` readiness probe, ``period_seconds: 1``; the request is its sample.json).

The only knobs are environment variables of the cluster (``--reconcile-period-s`` sets
``CORTEX_RECONCILE_PERIOD_S``; left unset, the operator's default applies).

Target (issue 3 / 6): wake <= 0.5 s beyond the replica's own start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cortex.client.python_client import Client  # noqa: E402

CLI = str(Path(sys.executable).with_name("cortex"))
REALTIME = ROOT / "examples" / "realtime"

TRIVIAL_SRC = r"""
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@dataclass(frozen=True)
class App:
    """A user server: how to start it, where it runs, and the request that checks it."""

    container: dict[str, Any]
    project_dir: Path
    method: str
    body: bytes | None

    def command(self, port: int) -> list[str]:
        args = [a.replace("$(CORTEX_PORT)", str(port)) for a in self.container.get("args", [])]
        return [sys.executable if c == "python" else c for c in self.container["command"]] + args


def trivial_app(folder: Path) -> App:
    (folder / "wake_trivial.py").write_text(TRIVIAL_SRC)
    container = {
        "name": "api",
        "image": "example.com/trivial:latest",
        "command": [sys.executable, "-m", "uvicorn", "wake_trivial:app"],
        "args": ["--host", "127.0.0.1", "--port", "$(CORTEX_PORT)", "--log-level", "warning"],
        "compute": {"cpu": "100m"},
    }
    return App(container, folder, "GET", None)


def iris_app() -> App:
    api = yaml.safe_load((REALTIME / "cortex.yaml").read_text())[0]
    body = (REALTIME / "sample.json").read_bytes()
    return App(api["pod"]["containers"][0], REALTIME, "POST", body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(client: httpx.Client, url: str, app: App) -> int:
    headers = {"Content-Type": "application/json"} if app.body else {}
    return client.request(app.method, url, content=app.body, headers=headers).status_code


def direct_startup(app: App) -> float:
    """Seconds from spawning the server to its first 200 answer (asked every 5 ms)."""
    port = free_port()
    env = {**os.environ, "CORTEX_PORT": str(port)}
    started = time.perf_counter()
    proc = subprocess.Popen(app.command(port), cwd=app.project_dir, env=env)
    try:
        with httpx.Client(timeout=5, trust_env=False) as client:
            deadline = started + 120
            while time.perf_counter() < deadline:
                try:
                    if ask(client, f"http://127.0.0.1:{port}/", app) == 200:
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.005)
        raise RuntimeError("the server did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Cluster:
    """A local cluster in a temporary config dir, driven through the real CLI and client."""

    def __init__(self, root: Path, extra_env: dict[str, str]) -> None:
        self.config_dir = root / "cortex-config"
        self.operator_port = free_port()
        self.api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
        self.env.update(CORTEX_CLI_CONFIG_DIR=str(self.config_dir), **extra_env)

    def up(self) -> None:
        ports = ["--operator-port", str(self.operator_port), "--api-port", str(self.api_port)]
        subprocess.run(
            [CLI, "cluster", "up", "-y", *ports],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=150,
        )

    def down(self) -> None:
        subprocess.run(
            [CLI, "cluster", "down", "-y"], env=self.env, capture_output=True, timeout=150
        )

    def client(self) -> Client:
        token = json.loads((self.config_dir / "local" / "cluster.json").read_text())["token"]
        endpoint = f"http://127.0.0.1:{self.operator_port}"
        return Client({"name": "local", "operator_endpoint": endpoint, "token": token})

    def scaled_to_zero(self, name: str) -> bool:
        """The gateway's cached route table (``routes.json``) holds the API at zero."""
        try:
            table = json.loads((self.config_dir / "local" / "routes.json").read_text())
        except (OSError, ValueError):
            return False
        routes = [r for r in table.get("realtime", []) if r.get("api_name") == name]
        return bool(routes) and all(r.get("scaled_to_zero") for r in routes)


def api_spec(name: str, app: App) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "RealtimeAPI",
        "pod": {"port": 8080, "containers": [app.container]},
        "autoscaling": {"min_replicas": 0, "init_replicas": 0, "max_replicas": 1},
    }


def wake_times(cluster: Cluster, app: App, runs: int) -> list[float]:
    client = cluster.client()
    names = [f"wake-{i}" for i in range(runs)]
    for name in names:
        client.deploy(api_spec(name, app), project_dir=app.project_dir)
    deadline = time.monotonic() + 30
    while not all(cluster.scaled_to_zero(n) for n in names):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway never showed the APIs at zero replicas")
        time.sleep(0.05)
    times = []
    with httpx.Client(timeout=120, trust_env=False) as http:
        for name in names:
            started = time.perf_counter()
            status = ask(http, f"http://127.0.0.1:{cluster.api_port}/{name}", app)
            times.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"the first request to {name} answered {status}")
    return times


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("trivial", "iris"), default="trivial")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reconcile-period-s", type=float, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args()


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="cortex-bench-wake-"))
    app = trivial_app(root) if args.app == "trivial" else iris_app()
    extra = {}
    if args.reconcile_period_s is not None:
        extra["CORTEX_RECONCILE_PERIOD_S"] = str(args.reconcile_period_s)
    cluster = Cluster(root, extra)
    try:
        direct = [direct_startup(app) for _ in range(args.runs)]
        cluster.up()
        try:
            woken = wake_times(cluster, app, args.runs)
        finally:
            cluster.down()
        direct.append(direct_startup(app))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    start, wake = statistics.median(direct), statistics.median(woken)
    print(f"wake from zero ({args.app} app, {args.runs} runs; medians)")
    print(f"  start-up, direct (spawn -> first answer)   {start:7.3f} s  ({fmt(direct)})")
    print(f"  first request at zero replicas (gateway)   {wake:7.3f} s  ({fmt(woken)})")
    print(f"  beyond start-up                            {wake - start:7.3f} s  (target <= 0.5 s)")


if __name__ == "__main__":
    main()
