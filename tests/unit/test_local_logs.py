"""Log records of the local backend: JSON lines with labels, app JSON merged in."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cortex.backends.local.logs import LogSink, log_record, stream_log_folder

NOW = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
LABELS = {"apiName": "a", "apiKind": "RealtimeAPI", "replica": "a-1", "container": "c"}


def test_plain_line():
    rec = log_record("hello", stream="stdout", labels=LABELS, now=NOW)
    assert rec == {
        "time": "2026-01-02T03:04:05.000006Z",
        "stream": "stdout",
        "message": "hello",
        "labels": LABELS,
    }


def test_app_json_fields_merge_but_never_replace_ours():
    line = json.dumps({"message": "m", "level": "info", "labels": "x", "time": "t", "n": 1})
    rec = log_record(line, stream="stderr", labels=LABELS, now=NOW)
    assert rec["message"] == "m"
    assert rec["level"] == "info" and rec["n"] == 1
    assert rec["labels"] == LABELS and rec["time"].startswith("2026") and rec["stream"] == "stderr"


def test_app_json_without_message_keeps_the_line_and_non_objects_stay_text():
    rec = log_record('{"a": 1}', stream="stdout", labels=LABELS, now=NOW)
    assert rec["message"] == '{"a": 1}' and rec["a"] == 1
    assert "0" not in log_record("[0]", stream="stdout", labels=LABELS, now=NOW)
    assert log_record("{bad", stream="stdout", labels=LABELS, now=NOW)["message"] == "{bad"


async def test_folder_merges_files_by_time(tmp_path):
    a = LogSink(tmp_path / "r1.log", {"replica": "r1"})
    b = LogSink(tmp_path / "r2.log", {"replica": "r2"})
    a.write("c", "stdout", "first")
    b.write("c", "stdout", "second")
    a.write("c", "stdout", "third")
    a.close()
    b.close()
    lines = [json.loads(x)["message"] async for x in stream_log_folder(tmp_path, follow=False)]
    assert lines == ["first", "second", "third"]


async def test_missing_folder_is_empty(tmp_path):
    assert [x async for x in stream_log_folder(tmp_path / "none", follow=False)] == []
