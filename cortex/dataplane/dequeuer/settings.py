"""Dequeuer process settings: the only place the dequeuer reads ``os.environ``.

The operator builds a :class:`DequeuerSettings` for each AsyncAPI replica and BatchAPI worker,
turns it into ``CORTEX_DEQUEUER_*`` variables with :meth:`DequeuerSettings.to_env` (the sidecar
container's env), and the process reads them back with :meth:`DequeuerSettings.from_env`. The
user's port arrives separately as ``CORTEX_PORT``, which the backend gives every container of a
replica (locally it is the replica's own loopback port, not ``pod.port``).

Timers are local-friendly defaults (SPEC 5.3's are 10 s long polls and 30 s leases on SQS): a
short long-poll wait keeps SIGTERM and empty-queue detection quick; a waiting receive costs one
small query per broker poll interval either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from cortex.errors import CortexError
from cortex.spec.kinds import Kind
from cortex.spec.models import Probe

PREFIX = "CORTEX_DEQUEUER_"
PORT_VAR = "CORTEX_PORT"


class DequeuerMode(StrEnum):
    ASYNC = "async"
    BATCH = "batch"


class DequeuerSettingsError(CortexError):
    """A missing or malformed ``CORTEX_DEQUEUER_*`` variable."""

    code = "dequeuer.settings"
    status_code = 400


@dataclass(frozen=True)
class DequeuerSettings:
    mode: DequeuerMode  # MODE: async (AsyncAPI replicas) or batch (BatchAPI workers)
    queue_url: str  # QUEUE_URL: cortex.queue.open_broker URL
    queue_name: str  # QUEUE_NAME: the API's (async) or the job's (batch) queue
    storage_url: str  # STORAGE_URL: cortex.storage.open_store URL
    api_name: str  # API_NAME
    api_kind: Kind  # API_KIND
    user_port: int | None = None  # CORTEX_PORT (not CORTEX_DEQUEUER_*): the user's server
    pod_port: int | None = None  # POD_PORT: pod.port; a probe on it is sent to user_port
    workers: int = 1  # WORKERS: messages handled at once (async: pod.max_concurrency)
    job_id: str | None = None  # JOB_ID: batch only
    probe: Probe | None = None  # PROBE (JSON): the user's readiness probe; None: TCP on CORTEX_PORT
    visibility_timeout_s: float = 60.0  # VISIBILITY_TIMEOUT_S: lease; renewed every third of it
    receive_wait_s: float = 1.0  # RECEIVE_WAIT_S: long-poll wait of one receive
    probe_period_s: float = 1.0  # PROBE_PERIOD_S: period of the default TCP probe
    empty_checks: int = 3  # EMPTY_CHECKS: batch: consecutive empty polls before finishing
    drain_timeout_s: float = 30.0  # DRAIN_TIMEOUT_S: SIGTERM grace for in-flight messages
    max_receive_count: int | None = None  # MAX_RECEIVE_COUNT: batch: set iff the job has a DLQ
    completion_queue: str | None = None  # COMPLETION_QUEUE: batch; default <queue_name>-complete
    metrics_period_s: float = 1.0  # METRICS_PERIOD_S: batch: per-worker metrics write period
    worker_id: str | None = None  # WORKER_ID: batch metrics file name; default: random per process
    admin_port: int | None = None  # ADMIN_PORT: async: Prometheus /metrics on 127.0.0.1 if set
    log_level: str = "INFO"  # CORTEX_LOG_LEVEL (set by the backend, not by to_env)

    @property
    def has_dead_letter_queue(self) -> bool:
        return self.max_receive_count is not None

    @property
    def completion_queue_name(self) -> str:
        """The batch job's completion queue (contracts: ``<job queue>-complete``)."""
        return self.completion_queue or f"{self.queue_name}-complete"

    def to_env(self) -> dict[str, str]:
        """``CORTEX_DEQUEUER_*`` variables (and ``CORTEX_PORT`` when ``user_port`` is set);
        unset optional fields are left out. ``from_env(s.to_env()) == s`` (log level aside)."""
        env: dict[str, str] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None or field.name == "log_level":
                continue
            if field.name == "user_port":
                env[PORT_VAR] = str(value)
            elif isinstance(value, Probe):
                env[_var("probe")] = value.model_dump_json(exclude_defaults=True)
            else:
                env[_var(field.name)] = str(value)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DequeuerSettings:
        """Read the variables ``to_env`` writes (``env`` defaults to ``os.environ``)."""
        e = os.environ if env is None else env
        try:
            return cls(**_required(e), **_optional(e))
        except (ValueError, ValidationError) as exc:
            raise DequeuerSettingsError(f"invalid dequeuer settings: {exc}") from exc


def _var(name: str) -> str:
    return PREFIX + name.upper()


def _required(e: Mapping[str, str]) -> dict[str, Any]:
    names = ("mode", "queue_url", "queue_name", "storage_url", "api_name", "api_kind")
    missing = [_var(n) for n in names if not e.get(_var(n))]
    if missing:
        raise DequeuerSettingsError(f"missing environment variables: {', '.join(missing)}")
    got: dict[str, Any] = {n: e[_var(n)] for n in names}
    got["mode"] = DequeuerMode(e[_var("mode")])
    got["api_kind"] = Kind(e[_var("api_kind")])
    return got


_INTS = ("pod_port", "workers", "empty_checks", "max_receive_count", "admin_port")
_FLOATS = (
    "visibility_timeout_s",
    "receive_wait_s",
    "probe_period_s",
    "drain_timeout_s",
    "metrics_period_s",
)
_STRS = ("job_id", "completion_queue", "worker_id")


def _optional(e: Mapping[str, str]) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for name in _INTS:
        if e.get(_var(name)):
            got[name] = int(e[_var(name)])
    for name in _FLOATS:
        if e.get(_var(name)):
            got[name] = float(e[_var(name)])
    for name in _STRS:
        if e.get(_var(name)):
            got[name] = e[_var(name)]
    if e.get(PORT_VAR):
        got["user_port"] = int(e[PORT_VAR])
    if e.get(_var("probe")):
        got["probe"] = Probe.model_validate_json(e[_var("probe")])
    if e.get("CORTEX_LOG_LEVEL"):
        got["log_level"] = e["CORTEX_LOG_LEVEL"]
    return got
