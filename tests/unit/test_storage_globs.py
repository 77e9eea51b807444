"""Glob semantics of SPEC 6 (gobwas/glob with separator "/"), matched against whole URLs."""

from __future__ import annotations

import pytest

from cortex.storage.globs import InvalidGlobError, PathFilter, compile_glob, glob_match

B = "s3://b"

MATCHES = [
    # `**` crosses "/", so "every .jpg at any depth" is `**.jpg` (the whole URL must match)
    (f"{B}/**.jpg", f"{B}/a.jpg"),
    (f"{B}/**.jpg", f"{B}/x/y/z.jpg"),
    ("**.jpg", f"{B}/x/y.jpg"),
    ("**", f"{B}/anything/at/all"),
    (f"{B}/**/*.jpg", f"{B}/d/x.jpg"),
    (f"{B}/**/*.jpg", f"{B}/d/e/x.jpg"),
    # `*` stays within one segment, and may be empty
    (f"{B}/*.jpg", f"{B}/a.jpg"),
    (f"{B}/*", f"{B}/"),
    (f"{B}/*/*.txt", f"{B}/dir/f.txt"),
    ("s3://*/key", "s3://any-bucket/key"),
    # `?`: one character, not "/"
    (f"{B}/img?.png", f"{B}/img1.png"),
    # classes: a list, one range, negated forms; a class may match "/"
    (f"{B}/[abc].txt", f"{B}/b.txt"),
    (f"{B}/[!abc].txt", f"{B}/d.txt"),
    (f"{B}/[a-c].txt", f"{B}/c.txt"),
    (f"{B}/[!a-c].txt", f"{B}/z.txt"),
    (f"{B}[!a]x", f"{B}/x"),
    (f"{B}/[abc-z].txt", f"{B}/-.txt"),  # "-" is literal unless it makes the only range
    (f"{B}/[!-x].txt", f"{B}/a.txt"),  # "[!-x]": not "-" and not "x"
    (f"{B}/[\\]].txt", f"{B}/].txt"),
    (f"{B}/[\\!a].txt", f"{B}/!.txt"),
    (f"{B}/[\\-x].txt", f"{B}/a.txt"),  # gobwas reads range ends raw: "\\" to "x" holds "a"
    # alternatives, nested, with wildcards, with an empty option
    (f"{B}/{{cats,dogs}}/**", f"{B}/dogs/x/y.jpg"),
    (f"{B}/{{a{{1,2}},b}}.txt", f"{B}/a2.txt"),
    (f"{B}/{{a{{1,2}},b}}.txt", f"{B}/b.txt"),
    (f"{B}/{{*.jpg,*.png}}", f"{B}/x.png"),
    (f"{B}/x{{,.bak}}", f"{B}/x"),
    (f"{B}/x{{,.bak}}", f"{B}/x.bak"),
    (f"{B}/{{[ab],c}}", f"{B}/a"),
    # escapes and characters that are only special in context
    (f"{B}/\\*.txt", f"{B}/*.txt"),
    (f"{B}/\\{{a,b\\}}", f"{B}/{{a,b}}"),
    (f"{B}/{{x\\,y,z}}", f"{B}/x,y"),
    (f"{B}/a,b}}", f"{B}/a,b}}"),
    (f"{B}/a]", f"{B}/a]"),
    (f"{B}/a.b+c(d)$^|", f"{B}/a.b+c(d)$^|"),
    # non-ASCII and local candidates
    (f"{B}/é*.txt", f"{B}/été.txt"),
    ("/data/**.jsonl", "/data/2024/01/part-0.jsonl"),
    ("file:///data/*.jsonl", "file:///data/part-0.jsonl"),
    ("**", "a\nb"),
]

NON_MATCHES = [
    (f"{B}/**.jpg", f"{B}/a.png"),
    (f"{B}/**.jpg", f"{B}/a.jpg.bak"),
    (f"{B}/**/*.jpg", f"{B}/x.jpg"),  # `**/` needs at least one "/" (not bash's globstar)
    ("*.jpg", f"{B}/x.jpg"),  # `*` cannot cross the "/" of the URL
    (f"{B}/*.jpg", f"{B}/x/a.jpg"),
    (f"{B}/img?.png", f"{B}/img10.png"),
    (f"{B}/img?.png", f"{B}/img.png"),
    (f"{B}/img?png", f"{B}/img/png"),
    (f"{B}/[abc].txt", f"{B}/d.txt"),
    (f"{B}/[!abc].txt", f"{B}/a.txt"),
    (f"{B}/[a-c].txt", f"{B}/d.txt"),
    (f"{B}/[!a-c].txt", f"{B}/b.txt"),
    (f"{B}/[!-x].txt", f"{B}/-.txt"),
    (f"{B}/{{cats,dogs}}/**", f"{B}/birds/1.jpg"),
    (f"{B}/{{a{{1,2}},b}}.txt", f"{B}/a3.txt"),
    (f"{B}/\\*.txt", f"{B}/a.txt"),
    (f"{B}/a", f"{B}/ab"),  # anchored at the end...
    (f"{B}/a", f"x{B}/a"),  # ...and at the start
    (f"{B}/a.b", f"{B}/axb"),  # "." is literal
    (f"{B}/a*", f"{B}/A"),  # case-sensitive
]


@pytest.mark.parametrize(("pattern", "candidate"), MATCHES)
def test_matches(pattern: str, candidate: str) -> None:
    assert glob_match(pattern, candidate)


@pytest.mark.parametrize(("pattern", "candidate"), NON_MATCHES)
def test_does_not_match(pattern: str, candidate: str) -> None:
    assert not glob_match(pattern, candidate)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (f"{B}/[abc", "expected ']'"),
        (f"{B}/[]", "empty character class"),
        (f"{B}/[!]", "empty character class"),
        (f"{B}/[z-a]", "below its start"),
        (f"{B}/[a-cx]", "expected ']'"),
        (f"{B}/[a-", "end of input"),
        (f"{B}/abc\\", "trailing backslash"),
        (f"{B}/{{a,b", "unclosed '{'"),
        (f"{B}/{{a,{{b,c}}", "unclosed '{'"),
    ],
)
def test_invalid_globs(pattern: str, reason: str) -> None:
    with pytest.raises(InvalidGlobError) as info:
        compile_glob(pattern)
    assert reason in info.value.message
    assert pattern in info.value.message
    assert info.value.status_code == 400


URLS = [f"{B}/a.jpg", f"{B}/b.png", f"{B}/raw/c.jpg", f"{B}/raw/d.txt"]


@pytest.mark.parametrize(
    ("includes", "excludes", "kept"),
    [
        ([], [], URLS),  # no includes: everything is a candidate
        ([f"{B}/**.jpg"], [], [URLS[0], URLS[2]]),
        ([f"{B}/*.jpg", f"{B}/*.png"], [], [URLS[0], URLS[1]]),  # any include suffices
        ([], [f"{B}/raw/**"], [URLS[0], URLS[1]]),
        ([f"{B}/**.jpg"], [f"{B}/raw/**"], [URLS[0]]),  # exclude wins over include
        ([f"{B}/nothing*"], [], []),
    ],
)
def test_path_filter(includes: list[str], excludes: list[str], kept: list[str]) -> None:
    f = PathFilter(includes, excludes)
    assert [u for u in URLS if f.matches(u)] == kept


def test_path_filter_checks_every_glob_up_front() -> None:
    with pytest.raises(InvalidGlobError):
        PathFilter([f"{B}/**"], [f"{B}/[bad"])
