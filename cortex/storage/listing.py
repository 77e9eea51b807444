"""Users' data files for BatchAPI jobs: listing with includes/excludes, and reading JSON lines.

**Listing** (SPEC 6, ``file_path_lister`` / ``delimited_files``): each source URL is a *string
prefix*, as an S3 listing prefix is: ``s3://b/data/img`` takes ``data/img1.jpg`` and
``data/imgs/x.jpg``; end it with ``/`` to mean one folder. Accepted sources: an absolute local
path, ``file:///abs/path``, ``s3://bucket[/prefix]``, and ``memory://name[/prefix]`` (tests). A
candidate is each file's URL written in the source's own form (``s3://bucket/key``,
``file:///abs/path`` or ``/abs/path``), filtered by :class:`~cortex.storage.globs.PathFilter`.
Order: sources in the order given, each one's files in ascending lexicographic order (an S3
listing's order); a file reached by two sources is listed once, at its first place (the
original would enqueue it twice).

**Reading** (SPEC 6, ``delimited_files``): :func:`iter_delimited` streams the files one after
another and yields each JSON value in order, so a batch can span files; values are separated by
any JSON whitespace, normally one per line. It reads line by line (a line is held in memory, a
file never is). A value may continue over several lines; a value that cannot be completed
raises :class:`DelimitedDataError` naming the file and the line where the error is.
"""

from __future__ import annotations

import codecs
import json
import posixpath
import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

from cortex.errors import InvalidRequestError
from cortex.storage.fsspec_store import open_url, translated, url_to_fs
from cortex.storage.globs import PathFilter

SUPPORTED = "an absolute local path, file:///abs/path, s3://bucket/prefix or memory://name/prefix"
# Longest JSON value (in characters) the reader waits for across lines before giving up.
MAX_VALUE_CHARS = 16 * 2**20

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class DelimitedDataError(InvalidRequestError):
    """Bad data in a delimited file: ``url`` and 1-based ``line`` say where."""

    def __init__(self, url: str, line: int, reason: str) -> None:
        super().__init__(f"{url}: line {line}: {reason}", details={"url": url, "line": line})
        self.url = url
        self.line = line


class DelimitedItem(NamedTuple):
    value: Any
    url: str
    line: int  # where the value starts, 1-based


@dataclass(frozen=True)
class _Source:
    url: str
    scheme: str  # "" for a plain local path
    fs: Any
    path: str  # in the file system's own notation, no trailing "/"

    def to_url(self, fs_path: str) -> str:
        if not self.scheme:
            return fs_path
        if self.scheme == "file":
            return "file://" + fs_path
        return f"{self.scheme}://{fs_path.lstrip('/')}"


def check_source_url(url: str) -> str:
    """``url`` unchanged if it is a supported source, else :class:`InvalidRequestError`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        valid = url.startswith("/")
    elif scheme == "file":
        valid = rest.startswith("/")
    elif scheme in ("s3", "memory"):
        valid = bool(rest.split("/", 1)[0])
    else:
        valid = False
    if not valid:
        kind = "s3 path" if scheme == "s3" else "storage path"
        raise InvalidRequestError(f"{url} is not a valid {kind} (use {SUPPORTED})", details=url)
    return url


def iter_files(
    urls: Sequence[str],
    *,
    includes: Sequence[str] = (),
    excludes: Sequence[str] = (),
    storage_options: dict[str, Any] | None = None,
) -> Iterator[str]:
    """The matching file URLs, lazily per source (``next(...)`` checks that one exists).

    Every URL and glob is checked before anything is listed.
    """
    path_filter = PathFilter(includes, excludes)
    sources = [_source(check_source_url(u), storage_options or {}) for u in urls]
    seen: set[str] = set()
    for source in sources:
        for candidate in _list_source(source):
            if candidate not in seen and path_filter.matches(candidate):
                seen.add(candidate)
                yield candidate


def list_files(
    urls: Sequence[str],
    *,
    includes: Sequence[str] = (),
    excludes: Sequence[str] = (),
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """All of :func:`iter_files` (what ``dryRun=true`` prints)."""
    options = storage_options
    return list(iter_files(urls, includes=includes, excludes=excludes, storage_options=options))


def _source(url: str, storage_options: dict[str, Any]) -> _Source:
    scheme = url.partition("://")[0] if "://" in url else ""
    fs, path = url_to_fs(url, storage_options)
    return _Source(url=url, scheme=scheme, fs=fs, path=path.rstrip("/"))


def _list_source(source: _Source) -> list[str]:
    """Candidate URLs under the source's string prefix, sorted."""
    with translated(source.url):
        folder_only = source.url.endswith("/") or _is_container(source)
        paths = _find(source.fs, source.path) if folder_only else _prefix_paths(source)
    files = sorted(p for p in paths if not p.endswith("/"))
    return [source.to_url(p) for p in files]


def _is_container(source: _Source) -> bool:
    """A bare bucket (``s3://b``) or memory name: list the whole of it."""
    return source.scheme in ("s3", "memory") and "/" not in source.path.strip("/")


def _prefix_paths(source: _Source) -> list[str]:
    """Files whose path starts with ``source.path``: the parent's matching entries, expanded."""
    parent = posixpath.dirname(source.path)
    paths: list[str] = []
    for entry in _ls(source.fs, parent):
        name = str(entry["name"]).rstrip("/")
        if not name.startswith(source.path):
            continue
        if entry.get("type") == "directory":
            paths.extend(_find(source.fs, name))
        else:
            paths.append(name)
    return paths


def _find(fs: Any, folder: str) -> list[str]:
    inside = folder + "/"
    return [str(p) for p in fs.find(folder) if str(p).startswith(inside)]


def _ls(fs: Any, folder: str) -> list[dict[str, Any]]:
    try:
        return list(fs.ls(folder, detail=True))
    except (FileNotFoundError, NotADirectoryError):
        return []


def iter_delimited(
    urls: Iterable[str],
    *,
    max_value_chars: int = MAX_VALUE_CHARS,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[DelimitedItem]:
    """Every JSON value of the files, in order, across file boundaries."""
    for url in urls:
        with open_url(url, **(storage_options or {})) as f:
            yield from _iter_file(f, url, max_value_chars)


def _iter_file(f: BinaryIO, url: str, max_value_chars: int) -> Iterator[DelimitedItem]:
    pending, pending_line = "", 0
    for lineno, raw in enumerate(f, 1):
        text = _decode_line(raw, url, lineno)
        buf, start = (pending + text, pending_line) if pending else (text, lineno)
        pending, pending_line = yield from _values(buf, url, start)
        if len(pending) > max_value_chars:
            reason = f"a JSON value is still not complete after {max_value_chars} characters"
            raise DelimitedDataError(url, pending_line, reason)
    if pending:  # the file ended inside a value; name the line where the value starts
        try:
            _DECODER.raw_decode(pending)
        except json.JSONDecodeError as exc:
            reason = f"truncated JSON value at the end of the file: {exc.msg}"
            raise DelimitedDataError(url, pending_line, reason) from exc


def _values(buf: str, url: str, first_line: int) -> Generator[DelimitedItem, None, tuple[str, int]]:
    """Yield the complete values of ``buf``; return the incomplete rest and its first line.

    Line numbers are counted forward from the previous value, so a long line of many values
    costs linear time.
    """
    pos, line, counted = 0, first_line, 0
    while True:
        pos = _skip_whitespace(buf, pos)
        line, counted = line + buf.count("\n", counted, pos), pos
        if pos == len(buf):
            return "", 0
        try:
            value, end = _DECODER.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if exc.pos >= len(buf.rstrip(" \t\n\r")):  # ran out of text: the value may go on
                return buf[pos:], line
            bad_line = line + buf.count("\n", pos, exc.pos)
            raise DelimitedDataError(url, bad_line, f"invalid JSON: {exc.msg}") from exc
        yield DelimitedItem(value, url, line)
        pos = end


def _skip_whitespace(buf: str, pos: int) -> int:
    match = _WHITESPACE.match(buf, pos)
    return match.end() if match else pos


def _decode_line(raw: bytes, url: str, lineno: int) -> str:
    if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DelimitedDataError(url, lineno, f"not UTF-8 text: {exc.reason}") from exc
