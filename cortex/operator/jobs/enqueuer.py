"""The enqueuer (SPEC 6): a BatchAPI submission becomes messages on the job's queue.

Algorithm: the source yields batch bodies in order, each a compact JSON array:

* ``item_list``: consecutive chunks of ``batch_size`` items (the last may be smaller);
* ``file_path_lister``: chunks of ``batch_size`` matching file URLs (listing order);
* ``delimited_files``: chunks of ``batch_size`` JSON values read from the matching files one
  after another, so a batch may span files; a value over 256000 bytes, or bad JSON, fails.

Bodies are sent in groups of at most 10 messages and 256000 bytes (one ``send_batch`` each, as
SQS's ``SendMessageBatch``), so reading and sending overlap without holding the data set in
memory. After the last batch, one message goes to the job's completion queue: whichever worker
receives it once the job queue is drained calls ``/on-job-complete``. The total number of
batch messages is returned.

Reading files is blocking I/O: chunks of bodies are produced in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cortex.errors import CortexError
from cortex.operator.jobs.models import MAX_BATCH_BYTES
from cortex.operator.jobs.submit import BatchSubmission, FileSource, ItemList
from cortex.queue import QueueBroker
from cortex.storage.listing import iter_delimited, iter_files

SEND_GROUP = 10  # messages per send_batch (SQS's SendMessageBatch limit)
COMPLETION_BODY = b'{"message":"job_complete"}'
_LIMIT_HINT = "use a smaller batch size or reduce the size of each of item in the batch"


class EnqueueError(CortexError):
    """The job's data cannot be enqueued (the job ends ``failed while enqueuing``)."""

    code = "job.enqueue_failed"
    status_code = 400


def _encode(values: list[Any]) -> bytes:
    return json.dumps(values, separators=(",", ":")).encode()


def _too_big(size: int) -> str:
    return (
        f"cannot enqueue message because its size of {size} bytes exceeds the "
        f"{MAX_BATCH_BYTES} bytes limit; {_LIMIT_HINT}"
    )


def _chunks(values: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    """(index of the chunk's first value, chunk) for consecutive chunks of ``size``."""
    chunk: list[Any] = []
    start = 0
    for index, value in enumerate(values):
        if not chunk:
            start = index
        chunk.append(value)
        if len(chunk) == size:
            yield start, chunk
            chunk = []
    if chunk:
        yield start, chunk


def _checked(body: bytes, first: int, count: int) -> bytes:
    if len(body) > MAX_BATCH_BYTES:
        where = f"item {first}" if count == 1 else f"items with index between {first} to "
        where += "" if count == 1 else str(first + count - 1)
        raise EnqueueError(f"{where}: {_too_big(len(body))}")
    return body


def item_list_bodies(source: ItemList) -> Iterator[bytes]:
    for first, chunk in _chunks(source.items, source.batch_size):
        yield _checked(_encode(chunk), first, len(chunk))


def file_path_bodies(source: FileSource) -> Iterator[bytes]:
    files = iter_files(source.paths, includes=source.includes, excludes=source.excludes)
    for first, chunk in _chunks(files, source.batch_size):
        yield _checked(_encode(chunk), first, len(chunk))


def _delimited_values(source: FileSource) -> Iterator[Any]:
    files = iter_files(source.paths, includes=source.includes, excludes=source.excludes)
    for index, item in enumerate(iter_delimited(files)):
        size = len(_encode([item.value])) - 2
        if size > MAX_BATCH_BYTES:
            raise EnqueueError(f"item {index} ({item.url}, line {item.line}): {_too_big(size)}")
        yield item.value


def delimited_bodies(source: FileSource) -> Iterator[bytes]:
    for first, chunk in _chunks(_delimited_values(source), source.batch_size):
        yield _checked(_encode(chunk), first, len(chunk))


def batch_bodies(submission: BatchSubmission) -> Iterator[bytes]:
    """Every batch message body of the submission, in order (lazy; may raise EnqueueError,
    :class:`~cortex.storage.listing.DelimitedDataError` or a storage error while iterated)."""
    source = submission.source
    if isinstance(source, ItemList):
        return item_list_bodies(source)
    if source.kind == "delimited_files":
        return delimited_bodies(source)
    return file_path_bodies(source)


def _next_group(bodies: Iterator[bytes], pending: list[bytes]) -> tuple[list[bytes], bool]:
    """The next group to send (<= 10 bodies, <= 256000 bytes together) and whether the bodies
    are exhausted; ``pending`` carries a body that did not fit into the next call."""
    group, size = list(pending), sum(len(b) for b in pending)
    pending.clear()
    for body in bodies:
        if group and (len(group) == SEND_GROUP or size + len(body) > MAX_BATCH_BYTES):
            pending.append(body)
            return group, False
        group.append(body)
        size += len(body)
    return group, True


async def enqueue(
    broker: QueueBroker,
    submission: BatchSubmission,
    *,
    queue_name: str,
    completion_queue: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send every batch, then the completion message; returns the number of batches.

    ``progress`` is called with the running total after each group is sent. The queues must
    exist. Cancelling stops between two groups (what was sent stays sent).
    """
    bodies = batch_bodies(submission)
    pending: list[bytes] = []
    total, done = 0, False
    while not done:
        group, done = await asyncio.to_thread(_next_group, bodies, pending)
        if group:
            await broker.send_batch(queue_name, group)
            total += len(group)
            if progress is not None:
                progress(total)
    await broker.send(completion_queue, COMPLETION_BODY)
    return total
