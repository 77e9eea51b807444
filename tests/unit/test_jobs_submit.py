"""Submission checks (SPEC 7.2 / 8.2): each bad body gets the message that names its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cortex.operator.jobs.models import DeadLetterPolicy
from cortex.operator.jobs.submit import (
    FileSource,
    ItemList,
    JobSubmissionError,
    check_files_exist,
    parse_batch,
    parse_body,
    parse_task,
)

ITEMS = {"items": [1, 2], "batch_size": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"workers": 1}, "specify exactly one of the following keys: item_list"),
        (
            {"workers": 1, "item_list": ITEMS, "delimited_files": {}},
            "but not more than one at the same time",
        ),
        ({"item_list": ITEMS}, "workers: must be provided"),
        ({"workers": 0, "item_list": ITEMS}, "workers: must be greater than or equal to 1 (got 0)"),
        ({"workers": True, "item_list": ITEMS}, "workers: must be an integer (got true)"),
        ({"workers": 1, "timeout": 0, "item_list": ITEMS}, "timeout: must be greater than"),
        (
            {"workers": 1, "item_list": {"items": [], "batch_size": 1}},
            "item_list: items: must contain at least 1 elements",
        ),
        (
            {"workers": 1, "item_list": {"items": [1], "batch_size": 0}},
            "item_list: batch_size: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"workers": 1, "item_list": {"items": [1, "x" * 256_000], "batch_size": 1}},
            "item_list: items: item 1 has size 256002 bytes which exceeds the limit (256000 bytes)",
        ),
        (
            {"workers": 1, "item_list": ITEMS, "sqs_dead_letter_queue": {"max_receive_count": 1}},
            "sqs_dead_letter_queue: arn: cannot be empty",
        ),
        (
            {"workers": 1, "item_list": ITEMS, "dead_letter_queue": {"max_receive_count": 0}},
            "dead_letter_queue: max_receive_count: must be greater than or equal to 1",
        ),
        (
            {"workers": 1, "file_path_lister": {"s3_paths": [], "batch_size": 1}},
            "file_path_lister: s3_paths: must contain at least 1 elements",
        ),
        (
            {"workers": 1, "file_path_lister": {"s3_paths": ["relative/x"], "batch_size": 1}},
            "file_path_lister: relative/x is not a valid",
        ),
        (
            {
                "workers": 1,
                "delimited_files": {"s3_paths": ["/x"], "includes": ["[a"], "batch_size": 1},
            },
            "delimited_files: ",
        ),
        ({"workers": 1, "item_list": ITEMS, "color": 1}, "color: key is not supported"),
        ({"workers": 1, "item_list": ITEMS, "config": [1]}, "config: must be an object"),
    ],
)
def test_bad_batch_bodies(body: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSubmissionError) as err:
        parse_batch(body)
    assert message in err.value.message


def test_good_batch_bodies() -> None:
    job = parse_batch(
        {
            "workers": 3,
            "timeout": 60,
            "config": {"a": 1},
            "item_list": ITEMS,
            "sqs_dead_letter_queue": {"arn": "arn:x", "max_receive_count": 2},
        }
    )
    assert job.workers == 3 and job.timeout_s == 60 and job.config == {"a": 1}
    assert job.source == ItemList([1, 2], 1)
    assert job.dead_letter == DeadLetterPolicy(2, arn="arn:x")
    files = parse_batch(
        {
            "workers": 1,
            "delimited_files": {
                "s3_paths": ["s3://b/p", "/abs"],
                "includes": ["**.json"],
                "excludes": ["**skip**"],
                "batch_size": 5,
            },
            "dead_letter_queue": {"max_receive_count": 3},
        }
    )
    assert files.source == FileSource(
        "delimited_files", ["s3://b/p", "/abs"], 5, ["**.json"], ["**skip**"]
    )
    assert files.dead_letter == DeadLetterPolicy(3)


def test_task_bodies() -> None:
    assert parse_task({}).workers == 1
    assert parse_task({"timeout": 5, "config": {"x": 1}, "workers": 1}).timeout_s == 5
    with pytest.raises(JobSubmissionError, match=r"workers: invalid value \(got 2, must be 1\)"):
        parse_task({"workers": 2})
    with pytest.raises(JobSubmissionError, match="item_list: key is not supported"):
        parse_task({"item_list": {}})


def test_parse_body() -> None:
    assert parse_body(b"") == {}
    assert parse_body(b'{"a": 1}') == {"a": 1}
    with pytest.raises(JobSubmissionError, match="not valid JSON"):
        parse_body(b"{nope")
    with pytest.raises(JobSubmissionError, match="must be a JSON object"):
        parse_body(b"[1]")


def test_files_must_match(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("1")
    check_files_exist(FileSource("delimited_files", [f"{tmp_path}/"], 1))
    with pytest.raises(JobSubmissionError, match="no s3 files match search criteria"):
        check_files_exist(FileSource("delimited_files", [f"{tmp_path}/"], 1, ["**.csv"]))
