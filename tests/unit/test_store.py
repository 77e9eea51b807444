from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from cortex.operator.store import ApiRecord, StateStore


def _record(name: str = "iris", api_id: str = "a1-dep-spec1", **changes: object) -> ApiRecord:
    rec = ApiRecord(
        name=name,
        kind="RealtimeAPI",
        api_id=api_id,
        spec_id="spec1",
        pod_id="pod1",
        deployment_id="dep",
        initial_deployment_time_ns=1_700_000_000_000_000_000,
        last_updated=1_700_000_000.5,
        submitted={"name": name, "kind": "RealtimeAPI", "pod": {"containers": []}},
        file_name="cortex.yaml",
        project_dir="/tmp/project",
        requested=2,
        index=1,
    )
    return replace(rec, **changes)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path):
    s = StateStore(tmp_path / "state" / "state.db")
    yield s
    s.close()


def test_put_get_list_roundtrip(store: StateStore) -> None:
    assert store.get_api("iris") is None
    assert store.list_apis() == []
    rec = _record()
    store.put_api(rec)
    assert store.get_api("iris") == rec
    store.put_api(_record("alpha"))
    assert [r.name for r in store.list_apis()] == ["alpha", "iris"]


def test_put_replaces_and_appends_history_once_per_api_id(store: StateStore) -> None:
    store.put_api(_record(api_id="v1", last_updated=1.0))
    store.put_api(_record(api_id="v1", last_updated=1.0, requested=5))  # same version
    store.put_api(_record(api_id="v2", last_updated=2.0, spec_id="spec2"))
    current = store.get_api("iris")
    assert current is not None
    assert (current.api_id, current.spec_id) == ("v2", "spec2")
    assert store.api_versions("iris") == [("v2", 2.0), ("v1", 1.0)]
    assert store.api_versions("iris", limit=1) == [("v2", 2.0)]
    assert store.api_versions("other") == []


def test_get_version_returns_that_versions_record(store: StateStore) -> None:
    first = _record(api_id="v1", spec_id="s1")
    store.put_api(first)
    store.put_api(_record(api_id="v2", spec_id="s2"))
    data = store.get_version("iris", "v1")
    assert data is not None
    assert data["spec_id"] == "s1"
    assert store.get_version_record("iris", "v1") == first
    assert store.get_version("iris", "nope") is None


def test_set_requested_changes_only_the_count(store: StateStore) -> None:
    store.put_api(_record())
    store.set_requested("iris", 7)
    rec = store.get_api("iris")
    assert rec is not None
    assert rec.requested == 7
    assert store.api_versions("iris") == [("a1-dep-spec1", 1_700_000_000.5)]
    store.set_requested("missing", 3)  # no-op
    assert store.get_api("missing") is None


def test_delete_drops_history_unless_kept(store: StateStore) -> None:
    store.put_api(_record("a"))
    store.put_api(_record("b"))
    assert store.delete_api("a") is True
    assert store.get_api("a") is None
    assert store.api_versions("a") == []
    assert store.delete_api("b", keep_versions=True) is True
    assert store.api_versions("b") == [("a1-dep-spec1", 1_700_000_000.5)]
    assert store.delete_api("b") is False


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = StateStore(path)
    rec = _record()
    first.put_api(rec)
    first.set_requested("iris", 4)
    first.close()
    second = StateStore(path)
    try:
        assert second.get_api("iris") == replace(rec, requested=4)
        assert second.api_versions("iris") == [(rec.api_id, rec.last_updated)]
    finally:
        second.close()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
