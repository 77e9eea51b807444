"""Start and stop the local cluster: the operator and the gateway as detached processes.

State lives in ``<config dir>/local/`` (contracts): ``cluster.json`` (ports and the operator's
token, mode 0600, reused across restarts so configured clients keep working), ``operator.pid`` /
``gateway.pid``, ``operator.log`` / ``gateway.log``, and whatever the operator writes there.

``up`` is idempotent and repairs partial states: a component counts as running only when its pid
file names a live, non-zombie process whose command line runs that component's module, so a
stale pid file (the process was SIGKILLed, or the pid was reused) means "start it again". Before
spawning anything, every port it needs must be free, else we refuse with the flag to change it.
Each process gets its own session (``setsid``) so that ``down`` can signal its whole process
group and a Ctrl-C in the terminal that ran ``cluster up`` does not reach it.

``down`` sends SIGTERM to the gateway and the operator groups, waits (the operator stops the
replicas gracefully, which takes up to its drain timeout), then SIGKILLs what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from cortex.client.config import Environment, load_config, save_config
from cortex.errors import CortexError

HOST = "127.0.0.1"
DEFAULT_OPERATOR_PORT = 8888
DEFAULT_API_PORT = 8889
LOCAL_ENV_NAME = "local"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 90.0
_POLL_PERIOD_S = 0.1


@dataclass(frozen=True)
class ClusterSettings:
    """What ``cluster.json`` holds."""

    operator_port: int
    api_port: int
    token: str

    @property
    def operator_url(self) -> str:
        return f"http://{HOST}:{self.operator_port}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"


@dataclass(frozen=True)
class Component:
    """One process of the local cluster."""

    name: str  # "operator" or "gateway"
    module: str  # what ``python -m`` runs; also how we recognise the process
    port: int
    health_url: str


@dataclass(frozen=True)
class UpResult:
    settings: ClusterSettings
    started: tuple[str, ...]  # components this call started; empty: it was already running


def read_pid_file(path: Path) -> int | None:
    """The pid in ``path``, or None when it is missing or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int, *, cmdline_marker: str | None = None) -> bool:
    """True when ``pid`` is a live (non-zombie) process, running ``cmdline_marker`` if given."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        return cmdline_marker is None or cmdline_marker in proc.cmdline()
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    """Collect the exit status of our own dead child (no-op for anyone else's)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now (bind without SO_REUSEPORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, *, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def spawn_detached(argv: list[str], *, env: Mapping[str, str], log_path: Path) -> int:
    """Start ``argv`` in a new session, stdout+stderr appended to ``log_path``; return its pid.

    ``posix_spawn`` rather than ``subprocess.Popen``: nothing of the child stays in this process
    (a Popen object would warn when collected while the child still runs, by design here).
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], argv, dict(env), file_actions=actions, setsid=True)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (our spawns lead one), else just ``pid``."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return


def stop_pids(pids: list[int], *, timeout_s: float) -> None:
    """SIGTERM each group, wait up to ``timeout_s`` for all, then SIGKILL the rest."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
        signal_group(pid, signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        signal_group(proc.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    for pid in pids:
        _reap(pid)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


PORT_RELEASE_S = 3.0


class LocalCluster:
    """The local cluster whose state is under ``<config_dir>/local``."""

    def __init__(self, config_dir: Path, *, python: str = sys.executable) -> None:
        self.config_dir = config_dir
        self.state_dir = config_dir / "local"
        self.python = python

    @property
    def settings_path(self) -> Path:
        return self.state_dir / "cluster.json"

    def pid_path(self, component: Component) -> Path:
        return self.state_dir / f"{component.name}.pid"

    def log_path(self, component: Component) -> Path:
        return self.state_dir / f"{component.name}.log"

    def read_settings(self) -> ClusterSettings | None:
        try:
            data = json.loads(self.settings_path.read_text())
            return ClusterSettings(int(data["operator_port"]), int(data["api_port"]), data["token"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_settings(self, settings: ClusterSettings) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.settings_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(settings), fh, indent=2)
        os.chmod(self.settings_path, 0o600)

    @staticmethod
    def components(settings: ClusterSettings) -> tuple[Component, Component]:
        """Operator first: the gateway syncs its routes from it."""
        return (
            Component(
                "operator",
                "cortex.operator",
                settings.operator_port,
                f"{settings.operator_url}/verifycortex",
            ),
            Component(
                "gateway",
                "cortex.dataplane.gateway",
                settings.api_port,
                f"{settings.api_url}/_cortex/healthz",
            ),
        )

    def running_pid(self, component: Component) -> int | None:
        """The component's pid if its pid file names its live process, else None (stale)."""
        pid = read_pid_file(self.pid_path(component))
        if pid is not None and pid_alive(pid, cmdline_marker=component.module):
            return pid
        return None

    def running(self) -> dict[str, int]:
        """``{component name: pid}`` of what runs now (empty when nothing does)."""
        settings = self.read_settings() or ClusterSettings(0, 0, "")
        found = {c.name: self.running_pid(c) for c in self.components(settings)}
        return {name: pid for name, pid in found.items() if pid is not None}

    def is_healthy(self, settings: ClusterSettings) -> bool:
        return all(_healthy(c.health_url) for c in self.components(settings))

    def _choose_settings(self, operator_port: int | None, api_port: int | None) -> ClusterSettings:
        """Ports: the flags, else the previous run's, else the defaults; the token is kept."""
        previous = self.read_settings()
        settings = ClusterSettings(
            operator_port or (previous.operator_port if previous else DEFAULT_OPERATOR_PORT),
            api_port or (previous.api_port if previous else DEFAULT_API_PORT),
            previous.token if previous else secrets.token_urlsafe(32),
        )
        if previous and self.running() and settings != previous:
            raise CortexError(
                f"the local cluster is already running with operator port "
                f"{previous.operator_port} and API port {previous.api_port}; "
                "stop it with `cortex cluster down` to change its ports"
            )
        if settings.operator_port == settings.api_port:
            raise CortexError("the operator port and the API port must differ")
        return settings

    def _env(self, settings: ClusterSettings) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CORTEX_STATE_DIR=str(self.state_dir),
            CORTEX_OPERATOR_PORT=str(settings.operator_port),
            CORTEX_API_PORT=str(settings.api_port),
            CORTEX_OPERATOR_TOKEN=settings.token,
            CORTEX_OPERATOR_URL=settings.operator_url,
            CORTEX_CLI_CONFIG_DIR=str(self.config_dir),
            PYTHONUNBUFFERED="1",
        )
        return env

    def _check_ports(self, missing: list[Component]) -> None:
        """Each missing component's port must be free. A component that just died (its pid file
        went stale) may hold its port for a moment while the kernel tears the process down, so
        a taken port is asked again for up to PORT_RELEASE_S before it counts as another
        program's."""
        flags = {"operator": "--operator-port", "gateway": "--api-port"}
        for component in missing:
            deadline = time.monotonic() + PORT_RELEASE_S
            while not port_is_free(component.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not port_is_free(component.port):
                raise CortexError(
                    f"port {component.port} (for the {component.name}) is already in use by "
                    f"another program; choose another with `cortex cluster up "
                    f"{flags[component.name]} PORT`"
                )

    def _start(self, component: Component, settings: ClusterSettings) -> int:
        log = self.log_path(component)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(f"--- starting the {component.name} at {time.ctime()} ---\n")
        argv = [self.python, "-m", component.module]
        pid = spawn_detached(argv, env=self._env(settings), log_path=log)
        self.pid_path(component).write_text(f"{pid}\n")
        return pid

    def up(
        self,
        *,
        operator_port: int | None = None,
        api_port: int | None = None,
        timeout_s: float = START_TIMEOUT_S,
    ) -> UpResult:
        """Start what is not running, wait until both answer, configure the ``local`` env."""
        settings = self._choose_settings(operator_port, api_port)
        self.write_settings(settings)
        missing = [c for c in self.components(settings) if self.running_pid(c) is None]
        self._check_ports(missing)
        started = {c.name: self._start(c, settings) for c in missing}
        try:
            self._wait_healthy(settings, started, timeout_s=timeout_s)
        except CortexError:
            stop_pids(list(started.values()), timeout_s=5.0)
            raise
        self.configure_env(settings)
        return UpResult(settings, tuple(started))

    def _wait_healthy(
        self, settings: ClusterSettings, started: dict[str, int], *, timeout_s: float
    ) -> None:
        """Poll both health URLs; fail at once if a process we started exits."""
        deadline = time.monotonic() + timeout_s
        pending = list(self.components(settings))
        while pending:
            pending = [c for c in pending if not _healthy(c.health_url)]
            dead = [c for c in pending if c.name in started and not pid_alive(started[c.name])]
            if dead:
                raise self._start_failure(dead[0], "exited while starting")
            if pending and time.monotonic() >= deadline:
                raise self._start_failure(pending[0], f"did not answer within {timeout_s:g}s")
            if pending:
                time.sleep(_POLL_PERIOD_S)

    def _start_failure(self, component: Component, what: str) -> CortexError:
        log = self.log_path(component)
        return CortexError(
            f"the {component.name} {what} ({component.health_url}); the end of {log}:\n\n"
            f"{tail(log) or '<empty>'}"
        )

    def configure_env(self, settings: ClusterSettings) -> None:
        """Write the ``local`` environment (endpoint + token) and make it the default."""
        config = load_config(self.config_dir)
        config.upsert(Environment(LOCAL_ENV_NAME, settings.operator_url, settings.token))
        config.default_environment = LOCAL_ENV_NAME
        save_config(config, self.config_dir)

    def down(self, *, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """Stop the gateway and the operator; return the names of what was running."""
        settings = self.read_settings() or ClusterSettings(0, 0, "")
        gateway_first = list(reversed(self.components(settings)))
        pids = {c.name: self.running_pid(c) for c in gateway_first}
        stop_pids([pid for pid in pids.values() if pid is not None], timeout_s=timeout_s)
        for component in gateway_first:
            self.pid_path(component).unlink(missing_ok=True)
        return [name for name, pid in pids.items() if pid is not None]
