""":class:`ObjectStore` implementations over fsspec, and :func:`open_store`.

* :class:`FsspecStore` runs on any fsspec file system: ``s3://`` through s3fs (the ``s3``
  extra), ``memory://`` (fsspec's process-wide in-memory file system, for tests), and any other
  protocol fsspec knows. A single S3 PUT is atomic, so ``put`` needs no care there.
* :class:`LocalStore` is the default: a local directory. Writes go to a temporary file in the
  target's folder, then ``os.replace`` it over the target, so a reader (another process
  included) sees the old object or the new one, never a half-written one. Folders are created
  on write and removed when their last object goes, so listings look like S3's, where
  folders are only implied by keys. Writes are not fsynced: they survive the death of any
  process, not a power cut.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import fsspec  # type: ignore[import-untyped]

from cortex.errors import CortexError, InvalidRequestError
from cortex.storage.base import (
    TMP_PREFIX,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
    check_key,
    check_prefix,
)

_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
# How often ``LocalStore.put`` re-creates a folder that a concurrent delete just pruned.
_PUT_ATTEMPTS = 5
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_TMP_COUNTER = itertools.count()


@contextlib.contextmanager
def translated(what: str, *, missing: bool = True) -> Iterator[None]:
    """Map file-system exceptions to ours at the boundary.

    A missing file becomes :class:`ObjectNotFoundError` when ``missing`` (reads), any other
    ``OSError`` (and a missing fsspec driver) :class:`StorageError`.
    """
    try:
        yield
    except CortexError:
        raise
    except _MISSING as exc:
        if missing:
            raise ObjectNotFoundError(f"{what} not found", details=what) from exc
        raise StorageError(f"cannot write {what}: {exc}", details=what) from exc
    except (OSError, ImportError) as exc:
        raise StorageError(f"storage error on {what}: {exc}", details=what) from exc


def is_url(url_or_key: str) -> bool:
    """Whether ``open_read`` should treat the string as a URL or local path (not a store key)."""
    return "://" in url_or_key or url_or_key.startswith("/")


def open_url(url: str, **storage_options: Any) -> BinaryIO:
    """A streaming binary reader of a file given by URL or absolute local path."""
    options = with_defaults(url, storage_options)
    with translated(url):
        return cast(BinaryIO, fsspec.open(url, "rb", **options).open())


def with_defaults(url: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """``storage_options`` plus ours: s3fs's listings cache off.

    s3fs caches folder listings per file-system instance (and fsspec shares instances), so a
    process would not see objects that another process wrote after its last listing; every
    reader here must see the newest objects.
    """
    if url.startswith("s3://"):
        return {"use_listings_cache": False, **storage_options}
    return storage_options


class FsspecStore:
    """An :class:`ObjectStore` rooted at ``root`` (a path in ``fs``'s own notation)."""

    def __init__(
        self, fs: Any, root: str, *, url: str, storage_options: dict[str, Any] | None = None
    ) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._url = url
        self._options = storage_options or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    def put(self, key: str, data: bytes) -> None:
        with translated(key, missing=False):
            self._fs.pipe_file(self._path(key), bytes(data))

    def put_json(self, key: str, obj: Any) -> None:
        self.put(key, json.dumps(obj, separators=(",", ":")).encode())

    def get(self, key: str) -> bytes:
        with translated(key):
            return bytes(self._fs.cat_file(self._path(key)))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def exists(self, key: str) -> bool:
        with translated(key):
            return bool(self._fs.isfile(self._path(key)))

    def delete(self, key: str) -> None:
        path = self._path(key)
        with translated(key), contextlib.suppress(*_MISSING):
            self._fs.rm_file(path)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def list(self, prefix: str = "", *, recursive: bool = True) -> builtins.list[str]:
        folder = self._dir(prefix)
        with translated(prefix):
            if recursive:
                paths = [str(p) for p in self._fs.find(folder)]
            else:
                paths = [e["name"] for e in self._ls(folder) if e["type"] == "file"]
        inside = folder + "/"
        keys = (p[len(self._root) + 1 :] for p in paths if p.startswith(inside))
        return sorted(k for k in keys if not _is_tmp(k))

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        folder = self._dir(prefix)
        with translated(prefix):
            entries = self._ls(folder)
        names = (str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if _is_dir(e))
        return sorted(names)

    def modified(self, key: str) -> float:
        with translated(key):
            return float(self._fs.modified(self._path(key)).timestamp())

    def open_read(self, url_or_key: str) -> BinaryIO:
        if is_url(url_or_key):
            same_scheme = url_or_key.partition("://")[0] == self._url.partition("://")[0]
            return open_url(url_or_key, **(self._options if same_scheme else {}))
        with translated(url_or_key):
            return cast(BinaryIO, self._fs.open(self._path(url_or_key), "rb"))

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(key)}"

    def _dir(self, prefix: str) -> str:
        folder = check_prefix(prefix)
        return f"{self._root}/{folder}" if folder else self._root

    def _ls(self, folder: str) -> builtins.list[dict[str, Any]]:
        try:
            return list(self._fs.ls(folder, detail=True))
        except FileNotFoundError:
            return []


class LocalStore(FsspecStore):
    """A local directory; atomic writes by temp file + rename (see the module docstring)."""

    def __init__(self, root_dir: Path) -> None:
        root = root_dir.expanduser().absolute()
        with translated(str(root), missing=False):
            root.mkdir(parents=True, exist_ok=True)
        super().__init__(fsspec.filesystem("file"), root.as_posix(), url=root.as_uri())

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with translated(key, missing=False):
            fd, tmp = self._temp_file(os.path.dirname(path))
            try:
                _write_all(fd, data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def get(self, key: str) -> bytes:
        path = self._path(key)
        with translated(key), open(path, "rb") as f:
            return f.read()

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        with translated(key), contextlib.suppress(*_MISSING):
            os.unlink(path)
        self._prune(os.path.dirname(path))

    def delete_prefix(self, prefix: str) -> int:
        folder = self._dir(prefix)
        removed = 0
        for key in self.list(prefix):
            with translated(key), contextlib.suppress(*_MISSING):
                os.unlink(self._path(key))
                removed += 1
        self._remove_empty_tree(folder)
        return removed

    def list(self, prefix: str = "", *, recursive: bool = True) -> builtins.list[str]:
        folder = self._dir(prefix)
        start = len(self._root) + 1
        with translated(prefix):
            return sorted(p[start:] for p in self._files(folder, recursive=recursive))

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        folder = self._dir(prefix)
        with translated(prefix):
            return sorted(e.name for e in _scandir(folder) if e.is_dir())

    def modified(self, key: str) -> float:
        with translated(key):
            return os.stat(self._path(key)).st_mtime

    def _files(self, folder: str, *, recursive: bool) -> Iterator[str]:
        """Paths of the objects in ``folder`` (a plain walk: fsspec's costs 2x more here)."""
        for entry in _scandir(folder):
            if entry.is_dir():
                if recursive:
                    yield from self._files(entry.path, recursive=True)
            elif not entry.name.startswith(TMP_PREFIX):
                yield entry.path

    def _temp_file(self, folder: str) -> tuple[int, str]:
        """A new temp file in ``folder``, creating the folder (again) if a delete pruned it.

        Named ``<TMP_PREFIX><pid>-<n>``: unique without random names (a third of a put's cost
        with ``tempfile.mkstemp``); ``O_EXCL`` skips a stale one left by a dead process.
        """
        for _ in range(_PUT_ATTEMPTS):
            tmp = f"{folder}/{TMP_PREFIX}{os.getpid()}-{next(_TMP_COUNTER)}"
            try:
                return os.open(tmp, _TMP_FLAGS, 0o600), tmp
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
            except FileExistsError:
                continue
        raise StorageError(f"cannot create a temporary file in {folder}", details=folder)

    def _prune(self, folder: str) -> None:
        """Remove ``folder`` and its parents up to the root while they are empty."""
        while len(folder) > len(self._root) and folder.startswith(self._root + "/"):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def _remove_empty_tree(self, folder: str) -> None:
        """Remove stray temp files (of crashed writers) and the folders under ``folder``
        (bottom-up), then prune upwards."""
        for dirpath, _, filenames in os.walk(folder, topdown=False):
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(dirpath, name))
            if dirpath != self._root:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
        self._prune(folder)


def _scandir(folder: str) -> builtins.list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return builtins.list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def open_store(url: str, **storage_options: Any) -> ObjectStore:
    """The store at ``url``.

    * a plain path (``~`` expanded, relative paths made absolute) or ``file:///abs/path``: a
      :class:`LocalStore` (the folder is created);
    * ``s3://bucket/prefix``: S3 through s3fs (``pip install 'cortex[s3]'``); credentials and
      endpoint from the usual AWS variables, or ``storage_options`` (passed to s3fs);
    * ``memory://name``: fsspec's in-memory file system under ``/name``; every store opened
      with the same name in one process shares the objects.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return LocalStore(Path(url))
    if scheme == "file":
        if not rest.startswith("/"):
            raise InvalidRequestError(f"{url!r} is not a valid file URL (use file:///abs/path)")
        return LocalStore(Path(rest))
    if not rest.strip("/"):
        raise InvalidRequestError(f"{url!r} needs a bucket or name after {scheme}://")
    fs, root = url_to_fs(url, storage_options)
    return FsspecStore(fs, root, url=url.rstrip("/"), storage_options=storage_options)


def url_to_fs(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """fsspec's file system and path for ``url``, with our errors."""
    try:
        fs, root = fsspec.core.url_to_fs(url, **with_defaults(url, storage_options))
    except ImportError as exc:
        raise StorageError(
            f"cannot open {url}: {exc} (for s3://, install the s3 extra: pip install 'cortex[s3]')"
        ) from exc
    except ValueError as exc:
        raise InvalidRequestError(f"unsupported storage URL {url!r}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"cannot open {url}: {exc}", details=url) from exc
    return fs, str(root)


def _is_tmp(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(TMP_PREFIX)


def _is_dir(entry: dict[str, Any]) -> bool:
    return entry.get("type") == "directory"
