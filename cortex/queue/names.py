"""Every queue name, built in one place (SPEC 0.8, adapted to our brokers).

* AsyncAPI: ``async-<api>-<last 10 digits of the initial deployment time in ns>``. The suffix
  changes when an API is deleted and deployed again, so a re-created API never inherits the
  old queue's messages (the original did it to dodge SQS's 60 s name-reuse wait).
* BatchAPI job: ``batch-<api>-<job_id>``, with its dead-letter queue ``<that>-dlq`` and its
  completion queue ``<that>-complete`` (one message, for the exactly-once ``/on-job-complete``).

API names are lowercase letters, digits and ``-`` and job ids are letters and digits, so every
name is a legal queue name (:func:`cortex.queue.base.check_name`) and the two kinds cannot
collide (``async-`` vs ``batch-``). No cluster prefix: one broker belongs to one cluster.
"""

from __future__ import annotations

from cortex.queue.base import check_name

ASYNC_PREFIX = "async-"
BATCH_PREFIX = "batch-"
DEAD_LETTER_SUFFIX = "-dlq"
COMPLETION_SUFFIX = "-complete"
_TIME_DIGITS = 10


def async_queue_name(api_name: str, initial_deployment_time_ns: int) -> str:
    """The AsyncAPI's queue: its name plus the last 10 digits (zero-padded) of the time it was
    first deployed (kept across updates, new on re-create)."""
    suffix = f"{initial_deployment_time_ns % 10**_TIME_DIGITS:0{_TIME_DIGITS}d}"
    return check_name(f"{ASYNC_PREFIX}{api_name}-{suffix}")


def is_async_queue(name: str) -> bool:
    """Whether ``name`` has the shape of an AsyncAPI queue (``async-<api>-<10 digits>``)."""
    head, sep, digits = name.rpartition("-")
    return (
        bool(sep)
        and head.startswith(ASYNC_PREFIX)
        and len(head) > len(ASYNC_PREFIX)
        and len(digits) == _TIME_DIGITS
        and digits.isdigit()
    )


def batch_queue_name(api_name: str, job_id: str) -> str:
    """A BatchAPI job's queue of batches."""
    return check_name(f"{BATCH_PREFIX}{api_name}-{job_id}")


def batch_dead_letter_queue_name(api_name: str, job_id: str) -> str:
    """Where a job's batches go after ``max_receive_count`` failed attempts."""
    return check_name(batch_queue_name(api_name, job_id) + DEAD_LETTER_SUFFIX)


def batch_completion_queue_name(api_name: str, job_id: str) -> str:
    """The job's one completion message: whoever receives it calls ``/on-job-complete``."""
    return check_name(batch_queue_name(api_name, job_id) + COMPLETION_SUFFIX)
