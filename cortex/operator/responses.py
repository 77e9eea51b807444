"""APIResponse and DeployResult JSON (SPEC 10.4) and the read-only routes' semantics (SPEC 10.5).

Fields are omitted when empty, as the original's ``omitempty`` did. For RealtimeAPI/AsyncAPI,
``status`` mirrors a Deployment's status from the reconciler's replica counts:

- ``ready``: Ready replicas of any version (``readyReplicas``);
- ``requested``: replicas that exist now, any version, not Terminating (``status.replicas``);
- ``up_to_date``: latest-version replicas, not Terminating (``updatedReplicas``).

- ``status``: the API's one-word status (:func:`cortex.operator.api_status.api_status`).

``/describe`` adds ``replica_counts``, whose ``requested`` is the desired count, and the
``autoscaler`` section (:meth:`AutoscalingLoop.describe`). RealtimeAPI items carry ``metrics``:
request counts and average latency over the operator's request-metrics window
(:meth:`RequestWindow.to_json`). AsyncAPI items carry ``queue``: ``{"queued", "in_progress"}``,
the messages waiting in and being worked off the API's queue, as last read
(:meth:`AsyncApis.queue_json`; omitted before the first read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cortex.errors import NotDeployedError, NotFoundError, UnsupportedOperationError
from cortex.operator.api_status import api_status
from cortex.operator.deploy import DeployOutcome, spec_of
from cortex.operator.replica_counts import ReplicaCounts
from cortex.operator.store import ApiRecord, StateStore
from cortex.spec import resolved
from cortex.spec.kinds import SCALED_KINDS, Kind

# SPEC 10.5: Realtime, then Batch, Task, Async, then TrafficSplitter; by name within a kind.
_LIST_ORDER = {
    Kind.REALTIME_API: 0,
    Kind.BATCH_API: 1,
    Kind.TASK_API: 2,
    Kind.ASYNC_API: 3,
    Kind.TRAFFIC_SPLITTER: 4,
}


_JOB_STATUS_KEYS = {Kind.BATCH_API: "batch_job_statuses", Kind.TASK_API: "task_job_statuses"}


class JobStatuses(Protocol):
    """Where BatchAPI/TaskAPI items get their jobs (the job manager): the API's running jobs
    and most recent ones, newest first, at most ``limit``, as SPEC 7.5's JSON."""

    def job_statuses(self, rec: ApiRecord, *, limit: int) -> list[dict[str, Any]]: ...


def spec_json(rec: ApiRecord) -> dict[str, Any]:
    """``spec.API`` JSON of a stored version: the user's API resolved, plus its ids."""
    data = resolved.spec_to_json(spec_of(rec))
    data.update(
        id=rec.api_id,
        spec_id=rec.spec_id,
        pod_id=rec.pod_id,
        deployment_id=rec.deployment_id,
        key=f"apis/{rec.name}/{rec.api_id}",
        initial_deployment_time=rec.initial_deployment_time_ns,
        last_updated=int(rec.last_updated),
        metadata_root=f"apis/{rec.name}/{rec.api_id}/metadata",
        project_dir=rec.project_dir,
    )
    return data


def metadata_json(rec: ApiRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"name": rec.name, "kind": rec.kind, "id": rec.api_id}
    if rec.deployment_id:
        data["deployment_id"] = rec.deployment_id
    data["last_updated"] = int(resolved.time_from_id(rec.api_id))
    return data


def status_json(counts: ReplicaCounts, *, with_counts: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": api_status(counts).value,
        "ready": counts.all_ready,
        "requested": counts.up_to_date + counts.ready_out_of_date,
        "up_to_date": counts.up_to_date,
    }
    if with_counts:
        data["replica_counts"] = counts.to_json()
    return data


@dataclass(frozen=True)
class Responses:
    """Builds the read routes' answers from the store and live replica counts.

    ``api_url`` is the gateway's base URL (an API's endpoint URL is it plus the endpoint path);
    ``jobs`` fills BatchAPI/TaskAPI job statuses (omitted without it); ``request_metrics``
    (API name -> ``metrics`` JSON) fills RealtimeAPI ``metrics``, ``autoscaler`` (record ->
    JSON) ``/describe``'s ``autoscaler`` section and ``async_queue`` (record -> JSON or None)
    AsyncAPI ``queue`` (each omitted without it).
    """

    store: StateStore
    replica_counts: Callable[[str], ReplicaCounts]
    api_url: str
    jobs: JobStatuses | None = None
    request_metrics: Callable[[str], dict[str, Any]] | None = None
    autoscaler: Callable[[ApiRecord], dict[str, Any]] | None = None
    async_queue: Callable[[ApiRecord], dict[str, int] | None] | None = None

    def deploy_results(self, outcomes: list[DeployOutcome]) -> list[dict[str, Any]]:
        """SPEC 10.4 ``[DeployResult]``; ``api`` carries spec, metadata and endpoint."""
        return [
            {
                "api": None if o.record is None else self._deployed_api(o.record),
                "message": o.message,
                "error": o.error,
            }
            for o in outcomes
        ]

    def get_all(self) -> list[dict[str, Any]]:
        """``GET /get``: every API, summarized, in SPEC 10.5's order."""
        records = sorted(
            self.store.list_apis(), key=lambda r: (_LIST_ORDER.get(Kind(r.kind), 5), r.name)
        )
        return [self._summary(rec) for rec in records]

    def get_one(self, name: str) -> list[dict[str, Any]]:
        """``GET /get/{name}``: spec, metadata, status, endpoint and version history."""
        rec = self._deployed(name)
        data = self._summary(rec)
        data["spec"] = spec_json(rec)
        data["endpoint"] = self.endpoint_url(rec)
        versions = self.store.api_versions(name)
        if versions:
            data["api_versions"] = [
                {"api_id": api_id, "last_updated": int(last_updated)}
                for api_id, last_updated in versions
            ]
        return [data]

    def get_version(self, name: str, api_id: str) -> list[dict[str, Any]]:
        """``GET /get/{name}/{id}``: the live API if that is its id, else the stored spec."""
        rec = self.store.get_api(name)
        if rec is not None and rec.api_id == api_id:
            return self.get_one(name)
        old = self.store.get_version_record(name, api_id)
        if old is None:
            raise NotFoundError(f"{name} with id {api_id} has never been deployed")
        return [{"spec": spec_json(old)}]

    def describe(self, name: str) -> list[dict[str, Any]]:
        """``GET /describe/{name}``: RealtimeAPI/AsyncAPI with replica counts."""
        rec = self._deployed(name)
        if rec.kind not in SCALED_KINDS:
            raise UnsupportedOperationError(
                "this operation is only allowed for RealtimeAPI or AsyncAPI kinds and is not "
                f"supported for {name} of kind {rec.kind}"
            )
        data: dict[str, Any] = {
            "metadata": metadata_json(rec),
            "status": status_json(self.replica_counts(name), with_counts=True),
            "endpoint": self.endpoint_url(rec),
        }
        self._add_metrics(rec, data)
        if self.autoscaler is not None:
            data["autoscaler"] = self.autoscaler(rec)
        return [data]

    def endpoint_url(self, rec: ApiRecord) -> str:
        return self.api_url + resolved.endpoint(spec_of(rec))

    def _deployed(self, name: str) -> ApiRecord:
        rec = self.store.get_api(name)
        if rec is None:
            raise NotDeployedError(f"{name} is not deployed")
        return rec

    def _summary(self, rec: ApiRecord) -> dict[str, Any]:
        data: dict[str, Any] = {"metadata": metadata_json(rec)}
        if rec.kind in SCALED_KINDS:
            data["status"] = status_json(self.replica_counts(rec.name))
            self._add_metrics(rec, data)
        elif rec.kind == Kind.TRAFFIC_SPLITTER:
            data["num_traffic_splitter_targets"] = len(spec_of(rec).apis or ())
        key = _JOB_STATUS_KEYS.get(Kind(rec.kind))
        if key is not None and self.jobs is not None:
            statuses = self.jobs.job_statuses(rec, limit=10)
            if statuses:
                data[key] = statuses
        return data

    def _add_metrics(self, rec: ApiRecord, data: dict[str, Any]) -> None:
        if rec.kind == Kind.REALTIME_API and self.request_metrics is not None:
            data["metrics"] = self.request_metrics(rec.name)
        if rec.kind == Kind.ASYNC_API and self.async_queue is not None:
            queue = self.async_queue(rec)
            if queue is not None:
                data["queue"] = queue

    def _deployed_api(self, rec: ApiRecord) -> dict[str, Any]:
        return {
            "spec": spec_json(rec),
            "metadata": metadata_json(rec),
            "endpoint": self.endpoint_url(rec),
        }
