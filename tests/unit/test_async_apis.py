"""The operator side of AsyncAPI: queues on deploy/delete, the replica template's dequeuer, the
route, autoscaling on the queue length, the retention sweeper, responses, metrics and the CLI's
table. FakeBackend, a real StateStore and Reconciler, an in-memory SQLite broker, a local store
in tmp_path, and an injected clock."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortex.backends.fake import FakeBackend
from cortex.cli.views import EnvApis, api_list_tables, describe_blocks
from cortex.dataplane.dequeuer.settings import DequeuerMode, DequeuerSettings
from cortex.dataplane.dequeuer.sidecar import readiness_probe
from cortex.operator.app import create_app
from cortex.operator.async_apis import (
    AsyncApis,
    AsyncSettings,
    AsyncSidecar,
    queue_name_of,
)
from cortex.operator.autoscaling_loop import AutoscalingLoop
from cortex.operator.reconciler import Reconciler
from cortex.operator.settings import OperatorSettings
from cortex.operator.store import StateStore
from cortex.queue import QueueBroker, open_broker
from cortex.spec.kinds import Kind
from cortex.spec.parse import load_apis
from cortex.storage import ObjectStore, open_store, paths
from cortex.version import __version__

TOKEN = "s3cret"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "CortexAPIVersion": __version__}
DAY_S = 24 * 3600.0


def async_yaml(name: str = "q", **autoscaling: str) -> str:
    scaling = {
        "min_replicas": "0",
        "max_replicas": "5",
        "window": "20s",
        "upscale_stabilization_period": "0s",
        "downscale_stabilization_period": "20s",
        **autoscaling,
    }
    fields = ", ".join(f"{k}: {v}" for k, v in scaling.items())
    return f"""\
- name: {name}
  kind: AsyncAPI
  pod:
    max_concurrency: 3
    containers:
    - name: api
      image: img
      command: [run]
      readiness_probe: {{http_get: {{path: /healthz, port: 8080}}}}
  autoscaling: {{{fields}}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.5  # off the 10 s report boundaries

    def __call__(self) -> float:
        return self.now


@dataclass
class Parts:
    app: Any
    client: httpx.AsyncClient
    store: StateStore
    backend: FakeBackend
    reconciler: Reconciler
    loop: AutoscalingLoop
    apis: AsyncApis
    broker: QueueBroker
    objects: ObjectStore
    clock: Clock


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    settings = OperatorSettings(state_dir=tmp_path, token=TOKEN, cli_config_dir=tmp_path / "cli")
    async_settings = AsyncSettings.from_operator(settings)
    store = StateStore(tmp_path / "state.db")
    clock = Clock()
    backend = FakeBackend(clock=clock)
    reconciler = Reconciler(
        store,
        backend,
        drain_timeout_s=0.0,
        clock=clock,
        async_pod=AsyncSidecar(async_settings).pod,
    )
    loop = AutoscalingLoop(store, backend, reconciler.notify, clock=clock)
    broker = open_broker(":memory:")
    objects = open_store(str(tmp_path / "storage"))
    apis = AsyncApis(store, async_settings, broker=broker, objects=objects, clock=clock)
    app = create_app(
        settings,
        store,
        backend,
        reconciler,
        run_services=False,
        autoscaling=loop,
        async_apis=apis,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://operator") as client:
        yield Parts(app, client, store, backend, reconciler, loop, apis, broker, objects, clock)
    await broker.close()
    store.close()


async def deploy(p: Parts, text: str) -> list[dict[str, Any]]:
    resp = await p.client.post(
        "/deploy",
        params={"configFileName": "cortex.yaml", "projectDir": "/proj"},
        files={"config": ("cortex.yaml", text.encode())},
        headers=HEADERS,
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def delete(p: Parts, name: str, **params: str) -> None:
    resp = await p.client.delete(f"/delete/{name}", params=params, headers=HEADERS)
    assert resp.status_code == 200, resp.text


def put_workload(objects: ObjectStore, api: str, request_id: str, status_at: float) -> None:
    objects.put(paths.workload_payload_key(api, request_id), b"{}")
    objects.put_json(paths.workload_headers_key(api, request_id), {"X": ["1"]})
    objects.put_json(
        paths.workload_status_key(api, request_id), paths.status_record("in_queue", status_at)
    )


# --- queues on deploy and delete ---------------------------------------------------------------


async def test_settings_default_urls_and_env(tmp_path: Path) -> None:
    env = {"CORTEX_OPERATOR_TOKEN": "t", "CORTEX_STATE_DIR": str(tmp_path)}
    settings = OperatorSettings.from_env(env)
    assert settings.queue_url == f"sqlite:///{tmp_path.resolve()}/queues.db"
    assert settings.storage_url == str(tmp_path.resolve() / "storage")
    assert settings.async_retention_s == 7 * DAY_S
    custom = OperatorSettings.from_env(
        {
            **env,
            "CORTEX_QUEUE_URL": "redis://127.0.0.1:1/0",
            "CORTEX_STORAGE_URL": "memory://x",
            "CORTEX_ASYNC_RETENTION_S": "60",
            "CORTEX_ASYNC_SWEEP_PERIOD_S": "5",
            "CORTEX_ASYNC_VISIBILITY_TIMEOUT_S": "7",
        }
    )
    assert AsyncSettings.from_operator(custom) == AsyncSettings(
        queue_url="redis://127.0.0.1:1/0",
        storage_url="memory://x",
        visibility_timeout_s=7.0,
        retention_s=60.0,
        sweep_period_s=5.0,
        sample_s=1.0,
        report_s=10.0,
    )


async def test_deploy_creates_the_queue_idempotently(parts: Parts) -> None:
    [result] = await deploy(parts, async_yaml())
    assert result["message"] == "creating q (AsyncAPI)"
    rec = parts.store.get_api("q")
    assert rec is not None
    name = queue_name_of(rec)
    assert await parts.broker.list_queues() == [name]
    await parts.broker.send(name, b"r1")
    # A changed spec (an update) keeps the queue and its messages.
    [result] = await deploy(parts, async_yaml(max_replicas="6"))
    assert result["message"] == "updating q (AsyncAPI)"
    assert await parts.broker.list_queues() == [name]
    assert (await parts.broker.counts(name)).visible == 1
    # The queue's visibility timeout is the settings' (30 s): a received message stays hidden.
    [msg] = await parts.broker.receive(name)
    assert (await parts.broker.counts(name)).in_flight == 1
    assert msg.body == b"r1"


async def test_delete_removes_queue_and_workloads(parts: Parts) -> None:
    await deploy(parts, async_yaml())
    rec = parts.store.get_api("q")
    assert rec is not None
    put_workload(parts.objects, "q", "r1", 1.0)
    await delete(parts, "q")
    assert await parts.broker.list_queues() == []
    assert parts.objects.list(paths.workloads_prefix("q")) == []


async def test_delete_keep_cache_keeps_workloads_and_recreate_gets_a_new_queue(
    parts: Parts,
) -> None:
    await deploy(parts, async_yaml())
    first = parts.store.get_api("q")
    assert first is not None
    put_workload(parts.objects, "q", "r1", 1.0)
    await delete(parts, "q", keepCache="true")
    assert await parts.broker.list_queues() == []
    assert parts.objects.exists(paths.workload_status_key("q", "r1"))

    await deploy(parts, async_yaml())
    second = parts.store.get_api("q")
    assert second is not None
    assert second.initial_deployment_time_ns != first.initial_deployment_time_ns
    assert await parts.broker.list_queues() == [queue_name_of(second)]
    assert queue_name_of(second) != queue_name_of(first)


async def test_reconcile_queues_creates_missing_and_deletes_orphans(parts: Parts) -> None:
    await deploy(parts, async_yaml())
    rec = parts.store.get_api("q")
    assert rec is not None
    await parts.broker.delete_queue(queue_name_of(rec))  # e.g. a broker that lost it
    await parts.broker.create_queue("async-gone-0000000001")  # left by a crash
    await parts.broker.create_queue("batch-job-1")  # someone else's
    await parts.apis.reconcile_queues()
    assert sorted(await parts.broker.list_queues()) == sorted(["batch-job-1", queue_name_of(rec)])


# --- replicas and route ------------------------------------------------------------------------


async def test_replica_template_has_the_dequeuer(parts: Parts) -> None:
    await deploy(parts, async_yaml(min_replicas="1"))
    rec = parts.store.get_api("q")
    assert rec is not None
    parts.reconciler.step()
    [template] = parts.backend.created
    assert [c.name for c in template.pod.containers] == ["api", "dequeuer"]
    sidecar = template.pod.containers[-1]
    settings = DequeuerSettings.from_env(sidecar.env)
    assert settings.mode == DequeuerMode.ASYNC
    assert settings.api_kind == Kind.ASYNC_API
    assert settings.api_name == "q"
    assert settings.queue_name == queue_name_of(rec)
    assert settings.queue_url == parts.apis.settings.queue_url
    assert settings.storage_url == parts.apis.settings.storage_url
    assert settings.workers == 3  # pod.max_concurrency
    assert settings.pod_port == 8080
    assert settings.visibility_timeout_s == 30.0
    assert settings.probe is not None and settings.probe.http_get is not None
    assert settings.probe.http_get.path == "/healthz"
    # The user's pod (and so pod_id) is unchanged: the sidecar lives in the template only.
    assert [c.name for c in template.pod.containers[:-1]] == ["api"]


async def test_route_table_has_the_async_route(parts: Parts) -> None:
    await deploy(parts, async_yaml())
    rec = parts.store.get_api("q")
    assert rec is not None
    parts.reconciler.step()
    table = parts.reconciler.route_table()
    assert [(a.api_name, a.endpoint, a.queue_name) for a in table.async_routes] == [
        ("q", "/q", queue_name_of(rec))
    ]
    assert table.realtime == ()


# --- autoscaling on the queue length -----------------------------------------------------------


async def step(p: Parts, seconds: float = 10.0) -> int:
    """Advance the clock, read the queue (one report per 10 s slot), tick; the new request."""
    p.clock.now += seconds
    await p.apis.poll()
    p.loop.tick_all()
    rec = p.store.get_api("q")
    assert rec is not None
    return rec.requested


async def test_queue_length_scales_up_down_and_to_zero(parts: Parts) -> None:
    # min 0, max 5, target 3 (max_concurrency), window 20 s, upscale 0 s, downscale 20 s.
    await deploy(parts, async_yaml())
    rec = parts.store.get_api("q")
    assert rec is not None and rec.requested == 0
    queue = queue_name_of(rec)
    assert await step(parts, 0) == 0  # t=1000.5: starts the clock, queue empty: avg 0
    await parts.broker.send_batch(queue, [b"r%d" % i for i in range(12)])
    # t=1010.5: window (990.5, 1010.5] holds reports 0 and 12 -> avg 6, raw 6/3 = 2 -> rec 2,
    # capped at max(0+1, ceil(0*1.5)) = 1: 0 -> 1 within one tick.
    assert await step(parts) == 1
    parts.reconciler.step()
    assert len(parts.backend.created) == 1
    # t=1020.5: window (1000.5, 1020.5] holds 12, 12 -> avg 12, raw 4, cap max(2, 2) -> 2.
    assert await step(parts) == 2
    # t=1030.5: avg 12 -> raw 4 -> rec 4, cap max(3, ceil(3)) = 3.
    assert await step(parts) == 3
    for _ in range(12):  # the workers take everything off the queue
        [msg] = await parts.broker.receive(queue)
        await parts.broker.ack(queue, msg.receipt)
    # t=1040.5: (12 + 0) / 2 = 6 -> raw 2 -> rec 2 < 3, but the last 20 s held 3s: stays 3.
    assert await step(parts) == 3
    # t=1050.5: avg 0 -> rec max(0, min(2, ceil(2.25))) = 2; last 20 s: 3, 2, 2 -> stays 3.
    assert await step(parts) == 3
    # t=1060.5: recs of the last 20 s are 2, 2, 2 -> 2.
    assert await step(parts) == 2
    # Each step down needs the whole 20 s downscale period of lower recommendations (the
    # one recorded at its start included): 2 holds two more ticks, then 1 three, then 0.
    requests = [await step(parts) for _ in range(6)]
    assert requests == [2, 2, 1, 1, 1, 0]
    scaler = parts.loop.describe(parts.store.get_api("q"))  # type: ignore[arg-type]
    assert scaler["in_flight"] == 0.0
    # Messages again: scaled up from zero by the normal tick.
    await parts.broker.send(queue, b"again")
    assert await step(parts) == 1


async def test_scale_from_zero_waits_for_the_upscale_period(parts: Parts) -> None:
    await deploy(parts, async_yaml(upscale_stabilization_period="30s"))
    rec = parts.store.get_api("q")
    assert rec is not None
    await parts.broker.send(queue_name_of(rec), b"r1")
    assert await step(parts, 0) == 0  # t=1000.5: the autoscaler starts tracking the API
    assert await step(parts) == 0  # 10 s in: no upscale during the first 30 s
    assert await step(parts) == 0
    assert await step(parts) == 1  # 30 s of recommendations of 1


async def test_no_report_without_a_new_slot(parts: Parts) -> None:
    await deploy(parts, async_yaml())
    seen: list[tuple[str, str, float]] = []
    parts.apis.record_value = lambda api, series, value: seen.append((api, series, value))
    await parts.apis.poll()
    parts.clock.now += 1
    await parts.apis.poll()  # same 10 s slot: counts refreshed, nothing recorded
    parts.clock.now += 10
    await parts.apis.poll()
    assert seen == [("q", "queue", 0.0), ("q", "queue", 0.0)]


# --- retention ---------------------------------------------------------------------------------


async def test_sweeper_removes_only_old_workloads(parts: Parts) -> None:
    now = 10 * DAY_S
    retention = parts.apis.settings.retention_s
    put_workload(parts.objects, "q", "old", now - retention - 1)
    put_workload(parts.objects, "q", "new", now - retention + 60)
    put_workload(parts.objects, "gone", "old", now - retention - 1)  # a deleted API's
    # No status: its objects' modification time counts.
    parts.objects.put(paths.workload_payload_key("q", "nostatus"), b"x")
    payload = Path(parts.objects.url.removeprefix("file://")) / paths.workload_payload_key(
        "q", "nostatus"
    )
    os.utime(payload, (now - retention - 5, now - retention - 5))
    parts.objects.put(paths.workload_payload_key("q", "fresh-nostatus"), b"x")

    assert parts.apis.sweep(now) == 3
    assert parts.objects.list_dirs(paths.workloads_prefix("q")) == ["fresh-nostatus", "new"]
    assert parts.objects.list_dirs(paths.workloads_prefix("gone")) == []
    assert parts.apis.sweep(now) == 0


async def test_sweeper_skips_unreadable_status(parts: Parts) -> None:
    parts.objects.put(paths.workload_status_key("q", "bad"), b"not json")
    assert parts.apis.sweep(10 * DAY_S) == 0  # falls back to the (fresh) modification time
    assert parts.objects.exists(paths.workload_status_key("q", "bad"))


# --- responses, metrics, CLI -------------------------------------------------------------------


async def test_get_describe_metrics_and_views(parts: Parts) -> None:
    await deploy(parts, async_yaml(min_replicas="1"))
    rec = parts.store.get_api("q")
    assert rec is not None
    queue = queue_name_of(rec)
    [item] = (await parts.client.get("/get", headers=HEADERS)).json()
    assert "queue" not in item  # not read yet
    await parts.broker.send_batch(queue, [b"a", b"b", b"c"])
    await parts.broker.receive(queue)
    await parts.apis.poll()
    [item] = (await parts.client.get("/get", headers=HEADERS)).json()
    assert item["queue"] == {"queued": 2, "in_progress": 1}
    [one] = (await parts.client.get("/get/q", headers=HEADERS)).json()
    assert one["queue"] == {"queued": 2, "in_progress": 1}
    parts.reconciler.step()
    parts.backend.make_ready()
    [described] = (await parts.client.get("/describe/q", headers=HEADERS)).json()
    assert described["queue"] == {"queued": 2, "in_progress": 1}
    assert described["status"]["replica_counts"]["requested"] == 1

    metrics = (await parts.client.get("/metrics")).text
    assert 'cortex_async_queued{api_kind="AsyncAPI",api_name="q"} 2.0' in metrics
    assert 'cortex_async_active{api_kind="AsyncAPI",api_name="q"} 1.0' in metrics
    assert 'cortex_async_in_flight{api_kind="AsyncAPI",api_name="q"} 3.0' in metrics

    [table] = api_list_tables([EnvApis("local", [item])], show_env=True, now=rec.last_updated)
    assert table.headers == (
        "env",
        "async api",
        "status",
        "live",
        "up-to-date",
        "queued",
        "in progress",
        "last update",
    )
    assert table.rows[0][0:2] == ["local", "q"]
    assert table.rows[0][5:7] == ["2", "1"]
    blocks = describe_blocks(described, now=rec.last_updated)
    first = blocks[0]
    assert not isinstance(first, str)
    assert first.rows[0][4:6] == ["2", "1"]


def test_views_without_queue_show_dashes() -> None:
    api = {"metadata": {"name": "q", "kind": "AsyncAPI", "last_updated": 0}, "status": {}}
    [table] = api_list_tables([EnvApis("local", [api])], show_env=False, now=5.0)
    assert table.rows[0][4:6] == ["-", "-"]


# --- lifespan and restart ----------------------------------------------------------------------


def operator_app(tmp_path: Path, backend: FakeBackend) -> tuple[Any, StateStore, Reconciler]:
    settings = OperatorSettings(
        state_dir=tmp_path,
        token=TOKEN,
        cli_config_dir=tmp_path / "cli",
        reconcile_period_s=0.05,
        inflight_sample_s=0.05,
        inflight_report_s=0.1,
    )
    store = StateStore(tmp_path / "state.db")
    reconciler = Reconciler(
        store,
        backend,
        period_s=0.05,
        drain_timeout_s=0.0,
        async_pod=AsyncSidecar(AsyncSettings.from_operator(settings)).pod,
    )
    return create_app(settings, store, backend, reconciler), store, reconciler


async def wait_for(condition: Any, timeout_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_restart_keeps_the_queue_and_brings_replicas_back(tmp_path: Path) -> None:
    backend = FakeBackend()
    app, store, _ = operator_app(tmp_path, backend)
    async with app.router.lifespan_context(app):
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"cortex-async-queues", "cortex-async-sweeper"} <= names
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://op") as client:
            resp = await client.post(
                "/deploy",
                params={"projectDir": "/proj"},
                files={"config": ("cortex.yaml", async_yaml(min_replicas="1").encode())},
                headers=HEADERS,
            )
            assert resp.status_code == 200, resp.text
        rec = store.get_api("q")
        assert rec is not None
        broker = app.state.async_apis.broker
        await broker.send(queue_name_of(rec), b"queued-before-restart")
        await wait_for(lambda: len(backend.created) == 1)
        await wait_for(lambda: app.state.async_apis.queue_counts("q") is not None)
    store.close()

    restarted = FakeBackend()  # the old replicas went with the old operator
    app2, store2, reconciler2 = operator_app(tmp_path, restarted)
    async with app2.router.lifespan_context(app2):
        broker2 = app2.state.async_apis.broker
        assert await broker2.list_queues() == [queue_name_of(rec)]
        assert (await broker2.counts(queue_name_of(rec))).visible == 1
        await wait_for(lambda: len(restarted.created) == 1)
        assert restarted.created[0].pod.containers[-1].name == "dequeuer"
        await wait_for(lambda: len(reconciler2.route_table().async_routes) == 1)
        await wait_for(lambda: app2.state.async_apis.queue_counts("q") is not None)
        counts = app2.state.async_apis.queue_counts("q")
        assert (counts.visible, counts.in_flight) == (1, 0)
    store2.close()


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ("", None),
        ("readiness_probe: {tcp_socket: {port: 8080}}", "tcp"),
    ],
)
def test_dequeuer_probe_is_the_users_http_or_tcp_probe(probe: str, expected: str | None) -> None:
    text = f"""\
- name: q
  kind: AsyncAPI
  pod:
    containers:
    - name: api
      image: img
      command: [run]
      {probe}
"""
    [api] = load_apis(text, file_name="cortex.yaml")
    assert api.pod is not None
    found = readiness_probe(api.pod)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.tcp_socket is not None
