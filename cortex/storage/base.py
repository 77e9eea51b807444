"""The object store interface and its errors.

An :class:`ObjectStore` holds objects (bytes) under string keys relative to its root URL, the way
an S3 bucket prefix does. Every key is built by :mod:`cortex.storage.paths`; nobody else spells
one. The store's root URL carries the deployment's root prefix (``<state_dir>/storage`` locally,
``s3://bucket/<cluster>`` on a cluster), so keys never repeat it.

Key rules (checked by :func:`check_key`): ``/``-separated segments, no leading or trailing ``/``,
no empty, ``.`` or ``..`` segment, no backslash or NUL, and no segment that starts with
:data:`TMP_PREFIX` (the local store's in-progress writes). A key is either an object or a prefix
of other keys, never both (a local directory cannot be both a file and a folder).

The interface is synchronous: local disk and S3 calls are short and most callers are plain
threads; a caller on an event loop wraps calls that may block in :func:`asyncio.to_thread`.

Errors::

    ObjectNotFoundError (NotFoundError, 404)    get/get_json/modified/open_read of a missing object
    InvalidKeyError (InvalidRequestError, 400)   a key or path segment that breaks the rules above
    StorageError (CortexError, 500)              any other failure of the backing file system
"""

from __future__ import annotations

import builtins
from typing import Any, BinaryIO, Protocol, runtime_checkable

from cortex.errors import CortexError, InvalidRequestError, NotFoundError

# Name prefix of the local store's temporary files; listings skip them.
TMP_PREFIX = ".cortex-tmp-"


class ObjectNotFoundError(NotFoundError):
    """The object does not exist (``details`` holds the key or URL)."""


class InvalidKeyError(InvalidRequestError):
    """A storage key, prefix or path segment breaks the key rules."""


class StorageError(CortexError):
    """The backing file system failed (permissions, network, a missing driver)."""

    code = "storage.error"
    status_code = 500


@runtime_checkable
class ObjectStore(Protocol):
    """Objects under keys relative to :attr:`url`.

    Contracts shared by every implementation (tested in ``tests/unit/test_storage_store.py``):

    * ``put`` replaces the whole object at once: a reader sees the old bytes or the new ones,
      never a mix or a prefix of them.
    * ``list`` and ``delete_prefix`` take a *folder* prefix: ``"a/b"`` and ``"a/b/"`` both mean
      the keys under ``a/b/`` (not ``a/bc``); ``""`` means every key.
    * ``list`` and ``list_dirs`` answer in ascending lexicographic order, so monotonic ids
      (SPEC 0.5) come newest first.
    """

    @property
    def url(self) -> str:
        """The root URL the store was opened with (``file:///...``, ``s3://...``, ``memory://...``)."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``, atomically replacing any previous object."""
        ...

    def put_json(self, key: str, obj: Any) -> None:
        """``put`` of ``obj`` as compact UTF-8 JSON."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object; :class:`ObjectNotFoundError` when missing."""
        ...

    def get_json(self, key: str) -> Any:
        """``get`` parsed as JSON."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object (not merely a prefix) exists at ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the folder ``prefix``; returns how many were removed."""
        ...

    def list(self, prefix: str = "", *, recursive: bool = True) -> builtins.list[str]:
        """Keys of the objects under ``prefix`` (only its direct children if not ``recursive``)."""
        ...

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """Names (last segment only) of the sub-folders directly under ``prefix``."""
        ...

    def modified(self, key: str) -> float:
        """Last modification time of the object, unix seconds."""
        ...

    def open_read(self, url_or_key: str) -> BinaryIO:
        """A streaming binary reader (use it as a context manager).

        A store key opens the object; an absolute local path or a URL with a scheme
        (``file://``, ``s3://``, ``memory://``) opens that file wherever it is, which is how the
        enqueuer reads users' data files of any size without loading them whole.
        """
        ...


def check_key(key: str) -> str:
    """``key`` unchanged if it follows the key rules, else :class:`InvalidKeyError`."""
    if not key:
        raise InvalidKeyError("a storage key cannot be empty")
    if _plainly_valid(key):
        return key
    for segment in key.split("/"):
        check_segment(segment, key=key)
    return key


def check_prefix(prefix: str) -> str:
    """A folder prefix without its trailing ``/`` (``""`` for the root)."""
    stripped = prefix[:-1] if prefix.endswith("/") else prefix
    return check_key(stripped) if stripped else ""


def check_segment(segment: str, *, key: str | None = None) -> str:
    """One path segment (an API name, a request or job id): non-empty and free of ``/``."""
    where = f" in storage key {key!r}" if key is not None and key != segment else ""
    if segment in ("", ".", ".."):
        raise InvalidKeyError(f"invalid path segment {segment!r}{where}")
    if "/" in segment or "\\" in segment or "\x00" in segment:
        raise InvalidKeyError(f"{segment!r} cannot contain '/', '\\' or NUL{where}")
    if segment.startswith(TMP_PREFIX):
        raise InvalidKeyError(f"{segment!r} cannot start with {TMP_PREFIX!r}{where}")
    return segment


def _plainly_valid(key: str) -> bool:
    """The common case, cheaply: no empty segment and no segment that starts with a dot."""
    return not (key[0] in "/." or key[-1] == "/" or "//" in key or "/." in key) and not (
        "\\" in key or "\x00" in key
    )
