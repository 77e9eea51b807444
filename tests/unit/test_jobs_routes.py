"""The job routes in the operator app, in-process (httpx.ASGITransport), unauthenticated."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cortex.operator.app import create_app
from cortex.operator.jobs.routes import router
from cortex.operator.reconciler import Reconciler
from cortex.operator.settings import OperatorSettings
from cortex.version import __version__
from tests.unit.test_jobs_manager import Harness

TOKEN = "t0ken"


@pytest.fixture
async def client(tmp_path: Path):
    h = Harness(tmp_path)
    settings = OperatorSettings(state_dir=tmp_path, token=TOKEN, cli_config_dir=tmp_path / "cli")
    reconciler = Reconciler(h.store, h.backend)
    app = create_app(
        settings,
        h.store,
        h.backend,
        reconciler,
        run_services=False,
        public_routers=[router],
        jobs=h.manager,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://op") as http:
        yield http, h
    await h.manager.close()
    h.store.close()


async def test_submit_get_stop_task(client: tuple[httpx.AsyncClient, Harness]) -> None:
    http, _ = client
    r = await http.post("/tasks/train", json={"config": {"a": 1}})
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    assert r.json()["kind"] == "TaskAPI" and r.json()["start_time"].endswith("Z")
    r = await http.get("/tasks/train", params={"jobID": job_id})
    assert r.json()["job_status"]["status"] == "running"
    assert r.json()["api_spec"]["name"] == "train"
    r = await http.delete("/tasks/train", params={"jobID": job_id})
    assert r.json() == {"message": f"stopped job {job_id}"}
    headers = {"Authorization": f"Bearer {TOKEN}", "CortexAPIVersion": __version__}
    listed = (await http.get("/get", headers=headers)).json()
    train = next(a for a in listed if a["metadata"]["name"] == "train")
    assert train["task_job_statuses"][0]["status"] == "stopped"
    one = (await http.get("/get/train", headers=headers)).json()[0]
    assert one["task_job_statuses"][0]["job_id"] == job_id


async def test_batch_dry_run_and_errors(client: tuple[httpx.AsyncClient, Harness]) -> None:
    http, _ = client
    body = {"workers": 1, "item_list": {"items": [1], "batch_size": 1}}
    r = await http.post("/batch/classify", params={"dryRun": "true"}, json=body)
    assert r.status_code == 200 and r.text == "validations passed\n"
    assert r.headers["content-type"].startswith("text/plain")
    r = await http.post("/batch/classify", json={"workers": 1})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("specify exactly one of the following keys")
    r = await http.get("/batch/classify")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "query param required: jobID"
    r = await http.post("/batch/train", json=body)
    assert r.json()["error"]["code"] == "operation.unsupported"
    r = await http.get("/tasks/nope", params={"jobID": "x"})
    assert r.status_code == 404


async def test_request_size_limit(client: tuple[httpx.AsyncClient, Harness]) -> None:
    http, _ = client
    items = ["x" * 1000] * 11_000  # about 11 MB of JSON
    r = await http.post("/batch/classify", content=json.dumps({"item_list": {"items": items}}))
    assert r.status_code == 413
    assert "exceeds the limit of 10485760 bytes" in r.json()["error"]["message"]


async def test_logs_of_an_unknown_job_are_refused(
    client: tuple[httpx.AsyncClient, Harness],
) -> None:
    http, _ = client
    headers = {"Authorization": f"Bearer {TOKEN}", "CortexAPIVersion": __version__}
    job_id = (await http.post("/tasks/train", json={})).json()["job_id"]
    known = await http.get("/streamlogs/train", params={"jobID": job_id}, headers=headers)
    assert known.status_code == 200
    unknown = await http.get("/streamlogs/train", params={"jobID": "nope"}, headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"].startswith("train has no job with id nope")
