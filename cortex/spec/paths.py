"""URL paths users write: ``networking.endpoint`` and probe ``http_get.path``.

Both must match ``^[a-zA-Z0-9_\\-\\./]*$`` and contain no ``//``; both are canonicalised to a
leading ``/`` and no trailing ``/`` (``"x/y/"`` -> ``"/x/y"``). An endpoint of ``/`` alone is
refused (every API needs its own path); a probe path of ``/`` stays ``/``.
"""

from __future__ import annotations

import re

from cortex.spec.fields import FieldError, Path, user_str

MAX_ENDPOINT_LENGTH = 1000
_VALID = re.compile(r"^[a-zA-Z0-9_\-./]*$")


def canonical_path(value: str, path: Path) -> str:
    """Check and canonicalise a URL path; ``""`` and ``"/"`` give ``"/"``."""
    if not _VALID.match(value):
        raise FieldError(
            path,
            f"{user_str(value)} is not a valid path (it may contain only letters, numbers, "
            '"-", "_", "." and "/")',
        )
    if "//" in value:
        raise FieldError(path, f"{user_str(value)} cannot contain adjacent slashes")
    return "/" + value.strip("/")


def canonical_endpoint(value: str, path: Path) -> str:
    """``networking.endpoint``: at most 1000 characters, not empty, not ``/`` alone."""
    if value == "":
        raise FieldError(path, "cannot be empty")
    if len(value) > MAX_ENDPOINT_LENGTH:
        raise FieldError(
            path, f"{user_str(value)} must be no more than {MAX_ENDPOINT_LENGTH} characters"
        )
    endpoint = canonical_path(value, path)
    if endpoint == "/":
        raise FieldError(path, '"/" is not allowed (a path must be specified)')
    return endpoint
