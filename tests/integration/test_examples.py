"""The examples (examples/async, examples/batch, examples/task) deployed as they are, from their
own folders, on one real local cluster, and checked end to end: an async request submitted and
polled to its correct result; a batch job over the checked-in flowers.jsonl that classifies
every line and writes its summary; a training task whose model file loads and predicts.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cortex.operator.jobs.models import JobStatus
from tests.integration.cluster import LocalCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENDED = {status.value for status in JobStatus if status.completed}


class ExampleCluster(LocalCluster):
    """Short job timers, as in test_jobs_e2e, so a job's end is seen within a fraction of a
    second."""

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "CORTEX_JOB_PERIOD_S": "0.2",
            "CORTEX_JOB_RECEIVE_WAIT_S": "0.2",
            "CORTEX_JOB_EMPTY_CHECKS": "2",
            "CORTEX_JOB_METRICS_PERIOD_S": "0.2",
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleCluster]:
    cluster = ExampleCluster(config_dir=tmp_path_factory.mktemp("examples") / "cortex-config")
    cluster.up()
    try:
        for name in ("async", "batch", "task"):
            cluster.cli("deploy", str(EXAMPLES / name / "cortex.yaml"), "-y")
        yield cluster
    finally:
        cluster.down()


def submit_job(cluster: LocalCluster, api: str, body: dict[str, Any]) -> str:
    def accepted() -> str | None:
        r = cluster.request(f"/{api}", "POST", json=body)
        if r.status_code in (404, 503):  # the gateway has not picked the route up yet
            return None
        assert r.status_code == 200, r.text
        return str(r.json()["job_id"])

    return str(wait_for(accepted, timeout_s=20, what=f"{api} accepting a job", period_s=0.2))


def wait_job(cluster: LocalCluster, api: str, job_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        r = cluster.request(f"/{api}", "GET", params={"jobID": job_id})
        body: dict[str, Any] = r.json()
        return body if body["job_status"]["status"] in ENDED else None

    return dict(wait_for(ended, timeout_s=45, what=f"job {job_id} ended", period_s=0.2))


def test_async_digits(cluster: ExampleCluster) -> None:
    sample = json.loads((EXAMPLES / "async" / "sample.json").read_text())

    def submitted() -> str | None:
        r = cluster.request("/digits", "POST", json=sample)
        if r.status_code in (404, 503):
            return None
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    request_id = wait_for(submitted, timeout_s=20, what="/digits accepting", period_s=0.2)

    def completed() -> dict[str, Any] | None:
        body: dict[str, Any] = cluster.request(f"/digits/{request_id}").json()
        assert body["status"] in ("in_queue", "in_progress", "completed"), body
        return body if body["status"] == "completed" else None

    done = wait_for(completed, timeout_s=45, what="the async request completed", period_s=0.2)
    assert done["id"] == request_id
    assert done["result"]["digit"] == 5  # sample.json is digit 1700 of the data set, a 5
    assert len(done["result"]["probabilities"]) == 10
    assert done["timestamp"]


def test_task_trains_and_batch_classifies(cluster: ExampleCluster, tmp_path: Path) -> None:
    """The task writes a model; a batch job over flowers.jsonl classifies with that model."""
    models = tmp_path / "models"
    task_id = submit_job(cluster, "iris-train", {"config": {"output_dir": str(models)}})
    results = tmp_path / "results"
    flowers = EXAMPLES / "batch" / "flowers.jsonl"
    batch_body: dict[str, Any] = {
        "workers": 2,
        "delimited_files": {"s3_paths": [str(flowers)], "batch_size": 16},
        "config": {"results_dir": str(results)},
    }
    plain_id = submit_job(cluster, "iris-batch", batch_body)

    task = wait_job(cluster, "iris-train", task_id)
    assert task["job_status"]["status"] == "succeeded", task
    with (models / task_id / "model.pkl").open("rb") as f:
        saved = pickle.load(f)
    assert saved["labels"] == ["setosa", "versicolor", "virginica"]
    assert list(saved["model"].predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) == [0, 2]
    assert json.loads((models / task_id / "metrics.json").read_text())["test_accuracy"] > 0.9

    model_path = str(models / task_id / "model.pkl")
    trained_id = submit_job(
        cluster,
        "iris-batch",
        {**batch_body, "workers": 1, "config": {**batch_body["config"], "model_path": model_path}},
    )
    expected = [json.loads(line)["id"] for line in flowers.read_text().splitlines()]
    for job_id in (plain_id, trained_id):
        done = wait_job(cluster, "iris-batch", job_id)
        status = done["job_status"]
        assert status["status"] == "succeeded", done
        assert status["total_batch_count"] == 10  # 150 lines by 16
        assert done["metrics"]["succeeded"] == 10 and done["metrics"]["failed"] == 0
        assert_classified(results / job_id, expected)
    shown = cluster.cli("get", "iris-batch", plain_id).stdout
    assert "succeeded" in shown


def assert_classified(folder: Path, expected_ids: list[int]) -> None:
    predictions = [
        json.loads(line)
        for part in folder.glob("batch-*.jsonl")
        for line in part.read_text().splitlines()
    ]
    assert sorted(p["id"] for p in predictions) == sorted(expected_ids)
    labels = {p["id"]: p["label"] for p in predictions}
    # iris rows 0-49 are setosa; the model gets every one of them right
    assert all(labels[i] == "setosa" for i in range(50))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["classified"] == len(expected_ids)
    assert sum(summary["labels"].values()) == len(expected_ids)
    assert set(summary["labels"]) == {"setosa", "versicolor", "virginica"}
