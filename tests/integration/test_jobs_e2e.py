"""BatchAPI and TaskAPI jobs on a real local cluster (operator, gateway, local backend,
dequeuer, SQLite queues), with short job timers.

One cluster serves the whole module: a BatchAPI whose server records every item it gets
(tests/integration/apps/jobs_batch_server.py) and a TaskAPI whose program does what the job's
config says (apps/jobs_task.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from cortex.client.python_client import Client
from cortex.operator.jobs.models import JobStatus
from tests.integration.cluster import LocalCluster, to_yaml, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENDED = {status.value for status in JobStatus if status.completed}


class JobCluster(LocalCluster):
    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "CORTEX_JOB_PERIOD_S": "0.2",
            "CORTEX_JOB_RECEIVE_WAIT_S": "0.2",
            "CORTEX_JOB_EMPTY_CHECKS": "2",
            "CORTEX_JOB_METRICS_PERIOD_S": "0.2",
            "CORTEX_JOB_VISIBILITY_TIMEOUT_S": "3",
        }


def apis(out: Path) -> str:
    def container(name: str, script: str, **compute: str) -> dict[str, Any]:
        return {
            "name": name,
            "image": "example.com/jobs:latest",
            "command": [sys.executable, script],
            "env": {"OUT_DIR": str(out)},
            "compute": {"cpu": "50m", **compute},
        }

    batch = {
        "name": "sorter",
        "kind": "BatchAPI",
        "pod": {"containers": [container("api", "jobs_batch_server.py")]},
    }
    task = {
        "name": "runner",
        "kind": "TaskAPI",
        "pod": {"containers": [container("task", "jobs_task.py", mem="150Mi")]},
    }
    return to_yaml(batch, task)


class Env:
    def __init__(self, cluster: JobCluster, out: Path) -> None:
        self.cluster = cluster
        self.out = out
        token = json.loads((cluster.state_dir / "cluster.json").read_text())["token"]
        endpoint = f"http://127.0.0.1:{cluster.operator_port}"
        self.client = Client({"name": "local", "operator_endpoint": endpoint, "token": token})

    def submit(self, api: str, body: dict[str, Any]) -> str:
        """Through the gateway, at the API's endpoint."""
        r = self.cluster.request(f"/{api}", "POST", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["job_id"])

    def wait_ended(self, api: str, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            body = self.client.get_job(api, job_id)
            return body if body["job_status"]["status"] in ENDED else None

        return dict(wait_for(ended, timeout_s=timeout_s, what=f"job {job_id} ended", period_s=0.2))

    def items(self, job_id: str) -> list[int]:
        found: list[int] = []
        for path in (self.out / job_id).glob("items-*.txt"):
            found.extend(int(line) for line in path.read_text().split())
        return found


def job_processes(job_id: str) -> list[psutil.Process]:
    procs = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if job_id in proc.environ().get("CORTEX_JOB_SPEC_PATH", ""):
                procs.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return procs


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("jobs")
    out = root / "out"
    out.mkdir()
    cluster = JobCluster(config_dir=root / "cortex-config")
    cluster.up()
    try:
        result = cluster.deploy(apis(out))
        assert result.returncode == 0, result.stderr
        wait_for(
            lambda: cluster.request("/sorter", "GET").status_code == 400,
            timeout_s=20,
            what="the gateway routing /sorter",
        )
        yield Env(cluster, out)
    finally:
        cluster.down()


def test_ten_thousand_items_three_workers(env: Env) -> None:
    body = {"workers": 3, "item_list": {"items": list(range(10_000)), "batch_size": 10}}
    job_id = env.submit("sorter", body)
    done = env.wait_ended("sorter", job_id)
    status = done["job_status"]
    assert status["status"] == "succeeded", status
    assert status["total_batch_count"] == 1000
    assert done["metrics"]["succeeded"] == 1000 and done["metrics"]["failed"] == 0
    assert done["metrics"]["average_time_per_batch"] > 0
    assert set(env.items(job_id)) == set(range(10_000))
    assert (env.out / job_id / "complete.txt").read_text() == f"{job_id}\n"
    wait_for(lambda: not job_processes(job_id), timeout_s=10, what="workers gone")
    shown = env.cluster.cli("get", "sorter", job_id).stdout
    assert "succeeded" in shown and "1000" in shown
    listed = env.cluster.cli("get", "sorter").stdout
    assert job_id in listed


def test_failing_batches_are_dead_lettered(env: Env) -> None:
    body = {
        "workers": 2,
        "item_list": {"items": list(range(100)), "batch_size": 10},
        "dead_letter_queue": {"max_receive_count": 2},
        "config": {"fail_items": [5, 42]},
    }
    job_id = env.submit("sorter", body)
    done = env.wait_ended("sorter", job_id)
    assert done["job_status"]["status"] == "completed_with_failures"
    assert done["metrics"]["failed"] == 2 and done["metrics"]["succeeded"] == 8
    letters = sorted(d["batch"] for d in done["dead_letter_batches"])
    assert letters == [list(range(10)), list(range(40, 50))]
    assert {d["receive_count"] for d in done["dead_letter_batches"]} == {2}
    assert sorted(env.items(job_id)) == [i for i in range(100) if i // 10 not in (0, 4)]


def test_delimited_files_with_includes_and_excludes(env: Env, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "part").mkdir(parents=True)
    (data / "a.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(0, 7)))
    (data / "part" / "b.jsonl").write_text(" ".join(json.dumps({"i": i}) for i in range(7, 12)))
    (data / "part" / "old.jsonl").write_text('{"i": 999}\n')
    (data / "notes.txt").write_text('{"i": 998}\n')
    source = {
        "s3_paths": [f"{data}/"],
        "includes": ["**.jsonl"],
        "excludes": ["**/old.*"],
        "batch_size": 5,
    }
    body = {"workers": 2, "delimited_files": source}
    dry = env.cluster.request("/sorter?dryRun=true", "POST", json=body)
    assert dry.text == f"{data}/a.jsonl\n{data}/part/b.jsonl\nvalidations passed\n"
    job_id = env.submit("sorter", body)
    done = env.wait_ended("sorter", job_id)
    assert done["job_status"]["status"] == "succeeded"
    assert done["job_status"]["total_batch_count"] == 3  # 12 items by 5, across the two files
    assert sorted(env.items(job_id)) == list(range(12))


def test_bad_data_fails_while_enqueuing(env: Env, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"i": 1}\n{"i": \n')
    body = {"workers": 1, "delimited_files": {"s3_paths": [str(tmp_path)], "batch_size": 1}}
    job_id = env.submit("sorter", body)
    done = env.wait_ended("sorter", job_id, timeout_s=20)
    assert done["job_status"]["status"] == "enqueue_failed"
    assert "bad.jsonl: line 2" in done["job_status"]["message"]


def test_timeout_stop_and_killed_worker(env: Env) -> None:
    slow = {"item_list": {"items": list(range(60)), "batch_size": 1}, "config": {"sleep_s": 0.5}}
    timed = env.submit("sorter", {"workers": 1, "timeout": 3, **slow})
    stopped = env.submit("sorter", {"workers": 1, **slow})
    killed = env.submit(
        "sorter",
        {
            "workers": 2,
            "item_list": {"items": list(range(20)), "batch_size": 2},
            "config": {"sleep_s": 0.3},
        },
    )
    wait_for(lambda: env.items(stopped), timeout_s=30, what="the job to be running")
    assert env.client.stop_job("sorter", stopped) == {"message": f"stopped job {stopped}"}
    # kill one worker's dequeuer in the middle of a batch: the batch's lease lapses and another
    # worker gets it (the user server recorded nothing: it records after its 0.3 s sleep)
    wait_for(lambda: env.items(killed), timeout_s=30, what="the job to be running")
    victim = wait_for(
        lambda: [p for p in job_processes(killed) if "dequeuer" in " ".join(p.cmdline())],
        timeout_s=30,
        what="the workers' dequeuers",
    )[0]
    os.kill(victim.pid, signal.SIGKILL)
    assert env.wait_ended("sorter", stopped)["job_status"]["status"] == "stopped"
    wait_for(lambda: not job_processes(stopped), timeout_s=15, what="stopped workers gone")
    assert env.wait_ended("sorter", timed)["job_status"]["status"] == "timed_out"
    wait_for(lambda: not job_processes(timed), timeout_s=15, what="timed-out workers gone")
    done = env.wait_ended("sorter", killed)
    assert done["job_status"]["status"] == "succeeded", done
    assert set(env.items(killed)) == set(range(20))


def test_tasks(env: Env) -> None:
    ok = env.submit("runner", {"config": {"mode": "ok", "n": 1}})
    fail = env.submit("runner", {"config": {"mode": "fail"}})
    oom = env.submit("runner", {"config": {"mode": "oom"}})
    late = env.submit("runner", {"timeout": 2, "config": {"mode": "sleep"}})
    stop = env.client.submit_job("runner", {"config": {"mode": "sleep"}})["job_id"]
    wait_for(lambda: job_processes(stop), timeout_s=20, what="the task to run")
    assert env.cluster.cli("delete", "runner", stop).stdout.strip() == f"stopped job {stop}"
    expected = {
        ok: "succeeded",
        fail: "worker_error",
        oom: "worker_oom",
        late: "timed_out",
        stop: "stopped",
    }
    for job_id, status in expected.items():
        assert env.wait_ended("runner", job_id)["job_status"]["status"] == status, job_id
    assert json.loads((env.out / f"{ok}.done").read_text()) == {"mode": "ok", "n": 1}
    wait_for(
        lambda: not (job_processes(late) or job_processes(stop)), timeout_s=15, what="tasks gone"
    )
    logs = env.cluster.cli("logs", "runner", ok).stdout
    assert f"task {ok} mode ok" in logs
    shown = env.cluster.cli("get", "runner", fail).stdout
    assert "worker error" in shown
    with pytest.raises(Exception, match="not in progress"):
        env.client.stop_job("runner", ok)
    r = httpx.get(f"{env.cluster.api_url}/runner", params={"jobID": ok}, timeout=10)
    assert r.json()["job_status"]["status"] == "succeeded"


def test_operator_restart_lets_a_batch_job_go_on(env: Env) -> None:
    """Last in the module: restarts the cluster. The old operator's workers stop with it; the
    new one starts new workers, which go on with the batches still queued."""
    body = {
        "workers": 1,
        "item_list": {"items": list(range(40)), "batch_size": 1},
        "config": {"sleep_s": 0.1},
    }
    job_id = env.submit("sorter", body)
    wait_for(lambda: len(env.items(job_id)) >= 5, timeout_s=30, what="some batches done")
    env.cluster.down()
    env.cluster.up()
    done = env.wait_ended("sorter", job_id)
    # A batch whose user server was stopped under it (shutdown stops every container at once)
    # is released by its stopping dequeuer, not failed: the new workers do it again.
    assert done["job_status"]["status"] == "succeeded", done
    assert done["metrics"]["failed"] == 0
    assert set(env.items(job_id)) == set(range(40))
