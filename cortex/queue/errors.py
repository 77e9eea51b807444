"""Errors of the queue package, all :class:`cortex.errors.CortexError` subclasses.

QueueError                 queue.error (500): a backend failure we could not classify
├── QueueNotFoundError     queue.not_found (404): the named queue does not exist
├── QueueConfigError       queue.invalid (400): a bad queue name, URL or attribute
├── ReceiptError           queue.receipt_invalid (409): ``extend`` with a receipt whose lease
│                          has moved on (the message was received again, acked or dead-lettered)
└── QueueBusyError         queue.busy (503): SQLite stayed locked by other processes past the
                           broker's retry budget
"""

from __future__ import annotations

from cortex.errors import CortexError


class QueueError(CortexError):
    code = "queue.error"
    status_code = 500


class QueueNotFoundError(QueueError):
    code = "queue.not_found"
    status_code = 404


class QueueConfigError(QueueError):
    code = "queue.invalid"
    status_code = 400


class ReceiptError(QueueError):
    code = "queue.receipt_invalid"
    status_code = 409


class QueueBusyError(QueueError):
    code = "queue.busy"
    status_code = 503
