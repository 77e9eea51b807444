"""One local replica: the pod's containers as process groups, a shared scratch folder, a port.

A replica is created unscheduled (Pending, holding nothing). Once the node's capacity fits its
requests the backend calls :meth:`Replica.start`, which starts every container's task and, when
no container has a readiness probe on ``pod.port``, the default readiness check: a TCP connect
to the replica's port (replicas without a port are ready once running). Its status is computed
on demand with SPEC 12.2 from the containers' Kubernetes-style states (``status.py``).

Kubexit (SPEC 11.6): with restart policy Never, when one container ends, the others are
stopped (SIGTERM, grace, SIGKILL), and their termination counts as success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cortex.backends.base import ReplicaInfo, ReplicaStatus, ReplicaTemplate, RestartPolicy
from cortex.backends.local import status as st
from cortex.backends.local.capacity import split_gpus
from cortex.backends.local.env import ContainerContext, container_argv, cortex_env, process_env
from cortex.backends.local.logs import LogSink
from cortex.backends.local.orphans import record_pids
from cortex.backends.local.probes import HOST, ProbeLoop, Target, Timing, tcp_connect
from cortex.backends.local.process import Container, Launch, Tunables
from cortex.backends.local.tasks import TaskSet
from cortex.backends.requests import Request

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cortex.spec.models import ContainerSpec, PodSpec

log = logging.getLogger(__name__)


def missing_command(pod: PodSpec) -> str | None:
    """Why the local backend cannot run this pod, or None."""
    for container in pod.containers:
        if not container.command:
            return (
                f"container {container.name} has no command; the local backend runs command + args"
            )
    return None


def probes_pod_port(pod: PodSpec) -> bool:
    """Whether some container's readiness probe targets ``pod.port`` (then no default check)."""
    for container in pod.containers:
        probe = container.readiness_probe
        if probe is None:
            continue
        if probe.http_get is not None and probe.http_get.port == pod.port:
            return True
        if probe.tcp_socket is not None and probe.tcp_socket.port == pod.port:
            return True
    return False


class Replica:
    """The containers of one pod template instance, and its Kubernetes-style observations."""

    def __init__(
        self,
        replica_id: str,
        template: ReplicaTemplate,
        *,
        port: int | None,
        request: Request,
        state_dir: Path,
        log_path: Path,
    ) -> None:
        self.id = replica_id
        self.template = template
        self.port = port
        self.request = request
        self.dir = state_dir / "replicas" / replica_id
        self.log_path = log_path
        self.created_at = time.time()
        self.unschedulable_since: float | None = time.monotonic()
        self.pending_message = ""
        self.config_error = missing_command(template.pod)
        self.containers: list[Container] = []
        self.deleting = False
        self.released = False
        self._gate_ready = False
        self._needs_gate = port is not None and not probes_pod_port(template.pod)
        self._tasks = TaskSet(f"replica {replica_id}")
        self._sink: LogSink | None = None
        self._gate_task: asyncio.Task[None] | None = None
        self._gate_loop: ProbeLoop | None = None

    @property
    def scheduled(self) -> bool:
        return self.unschedulable_since is None

    @property
    def finished(self) -> bool:
        """True once it will never run a process again (config failure or all containers ended)."""
        if self.config_error is not None:
            return True
        return bool(self.containers) and all(c.finished.is_set() for c in self.containers)

    def labels(self) -> dict[str, str]:
        labels = {
            "apiName": self.template.api_name,
            "apiKind": self.template.api_kind,
            "replica": self.id,
        }
        if self.template.job_id is not None:
            labels["jobID"] = self.template.job_id
        return labels

    def start(
        self,
        gpus: tuple[int, ...],
        *,
        node_gpus: int,
        base_env: Mapping[str, str],
        log_level: str,
        cli_config_dir: Path,
        tunables: Tunables,
    ) -> None:
        """Start every container (the replica was just scheduled with these GPU indices)."""
        self.unschedulable_since = None
        mnt = self.dir / "mnt"
        mnt.mkdir(parents=True, exist_ok=True)
        self._sink = LogSink(self.log_path, self.labels())
        specs = self.template.pod.containers
        per_container = split_gpus(gpus, [c.compute.gpu for c in specs])
        for spec, own_gpus in zip(specs, per_container, strict=True):
            ctx = ContainerContext(
                api_name=self.template.api_name,
                api_kind=self.template.api_kind,
                log_level=log_level,
                cli_config_dir=cli_config_dir,
                port=self.port,
                mnt=mnt,
                cuda_visible_devices=",".join(map(str, own_gpus)) if node_gpus else None,
                extra_env=self.template.extra_env,
            )
            launch = self._launch(spec, ctx, base_env)
            self.containers.append(
                Container(
                    spec,
                    launch,
                    sink=self._sink,
                    policy=self.template.restart_policy,
                    tunables=tunables,
                    on_spawn=self._spawned,
                    on_end=self._kubexit,
                )
            )
        for container in self.containers:
            self._tasks.spawn(container.run(), name=f"container {self.id}/{container.name}")
        if self._needs_gate:
            self._gate_task = self._tasks.spawn(self._gate(tunables), name=f"readiness {self.id}")

    def quiesce(self) -> None:
        """Stop the default readiness check of a replica that has finished (jobs)."""
        if self._gate_task is not None:
            self._gate_task.cancel()

    def _launch(
        self, spec: ContainerSpec, ctx: ContainerContext, base_env: Mapping[str, str]
    ) -> Launch:
        defined = cortex_env(ctx, spec.env)
        env = process_env(base_env, defined)
        cwd = self.template.project_dir
        target = Target(self.template.pod.port, self.port, env, defined, cwd)
        return Launch(container_argv(spec.command, spec.args, defined), env, cwd, target)

    async def _gate(self, tunables: Tunables) -> None:
        port = self.port
        assert port is not None
        timing = Timing(period_s=tunables.default_probe_period_s, failure_threshold=1)
        self._gate_loop = ProbeLoop(lambda t: tcp_connect(port, t), timing, initial=False)
        await self._gate_loop.run(self._set_gate)

    def _set_gate(self, ready: bool) -> None:
        self._gate_ready = ready

    def _spawned(self) -> None:
        """A container (re)started: record its pid; the default check must pass anew."""
        self._gate_ready = False
        if self._gate_loop is not None:
            self._gate_loop.result = False
        alive = [(c.alive_pid, c.create_time) for c in self.containers]
        record_pids(self.dir, [(pid, ct) for pid, ct in alive if pid is not None])

    def _kubexit(self, ended: Container) -> None:
        grace = ended.tunables.grace_period_s
        for sibling in self.containers:
            if sibling is not ended and not sibling.finished.is_set():
                self._tasks.spawn(
                    sibling.stop(grace, death_dep=True), name=f"kubexit {self.id}/{sibling.name}"
                )

    # ---- observing

    def _observations(self) -> tuple[st.Phase, list[st.ContainerObs]]:
        if self.config_error is not None:
            failed = st.ContainerObs(
                st.State.TERMINATED, terminated=st.Terminated(128, "CreateContainerConfigError")
            )
            return st.Phase.FAILED, [failed for _ in self.template.pod.containers]
        if not self.scheduled:
            return st.Phase.PENDING, []
        obs = [c.obs for c in self.containers]
        return st.pod_phase(obs, self.template.restart_policy), obs

    def status(self, *, stalled_after_s: float) -> ReplicaStatus:
        phase, obs = self._observations()
        gate_ok = self._gate_ready or not self._needs_gate
        ready = phase == st.Phase.RUNNING and gate_ok and all(o.ready for o in obs)
        since = self.unschedulable_since
        return st.pod_status(
            phase,
            obs,
            ready_condition=ready,
            deleting=self.deleting,
            unschedulable_for_s=None if since is None else time.monotonic() - since,
            stalled_after_s=stalled_after_s,
        )

    def exit_code(self) -> int | None:
        """For restart policy Never, once every container ended: the first non-zero code, or 0."""
        if self.template.restart_policy != RestartPolicy.NEVER or not self.finished:
            return None
        if self.config_error is not None:
            return None
        codes = [c.obs.terminated.exit_code for c in self.containers if c.obs.terminated]
        return next((code for code in codes if code != 0), 0)

    def message(self, status: ReplicaStatus) -> str:
        if self.config_error is not None:
            return self.config_error
        if not self.scheduled:
            return self.pending_message
        if status == ReplicaStatus.READY:
            return ""
        return "; ".join(c.message for c in self.containers if c.message)

    def info(self, *, stalled_after_s: float) -> ReplicaInfo:
        status = self.status(stalled_after_s=stalled_after_s)
        return ReplicaInfo.of(
            self.template,
            replica_id=self.id,
            status=status,
            host=HOST,
            port=self.port,
            created_at=self.created_at,
            restarts=sum(c.restarts for c in self.containers),
            exit_code=self.exit_code(),
            message=self.message(status),
        )

    # ---- stopping

    async def stop(self, grace_s: float) -> None:
        """pre_stop hooks, then SIGTERM every container, SIGKILL after what is left of the grace."""
        self.deleting = True
        deadline = time.monotonic() + grace_s
        hooks = [self._pre_stop(c, grace_s) for c in self.containers if c.alive_pid is not None]
        if hooks:
            await asyncio.gather(*hooks)
        remaining = max(0.0, deadline - time.monotonic())
        await asyncio.gather(*(c.stop(remaining) for c in self.containers))
        await self._tasks.cancel_all()
        if self._sink is not None:
            self._sink.close()

    async def _pre_stop(self, container: Container, timeout_s: float) -> None:
        hook = container.spec.pre_stop
        if hook is None:
            return
        target = container.launch.target
        check = None
        if hook.http_get is not None:
            check = target.http_check(hook.http_get)
        elif hook.exec is not None:
            check = target.exec_check(hook.exec)
        if check is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                if not await check(timeout_s):
                    log.warning("pre_stop hook of %s/%s failed", self.id, container.name)
