"""SPEC 12.2's pod status algorithm as the local backend applies it."""

from __future__ import annotations

import pytest

from cortex.backends.base import ReplicaStatus as RS
from cortex.backends.base import RestartPolicy
from cortex.backends.local.status import (
    ContainerObs,
    Phase,
    State,
    Terminated,
    from_containers,
    pod_phase,
    pod_status,
)

READY = ContainerObs(State.RUNNING, ready=True)
NOT_READY = ContainerObs(State.RUNNING, ready=False)
CREATING = ContainerObs(State.WAITING, reason="ContainerCreating")
WAITING = ContainerObs(State.WAITING, reason="Whatever")
PULL = ContainerObs(State.WAITING, reason="ImagePullBackOff")
OK = ContainerObs(State.TERMINATED, terminated=Terminated(0, "Completed"))
FAILED = ContainerObs(State.TERMINATED, terminated=Terminated(1, "Error"))
KILLED = ContainerObs(State.TERMINATED, terminated=Terminated(143, "Error"))
SIGSEGV = ContainerObs(State.TERMINATED, terminated=Terminated(139, "Error", signaled=True))
OOM = ContainerObs(State.TERMINATED, terminated=Terminated(137, "OOMKilled", signaled=True))
BACKOFF_FAILED = ContainerObs(
    State.WAITING, reason="CrashLoopBackOff", last_terminated=Terminated(2, "Error")
)
BACKOFF_OOM = ContainerObs(
    State.WAITING, reason="CrashLoopBackOff", last_terminated=Terminated(137, "OOMKilled")
)


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([], RS.PENDING),
        ([READY, READY], RS.READY),
        ([READY, NOT_READY], RS.NOT_READY),
        ([NOT_READY, CREATING], RS.CREATING),  # Creating > NotReady
        ([OK, CREATING], RS.CREATING),  # not all succeeded: Creating next
        ([OK, OK], RS.SUCCEEDED),
        ([OK, WAITING], RS.PENDING),  # Pending(waiting) > Succeeded
        ([WAITING, FAILED], RS.FAILED),  # Failed > Pending
        ([FAILED, KILLED], RS.KILLED),  # Killed > Failed
        ([KILLED, OOM], RS.KILLED_OOM),  # KilledOOM > Killed
        ([SIGSEGV], RS.KILLED),  # local extension: any signal death is Killed
        ([OOM, PULL], RS.ERR_IMAGE_PULL),  # image pull errors return at once
        ([BACKOFF_FAILED, READY], RS.FAILED),  # waiting with a last termination uses it
        ([BACKOFF_OOM], RS.KILLED_OOM),
    ],
)
def test_from_containers_precedence(containers, expected):
    assert from_containers(containers) == expected


def test_running_ready_condition_wins():
    assert pod_status(Phase.RUNNING, [NOT_READY], ready_condition=True) == RS.READY


def test_running_all_containers_ready_without_condition_is_not_ready():
    # e.g. the default TCP readiness check has not passed yet
    assert pod_status(Phase.RUNNING, [READY]) == RS.NOT_READY


def test_running_deleting_is_terminating_before_anything_else():
    assert pod_status(Phase.RUNNING, [READY], ready_condition=True, deleting=True) == (
        RS.TERMINATING
    )


def test_pending_stalls_after_the_timeout():
    # unschedulable for 10 s with a 5 s threshold -> Stalled; 4 s -> still Pending
    assert pod_status(Phase.PENDING, [], unschedulable_for_s=10, stalled_after_s=5) == RS.STALLED
    assert pod_status(Phase.PENDING, [], unschedulable_for_s=4, stalled_after_s=5) == RS.PENDING
    assert pod_status(Phase.PENDING, [CREATING]) == RS.CREATING


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([FAILED, OK], RS.FAILED),
        ([FAILED, KILLED], RS.KILLED),
        ([OOM, FAILED], RS.KILLED_OOM),
        ([KILLED, OOM], RS.KILLED),  # Failed phase: the first container that says wins
    ],
)
def test_failed_phase(containers, expected):
    assert pod_status(Phase.FAILED, containers) == expected


def test_succeeded_and_unknown_phases():
    assert pod_status(Phase.SUCCEEDED, [OK]) == RS.SUCCEEDED
    assert pod_status(Phase.UNKNOWN, [READY]) == RS.UNKNOWN


@pytest.mark.parametrize(
    ("containers", "policy", "expected"),
    [
        ([], RestartPolicy.ALWAYS, Phase.PENDING),
        ([CREATING, READY], RestartPolicy.ALWAYS, Phase.PENDING),
        ([READY, OK], RestartPolicy.NEVER, Phase.RUNNING),
        ([BACKOFF_FAILED], RestartPolicy.ALWAYS, Phase.RUNNING),  # restarting: still Running
        ([OK, OK], RestartPolicy.NEVER, Phase.SUCCEEDED),
        ([OK, FAILED], RestartPolicy.NEVER, Phase.FAILED),
        ([OK, SIGSEGV], RestartPolicy.NEVER, Phase.FAILED),
        ([OK], RestartPolicy.ALWAYS, Phase.RUNNING),
    ],
)
def test_pod_phase(containers, policy, expected):
    assert pod_phase(containers, policy) == expected


def test_unscheduled_is_pending():
    assert pod_phase([READY], RestartPolicy.ALWAYS, scheduled=False) == Phase.PENDING
