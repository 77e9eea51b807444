"""Readiness of the user's server, checked by the dequeuer before it receives (SPEC 5.2).

The dequeuer takes work only while the user container is ready: the worker waits on
:meth:`ReadinessGate.wait_ready` before every receive. The gate runs one probe loop with the
kubelet's semantics: wait ``initial_delay``, then one attempt every ``period`` (the first
attempt right after the delay, as the local backend does, rather than one period later); the
state turns ready after ``success_threshold`` consecutive successes and not ready after
``failure_threshold`` consecutive failures; it starts not ready.

Which probe: the user's readiness probe when it is an ``http_get`` or ``tcp_socket`` one (a
probe on ``pod.port`` is sent to ``CORTEX_PORT``, where the local replica really listens);
otherwise a TCP connect to ``CORTEX_PORT`` every ``probe_period_s`` with thresholds 1/1 (SPEC
5.2's default probe). ``exec`` probes are not run by the dequeuer (SPEC: http/tcp only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cortex.dataplane.dequeuer.user_client import UserGetter, UserServerUnreachable
from cortex.spec.models import Probe

log = logging.getLogger("cortex.dequeuer.probes")

HOST = "127.0.0.1"

Check = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay_s: float = 0.0
    period_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 1


async def tcp_connect(port: int, timeout_s: float) -> bool:
    """Whether a TCP connection to 127.0.0.1:``port`` opens within ``timeout_s``."""
    try:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
        # lands as the connection opens, and then the probe task never ends
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(HOST, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_get(client: UserGetter, url: str, timeout_s: float) -> bool:
    """Whether ``GET url`` answers 200..399 within ``timeout_s`` (kubelet's rule)."""
    try:
        response = await client.get(
            url, timeout_s=timeout_s, headers=(("User-Agent", "kube-probe/cortex"),)
        )
    except UserServerUnreachable:
        return False
    return 200 <= response.status_code < 400


def build_check(
    probe: Probe | None,
    *,
    user_port: int,
    pod_port: int | None,
    client: UserGetter,
    default_period_s: float = 1.0,
) -> tuple[Check, ProbeTiming]:
    """The check and timing the gate runs: the user's http/tcp probe, else the default TCP one."""
    if probe is None or (probe.http_get is None and probe.tcp_socket is None):
        return (lambda: tcp_connect(user_port, 1.0)), ProbeTiming(period_s=default_period_s)
    timing = ProbeTiming(
        initial_delay_s=probe.initial_delay_seconds,
        period_s=max(probe.period_seconds, 1),
        success_threshold=max(probe.success_threshold, 1),
        failure_threshold=max(probe.failure_threshold, 1),
    )
    timeout_s = float(max(probe.timeout_seconds, 1))

    def port_of(port: int) -> int:
        return user_port if port == pod_port else port

    if probe.http_get is not None:
        path = probe.http_get.path
        path = path if path.startswith("/") else "/" + path
        url = f"http://{HOST}:{port_of(probe.http_get.port)}{path}"
        return (lambda: http_get(client, url, timeout_s)), timing
    assert probe.tcp_socket is not None
    port = port_of(probe.tcp_socket.port)
    return (lambda: tcp_connect(port, timeout_s)), timing


class ReadinessGate:
    """The probe loop's current verdict; :meth:`run` keeps it up to date until cancelled."""

    def __init__(self, check: Check, timing: ProbeTiming) -> None:
        self._check = check
        self._timing = timing
        self._ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        """Probe forever (the caller owns and cancels this task)."""
        await asyncio.sleep(self._timing.initial_delay_s)
        successes = failures = 0
        while True:
            ok = await self._check()
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            self._update(successes, failures)
            await asyncio.sleep(self._timing.period_s)

    def _update(self, successes: int, failures: int) -> None:
        if not self.ready and successes >= self._timing.success_threshold:
            log.info("user container is ready")
            self._ready.set()
        elif self.ready and failures >= self._timing.failure_threshold:
            log.warning("user container is not ready; pausing receives")
            self._ready.clear()
