from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from cortex.backends.fake import FakeBackend
from cortex.operator.__main__ import node_capacity
from cortex.operator.app import create_app
from cortex.operator.endpoints.deploy import config_from_multipart
from cortex.operator.reconciler import Reconciler
from cortex.operator.settings import OperatorSettings, SettingsError
from cortex.operator.store import StateStore
from cortex.version import __version__

TOKEN = "s3cret"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "CortexAPIVersion": __version__}

REALTIME = """\
- name: iris
  kind: RealtimeAPI
  pod:
    containers:
    - name: api
      image: python:3.11
      command: [python, -m, http.server]
      env: {GREETING: "héllo"}
  autoscaling: {min_replicas: 1, init_replicas: 2}
"""
BATCH = """\
- name: job
  kind: BatchAPI
  pod:
    containers:
    - name: api
      image: python:3.11
      command: [python, run.py]
"""
SPLITTER = """\
- name: split
  kind: TrafficSplitter
  apis:
  - {name: iris, weight: 100}
"""


class StubJobs:
    def job_statuses(self, rec, *, limit: int):
        return [{"job_id": f"{rec.name}-1", "limit": limit}] if rec.kind == "BatchAPI" else []


@pytest.fixture
def parts(tmp_path: Path):
    settings = OperatorSettings(
        state_dir=tmp_path, token=TOKEN, cli_config_dir=tmp_path / "cli", api_port=9999
    )
    store = StateStore(tmp_path / "state.db")
    backend = FakeBackend()
    reconciler = Reconciler(store, backend, drain_timeout_s=0.0)
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("kaput")

    app = create_app(
        settings, store, backend, reconciler, run_services=False, routers=[boom], jobs=StubJobs()
    )
    yield app, store, backend, reconciler
    store.close()


@pytest.fixture
async def client(parts):
    transport = httpx.ASGITransport(app=parts[0], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://operator") as c:
        yield c


async def post_deploy(client: httpx.AsyncClient, text: str, **params: str) -> httpx.Response:
    return await client.post(
        "/deploy",
        params={"configFileName": "cortex.yaml", "projectDir": "/proj", **params},
        files={"config": ("cortex.yaml", text.encode())},
        headers=HEADERS,
    )


def assert_error(resp: httpx.Response, status: int, code: str, message: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    if message is not None:
        assert body["error"]["message"] == message
    return str(body["error"]["message"])


# --- auth --------------------------------------------------------------------------------------


async def test_unauthenticated_routes(client: httpx.AsyncClient) -> None:
    resp = await client.get("/verifycortex")
    assert (resp.status_code, resp.json()) == (200, {})
    assert (await client.get("/metrics")).status_code == 200


async def test_missing_and_wrong_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/get"), 401, "auth.missing")
    bad = {"Authorization": "Bearer nope", "CortexAPIVersion": __version__}
    assert_error(await client.get("/get", headers=bad), 403, "auth.forbidden")
    basic = {"Authorization": f"Basic {TOKEN}", "CortexAPIVersion": __version__}
    assert_error(await client.get("/get", headers=basic), 401, "auth.missing")


async def test_version_header(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    missing = await client.get("/get", headers=auth)
    assert_error(missing, 400, "version.mismatch", "missing CortexAPIVersion header")
    wrong = await client.get("/get", headers={**auth, "CortexAPIVersion": "0.0.1"})
    message = assert_error(wrong, 400, "version.mismatch")
    assert message.startswith(
        f"your CLI version (0.0.1) doesn't match your Cortex operator version ({__version__})"
    )
    assert (await client.get("/info", headers=auth)).status_code == 200  # /info: no version
    assert_error(await client.get("/info"), 401, "auth.missing")


# --- errors ------------------------------------------------------------------------------------


async def test_error_shapes(client: httpx.AsyncClient) -> None:
    not_deployed = await client.get("/get/nope", headers=HEADERS)
    assert_error(not_deployed, 404, "api.not_deployed", "nope is not deployed")
    assert_error(await client.get("/no/such/route", headers=HEADERS), 404, "resource.not_found")
    assert_error(await client.put("/deploy", headers=HEADERS), 405, "request.invalid")
    message = assert_error(await client.get("/boom", headers=HEADERS), 500, "cortex")
    assert "kaput" in message


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/internal/gateway/sync", json={"version": "x", "wait_s": 0}, headers=HEADERS
    )
    message = assert_error(resp, 400, "request.invalid")
    assert message.startswith("body: version: ")


async def test_deploy_requires_the_config_file(client: httpx.AsyncClient) -> None:
    resp = await client.post("/deploy", headers=HEADERS, data={"other": "x"})
    assert_error(resp, 400, "request.invalid", 'request form file "config" must be provided')
    resp = await client.post("/deploy", headers=HEADERS, content=b"- name: x")
    assert_error(resp, 400, "request.invalid", 'request form file "config" must be provided')


async def test_invalid_spec_is_400_and_stores_nothing(client: httpx.AsyncClient, parts) -> None:
    resp = await post_deploy(client, REALTIME + "- name: bad\n  kind: Nope\n")
    message = assert_error(resp, 400, "spec.invalid")
    assert message.startswith("cortex.yaml: ")
    assert parts[1].list_apis() == []


def test_multipart_keeps_the_files_bytes() -> None:
    text = '- name: x\r\n  env: {A: "h\u00e9llo"}\r\n'.encode()
    request = httpx.Request("POST", "http://x", files={"config": ("c.yaml", text)})
    body = request.read()
    assert config_from_multipart(request.headers["content-type"], body) == text


# --- deploy and reads --------------------------------------------------------------------------


async def test_deploy_result_shape(client: httpx.AsyncClient, parts) -> None:
    resp = await post_deploy(client, REALTIME + BATCH + SPLITTER)
    assert resp.status_code == 200, resp.text
    results = resp.json()
    assert [(r["message"], r["error"]) for r in results] == [
        ("creating iris (RealtimeAPI)", ""),
        ("created job (BatchAPI)", ""),
        ("created split (TrafficSplitter)", ""),
    ]
    api = results[0]["api"]
    assert api["endpoint"] == "http://127.0.0.1:9999/iris"
    assert api["metadata"]["name"] == "iris" and api["metadata"]["kind"] == "RealtimeAPI"
    spec = api["spec"]
    assert spec["id"] == api["metadata"]["id"]
    assert spec["submitted_api_spec"]["pod"]["containers"][0]["env"] == {"GREETING": "héllo"}
    assert spec["autoscaling"]["window"] == 60 * 10**9
    assert spec["pod"]["containers"][0]["compute"]["cpu"] == "200m"
    assert parts[1].get_api("iris").project_dir == "/proj"

    again = (await post_deploy(client, REALTIME)).json()
    assert again[0]["message"] == "iris (RealtimeAPI) is already updating"


async def test_deploy_error_result(client: httpx.AsyncClient) -> None:
    await post_deploy(client, BATCH)
    results = (await post_deploy(client, BATCH.replace("BatchAPI", "TaskAPI"))).json()
    assert results[0]["api"] is None
    assert results[0]["error"].startswith("error: cannot change the kind of job to TaskAPI")


async def test_get_list_order_and_shapes(client: httpx.AsyncClient, parts) -> None:
    _, _, backend, reconciler = parts
    await post_deploy(client, SPLITTER + BATCH + REALTIME)
    reconciler.step()
    backend.make_ready()
    items = (await client.get("/get", headers=HEADERS)).json()
    assert [i["metadata"]["name"] for i in items] == ["iris", "job", "split"]
    iris, job, split = items
    assert set(iris) == {"metadata", "status", "metrics"}
    assert iris["status"] == {"status": "live", "ready": 2, "requested": 2, "up_to_date": 2}
    assert iris["metrics"] == {
        "window_s": 900.0,
        "avg_latency_ms": None,
        "count_2xx": 0,
        "count_4xx": 0,
        "count_5xx": 0,
        "requests": 0,
    }
    assert set(iris["metadata"]) == {"name", "kind", "id", "deployment_id", "last_updated"}
    assert "deployment_id" not in job["metadata"]
    assert job["batch_job_statuses"] == [{"job_id": "job-1", "limit": 10}]
    assert split["num_traffic_splitter_targets"] == 1


async def test_get_one_and_versions(client: httpx.AsyncClient, parts) -> None:
    _, store, backend, reconciler = parts
    await post_deploy(client, REALTIME)
    first_id = store.get_api("iris").api_id
    reconciler.step()
    backend.make_ready()
    await post_deploy(client, REALTIME.replace("python:3.11", "python:3.12"))
    current_id = store.get_api("iris").api_id

    [one] = (await client.get("/get/iris", headers=HEADERS)).json()
    assert set(one) == {"metadata", "status", "metrics", "spec", "endpoint", "api_versions"}
    assert [v["api_id"] for v in one["api_versions"]] == [current_id, first_id]
    assert one["endpoint"] == "http://127.0.0.1:9999/iris"

    same = (await client.get(f"/get/iris/{current_id}", headers=HEADERS)).json()
    assert same[0]["metadata"]["id"] == current_id and "status" in same[0]
    old = (await client.get(f"/get/iris/{first_id}", headers=HEADERS)).json()
    assert set(old[0]) == {"spec"}
    assert old[0]["spec"]["pod"]["containers"][0]["image"] == "python:3.11"
    missing = await client.get("/get/iris/nope", headers=HEADERS)
    assert_error(missing, 404, "resource.not_found", "iris with id nope has never been deployed")


async def test_describe(client: httpx.AsyncClient, parts) -> None:
    _, _, _, reconciler = parts
    await post_deploy(client, REALTIME + BATCH)
    reconciler.step()
    [item] = (await client.get("/describe/iris", headers=HEADERS)).json()
    counts = item["status"]["replica_counts"]
    assert counts["requested"] == 2 and counts["creating"] == 2
    assert item["status"]["ready"] == 0 and item["status"]["requested"] == 2
    assert item["endpoint"] == "http://127.0.0.1:9999/iris"
    message = assert_error(
        await client.get("/describe/job", headers=HEADERS), 400, "operation.unsupported"
    )
    assert message.endswith("not supported for job of kind BatchAPI")


async def test_refresh_and_delete(client: httpx.AsyncClient, parts) -> None:
    _, store, _, reconciler = parts
    await post_deploy(client, REALTIME + SPLITTER)
    reconciler.step()
    refused = await client.post("/refresh/iris", headers=HEADERS)
    assert_error(refused, 409, "api.conflict", "iris is updating (override with --force)")
    forced = await client.post("/refresh/iris", params={"force": "true"}, headers=HEADERS)
    assert forced.json() == {"message": "updating iris (RealtimeAPI)"}

    guarded = await client.delete("/delete/iris", headers=HEADERS)
    used = "cannot delete api because it is used by the following TrafficSplitter: split"
    assert_error(guarded, 409, "api.conflict", used)
    assert (await client.delete("/delete/split", headers=HEADERS)).json() == {
        "message": "deleting split"
    }
    resp = await client.delete("/delete/iris", params={"keepCache": "t"}, headers=HEADERS)
    assert resp.json() == {"message": "deleting iris"}
    assert store.get_api("iris") is None and len(store.api_versions("iris")) == 2


async def test_bool_query_params_default_to_false(client: httpx.AsyncClient, parts) -> None:
    await post_deploy(client, REALTIME)
    parts[3].step()
    resp = await client.post("/refresh/iris", params={"force": "maybe"}, headers=HEADERS)
    assert_error(resp, 409, "api.conflict")


# --- logs, info, metrics, gateway sync ---------------------------------------------------------


async def test_stream_logs(client: httpx.AsyncClient, parts) -> None:
    backend = parts[2]
    assert_error(await client.get("/streamlogs/iris", headers=HEADERS), 404, "api.not_deployed")
    await post_deploy(client, REALTIME + BATCH)
    backend.add_log("iris", '{"message": "one"}')
    backend.add_log("iris", '{"message": "two"}\n')
    params = {"follow": "false", "jobID": ""}  # an empty jobID is no job id
    resp = await client.get("/streamlogs/iris", params=params, headers=HEADERS)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == '{"message": "one"}\n{"message": "two"}\n'
    message = assert_error(
        await client.get("/streamlogs/job", headers=HEADERS), 400, "request.invalid"
    )
    assert message.startswith("job id is required for job (BatchAPI)")
    backend.add_log("job", "j1", job_id="abc")
    backend.add_log("job", "other", job_id="zzz")
    resp = await client.get("/streamlogs/job", params={"jobID": "abc"}, headers=HEADERS)
    assert resp.text == "j1\n"
    url = (await client.get("/logs/iris", headers=HEADERS)).json()
    assert url == {"log_url": "http://127.0.0.1:8888/streamlogs/iris"}


async def test_a_traffic_splitter_has_no_logs(client: httpx.AsyncClient) -> None:
    await post_deploy(client, REALTIME + SPLITTER)
    refused = await client.get("/streamlogs/split", headers=HEADERS)
    message = assert_error(refused, 400, "operation.unsupported")
    assert message.startswith("split is a TrafficSplitter, which has no replicas")


async def test_followed_stream_ends_when_the_operator_stops(
    client: httpx.AsyncClient, parts
) -> None:
    app, _, backend, _ = parts
    await post_deploy(client, REALTIME)
    backend.add_log("iris", "first")
    request = asyncio.create_task(
        client.get("/streamlogs/iris", params={"follow": "true"}, headers=HEADERS)
    )
    await asyncio.sleep(0.05)
    backend.add_log("iris", "second")
    await asyncio.sleep(0.05)
    assert not request.done()  # following: still open
    app.state.cortex.stopping.set()
    resp = await asyncio.wait_for(request, timeout=2)
    assert resp.text == "first\nsecond\n"


async def test_info(client: httpx.AsyncClient, parts) -> None:
    await post_deploy(client, REALTIME)
    parts[3].step()
    info = (await client.get("/info", headers=HEADERS)).json()
    assert info["cluster_config"] == {
        "cluster_name": "local",
        "backend": "local",
        "api_version": __version__,
        "operator_endpoint": "http://127.0.0.1:8888",
        "api_endpoint": "http://127.0.0.1:9999",
    }
    [node] = info["worker_node_infos"]
    assert node["name"] == "local" and node["num_replicas"] == 2
    assert node["compute_user_capacity"] == {"cpu": "16", "mem": "64Gi", "gpu": 0}
    assert node["compute_user_requested"] == {"cpu": "400m", "mem": "0", "gpu": 0}
    assert info["num_pending_replicas"] == 0


async def test_metrics(client: httpx.AsyncClient, parts) -> None:
    await post_deploy(client, REALTIME + BATCH)
    parts[3].step()
    text = (await client.get("/metrics")).text
    assert 'cortex_apis{kind="RealtimeAPI"} 1.0' in text
    assert 'cortex_apis{kind="TaskAPI"} 0.0' in text
    assert 'cortex_replicas{api_name="iris",status="Creating"} 2.0' in text
    assert 'cortex_requested_replicas{api_name="iris"} 2.0' in text


async def test_gateway_sync(client: httpx.AsyncClient, parts) -> None:
    _, _, backend, reconciler = parts
    await post_deploy(client, REALTIME)
    reconciler.step()
    backend.make_ready()
    reconciler.step()
    resp = await client.post(
        "/internal/gateway/sync", json={"version": -1, "wait_s": 0}, headers=HEADERS
    )
    assert resp.status_code == 200, resp.text
    table = resp.json()
    assert table["version"] == reconciler.route_table().version
    [route] = table["realtime"]
    assert route["endpoint"] == "/iris" and len(route["upstreams"]) == 2
    assert_error(
        await client.post("/internal/gateway/sync", json={"version": 0}), 401, "auth.missing"
    )


# --- settings and the entry point's helpers ---------------------------------------------------


def test_settings_from_env_defaults_and_overrides(tmp_path: Path) -> None:
    defaults = OperatorSettings.from_env(
        {"CORTEX_OPERATOR_TOKEN": "t", "CORTEX_CLI_CONFIG_DIR": str(tmp_path)}
    )
    assert defaults.state_dir == tmp_path / "local"
    assert defaults.state_db == tmp_path / "local" / "state.db"
    assert (defaults.port, defaults.api_port, defaults.reconcile_period_s) == (8888, 8889, 1.0)
    assert (defaults.node_cpu_millis, defaults.node_mem_bytes, defaults.node_gpus) == (None,) * 3
    custom = OperatorSettings.from_env(
        {
            "CORTEX_OPERATOR_TOKEN": "t",
            "CORTEX_STATE_DIR": str(tmp_path / "s"),
            "CORTEX_OPERATOR_PORT": "1234",
            "CORTEX_NODE_CPU": "3500m",
            "CORTEX_NODE_MEM": "2Gi",
            "CORTEX_NODE_GPUS": "0",
            "CORTEX_LOG_LEVEL": "debug",
        }
    )
    assert custom.state_dir == tmp_path / "s"
    assert custom.operator_url == "http://127.0.0.1:1234"
    assert (custom.node_cpu_millis, custom.node_mem_bytes, custom.node_gpus) == (3500, 2**31, 0)
    assert custom.log_level == "DEBUG"
    node = node_capacity(custom)
    assert node is not None and (node.cpu_millis, node.mem_bytes, node.gpus) == (3500, 2**31, 0)
    assert node_capacity(defaults) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CORTEX_OPERATOR_TOKEN must be set"),
        ({"CORTEX_OPERATOR_TOKEN": "t", "CORTEX_API_PORT": "x"}, "CORTEX_API_PORT must be an"),
        ({"CORTEX_OPERATOR_TOKEN": "t", "CORTEX_NODE_MEM": "lots"}, "CORTEX_NODE_MEM must be a"),
        ({"CORTEX_OPERATOR_TOKEN": "t", "CORTEX_RECONCILE_PERIOD_S": "-1"}, "cannot be negative"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        OperatorSettings.from_env(env)
