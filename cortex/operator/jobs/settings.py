"""The job manager's timers (seconds), read from ``CORTEX_JOB_*`` variables.

Kept beside the job package rather than in :class:`~cortex.operator.settings.OperatorSettings`
so the job manager can be configured without touching the operator's settings module; the
process entry point passes the environment in (nothing here reads ``os.environ`` itself).
Defaults are the original's where it had one (60 s lease); the manager's own period is short
because a local status check costs one listing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cortex.operator.settings import SettingsError


@dataclass(frozen=True)
class JobSettings:
    period_s: float = 1.0  # CORTEX_JOB_PERIOD_S: seconds between two job status passes
    visibility_timeout_s: float = 60.0  # CORTEX_JOB_VISIBILITY_TIMEOUT_S: a batch's lease
    receive_wait_s: float = 1.0  # CORTEX_JOB_RECEIVE_WAIT_S: a worker's long-poll wait
    empty_checks: int = 3  # CORTEX_JOB_EMPTY_CHECKS: empty polls before a worker finishes
    metrics_period_s: float = 1.0  # CORTEX_JOB_METRICS_PERIOD_S: worker metrics write period

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        return cls(
            period_s=_seconds(env, "CORTEX_JOB_PERIOD_S", cls.period_s),
            visibility_timeout_s=_seconds(
                env, "CORTEX_JOB_VISIBILITY_TIMEOUT_S", cls.visibility_timeout_s
            ),
            receive_wait_s=_seconds(env, "CORTEX_JOB_RECEIVE_WAIT_S", cls.receive_wait_s),
            empty_checks=int(_seconds(env, "CORTEX_JOB_EMPTY_CHECKS", cls.empty_checks)),
            metrics_period_s=_seconds(env, "CORTEX_JOB_METRICS_PERIOD_S", cls.metrics_period_s),
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number (got {raw!r})") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive (got {raw!r})")
    return value
