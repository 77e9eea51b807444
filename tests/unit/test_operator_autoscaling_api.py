"""The operator's autoscaling routes over HTTP (ASGI, no server): the gateway's sync reports
feeding the autoscaler and the request metrics, ``/internal/awaken``, ``/describe``'s
autoscaler section, the status string and the autoscaler's gauges on ``/metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cortex.backends.fake import FakeBackend
from cortex.operator.app import create_app
from cortex.operator.autoscaling_loop import AutoscalingLoop
from cortex.operator.reconciler import Reconciler
from cortex.operator.settings import OperatorSettings, SettingsError
from cortex.operator.store import StateStore
from cortex.version import __version__

TOKEN = "t0k"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "CortexAPIVersion": __version__}
ZERO = """\
- name: iris
  kind: RealtimeAPI
  pod:
    containers:
    - {name: api, image: img}
  autoscaling: {min_replicas: 0, init_replicas: 0, max_replicas: 3, window: 10s}
- name: job
  kind: BatchAPI
  pod:
    containers:
    - {name: api, image: img, command: [run]}
"""


class Clock:
    now = 100.5

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path):
    settings = OperatorSettings(state_dir=tmp_path, token=TOKEN, cli_config_dir=tmp_path / "c")
    store = StateStore(tmp_path / "state.db")
    clock = Clock()
    backend = FakeBackend(clock=clock)
    reconciler = Reconciler(store, backend, drain_timeout_s=0.0, clock=clock)
    loop = AutoscalingLoop(store, backend, reconciler.notify, clock=clock)
    app = create_app(settings, store, backend, reconciler, run_services=False, autoscaling=loop)
    yield app, store, backend, reconciler, loop, clock
    store.close()


@pytest.fixture
async def client(parts):
    transport = httpx.ASGITransport(app=parts[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://operator") as c:
        await c.post(
            "/deploy",
            params={"configFileName": "cortex.yaml", "projectDir": "/proj"},
            files={"config": ("cortex.yaml", ZERO.encode())},
            headers=HEADERS,
        )
        yield c


async def sync(client: httpx.AsyncClient, **body: object) -> dict[str, Any]:
    resp = await client.post(
        "/internal/gateway/sync", json={"version": -1, "wait_s": 0, **body}, headers=HEADERS
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_scaled_to_zero_then_awakened(client: httpx.AsyncClient, parts) -> None:
    _, store, backend, reconciler, _, _ = parts
    reconciler.step()
    table = await sync(client)
    assert [r["scaled_to_zero"] for r in table["realtime"]] == [True]
    [item] = (await client.get("/get/iris", headers=HEADERS)).json()
    assert item["status"]["status"] == "scaled to zero"

    resp = await client.post("/internal/awaken/iris", headers=HEADERS)
    assert resp.json() == {"requested": 1}
    assert store.get_api("iris").requested == 1
    reconciler.step()
    table = await sync(client)
    assert [r["scaled_to_zero"] for r in table["realtime"]] == [False]
    [item] = (await client.get("/get/iris", headers=HEADERS)).json()
    assert item["status"]["status"] == "updating"
    backend.make_ready()
    reconciler.step()
    [item] = (await client.get("/get", headers=HEADERS)).json()[:1]
    assert item["status"]["status"] == "updating"  # Ready, but the gateway does not route it yet
    await sync(client, version=reconciler.route_table().version)  # the gateway acks the new table
    [item] = (await client.get("/get", headers=HEADERS)).json()[:1]
    assert item["status"]["status"] == "live"

    missing = await client.post("/internal/awaken/nope", headers=HEADERS)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "api.not_deployed")
    batch = await client.post("/internal/awaken/job", headers=HEADERS)
    assert batch.status_code == 400
    unauthenticated = await client.post("/internal/awaken/iris")
    assert unauthenticated.status_code == 401


async def test_sync_reports_feed_metrics_and_describe(client: httpx.AsyncClient, parts) -> None:
    _, store, backend, reconciler, loop, clock = parts
    store.set_requested("iris", 2)
    reconciler.step()
    backend.make_ready()
    replicas = [r.replica_id for r in backend.list_replicas("iris")]
    stats = {"count_2xx": 3, "count_4xx": 1, "count_5xx": 0, "latency_sum_s": 0.1}
    await sync(client, gateway_id="g1", requests={"iris": {**stats, "latency_count": 4}})
    stats = {"count_2xx": 9, "count_4xx": 1, "count_5xx": 2, "latency_sum_s": 0.6}
    for second in range(12):  # 12 s of 3 requests in flight on each replica
        clock.now = 100.5 + second
        in_flight = dict.fromkeys(replicas, 3)
        await sync(client, gateway_id="g1", in_flight=in_flight, held={"iris": 0})
    reconciler.step()  # the Ready replicas enter the route table; this sync acks it
    version = reconciler.route_table().version
    requests = {"iris": {**stats, "latency_count": 12}}
    await sync(client, gateway_id="g1", requests=requests, version=version)

    [item] = (await client.get("/get/iris", headers=HEADERS)).json()
    # the first report of g1 was the baseline (the operator had just started)
    assert item["metrics"] == {
        "window_s": 900.0,
        "avg_latency_ms": 62.5,  # 0.5 s over 8 requests
        "count_2xx": 6,
        "count_4xx": 0,
        "count_5xx": 2,
        "requests": 8,
    }
    loop.tick_all()
    [described] = (await client.get("/describe/iris", headers=HEADERS)).json()
    assert described["autoscaler"] == {
        "in_flight": 6.0,
        "recommendation": 3,  # ceil(6 / 1), within max_replicas 3
        "requested": 2,  # the first tick starts the clock: no upscale yet
        "min_replicas": 0,
        "max_replicas": 3,
        "target_in_flight": 1.0,
        "last_tick": pytest.approx(described["autoscaler"]["last_tick"]),
    }
    assert described["status"]["status"] == "live"
    assert described["metrics"]["count_5xx"] == 2

    text = (await client.get("/metrics")).text
    assert 'cortex_in_flight_requests{api_name="iris"} 6.0' in text
    assert 'cortex_autoscaler_recommendation{api_name="iris"} 3.0' in text
    assert 'cortex_requested_replicas{api_name="iris"} 2.0' in text


async def test_sync_body_is_validated(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/internal/gateway/sync",
        json={"version": 1, "requests": {"iris": {"count_2xx": -1}}},
        headers=HEADERS,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "request.invalid"


def test_settings_from_env() -> None:
    env = {"CORTEX_OPERATOR_TOKEN": "x"}
    defaults = OperatorSettings.from_env(env)
    assert (
        defaults.autoscaler_tick_s,
        defaults.inflight_sample_s,
        defaults.inflight_report_s,
        defaults.request_metrics_window_s,
    ) == (10.0, 1.0, 10.0, 900.0)
    short = OperatorSettings.from_env(
        env
        | {
            "CORTEX_AUTOSCALER_TICK_S": "0.5",
            "CORTEX_INFLIGHT_SAMPLE_S": "0.1",
            "CORTEX_INFLIGHT_REPORT_S": "0.5",
            "CORTEX_REQUEST_METRICS_WINDOW_S": "30",
        }
    )
    assert (short.autoscaler_tick_s, short.inflight_sample_s) == (0.5, 0.1)
    assert (short.inflight_report_s, short.request_metrics_window_s) == (0.5, 30.0)
    with pytest.raises(SettingsError, match="CORTEX_AUTOSCALER_TICK_S"):
        OperatorSettings.from_env(env | {"CORTEX_AUTOSCALER_TICK_S": "0"})
    with pytest.raises(SettingsError, match="CORTEX_INFLIGHT_SAMPLE_S"):
        OperatorSettings.from_env(env | {"CORTEX_INFLIGHT_SAMPLE_S": "20"})
