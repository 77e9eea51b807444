"""The queue contract: SQS-like semantics behind one small async interface.

A :class:`QueueBroker` is one connection holding many named queues. Implementations:
:class:`cortex.queue.sqlite.SqliteBroker` (embedded default, one file shared by processes) and
:class:`cortex.queue.redis.RedisBroker` (for clusters). Both pass one contract test suite
(``tests/integration/test_queue_contract.py``). Open one with :func:`cortex.queue.open_broker`.

Semantics (SPEC 5.3, 7.3, with SQS as the model):

* **Queues** are created idempotently by ``create_queue``; calling it again updates the
  attributes and keeps the messages. Names: 1-200 characters of ``A-Z a-z 0-9 _ - .`` (SPEC 0.8's
  ``cx_<hash>_<api>_<time>.fifo`` fits). Every other call on a missing queue raises
  :class:`~cortex.queue.errors.QueueNotFoundError`, except ``delete_queue`` (returns False) and
  ``queue_exists``.
* **Send** appends; ``send_batch`` appends all bodies in one transaction, in order. Each message
  gets a unique ``message_id`` (32 hex chars).
* **Receive** claims up to ``max_messages`` visible messages, oldest send first (FIFO among the
  visible ones: a message whose lease expired goes back to its original place, i.e. the front).
  Each claim increments ``receive_count``, hides the message for the visibility timeout (the
  call's, else the queue's) and issues a fresh ``receipt``: the lease. With ``wait_s > 0`` the
  call long-polls until a message is available or ``wait_s`` passes (then ``[]``).
* **Dead-lettering**: when a queue has ``max_receive_count`` (which requires
  ``dead_letter_queue``), a message whose receive would make ``receive_count`` exceed it is moved
  to the end of the dead-letter queue instead of being delivered (keeping its id, body, sent_at
  and its ``receive_count`` = the number of deliveries it had). The dead-letter queue is created
  with default attributes if it does not exist.
* **Leases**: ``extend`` re-hides the message for ``visibility_timeout_s`` from now; ``ack``
  deletes it; ``release`` makes it visible at once (its receive already counted, so a released
  message still moves towards dead-lettering: that is how a worker reports a failed attempt). A
  receipt stays valid until the message is received again, acked or dead-lettered, even after
  its visibility expired (as in SQS). With a stale receipt ``ack`` and ``release`` return False
  and ``extend`` raises :class:`~cortex.queue.errors.ReceiptError`.
* **Counts** are exact: ``visible`` = ready to receive now (including expired leases);
  ``in_flight`` = received, not acked, lease not expired.
* ``list_messages`` peeks without claiming (FIFO order, in-flight ones included, ``receipt`` is
  ""): for inspecting dead letters.

Delivery is at least once: a consumer that dies mid-message has it delivered again after the
visibility timeout. Two consumers never hold the same message inside one lease.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cortex.queue.errors import QueueConfigError

DEFAULT_VISIBILITY_TIMEOUT_S = 60.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Received:
    """One delivered (or peeked) message. ``sent_at`` is unix seconds."""

    message_id: str
    body: bytes
    receipt: str
    receive_count: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """``visible``: receivable now; ``in_flight``: received, not acked, lease not expired."""

    visible: int
    in_flight: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight


@dataclass(frozen=True, slots=True)
class QueueAttributes:
    """What ``create_queue`` stores for a queue."""

    visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None


@runtime_checkable
class QueueBroker(Protocol):
    """One connection holding many named queues; see the module docstring for semantics."""

    async def create_queue(
        self,
        name: str,
        *,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
    ) -> None: ...

    async def delete_queue(self, name: str) -> bool: ...

    async def queue_exists(self, name: str) -> bool: ...

    async def list_queues(self) -> list[str]: ...

    async def purge(self, name: str) -> None: ...

    async def send(self, name: str, body: bytes) -> str: ...

    async def send_batch(self, name: str, bodies: Sequence[bytes]) -> list[str]: ...

    async def receive(
        self,
        name: str,
        *,
        max_messages: int = 1,
        visibility_timeout_s: float | None = None,
        wait_s: float = 0.0,
    ) -> list[Received]: ...

    async def extend(self, name: str, receipt: str, *, visibility_timeout_s: float) -> None: ...

    async def ack(self, name: str, receipt: str) -> bool: ...

    async def release(self, name: str, receipt: str) -> bool: ...

    async def counts(self, name: str) -> QueueCounts: ...

    async def list_messages(self, name: str, *, limit: int = 100) -> list[Received]: ...

    async def close(self) -> None: ...


def check_name(name: str) -> str:
    """Return ``name`` if it is a legal queue name, else raise QueueConfigError."""
    if not _NAME_RE.match(name):
        raise QueueConfigError(
            f"invalid queue name {name!r}: use 1-200 characters of letters, digits, '_', '-', '.'"
        )
    return name


def check_attributes(
    name: str,
    *,
    visibility_timeout_s: float,
    max_receive_count: int | None,
    dead_letter_queue: str | None,
) -> QueueAttributes:
    """Validate ``create_queue``'s arguments and bundle them."""
    check_name(name)
    if visibility_timeout_s < 0:
        raise QueueConfigError(f"visibility_timeout_s must be >= 0, got {visibility_timeout_s}")
    if (max_receive_count is None) != (dead_letter_queue is None):
        raise QueueConfigError(
            "max_receive_count and dead_letter_queue go together: give both or neither"
        )
    if max_receive_count is not None and max_receive_count < 1:
        raise QueueConfigError(f"max_receive_count must be >= 1, got {max_receive_count}")
    if dead_letter_queue is not None:
        check_name(dead_letter_queue)
        if dead_letter_queue == name:
            raise QueueConfigError(f"queue {name!r} cannot be its own dead-letter queue")
    return QueueAttributes(visibility_timeout_s, max_receive_count, dead_letter_queue)


def check_receive(max_messages: int, visibility_timeout_s: float | None, wait_s: float) -> None:
    """Validate ``receive``'s arguments."""
    if max_messages < 1:
        raise QueueConfigError(f"max_messages must be >= 1, got {max_messages}")
    if visibility_timeout_s is not None and visibility_timeout_s < 0:
        raise QueueConfigError(f"visibility_timeout_s must be >= 0, got {visibility_timeout_s}")
    if wait_s < 0:
        raise QueueConfigError(f"wait_s must be >= 0, got {wait_s}")


def check_visibility(visibility_timeout_s: float) -> None:
    if visibility_timeout_s < 0:
        raise QueueConfigError(f"visibility_timeout_s must be >= 0, got {visibility_timeout_s}")
