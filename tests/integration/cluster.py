"""A real local cluster for end-to-end tests: `cortex cluster up` in a temporary config
directory on free ports, driven through the real CLI and the real Python client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

APPS_DIR = Path(__file__).resolve().parent / "apps"
CLI = str(Path(sys.executable).with_name("cortex"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, timeout_s: float, what: str, period_s: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(period_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def echo_api(
    name: str,
    *,
    kind: str = "RealtimeAPI",
    replicas: int = 1,
    version: str = "v1",
    max_concurrency: int = 4,
    max_queue_length: int = 100,
    env: dict[str, str] | None = None,
    autoscaling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A RealtimeAPI running tests/integration/apps/echo_server.py."""
    container = {
        "name": "api",
        "image": "example.com/echo:latest",
        "command": [sys.executable, "-m", "uvicorn", "echo_server:app"],
        "args": ["--host", "127.0.0.1", "--port", "$(CORTEX_PORT)", "--log-level", "warning"],
        "env": {"APP_VERSION": version, **(env or {})},
        "compute": {"cpu": "50m"},
        "readiness_probe": {"http_get": {"path": "/healthz", "port": 8080}, "period_seconds": 1},
    }
    return {
        "name": name,
        "kind": kind,
        "pod": {
            "max_concurrency": max_concurrency,
            "max_queue_length": max_queue_length,
            "containers": [container],
        },
        "autoscaling": {
            "min_replicas": replicas,
            "max_replicas": max(replicas, 1) * 4,
            **(autoscaling or {}),
        },
        "update_strategy": {"max_surge": 1, "max_unavailable": 0},
    }


def echo_api_yaml(name: str, **kwargs: Any) -> str:
    return to_yaml(echo_api(name, **kwargs))


def to_yaml(*apis: dict[str, Any]) -> str:
    return yaml.safe_dump(list(apis), sort_keys=False)


@dataclass
class LocalCluster:
    config_dir: Path
    operator_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
        env.update(
            CORTEX_CLI_CONFIG_DIR=str(self.config_dir),
            CORTEX_RECONCILE_PERIOD_S="0.2",
            CORTEX_DRAIN_TIMEOUT_S="10",
            CORTEX_AUTOSCALER_TICK_S="1",
            CORTEX_INFLIGHT_SAMPLE_S="0.25",
            CORTEX_INFLIGHT_REPORT_S="1",
            CORTEX_ASYNC_VISIBILITY_TIMEOUT_S="3",
        )
        return env

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def state_dir(self) -> Path:
        return self.config_dir / "local"

    def cli(
        self, *args: str, check: bool = True, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"cortex {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
            )
        return proc

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def up(self) -> None:
        self.cli(
            "cluster",
            "up",
            "-y",
            "--operator-port",
            str(self.operator_port),
            "--api-port",
            str(self.api_port),
        )

    def down(self) -> None:
        self.cli("cluster", "down", "-y", check=False, timeout_s=150)

    def deploy(
        self, yaml_text: str, *, name: str = "cortex.yaml", force: bool = False
    ) -> subprocess.CompletedProcess[str]:
        project = self.config_dir.parent / "project"
        project.mkdir(exist_ok=True)
        for app in APPS_DIR.glob("*.py"):
            (project / app.name).write_text(app.read_text())
        path = project / name
        path.write_text(yaml_text)
        return self.cli("deploy", str(path), "-y", *(["--force"] if force else []), check=False)

    def get_api(self, name: str) -> dict[str, Any]:
        result = self.cli_json("get", name)
        return dict(result[0] if isinstance(result, list) else result)

    def wait_live(self, name: str, *, replicas: int, timeout_s: float = 60) -> dict[str, Any]:
        def live() -> dict[str, Any] | None:
            api = self.get_api(name)
            status = api.get("status") or {}
            ok = (
                status.get("ready")
                == replicas
                == status.get("up_to_date")
                == status.get("requested")
            )
            return api if ok else None

        return dict(
            wait_for(live, timeout_s=timeout_s, what=f"{name} live with {replicas} replicas")
        )

    def request(self, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.api_url + path, timeout=30, **kwargs)

    def pids(self) -> dict[str, int]:
        found = {}
        for name in ("operator", "gateway"):
            pid_file = self.state_dir / f"{name}.pid"
            if pid_file.exists():
                found[name] = int(pid_file.read_text().strip())
        return found
