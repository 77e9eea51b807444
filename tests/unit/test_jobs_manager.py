"""The job manager stepped against the FakeBackend, a real SQLite broker and a local store.

The test plays the workers: it moves replicas through their states and writes the per-worker
metrics files the dequeuer would write.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cortex.backends.base import ReplicaStatus, RestartPolicy
from cortex.backends.fake import FakeBackend
from cortex.errors import InvalidRequestError, NotDeployedError, NotFoundError
from cortex.operator.jobs.job_store import JobStore
from cortex.operator.jobs.manager import JobManager
from cortex.operator.jobs.models import JobRecord, JobStatus
from cortex.operator.jobs.workers import JOB_SPEC_ENV, Infra
from cortex.operator.settings import JobSettings
from cortex.operator.store import ApiRecord, StateStore
from cortex.queue import open_broker
from cortex.queue.names import batch_completion_queue_name, batch_dead_letter_queue_name
from cortex.spec.kinds import Kind
from cortex.spec.parse import parse_api
from cortex.spec.resolved import api_id, pod_id, spec_id
from cortex.storage import open_store, paths


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


BATCH = {
    "name": "classify",
    "kind": "BatchAPI",
    "pod": {"containers": [{"name": "api", "image": "x", "command": ["python", "s.py"]}]},
}
TASK = {
    "name": "train",
    "kind": "TaskAPI",
    "pod": {"containers": [{"name": "api", "image": "x", "command": ["python", "t.py"]}]},
}


def record(item: dict[str, Any]) -> ApiRecord:
    api = parse_api(item, file_name="cortex.yaml", index=0)
    return ApiRecord(
        name=api.name,
        kind=str(api.kind),
        api_id=api_id(spec_id(api), "", time.time_ns()),
        spec_id=spec_id(api),
        pod_id=pod_id(api),
        deployment_id="",
        initial_deployment_time_ns=1,
        last_updated=1.0,
        submitted=item,
        file_name="cortex.yaml",
        project_dir="/tmp",
        requested=0,
    )


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.clock = Clock()
        self.store = StateStore(tmp_path / "state.db")
        self.backend = FakeBackend()
        self.queue_url = f"sqlite:///{tmp_path}/queues.db"
        self.broker = open_broker(self.queue_url, poll_interval_s=0.01)
        self.objects = open_store(str(tmp_path / "storage"))
        self.store.put_api(record(BATCH))
        self.store.put_api(record(TASK))
        self.manager = self.new_manager()

    def new_manager(self) -> JobManager:
        return JobManager(
            self.store,
            JobStore(self.tmp / "state.db"),
            self.backend,
            self.broker,
            self.objects,
            infra=Infra(self.queue_url, str(self.tmp / "storage"), self.tmp),
            api_url="http://127.0.0.1:9",
            settings=JobSettings(visibility_timeout_s=5),
            clock=self.clock,
        )

    async def submit(self, body: dict[str, Any], kind: Kind = Kind.BATCH_API) -> str:
        name = "classify" if kind == Kind.BATCH_API else "train"
        spec = await self.manager.submit(kind, name, json.dumps(body).encode())
        assert isinstance(spec, dict)
        return str(spec["job_id"])

    def job(self, job_id: str, api: str = "classify") -> JobRecord:
        job = self.manager.jobs.get(api, job_id)
        assert job is not None
        return job

    async def until_running(self, job_id: str) -> JobRecord:
        for _ in range(500):
            job = self.job(job_id)
            if job.status != JobStatus.ENQUEUING:
                return job
            await asyncio.sleep(0.01)
        raise AssertionError("still enqueuing")

    def workers(self, job_id: str) -> list[Any]:
        return [r for r in self.backend.list_replicas() if r.job_id == job_id]

    def end_workers(self, job_id: str, *statuses: ReplicaStatus) -> None:
        for replica, status in zip(self.workers(job_id), statuses, strict=True):
            self.backend.set_status(replica.replica_id, status)

    def write_metrics(self, job_id: str, worker: str, ok: int, failed: int, t: float) -> None:
        key = paths.job_worker_metrics_key("classify", job_id, worker)
        self.objects.put_json(key, {"succeeded": ok, "failed": failed, "time_sum_s": t})


@pytest.fixture
async def h(tmp_path: Path):
    harness = Harness(tmp_path)
    yield harness
    await harness.manager.close()
    await harness.broker.close()
    harness.store.close()


def items(n: int, batch_size: int = 10, workers: int = 2, **extra: Any) -> dict[str, Any]:
    body = {"workers": workers, "item_list": {"items": list(range(n)), "batch_size": batch_size}}
    return {**body, **extra}


async def test_batch_job_enqueues_then_starts_workers(h: Harness) -> None:
    job_id = await h.submit(items(95, config={"k": 1}))
    job = await h.until_running(job_id)
    assert job.status == JobStatus.RUNNING and job.total_batch_count == 10
    counts = await h.broker.counts(job.queue_name)
    assert counts.visible == 10  # 9 full batches and one of 5
    completion = batch_completion_queue_name("classify", job_id)
    assert (await h.broker.counts(completion)).visible == 1
    workers = h.workers(job_id)
    assert len(workers) == 2
    template = h.backend.template_of(workers[0].replica_id)
    assert template.restart_policy == RestartPolicy.NEVER and template.job_id == job_id
    assert [c.name for c in template.pod.containers] == ["dequeuer", "api"]
    env = template.pod.containers[0].env
    assert env["CORTEX_DEQUEUER_QUEUE_NAME"] == job.queue_name
    assert env["CORTEX_DEQUEUER_JOB_ID"] == job_id
    spec = json.loads(Path(template.extra_env[JOB_SPEC_ENV]).read_text())
    assert spec["job_id"] == job_id and spec["total_batch_count"] == 10
    assert spec["config"] == {"k": 1} and spec["kind"] == "BatchAPI"
    assert not h.objects.exists(paths.job_payload_key("classify", job_id))


async def test_batches_keep_item_order(h: Harness) -> None:
    job_id = await h.submit(items(25, batch_size=10))
    job = await h.until_running(job_id)
    got = await h.broker.receive(job.queue_name, max_messages=10)
    assert [json.loads(m.body) for m in got] == [
        list(range(10)),
        list(range(10, 20)),
        list(range(20, 25)),
    ]


async def test_all_workers_done_is_succeeded_with_metrics(h: Harness) -> None:
    job_id = await h.submit(items(40, batch_size=10))
    job = await h.until_running(job_id)
    await h.manager.step()
    status = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert status["job_status"]["status"] == "running"
    assert status["job_status"]["worker_counts"] == {"creating": 2}
    assert status["job_status"]["batches_in_queue"] == 4
    h.write_metrics(job_id, "a", 3, 0, 0.3)
    h.write_metrics(job_id, "b", 1, 0, 0.1)
    h.end_workers(job_id, ReplicaStatus.SUCCEEDED, ReplicaStatus.SUCCEEDED)
    await h.manager.step()
    done = h.job(job_id)
    assert done.status == JobStatus.SUCCEEDED and done.end_time is not None
    body = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert body["metrics"] == {"succeeded": 4, "failed": 0, "average_time_per_batch": 0.1}
    assert body["job_status"]["status"] == "succeeded"
    assert "worker_counts" not in body["job_status"]
    assert body["endpoint"] == f"http://127.0.0.1:9/classify?jobID={job_id}"
    assert not await h.broker.queue_exists(job.queue_name)
    assert h.objects.get_json(paths.job_metrics_key("classify", job_id))["succeeded"] == 4


async def test_failed_batches_make_completed_with_failures(h: Harness) -> None:
    job_id = await h.submit(items(20, workers=1))
    await h.until_running(job_id)
    h.write_metrics(job_id, "a", 1, 2, 0.5)
    h.end_workers(job_id, ReplicaStatus.SUCCEEDED)
    await h.manager.step()
    assert h.job(job_id).status == JobStatus.COMPLETED_WITH_FAILURES


@pytest.mark.parametrize(
    ("ends", "expected"),
    [
        ((ReplicaStatus.FAILED, ReplicaStatus.FAILED), JobStatus.WORKER_ERROR),
        ((ReplicaStatus.FAILED, ReplicaStatus.KILLED_OOM), JobStatus.WORKER_OOM),
        # a crashed worker does not fail the job: the other one drained the queue
        ((ReplicaStatus.KILLED, ReplicaStatus.SUCCEEDED), JobStatus.SUCCEEDED),
    ],
)
async def test_worker_endings(
    h: Harness, ends: tuple[ReplicaStatus, ...], expected: JobStatus
) -> None:
    job_id = await h.submit(items(20))
    await h.until_running(job_id)
    h.end_workers(job_id, *ends)
    await h.manager.step()
    assert h.job(job_id).status == expected


async def test_one_worker_failed_while_another_runs_keeps_running(h: Harness) -> None:
    job_id = await h.submit(items(20))
    await h.until_running(job_id)
    first = h.workers(job_id)[0]
    h.backend.set_status(first.replica_id, ReplicaStatus.FAILED)
    await h.manager.step()
    assert h.job(job_id).status == JobStatus.RUNNING


async def test_timeout_counts_from_submission_and_stops_workers(h: Harness) -> None:
    job_id = await h.submit(items(20, timeout=30))
    await h.until_running(job_id)
    h.clock.now += 29
    await h.manager.step()
    assert h.job(job_id).status == JobStatus.RUNNING
    h.clock.now += 1
    await h.manager.step()
    assert h.job(job_id).status == JobStatus.TIMED_OUT
    assert all(r.status == ReplicaStatus.TERMINATING for r in h.workers(job_id))


async def test_stop(h: Harness) -> None:
    job_id = await h.submit(items(20))
    job = await h.until_running(job_id)
    answer = await h.manager.stop_job(Kind.BATCH_API, "classify", job_id)
    assert answer == {"message": f"stopped job {job_id}"}
    assert h.job(job_id).status == JobStatus.STOPPED
    assert len(h.backend.deleted) == 2
    assert not await h.broker.queue_exists(job.queue_name)
    with pytest.raises(InvalidRequestError, match="not in progress"):
        await h.manager.stop_job(Kind.BATCH_API, "classify", job_id)


async def test_workers_of_ended_jobs_are_removed(h: Harness) -> None:
    job_id = await h.submit(items(20))
    await h.until_running(job_id)
    h.end_workers(job_id, ReplicaStatus.SUCCEEDED, ReplicaStatus.SUCCEEDED)
    await h.manager.step()
    assert {r.status for r in h.workers(job_id)} == {ReplicaStatus.TERMINATING}


async def test_deleted_api_stops_its_jobs(h: Harness) -> None:
    job_id = await h.submit(items(20))
    await h.until_running(job_id)
    h.store.delete_api("classify")
    await h.manager.step()
    assert h.job(job_id).status == JobStatus.STOPPED


async def test_bad_data_fails_while_enqueuing(h: Harness, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text('{"x": 1}\n{"x": \n')
    body = {
        "workers": 1,
        "delimited_files": {"s3_paths": [str(data) + "/"], "batch_size": 2},
    }
    job_id = await h.submit(body)
    job = await h.until_running(job_id)
    assert job.status == JobStatus.ENQUEUE_FAILED
    assert "a.jsonl: line 2" in job.message
    assert h.workers(job_id) == []
    status = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert status["job_status"]["message"] == job.message


async def test_oversized_batch_fails_while_enqueuing(h: Harness) -> None:
    body = items(0)
    body["item_list"] = {"items": ["x" * 200_000, "y" * 200_000], "batch_size": 2}
    job = await h.until_running(await h.submit(body))
    assert job.status == JobStatus.ENQUEUE_FAILED
    assert job.message.startswith("items with index between 0 to 1: cannot enqueue message")


async def test_restart_reenqueues_and_relaunches(h: Harness) -> None:
    job_id = await h.submit(items(30))
    job = await h.until_running(job_id)
    # an operator that died while enqueuing: the job row says enqueuing, some batches were sent
    h.manager.jobs.put(job.replace(status=JobStatus.ENQUEUING, total_batch_count=0))
    h.objects.put_json(paths.job_payload_key("classify", job_id), items(30))
    for replica in h.workers(job_id):
        h.backend.delete_replica(replica.replica_id)
    h.backend.finish_terminations()
    await h.manager.close()
    await h.broker.close()
    h.broker = open_broker(h.queue_url, poll_interval_s=0.01)
    h.manager = h.new_manager()
    await h.manager.step()
    job = await h.until_running(job_id)
    assert (await h.broker.counts(job.queue_name)).visible == 3  # purged, then sent again
    assert len(h.workers(job_id)) == 2
    # and a running job whose workers vanished with the old operator gets new ones
    for replica in h.workers(job_id):
        h.backend.delete_replica(replica.replica_id)
    h.backend.finish_terminations()
    h.manager = h.new_manager()
    await h.manager.step()
    assert len(h.workers(job_id)) == 2


async def test_dead_letters_are_listed_then_kept(h: Harness) -> None:
    job_id = await h.submit(items(20, workers=1, dead_letter_queue={"max_receive_count": 1}))
    job = await h.until_running(job_id)
    first = (await h.broker.receive(job.queue_name))[0]
    await h.broker.release(job.queue_name, first.receipt)
    await h.broker.receive(job.queue_name)  # moves the released batch to the dead-letter queue
    dlq = batch_dead_letter_queue_name("classify", job_id)
    assert (await h.broker.counts(dlq)).visible == 1
    body = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert [d["batch"] for d in body["dead_letter_batches"]] == [list(range(10))]
    await h.manager.stop_job(Kind.BATCH_API, "classify", job_id)
    body = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert [d["batch"] for d in body["dead_letter_batches"]] == [list(range(10))]
    assert body["dead_letter_batches"][0]["receive_count"] == 1


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (ReplicaStatus.SUCCEEDED, JobStatus.SUCCEEDED),
        (ReplicaStatus.FAILED, JobStatus.WORKER_ERROR),
        (ReplicaStatus.KILLED_OOM, JobStatus.WORKER_OOM),
    ],
)
async def test_task_endings(h: Harness, end: ReplicaStatus, expected: JobStatus) -> None:
    job_id = await h.submit({"config": {"epochs": 2}}, Kind.TASK_API)
    (worker,) = h.workers(job_id)
    template = h.backend.template_of(worker.replica_id)
    assert [c.name for c in template.pod.containers] == ["api"]
    spec = json.loads(Path(template.extra_env[JOB_SPEC_ENV]).read_text())
    assert spec["config"] == {"epochs": 2} and spec["kind"] == "TaskAPI"
    await h.manager.step()
    body = await h.manager.get_job(Kind.TASK_API, "train", job_id)
    assert body["job_status"]["status"] == "running"
    assert body["job_status"]["worker_counts"] == {"creating": 1}
    assert "metrics" not in body
    h.backend.set_status(worker.replica_id, end, exit_code=0 if end == "Succeeded" else 1)
    await h.manager.step()
    assert h.job(job_id, "train").status == expected


async def test_task_timeout_and_stop(h: Harness) -> None:
    job_id = await h.submit({"timeout": 5}, Kind.TASK_API)
    h.clock.now += 6
    await h.manager.step()
    assert h.job(job_id, "train").status == JobStatus.TIMED_OUT
    other = await h.submit({}, Kind.TASK_API)
    await h.manager.stop_job(Kind.TASK_API, "train", other)
    assert h.job(other, "train").status == JobStatus.STOPPED
    assert all(r.status == ReplicaStatus.TERMINATING for r in h.workers(other))


async def test_task_whose_worker_vanished_is_an_unexpected_error(h: Harness) -> None:
    job_id = await h.submit({}, Kind.TASK_API)
    for replica in h.workers(job_id):
        h.backend.delete_replica(replica.replica_id)
    h.backend.finish_terminations()
    h.manager = h.new_manager()  # a restarted operator
    await h.manager.step()
    assert h.job(job_id, "train").status == JobStatus.UNEXPECTED_ERROR


async def test_errors_and_lookups(h: Harness) -> None:
    with pytest.raises(NotDeployedError, match="nope is not deployed"):
        await h.manager.submit(Kind.BATCH_API, "nope", b"{}")
    with pytest.raises(Exception, match="only allowed for BatchAPI kind"):
        await h.manager.submit(Kind.BATCH_API, "train", b"{}")
    with pytest.raises(InvalidRequestError, match="query param required: jobID"):
        await h.manager.get_job(Kind.BATCH_API, "classify", None)
    with pytest.raises(NotFoundError):
        await h.manager.get_job(Kind.BATCH_API, "classify", "abc")


async def test_job_statuses_newest_first(h: Harness) -> None:
    first = await h.submit({}, Kind.TASK_API)
    second = await h.submit({}, Kind.TASK_API)
    rec = h.store.get_api("train")
    assert rec is not None
    listed = h.manager.job_statuses(rec, limit=10)
    assert [j["job_id"] for j in listed] == [second, first]
    assert h.manager.job_statuses(rec, limit=1)[0]["job_id"] == second


async def test_dry_run_lists_files(h: Harness, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for name in ("a.json", "b.json", "c.txt"):
        (data / name).write_text("1\n")
    body = {
        "workers": 1,
        "file_path_lister": {
            "s3_paths": [str(data) + "/"],
            "includes": ["**.json"],
            "batch_size": 1,
        },
    }
    text = await h.manager.submit(
        Kind.BATCH_API, "classify", json.dumps(body).encode(), dry_run=True
    )
    assert text == f"{data}/a.json\n{data}/b.json\nvalidations passed\n"
    assert h.manager.jobs.list_api("classify") == []


async def test_batches_dead_lettered_after_a_worker_crash_count_as_failed(h: Harness) -> None:
    """A batch whose worker crashed on its last allowed delivery is dead-lettered by the queue;
    no dequeuer counted it, but the job must still say it failed and list it."""
    job_id = await h.submit(items(20, workers=1, dead_letter_queue={"max_receive_count": 1}))
    job = await h.until_running(job_id)
    crashed = (await h.broker.receive(job.queue_name))[0]
    await h.broker.release(job.queue_name, crashed.receipt)  # its lease ran out
    done = (await h.broker.receive(job.queue_name))[0]  # moves the crashed batch to the DLQ
    await h.broker.ack(job.queue_name, done.receipt)
    h.write_metrics(job_id, "a", 1, 0, 0.5)  # the surviving dequeuer saw no failure
    running = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert running["metrics"]["failed"] == 1
    h.end_workers(job_id, ReplicaStatus.SUCCEEDED)
    await h.manager.step()
    assert h.job(job_id).status == JobStatus.COMPLETED_WITH_FAILURES
    body = await h.manager.get_job(Kind.BATCH_API, "classify", job_id)
    assert body["metrics"] == {"succeeded": 1, "failed": 1, "average_time_per_batch": 0.5}
    assert [d["batch"] for d in body["dead_letter_batches"]] == [list(range(10))]


async def test_close_leaves_the_shared_broker_open(h: Harness) -> None:
    await h.manager.close()
    await h.broker.create_queue("still-open")
    assert await h.broker.queue_exists("still-open")
    h.manager = h.new_manager()
