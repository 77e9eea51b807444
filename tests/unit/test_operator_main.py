"""The operator process's wiring: one settings class, one broker and one object store."""

from __future__ import annotations

from pathlib import Path

import pytest
import uvicorn

from cortex.operator.__main__ import OperatorServer, build_server
from cortex.operator.settings import JobSettings, OperatorSettings, SettingsError
from cortex.operator.store import StateStore


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CORTEX_OPERATOR_TOKEN": "t", "CORTEX_STATE_DIR": str(tmp_path), **extra}


def test_job_timers_are_operator_settings_from_cortex_job_variables(tmp_path: Path) -> None:
    assert OperatorSettings.from_env(_env(tmp_path)).jobs == JobSettings()
    settings = OperatorSettings.from_env(
        _env(
            tmp_path,
            CORTEX_JOB_PERIOD_S="0.2",
            CORTEX_JOB_VISIBILITY_TIMEOUT_S="3",
            CORTEX_JOB_RECEIVE_WAIT_S="0.5",
            CORTEX_JOB_EMPTY_CHECKS="2",
            CORTEX_JOB_METRICS_PERIOD_S="0.25",
        )
    )
    assert settings.jobs == JobSettings(
        period_s=0.2,
        visibility_timeout_s=3.0,
        receive_wait_s=0.5,
        empty_checks=2,
        metrics_period_s=0.25,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORTEX_JOB_PERIOD_S", "0"),
        ("CORTEX_JOB_VISIBILITY_TIMEOUT_S", "soon"),
        ("CORTEX_JOB_EMPTY_CHECKS", "1.5"),
        ("CORTEX_JOB_EMPTY_CHECKS", "0"),
    ],
)
def test_bad_job_timers_name_their_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        OperatorSettings.from_env(_env(tmp_path, **{name: value}))


async def test_one_broker_and_store_serve_async_apis_and_jobs_and_close_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = OperatorSettings.from_env(_env(tmp_path, CORTEX_JOB_PERIOD_S="0.3"))
    store = StateStore(settings.state_db)
    try:
        server = build_server(settings, store)
        assert isinstance(server, OperatorServer)
        app = server.config.app
        async_apis, jobs = app.state.async_apis, app.state.jobs
        assert async_apis.broker is jobs.broker
        assert async_apis.objects is jobs.objects
        assert jobs.settings == settings.jobs
        await jobs.close()  # the lifespan closes the users first: the broker stays open
        await async_apis.close()
        await jobs.broker.create_queue("still-open")

        async def served(self: uvicorn.Server, sockets: object = None) -> None:
            assert await jobs.broker.queue_exists("still-open")

        monkeypatch.setattr(uvicorn.Server, "serve", served)
        await server.serve()
        with pytest.raises(Exception, match="closed"):
            await jobs.broker.queue_exists("still-open")
    finally:
        store.close()
