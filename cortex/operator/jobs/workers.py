"""A job's workers as backend replicas, and what they leave in storage.

* :func:`worker_template`: the API's pod run once (``RestartPolicy.NEVER``) with the job's id;
  a BatchAPI worker also gets the dequeuer as its first container (SPEC 5.1), which pulls the
  job's batches and exits 0 once the queue is drained (the backend then stops the siblings,
  kubexit-style). Every container finds the job spec at ``CORTEX_JOB_SPEC_PATH``.
* :func:`write_job_spec`: ``<state_dir>/jobs/<api>/<job_id>/job.json`` (2-space indent).
* :func:`read_metrics`: the sum of the workers' metrics files.
* :func:`live_dead_letters` / :func:`stored_dead_letters`: the batches the queue gave up on,
  live from the dead-letter queue or, once the job ended, from storage
  (:func:`save_dead_letters` copies them there); :func:`dead_letter_count` counts them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cortex.backends.base import ReplicaTemplate, RestartPolicy
from cortex.dataplane.dequeuer.settings import DequeuerMode, DequeuerSettings
from cortex.dataplane.dequeuer.sidecar import readiness_probe, with_dequeuer
from cortex.operator.jobs.models import JobMetrics, JobRecord
from cortex.operator.settings import JobSettings
from cortex.operator.store import ApiRecord
from cortex.queue import QueueBroker, Received
from cortex.queue.names import batch_completion_queue_name, batch_dead_letter_queue_name
from cortex.spec.kinds import Kind
from cortex.spec.models import ApiSpec, PodSpec
from cortex.storage import ObjectNotFoundError, ObjectStore, paths
from cortex.storage.base import check_segment

log = logging.getLogger(__name__)

JOB_SPEC_ENV = "CORTEX_JOB_SPEC_PATH"
DEAD_LETTER_LIMIT = 100  # listed in a job's status
SAVE_LIMIT = 100_000  # kept in storage when the job ends


@dataclass(frozen=True)
class Infra:
    """Where workers find the queue broker and the object store."""

    queue_url: str
    storage_url: str
    state_dir: Path


def job_spec_path(state_dir: Path, api_name: str, job_id: str) -> Path:
    return state_dir / "jobs" / check_segment(api_name) / check_segment(job_id) / "job.json"


def write_job_spec(state_dir: Path, job: JobRecord) -> Path:
    """Write the job spec the containers read; returns its path."""
    path = job_spec_path(state_dir, job.api_name, job.job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job.spec_json(), indent=2) + "\n")
    tmp.replace(path)
    return path


def batch_pod(api: ApiSpec, job: JobRecord, infra: Infra, settings: JobSettings) -> PodSpec:
    """The API's pod with the dequeuer in front (SPEC 5.1: first container for BatchAPI)."""
    if api.pod is None:
        raise ValueError(f"{api.name} has no pod")
    dequeuer = DequeuerSettings(
        mode=DequeuerMode.BATCH,
        queue_url=infra.queue_url,
        queue_name=job.queue_name,
        storage_url=infra.storage_url,
        api_name=job.api_name,
        api_kind=Kind.BATCH_API,
        pod_port=api.pod.port,
        job_id=job.job_id,
        probe=readiness_probe(api.pod),
        visibility_timeout_s=settings.visibility_timeout_s,
        receive_wait_s=settings.receive_wait_s,
        empty_checks=settings.empty_checks,
        max_receive_count=None if job.dead_letter is None else job.dead_letter.max_receive_count,
        completion_queue=batch_completion_queue_name(job.api_name, job.job_id),
        metrics_period_s=settings.metrics_period_s,
    )
    return with_dequeuer(api.pod, dequeuer)


def worker_template(
    rec: ApiRecord, api: ApiSpec, job: JobRecord, infra: Infra, settings: JobSettings
) -> ReplicaTemplate:
    """One worker of the job (create ``job.workers`` of them)."""
    if api.pod is None:
        raise ValueError(f"{api.name} has no pod")
    pod = batch_pod(api, job, infra, settings) if job.kind == Kind.BATCH_API else api.pod
    spec_path = job_spec_path(infra.state_dir, job.api_name, job.job_id)
    return ReplicaTemplate(
        api_name=rec.name,
        api_kind=rec.kind,
        api_id=job.api_id,
        pod_id=rec.pod_id,
        deployment_id=rec.deployment_id,
        pod=pod,
        project_dir=Path(rec.project_dir),
        restart_policy=RestartPolicy.NEVER,
        job_id=job.job_id,
        extra_env={JOB_SPEC_ENV: str(spec_path)},
    )


def _metrics_prefix(api_name: str, job_id: str) -> str:
    return posixpath.dirname(paths.job_worker_metrics_key(api_name, job_id, "worker"))


def read_metrics(objects: ObjectStore, api_name: str, job_id: str) -> JobMetrics:
    """The sum of the job's per-worker metrics files (blocking I/O)."""
    total = JobMetrics()
    for key in objects.list(_metrics_prefix(api_name, job_id)):
        try:
            data = objects.get_json(key)
        except (ObjectNotFoundError, ValueError):
            continue
        if isinstance(data, dict):
            total = total + JobMetrics.from_json(data)
    return total


def _dead_letter_json(message: Received) -> dict[str, Any]:
    try:
        batch: Any = json.loads(message.body)
    except ValueError:
        batch = message.body.decode(errors="replace")
    return {
        "message_id": message.message_id,
        "receive_count": message.receive_count,
        "batch": batch,
    }


async def _dead_letter_queue(broker: QueueBroker, job: JobRecord) -> str | None:
    """The job's dead-letter queue, if it has one and the queue (still) exists."""
    name = batch_dead_letter_queue_name(job.api_name, job.job_id)
    if job.dead_letter is None or not await broker.queue_exists(name):
        return None
    return name


async def dead_letter_count(broker: QueueBroker, job: JobRecord) -> int:
    """How many batches the job's dead-letter queue holds (0 without one)."""
    name = await _dead_letter_queue(broker, job)
    return 0 if name is None else (await broker.counts(name)).total


async def live_dead_letters(broker: QueueBroker, job: JobRecord) -> list[dict[str, Any]]:
    """The dead-lettered batches still in the job's dead-letter queue (at most 100)."""
    name = await _dead_letter_queue(broker, job)
    if name is None:
        return []
    return [_dead_letter_json(m) for m in await broker.list_messages(name, limit=DEAD_LETTER_LIMIT)]


def stored_dead_letters(objects: ObjectStore, job: JobRecord) -> list[dict[str, Any]]:
    """The dead-lettered batches saved when the job ended (blocking I/O)."""
    keys = objects.list(paths.job_dead_letter_prefix(job.api_name, job.job_id))
    letters = []
    for key in keys[:DEAD_LETTER_LIMIT]:
        data = objects.get_json(key)
        if isinstance(data, dict):
            letters.append(data)
    return letters


async def save_dead_letters(broker: QueueBroker, objects: ObjectStore, job: JobRecord) -> int:
    """Copy every batch of the dead-letter queue to storage, before the queue is deleted."""
    name = await _dead_letter_queue(broker, job)
    if name is None:
        return 0
    messages = await broker.list_messages(name, limit=SAVE_LIMIT)
    letters = {
        paths.job_dead_letter_key(job.api_name, job.job_id, m.message_id): _dead_letter_json(m)
        for m in messages
    }
    await asyncio.to_thread(_put_all, objects, letters)
    return len(messages)


def _put_all(objects: ObjectStore, documents: dict[str, Any]) -> None:
    for key, document in documents.items():
        objects.put_json(key, document)
