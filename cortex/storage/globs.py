"""``includes`` / ``excludes`` globs of BatchAPI file sources, with SPEC 6's semantics.

The original matched with gobwas/glob (separator ``/``); this module compiles the same syntax
to a Python regular expression that must match the **whole** candidate URL
(``s3://bucket/key``, ``file:///abs/path`` or ``/abs/path``)::

    *           any run of characters except "/"              [^/]*
    **          any run of characters, "/" included            .*
    ?           one character except "/"                       [^/]
    [abc]       one of the listed characters ("/" can be one)  [abc]
    [a-z]       one character in the range (exactly one range per class, as gobwas lexes it)
    [!...]      negation of either form                        [^...]
    {a,b*,c}    alternatives; each may hold any pattern, nested groups included
    \\c          the character c literally (also inside classes and groups)

Outside a group ``,`` and ``}`` are plain characters; ``]`` is plain outside a class. ``**`` is
only "any characters": ``s3://b/**/*.jpg`` needs at least one folder level, so users write
``**.jpg`` for every depth. Refused (gobwas refuses them too): an unclosed class, an empty
class, a range whose end is below its start, a class with more after its range, and a trailing
backslash. An unclosed ``{``, which gobwas 0.2.3 accepted and then crashed on, is refused.

Filtering (SPEC 6): with includes, a candidate must match at least one; then any candidate that
matches an exclude is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cortex.errors import InvalidRequestError


class InvalidGlobError(InvalidRequestError):
    """An include or exclude pattern does not parse."""


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; use ``fullmatch``. :class:`InvalidGlobError` if it does not parse."""
    try:
        regex = _Parser(pattern).parse()
    except _SyntaxError as exc:
        raise InvalidGlobError(f"{pattern!r} is not a valid glob: {exc}", details=pattern) from exc
    return re.compile(regex, re.DOTALL)


def glob_match(pattern: str, candidate: str) -> bool:
    """Whether ``candidate`` matches the whole ``pattern``."""
    return compile_glob(pattern).fullmatch(candidate) is not None


class PathFilter:
    """SPEC 6's include-then-exclude rule over compiled globs."""

    def __init__(self, includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> None:
        self._includes = [compile_glob(g) for g in includes]
        self._excludes = [compile_glob(g) for g in excludes]

    def matches(self, candidate: str) -> bool:
        if self._includes and not any(g.fullmatch(candidate) for g in self._includes):
            return False
        return not any(g.fullmatch(candidate) for g in self._excludes)


class _SyntaxError(Exception):
    pass


class _Parser:
    """Recursive descent over the pattern, emitting regex text."""

    def __init__(self, pattern: str) -> None:
        self._p = pattern
        self._i = 0

    def parse(self) -> str:
        return self._sequence(in_group=False)

    def _peek(self, offset: int = 0) -> str:
        j = self._i + offset
        return self._p[j] if j < len(self._p) else ""

    def _sequence(self, *, in_group: bool) -> str:
        parts: list[str] = []
        while self._i < len(self._p):
            c = self._p[self._i]
            if in_group and c in ",}":
                break
            if c == "*":
                parts.append(self._star())
            elif c == "?":
                self._i += 1
                parts.append("[^/]")
            elif c == "[":
                parts.append(self._class())
            elif c == "{":
                parts.append(self._group())
            else:
                parts.append(re.escape(self._literal()))
        return "".join(parts)

    def _star(self) -> str:
        if self._peek(1) == "*":
            self._i += 2
            return ".*"
        self._i += 1
        return "[^/]*"

    def _literal(self) -> str:
        c = self._p[self._i]
        if c == "\\":
            if self._i + 1 >= len(self._p):
                raise _SyntaxError("trailing backslash")
            c = self._p[self._i + 1]
            self._i += 1
        self._i += 1
        return c

    def _group(self) -> str:
        self._i += 1  # "{"
        options = [self._sequence(in_group=True)]
        while True:
            c = self._peek()
            if c == "":
                raise _SyntaxError("unclosed '{'")
            self._i += 1
            if c == "}":
                return "(?:" + "|".join(options) + ")"
            options.append(self._sequence(in_group=True))

    def _class(self) -> str:
        self._i += 1  # "["
        negate = self._peek() == "!"
        if negate:
            self._i += 1
        if self._peek() == "":
            raise _SyntaxError("unexpected end of input in a character class")
        body = self._range() if self._peek(1) == "-" else self._chars()
        if self._peek() != "]":
            raise _SyntaxError("expected ']' to close the character class")
        self._i += 1
        return "[" + ("^" if negate else "") + body + "]"

    def _range(self) -> str:
        # gobwas reads both ends raw (no escapes): "[\\-x]" is the range from "\\" to "x".
        lo, hi = self._p[self._i], self._peek(2)
        if hi == "":
            raise _SyntaxError("unexpected end of input in a character range")
        if hi < lo:
            raise _SyntaxError(f"range end {hi!r} is below its start {lo!r}")
        self._i += 3
        return re.escape(lo) + "-" + re.escape(hi)

    def _chars(self) -> str:
        chars: list[str] = []
        while self._peek() not in ("]", ""):
            chars.append(self._literal())
        if not chars:
            raise _SyntaxError("empty character class")
        return "".join(re.escape(c) for c in chars)
