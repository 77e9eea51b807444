"""The operator process's settings: read once from ``CORTEX_*`` variables, then passed down.

This is the only module of the operator that reads ``os.environ``; everything else receives an
:class:`OperatorSettings` (or the few values it needs) as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cortex.queue import default_queue_url
from cortex.spec.quantity import Quantity
from cortex.storage import default_storage_url

DEFAULT_OPERATOR_PORT = 8888
DEFAULT_API_PORT = 8889
DEFAULT_ASYNC_RETENTION_S = 7 * 24 * 3600.0


class SettingsError(ValueError):
    """A ``CORTEX_*`` variable is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class JobSettings:
    """The job manager's timers (seconds), from ``CORTEX_JOB_*``; part of
    :class:`OperatorSettings` (``settings.jobs``). Defaults are the original's where it had one
    (60 s lease); the manager's own period is short because a local status check costs one
    listing."""

    period_s: float = 1.0  # CORTEX_JOB_PERIOD_S: seconds between two job status passes
    visibility_timeout_s: float = 60.0  # CORTEX_JOB_VISIBILITY_TIMEOUT_S: a batch's lease
    # CORTEX_JOB_RECEIVE_WAIT_S: a worker's long-poll wait. It only matters once the queue is
    # empty (a receive returns at once while batches remain), so it is short: the job ends soon
    # after its last batch.
    receive_wait_s: float = 0.25
    # CORTEX_JOB_EMPTY_CHECKS: empty polls before a worker finishes. One is enough: workers start
    # only once enqueuing has ended, and the queue's counts are exact (visible + in flight == 0
    # means no batch is left, nor one being worked on that could be released again).
    empty_checks: int = 1
    metrics_period_s: float = 1.0  # CORTEX_JOB_METRICS_PERIOD_S: worker metrics write period

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        return cls(
            period_s=_positive(env, "CORTEX_JOB_PERIOD_S", cls.period_s),
            visibility_timeout_s=_positive(
                env, "CORTEX_JOB_VISIBILITY_TIMEOUT_S", cls.visibility_timeout_s
            ),
            receive_wait_s=_positive(env, "CORTEX_JOB_RECEIVE_WAIT_S", cls.receive_wait_s),
            empty_checks=_positive_int(env, "CORTEX_JOB_EMPTY_CHECKS", cls.empty_checks),
            metrics_period_s=_positive(env, "CORTEX_JOB_METRICS_PERIOD_S", cls.metrics_period_s),
        )


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator process is configured with.

    Durations are seconds, memory is bytes, CPU is millicores. ``node_*`` overrides are None when
    the node's real capacity should be detected by the backend.
    """

    state_dir: Path  # CORTEX_STATE_DIR: state.db, replicas/, logs/ (default <cli_config_dir>/local)
    token: str  # CORTEX_OPERATOR_TOKEN: the bearer token every authenticated route requires
    cli_config_dir: Path  # CORTEX_CLI_CONFIG_DIR (default ~/.cortex): given to replicas' clients
    host: str = "127.0.0.1"  # the REST API listens on loopback only
    port: int = DEFAULT_OPERATOR_PORT  # CORTEX_OPERATOR_PORT: the REST API's port
    api_port: int = DEFAULT_API_PORT  # CORTEX_API_PORT: the gateway's port (for endpoint URLs)
    reconcile_period_s: float = 1.0  # CORTEX_RECONCILE_PERIOD_S: seconds between reconciler passes
    drain_timeout_s: float = 30.0  # CORTEX_DRAIN_TIMEOUT_S: max seconds to drain an old replica
    node_cpu_millis: int | None = None  # CORTEX_NODE_CPU (quantity, e.g. "4" or "3500m")
    node_mem_bytes: int | None = None  # CORTEX_NODE_MEM (quantity, e.g. "8Gi")
    node_gpus: int | None = None  # CORTEX_NODE_GPUS (int)
    stalled_after_s: float = 900.0  # CORTEX_STALLED_AFTER_S: Pending this long becomes Stalled
    log_level: str = "INFO"  # CORTEX_LOG_LEVEL: Python logging level name
    shutdown_timeout_s: float = 5.0  # CORTEX_SHUTDOWN_TIMEOUT_S: wait for open requests on exit
    autoscaler_tick_s: float = 10.0  # CORTEX_AUTOSCALER_TICK_S: seconds between autoscaler ticks
    inflight_sample_s: float = 1.0  # CORTEX_INFLIGHT_SAMPLE_S: in-flight sampling period
    inflight_report_s: float = 10.0  # CORTEX_INFLIGHT_REPORT_S: in-flight averaging period
    request_metrics_window_s: float = 900.0  # CORTEX_REQUEST_METRICS_WINDOW_S: `cortex get`
    # CORTEX_QUEUE_URL: the queue broker (default "sqlite:///<state_dir>/queues.db")
    queue_url: str = ""
    # CORTEX_STORAGE_URL: the object store (default the folder "<state_dir>/storage")
    storage_url: str = ""
    # CORTEX_ASYNC_RETENTION_S: AsyncAPI payloads, results and statuses are removed this long
    # after their last status change (7 days)
    async_retention_s: float = DEFAULT_ASYNC_RETENTION_S
    # CORTEX_ASYNC_SWEEP_PERIOD_S: seconds between two passes of the retention sweeper
    async_sweep_period_s: float = 300.0
    # CORTEX_ASYNC_VISIBILITY_TIMEOUT_S: an AsyncAPI queue's visibility timeout, also the
    # dequeuer's lease: a request whose worker died is delivered again after it
    async_visibility_timeout_s: float = 30.0
    # CORTEX_JOB_*: the BatchAPI/TaskAPI job manager's timers
    jobs: JobSettings = field(default_factory=JobSettings)

    def __post_init__(self) -> None:
        """Empty URLs mean the embedded defaults under ``state_dir``."""
        if not self.queue_url:
            object.__setattr__(self, "queue_url", default_queue_url(self.state_dir))
        if not self.storage_url:
            object.__setattr__(self, "storage_url", default_storage_url(self.state_dir))

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def operator_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Base URL of the gateway; an API's endpoint URL is this plus its endpoint path."""
        return f"http://127.0.0.1:{self.api_port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read the settings from ``env`` (default ``os.environ``).

        Raises :class:`SettingsError` when ``CORTEX_OPERATOR_TOKEN`` is unset (an operator without
        a token would let anyone on the machine deploy and run processes) or a value is malformed.
        """
        env = os.environ if env is None else env
        token = env.get("CORTEX_OPERATOR_TOKEN", "")
        if not token:
            raise SettingsError("CORTEX_OPERATOR_TOKEN must be set to the operator's bearer token")
        cli_config_dir = _path(env.get("CORTEX_CLI_CONFIG_DIR") or "~/.cortex")
        state_raw = env.get("CORTEX_STATE_DIR")
        settings = cls(
            state_dir=_path(state_raw) if state_raw else cli_config_dir / "local",
            token=token,
            cli_config_dir=cli_config_dir,
            port=_int(env, "CORTEX_OPERATOR_PORT", DEFAULT_OPERATOR_PORT),
            api_port=_int(env, "CORTEX_API_PORT", DEFAULT_API_PORT),
            reconcile_period_s=_float(env, "CORTEX_RECONCILE_PERIOD_S", 1.0),
            drain_timeout_s=_float(env, "CORTEX_DRAIN_TIMEOUT_S", 30.0),
            node_cpu_millis=_quantity(env, "CORTEX_NODE_CPU", milli=True),
            node_mem_bytes=_quantity(env, "CORTEX_NODE_MEM", milli=False),
            node_gpus=_opt_int(env, "CORTEX_NODE_GPUS"),
            stalled_after_s=_float(env, "CORTEX_STALLED_AFTER_S", 900.0),
            log_level=env.get("CORTEX_LOG_LEVEL", "INFO").upper(),
            shutdown_timeout_s=_float(env, "CORTEX_SHUTDOWN_TIMEOUT_S", 5.0),
            autoscaler_tick_s=_positive(env, "CORTEX_AUTOSCALER_TICK_S", 10.0),
            inflight_sample_s=_positive(env, "CORTEX_INFLIGHT_SAMPLE_S", 1.0),
            inflight_report_s=_positive(env, "CORTEX_INFLIGHT_REPORT_S", 10.0),
            request_metrics_window_s=_positive(env, "CORTEX_REQUEST_METRICS_WINDOW_S", 900.0),
            queue_url=env.get("CORTEX_QUEUE_URL", ""),
            storage_url=env.get("CORTEX_STORAGE_URL", ""),
            async_retention_s=_positive(env, "CORTEX_ASYNC_RETENTION_S", DEFAULT_ASYNC_RETENTION_S),
            async_sweep_period_s=_positive(env, "CORTEX_ASYNC_SWEEP_PERIOD_S", 300.0),
            async_visibility_timeout_s=_positive(env, "CORTEX_ASYNC_VISIBILITY_TIMEOUT_S", 30.0),
            jobs=JobSettings.from_env(env),
        )
        if settings.inflight_sample_s > settings.inflight_report_s:
            raise SettingsError(
                "CORTEX_INFLIGHT_SAMPLE_S cannot be longer than CORTEX_INFLIGHT_REPORT_S"
            )
        return settings


def _path(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _opt_int(env, name)
    return default if value is None else value


def _opt_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer (got {raw!r})") from exc


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be a positive integer (got {env[name]!r})")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of seconds (got {raw!r})") from exc
    if value < 0:
        raise SettingsError(f"{name} cannot be negative (got {raw!r})")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be a positive number of seconds (got {env[name]!r})")
    return value


def _quantity(env: Mapping[str, str], name: str, *, milli: bool) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        quantity = Quantity.parse(raw)
    except ValueError as exc:
        raise SettingsError(
            f"{name} must be a quantity such as 4, 3500m or 8Gi (got {raw!r})"
        ) from exc
    return quantity.milli() if milli else int(quantity)
