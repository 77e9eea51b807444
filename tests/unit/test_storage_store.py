"""ObjectStore contract, run on the local directory store and on fsspec's memory file system."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec  # type: ignore[import-untyped]
import pytest

from cortex.errors import InvalidRequestError, NotFoundError
from cortex.storage import fsspec_store
from cortex.storage.base import (
    TMP_PREFIX,
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
)
from cortex.storage.fsspec_store import FsspecStore, LocalStore, open_store


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield open_store(str(tmp_path / "store"))
        return
    s = open_store(f"memory://test-{uuid.uuid4().hex}")
    yield s
    s.delete_prefix("")


def test_both_implement_the_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_roundtrip_and_replace(store: ObjectStore) -> None:
    store.put("a/b/c", b"one")
    assert store.get("a/b/c") == b"one"
    store.put("a/b/c", b"two!")
    assert store.get("a/b/c") == b"two!"
    store.put("a/empty", b"")
    assert store.get("a/empty") == b""


def test_json_roundtrip_any_value(store: ObjectStore) -> None:
    store.put_json("x/obj.json", {"k": [1, 2.5, None, "é"]})
    assert store.get_json("x/obj.json") == {"k": [1, 2.5, None, "é"]}
    store.put_json("x/list.json", [1, 2])  # an AsyncAPI result may be any JSON value
    assert store.get_json("x/list.json") == [1, 2]
    assert store.get("x/list.json") == b"[1,2]"  # compact


def test_missing_object_errors(store: ObjectStore) -> None:
    store.put("dir/file", b"x")
    for call in (store.get, store.get_json, store.modified, store.open_read):
        with pytest.raises(ObjectNotFoundError) as info:
            call("dir/nope")
        assert isinstance(info.value, NotFoundError)
        assert info.value.status_code == 404
    with pytest.raises(ObjectNotFoundError):
        store.get("dir")  # a prefix is not an object


def test_exists_is_for_objects_not_prefixes(store: ObjectStore) -> None:
    store.put("p/q/r", b"1")
    assert store.exists("p/q/r")
    assert not store.exists("p/q")
    assert not store.exists("p/q/zz")


def test_delete_missing_is_ok(store: ObjectStore) -> None:
    store.delete("never/there")
    store.put("k", b"1")
    store.delete("k")
    store.delete("k")
    assert not store.exists("k")


def test_list_recursive_and_one_level_sorted(store: ObjectStore) -> None:
    for key in ("w/api/2/status.json", "w/api/1/payload", "w/api/1/status.json", "w/top", "wx/z"):
        store.put(key, b"")
    assert store.list("w") == [
        "w/api/1/payload",
        "w/api/1/status.json",
        "w/api/2/status.json",
        "w/top",
    ]
    assert store.list("w/") == store.list("w")  # a folder prefix, with or without "/"
    assert store.list("w", recursive=False) == ["w/top"]
    assert store.list("w/api/1", recursive=False) == ["w/api/1/payload", "w/api/1/status.json"]
    assert store.list("") == [*store.list("w"), "wx/z"]
    assert store.list("nothing/here") == []
    assert store.list("w/top") == []  # an object is not a folder


def test_list_dirs_gives_child_names(store: ObjectStore) -> None:
    # Monotonic ids sort newest first in an ascending listing (SPEC 0.5).
    for job_id in ("69a2", "69a1", "69b0"):
        store.put(f"jobs/BatchAPI/api/{job_id}/spec.json", b"{}")
    store.put("jobs/BatchAPI/api/loose-file", b"")
    assert store.list_dirs("jobs/BatchAPI/api") == ["69a1", "69a2", "69b0"]
    assert store.list_dirs("jobs") == ["BatchAPI"]
    assert store.list_dirs("missing") == []


def test_delete_prefix_counts_and_spares_siblings(store: ObjectStore) -> None:
    for key in ("w/a/1/x", "w/a/1/y", "w/a/2/x", "w/ab/1/x"):
        store.put(key, b"1")
    assert store.delete_prefix("w/a/1") == 2
    assert store.list("w") == ["w/a/2/x", "w/ab/1/x"]
    assert store.list_dirs("w/a") == ["2"]  # no empty folder left behind
    assert store.delete_prefix("w/a") == 1
    assert store.list_dirs("w") == ["ab"]
    assert store.delete_prefix("nothing") == 0
    assert store.delete_prefix("") == 1
    assert store.list("") == []


def test_delete_leaves_no_empty_folder(store: ObjectStore) -> None:
    store.put("a/b/c/d", b"1")
    store.put("a/keep", b"1")
    store.delete("a/b/c/d")
    assert store.list_dirs("a") == []
    assert store.list("") == ["a/keep"]
    store.put("a/b/c/d", b"2")  # folders come back on the next write
    assert store.get("a/b/c/d") == b"2"


def test_modified_is_recent_unix_seconds(store: ObjectStore) -> None:
    import time

    before = time.time()
    store.put("m", b"1")
    assert before - 5 <= store.modified("m") <= time.time() + 5


def test_open_read_streams_a_key(store: ObjectStore) -> None:
    store.put("big/data.jsonl", b"line1\nline2\n")
    with store.open_read("big/data.jsonl") as f:
        assert f.readline() == b"line1\n"
        assert f.read() == b"line2\n"


def test_open_read_takes_urls_and_absolute_paths(store: ObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "user-data.txt"
    outside.write_bytes(b"abc")
    with store.open_read(str(outside)) as f:
        assert f.read() == b"abc"
    with store.open_read(outside.as_uri()) as f:
        assert f.read() == b"abc"
    with pytest.raises(ObjectNotFoundError):
        store.open_read(str(tmp_path / "absent"))


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "trailing/", "a//b", "a/../b", "..", "./a", "a\\b", "a/\x00", f"x/{TMP_PREFIX}1"],
)
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        store.put(key, b"x")
    assert info.value.status_code == 400


def test_url_is_the_root(store: ObjectStore) -> None:
    assert store.url.startswith(("file:///", "memory://"))


# --- local directory specifics ------------------------------------------------------------


def test_local_store_files_live_under_the_root(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "root"))
    store.put("a/b.json", b"{}")
    assert (tmp_path / "root" / "a" / "b.json").read_bytes() == b"{}"
    assert store.url == (tmp_path / "root").as_uri()


def test_local_write_is_atomic_for_concurrent_readers(tmp_path: Path) -> None:
    # A writer alternates two 512 KiB objects; a reader must only ever see one of them whole.
    store = open_store(str(tmp_path))
    size = 512 * 1024
    versions = (b"A" * size, b"B" * size)
    store.put("obj", versions[0])
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            store.put("obj", versions[i % 2])
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = {store.get("obj") for _ in range(300)}
    finally:
        stop.set()
        thread.join()
    assert seen <= set(versions)


def test_local_temp_files_are_hidden_and_cleaned(tmp_path: Path, monkeypatch) -> None:
    store = open_store(str(tmp_path))
    store.put("d/ok", b"1")
    (tmp_path / "d" / f"{TMP_PREFIX}leftover").write_bytes(b"half")  # a writer that crashed
    assert store.list("d") == ["d/ok"]

    def failing_replace(src: str, dst: str) -> None:
        raise PermissionError("denied")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError):
        store.put("d/new", b"2")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "d")) == [f"{TMP_PREFIX}leftover", "ok"]
    assert store.delete_prefix("d") == 1  # stray temp files go with their folder
    assert not (tmp_path / "d").exists()


def test_local_put_recreates_a_pruned_folder(tmp_path: Path, monkeypatch) -> None:
    # A delete may prune the folder right after put created it: put creates it again.
    store = LocalStore(tmp_path)
    real_makedirs = os.makedirs
    calls = 0

    def racing_makedirs(name: str, exist_ok: bool = False) -> None:
        nonlocal calls
        calls += 1
        real_makedirs(name, exist_ok=exist_ok)
        if calls == 1:
            os.rmdir(name)  # the concurrent delete's prune

    monkeypatch.setattr(os, "makedirs", racing_makedirs)
    store.put("x/y", b"1")
    assert calls == 2 and store.get("x/y") == b"1"
    assert os.listdir(tmp_path / "x") == ["y"]


def test_local_temp_names_skip_stale_files(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    store.put("d/a", b"1")
    counter = iter(range(10))
    monkeypatch.setattr(fsspec_store, "_TMP_COUNTER", counter)
    (tmp_path / "d" / f"{TMP_PREFIX}{os.getpid()}-0").write_bytes(b"stale")
    store.put("d/a", b"2")
    assert store.get("d/a") == b"2"
    assert next(counter) == 2  # name 0 was taken, name 1 was used


def test_file_url_and_relative_paths_open_local_stores(tmp_path: Path, monkeypatch) -> None:
    s = open_store((tmp_path / "s").as_uri())
    assert isinstance(s, LocalStore)
    s.put("k", b"v")
    monkeypatch.chdir(tmp_path)
    assert open_store("s").get("k") == b"v"
    with pytest.raises(InvalidRequestError):
        open_store("file://relative/path")


# --- open_store for other schemes ---------------------------------------------------------


def test_memory_stores_with_one_name_share_objects() -> None:
    name = f"memory://shared-{uuid.uuid4().hex}"
    a, b = open_store(name), open_store(name + "/")
    a.put("k", b"v")
    assert b.get("k") == b"v"
    other = open_store(f"memory://other-{uuid.uuid4().hex}")
    assert not other.exists("k")
    a.delete_prefix("")


@pytest.mark.parametrize("url", ["memory://", "s3://", "nosuchscheme://x/y"])
def test_bad_store_urls(url: str) -> None:
    with pytest.raises(InvalidRequestError):
        open_store(url)


def test_s3_store_roots_at_bucket_prefix() -> None:
    pytest.importorskip("s3fs")
    store = open_store("s3://my-bucket/cortex/cluster-1/", anon=True)
    assert isinstance(store, FsspecStore)
    assert store.url == "s3://my-bucket/cortex/cluster-1"
    assert (
        store._path("workloads/a/1/payload") == "my-bucket/cortex/cluster-1/workloads/a/1/payload"
    )


def test_s3_listings_are_never_cached() -> None:
    # Another process's writes must show up in this process's next listing.
    pytest.importorskip("s3fs")
    store = open_store("s3://my-bucket/p", anon=True)
    assert isinstance(store, FsspecStore)
    assert store._fs.dircache.use_listings_cache is False


def test_missing_driver_is_a_storage_error(monkeypatch) -> None:
    def no_driver(url: str, **options: object) -> None:
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_driver)
    with pytest.raises(StorageError, match="pip install 'cortex\\[s3\\]'"):
        open_store("s3://bucket/prefix")
