from typing import Any

import pytest

import cortex
from cortex.client.python_client import Client
from tests.unit.cli_stub_operator import running_stub


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("CORTEX_CLI_CONFIG_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def stub():
    with running_stub() as s:
        s.routes[("GET", "/verifycortex")] = (200, {})
        s.routes[("GET", "/info")] = (200, {})
        yield s


def api(name: str = "a", kind: str = "RealtimeAPI", **status: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "kind": kind}, "status": status}


def test_client_without_environments(cfg):
    with pytest.raises(cortex.NotFound, match="no default environment configured"):
        cortex.client()
    with pytest.raises(cortex.NotFound, match="can't find environment x"):
        cortex.client("x")


def test_new_client_verifies_saves_and_defaults(cfg, stub):
    cx = cortex.new_client("dev", stub.url, token="t")
    assert cx.env_name == "dev"
    assert cx.env["token"] == "t"
    assert stub.requests[0].path == "/verifycortex"
    assert cortex.env_list()["default_environment"] == "dev"
    assert cortex.client().env_name == "dev"
    cortex.env_delete("dev")
    assert cortex.env_list() == {"default_environment": None, "environments": []}
    with pytest.raises(cortex.NotFound):
        cortex.env_delete("dev")


def test_new_client_refuses_an_endpoint_that_does_not_answer(cfg, stub):
    stub.routes.pop(("GET", "/verifycortex"))
    with pytest.raises(cortex.CortexException):
        cortex.new_client("dev", stub.url)
    assert cortex.env_list()["environments"] == []


def test_calls_and_server_errors(cfg, stub):
    stub.routes[("GET", "/get")] = (200, [api("a"), api("b")])
    stub.routes[("GET", "/get/a")] = (200, [api("a", ready=1)])
    stub.routes[("POST", "/refresh/a")] = (200, {"message": "updating a (RealtimeAPI)"})
    stub.routes[("DELETE", "/delete/a")] = (200, {"message": "deleting a"})
    cx = Client({"name": "dev", "operator_endpoint": stub.url, "token": "t"})
    assert [x["metadata"]["name"] for x in cx.list_apis()] == ["a", "b"]
    assert cx.get_api("a")["status"] == {"ready": 1}
    assert cx.refresh("a", force=True) == {"message": "updating a (RealtimeAPI)"}
    assert stub.requests[-1].query == {"force": "true"}
    assert cx.delete("a", keep_cache=True) == {"message": "deleting a"}
    assert stub.requests[-1].query == {"keepCache": "true"}
    assert stub.requests[-1].headers["authorization"] == "Bearer t"
    with pytest.raises(cortex.CortexException) as info:
        cx.get_api("zzz")
    assert info.value.code == "api.not_deployed"
    assert info.value.message == "/get/zzz is not deployed"


def test_jobs_route_by_kind(cfg, stub):
    stub.routes[("GET", "/get/b")] = (200, [api("b", kind="BatchAPI")])
    stub.routes[("GET", "/batch/b")] = (200, {"job_status": {"job_id": "j1"}})
    stub.routes[("DELETE", "/batch/b")] = (200, {"message": "stopped job j1"})
    stub.routes[("GET", "/get/a")] = (200, [api("a")])
    cx = Client({"name": "dev", "operator_endpoint": stub.url})
    assert cx.get_job("b", "j1") == {"job_status": {"job_id": "j1"}}
    assert stub.requests[-1].query == {"jobID": "j1"}
    assert cx.stop_job("b", "j1") == {"message": "stopped job j1"}
    with pytest.raises(cortex.CortexException, match="only BatchAPI and TaskAPI"):
        cx.get_job("a", "j1")


def test_deploy_posts_yaml_with_project_dir_and_raises_api_error(cfg, stub, tmp_path):
    stub.routes[("POST", "/deploy")] = [
        (200, [{"api": api("a"), "message": "creating a (RealtimeAPI)", "error": ""}]),
        (
            200,
            [{"api": None, "message": "", "error": "error: a is updating (override with --force)"}],
        ),
    ]
    cx = Client({"name": "dev", "operator_endpoint": stub.url})
    result = cx.deploy({"name": "a", "kind": "RealtimeAPI"}, project_dir=tmp_path)
    assert result["message"] == "creating a (RealtimeAPI)"
    sent = stub.requests[-1]
    assert sent.query == {
        "force": "true",
        "configFileName": "cortex.yaml",
        "projectDir": str(tmp_path),
    }
    assert b"- name: a\n  kind: RealtimeAPI\n" in sent.body
    (tmp_path / "x.yaml").write_text("- name: a\n")
    with pytest.raises(cortex.CortexException, match=r"^a is updating"):
        cx.deploy_from_file(tmp_path / "x.yaml")
    assert stub.requests[-1].query["force"] == "false"
    assert stub.requests[-1].query["configFileName"] == "x.yaml"


class ScriptedClient(Client):
    """wait_until_ready's loop against scripted /describe answers (no HTTP)."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        super().__init__({"name": "t", "operator_endpoint": "http://unused"})
        self.answers = list(answers)
        self.calls = 0

    def _describe(self, api_name):
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def get_api(self, api_name):
        return {"metadata": {"name": api_name}, "done": True}


def described(ready: int, requested: int, up_to_date: int, **counts: int) -> dict[str, Any]:
    return {
        "status": {
            "ready": ready,
            "requested": requested,
            "up_to_date": up_to_date,
            "replica_counts": counts,
        }
    }


def test_wait_until_ready_needs_all_requested_ready_and_up_to_date():
    cx = ScriptedClient(
        [
            described(0, 0, 0),  # nothing requested yet: not done
            described(1, 2, 2),  # one of two ready
            described(2, 2, 1),  # an old-version replica still counted ready
            described(2, 2, 2),
        ]
    )
    assert cx.wait_until_ready("a", timeout_s=5, poll_period_s=0)["done"] is True
    assert cx.calls == 4


def test_wait_raises_on_failed_replica():
    cx = ScriptedClient([described(0, 1, 1, creating=1), described(0, 1, 1, failed=1)])
    with pytest.raises(cortex.CortexException, match=r"a has failed replicas \(1 failed\)"):
        cx.wait_until_ready("a", timeout_s=5, poll_period_s=0)


def test_wait_times_out():
    cx = ScriptedClient([described(0, 1, 1, creating=1)])
    with pytest.raises(cortex.CortexException, match=r"did not become ready within 0\.05s"):
        cx.wait_until_ready("a", timeout_s=0.05, poll_period_s=0.01)


def test_new_client_refuses_a_token_the_operator_refuses(cfg, stub):
    stub.routes[("GET", "/info")] = (403, {"error": {"code": "auth.forbidden", "message": "no"}})
    with pytest.raises(cortex.CortexException, match="refused the token") as info:
        cortex.new_client("dev", stub.url, token="bad")
    assert info.value.code == "auth.forbidden"
    assert cortex.env_list()["environments"] == []
