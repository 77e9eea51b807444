"""Object storage over fsspec: payloads, results, statuses and job files; users' data files.

* :mod:`cortex.storage.base`: the :class:`ObjectStore` protocol, key rules and errors;
* :mod:`cortex.storage.fsspec_store`: :func:`open_store` (local directory, ``s3://``,
  ``memory://``) and the implementations;
* :mod:`cortex.storage.paths`: every key we write (the only place that spells one);
* :mod:`cortex.storage.globs` and :mod:`cortex.storage.listing`: BatchAPI sources, listed with
  SPEC 6's includes/excludes and read as JSON lines.
"""

from __future__ import annotations

from pathlib import Path

from cortex.storage.base import ObjectNotFoundError, ObjectStore, StorageError
from cortex.storage.fsspec_store import open_store

__all__ = [
    "ObjectNotFoundError",
    "ObjectStore",
    "StorageError",
    "default_storage_url",
    "open_store",
]


def default_storage_url(state_dir: str | Path) -> str:
    """The embedded default store of a deployment: the folder ``<state_dir>/storage``
    (operator and gateway settings fall back to it when ``CORTEX_STORAGE_URL`` is unset)."""
    return str(Path(state_dir).expanduser().resolve() / "storage")
