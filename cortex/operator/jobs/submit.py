"""Checking a job submission body (SPEC 7.2 for BatchAPI, 8.2 for TaskAPI).

The body is JSON. A BatchAPI job needs ``workers`` and exactly one data source:

* ``item_list``: ``{"items": [...], "batch_size": n}``; each item at most 256000 bytes as JSON;
* ``file_path_lister`` / ``delimited_files``: ``{"s3_paths": [...], "includes": [...],
  "excludes": [...], "batch_size": n}`` over storage URLs (absolute paths, ``file://``,
  ``s3://``; see :mod:`cortex.storage.listing`);

and may give ``timeout`` (seconds, from submission), ``config`` (any object, passed to the
workers in the job spec) and a dead-letter policy: ``dead_letter_queue: {"max_receive_count":
n}``, or the original's ``sqs_dead_letter_queue: {"arn": ..., "max_receive_count": n}`` (the ARN
must be non-empty and is otherwise ignored). A TaskAPI job takes ``timeout``, ``config`` and
``workers`` (which must be 1).

Messages follow SPEC 7.2 (``workers: must be greater than or equal to 1 (got 0)``, ``specify
exactly one of the following keys: ...``), prefixed with the field path. Whether any file
matches a file source is checked separately (:func:`check_files_exist`), since it lists
storage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cortex.errors import InvalidRequestError
from cortex.operator.jobs.models import MAX_BATCH_BYTES, DeadLetterPolicy
from cortex.storage.globs import PathFilter
from cortex.storage.listing import check_source_url, iter_files

SOURCES = ("item_list", "file_path_lister", "delimited_files")
_BATCH_KEYS = frozenset(
    {"workers", "timeout", "config", "sqs_dead_letter_queue", "dead_letter_queue", *SOURCES}
)
_TASK_KEYS = frozenset({"workers", "timeout", "config"})


class JobSubmissionError(InvalidRequestError):
    """The submission body is not a valid job (400, ``request.invalid``)."""


@dataclass(frozen=True)
class ItemList:
    items: list[Any]
    batch_size: int


@dataclass(frozen=True)
class FileSource:
    """``file_path_lister`` (batches of file URLs) or ``delimited_files`` (batches of the JSON
    values inside the files)."""

    kind: str
    paths: list[str]
    batch_size: int
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchSubmission:
    workers: int
    source: ItemList | FileSource
    timeout_s: int | None = None
    config: dict[str, Any] | None = None
    dead_letter: DeadLetterPolicy | None = None


@dataclass(frozen=True)
class TaskSubmission:
    workers: int = 1
    timeout_s: int | None = None
    config: dict[str, Any] | None = None


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobSubmissionError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise JobSubmissionError("the request body must be a JSON object")
    return data


def parse_batch(data: dict[str, Any]) -> BatchSubmission:
    """A BatchAPI submission, or :class:`JobSubmissionError` naming the first problem."""
    _check_keys(data, _BATCH_KEYS, "")
    present = [key for key in SOURCES if data.get(key) is not None]
    if not present:
        raise JobSubmissionError(
            "specify exactly one of the following keys: item_list, file_path_lister, or "
            "delimited_files"
        )
    if len(present) > 1:
        raise JobSubmissionError(
            "please specify either the item_list, file_path_lister or delimited_files field "
            "(but not more than one at the same time)"
        )
    key = present[0]
    source = _item_list(data[key]) if key == "item_list" else _file_source(key, data[key])
    return BatchSubmission(
        workers=_int(data, "workers", required=True),
        source=source,
        timeout_s=_opt_int(data, "timeout"),
        config=_config(data),
        dead_letter=_dead_letter(data),
    )


def parse_task(data: dict[str, Any]) -> TaskSubmission:
    """A TaskAPI submission (``workers`` defaults to 1 and must be 1)."""
    _check_keys(data, _TASK_KEYS, "")
    workers = _opt_int(data, "workers")
    if workers is not None and workers != 1:
        raise JobSubmissionError(f"workers: invalid value (got {workers}, must be 1)")
    return TaskSubmission(timeout_s=_opt_int(data, "timeout"), config=_config(data))


def check_files_exist(source: FileSource) -> None:
    """At least one file matches the source (lists until the first match; blocking I/O)."""
    first = next(iter_files(source.paths, includes=source.includes, excludes=source.excludes), None)
    if first is None:
        raise JobSubmissionError(f"{source.kind}: no s3 files match search criteria")


# --- fields ----------------------------------------------------------------------------------


def _check_keys(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise JobSubmissionError(f"{where}{key}: key is not supported")


def _int(data: dict[str, Any], key: str, *, required: bool = False, where: str = "") -> int:
    value = data.get(key)
    if value is None:
        raise JobSubmissionError(f"{where}{key}: must be provided")
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobSubmissionError(f"{where}{key}: must be an integer (got {json.dumps(value)})")
    if value < 1:
        raise JobSubmissionError(f"{where}{key}: must be greater than or equal to 1 (got {value})")
    return value


def _opt_int(data: dict[str, Any], key: str, *, where: str = "") -> int | None:
    return None if data.get(key) is None else _int(data, key, where=where)


def _config(data: dict[str, Any]) -> dict[str, Any] | None:
    config = data.get("config")
    if config is not None and not isinstance(config, dict):
        raise JobSubmissionError("config: must be an object")
    return config


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JobSubmissionError(f"{where}: must be an object")
    return value


def _item_list(value: Any) -> ItemList:
    data = _object(value, "item_list")
    _check_keys(data, frozenset({"items", "batch_size"}), "item_list: ")
    items = data.get("items")
    if not isinstance(items, list):
        raise JobSubmissionError("item_list: items: must be a list")
    if not items:
        raise JobSubmissionError("item_list: items: must contain at least 1 elements")
    for index, item in enumerate(items):
        size = len(json.dumps(item, separators=(",", ":")).encode())
        if size > MAX_BATCH_BYTES:
            raise JobSubmissionError(
                f"item_list: items: item {index} has size {size} bytes which exceeds the limit "
                f"({MAX_BATCH_BYTES} bytes)"
            )
    return ItemList(items=items, batch_size=_int(data, "batch_size", where="item_list: "))


def _strings(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JobSubmissionError(f"{where}{key}: must be a list of strings")
    return list(value)


def _file_source(kind: str, value: Any) -> FileSource:
    where = f"{kind}: "
    data = _object(value, kind)
    _check_keys(data, frozenset({"s3_paths", "includes", "excludes", "batch_size"}), where)
    paths = _strings(data, "s3_paths", where)
    if not paths:
        raise JobSubmissionError(f"{where}s3_paths: must contain at least 1 elements")
    source = FileSource(
        kind=kind,
        paths=paths,
        batch_size=_int(data, "batch_size", where=where),
        includes=_strings(data, "includes", where),
        excludes=_strings(data, "excludes", where),
    )
    try:
        for path in paths:
            check_source_url(path)
        PathFilter(source.includes, source.excludes)
    except InvalidRequestError as exc:
        raise JobSubmissionError(f"{where}{exc.message}") from exc
    return source


def _dead_letter(data: dict[str, Any]) -> DeadLetterPolicy | None:
    sqs, neutral = data.get("sqs_dead_letter_queue"), data.get("dead_letter_queue")
    if sqs is not None and neutral is not None:
        raise JobSubmissionError(
            "specify either dead_letter_queue or sqs_dead_letter_queue, not both"
        )
    if neutral is not None:
        where = "dead_letter_queue: "
        body = _object(neutral, "dead_letter_queue")
        _check_keys(body, frozenset({"max_receive_count"}), where)
        return DeadLetterPolicy(_int(body, "max_receive_count", where=where))
    if sqs is not None:
        where = "sqs_dead_letter_queue: "
        body = _object(sqs, "sqs_dead_letter_queue")
        _check_keys(body, frozenset({"arn", "max_receive_count"}), where)
        arn = body.get("arn")
        if not isinstance(arn, str) or not arn:
            raise JobSubmissionError(f"{where}arn: cannot be empty")
        return DeadLetterPolicy(_int(body, "max_receive_count", where=where), arn=arn)
    return None
