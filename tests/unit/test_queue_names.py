from __future__ import annotations

from pathlib import Path

import pytest

from cortex.queue import QueueConfigError, default_queue_url, sqlite_path_from_url
from cortex.queue.names import (
    async_queue_name,
    batch_completion_queue_name,
    batch_dead_letter_queue_name,
    batch_queue_name,
    is_async_queue,
)
from cortex.storage import default_storage_url


def test_async_queue_name_keeps_the_last_ten_digits_zero_padded() -> None:
    assert async_queue_name("iris", 1_764_558_000_123_456_789) == "async-iris-0123456789"
    assert async_queue_name("iris", 42) == "async-iris-0000000042"


def test_recreated_api_gets_another_queue() -> None:
    assert async_queue_name("iris", 1_000_000_001) != async_queue_name("iris", 1_000_000_002)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("async-iris-0123456789", True),
        ("async-my-api-0000000001", True),
        ("async--0123456789", False),
        ("async-iris-123", False),
        ("async-iris-01234567x9", False),
        ("batch-iris-69fd1c", False),
        ("iris-0123456789", False),
    ],
)
def test_is_async_queue(name: str, expected: bool) -> None:
    assert is_async_queue(name) is expected


def test_batch_names() -> None:
    assert batch_queue_name("img", "69fd1c2") == "batch-img-69fd1c2"
    assert batch_dead_letter_queue_name("img", "69fd1c2") == "batch-img-69fd1c2-dlq"
    assert batch_completion_queue_name("img", "69fd1c2") == "batch-img-69fd1c2-complete"


def test_names_are_checked() -> None:
    with pytest.raises(QueueConfigError):
        batch_queue_name("a/b", "1")


def test_default_urls(tmp_path: Path) -> None:
    url = default_queue_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve()}/queues.db"
    assert sqlite_path_from_url(url) == str(tmp_path.resolve() / "queues.db")
    assert default_storage_url(tmp_path) == str(tmp_path.resolve() / "storage")
