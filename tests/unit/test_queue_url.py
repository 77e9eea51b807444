"""open_broker's URL forms and the queue package's argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex.errors import CortexError
from cortex.queue import QueueBroker, QueueConfigError, open_broker, sqlite_path_from_url
from cortex.queue.base import check_attributes, check_name
from cortex.queue.errors import QueueBusyError, QueueNotFoundError, ReceiptError
from cortex.queue.redis_broker import RedisBroker
from cortex.queue.sqlite_broker import SqliteBroker


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///abs/q.db", "/abs/q.db"),
        ("sqlite:////abs/q.db", "/abs/q.db"),  # SQLAlchemy's absolute form
        ("sqlite:///:memory:", ":memory:"),
        ("/plain/q.db", "/plain/q.db"),
        (":memory:", ":memory:"),
    ],
)
def test_sqlite_path_from_url(url: str, path: str) -> None:
    assert sqlite_path_from_url(url) == path


@pytest.mark.parametrize("url", ["", "sqlite://", "sqlite:///", "postgres://h/db", "s3://b/k"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(QueueConfigError):
        sqlite_path_from_url(url)


async def test_open_broker_picks_the_implementation(tmp_path: Path) -> None:
    sqlite = open_broker(f"sqlite:///{tmp_path}/sub/q.db")
    assert isinstance(sqlite, SqliteBroker)
    assert (tmp_path / "sub" / "q.db").exists()
    redis = open_broker("redis://127.0.0.1:1/0", prefix="x:")  # connects lazily
    assert isinstance(redis, RedisBroker)
    for broker in (sqlite, redis):
        assert isinstance(broker, QueueBroker)
        await broker.close()


@pytest.mark.parametrize("name", ["cx_ab12cd34_my-api_1234567890.fifo", "a", "x" * 200])
def test_legal_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 201, "a b", "a:b", "a{b}", "a/b"])
def test_illegal_names(name: str) -> None:
    with pytest.raises(QueueConfigError, match="invalid queue name"):
        check_name(name)


def test_attribute_rules() -> None:
    attrs = check_attributes(
        "q", visibility_timeout_s=5, max_receive_count=3, dead_letter_queue="dlq"
    )
    assert (attrs.visibility_timeout_s, attrs.max_receive_count, attrs.dead_letter_queue) == (
        5,
        3,
        "dlq",
    )
    with pytest.raises(QueueConfigError, match="go together"):
        check_attributes("q", visibility_timeout_s=5, max_receive_count=None, dead_letter_queue="d")
    with pytest.raises(QueueConfigError, match=">= 0"):
        check_attributes(
            "q", visibility_timeout_s=-1, max_receive_count=None, dead_letter_queue=None
        )


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (QueueNotFoundError, "queue.not_found", 404),
        (QueueConfigError, "queue.invalid", 400),
        (ReceiptError, "queue.receipt_invalid", 409),
        (QueueBusyError, "queue.busy", 503),
    ],
)
def test_errors_are_cortex_errors(cls: type[CortexError], code: str, status: int) -> None:
    err = cls("boom")
    assert isinstance(err, CortexError)
    assert (err.code, err.status_code) == (code, status)
    assert err.to_wire()["error"]["code"] == code
