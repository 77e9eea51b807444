"""Issue 3 end to end: autoscaling on in-flight requests and traffic splitting, on a real
local cluster (autoscaler tick 1 s, in-flight reports every 1 s; see cluster.LocalCluster)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import LocalCluster, echo_api, to_yaml, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _requested(cluster: LocalCluster, name: str) -> int:
    return int(cluster.get_api(name)["status"]["requested"])


def _hold_load(cluster: LocalCluster, stop: threading.Event, failures: list[int]) -> None:
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            status = client.get(cluster.api_url + "/busy/slow?s=0.5").status_code
            if status != 200:
                failures.append(status)


def test_load_scales_up_to_the_formula_then_back_down(local_cluster: LocalCluster) -> None:
    # max_concurrency 1 and target_in_flight 1: 3 clients keep ~3 requests in flight, so the
    # recommendation is ceil(3 / 1) = 3 replicas (reached in factor-limited steps 1 -> 2 -> 3).
    api = echo_api(
        "busy",
        replicas=1,
        max_concurrency=1,
        autoscaling={
            "max_replicas": 4,
            "window": "10s",
            "upscale_stabilization_period": "0s",
            "downscale_stabilization_period": "5s",
        },
    )
    assert local_cluster.deploy(to_yaml(api)).returncode == 0
    local_cluster.wait_live("busy", replicas=1)

    stop, failures = threading.Event(), []
    clients = [
        threading.Thread(target=_hold_load, args=(local_cluster, stop, failures)) for _ in range(3)
    ]
    for client in clients:
        client.start()
    try:
        wait_for(lambda: _requested(local_cluster, "busy") >= 3, timeout_s=60, what="scale up to 3")
        time.sleep(3)
        assert _requested(local_cluster, "busy") == 3  # no more than the formula predicts
        described = local_cluster.cli_json("describe", "busy")
        autoscaler = (described[0] if isinstance(described, list) else described)["autoscaler"]
        assert autoscaler["recommendation"] == 3
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert failures == []
    wait_for(lambda: _requested(local_cluster, "busy") == 1, timeout_s=60, what="scale back to 1")


def test_splitter_weights_and_shadow(local_cluster: LocalCluster, tmp_path: Path) -> None:
    shadow_log = tmp_path / "shadow-requests.txt"
    apis = [
        echo_api("blue", version="blue"),
        echo_api("green", version="green"),
        echo_api("mirror", env={"APP_RECORD_FILE": str(shadow_log)}),
        {
            "name": "split",
            "kind": "TrafficSplitter",
            "apis": [
                {"name": "blue", "weight": 50},
                {"name": "green", "weight": 50},
                {"name": "mirror", "weight": 100, "shadow": True},
            ],
        },
    ]
    deployed = local_cluster.deploy(to_yaml(*apis))
    assert deployed.returncode == 0, deployed.stderr
    for name in ("blue", "green", "mirror"):
        local_cluster.wait_live(name, replicas=1)

    # The splitter is routed as soon as the gateway has its table.
    wait_for(lambda: local_cluster.request("/split").status_code == 200, timeout_s=30, what="split")
    n = 1000
    with httpx.Client(timeout=30) as client:
        versions = Counter(
            client.get(local_cluster.api_url + "/split").json()["version"] for _ in range(n)
        )
    # Binomial(1000, 0.5): sigma = sqrt(1000 * 0.25) ~ 15.8; 4 sigma ~ 63.
    assert set(versions) == {"blue", "green"}
    assert abs(versions["blue"] - n / 2) < 64, versions

    # The shadow received (fire-and-forget) copies of the requests.
    wait_for(
        lambda: shadow_log.exists() and len(shadow_log.read_text().splitlines()) >= n * 0.9,
        timeout_s=30,
        what="shadow copies",
    )
    # A RealtimeAPI used by a splitter cannot be deleted.
    refused = local_cluster.cli("delete", "blue", "-f", check=False)
    assert refused.returncode == 1 and "split" in refused.stderr


@pytest.mark.parametrize("failure", [{"APP_FAIL_ALL": "1"}, {"APP_DELAY_S": "5"}])
def test_a_failing_or_hanging_shadow_fails_no_caller(
    local_cluster: LocalCluster, failure: dict[str, str]
) -> None:
    apis = [
        echo_api("main"),
        echo_api("bad-shadow", env=failure),
        {
            "name": "split",
            "kind": "TrafficSplitter",
            "apis": [
                {"name": "main", "weight": 100},
                {"name": "bad-shadow", "weight": 100, "shadow": True},
            ],
        },
    ]
    assert local_cluster.deploy(to_yaml(*apis)).returncode == 0
    local_cluster.wait_live("main", replicas=1)
    local_cluster.wait_live("bad-shadow", replicas=1)
    wait_for(lambda: local_cluster.request("/split").status_code == 200, timeout_s=30, what="split")
    with httpx.Client(timeout=5) as client:
        for _ in range(50):
            started = time.monotonic()
            response = client.get(local_cluster.api_url + "/split")
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0


def test_scale_to_zero_and_wake_on_the_next_request(local_cluster: LocalCluster) -> None:
    api = echo_api(
        "sleepy",
        replicas=0,
        autoscaling={
            "max_replicas": 2,
            "window": "10s",
            "upscale_stabilization_period": "0s",
            "downscale_stabilization_period": "0s",
        },
    )
    assert local_cluster.deploy(to_yaml(api)).returncode == 0
    wait_for(
        lambda: local_cluster.get_api("sleepy")["status"].get("status") == "scaled to zero",
        timeout_s=30,
        what="scaled to zero",
    )
    # At zero the gateway holds the request, wakes the API and forwards it once a replica is Ready.
    response = local_cluster.request("/sleepy/hello")
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/hello"
    assert _requested(local_cluster, "sleepy") == 1

    # Idle again: the averaged in-flight decays over the 10 s window and the API goes back to 0.
    wait_for(lambda: _requested(local_cluster, "sleepy") == 0, timeout_s=60, what="back to zero")
    wait_for(
        lambda: local_cluster.get_api("sleepy")["status"].get("status") == "scaled to zero",
        timeout_s=30,
        what="no replica left",
    )
    assert local_cluster.request("/sleepy").status_code == 200
