"""Listing users' files (SPEC 6 prefixes, globs, order) and streaming JSON-lines files."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec  # type: ignore[import-untyped]
import pytest

from cortex.errors import InvalidRequestError
from cortex.storage import listing
from cortex.storage.base import ObjectNotFoundError
from cortex.storage.globs import InvalidGlobError
from cortex.storage.listing import (
    DelimitedDataError,
    check_source_url,
    iter_delimited,
    iter_files,
    list_files,
)

FILES = ["data/a.jsonl", "data/b.json", "data/sub/c.jsonl", "data2/d.jsonl", "database.txt"]


@pytest.fixture
def local(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    return tmp_path


@pytest.fixture
def memory() -> Iterator[str]:
    bucket = f"bkt-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    for name in FILES:
        fs.pipe_file(f"/{bucket}/{name}", b"{}\n")
    yield bucket
    fs.rm(f"/{bucket}", recursive=True)


def test_local_path_is_a_string_prefix(local: Path) -> None:
    # As an S3 listing prefix: "data" also takes "data2/..." and "database.txt".
    root = str(local)
    assert list_files([f"{root}/data"]) == [f"{root}/{n}" for n in sorted(FILES)]
    assert list_files([f"{root}/data/"]) == [f"{root}/{n}" for n in FILES[:3]]
    assert list_files([f"{root}/data/a"]) == [f"{root}/data/a.jsonl"]
    assert list_files([f"{root}/data/a.jsonl"]) == [f"{root}/data/a.jsonl"]
    assert list_files([f"{root}/nothing"]) == []
    assert list_files([f"{root}/missing-dir/x"]) == []


def test_file_urls_are_answered_as_file_urls(local: Path) -> None:
    url = local.as_uri()
    assert list_files([f"{url}/data/"], includes=["**.jsonl"]) == [
        f"{url}/data/a.jsonl",
        f"{url}/data/sub/c.jsonl",
    ]


def test_memory_bucket_prefix_and_whole_bucket(memory: str) -> None:
    b = f"memory://{memory}"
    assert list_files([f"{b}/data/s"]) == [f"{b}/data/sub/c.jsonl"]
    assert list_files([b]) == [f"{b}/{n}" for n in sorted(FILES)]
    assert list_files([f"{b}/"]) == list_files([b])


def test_includes_then_excludes_on_whole_urls(memory: str) -> None:
    b = f"memory://{memory}"
    got = list_files([b], includes=["**.jsonl"], excludes=[f"{b}/data/sub/**"])
    assert got == [f"{b}/data/a.jsonl", f"{b}/data2/d.jsonl"]
    assert list_files([b], includes=["*.jsonl"]) == []  # `*` cannot cross "/"
    got = list_files([b], includes=[f"{b}/data/*", f"{b}/*.txt"])
    assert got == [f"{b}/data/a.jsonl", f"{b}/data/b.json", f"{b}/database.txt"]


def test_order_follows_sources_and_drops_repeats(memory: str) -> None:
    b = f"memory://{memory}"
    got = list_files([f"{b}/data2", f"{b}/data/", f"{b}/data2/d.jsonl"])
    assert got == [
        f"{b}/data2/d.jsonl",
        f"{b}/data/a.jsonl",
        f"{b}/data/b.json",
        f"{b}/data/sub/c.jsonl",
    ]


def test_lexicographic_order_within_a_source(tmp_path: Path) -> None:
    # "a.txt" < "a/x" because "." < "/": the order of an S3 listing, not of a folder walk.
    (tmp_path / "p" / "a").mkdir(parents=True)
    for name in ("a/x", "a.txt", "b", "A"):
        (tmp_path / "p" / name).write_text("")
    assert list_files([f"{tmp_path}/p/"]) == [
        f"{tmp_path}/p/{n}" for n in ("A", "a.txt", "a/x", "b")
    ]


def test_iter_files_lists_a_source_only_when_reached(memory: str, monkeypatch) -> None:
    # The submission check "at least one file matches" stops at the first match.
    listed: list[str] = []
    real = listing._list_source

    def recording(source: listing._Source) -> list[str]:
        listed.append(source.url)
        return real(source)

    monkeypatch.setattr(listing, "_list_source", recording)
    b = f"memory://{memory}"
    first = next(iter_files([f"{b}/data/a", f"{b}/data2"]))
    assert first == f"{b}/data/a.jsonl"
    assert listed == [f"{b}/data/a"]


@pytest.mark.parametrize(
    "url",
    [
        "relative/path",
        "file://relative",
        "s3://",
        "s3:///key",
        "gs://b/k",
        "memory://",
        "http://x/y",
    ],
)
def test_bad_source_urls(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_source_url(url)
    assert url in info.value.message


def test_s3_message_matches_spec() -> None:
    with pytest.raises(InvalidRequestError, match="^" + re.escape("s3:// is not a valid s3 path")):
        list_files(["s3://"])


@pytest.mark.parametrize(
    "url", ["/abs/path", "file:///abs", "s3://bucket", "s3://b/k", "memory://m/k"]
)
def test_good_source_urls(url: str) -> None:
    assert check_source_url(url) == url


def test_everything_is_checked_before_listing(memory: str) -> None:
    with pytest.raises(InvalidGlobError):
        list_files([f"memory://{memory}"], excludes=["[bad"])
    with pytest.raises(InvalidRequestError):
        list_files([f"memory://{memory}", "relative"])


# --- delimited files ----------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def test_values_stream_across_files_in_order(tmp_path: Path) -> None:
    one = _write(tmp_path, "1.jsonl", '{"id": 1}\n{"id": 2}\n')
    two = _write(tmp_path, "2.jsonl", '\n  {"id": 3}\n[4, 5]\n"six"\n7\nnull')  # no final newline
    items = list(iter_delimited([one, two]))
    assert [i.value for i in items] == [{"id": 1}, {"id": 2}, {"id": 3}, [4, 5], "six", 7, None]
    assert [(i.url, i.line) for i in items[1:4]] == [(one, 2), (two, 2), (two, 3)]


def test_any_whitespace_separates_values(tmp_path: Path) -> None:
    # SPEC 6: consecutive JSON values; several on a line, or one spread over lines.
    url = _write(tmp_path, "x.json", '1 2\t{"a":\n  [1,\n   2]\n}{"b": 3}\r\n"end"\n')
    items = list(iter_delimited([url]))
    assert [i.value for i in items] == [1, 2, {"a": [1, 2]}, {"b": 3}, "end"]
    assert [i.line for i in items] == [1, 1, 1, 4, 5]


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    url = _write(tmp_path, "bad.jsonl", '{"ok": 1}\n{"ok": 2}\n{"bad": 1,,}\n{"ok": 4}\n')
    got = []
    with pytest.raises(DelimitedDataError) as info:
        for item in iter_delimited([url]):
            got.append(item.value)
    assert got == [{"ok": 1}, {"ok": 2}]  # the good items before it were yielded
    assert (info.value.url, info.value.line) == (url, 3)
    assert info.value.message.startswith(f"{url}: line 3: invalid JSON")
    assert info.value.details == {"url": url, "line": 3}


def test_bad_line_inside_a_multiline_value(tmp_path: Path) -> None:
    url = _write(tmp_path, "bad.jsonl", "[1,\n2,\n}\n")
    with pytest.raises(DelimitedDataError) as info:
        list(iter_delimited([url]))
    assert info.value.line == 3


def test_a_string_cannot_span_lines(tmp_path: Path) -> None:
    url = _write(tmp_path, "s.jsonl", '"ok"\n"abc\ndef"\n')
    with pytest.raises(DelimitedDataError) as info:
        list(iter_delimited([url]))
    assert info.value.line == 2


def test_truncated_value_at_end_of_file_is_fatal(tmp_path: Path) -> None:
    first = _write(tmp_path, "cut.jsonl", '{"a": 1}\n{"b": [1,\n2\n')
    second = _write(tmp_path, "next.jsonl", "]}\n")  # a value never continues into the next file
    with pytest.raises(DelimitedDataError) as info:
        list(iter_delimited([first, second]))
    assert info.value.url == first
    assert info.value.line == 2  # where the unfinished value starts
    assert "truncated JSON value" in info.value.message


def test_unfinished_literal_is_an_error_at_once(tmp_path: Path) -> None:
    url = _write(tmp_path, "t.jsonl", "tru\n1\n")
    with pytest.raises(DelimitedDataError) as info:
        list(iter_delimited([url]))
    assert info.value.line == 1


def test_non_utf8_line(tmp_path: Path) -> None:
    url = _write(tmp_path, "latin.jsonl", b'"ok"\n"caf\xe9"\n')
    with pytest.raises(DelimitedDataError, match="line 2: not UTF-8"):
        list(iter_delimited([url]))


def test_utf8_bom_is_skipped(tmp_path: Path) -> None:
    url = _write(tmp_path, "bom.jsonl", b'\xef\xbb\xbf{"a": "\xc3\xa9"}\n')
    assert [i.value for i in iter_delimited([url])] == [{"a": "é"}]


def test_runaway_value_is_bounded(tmp_path: Path) -> None:
    url = _write(tmp_path, "open.jsonl", "[\n" + "1,\n" * 100)
    with pytest.raises(DelimitedDataError, match="line 1: a JSON value is still not complete"):
        list(iter_delimited([url], max_value_chars=50))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError):
        list(iter_delimited([str(tmp_path / "absent.jsonl")]))


def test_reads_listed_memory_urls(memory: str) -> None:
    b = f"memory://{memory}"
    fsspec.filesystem("memory").pipe_file(f"/{memory}/data/a.jsonl", b'{"n": 1}\n{"n": 2}\n')
    urls = list_files([f"{b}/data/"], includes=["**.jsonl"])
    assert [i.value for i in iter_delimited(urls)] == [{"n": 1}, {"n": 2}, {}]
