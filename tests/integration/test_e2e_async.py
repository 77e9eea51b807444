"""Issue 4 end to end: AsyncAPI submissions through the gateway, the durable queue, the
dequeuer sidecar in each replica and stored results, on a real local cluster (visibility
timeout 3 s; see cluster.LocalCluster)."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.cluster import LocalCluster, echo_api, to_yaml, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def async_api(name: str, **kwargs: Any) -> dict[str, Any]:
    api = echo_api(name, kind="AsyncAPI", **kwargs)
    del api["pod"]["max_queue_length"]  # a RealtimeAPI-only field
    return api


def submit(cluster: LocalCluster, name: str, body: bytes) -> str:
    response = cluster.request(f"/{name}", method="POST", content=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def poll(cluster: LocalCluster, name: str, request_id: str) -> dict[str, Any]:
    response = cluster.request(f"/{name}/{request_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_done(
    cluster: LocalCluster, name: str, ids: list[str], *, timeout_s: float
) -> dict[str, Any]:
    done: dict[str, Any] = {}

    def all_done() -> bool:
        for request_id in [i for i in ids if i not in done]:
            answer = poll(cluster, name, request_id)
            if answer["status"] in ("completed", "failed"):
                done[request_id] = answer
        return len(done) == len(ids)

    wait_for(all_done, timeout_s=timeout_s, what=f"{len(ids)} async requests done", period_s=0.5)
    return done


def test_500_submissions_all_complete_with_their_results(local_cluster: LocalCluster) -> None:
    assert local_cluster.deploy(to_yaml(async_api("echo-async", replicas=2))).returncode == 0
    local_cluster.wait_live("echo-async", replicas=2)

    with ThreadPoolExecutor(8) as pool:
        ids = list(
            pool.map(lambda i: submit(local_cluster, "echo-async", b'{"n": %d}' % i), range(500))
        )
    assert len(set(ids)) == 500
    done = wait_done(local_cluster, "echo-async", ids, timeout_s=120)
    for i, request_id in enumerate(ids):
        answer = done[request_id]
        assert answer["status"] == "completed", answer
        assert answer["result"]["body"] == f'{{"n": {i}}}'
        assert answer["result"]["method"] == "POST"
    assert local_cluster.request("/echo-async/unknown-id").status_code == 404
    table = local_cluster.cli("get").stdout
    assert "echo-async" in table


@pytest.mark.parametrize(
    ("env", "reason"),
    [({"APP_FAIL_ALL": "1"}, "500"), ({"APP_PLAIN_TEXT": "1"}, "JSON")],
)
def test_a_bad_user_answer_fails_the_request_with_the_reason(
    local_cluster: LocalCluster, env: dict[str, str], reason: str
) -> None:
    assert local_cluster.deploy(to_yaml(async_api("bad-async", env=env))).returncode == 0
    local_cluster.wait_live("bad-async", replicas=1)
    request_id = submit(local_cluster, "bad-async", b"{}")
    answer = wait_done(local_cluster, "bad-async", [request_id], timeout_s=30)[request_id]
    assert answer["status"] == "failed"
    assert reason in answer["reason"], answer


def _dequeuer_pids(cluster: LocalCluster, api_name: str) -> list[int]:
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            env = proc.info["environ"] or {}
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.Error, KeyError):
            continue
        if (
            env.get("CORTEX_CLI_CONFIG_DIR") == str(cluster.config_dir)
            and env.get("CORTEX_API_NAME") == api_name
            and "cortex.dataplane.dequeuer" in cmdline
        ):
            pids.append(proc.info["pid"])
    return pids


def test_a_worker_killed_mid_request_has_it_delivered_again(local_cluster: LocalCluster) -> None:
    api = async_api("slow-async", env={"APP_DELAY_S": "2"})
    assert local_cluster.deploy(to_yaml(api)).returncode == 0
    local_cluster.wait_live("slow-async", replicas=1)
    request_id = submit(local_cluster, "slow-async", b'{"x": 1}')
    wait_for(
        lambda: poll(local_cluster, "slow-async", request_id)["status"] == "in_progress",
        timeout_s=30,
        what="request in progress",
    )
    (pid,) = _dequeuer_pids(local_cluster, "slow-async")
    os.kill(pid, signal.SIGKILL)
    # The container restarts; after the 3 s visibility timeout the message is delivered again.
    answer = wait_done(local_cluster, "slow-async", [request_id], timeout_s=60)[request_id]
    assert answer["status"] == "completed"
    assert answer["result"]["body"] == '{"x": 1}'


def test_queued_requests_survive_a_cluster_restart(local_cluster: LocalCluster) -> None:
    api = async_api("queued-async", env={"APP_DELAY_S": "0.5"}, max_concurrency=1)
    assert local_cluster.deploy(to_yaml(api)).returncode == 0
    local_cluster.wait_live("queued-async", replicas=1)
    ids = [submit(local_cluster, "queued-async", b'{"i": %d}' % i) for i in range(15)]
    local_cluster.down()
    time.sleep(0.5)
    local_cluster.up()
    done = wait_done(local_cluster, "queued-async", ids, timeout_s=90)
    assert {answer["status"] for answer in done.values()} == {"completed"}


def test_delete_keeps_results_only_with_keep_cache(local_cluster: LocalCluster) -> None:
    assert local_cluster.deploy(to_yaml(async_api("cached"))).returncode == 0
    local_cluster.wait_live("cached", replicas=1)
    request_id = submit(local_cluster, "cached", b"{}")
    wait_done(local_cluster, "cached", [request_id], timeout_s=30)
    workloads = local_cluster.state_dir / "storage" / "workloads" / "cached"
    assert (workloads / request_id).is_dir()
    local_cluster.cli("delete", "cached", "-f", "--keep-cache")
    assert (workloads / request_id).is_dir()
    assert local_cluster.deploy(to_yaml(async_api("cached"))).returncode == 0
    local_cluster.cli("delete", "cached", "-f")
    wait_for(lambda: not workloads.exists(), timeout_s=10, what="stored results removed")
    with httpx.Client() as client:
        assert client.get(local_cluster.api_url + "/cached").status_code == 404
