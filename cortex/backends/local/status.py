"""SPEC 12.2: a replica's status from what is observed of its pod, as Kubernetes reports it.

The local backend describes each replica the way the kubelet would describe a pod (a phase, a
Ready condition, one :class:`ContainerObs` per container), and this module turns that into a
:class:`ReplicaStatus` with Cortex's algorithm, so both backends count replicas alike:

    phase Pending:  Stalled if unschedulable for >= stalled_after_s, else from_containers
    phase Succeeded -> Succeeded
    phase Failed:   per container (last termination, else current): OOMKilled -> KilledOOM,
                    killed (exit 137/143/130/129, or signalled) -> Killed; else Failed
    phase Running:  Terminating if deleting; Ready if the Ready condition holds;
                    else from_containers, with Ready downgraded to NotReady
    from_containers precedence:
        KilledOOM > Killed > Failed > Pending(waiting) > Succeeded(all) > Creating > NotReady
        > Ready

One local extension: a container that died of a signal counts as killed whatever the signal
(SPEC lists only the codes of SIGKILL, SIGTERM, SIGINT, SIGHUP).

:func:`pod_phase` derives the phase from the containers as the kubelet does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cortex.backends.base import ReplicaStatus, RestartPolicy

KILLED_EXIT_CODES = frozenset({137, 143, 130, 129})
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
CREATING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
OOM_REASON = "OOMKilled"


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class State(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class Terminated:
    """How a container run ended; ``signaled`` when a signal ended it (exit_code is 128+N)."""

    exit_code: int
    reason: str = ""
    signaled: bool = False

    @property
    def killed(self) -> bool:
        return self.signaled or self.exit_code in KILLED_EXIT_CODES


@dataclass(frozen=True)
class ContainerObs:
    """One container as the kubelet would report it: current state plus the last termination."""

    state: State
    ready: bool = False
    reason: str = ""  # of a waiting state: ContainerCreating, CrashLoopBackOff, ...
    terminated: Terminated | None = None  # set when state is TERMINATED
    last_terminated: Terminated | None = None


def from_containers(containers: list[ContainerObs]) -> ReplicaStatus:
    """Cortex's ``PodStatusFromContainerStatuses``: the worst container state wins."""
    if not containers:
        return ReplicaStatus.PENDING
    counts: dict[str, int] = {}
    for c in containers:
        kind = _classify(c)
        if kind == "err_image_pull":
            return ReplicaStatus.ERR_IMAGE_PULL
        counts[kind] = counts.get(kind, 0) + 1
    for kind, status in _PRECEDENCE:
        if kind == "succeeded":
            if counts.get(kind, 0) == len(containers):
                return status
        elif counts.get(kind, 0) > 0:
            return status
    return ReplicaStatus.READY


_PRECEDENCE = (
    ("killed_oom", ReplicaStatus.KILLED_OOM),
    ("killed", ReplicaStatus.KILLED),
    ("failed", ReplicaStatus.FAILED),
    ("waiting", ReplicaStatus.PENDING),
    ("succeeded", ReplicaStatus.SUCCEEDED),
    ("creating", ReplicaStatus.CREATING),
    ("not_ready", ReplicaStatus.NOT_READY),
)


def _classify(c: ContainerObs) -> str:
    if c.state == State.RUNNING:
        return "ready" if c.ready else "not_ready"
    term = c.terminated if c.state == State.TERMINATED else None
    term = term or c.last_terminated
    if term is not None:
        return _classify_termination(term)
    if c.reason in IMAGE_PULL_REASONS:
        return "err_image_pull"
    if c.reason in CREATING_REASONS:
        return "creating"
    return "waiting"


def _classify_termination(term: Terminated) -> str:
    if term.reason == OOM_REASON:
        return "killed_oom"
    if term.exit_code == 0 and not term.signaled:
        return "succeeded"
    if term.killed:
        return "killed"
    return "failed"


def pod_status(
    phase: Phase,
    containers: list[ContainerObs],
    *,
    ready_condition: bool = False,
    deleting: bool = False,
    unschedulable_for_s: float | None = None,
    stalled_after_s: float = 900.0,
) -> ReplicaStatus:
    """Cortex's ``GetPodStatus`` (SPEC 12.2); ``unschedulable_for_s`` is None once scheduled."""
    if phase == Phase.PENDING:
        if unschedulable_for_s is not None and unschedulable_for_s >= stalled_after_s:
            return ReplicaStatus.STALLED
        return from_containers(containers)
    if phase == Phase.SUCCEEDED:
        return ReplicaStatus.SUCCEEDED
    if phase == Phase.FAILED:
        return _failed_status(containers)
    if phase == Phase.RUNNING:
        if deleting:
            return ReplicaStatus.TERMINATING
        if ready_condition:
            return ReplicaStatus.READY
        status = from_containers(containers)
        return ReplicaStatus.NOT_READY if status == ReplicaStatus.READY else status
    return ReplicaStatus.UNKNOWN


def _failed_status(containers: list[ContainerObs]) -> ReplicaStatus:
    for c in containers:
        term = c.last_terminated or c.terminated
        if term is None:
            continue
        if term.reason == OOM_REASON:
            return ReplicaStatus.KILLED_OOM
        if term.killed:
            return ReplicaStatus.KILLED
    return ReplicaStatus.FAILED


def pod_phase(
    containers: list[ContainerObs], policy: RestartPolicy, *, scheduled: bool = True
) -> Phase:
    """The kubelet's ``getPhase``: a waiting container that ran before counts as stopped."""
    if not scheduled:
        return Phase.PENDING
    waiting = running = stopped = succeeded = 0
    for c in containers:
        if c.state == State.RUNNING:
            running += 1
        elif c.state == State.TERMINATED:
            stopped += 1
            assert c.terminated is not None
            succeeded += c.terminated.exit_code == 0 and not c.terminated.signaled
        elif c.last_terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting > 0:
        return Phase.PENDING
    if running > 0:
        return Phase.RUNNING
    if stopped > 0:
        if policy == RestartPolicy.ALWAYS:
            return Phase.RUNNING
        return Phase.SUCCEEDED if stopped == succeeded else Phase.FAILED
    return Phase.PENDING
