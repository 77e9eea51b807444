"""End to end on a real local cluster: the CLI, the operator, the gateway and replica processes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import httpx
import psutil
import pytest

from tests.integration.cluster import LocalCluster, echo_api_yaml, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_deploy_serve_get_delete(local_cluster: LocalCluster) -> None:
    deployed = local_cluster.deploy(echo_api_yaml("echo", replicas=2))
    assert deployed.returncode == 0, deployed.stderr
    assert "creating echo (RealtimeAPI)" in deployed.stdout

    api = local_cluster.wait_live("echo", replicas=2)
    assert api["endpoint"] == f"{local_cluster.api_url}/echo"

    # Requests are balanced over both replicas; subpath, query and body are forwarded.
    replicas = Counter(local_cluster.request("/echo").json()["replica"] for _ in range(20))
    assert len(replicas) == 2, replicas
    answer = local_cluster.request("/echo/a/b?x=1", method="POST", content=b"hello").json()
    assert (answer["path"], answer["query"], answer["body"]) == ("/a/b", "x=1", "hello")

    # Deploying the same file again changes nothing.
    again = local_cluster.deploy(echo_api_yaml("echo", replicas=2))
    assert "echo (RealtimeAPI) is up to date" in again.stdout

    table = local_cluster.cli("get").stdout
    assert "echo" in table and "2/2" in table

    assert local_cluster.cli("delete", "echo", "-f").returncode == 0
    wait_for(
        lambda: local_cluster.request("/echo").status_code == 404,
        timeout_s=30,
        what="endpoint removed",
    )
    missing = local_cluster.cli("get", "echo", check=False)
    assert missing.returncode == 1 and "echo is not deployed" in missing.stderr


def test_invalid_file_is_rejected_with_a_clear_message(local_cluster: LocalCluster) -> None:
    bad = echo_api_yaml("echo").replace("max_concurrency", "max_concurency")
    result = local_cluster.deploy(bad)
    assert result.returncode == 1
    assert 'key "max_concurency" is not supported' in result.stderr
    assert 'did you mean "max_concurrency"' in result.stderr
    assert local_cluster.cli_json("get") is not None
    assert local_cluster.cli("get", "echo", check=False).returncode == 1


def _load(cluster: LocalCluster, stop: threading.Event, results: Counter[int]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                results[client.get(cluster.api_url + "/echo").status_code] += 1
            except httpx.HTTPError:
                results[-1] += 1


def test_rolling_update_and_refresh_fail_no_request(local_cluster: LocalCluster) -> None:
    assert local_cluster.deploy(echo_api_yaml("echo", replicas=2)).returncode == 0
    local_cluster.wait_live("echo", replicas=2)

    stop, results = threading.Event(), Counter[int]()
    workers = [
        threading.Thread(target=_load, args=(local_cluster, stop, results)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        updated = local_cluster.deploy(echo_api_yaml("echo", replicas=2, version="v2"))
        assert "updating echo (RealtimeAPI)" in updated.stdout, updated.stdout + updated.stderr
        wait_for(
            lambda: local_cluster.request("/echo").json()["version"] == "v2",
            timeout_s=60,
            what="v2 serving",
        )
        local_cluster.wait_live("echo", replicas=2)
        before = {local_cluster.request("/echo").json()["replica"] for _ in range(10)}
        assert local_cluster.cli("refresh", "echo").returncode == 0
        wait_for(
            lambda: (
                not before & {local_cluster.request("/echo").json()["replica"] for _ in range(10)}
            ),
            timeout_s=60,
            what="every replica replaced by refresh",
        )
        local_cluster.wait_live("echo", replicas=2)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert set(results) == {200}, results
    assert results[200] > 50


def _replica_pids(cluster: LocalCluster) -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "environ"]):
        try:
            env = proc.info["environ"] or {}
        except (psutil.Error, KeyError):
            continue
        if env.get("CORTEX_CLI_CONFIG_DIR") == str(cluster.config_dir) and env.get(
            "CORTEX_API_NAME"
        ):
            found.add(proc.info["pid"])
    return found


def test_operator_crash_and_cluster_restart_keep_apis(local_cluster: LocalCluster) -> None:
    assert local_cluster.deploy(echo_api_yaml("echo", replicas=1)).returncode == 0
    local_cluster.wait_live("echo", replicas=1)

    # The gateway keeps serving while the operator is gone.
    os.kill(local_cluster.pids()["operator"], signal.SIGKILL)
    time.sleep(0.5)
    assert local_cluster.request("/echo").status_code == 200

    # `cluster up` brings the operator back; the orphaned replica is replaced, the API survives.
    local_cluster.up()
    local_cluster.wait_live("echo", replicas=1)
    assert local_cluster.request("/echo").status_code == 200

    # down then up: the API comes back with its replicas.
    local_cluster.down()
    wait_for(lambda: not _replica_pids(local_cluster), timeout_s=30, what="no replica process left")
    local_cluster.up()
    local_cluster.wait_live("echo", replicas=1)
    assert local_cluster.request("/echo").status_code == 200


def test_logs_stream_json_lines(local_cluster: LocalCluster) -> None:
    assert local_cluster.deploy(echo_api_yaml("echo", replicas=1)).returncode == 0
    local_cluster.wait_live("echo", replicas=1)
    lines = [
        json.loads(line)
        for line in local_cluster.cli("logs", "echo", "-o", "json").stdout.splitlines()
        if line
    ]
    started = [line for line in lines if line.get("event") == "echo server started"]
    assert started, lines
    assert started[0]["labels"]["apiName"] == "echo"
    assert started[0]["labels"]["container"] == "api"
