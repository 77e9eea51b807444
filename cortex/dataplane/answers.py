"""Answers the gateway writes itself (not forwarded): status lines, error bodies, fixed texts.

Every error body has the project's one shape, ``{"error": {"code", "message", "details"}}``
(see ``cortex.errors``); the limiter's rejection keeps SPEC 2.3's plain-text body."""

from __future__ import annotations

import http
import json

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
QUEUE_FULL_BODY = b"pending request queue full\n"
RETRY_AFTER = b"Retry-After: 5\r\n"

STATUS_LINES = {int(st): b"HTTP/1.1 %d %b\r\n" % (st, st.phrase.encode()) for st in http.HTTPStatus}


def error_body(code: str, message: str) -> bytes:
    """The JSON error body (``details`` is always null here)."""
    return json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()


def not_found_body(url: bytes) -> bytes:
    """404 ``api.not_found`` for a request URL (query string left out of the message)."""
    path = url.split(b"?", 1)[0].decode("latin-1")
    return error_body("api.not_found", f"no API is deployed at {path}")
