"""Readiness and liveness probes with Kubernetes semantics, all non-blocking (asyncio).

Actions (one attempt each, bounded by the probe's timeout):

* ``http_get``: ``GET <path>`` on 127.0.0.1:<port>; success is a status in 200..399.
* ``tcp_socket``: a TCP connect to 127.0.0.1:<port> succeeds.
* ``exec``: the command, run in the container's folder and environment, exits 0 (killed with its
  whole process group on timeout).

A probe aimed at ``pod.port`` reaches the replica's own loopback port (``CORTEX_PORT``): that
is where the local replica listens. Timing, as the kubelet's prober worker: wait
``initial_delay``, then one attempt every ``period``; the result flips to success after
``success_threshold`` consecutive successes and to failure after ``failure_threshold``
consecutive failures. Readiness starts failed, liveness starts succeeded.

One departure: while a readiness probe has not succeeded, attempts come every
:data:`NOT_READY_PERIOD_S` (or the probe's period, if shorter), so a replica is routed within a
tenth of a second of answering rather than up to a whole period later (Kubernetes' delay there
only slows rollouts and wake-ups from zero). Once ready, the probe's own period applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cortex.backends.local.env import expand

if TYPE_CHECKING:
    from cortex.spec.models import ExecAction, HTTPGetAction, Probe

HOST = "127.0.0.1"
NOT_READY_PERIOD_S = 0.1

Check = Callable[[float], Awaitable[bool]]  # one attempt, given its timeout in seconds


@dataclass(frozen=True)
class Timing:
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Probe) -> Timing:
        return cls(
            initial_delay_s=float(probe.initial_delay_seconds),
            period_s=float(max(probe.period_seconds, 1)),
            timeout_s=float(max(probe.timeout_seconds, 1)),
            success_threshold=max(probe.success_threshold, 1),
            failure_threshold=max(probe.failure_threshold, 1),
        )


async def http_get(port: int, path: str, timeout_s: float) -> bool:
    """One HTTP/1.1 GET; True for a 2xx/3xx status line."""
    if not path.startswith("/"):
        path = "/" + path
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                request += "User-Agent: kube-probe/cortex\r\nConnection: close\r\n\r\n"
                writer.write(request.encode("latin-1"))
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400


async def tcp_connect(port: int, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return True


async def run_exec(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout_s: float
) -> bool:
    """Run ``argv``; True if it exits 0 within ``timeout_s``. Output is discarded."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(timeout_s):
            return await proc.wait() == 0
    except TimeoutError:
        return False
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@dataclass(frozen=True)
class Target:
    """Where a container's probes and hooks go: ports mapped, env and folder for exec."""

    pod_port: int | None
    replica_port: int | None
    env: Mapping[str, str]
    defined: Mapping[str, str]  # the variables ``$(VAR)`` may use in exec commands
    cwd: Path

    def port(self, port: int) -> int:
        if port == self.pod_port and self.replica_port is not None:
            return self.replica_port
        return port

    def http_check(self, action: HTTPGetAction) -> Check:
        port = self.port(action.port)
        return lambda timeout_s: http_get(port, action.path, timeout_s)

    def exec_check(self, action: ExecAction) -> Check:
        # $(VAR) in exec commands is a local convenience (Kubernetes leaves it literal): the
        # replica's port is not pod.port here, so a probe must be able to name CORTEX_PORT.
        argv = [expand(part, self.defined) for part in action.command]
        return lambda timeout_s: run_exec(argv, env=self.env, cwd=self.cwd, timeout_s=timeout_s)

    def probe_check(self, probe: Probe) -> Check | None:
        if probe.http_get is not None:
            return self.http_check(probe.http_get)
        if probe.tcp_socket is not None:
            port = self.port(probe.tcp_socket.port)
            return lambda timeout_s: tcp_connect(port, timeout_s)
        if probe.exec is not None:
            return self.exec_check(probe.exec)
        return None


class ProbeLoop:
    """The kubelet's prober worker for one probe of one container run."""

    def __init__(self, check: Check, timing: Timing, *, initial: bool) -> None:
        self.check = check
        self.timing = timing
        self.result = initial
        self._readiness = not initial  # readiness starts failed; liveness starts succeeded

    async def run(self, on_change: Callable[[bool], None]) -> None:
        """Probe forever (until cancelled), calling ``on_change`` when the result flips."""
        await asyncio.sleep(self.timing.initial_delay_s)
        successes = failures = 0
        while True:
            started = time.monotonic()
            ok = await self._attempt()
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if ok != self.result and self._crossed(successes, failures):
                self.result = ok
                on_change(ok)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self._period_s() - elapsed))

    def _period_s(self) -> float:
        if self._readiness and not self.result:
            return min(self.timing.period_s, NOT_READY_PERIOD_S)
        return self.timing.period_s

    def _crossed(self, successes: int, failures: int) -> bool:
        if successes:
            return successes >= self.timing.success_threshold
        return failures >= self.timing.failure_threshold

    async def _attempt(self) -> bool:
        try:
            async with asyncio.timeout(self.timing.timeout_s + 1.0):
                return await self.check(self.timing.timeout_s)
        except TimeoutError:
            return False
