"""The local backend with real processes: small Python one-liners as containers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from cortex.backends.base import NodeCapacity, ReplicaInfo, ReplicaTemplate, RestartPolicy
from cortex.backends.base import ReplicaStatus as RS
from cortex.backends.local import LocalBackend
from cortex.backends.local.orphans import kill_orphans, record_pids
from cortex.spec.models import (
    Compute,
    ContainerSpec,
    ExecAction,
    HTTPGetAction,
    PodSpec,
    PreStop,
    Probe,
    TCPSocketAction,
)
from cortex.spec.quantity import Quantity

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T = TypeVar("T")
PY = sys.executable
BIG_NODE = NodeCapacity(cpu_millis=64_000, mem_bytes=64 << 30, gpus=0)

# An HTTP server on $CORTEX_PORT: 200 on /ok, 503 elsewhere.
HTTP_SERVER = (
    "import http.server as h, os\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200 if self.path == '/ok' else 503); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "h.HTTPServer(('127.0.0.1', int(os.environ['CORTEX_PORT'])), H).serve_forever()\n"
)
TCP_SERVER = (
    "import os, socket, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(os.environ['CORTEX_PORT']))); s.listen(); time.sleep(60)\n"
)
SLEEP = "import time; time.sleep(60)"


def container(
    code: str = SLEEP, *, name: str = "app", args: list[str] | None = None, **fields
) -> ContainerSpec:
    compute = fields.pop("compute", Compute(cpu=Quantity.parse("100m")))
    return ContainerSpec(
        name=name, image="local", command=[PY, "-c", code], args=args, compute=compute, **fields
    )


def template(
    project_dir: Path,
    *containers: ContainerSpec,
    api_name: str = "api",
    kind: str = "RealtimeAPI",
    port: int | None = 8080,
    policy: RestartPolicy = RestartPolicy.ALWAYS,
    job_id: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> ReplicaTemplate:
    return ReplicaTemplate(
        api_name=api_name,
        api_kind=kind,
        api_id="apiid",
        pod_id="podid",
        deployment_id="depid",
        pod=PodSpec(port=port, containers=list(containers or [container()])),
        project_dir=project_dir,
        restart_policy=policy,
        job_id=job_id,
        extra_env=extra_env or {},
    )


@pytest.fixture
async def make_backend(tmp_path):
    backends: list[LocalBackend] = []

    async def factory(**overrides) -> LocalBackend:
        kwargs = {
            "cli_config_dir": tmp_path / "cfg",
            "node": BIG_NODE,
            "supervise_period_s": 0.05,
            "grace_period_s": 2.0,
            "restart_backoff_s": 0.2,
            "restart_backoff_max_s": 5.0,
            "default_probe_period_s": 0.1,
            "log_poll_s": 0.05,
        }
        kwargs.update(overrides)
        backend = LocalBackend(tmp_path / "state", **kwargs)
        await backend.start()
        backends.append(backend)
        return backend

    yield factory
    for backend in backends:
        await backend.close()


async def wait_for(
    predicate: Callable[[], T | None], timeout_s: float = 10.0, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def replica(backend: LocalBackend, replica_id: str) -> ReplicaInfo | None:
    found = [r for r in backend.list_replicas() if r.replica_id == replica_id]
    return found[0] if found else None


def get(backend: LocalBackend, replica_id: str) -> ReplicaInfo:
    found = replica(backend, replica_id)
    assert found is not None, f"{replica_id} is not listed"
    return found


async def wait_status(
    backend: LocalBackend, replica_id: str, *statuses: RS, timeout_s: float = 10.0
) -> ReplicaInfo:
    def check() -> ReplicaInfo | None:
        r = replica(backend, replica_id)
        return r if r is not None and r.status in statuses else None

    return await wait_for(check, timeout_s, f"{replica_id} in {statuses}")


ENV_DUMP = (
    "import json, os, sys\n"
    "out = {'env': dict(os.environ), 'keys': list(os.environ), 'argv': sys.argv[1:],"
    " 'cwd': os.getcwd()}\n"
    "open(os.path.join(os.getcwd(), 'dump.json'), 'w').write(json.dumps(out))\n"
)


async def test_env_argv_expansion_and_cwd(make_backend, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    base_env = {**os.environ, "CORTEX_OPERATOR_TOKEN": "secret", "OPERATOR_THING": "kept"}
    backend = await make_backend(base_env=base_env, log_level="DEBUG")
    spec = container(
        ENV_DUMP,
        args=["$(CORTEX_PORT)", "$$(CORTEX_PORT)", "$(NOPE)", "$(GREETING)-$(HOME)"],
        env={"GREETING": "hi", "Z_REF": "<$(GREETING)>", "A_REF": "<$(CORTEX_API_NAME)>"},
    )
    tpl = template(project, spec, policy=RestartPolicy.NEVER, extra_env={"EXTRA": "1"})
    info = backend.create_replica(tpl)
    done = await wait_status(backend, info.replica_id, RS.SUCCEEDED)
    assert done.exit_code == 0
    dump = json.loads((project / "dump.json").read_text())
    env, keys = dump["env"], dump["keys"]
    port = str(info.port)
    assert dump["argv"] == [port, "$(CORTEX_PORT)", "$(NOPE)", "hi-$(HOME)"]
    assert Path(dump["cwd"]) == project
    assert "CORTEX_OPERATOR_TOKEN" not in env and env["OPERATOR_THING"] == "kept"
    assert env["CORTEX_PORT"] == port and env["CORTEX_LOG_LEVEL"] == "DEBUG"
    assert env["CORTEX_CLI_CONFIG_DIR"] == str(tmp_path / "cfg")
    assert env["CORTEX_API_NAME"] == "api" and env["CORTEX_API_KIND"] == "RealtimeAPI"
    assert env["CORTEX_MNT"] == str(tmp_path / "state" / "replicas" / info.replica_id / "mnt")
    assert env["A_REF"] == "<api>" and env["Z_REF"] == "<hi>"
    ours = ["CORTEX_VERSION", "CORTEX_LOG_LEVEL", "CORTEX_CLI_CONFIG_DIR", "CORTEX_PORT"]
    ours += ["CORTEX_MNT", "CORTEX_API_NAME", "CORTEX_API_KIND", "EXTRA"]
    ours += ["A_REF", "GREETING", "Z_REF"]
    assert [k for k in keys if k in ours] == ours


async def test_task_replica_has_no_port(make_backend, tmp_path):
    backend = await make_backend()
    spec = container(ENV_DUMP)
    tpl = template(tmp_path, spec, kind="TaskAPI", port=None, policy=RestartPolicy.NEVER)
    info = backend.create_replica(tpl)
    assert info.port is None
    await wait_status(backend, info.replica_id, RS.SUCCEEDED)
    env = json.loads((tmp_path / "dump.json").read_text())["env"]
    assert "CORTEX_PORT" not in env


async def test_no_command_fails_the_replica(make_backend, tmp_path):
    backend = await make_backend()
    spec = ContainerSpec(name="web", image="img")
    info = backend.create_replica(template(tmp_path, spec))
    assert info.status == RS.FAILED
    assert info.message == "container web has no command; the local backend runs command + args"
    assert backend.capacity().requested_cpu_millis == 0
    backend.delete_replica(info.replica_id)
    assert backend.list_replicas() == []


async def test_default_tcp_readiness(make_backend, tmp_path):
    backend = await make_backend()
    slow = "import time; time.sleep(0.5)\n" + TCP_SERVER
    info = backend.create_replica(template(tmp_path, container(slow)))
    await wait_status(backend, info.replica_id, RS.NOT_READY)  # running, port not open yet
    await wait_status(backend, info.replica_id, RS.READY)


async def test_http_readiness_on_pod_port_reaches_cortex_port(make_backend, tmp_path):
    backend = await make_backend()
    good = Probe(http_get=HTTPGetAction(path="/ok", port=8080), period_seconds=1)
    bad = Probe(http_get=HTTPGetAction(path="/nope", port=8080), period_seconds=1)
    ok = backend.create_replica(template(tmp_path, container(HTTP_SERVER, readiness_probe=good)))
    ko = backend.create_replica(template(tmp_path, container(HTTP_SERVER, readiness_probe=bad)))
    await wait_status(backend, ok.replica_id, RS.READY)
    assert get(backend, ko.replica_id).status == RS.NOT_READY  # 503: not ready


async def test_exec_readiness_probe(make_backend, tmp_path):
    backend = await make_backend()
    marker = "import os, time; time.sleep(0.3)\nopen(os.environ['CORTEX_MNT'] + '/ready', 'w')\n"
    check = (
        "import os, sys; sys.exit(0 if os.path.exists(os.environ['CORTEX_MNT'] + '/ready') else 1)"
    )
    probe = Probe(exec=ExecAction(command=[PY, "-c", check]), period_seconds=1)
    info = backend.create_replica(
        template(tmp_path, container(marker + TCP_SERVER, readiness_probe=probe))
    )
    await wait_status(backend, info.replica_id, RS.NOT_READY)
    await wait_status(backend, info.replica_id, RS.READY)


async def test_liveness_failure_restarts_the_container(make_backend, tmp_path):
    backend = await make_backend(grace_period_s=0.5)
    # nobody listens on 1 (privileged port): the liveness probe always fails
    probe = Probe(tcp_socket=TCPSocketAction(port=1), period_seconds=1, failure_threshold=1)
    info = backend.create_replica(template(tmp_path, container(TCP_SERVER, liveness_probe=probe)))
    await wait_for(lambda: get(backend, info.replica_id).restarts >= 1, 10, "a restart")


async def test_crash_restarts_with_exponential_backoff(make_backend, tmp_path):
    backend = await make_backend(restart_backoff_s=0.2, restart_backoff_max_s=0.8)
    code = "import time; open('starts', 'a').write(f'{time.time()}\\n'); raise SystemExit(3)"
    info = backend.create_replica(template(tmp_path, container(code)))
    failed = await wait_status(backend, info.replica_id, RS.FAILED)  # in back-off: Failed
    assert "exited with code 3" in failed.message
    starts_file = tmp_path / "starts"
    await wait_for(lambda: len(starts_file.read_text().split()) >= 5, 15, "4 restarts")
    assert get(backend, info.replica_id).restarts >= 4
    starts = [float(x) for x in starts_file.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # back-off 0.2, 0.4, 0.8, 0.8 (capped) plus the interpreter's start-up each time
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8 and gaps[3] >= 0.8
    assert gaps[1] > gaps[0] and gaps[3] < gaps[2] + 0.7


async def test_memory_over_limit_is_killed_oom(make_backend, tmp_path):
    backend = await make_backend()
    hog = "import time; x = bytearray(300 << 20); time.sleep(60)"
    compute = Compute(cpu=Quantity.parse("100m"), mem=Quantity.parse("100Mi"))
    tpl = template(tmp_path, container(hog, compute=compute), policy=RestartPolicy.NEVER)
    info = backend.create_replica(tpl)
    done = await wait_status(backend, info.replica_id, RS.KILLED_OOM)
    assert "memory" in done.message and done.exit_code == 137


async def test_graceful_stop_then_sigkill_after_grace(make_backend, tmp_path):
    backend = await make_backend(grace_period_s=0.6)
    polite = (
        "import signal, sys, time\n"
        "def bye(*a): open('polite-stopped', 'w'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye); print('up', flush=True); time.sleep(60)\n"
    )
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True); time.sleep(60)\n"
    )
    tpl = template(
        tmp_path, container(polite, name="polite"), container(stubborn, name="stubborn"), port=None
    )
    info = backend.create_replica(tpl)
    await wait_status(backend, info.replica_id, RS.READY)
    log = tmp_path / "state" / "logs" / "api" / "api" / f"{info.replica_id}.log"
    await wait_for(lambda: log.read_text().count('"up"') == 2, 10, "both containers up")
    pids = [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "SIGTERM" in " ".join(p.cmdline())
    ]
    assert len(pids) == 2
    started = time.monotonic()
    backend.delete_replica(info.replica_id)
    assert get(backend, info.replica_id).status == RS.TERMINATING
    await wait_for(lambda: replica(backend, info.replica_id) is None, 10, "replica gone")
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0  # the stubborn one waited for the grace period, then SIGKILL
    assert (tmp_path / "polite-stopped").exists()
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )
    assert not (tmp_path / "state" / "replicas" / info.replica_id).exists()


async def test_pre_stop_exec_hook_runs_before_sigterm(make_backend, tmp_path):
    backend = await make_backend(grace_period_s=2.0)
    hook = PreStop(exec=ExecAction(command=[PY, "-c", "open('hooked', 'w')"]))
    spec = container(TCP_SERVER, pre_stop=hook)
    info = backend.create_replica(template(tmp_path, spec))
    await wait_status(backend, info.replica_id, RS.READY)
    backend.delete_replica(info.replica_id)
    await wait_for(lambda: replica(backend, info.replica_id) is None, 10, "replica gone")
    assert (tmp_path / "hooked").exists()


async def test_pending_until_capacity_then_stalled(make_backend, tmp_path):
    node = NodeCapacity(cpu_millis=1000, mem_bytes=1 << 30, gpus=2)
    backend = await make_backend(node=node, stalled_after_s=0.5)
    one_cpu = Compute(cpu=Quantity.parse("700m"), gpu=1)
    first = backend.create_replica(
        template(tmp_path, container(ENV_DUMP, compute=one_cpu), port=None)
    )
    second = backend.create_replica(template(tmp_path, container(compute=one_cpu), port=None))
    small = Compute(cpu=Quantity.parse("300m"), gpu=1)
    third = backend.create_replica(template(tmp_path, container(compute=small), port=None))
    assert get(backend, second.replica_id).status == RS.PENDING
    assert "insufficient capacity" in get(backend, second.replica_id).message
    await wait_status(backend, third.replica_id, RS.READY)  # a smaller one behind is not blocked
    await wait_status(backend, second.replica_id, RS.STALLED, timeout_s=5)
    cap = backend.capacity()
    assert (cap.cpu_millis, cap.requested_cpu_millis, cap.requested_gpus) == (1000, 1000, 2)
    env = await wait_for(lambda: (tmp_path / "dump.json").exists(), 10, "dump")
    env = json.loads((tmp_path / "dump.json").read_text())["env"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    backend.delete_replica(first.replica_id)
    await wait_status(backend, second.replica_id, RS.READY)


async def test_logs_are_json_lines_with_labels_and_merged_app_json(make_backend, tmp_path):
    backend = await make_backend()
    code = (
        "import json, sys, time\n"
        "print('plain text', flush=True)\n"
        "print(json.dumps({'message': 'structured', 'level': 'INFO'}), flush=True)\n"
        "print('oops', file=sys.stderr, flush=True)\n"
        "time.sleep(0.5); print('later', flush=True)\n"
    )
    tpl = template(
        tmp_path,
        container(code, name="worker"),
        api_name="jobs",
        kind="TaskAPI",
        port=None,
        policy=RestartPolicy.NEVER,
        job_id="job1",
    )
    info = backend.create_replica(tpl)
    followed = []

    async def follow() -> None:
        async for line in backend.stream_logs("jobs", job_id="job1", follow=True):
            followed.append(json.loads(line))
            if len(followed) == 4:
                return

    await asyncio.wait_for(follow(), 10)
    assert [r["message"] for r in followed] == ["plain text", "structured", "oops", "later"]
    assert followed[1]["level"] == "INFO"
    assert [r["stream"] for r in followed] == ["stdout", "stdout", "stderr", "stdout"]
    assert followed[0]["labels"] == {
        "apiName": "jobs",
        "apiKind": "TaskAPI",
        "replica": info.replica_id,
        "jobID": "job1",
        "container": "worker",
    }
    await wait_status(backend, info.replica_id, RS.SUCCEEDED)
    lines = [json.loads(x) async for x in backend.stream_logs("jobs", job_id="job1")]
    assert [r["message"] for r in lines] == ["plain text", "structured", "oops", "later"]
    assert [x async for x in backend.stream_logs("jobs")] == []  # the API folder, not the job's


async def test_kubexit_one_container_exit_stops_siblings(make_backend, tmp_path):
    backend = await make_backend()
    quick = "import time; time.sleep(0.3); raise SystemExit(3)"
    tpl = template(
        tmp_path,
        container(quick, name="main"),
        container(SLEEP, name="side"),
        kind="TaskAPI",
        port=None,
        policy=RestartPolicy.NEVER,
    )
    info = backend.create_replica(tpl)
    done = await wait_status(backend, info.replica_id, RS.FAILED)
    await wait_for(lambda: get(backend, info.replica_id).exit_code is not None, 5, "exit")
    assert get(backend, info.replica_id).exit_code == 3  # the sibling counts as success
    assert "exited with code 3" in done.message
    # finished: its capacity goes back
    await wait_for(lambda: backend.capacity().requested_cpu_millis == 0, 5, "release")

    ok = "import time; time.sleep(0.3)"
    tpl = template(
        tmp_path,
        container(ok, name="main"),
        container(SLEEP, name="side"),
        kind="TaskAPI",
        port=None,
        policy=RestartPolicy.NEVER,
    )
    info = backend.create_replica(tpl)
    done = await wait_status(backend, info.replica_id, RS.SUCCEEDED)
    assert done.exit_code == 0


CRASHING_OPERATOR = """
import asyncio, sys
from pathlib import Path
from cortex.backends.base import NodeCapacity, ReplicaTemplate
from cortex.backends.local import LocalBackend
from cortex.spec.models import ContainerSpec, PodSpec

async def main():
    state = Path(sys.argv[1])
    backend = LocalBackend(state, cli_config_dir=state, node=NodeCapacity(8000, 1 << 33, 0),
                           supervise_period_s=0.05)
    await backend.start()
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
    child += "'import time; time.sleep(60)']); time.sleep(60)"
    for _ in range(2):
        spec = ContainerSpec(name="c", image="i", command=[sys.executable, "-c", child])
        backend.create_replica(ReplicaTemplate("o", "RealtimeAPI", "a", "p", "d",
                               PodSpec(port=None, containers=[spec]), Path(sys.argv[1])))
    while len(list((state / "replicas").glob("*/pids.json"))) < 2:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_orphans_of_a_crashed_backend_are_killed(make_backend, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    operator = await asyncio.create_subprocess_exec(
        PY,
        "-c",
        CRASHING_OPERATOR,
        str(state),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    orphans: list[psutil.Process] = []
    try:
        assert operator.stdout is not None
        line = await asyncio.wait_for(operator.stdout.readline(), 20)
        assert line.strip() == b"ready"
        orphans = psutil.Process(operator.pid).children(recursive=True)
        assert len(orphans) == 4  # two containers, each with a child of its own
        operator.send_signal(signal.SIGKILL)  # the operator "crashes"
        await operator.wait()
        assert all(p.is_running() for p in orphans)
        await make_backend()  # start() kills them
        _, alive = psutil.wait_procs(orphans, timeout=5)
        assert alive == []
        assert list((state / "replicas").iterdir()) == []
    finally:
        if operator.returncode is None:
            operator.kill()
            await operator.wait()
        for proc in orphans:
            with contextlib.suppress(psutil.Error):
                proc.kill()


async def test_orphan_records_with_a_reused_pid_are_left_alone(tmp_path):
    # the recorded pid is now ours (pytest), but with another create time: not an orphan
    me = psutil.Process()
    record_pids(tmp_path / "replicas" / "r1", [(me.pid, me.create_time() - 100.0)])
    sleeper = await asyncio.create_subprocess_exec(PY, "-c", SLEEP, start_new_session=True)
    try:
        ct = psutil.Process(sleeper.pid).create_time()
        record_pids(tmp_path / "replicas" / "r2", [(sleeper.pid, ct)])
        assert kill_orphans(tmp_path / "replicas") == [sleeper.pid]
        assert await asyncio.wait_for(sleeper.wait(), 5) == -signal.SIGKILL
    finally:
        if sleeper.returncode is None:
            sleeper.kill()
            await sleeper.wait()
    assert me.is_running()
    assert list((tmp_path / "replicas").iterdir()) == []


async def test_crashing_server_restarts_and_is_ready_again(make_backend, tmp_path):
    backend = await make_backend(restart_backoff_s=0.3)
    flaky = (
        "import os, socket, time\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', int(os.environ['CORTEX_PORT']))); s.listen()\n"
        "first = not os.path.exists('ran'); open('ran', 'w')\n"
        "time.sleep(0.5 if first else 60); raise SystemExit(1)\n"
    )
    info = backend.create_replica(template(tmp_path, container(flaky)))
    await wait_status(backend, info.replica_id, RS.READY)
    await wait_status(backend, info.replica_id, RS.FAILED)  # crashed, in back-off
    ready = await wait_status(backend, info.replica_id, RS.READY)
    assert ready.restarts == 1 and ready.message == ""
