"""Gateway process settings: the only place the gateway reads ``os.environ``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cortex.queue import default_queue_url
from cortex.storage import default_storage_url


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"  # listen address
    port: int = 8889  # CORTEX_API_PORT; 0 picks a free port (tests)
    operator_url: str | None = None  # CORTEX_OPERATOR_URL; None: no sync, serve the given table
    token: str = ""  # CORTEX_OPERATOR_TOKEN: bearer token for the sync call
    state_dir: Path | None = None  # CORTEX_STATE_DIR: routes.json cache lives here
    sync_wait_s: float = (
        1.0  # long-poll wait asked of the operator (also the in-flight report period)
    )
    sync_backoff_max_s: float = 5.0  # retry back-off cap when the operator is unreachable
    drain_timeout_s: float = 30.0  # CORTEX_DRAIN_TIMEOUT_S: graceful-shutdown drain limit
    shadow_timeout_s: float = 30.0  # a shadow copy is abandoned after this long
    max_shadow_outstanding: int = 64  # more concurrent shadow copies than this are dropped
    log_level: str = "INFO"  # CORTEX_LOG_LEVEL
    # CORTEX_ACTIVATOR_TIMEOUT_S: a request held for an API waking from zero gets 503 after this
    activator_timeout_s: float = 300.0
    # CORTEX_QUEUE_URL / CORTEX_STORAGE_URL (AsyncAPI); None (no state dir either): async
    # routes answer 503. Defaults: the operator's, derived from the state dir.
    queue_url: str | None = None
    storage_url: str | None = None
    # CORTEX_ASYNC_STORAGE_THREADS: threads for the async gateway's blocking storage calls;
    # Python's executor default (measured here: 6 threads beat 32 on a 2-core machine)
    async_storage_threads: int = min(32, (os.cpu_count() or 1) + 4)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        """Read ``CORTEX_*`` variables (``env`` defaults to ``os.environ``)."""
        e = os.environ if env is None else env
        state_dir = e.get("CORTEX_STATE_DIR")
        state = Path(state_dir) if state_dir else None
        return cls(
            host=e.get("CORTEX_API_HOST", cls.host),
            port=int(e.get("CORTEX_API_PORT", cls.port)),
            operator_url=(e.get("CORTEX_OPERATOR_URL") or "").rstrip("/") or None,
            token=e.get("CORTEX_OPERATOR_TOKEN", ""),
            state_dir=state,
            drain_timeout_s=float(e.get("CORTEX_DRAIN_TIMEOUT_S", cls.drain_timeout_s)),
            log_level=e.get("CORTEX_LOG_LEVEL", cls.log_level),
            activator_timeout_s=float(e.get("CORTEX_ACTIVATOR_TIMEOUT_S", cls.activator_timeout_s)),
            queue_url=e.get("CORTEX_QUEUE_URL") or _queue_url(state),
            storage_url=e.get("CORTEX_STORAGE_URL") or _storage_url(state),
            async_storage_threads=int(
                e.get("CORTEX_ASYNC_STORAGE_THREADS", cls.async_storage_threads)
            ),
        )

    @property
    def routes_path(self) -> Path | None:
        """Where the last table is cached (``<state_dir>/routes.json``)."""
        return self.state_dir / "routes.json" if self.state_dir else None


def _queue_url(state_dir: Path | None) -> str | None:
    """The shared default (``cortex.queue.default_queue_url``); None without a state dir."""
    return default_queue_url(state_dir) if state_dir is not None else None


def _storage_url(state_dir: Path | None) -> str | None:
    """The shared default (``cortex.storage.default_storage_url``); None without a state dir."""
    return default_storage_url(state_dir) if state_dir is not None else None
