"""What every backend answers: run a pod template as replicas, list them with their state,
stop them, give their logs. Everything above (operator, reconciler) talks only to this.

A replica's status follows SPEC 12.2 (the Kubernetes pod status algorithm); the local backend
reproduces it from what it observes of its processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cortex.spec.models import PodSpec


class ReplicaStatus(StrEnum):
    PENDING = "Pending"
    STALLED = "Stalled"
    CREATING = "Creating"
    NOT_READY = "NotReady"
    READY = "Ready"
    ERR_IMAGE_PULL = "ErrImagePull"
    TERMINATING = "Terminating"
    FAILED = "Failed"
    KILLED = "Killed"
    KILLED_OOM = "KilledOOM"
    SUCCEEDED = "Succeeded"
    UNKNOWN = "Unknown"


FAILED_STATUSES = frozenset(
    {
        ReplicaStatus.ERR_IMAGE_PULL,
        ReplicaStatus.FAILED,
        ReplicaStatus.KILLED,
        ReplicaStatus.KILLED_OOM,
        ReplicaStatus.UNKNOWN,
    }
)


class RestartPolicy(StrEnum):
    ALWAYS = "Always"  # RealtimeAPI / AsyncAPI: a crashed container restarts with back-off
    NEVER = "Never"  # BatchAPI / TaskAPI workers: run to completion once


@dataclass(frozen=True)
class ReplicaTemplate:
    """Everything needed to start one replica of an API version (the pod template)."""

    api_name: str
    api_kind: str
    api_id: str
    pod_id: str
    deployment_id: str
    pod: PodSpec
    project_dir: Path  # working directory of every container: the deployed cortex.yaml's folder
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    job_id: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)  # e.g. CORTEX_JOB_SPEC_PATH


@dataclass(frozen=True)
class ReplicaInfo:
    """A snapshot of one replica as the backend sees it now."""

    replica_id: str
    api_name: str
    api_kind: str
    api_id: str
    pod_id: str
    deployment_id: str
    job_id: str | None
    status: ReplicaStatus
    host: str  # where the replica's pod.port listens (127.0.0.1 locally)
    port: int | None  # None for TaskAPI replicas (no port)
    created_at: float  # unix seconds
    restarts: int = 0
    exit_code: int | None = None  # set once every container has ended (jobs)
    message: str = ""  # why it is Pending / Failed / KilledOOM ..., for describe and job status

    @property
    def ready(self) -> bool:
        return self.status == ReplicaStatus.READY

    @classmethod
    def of(
        cls,
        template: ReplicaTemplate,
        *,
        replica_id: str,
        status: ReplicaStatus,
        host: str,
        port: int | None,
        created_at: float,
        restarts: int = 0,
        exit_code: int | None = None,
        message: str = "",
    ) -> ReplicaInfo:
        """A replica of ``template``: the API and version labels come from the template."""
        return cls(
            replica_id=replica_id,
            api_name=template.api_name,
            api_kind=template.api_kind,
            api_id=template.api_id,
            pod_id=template.pod_id,
            deployment_id=template.deployment_id,
            job_id=template.job_id,
            status=status,
            host=host,
            port=port,
            created_at=created_at,
            restarts=restarts,
            exit_code=exit_code,
            message=message,
        )


@dataclass(frozen=True)
class NodeCapacity:
    """The node's allocatable resources and what replicas have requested of them."""

    cpu_millis: int
    mem_bytes: int
    gpus: int
    requested_cpu_millis: int = 0
    requested_mem_bytes: int = 0
    requested_gpus: int = 0


class Backend(Protocol):
    """A place that runs replicas. Methods that change things return at once; the backend's
    own supervision (started by :meth:`start`) moves replicas through their states."""

    async def start(self) -> None:
        """Stop orphans left by an earlier crashed run, then start supervising."""

    async def close(self) -> None:
        """Stop every replica (graceful, then forced) and stop supervising."""

    def create_replica(self, template: ReplicaTemplate) -> ReplicaInfo:
        """Schedule a new replica; it starts Pending/Creating and becomes Ready when probes pass."""

    def delete_replica(self, replica_id: str) -> None:
        """Begin a graceful stop (pre_stop, SIGTERM, grace period, SIGKILL). The replica is listed
        as Terminating until its processes are gone, then no longer listed. Unknown ids: no-op."""

    def list_replicas(self, api_name: str | None = None) -> list[ReplicaInfo]:
        """Current replicas (all APIs when ``api_name`` is None), oldest first."""

    def capacity(self) -> NodeCapacity: ...

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener`` is called (on the event loop) soon after any replica's status changed,
        so the reconciler and the job manager act at once instead of at their next period."""

    def stream_logs(
        self, api_name: str, *, job_id: str | None = None, follow: bool = False
    ) -> AsyncIterator[str]:
        """Log lines (JSON text, one per line) of the API's replicas, or of one job's."""
