"""DequeuerSettings env round trip, the sidecar container, the worker metrics key."""

from __future__ import annotations

import sys

import pytest

from cortex.dataplane.dequeuer import DequeuerMode, DequeuerSettings, dequeuer_container
from cortex.dataplane.dequeuer.settings import DequeuerSettingsError
from cortex.spec.kinds import Kind
from cortex.spec.models import HTTPGetAction, Probe
from cortex.spec.quantity import Quantity
from cortex.storage import paths
from cortex.storage.base import InvalidKeyError


def _full() -> DequeuerSettings:
    return DequeuerSettings(
        mode=DequeuerMode.BATCH,
        queue_url="sqlite:////tmp/q.db",
        queue_name="batch-api-job1",
        storage_url="/tmp/storage",
        api_name="api",
        api_kind=Kind.BATCH_API,
        user_port=41234,
        pod_port=8080,
        workers=3,
        job_id="job1",
        probe=Probe(http_get=HTTPGetAction(path="/ready", port=8080), period_seconds=2),
        visibility_timeout_s=12.5,
        receive_wait_s=0.25,
        probe_period_s=0.5,
        empty_checks=4,
        drain_timeout_s=7.0,
        max_receive_count=3,
        completion_queue="done-q",
        metrics_period_s=0.5,
        worker_id="w1",
        admin_port=15000,
        log_level="DEBUG",
    )


def test_round_trip_of_every_field() -> None:
    settings = _full()
    env = settings.to_env()
    assert env["CORTEX_PORT"] == "41234"
    assert env["CORTEX_DEQUEUER_MODE"] == "batch"
    assert all(k.startswith("CORTEX_DEQUEUER_") for k in env if k != "CORTEX_PORT")
    assert DequeuerSettings.from_env({**env, "CORTEX_LOG_LEVEL": "DEBUG"}) == settings


def test_round_trip_of_minimal_settings_leaves_out_unset_fields() -> None:
    settings = DequeuerSettings(
        mode=DequeuerMode.ASYNC,
        queue_url="sqlite:////tmp/q.db",
        queue_name="async-api-1",
        storage_url="/tmp/s",
        api_name="api",
        api_kind=Kind.ASYNC_API,
    )
    env = settings.to_env()
    assert "CORTEX_PORT" not in env and "CORTEX_DEQUEUER_PROBE" not in env
    back = DequeuerSettings.from_env(env)
    assert back == settings
    assert back.completion_queue_name == "async-api-1-complete"
    assert not back.has_dead_letter_queue


def test_missing_and_bad_variables_raise_settings_errors() -> None:
    with pytest.raises(DequeuerSettingsError, match="CORTEX_DEQUEUER_QUEUE_NAME"):
        DequeuerSettings.from_env({"CORTEX_DEQUEUER_MODE": "async"})
    env = _full().to_env()
    with pytest.raises(DequeuerSettingsError):
        DequeuerSettings.from_env({**env, "CORTEX_DEQUEUER_WORKERS": "many"})
    with pytest.raises(DequeuerSettingsError):
        DequeuerSettings.from_env({**env, "CORTEX_DEQUEUER_MODE": "stream"})


def test_sidecar_container() -> None:
    container = dequeuer_container(_full())
    assert container.name == "dequeuer"
    assert container.image == "cortex/dequeuer"
    assert container.command == [sys.executable, "-m", "cortex.dataplane.dequeuer"]
    assert container.compute.cpu == Quantity.parse("100m")
    assert container.compute.mem == Quantity.parse("100Mi")
    # CORTEX_PORT comes from the backend (the replica's port); the container must not override it
    assert "CORTEX_PORT" not in container.env
    assert container.env["CORTEX_DEQUEUER_JOB_ID"] == "job1"
    back = DequeuerSettings.from_env({**container.env, "CORTEX_PORT": "41234"})
    assert back.probe == _full().probe


def test_job_worker_metrics_key() -> None:
    key = paths.job_worker_metrics_key("api", "job1", "w1")
    assert key == "jobs/BatchAPI/api/job1/worker_metrics/w1.json"
    assert key.startswith(paths.job_prefix(Kind.BATCH_API, "api", "job1") + "/")
    with pytest.raises(InvalidKeyError):
        paths.job_worker_metrics_key("api", "job1", "../x")
