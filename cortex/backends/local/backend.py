"""The local backend: every replica is a group of local processes (see DESIGN "Local backend").

One asyncio supervision loop, every ``supervise_period_s``:

1. schedule: Pending replicas, oldest first, take capacity when their summed requests fit in
   what is free (a replica that does not fit never blocks a smaller one behind it); a replica
   left unschedulable for ``stalled_after_s`` reports Stalled;
2. release: a replica whose containers have all ended for good (restart policy Never) gives its
   capacity back, as a completed pod does;
3. memory: the resident memory of each container's process tree is sampled (in a thread); a
   container over its ``compute.mem`` is killed (KilledOOM).

Everything else is event-driven in each replica's tasks (see ``replica.py`` and
``process.py``). ``create_replica`` and ``delete_replica`` return at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from cortex.backends.base import NodeCapacity, ReplicaInfo, ReplicaStatus, ReplicaTemplate
from cortex.backends.local.capacity import Ledger, detect_node
from cortex.backends.local.logs import log_dir, stream_log_folder
from cortex.backends.local.orphans import kill_orphans
from cortex.backends.local.process import Container, Tunables, tree_rss
from cortex.backends.local.replica import Replica
from cortex.backends.local.tasks import TaskSet
from cortex.backends.requests import pod_request

log = logging.getLogger(__name__)


class LocalBackend:
    """Runs replicas as local process groups; implements :class:`cortex.backends.base.Backend`.

    ``base_env`` is the environment containers inherit (minus ``CORTEX_*``); it defaults to
    this process's environment. The timing arguments exist so tests can run fast.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        cli_config_dir: Path,
        node: NodeCapacity | None = None,
        log_level: str = "INFO",
        stalled_after_s: float = 900,
        supervise_period_s: float = 0.2,
        grace_period_s: float = 60.0,
        restart_backoff_s: float = 1.0,
        restart_backoff_max_s: float = 60.0,
        default_probe_period_s: float = 1.0,
        log_poll_s: float = 0.2,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.cli_config_dir = Path(cli_config_dir)
        self.log_level = log_level
        self.stalled_after_s = stalled_after_s
        self.supervise_period_s = supervise_period_s
        self.tunables = Tunables(
            grace_period_s=grace_period_s,
            restart_backoff_s=restart_backoff_s,
            restart_backoff_max_s=restart_backoff_max_s,
            default_probe_period_s=default_probe_period_s,
        )
        self.log_poll_s = log_poll_s
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._ledger = Ledger(node if node is not None else detect_node())
        self._replicas: dict[str, Replica] = {}
        self._tasks = TaskSet("local backend")
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._seen: dict[str, ReplicaStatus] = {}

    # ---- lifecycle

    async def start(self) -> None:
        if self._loop_task is not None:
            return
        killed = await asyncio.to_thread(kill_orphans, self.state_dir / "replicas")
        if killed:
            log.warning("killed %d processes left by an earlier run: %s", len(killed), killed)
        self._loop_task = self._tasks.spawn(self._supervise(), name="local backend supervisor")

    async def close(self) -> None:
        for replica_id in list(self._replicas):
            self.delete_replica(replica_id)
        stopping = list(self._stopping.values())
        if stopping:
            await asyncio.wait(stopping)
        await self._tasks.cancel_all()
        self._loop_task = None

    async def _supervise(self) -> None:
        while True:
            try:
                self._tick()
                await self._check_memory()
            except Exception:
                log.exception("local backend supervision step failed")
            await asyncio.sleep(self.supervise_period_s)

    # ---- Backend protocol

    def create_replica(self, template: ReplicaTemplate) -> ReplicaInfo:
        replica_id = f"{template.api_name}-{secrets.token_hex(5)}"
        replica = Replica(
            replica_id,
            template,
            port=self._free_port() if template.pod.port is not None else None,
            request=pod_request(template.pod),
            state_dir=self.state_dir,
            log_path=log_dir(self.state_dir, template.api_name, template.job_id)
            / f"{replica_id}.log",
        )
        self._replicas[replica_id] = replica
        if _loop_running():
            self._schedule()
        return replica.info(stalled_after_s=self.stalled_after_s)

    def delete_replica(self, replica_id: str) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None or replica.deleting:
            return
        if not replica.containers:  # never started: nothing to stop
            self._forget(replica)
            return
        replica.deleting = True
        self._stopping[replica_id] = self._tasks.spawn(
            self._stop(replica), name=f"stop {replica_id}"
        )

    def list_replicas(self, api_name: str | None = None) -> list[ReplicaInfo]:
        replicas = sorted(self._replicas.values(), key=lambda r: r.created_at)
        return [
            r.info(stalled_after_s=self.stalled_after_s)
            for r in replicas
            if api_name is None or r.template.api_name == api_name
        ]

    def capacity(self) -> NodeCapacity:
        return self._ledger.snapshot()

    def stream_logs(
        self, api_name: str, *, job_id: str | None = None, follow: bool = False
    ) -> AsyncIterator[str]:
        folder = log_dir(self.state_dir, api_name, job_id)
        return stream_log_folder(folder, follow=follow, poll_s=self.log_poll_s)

    # ---- internals

    def _tick(self) -> None:
        self._schedule()
        for replica in list(self._replicas.values()):
            if replica.scheduled and replica.finished and not replica.released:
                replica.released = True
                replica.quiesce()
                self._ledger.release(replica.id)
        self._tell_listener()

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _tell_listener(self) -> None:
        """Call the listener when any replica's status changed since the last tick."""
        seen = {
            r.id: r.status(stalled_after_s=self.stalled_after_s) for r in self._replicas.values()
        }
        if seen != self._seen:
            for listener in self._listeners:
                listener()
        self._seen = seen

    def _schedule(self) -> None:
        pending = [r for r in self._replicas.values() if not r.scheduled and not r.deleting]
        for replica in sorted(pending, key=lambda r: r.created_at):
            if replica.config_error is not None:
                continue
            gpus = self._ledger.take(replica.id, replica.request)
            if gpus is None:
                free = self._ledger.free()
                replica.pending_message = (
                    f"insufficient capacity on the node: the replica requests {replica.request}; "
                    f"free: {free}"
                )
                continue
            try:
                replica.start(
                    gpus,
                    node_gpus=self._ledger.node.gpus,
                    base_env=self._base_env,
                    log_level=self.log_level,
                    cli_config_dir=self.cli_config_dir,
                    tunables=self.tunables,
                )
            except OSError as exc:  # its folder or log file cannot be made
                replica.config_error = f"replica {replica.id} cannot start: {exc}"
                self._ledger.release(replica.id)

    async def _check_memory(self) -> None:
        watched: list[tuple[Container, int, int]] = []
        for replica in self._replicas.values():
            for container in replica.containers:
                pid, limit = container.alive_pid, container.mem_limit
                if pid is not None and limit is not None:
                    watched.append((container, pid, limit))
        if not watched:
            return
        sizes = await asyncio.to_thread(lambda: [tree_rss(pid) for _, pid, _ in watched])
        for (container, pid, limit), rss in zip(watched, sizes, strict=True):
            if rss > limit and container.alive_pid == pid:
                container.oom_kill(rss)

    async def _stop(self, replica: Replica) -> None:
        try:
            await replica.stop(self.tunables.grace_period_s)
        finally:
            self._forget(replica)
            self._stopping.pop(replica.id, None)
            await asyncio.to_thread(shutil.rmtree, replica.dir, True)

    def _forget(self, replica: Replica) -> None:
        self._replicas.pop(replica.id, None)
        self._ledger.release(replica.id)

    def _free_port(self) -> int:
        """A loopback port free now and not given to another live replica."""
        taken = {r.port for r in self._replicas.values()}
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in taken:
                return port


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
