"""Tables and time formats of SPEC 12.1.

A table is columns separated by 3 spaces, a bold header, rows sorted lexicographically (on
their formatted text) unless the caller turns sorting off; the last column is not padded.
Rendering returns a ``rich.text.Text``, so the header is bold on a terminal and plain in a pipe
(``.plain`` is what tests compare).

Ages (``last update``): ``<s>s`` under a minute, ``<m>m<s>s`` under an hour, ``<h>h<m>m``
under 48 hours, else ``<d>d<h>h``. Durations follow Go's ``time.Duration`` string of whole
seconds (``45s``, ``1m30s``, ``2h0m5s``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text

COLUMN_GAP = "   "


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    sort: bool = True
    first_width: int | None = None  # fixed width of the first column (describe: 32)

    def lines(self) -> list[str]:
        rows = [list(r) for r in self.rows]
        if self.sort:
            rows.sort(key=lambda r: COLUMN_GAP.join(r))
        widths = [len(h) for h in self.headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        if self.first_width is not None:
            widths[0] = max(widths[0], self.first_width)
        return [_line(self.headers, widths)] + [_line(r, widths) for r in rows]

    def render(self) -> Text:
        header, *body = self.lines()
        text = Text()
        text.append(header, style="bold")
        for line in body:
            text.append("\n" + line)
        return text

    @property
    def plain(self) -> str:
        return "\n".join(self.lines())


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
    return COLUMN_GAP.join(padded).rstrip()


def format_age(seconds: float) -> str:
    """SPEC 12.1's age: 42s, 3m5s, 5h2m, 3d4h (negative ages, from clock skew, read as 0s)."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 48 * 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def go_duration(seconds: float) -> str:
    """Go's ``Duration.String()`` of ``seconds`` truncated to whole seconds."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 3600}h{s % 3600 // 60}m{s % 60}s"


def go_duration_ms(seconds: float) -> str:
    """Go's ``Duration.String()`` of ``seconds`` truncated to milliseconds: ``0s``, ``10ms``,
    ``1.5s``, ``2m3.25s`` (the average time per batch of ``cortex get <api> <job>``)."""
    ms = max(round(seconds * 1_000_000) // 1000, 0)  # to the microsecond first: 0.57 s is 570 ms
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    whole = go_duration(ms // 1000)
    fraction = f"{ms % 1000:03d}".rstrip("0")
    return f"{whole[:-1]}.{fraction}s" if fraction else whole


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 (nanoseconds allowed) string or unix seconds; None when absent or invalid."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value)).astimezone()
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", str(value)))
    except ValueError:
        return None
    return parsed.astimezone()  # a naive time is read as local time


def format_start_time(value: Any) -> str:
    """Go's ``02 Jan 06 15:04:05 MST`` layout in local time, ``-`` when unknown."""
    moment = parse_time(value)
    return moment.strftime("%d %b %y %H:%M:%S %Z") if moment else "-"


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    """``key: value`` lines (job details)."""
    return "\n".join(f"{key}: {value}" for key, value in pairs)
