"""One container of a local replica: a process group that is started, probed, restarted, stopped.

Lifecycle of :meth:`Container.run` (the container's own task):

1. waiting (ContainerCreating) -> spawn ``argv`` in its own session (so its process group can
   be signalled as a whole), stdout/stderr pumped into the replica's log file;
2. running: readiness and liveness probe loops run beside it; a liveness failure stops the
   process (SIGTERM, grace, SIGKILL) as the kubelet does; the supervisor may kill it for memory
   (the run then ends ``OOMKilled``);
3. ended: the exit is recorded as a Kubernetes termination (exit code, or 128+N when signal N
   ended it); with restart policy Always it waits (CrashLoopBackOff) 1 s, 2 s, 4 s ... capped,
   the back-off reset after a run that lasted twice the cap, and starts again (``restarts``
   counted); with Never it stays terminated and tells the replica (kubexit, SPEC 11.6).

A container stopped because a sibling ended (kubexit death dependency) records exit 0, as
kubexit with ``KUBEXIT_IGNORE_CODE_ON_DEATH_DEPS=true`` reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from cortex.backends.base import RestartPolicy
from cortex.backends.local.logs import LogSink
from cortex.backends.local.probes import ProbeLoop, Target, Timing
from cortex.backends.local.status import OOM_REASON, ContainerObs, State, Terminated

if TYPE_CHECKING:
    from cortex.spec.models import ContainerSpec

log = logging.getLogger(__name__)

PIPE_LIMIT = 1 << 20  # longest line read at once; longer lines are logged in pieces


@dataclass(frozen=True)
class Tunables:
    """Timings of the process supervisor (seconds)."""

    grace_period_s: float = 60.0
    restart_backoff_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    default_probe_period_s: float = 1.0


@dataclass(frozen=True)
class Launch:
    """How to start one container: the expanded argv, full env, folder, and where probes go."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    target: Target


class Container:
    """One container's process, its Kubernetes-style state, and its probes."""

    def __init__(
        self,
        spec: ContainerSpec,
        launch: Launch,
        *,
        sink: LogSink,
        policy: RestartPolicy,
        tunables: Tunables,
        on_spawn: Callable[[], None],
        on_end: Callable[[Container], None],
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.launch = launch
        self.sink = sink
        self.policy = policy
        self.tunables = tunables
        self._on_spawn = on_spawn
        self._on_end = on_end
        self.obs = ContainerObs(State.WAITING, reason="ContainerCreating")
        self.restarts = 0
        self.message = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.create_time = 0.0
        self.stopping = False
        self._death_dep = False
        self._oom = False
        self._kill_signal = signal.SIGTERM
        self._wake = asyncio.Event()
        self.finished = asyncio.Event()

    @property
    def mem_limit(self) -> int | None:
        mem = self.spec.compute.mem
        return int(mem) if mem is not None else None

    @property
    def alive_pid(self) -> int | None:
        proc = self.proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def run(self) -> None:
        """The whole life of the container; returns when it will not run again."""
        try:
            backoff = self.tunables.restart_backoff_s
            while not self.stopping:
                ran_s = await self._run_once()
                if self.stopping or self.policy == RestartPolicy.NEVER:
                    break
                if ran_s >= 2 * self.tunables.restart_backoff_max_s:
                    backoff = self.tunables.restart_backoff_s
                self.obs = replace(self.obs, state=State.WAITING, reason="CrashLoopBackOff")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff)
                if self.stopping:
                    break
                self.restarts += 1
                backoff = min(backoff * 2, self.tunables.restart_backoff_max_s)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self.obs.state != State.TERMINATED:
            term = self.obs.last_terminated
            if term is None or self._death_dep:
                term = Terminated(0, "Completed") if self._death_dep else Terminated(143, "Error")
            self.obs = ContainerObs(State.TERMINATED, terminated=term)
        self.finished.set()

    async def _run_once(self) -> float:
        """Start the process and wait for it to end; how long it ran (s)."""
        self._oom = False
        proc = await self._spawn()
        if proc is None:
            return 0.0
        started = time.monotonic()
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(self.sink.pump(proc.stdout, self.name, "stdout"), name="stdout"),
            asyncio.create_task(self.sink.pump(proc.stderr, self.name, "stderr"), name="stderr"),
        ]
        probes = self._probe_tasks()
        try:
            returncode = await proc.wait()
        finally:
            self._signal_group(proc.pid, signal.SIGKILL)  # what the group left behind
            for task in probes:
                task.cancel()
            await asyncio.wait([*pumps, *probes], timeout=5.0)
            for task in pumps:
                task.cancel()  # a descendant that left the group may still hold the pipe
        self._record_exit(returncode)
        return time.monotonic() - started

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        self.obs = replace(self.obs, state=State.WAITING, reason="ContainerCreating")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.launch.argv,
                cwd=self.launch.cwd,
                env=self.launch.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=PIPE_LIMIT,
            )
        except OSError as exc:
            self.message = f"container {self.name} failed to start: {exc}"
            self.sink.write(self.name, "stderr", self.message)
            self._set_ended(Terminated(128, "StartError"))
            return None
        self.proc = proc
        with contextlib.suppress(psutil.Error):
            self.create_time = psutil.Process(proc.pid).create_time()
        self.obs = ContainerObs(
            State.RUNNING,
            ready=self.spec.readiness_probe is None,
            last_terminated=self.obs.last_terminated,
        )
        self._on_spawn()
        if self.stopping:
            self._signal_group(proc.pid, self._kill_signal)
        return proc

    def _probe_tasks(self) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        target = self.launch.target
        readiness = self.spec.readiness_probe
        check = target.probe_check(readiness) if readiness is not None else None
        if readiness is not None and check is not None:
            loop = ProbeLoop(check, Timing.of(readiness), initial=False)
            tasks.append(asyncio.create_task(loop.run(self._set_ready), name="readiness"))
        liveness = self.spec.liveness_probe
        check = target.probe_check(liveness) if liveness is not None else None
        if liveness is not None and check is not None:
            loop = ProbeLoop(check, Timing.of(liveness), initial=True)
            tasks.append(asyncio.create_task(loop.run(self._liveness_changed), name="liveness"))
        return tasks

    def _set_ready(self, ready: bool) -> None:
        if self.obs.state == State.RUNNING:
            self.obs = replace(self.obs, ready=ready)

    def _liveness_changed(self, alive: bool) -> None:
        if not alive and self.proc is not None and self.proc.returncode is None:
            self.message = f"container {self.name} failed its liveness probe; restarting it"
            self.sink.write(self.name, "stderr", self.message)
            self._signal_group(self.proc.pid, signal.SIGTERM)
            pid = self.proc.pid
            grace = self.tunables.grace_period_s
            asyncio.get_running_loop().call_later(grace, self._kill_if_alive, self.proc, pid)

    def _kill_if_alive(self, proc: asyncio.subprocess.Process, pid: int) -> None:
        if proc.returncode is None:
            self._signal_group(pid, signal.SIGKILL)

    def _record_exit(self, returncode: int) -> None:
        signaled = returncode < 0
        code = 128 - returncode if signaled else returncode
        if self._death_dep:
            term = Terminated(0, "Completed")
        elif self._oom:
            term = Terminated(137, OOM_REASON, signaled=True)
        else:
            term = Terminated(code, "Completed" if code == 0 else "Error", signaled=signaled)
            if signaled:
                self.message = (
                    f"container {self.name} was killed by {signal.Signals(-returncode).name}"
                )
            elif code != 0:
                self.message = f"container {self.name} exited with code {code}"
        self._set_ended(term)

    def _set_ended(self, term: Terminated) -> None:
        if self.policy == RestartPolicy.NEVER or self.stopping:
            self.obs = ContainerObs(State.TERMINATED, terminated=term)
            if not self.stopping:
                self._on_end(self)
        else:
            self.obs = ContainerObs(State.WAITING, reason="CrashLoopBackOff", last_terminated=term)

    def oom_kill(self, rss: int) -> None:
        """Kill the container for using more memory than its ``compute.mem``."""
        pid = self.alive_pid
        if pid is None:
            return
        self._oom = True
        self.message = (
            f"container {self.name} was killed: it used {rss} bytes of memory, over its "
            f"limit of {self.mem_limit} bytes"
        )
        self.sink.write(self.name, "stderr", self.message)
        self._signal_group(pid, signal.SIGKILL)

    async def stop(self, grace_s: float, *, death_dep: bool = False) -> None:
        """SIGTERM the group, SIGKILL it after ``grace_s``; returns when the run has ended."""
        if self.finished.is_set():
            return
        if death_dep and not self.stopping:
            self._death_dep = True
        self.stopping = True
        self._wake.set()
        if (pid := self.alive_pid) is not None:
            self._signal_group(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.finished.wait(), grace_s)
        except TimeoutError:
            self._kill_signal = signal.SIGKILL
            if (pid := self.alive_pid) is not None:
                self._signal_group(pid, signal.SIGKILL)
            await self.finished.wait()

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (blocking: psutil)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total
