"""An in-memory :class:`~cortex.backends.base.Backend` for unit tests of everything above it.

Nothing runs: a created replica is listed as ``Creating`` and stays so until the test moves it
(:meth:`FakeBackend.set_status`, :meth:`FakeBackend.make_ready`); a deleted one is listed as
``Terminating`` until :meth:`FakeBackend.finish_terminations`. Replica ids are deterministic
(``<api_name>-<seq>``, zero-padded so they sort in creation order) and ``created_at`` comes
from an injectable clock, so a test that steps a reconciler against it is fully reproducible.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

from cortex.backends.base import (
    Backend,
    NodeCapacity,
    ReplicaInfo,
    ReplicaStatus,
    ReplicaTemplate,
)
from cortex.backends.requests import Request, pod_request

_DEFAULT_NODE = NodeCapacity(cpu_millis=16_000, mem_bytes=64 * 2**30, gpus=0)


class FakeBackend:
    """Replicas as records in a dict; the test is the supervisor.

    Test controls: :meth:`set_status`, :meth:`make_ready`, :meth:`finish_terminations`,
    :meth:`add_log`; :attr:`created` (every template passed to :meth:`create_replica`, in order)
    and :attr:`deleted` (every id passed to :meth:`delete_replica` that was known, in order).
    """

    def __init__(
        self, *, node: NodeCapacity | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._node = node or _DEFAULT_NODE
        self._clock = clock
        self._seq = 0
        self._replicas: dict[str, ReplicaInfo] = {}  # insertion order = creation order
        self._templates: dict[str, ReplicaTemplate] = {}
        self._logs: list[tuple[str, str | None, str]] = []  # (api_name, job_id, line)
        self._log_added = asyncio.Event()
        self._closed = False
        self.started = False
        self.created: list[ReplicaTemplate] = []
        self.deleted: list[str] = []
        self.listeners: list[Callable[[], None]] = []  # tests may call them to mimic a change

    # --- Backend ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        """Drop every replica at once (nothing to stop) and end followed log streams."""
        self._replicas.clear()
        self._templates.clear()
        self._closed = True
        self._wake_log_readers()

    def create_replica(self, template: ReplicaTemplate) -> ReplicaInfo:
        self._seq += 1
        replica_id = f"{template.api_name}-{self._seq:04d}"
        info = ReplicaInfo.of(
            template,
            replica_id=replica_id,
            status=ReplicaStatus.CREATING,
            host="127.0.0.1",
            port=None if template.pod.port is None else 20_000 + self._seq,
            created_at=self._clock(),
        )
        self._replicas[replica_id] = info
        self._templates[replica_id] = template
        self.created.append(template)
        return info

    def delete_replica(self, replica_id: str) -> None:
        info = self._replicas.get(replica_id)
        if info is None:
            return
        self.deleted.append(replica_id)
        self._replicas[replica_id] = dataclasses.replace(info, status=ReplicaStatus.TERMINATING)

    def list_replicas(self, api_name: str | None = None) -> list[ReplicaInfo]:
        return [r for r in self._replicas.values() if api_name is None or r.api_name == api_name]

    def add_listener(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def capacity(self) -> NodeCapacity:
        used = Request()
        for template in self._templates.values():
            used = used + pod_request(template.pod)
        return dataclasses.replace(
            self._node,
            requested_cpu_millis=used.cpu_millis,
            requested_mem_bytes=used.mem_bytes,
            requested_gpus=used.gpus,
        )

    async def stream_logs(
        self, api_name: str, *, job_id: str | None = None, follow: bool = False
    ) -> AsyncIterator[str]:
        """Lines added with :meth:`add_log`; with ``follow``, later ones too until :meth:`close`."""
        sent = 0
        while True:
            added = self._log_added  # taken before reading, so no line added meanwhile is missed
            lines = [
                line
                for api, job, line in self._logs
                if api == api_name and (job_id is None or job == job_id)
            ]
            for line in lines[sent:]:
                yield line
            sent = len(lines)
            if not follow or self._closed:
                return
            await added.wait()

    # --- test controls ---------------------------------------------------------------------

    def template_of(self, replica_id: str) -> ReplicaTemplate:
        """The template a replica was created from (KeyError once it is gone)."""
        return self._templates[replica_id]

    def set_status(
        self,
        replica_id: str,
        status: ReplicaStatus,
        *,
        exit_code: int | None = None,
        message: str = "",
        restarts: int | None = None,
    ) -> None:
        """Move one replica to ``status`` (KeyError for an unknown id)."""
        info = self._replicas[replica_id]
        self._replicas[replica_id] = dataclasses.replace(
            info,
            status=status,
            exit_code=exit_code,
            message=message,
            restarts=info.restarts if restarts is None else restarts,
        )

    def make_ready(self, api_name: str | None = None) -> None:
        """Every replica (of ``api_name``, or of all APIs) that is not Terminating becomes Ready."""
        for replica in self.list_replicas(api_name):
            if replica.status != ReplicaStatus.TERMINATING:
                self.set_status(replica.replica_id, ReplicaStatus.READY)

    def finish_terminations(self) -> list[str]:
        """Forget every Terminating replica, as a backend does once its processes are gone;
        returns their ids."""
        gone = [
            r.replica_id for r in self._replicas.values() if r.status == ReplicaStatus.TERMINATING
        ]
        for replica_id in gone:
            del self._replicas[replica_id]
            del self._templates[replica_id]
        return gone

    def add_log(self, api_name: str, line: str, *, job_id: str | None = None) -> None:
        self._logs.append((api_name, job_id, line))
        self._wake_log_readers()

    def _wake_log_readers(self) -> None:
        self._log_added.set()
        self._log_added = asyncio.Event()


def _conforms(backend: FakeBackend) -> Backend:
    """Never called: makes mypy check that FakeBackend satisfies the Backend protocol."""
    return backend
