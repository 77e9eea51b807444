"""The job manager's shared state: its outside systems, its settings and what it remembers.

One :class:`JobRuntime` is built by :class:`~.manager.JobManager` and passed to the functions
of :mod:`.ending`, :mod:`.launching`, :mod:`.enqueue_tasks`, :mod:`.starting` and :mod:`.views`,
so each of them does one part of a job's life against the same state.

``lock`` is held by the step, stops and the end of an enqueue, so a job is never ended twice.
The in-memory maps are lost on restart; the job rows (SQLite) and queues (broker) are not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cortex.backends.base import Backend
from cortex.operator.jobs.job_store import JobStore
from cortex.operator.jobs.workers import Infra
from cortex.operator.settings import JobSettings
from cortex.operator.store import StateStore
from cortex.queue import QueueBroker
from cortex.storage import ObjectStore


@dataclass
class JobRuntime:
    """What every part of the job manager reads and updates.

    ``clock`` gives unix seconds (job start and end times, timeouts).
    """

    store: StateStore
    jobs: JobStore
    backend: Backend
    broker: QueueBroker
    objects: ObjectStore
    infra: Infra
    api_url: str
    settings: JobSettings
    clock: Callable[[], float] = time.time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    enqueuers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    enqueued: dict[str, int] = field(default_factory=dict)
    """Job id -> batches sent so far, while enqueuing."""
    launched: set[str] = field(default_factory=set)
    """Jobs whose workers this process created or saw."""
    worker_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Job id -> its workers per SPEC 7.5 key, as last seen."""
    last_ns: int = 0
    """The time of the last job id handed out, so ids are strictly increasing."""
