"""The CLI end to end in-process (typer's CliRunner) against a canned operator on 127.0.0.1;
the real operator is exercised by the integration suite."""

import json
import os
import stat
import sys
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from cortex.cli.main import app, main
from tests.unit.cli_stub_operator import StubOperator, running_stub

VALID = """\
- name: a
  kind: RealtimeAPI
  pod:
    containers:
      - name: api
        image: python
        command: ["python", "server.py"]
"""


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    path = tmp_path / "cfg"
    monkeypatch.setenv("CORTEX_CLI_CONFIG_DIR", str(path))
    monkeypatch.delenv("CORTEX_OPERATOR_ENDPOINT", raising=False)
    return path


@pytest.fixture
def stub():
    with running_stub() as s:
        s.routes[("GET", "/verifycortex")] = (200, {})
        s.routes[("GET", "/info")] = (200, {})
        yield s


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def configure(stub: StubOperator, name: str = "dev", token: str = "t") -> Result:
    result = run("env", "configure", name, "-o", stub.url, "--token", token)
    assert result.exit_code == 0, result.output
    return result


def realtime(name: str, ready: int = 1, requested: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "kind": "RealtimeAPI", "last_updated": 0},
        "status": {
            "status": "live" if ready == requested else "updating",
            "ready": ready,
            "requested": requested,
            "up_to_date": requested,
        },
        "metrics": {
            "window_s": 900,
            "avg_latency_ms": 7.25,
            "count_2xx": 5,
            "count_4xx": 1,
            "count_5xx": 0,
            "requests": 6,
        },
    }


def test_env_configure_list_default_rename_delete(cfg, stub):
    assert configure(stub).stdout == "configured dev environment\n"
    assert stat.S_IMODE(os.stat(cfg / "cli.yaml").st_mode) == 0o600
    configure(stub, "prod")
    listed = run("env", "list")
    assert listed.stdout == (
        f"dev (default)\ncortex operator endpoint: {stub.url}\n\n"
        f"prod\ncortex operator endpoint: {stub.url}\n"
    )
    as_json = json.loads(run("env", "list", "-o", "json").stdout)
    assert as_json["default_environment"] == "dev"
    assert all("token" not in env for env in as_json["environments"])  # never printed
    assert run("env", "default", "prod").exit_code == 0
    assert run("env", "rename", "prod", "live").stdout == "renamed the prod environment to live\n"
    saved = yaml.safe_load((cfg / "cli.yaml").read_text())
    assert saved["default_environment"] == "live"
    assert saved["environments"][1] == {"name": "live", "operator_endpoint": stub.url, "token": "t"}
    assert run("env", "delete", "live").exit_code == 0
    assert yaml.safe_load((cfg / "cli.yaml").read_text())["default_environment"] is None
    assert run("env", "delete", "x").stderr.startswith("error: the x environment is not configured")


def test_env_configure_refuses_unreachable_endpoint(cfg, stub):
    stub.routes.pop(("GET", "/verifycortex"))
    result = run("env", "configure", "dev", "-o", stub.url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert run("env", "list").stdout == "no environments are configured\n"


def test_errors_go_to_stderr_with_exit_1(cfg, stub):
    result = run("get")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no environment is configured")
    configure(stub)
    result = run("get", "nope")
    assert (result.exit_code, result.stderr) == (1, "error: /get/nope is not deployed\n")


def test_get_all_environments_keeps_going_past_a_broken_one(cfg, stub):
    configure(stub)
    cfgfile = yaml.safe_load((cfg / "cli.yaml").read_text())
    cfgfile["environments"].append({"name": "gone", "operator_endpoint": "http://127.0.0.1:9"})
    (cfg / "cli.yaml").write_text(yaml.safe_dump(cfgfile))
    stub.routes[("GET", "/get")] = (200, [realtime("a", 1, 2)])
    result = run("get")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header = "env realtime api status live up-to-date avg request 2XX 4XX 5XX last update"
    assert lines[0].split() == header.split()
    assert lines[1].split()[:9] == ["dev", "a", "updating", "1/2", "2", "7.2", "ms", "5", "1"]
    assert lines[2] == (
        "unable to detect apis from the gone environment; "
        "run `cortex get --env gone` if this is unexpected"
    )
    as_json = json.loads(run("get", "-o", "json").stdout)
    assert [(e["env_name"], len(e["apis"]), bool(e["error"])) for e in as_json] == [
        ("dev", 1, False),
        ("gone", 0, True),
    ]


def test_get_fails_when_every_environment_fails(cfg, stub):
    configure(stub)
    stub.routes[("GET", "/get")] = (403, {"error": {"code": "auth.forbidden", "message": "no"}})
    result = run("get")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "error: dev environment: no\n"
    result = run("get", "-o", "json")
    assert (result.exit_code, result.stderr) == (1, "error: dev environment: no\n")
    assert json.loads(result.stdout) == [{"env_name": "dev", "apis": [], "error": "no"}]


def test_env_configure_checks_the_token(cfg, stub):
    stub.routes[("GET", "/info")] = (403, {"error": {"code": "auth.forbidden", "message": "no"}})
    result = run("env", "configure", "dev", "-o", stub.url, "--token", "bad")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: the operator at {stub.url} refused the token; ")
    assert "--token TOKEN" in result.stderr
    stub.routes[("GET", "/info")] = (401, {"error": {"code": "auth.missing", "message": "no"}})
    result = run("env", "configure", "dev", "-o", stub.url)
    assert result.stderr.startswith(f"error: the operator at {stub.url} needs a token; ")
    assert run("env", "list").stdout == "no environments are configured\n"


def test_get_with_env_and_nothing_deployed(cfg, stub):
    configure(stub)
    stub.routes[("GET", "/get")] = (200, [])
    assert run("get", "-e", "dev").stdout == "no apis are deployed\n"
    stub.routes[("GET", "/get")] = (200, [realtime("a")])
    assert run("get", "-e", "dev").stdout.startswith("realtime api   status   live")
    assert json.loads(run("get", "-e", "dev", "-o", "json").stdout) == [realtime("a")]


def test_get_one_api_and_using_env_prefix(cfg, stub):
    configure(stub)
    configure(stub, "other")
    api = realtime("a") | {"endpoint": "http://127.0.0.1:8889/a"}
    stub.routes[("GET", "/get/a")] = (200, [api])
    out = run("get", "a").stdout
    assert out.startswith("using dev environment\n\nrealtime api")
    assert "endpoint: http://127.0.0.1:8889/a" in out
    assert not run("get", "a", "-e", "dev").stdout.startswith("using")


def test_get_job_uses_the_kind_route(cfg, stub):
    configure(stub)
    stub.routes[("GET", "/get/t")] = (200, [{"metadata": {"name": "t", "kind": "TaskAPI"}}])
    stub.routes[("GET", "/tasks/t")] = (200, {"job_status": {"job_id": "j1", "status": "running"}})
    result = run("get", "t", "j1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("job id: j1\nstatus: running\n")
    assert stub.requests[-1].query == {"jobID": "j1"}


def test_describe(cfg, stub):
    configure(stub)
    api = realtime("a")
    api["status"]["replica_counts"] = {"requested": 1, "ready": 1}
    api["autoscaler"] = {
        "in_flight": 0.5,
        "recommendation": 1,
        "requested": 1,
        "min_replicas": 0,
        "max_replicas": 4,
        "target_in_flight": 1.0,
        "last_tick": None,
    }
    stub.routes[("GET", "/describe/a")] = (200, [api])
    out = run("describe", "a").stdout
    assert "replica status                     replica count\nCreating" in out
    assert "autoscaler\n\nrequested replicas: 1\nready replicas: 1\n" in out
    assert "in flight (averaged): 0.5\nrecommendation: 1\n" in out
    assert (
        json.loads(run("describe", "a", "-o", "json").stdout)[0]["autoscaler"]["in_flight"] == 0.5
    )


def test_deploy_validates_locally_then_posts(cfg, stub, tmp_path):
    configure(stub)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "cortex.yaml").write_text("- name: a\n  kind: RealtimeAPI\n  bogus: 1\n")
    result = run("deploy", str(project / "cortex.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cortex.yaml: a (RealtimeAPI): ")
    assert all(r.path != "/deploy" for r in stub.requests)  # never reached the operator

    (project / "cortex.yaml").write_text(VALID)
    stub.routes[("POST", "/deploy")] = (
        200,
        [{"api": None, "message": "creating a (RealtimeAPI)", "error": ""}],
    )
    result = run("deploy", str(project), "-f")
    assert (result.exit_code, result.stdout) == (0, "creating a (RealtimeAPI)\n")
    sent = stub.requests[-1]
    assert sent.query == {
        "force": "true",
        "configFileName": "cortex.yaml",
        "projectDir": str(project),
    }
    assert VALID.encode() in sent.body


def test_deploy_reports_per_api_errors(cfg, stub, tmp_path, monkeypatch):
    configure(stub)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "cortex.yaml").write_text(VALID)
    monkeypatch.chdir(tmp_path / "p")
    stub.routes[("POST", "/deploy")] = (
        200,
        [{"api": None, "message": "", "error": "error: a is updating (override with --force)"}],
    )
    result = run("deploy")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: a is updating (override with --force)\n",
    )
    assert json.loads(run("deploy", "-o", "json").stdout)[0]["error"].startswith("error: a is")


def test_deploy_refuses_home_folder(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cortex.yaml").write_text(VALID)
    result = run("deploy", str(tmp_path / "cortex.yaml"))
    assert result.exit_code == 1
    assert "cannot deploy from" in result.stderr
    assert "does not exist" in run("deploy", str(tmp_path / "nope.yaml")).stderr


def test_delete_asks_above_two_ready_replicas(cfg, stub):
    configure(stub)
    stub.routes[("GET", "/get/a")] = (200, [realtime("a", ready=3, requested=3)])
    stub.routes[("DELETE", "/delete/a")] = (200, {"message": "deleting a"})
    result = run("delete", "a", input="n\n")
    assert result.exit_code == 1
    assert "are you sure you want to delete a (which has 3 live replicas)?" in result.output
    assert all(r.method != "DELETE" for r in stub.requests)
    result = run("delete", "a", "-f", "-c")
    assert (result.exit_code, result.stdout) == (0, "deleting a\n")
    assert stub.requests[-1].query == {"keepCache": "true"}


def test_delete_job_stops_it(cfg, stub):
    configure(stub)
    stub.routes[("GET", "/get/b")] = (200, [{"metadata": {"name": "b", "kind": "BatchAPI"}}])
    stub.routes[("DELETE", "/batch/b")] = (200, {"message": "stopped job j1"})
    result = run("delete", "b", "j1", "-o", "json")
    assert json.loads(result.stdout) == {"message": "stopped job j1"}
    assert (stub.requests[-1].method, stub.requests[-1].query) == ("DELETE", {"jobID": "j1"})


def test_refresh(cfg, stub):
    configure(stub)
    stub.routes[("POST", "/refresh/a")] = (200, {"message": "updating a (RealtimeAPI)"})
    assert run("refresh", "a", "-f").stdout == "updating a (RealtimeAPI)\n"
    assert stub.requests[-1].query == {"force": "true"}


def test_logs_prints_messages(cfg, stub):
    configure(stub)
    lines = [json.dumps({"message": "hello", "stream": "stdout"}), "not json"]
    stub.routes[("GET", "/streamlogs/a")] = (200, ("\n".join(lines) + "\n").encode())
    result = run("logs", "a", "-f")
    assert result.stdout == "hello\nnot json\n"
    assert stub.requests[-1].query == {"follow": "true"}


def test_version(cfg, stub):
    assert run("version").stdout == "cli version: 0.1.0\n"
    configure(stub)
    stub.routes[("GET", "/info")] = (200, {"cluster_config": {"api_version": "9.9.9"}})
    assert run("version").stdout == "cli version: 0.1.0\ncluster version: 9.9.9\n"


def test_completion_prints_a_script():
    result = run("completion", "bash")
    assert result.exit_code == 0
    assert "_CORTEX_COMPLETE" in result.stdout


def test_a_wrong_command_line_exits_1(cfg, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["cortex", "get", "-o", "yaml"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    assert "--output" in capsys.readouterr().err
