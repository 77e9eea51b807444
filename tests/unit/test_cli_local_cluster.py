"""local_cluster's helpers and up/down flow with real (cheap) processes: sleeping pythons and a
fake component that answers 200 on its port. The real operator and gateway are exercised by the
integration suite."""

import json
import os
import signal
import socket
import stat
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from cortex.cli.local_cluster import (
    LocalCluster,
    pid_alive,
    port_is_free,
    read_pid_file,
    spawn_detached,
    stop_pids,
    tail,
)
from cortex.cli.main import app
from cortex.errors import CortexError

FAKE_COMPONENT = """\
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
module = sys.argv[sys.argv.index("-m") + 1]
port = os.environ["CORTEX_OPERATOR_PORT" if module == "cortex.operator" else "CORTEX_API_PORT"]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass
print("fake", module, "state", os.environ["CORTEX_STATE_DIR"], flush=True)
HTTPServer(("127.0.0.1", int(port)), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def spawned():
    """Start sleeping pythons (own sessions); kill whatever is left at the end."""
    pids = []

    def start(code="import time; time.sleep(30)", *, log, args=()):
        pid = spawn_detached([sys.executable, "-c", code, *args], env=os.environ, log_path=log)
        pids.append(pid)
        return pid

    yield start
    stop_pids(pids, timeout_s=0.5)


def test_read_pid_file(tmp_path):
    assert read_pid_file(tmp_path / "missing.pid") is None
    (tmp_path / "bad.pid").write_text("x\n")
    assert read_pid_file(tmp_path / "bad.pid") is None
    (tmp_path / "ok.pid").write_text("123\n")
    assert read_pid_file(tmp_path / "ok.pid") == 123


def test_spawned_process_is_alive_detached_and_logged(tmp_path, spawned):
    log = tmp_path / "p.log"
    pid = spawned("import time; print('hi', flush=True); time.sleep(30)", log=log, args=("marker",))
    assert os.getsid(pid) == pid  # its own session and process group
    assert pid_alive(pid)
    deadline = time.monotonic() + 5  # until the child has exec'd, its cmdline is its parent's
    while not pid_alive(pid, cmdline_marker="marker") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pid_alive(pid, cmdline_marker="marker")
    assert not pid_alive(pid, cmdline_marker="cortex.operator")  # a reused pid is not ours
    while "hi" not in tail(log) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tail(log) == "hi"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_dead_and_zombie_processes_are_not_alive(tmp_path, spawned):
    pid = spawned("pass", log=tmp_path / "z.log")
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:  # exits at once; a zombie until reaped
        time.sleep(0.02)
    assert not pid_alive(pid)


def test_stop_pids_terms_then_kills(tmp_path, spawned):
    polite = spawned(log=tmp_path / "a.log")
    stubborn = spawned(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(30)",
        log=tmp_path / "b.log",
    )
    while tail(tmp_path / "b.log") != "ready":
        time.sleep(0.02)
    started = time.monotonic()
    stop_pids([polite, stubborn], timeout_s=0.3)
    assert not pid_alive(polite)
    assert not pid_alive(stubborn)
    assert time.monotonic() - started < 5


def test_port_is_free():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)


def test_stale_pid_file_is_not_running(tmp_path):
    cluster = LocalCluster(tmp_path)
    cluster.state_dir.mkdir()
    (cluster.state_dir / "operator.pid").write_text(f"{os.getpid()}\n")  # alive, but not ours
    (cluster.state_dir / "gateway.pid").write_text("999999999\n")  # gone
    assert cluster.running() == {}


def test_settings_keep_token_and_ports(tmp_path):
    cluster = LocalCluster(tmp_path)
    first = cluster._choose_settings(None, None)
    assert (first.operator_port, first.api_port) == (8888, 8889)
    cluster.write_settings(first)
    assert stat.S_IMODE(os.stat(cluster.settings_path).st_mode) == 0o600
    again = cluster._choose_settings(None, 9000)
    assert (again.token, again.operator_port, again.api_port) == (first.token, 8888, 9000)
    with pytest.raises(CortexError, match="must differ"):
        cluster._choose_settings(7000, 7000)


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path):
    cluster = LocalCluster(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(CortexError, match=f"port {taken} .* --operator-port PORT"):
            cluster.up(operator_port=taken, api_port=free_port())
    assert not (cluster.state_dir / "operator.pid").exists()


def test_up_reports_a_component_that_dies_with_its_log(tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text(f"#!{sys.executable}\nimport sys\nprint('boom', sys.argv[-1])\nsys.exit(3)\n")
    crash.chmod(0o755)
    cluster = LocalCluster(tmp_path / "cfg", python=str(crash))
    with pytest.raises(CortexError) as info:
        cluster.up(operator_port=free_port(), api_port=free_port(), timeout_s=10)
    assert "exited while starting" in info.value.message
    assert "boom cortex." in info.value.message
    assert cluster.running() == {}


@pytest.fixture
def fake_python(tmp_path):
    script = tmp_path / "fake_component.py"
    script.write_text(f"#!{sys.executable}\n{FAKE_COMPONENT}")
    script.chmod(0o755)
    return str(script)


def test_up_is_idempotent_restarts_what_died_and_down_stops_all(tmp_path, fake_python):
    cfg = tmp_path / "cfg"
    cluster = LocalCluster(cfg, python=fake_python)
    try:
        first = cluster.up(operator_port=free_port(), api_port=free_port(), timeout_s=20)
        assert first.started == ("operator", "gateway")
        assert cluster.is_healthy(first.settings)
        saved = yaml.safe_load((cfg / "cli.yaml").read_text())
        assert saved["default_environment"] == "local"
        assert saved["environments"][0] == {
            "name": "local",
            "operator_endpoint": first.settings.operator_url,
            "token": first.settings.token,
        }
        assert json.loads(cluster.settings_path.read_text())["token"] == first.settings.token

        assert cluster.up(timeout_s=20).started == ()
        os.kill(cluster.running()["operator"], signal.SIGKILL)  # the pid file goes stale
        again = cluster.up(timeout_s=20)
        assert again.started == ("operator",)
        assert again.settings == first.settings  # same ports, same token
    finally:
        stopped = cluster.down(timeout_s=5)
    assert sorted(stopped) == ["gateway", "operator"]
    assert cluster.running() == {}
    assert not (cluster.state_dir / "operator.pid").exists()


def test_cli_cluster_commands(tmp_path, monkeypatch, fake_python):
    monkeypatch.setenv("CORTEX_CLI_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setattr(
        "cortex.cli.cluster.local_cluster",
        lambda: LocalCluster(tmp_path / "cfg", python=fake_python),
    )
    runner = CliRunner()
    down = runner.invoke(app, ["cluster", "down", "-y"])
    assert down.stdout == "the local cluster is not running\n"
    info = runner.invoke(app, ["cluster", "info"])
    assert info.exit_code == 1
    assert (
        info.stderr
        == "error: the local cluster is not running; start it with `cortex cluster up`\n"
    )
    op, api = free_port(), free_port()
    try:
        no = runner.invoke(
            app, ["cluster", "up", "--operator-port", str(op), "--api-port", str(api)], input="n\n"
        )
        assert no.exit_code == 1  # declined
        up = runner.invoke(
            app, ["cluster", "up", "--operator-port", str(op), "--api-port", str(api), "-y"]
        )
        assert up.exit_code == 0, up.output
        assert up.stdout.startswith(
            f"the local cluster is running (operator http://127.0.0.1:{op}, APIs http://127.0.0.1:{api})"
        )
        again = runner.invoke(app, ["cluster", "up"])
        assert again.stdout == (
            f"the local cluster is already running (operator http://127.0.0.1:{op}, "
            f"APIs http://127.0.0.1:{api})\n"
        )
        info = runner.invoke(app, ["cluster", "info", "-o", "json"])
        assert json.loads(info.stdout)["operator_endpoint"] == f"http://127.0.0.1:{op}"
    finally:
        down = runner.invoke(app, ["cluster", "down", "-y"])
    assert down.stdout.endswith("the local cluster is stopped\n")
