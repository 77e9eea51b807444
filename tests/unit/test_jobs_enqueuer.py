"""The enqueuer's batching (SPEC 6): order, chunk sizes, spanning files, size limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortex.operator.jobs.enqueuer import (
    COMPLETION_BODY,
    EnqueueError,
    _next_group,
    batch_bodies,
    enqueue,
)
from cortex.operator.jobs.submit import BatchSubmission, FileSource, ItemList
from cortex.queue import open_broker
from cortex.storage.listing import DelimitedDataError


def bodies(submission: BatchSubmission) -> list[object]:
    return [json.loads(b) for b in batch_bodies(submission)]


def test_item_list_chunks_in_order() -> None:
    # 7 items by 3: [0,1,2] [3,4,5] [6]
    job = BatchSubmission(workers=1, source=ItemList(list(range(7)), 3))
    assert bodies(job) == [[0, 1, 2], [3, 4, 5], [6]]


def test_delimited_values_span_files_with_includes_and_excludes(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"i": 0}\n{"i": 1}\n{"i": 2}\n')
    (tmp_path / "b.jsonl").write_text('{"i": 3}\n\n{"i": 4}')
    (tmp_path / "c.skip.jsonl").write_text('{"i": 99}\n')
    (tmp_path / "d.txt").write_text('{"i": 98}\n')
    source = FileSource("delimited_files", [f"{tmp_path}/"], 2, ["**.jsonl"], ["**.skip.*"])
    got = bodies(BatchSubmission(workers=1, source=source))
    assert got == [[{"i": 0}, {"i": 1}], [{"i": 2}, {"i": 3}], [{"i": 4}]]


def test_file_path_lister_batches_urls(tmp_path: Path) -> None:
    for name in ("1.jpg", "2.jpg", "3.jpg", "x.png"):
        (tmp_path / name).write_bytes(b"\0")
    source = FileSource("file_path_lister", [f"{tmp_path}/"], 2, ["**.jpg"])
    got = bodies(BatchSubmission(workers=1, source=source))
    assert got == [[f"{tmp_path}/1.jpg", f"{tmp_path}/2.jpg"], [f"{tmp_path}/3.jpg"]]


def test_oversized_delimited_item_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('1\n"' + "x" * 256_000 + '"\n')
    source = FileSource("delimited_files", [f"{tmp_path}/"], 1)
    with pytest.raises(EnqueueError, match=r"^item 1 \(.*a.jsonl, line 2\): cannot enqueue"):
        bodies(BatchSubmission(workers=1, source=source))


def test_bad_json_is_a_delimited_error(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("1\n{oops}\n")
    source = FileSource("delimited_files", [f"{tmp_path}/"], 1)
    with pytest.raises(DelimitedDataError, match="line 2"):
        bodies(BatchSubmission(workers=1, source=source))


def test_groups_hold_at_most_ten_messages_and_256000_bytes() -> None:
    small = iter([b"x"] * 25)
    pending: list[bytes] = []
    sizes = []
    done = False
    while not done:
        group, done = _next_group(small, pending)
        sizes.append(len(group))
    assert sizes == [10, 10, 5]
    big = iter([b"x" * 100_000] * 5)
    group, done = _next_group(big, pending)
    assert len(group) == 2 and not done  # a third would pass 256000 bytes


async def test_enqueue_sends_batches_then_the_completion_message(tmp_path: Path) -> None:
    broker = open_broker(f"sqlite:///{tmp_path}/q.db")
    await broker.create_queue("jobs")
    await broker.create_queue("jobs-complete")
    seen: list[int] = []
    job = BatchSubmission(workers=1, source=ItemList(list(range(105)), 1))
    total = await enqueue(
        broker, job, queue_name="jobs", completion_queue="jobs-complete", progress=seen.append
    )
    assert total == 105 and seen[-1] == 105 and len(seen) == 11
    assert (await broker.counts("jobs")).visible == 105
    (done,) = await broker.receive("jobs-complete")
    assert done.body == COMPLETION_BODY
    first = await broker.receive("jobs", max_messages=3)
    assert [json.loads(m.body) for m in first] == [[0], [1], [2]]
    await broker.close()
